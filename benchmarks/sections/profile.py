"""9: py-spy samples the service under Get and Create load (also used by the mongo section).

Where the CPU goes, by the innermost Python frame of each sample (first match
wins, so the shares add up to 100%). Leaf-based on purpose: py-spy
--nonblocking reads stacks while the process runs, so outer frames are
sometimes mixed up, but the innermost one is reliable. Native code (the Cython
grpc core, protobuf's upb, datetime) counts for the Python frame that called it.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH, REPO, Report, log, ms
from benchmarks.context import Bench
from benchmarks.environment import make_venv
from benchmarks.launch import Server
from benchmarks.load import h2load_argv
from benchmarks.procs import run_measured

PROFILE_COMPONENTS: list[tuple[str, list[str]]] = [
    # With asyncio, grpc's Cython code runs under Handle._run; with uvloop the loop itself is native code too,
    # so both show up as the self time of Runner.run.
    ("native code under the event loop: grpc aio (Cython cygrpc), and with uvloop the loop itself",
     ["Handle._run (asyncio/events.py", "Runner.run (asyncio/runners.py"]),
    ("grpc threads (native poller)", ["Thread.run (threading.py"]),
    ("event loop, selector, tasks (asyncio)", ["(asyncio/", "(selectors.py", "(contextvars"]),
    ("logging: the access line and others (logging, logs.py, json)",
     ["(logging/", "(service/infrastructure/observability/logs.py", "(json/"]),
    ("prometheus_client (metrics)", ["(prometheus_client/"]),
    ("uuid4 (request id, entry id)", ["(uuid.py"]),
    ("per-RPC wrapper (grpc/handlers.py, observer.py, admission.py, deadline.py)",
     ["(service/infrastructure/grpc/handlers.py", "(service/infrastructure/grpc/observer.py",
      "(service/infrastructure/grpc/admission.py", "(service/infrastructure/deadline.py"]),
    ("servicer and message mapper (grpc/todo_entry*.py, protobuf)",
     ["(service/infrastructure/grpc/todo_entry", "(google/"]),
    ("use cases (application/)", ["(service/application/"]),
    ("domain (domain/)", ["(service/domain/"]),
    ("repositories, MongoStore (persistence/)", ["(service/infrastructure/persistence/"]),
    ("motor", ["(motor/"]),
    ("pymongo and bson", ["(pymongo/", "(bson/"]),
    ("thread pool, queues, locks (concurrent.futures, threading, queue)",
     ["(concurrent/", "(threading.py", "(queue.py"]),
    ("opentelemetry", ["(opentelemetry/"]),
    ("other", [""]),
]  # fmt: skip


def run(bench: Bench, report: Report, server: Server, get_body: Path, create_body: Path) -> None:
    """The service (default settings, in-memory store) under Get and Create load; called by the in-memory section."""
    report["profile"] = {
        method: under_load(bench, server, method, body, method)
        for method, body in (("GetTodo", get_body), ("CreateTodo", create_body))
    }


def under_load(bench: Bench, server: Server, method: str, body: Path, name: str) -> dict[str, Any]:
    """Sample `server` with py-spy (on the load core) for `bench.seconds` while h2load drives `method`."""
    python = make_venv(bench.options.uv, BENCH / ".venv-profile", ["-r", str(BENCH / "requirements-profile.txt")])
    pyspy = str(python.parent / "py-spy")
    output = bench.work / f"profile-{name.replace(' ', '-')}.txt"
    seconds = max(1, int(bench.seconds))
    timing = ["-D", ms(seconds + 1), "--warm-up-time", ms(bench.warmup)]
    argv = h2load_argv(bench, server.port, [method], body, bench.connections, bench.streams, timing)
    load = subprocess.Popen(["taskset", "-c", bench.load_cpu, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(bench.warmup + 0.5)
    done = run_measured(
        [pyspy, "record", "--pid", str(server.proc.pid), "--duration", str(seconds), "--rate", "250",
         "--nonblocking", "--format", "raw", "--output", str(output)],
        bench.load_cpu, seconds + 60,
    )  # fmt: skip
    out, _ = load.communicate(timeout=seconds + 60)
    rps = re.search(r"([\d.]+) req/s", out.decode())
    if done.returncode != 0 or not output.exists():
        return {"error": (done.stdout + done.stderr)[-600:]}
    result = {"rps_while_sampled": float(rps[1]) if rps else None, **analyse(output)}
    log(f"profile {name}: {result['samples']} samples")
    return result


def analyse(path: Path) -> dict[str, Any]:
    """Top frames by self time, and the share of each component (by innermost frame)."""
    self_time: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        leaf = stack.split(";")[-1]
        total += count
        self_time[_short_frame(leaf)] += count
        for component, needles in PROFILE_COMPONENTS:
            if any(needle in leaf for needle in needles):
                components[component] += count
                break
    return {
        "samples": total,
        "top_self": [
            {"frame": frame, "samples": count, "share": count / total} for frame, count in self_time.most_common(15)
        ],
        "components": {name: components[name] / total for name, _ in PROFILE_COMPONENTS if total and components[name]},
    }


def _short_frame(frame: str) -> str:
    # "function (/path/to/site-packages/pkg/mod.py:123)" -> "function (pkg/mod.py:123)"
    return re.sub(rf"\(/[^)]*?/(?:site-packages|lib/python3\.\d+|{re.escape(REPO.name)})/", "(", frame)
