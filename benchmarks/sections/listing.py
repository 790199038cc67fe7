"""6: a 50-entry ListTodos page at 1,000 vs 100,000 entries (in-memory), the first page and one in the middle.

The stores are filled in-process through the real use case (servers/prefilled.py), which also writes
the page token of the middle page.
"""

from __future__ import annotations

from benchmarks.common import Report
from benchmarks.context import Bench
from benchmarks.grpc_calls import wait_serving
from benchmarks.launch import BENCH_PAGE_TOKEN_SECRET, Server, start_service
from benchmarks.measure import Results, Side, alternate, grpc_side, ratio, section_report
from todo.v1 import todo_service_pb2 as pb


def run(bench: Bench, report: Report) -> None:
    sizes = bench.options.list_entries
    servers: dict[int, Server] = {}
    tokens: dict[int, str] = {}
    for size in sizes:
        token_file = bench.work / f"token-{size}.txt"
        servers[size] = start_service(
            bench, f"service-prefilled-{size}",
            entry=["-m", "benchmarks.servers.prefilled", "--entries", str(size), "--token-file", str(token_file)],
            # One secret for the token the filling writes and the service that reads it: without it each
            # bootstrap of the process makes its own random key and the middle page is INVALID_ARGUMENT.
            TODO_PAGE_TOKEN_SECRET=BENCH_PAGE_TOKEN_SECRET,
        )  # fmt: skip
    for size, server in servers.items():
        wait_serving(server.port, timeout=180)
        tokens[size] = (bench.work / f"token-{size}.txt").read_text()
    first = bench.body("list-first", pb.ListTodosRequest(page_size=50))
    sides: list[Side] = []
    for size, server in servers.items():
        middle = bench.body(f"list-middle-{size}", pb.ListTodosRequest(page_size=50, page_token=tokens[size]))
        sides += [
            grpc_side(bench, f"list-first:{size}", f"first page, {size:,} entries", server, "ListTodos", first),
            grpc_side(
                bench, f"list-middle:{size}", f"page in the middle, {size:,} entries", server, "ListTodos", middle
            ),
        ]
    results: Results = {}
    alternate(bench, sides, results, "list")
    small, large = sizes[0], sizes[-1]
    ratios = {
        f"first page p50 latency {large}/{small}": ratio(
            results, f"list-first:{large}", f"list-first:{small}", "p50_ms"
        ),
        f"middle page p50 latency {large}/{small}": ratio(
            results, f"list-middle:{large}", f"list-middle:{small}", "p50_ms"
        ),
        f"first page rps {large}/{small}": ratio(results, f"list-first:{large}", f"list-first:{small}"),
        f"middle page rps {large}/{small}": ratio(results, f"list-middle:{large}", f"list-middle:{small}"),
    }
    report["list"] = {"entries": sizes, **section_report(results, sides, ratios)}
