"""1 at both loads: the service (every feature on, defaults) against bare grpc.aio B0, per RPC.

GetTodo and CreateTodo, each at 4 connections x 16 streams and at 64
connections x 1 stream, service and B0 alternated in one block; then B0, B1
and the service at a fixed 1,920 requests per second (64 connections x 30),
where their CPU per RPC decomposes the service's cost into the layers (B1 -
B0) and the per-RPC wrapper (service - B1). For every run
also the server's CPU time per RPC (from /proc) and, where `perf stat -e
instructions` works (hardware counters exposed to the VM), the instructions
per RPC of the server process; the report says whether perf worked.

`--baseline REF[,REF...]` adds the service as it was at each git revision
(its `service/` tree from `git archive`, run on this checkout's venv and
generated code) as more sides, so changes are measured against their
predecessors in the same run, alternated with the rest: the before/after of
each lever. Ratios: every side / B0, and each side / the one before it
(REF1 ... REFn, then this checkout).
"""

from __future__ import annotations

import itertools
import math
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from benchmarks.common import CONTENT, PINNED_GRPCIO, REPO, TAGS, Report, log, median
from benchmarks.context import Bench
from benchmarks.grpc_calls import ensure_entry, wait_serving, write_b0_responses
from benchmarks.launch import Server, start_b0, start_b1, start_service
from benchmarks.load import Load, h2load
from benchmarks.measure import Results, Run, Side, alternate, measure, ratio, section_report
from benchmarks.procs import run_text
from todo.v1 import todo_service_pb2 as pb

LOADS = {"4x16": (4, 16), "64x1": (64, 1)}  # at saturation: (connections, streams)
# A fixed offered load below every server's saturation: 64 connections x 30 requests per second each.
# Every server then works in the same batching regime, and its CPU per RPC compares layers more
# steadily than requests per second at saturation (which mixes in how the one core is scheduled).
FIXED_CONNECTIONS, FIXED_RATE = 64, 30
FIXED = f"fixed{FIXED_CONNECTIONS * FIXED_RATE}"
SHAPES = {**LOADS, FIXED: (FIXED_CONNECTIONS, 1)}


def perf_status() -> str:
    """'ok', or why `perf stat -e instructions` cannot count here."""
    out = run_text(["perf", "stat", "-x", ",", "-e", "instructions", "--", "true"], timeout=20)
    if out.startswith("unavailable"):
        return f"perf not installed ({out})"
    for line in out.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("instructions"):
            return "ok" if fields[0].strip().isdigit() else f"instructions {fields[0].strip()} (no hardware counters)"
    return f"no instructions count in perf's output: {out[-200:]!r}"


@dataclass
class _Perf:
    """`perf stat -e instructions -p PID` around one run; `stop()` returns the count (None when not counting)."""

    process: subprocess.Popen[str] | None

    @classmethod
    def start(cls, enabled: bool, pids: list[int]) -> _Perf:
        if not enabled:
            return cls(None)
        argv = ["perf", "stat", "-x", ",", "-e", "instructions", "-p", ",".join(map(str, pids))]
        return cls(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))

    def stop(self) -> float | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=20)
        found = re.search(r"^(\d+),[^,]*,instructions", err, re.M)
        return float(found[1]) if found else None


def _side(bench: Bench, key: str, label: str, server: Server, method: str, body: Path, load: str, perf: bool) -> Side:
    connections, streams = SHAPES[load]
    rate = FIXED_RATE if load == FIXED else None

    def run() -> Run:
        counted: list[float | None] = []

        def generate() -> Load:
            counter = _Perf.start(perf, server.proc.pids())
            try:
                return h2load(
                    bench, server.port, [method], body, connections=connections, streams=streams, rate=rate,
                    tag=key.replace(":", "-"),
                )  # fmt: skip
            finally:
                counted.append(counter.stop())

        measured = measure(bench, [server.proc], generate, server.metrics_port)
        if counted and counted[0] is not None and measured.requests:
            # perf also counts the warm-up, h2load does not: a few per cent high, alike for every side.
            measured.extra["instructions_per_rpc"] = counted[0] / measured.requests
        return measured

    return Side(key, label, run)


def _baseline_tree(bench: Bench, ref: str) -> Path:
    """`ref`'s service/ tree in a temporary directory (outside the repository: no second `service` package for
    mypy or pytest to find); `run` removes it, whatever happens."""
    target = Path(tempfile.mkdtemp(prefix=f"todo-bench-{re.sub(r'[^A-Za-z0-9_.-]', '_', ref)}-"))
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "service"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def _rev(ref: str) -> str:
    return run_text(["git", "-C", str(REPO), "log", "-1", "--format=%h %s", ref])


def _ratio_names(refs: list[str]) -> list[tuple[str, str, str]]:
    """(name, side A, side B): the service / B0 first, then each revision / B0 and / its predecessor."""
    names = []
    chain = [f"at-{ref}" for ref in refs] + ["service"]
    for method in ("get", "create"):
        for load in LOADS:
            key = f"{method}-{load}"
            names.append((f"{method} {load} service/B0", f"{key}:service", f"{key}:b0"))
            for before, after in itertools.pairwise(chain):
                names.append((f"{method} {load} {after}/{before}", f"{key}:{after}", f"{key}:{before}"))
            names += [(f"{method} {load} {side}/B0", f"{key}:{side}", f"{key}:b0") for side in chain[:-1]]
    return names


def _per_rpc(results: Results) -> dict[str, dict[str, float | None]]:
    """Median server CPU-us and instructions per RPC of each side."""

    def med(values: list[float]) -> float | None:
        present = [value for value in values if not math.isnan(value)]  # NaN: a run without requests
        return median(present) if present else None

    return {
        key: {"server_cpu_us_per_rpc": med([r.server_cpu_us_per_rpc for r in runs]),
              "instructions_per_rpc": med([r.extra["instructions_per_rpc"] for r in runs
                                           if "instructions_per_rpc" in r.extra])}
        for key, runs in results.items()
    }  # fmt: skip


def run(bench: Bench, report: Report) -> None:
    trees: list[Path] = []  # the --baseline revisions' service/ trees
    try:
        _run(bench, report, trees)
    finally:
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)


def _run(bench: Bench, report: Report, trees: list[Path]) -> None:
    perf = perf_status()
    log(f"perf stat -e instructions: {perf}")
    counting = perf == "ok"
    refs = [ref for ref in bench.options.baseline.split(",") if ref]
    servers: dict[str, Server] = {}
    labels = {"b0": f"B0 bare grpc.aio {PINNED_GRPCIO}", "service": "service (this checkout), defaults"}
    for ref in refs:
        tree = _baseline_tree(bench, ref)
        trees.append(tree)
        log(f"baseline: the service at {ref} from {tree}")
        servers[f"at-{ref}"] = start_service(bench, f"overhead-at-{ref.replace('/', '_')}", cwd=tree)
        labels[f"at-{ref}"] = f"service at {ref}, defaults"
    service = servers["service"] = start_service(bench, "overhead-service")
    for server in servers.values():
        wait_serving(server.port)
        ensure_entry(server.port, "bench-get")
    responses = write_b0_responses(service.port, bench.work / "overhead-b0-responses")
    servers["b0"] = start_b0(bench, "overhead-b0", bench.python, responses)
    servers["b1"] = start_b1(bench, "overhead-b1")
    labels["b1"] = "B1: the service's layers without the per-RPC wrapper"
    create = pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS))
    bodies = {
        "get": ("GetTodo", bench.body("get", pb.GetTodoRequest(id="bench-get"))),
        "create": ("CreateTodo", bench.body("create", create)),
    }
    results: Results = {}
    all_sides: list[Side] = []
    for method, (rpc, body) in bodies.items():
        for load in LOADS:
            sides = [
                _side(bench, f"{method}-{load}:{name}", f"{labels[name]}, {load}", server, rpc, body, load, counting)
                for name, server in servers.items()
                if name != "b1"
            ]
            alternate(bench, sides, results, f"overhead {method} {load}")
            all_sides += sides
        # The decomposition at a fixed rate: B0, B1 (the layers without the per-RPC wrapper), the service (and
        # the baseline revisions: a lever's before and after in CPU per RPC).
        sides = [
            _side(bench, f"{method}-{FIXED}:{name}", f"{labels[name]}, {FIXED_CONNECTIONS} connections x "
                  f"{FIXED_RATE} rps", server, rpc, body, FIXED, counting)
            for name, server in servers.items()
        ]  # fmt: skip
        alternate(bench, sides, results, f"overhead {method} {FIXED}")
        all_sides += sides
    ratios = {name: ratio(results, a, b) for name, a, b in _ratio_names(refs)}
    for method in ("get", "create"):
        for load in LOADS:
            ratios[f"{method} {load} service/B0 per server CPU-s"] = ratio(
                results, f"{method}-{load}:service", f"{method}-{load}:b0", "rps_per_server_cpu"
            )
    for method in ("get", "create"):
        pairs = [("service", "b0"), ("b1", "b0"), ("service", "b1")] + [("service", f"at-{ref}") for ref in refs]
        for a, b in pairs:
            ratios[f"{method} {FIXED} {a}/{b} server CPU per RPC"] = ratio(
                results, f"{method}-{FIXED}:{a}", f"{method}-{FIXED}:{b}", "server_cpu_us_per_rpc"
            )
    section = section_report(results, all_sides, ratios)
    section["perf"] = perf
    section["baseline"] = ", ".join(refs)
    section["revisions"] = {ref: _rev(ref) for ref in refs}
    section["per_rpc"] = _per_rpc(results)
    report["overhead"] = section
