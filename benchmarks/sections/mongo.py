"""5: the service on MongoDB (FerretDB by default) vs the raw driver; Motor vs PyMongo; 6: explain.

The raw driver (servers/driver.py) does what GetTodo and CreateTodo do at the same concurrency from one
process on the server core; H = 1 / (1/B0 + 1/driver) is what the service could reach if its own work
cost what B0's does, with B0 from the in-memory section of the same run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import CONTENT, MONGO_LIST_CONNECTIONS, REPO, TAGS, Report
from benchmarks.context import Bench
from benchmarks.grpc_calls import create_entries, ensure_entry, wait_serving
from benchmarks.launch import database, ferretdb_version, start_service
from benchmarks.load import Load
from benchmarks.measure import Results, Run, Side, alternate, grpc_side, measure, ratio, section_report
from benchmarks.procs import Proc, run_measured
from benchmarks.sections import explain, profile
from todo.v1 import todo_service_pb2 as pb

DRIVERS = ("motor", "pymongo")


def _driver_side(bench: Bench, driver: str, operation: str, uri: str, others: dict[str, Proc]) -> Side:
    concurrency = bench.connections * bench.streams
    holder: dict[str, float] = {}

    def load() -> Load:
        done = run_measured(
            [bench.python, "-m", "benchmarks.servers.driver", "--driver", driver, "--operation", operation,
             "--uri", uri, "--database", f"bench_{driver}", "--concurrency", str(concurrency),
             "--seconds", str(bench.seconds), "--warmup", str(bench.warmup)],
            bench.server_cpu, bench.seconds + bench.warmup + 60, cwd=REPO,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the driver benchmark failed: {done.stderr[-800:]}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        # The driver process is "the server" here: its CPU is reported as the server CPU.
        holder["cpu"] = done.cpu / done.wall
        return Load(data["rps"], data["ops"], 0, data["p50_ms"], data["p99_ms"], data["mean_ms"], 0.0, done.wall)

    def run() -> Run:
        measured = measure(bench, [], load, others=others)
        measured.server_cpu = holder.get("cpu", float("nan"))
        measured.foreign_on_server_core = max(0.0, measured.server_core_busy - measured.server_cpu)
        return measured

    return Side(f"{operation}:driver-{driver}", f"raw {driver} driver", run)


def _harmonic(report: Report, summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    inmemory = report.get("inmemory", {}).get("summary", {})
    b0_rps = {operation: (inmemory.get(f"{operation}:b0") or {}).get("rps") for operation in ("get", "create")}
    harmonic = {}
    for driver in DRIVERS:
        for operation, b0 in b0_rps.items():
            raw = summaries.get(f"{operation}:driver-{driver}", {}).get("rps")
            service = summaries.get(f"{operation}:service-{driver}", {}).get("rps")
            if b0 and raw and service:
                h = 1 / (1 / b0 + 1 / raw)
                harmonic[f"{operation} {driver}"] = {
                    "B0": b0,
                    "driver": raw,
                    "H": h,
                    "service": service,
                    "service/H": service / h,
                }
    return harmonic


def run(bench: Bench, report: Report) -> None:
    db = database(bench)
    uri = db.uri
    report["database"] = (
        f"FerretDB {ferretdb_version()} (tools/ferretdb, SQLite backend)" if db.proc else "MongoDB at --mongodb-uri"
    )
    servers = {
        driver: start_service(
            bench, f"service-mongo-{driver}", TODO_MONGODB_URI=uri, TODO_MONGODB_DATABASE=f"bench_{driver}",
            TODO_MONGODB_DRIVER=driver,
        )
        for driver in DRIVERS
    }  # fmt: skip
    for server in servers.values():
        wait_serving(server.port)
        ensure_entry(server.port, "bench-get")
        create_entries(server.port, bench.options.mongo_entries)
    get_body = bench.body("get", pb.GetTodoRequest(id="bench-get"))
    create_body = bench.body("create", pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS)))
    list_body = bench.body("list-first", pb.ListTodosRequest(page_size=50))
    others = {"ferretdb": db.proc} if db.proc is not None else {}

    def service_side(driver: str, operation: str, method: str, body: Path, connections: int | None = None) -> Side:
        label = f"service, {driver}" + (f", {connections} connections" if connections else "")
        return grpc_side(
            bench, f"{operation}:service-{driver}", label, servers[driver], method, body, connections, others
        )

    results: Results = {}
    read_sides = [
        *[service_side(driver, "get", "GetTodo", get_body) for driver in DRIVERS],
        *[_driver_side(bench, driver, "get", uri, others) for driver in DRIVERS],
    ]
    alternate(bench, read_sides, results, "mongo get")
    report["explain"] = explain.explain_queries(uri, "bench_motor")
    if "profile" not in bench.options.skip:
        report["profile_mongo"] = {
            f"GetTodo on MongoDB, {driver}": profile.under_load(
                bench, servers[driver], "GetTodo", get_body, f"GetTodo-mongo-{driver}"
            )
            for driver in DRIVERS
        }
    # ListTodos saturates FerretDB (a table scan, then a sort in FerretDB): its own block, on the
    # collection as the gets saw it (before the creates grow it), at 4 connections: at 64 the queue
    # of slow finds delays the readiness ping past its timeout and the service turns NOT_SERVING.
    list_sides = [
        service_side(driver, "list50", "ListTodos", list_body, connections=MONGO_LIST_CONNECTIONS) for driver in DRIVERS
    ]
    alternate(bench, list_sides, results, "mongo list")
    write_sides = [
        *[service_side(driver, "create", "CreateTodo", create_body) for driver in DRIVERS],
        *[_driver_side(bench, driver, "create", uri, others) for driver in DRIVERS],
    ]
    alternate(bench, write_sides, results, "mongo create")
    ratios = {
        "get motor/pymongo": ratio(results, "get:service-motor", "get:service-pymongo"),
        "create motor/pymongo": ratio(results, "create:service-motor", "create:service-pymongo"),
        "list50 motor/pymongo": ratio(results, "list50:service-motor", "list50:service-pymongo"),
        "get raw motor/pymongo": ratio(results, "get:driver-motor", "get:driver-pymongo"),
        "create raw motor/pymongo": ratio(results, "create:driver-motor", "create:driver-pymongo"),
    }
    section = section_report(results, read_sides + write_sides + list_sides, ratios)
    report["mongo"] = {
        "uri": uri,
        "concurrency": bench.connections * bench.streams,
        "entries_per_database_before_writes": bench.options.mongo_entries + 1,
        **section,
        "harmonic": _harmonic(report, section["summary"]),
    }
