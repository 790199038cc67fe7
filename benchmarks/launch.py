"""Starting the servers: the service, the benchmark servers of benchmarks/servers/, FerretDB.

Each server runs pinned to the server core (FerretDB on the load core), as a
`Proc` the runner stops; each start waits until the server answers.
"""

from __future__ import annotations

import re
import secrets
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks import service_api
from benchmarks.common import REPO, free_port, log
from benchmarks.context import Bench, Database
from benchmarks.procs import Proc, clean_env


@dataclass
class Server:
    proc: Proc
    port: int
    metrics_port: int | None = None
    health: bool = False  # serves grpc.health.v1 (the service does; B0, B1 do not)
    health_port: int | None = None  # the dedicated health listener (TODO_HEALTH_ADDRESS), when started with one


def loop_flag() -> list[str]:
    """B0 and B1 run on the service's default event loop, so the layers are compared alike."""
    return ["--uvloop"] if service_api.default_event_loop() == "uvloop" else []


BENCH_PAGE_TOKEN_SECRET = secrets.token_urlsafe(32)


def start_service(
    bench: Bench,
    name: str,
    cpus: str | None = None,
    entry: list[str] | None = None,
    cwd: Path | None = None,
    **env: str,
) -> Server:
    """`python -m service` (or a benchmark server module) with TODO_* settings; the caller waits for SERVING.

    `cwd`: where `python -m service` finds the `service` package (default: this checkout).
    """
    port = free_port()
    metrics_port = free_port()
    settings = {"TODO_GRPC_ADDRESS": f"127.0.0.1:{port}", **env}
    if "TODO_MONGODB_URI" in settings:  # required with MongoDB; the run's services share it
        settings.setdefault("TODO_PAGE_TOKEN_SECRET", BENCH_PAGE_TOKEN_SECRET)
    settings["TODO_METRICS_ADDRESS"] = f"127.0.0.1:{metrics_port}"
    argv = [bench.python, *(entry or ["-m", "service"])]
    proc = Proc(name, argv, cpus or bench.server_cpu, bench.logs, env=clean_env(**settings), cwd=cwd or REPO)
    return Server(proc, port, metrics_port, health=True)


def _start_printing_ready(bench: Bench, name: str, argv: list[str]) -> Server:
    """A server that prints `ready PORT ...` on stdout once it serves."""
    proc = Proc(name, argv, bench.server_cpu, bench.logs, env=clean_env(), cwd=REPO, ready_line=True)
    line = proc.read_line(60)
    if not line.startswith("ready "):
        raise RuntimeError(f"{name} did not start: {line!r} (log: {proc.log_path})")
    return Server(proc, int(line.split()[1]))


def start_b0(bench: Bench, name: str, python: str, responses: Path, *options: str) -> Server:
    """B0 (servers/b0.py) on the grpcio of `python`'s venv, serving the canned responses in `responses`;
    `options`: more of B0's command line (channel options, its refusing mode)."""
    argv = [
        python, "-m", "benchmarks.servers.b0", "--port", "0", "--responses", str(responses), *loop_flag(), *options,
    ]  # fmt: skip
    return _start_printing_ready(bench, name, argv)


def start_b1(bench: Bench, name: str) -> Server:
    """B1 (servers/b1.py): the service's layers without the per-RPC wrapper."""
    return _start_printing_ready(
        bench, name, [bench.python, "-m", "benchmarks.servers.b1", "--port", "0", *loop_flag()]
    )


def start_seed(bench: Bench, name: str, python: str, access_log: bool) -> Server:
    """The seed article's FastAPI design (servers/seed_app.py) under uvicorn, from the FastAPI venv."""
    port = free_port()
    argv = [python, "-m", "uvicorn", "benchmarks.servers.seed_app:app", "--host", "127.0.0.1", "--port", str(port)]
    if not access_log:
        argv.append("--no-access-log")
    proc = Proc(name, argv, bench.server_cpu, bench.logs, env=clean_env(), cwd=REPO)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/todos/bench-get", timeout=2) as response:
                if response.status == 200:
                    return Server(proc, port)
        except OSError:
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f"{name} did not start (log: {proc.log_path})") from None
            time.sleep(0.3)


def database(bench: Bench) -> Database:
    """The MongoDB of the mongo and workers sections: --mongodb-uri, or FerretDB started once per run."""
    if bench.database is None:
        if bench.options.mongodb_uri:
            bench.database = Database(None, bench.options.mongodb_uri)
        else:
            bench.database = _start_ferretdb(bench, Path(bench.options.ferretdb))
    return bench.database


def _start_ferretdb(bench: Bench, binary: Path) -> Database:
    if not binary.exists():
        raise RuntimeError(f"no FerretDB test server at {binary}: run `make tools` (or pass --ferretdb/--mongodb-uri)")
    state = bench.work / "ferretdb"
    state.mkdir(exist_ok=True)
    argv = [str(binary), "-listen-addr", "127.0.0.1:0", "-state-dir", str(state), "-log-level", "error"]
    # FerretDB shares the load generator's core: the service's core stays its own.
    log("starting FerretDB (tools/ferretdb) on the load core")
    proc = Proc("ferretdb", argv, bench.load_cpu, bench.logs, env=clean_env(), ready_line=True)
    line = proc.read_line(60)
    if not line.startswith("ready "):
        raise RuntimeError(f"FerretDB did not start: {line!r} (log: {proc.log_path})")
    return Database(proc, line.split()[1])


def ferretdb_version() -> str:
    found = re.search(r"github.com/FerretDB/FerretDB (v\S+)", (REPO / "tools" / "ferretdb" / "go.mod").read_text())
    return found[1] if found else "v1"
