"""8: resident memory of the service (in-memory store, 1,000 entries) after 20,000 and 200,000 mixed requests."""

from __future__ import annotations

import re
import subprocess
import time

from google.protobuf.message import Message

from benchmarks.common import CONTENT, TAGS, Report, log
from benchmarks.context import Bench
from benchmarks.grpc_calls import handled_codes, wait_serving
from benchmarks.launch import start_service
from benchmarks.load import h2load_argv
from todo.v1 import todo_service_pb2 as pb

# The mixed traffic: (share, methods (cycled), request). The store stays bounded: Create with a fixed
# request_id replays, Create/Delete of one fixed id race each other.
MEMORY_MIX: list[tuple[float, list[str], Message]] = [
    (0.45, ["GetTodo"], pb.GetTodoRequest(id="bench-mem")),
    (0.20, ["AddTag", "RemoveTag"], pb.AddTagRequest(id="bench-mem", tag="urgent")),
    (0.05, ["ListTodos"], pb.ListTodosRequest(page_size=50)),
    (0.10, ["CreateTodo"], pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS), request_id="bench-replay")),
    (0.10, ["CreateTodo"], pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS), todo_id="bench-tmp")),
    (0.10, ["DeleteTodo"], pb.DeleteTodoRequest(id="bench-tmp")),
]


def run(bench: Bench, report: Report) -> None:
    checkpoint, total = bench.options.memory_requests
    server = start_service(bench, "service-memory", entry=["-m", "benchmarks.servers.prefilled", "--entries", "1000"])
    wait_serving(server.port, timeout=120)
    bodies = [bench.body(f"mix-{i}", request) for i, (_, _, request) in enumerate(MEMORY_MIX)]
    points: list[dict[str, float]] = [{"after_requests": 0, "rss_kib": server.proc.rss_kib()}]
    codes_before = handled_codes(server.metrics_port)
    done = 0
    for target in (checkpoint, total):
        count = target - done
        began = time.perf_counter()
        processes = []
        for (share, methods, _), body in zip(MEMORY_MIX, bodies, strict=True):
            argv = h2load_argv(bench, server.port, methods, body, 8, 1, ["-n", str(int(count * share))])
            processes.append(
                subprocess.Popen(
                    ["taskset", "-c", bench.load_cpu, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
            )
        sent = 0
        for process in processes:
            out, _ = process.communicate(timeout=900)
            found = re.search(r"requests: (\d+) total", out.decode())
            sent += int(found[1]) if found else 0
        done += sent
        time.sleep(1.0)
        points.append(
            {"after_requests": done, "rss_kib": server.proc.rss_kib(), "seconds": round(time.perf_counter() - began, 1)}
        )
        log(f"memory: {done:,} requests, RSS {points[-1]['rss_kib'] / 1024:.1f} MiB")
    codes_after = handled_codes(server.metrics_port)
    report["memory"] = {
        "points": points,
        "mix": [{"share": share, "methods": methods} for share, methods, _ in MEMORY_MIX],
        "codes": {k: codes_after[k] - codes_before.get(k, 0) for k in codes_after},
        "ratio": points[2]["rss_kib"] / points[1]["rss_kib"],
    }
