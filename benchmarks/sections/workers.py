"""7: TODO_WORKERS=2 vs 1, GetTodo, on MongoDB (workers need a shared store)."""

from __future__ import annotations

from benchmarks.common import Report
from benchmarks.context import Bench
from benchmarks.grpc_calls import ensure_entry, wait_serving
from benchmarks.launch import database, start_service
from benchmarks.measure import Results, alternate, grpc_side, ratio, section_report
from todo.v1 import todo_service_pb2 as pb


def run(bench: Bench, report: Report) -> None:
    db = database(bench)
    one = start_service(
        bench, "service-workers-1", TODO_WORKERS="1", TODO_MONGODB_URI=db.uri,
        TODO_MONGODB_DATABASE="bench_workers",
    )  # fmt: skip
    # Two workers get both cores (the load generator and FerretDB stay on the second one).
    two = start_service(
        bench, "service-workers-2", cpus=bench.all_cpus, TODO_WORKERS="2", TODO_MONGODB_URI=db.uri,
        TODO_MONGODB_DATABASE="bench_workers",
    )  # fmt: skip
    for server in (one, two):
        wait_serving(server.port)
    ensure_entry(one.port, "bench-get")
    get_body = bench.body("get", pb.GetTodoRequest(id="bench-get"))
    others = {"ferretdb": db.proc} if db.proc is not None else {}
    sides = [
        grpc_side(bench, "get:workers-1", "TODO_WORKERS=1 (core 0)", one, "GetTodo", get_body, others=others),
        grpc_side(bench, "get:workers-2", "TODO_WORKERS=2 (cores 0-1)", two, "GetTodo", get_body, others=others),
    ]
    results: Results = {}
    alternate(bench, sides, results, "workers")
    ratios = {
        "rps 2/1": ratio(results, "get:workers-2", "get:workers-1"),
        "rps per server CPU-s 2/1": ratio(results, "get:workers-2", "get:workers-1", "rps_per_server_cpu"),
    }
    report["workers"] = {
        "processes": {"workers-1": len(one.proc.pids()), "workers-2": len(two.proc.pids())},
        **section_report(results, sides, ratios),
    }
