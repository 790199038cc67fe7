"""1 layer overhead (service vs B0, B1), 2 seed design (FastAPI), 3 grpcio release, 4 uvloop, access log; 9 profile.

All on the in-memory store, every server on the server core, alternated in one block:
B0 (bare grpc.aio, canned bytes of the service's own answers) on each grpcio release, B1 (the service's
layers without the per-RPC wrapper), the service on its default event loop, on the other loop and with
LOG_LEVEL=WARNING, and the seed article's FastAPI design with and without its access log.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import service_api
from benchmarks.common import BENCH, CONTENT, PINNED_GRPCIO, TAGS, Report, log
from benchmarks.context import Bench
from benchmarks.environment import installed_version, make_venv
from benchmarks.grpc_calls import ensure_entry, wait_serving, write_b0_responses
from benchmarks.launch import Server, start_b0, start_b1, start_seed, start_service
from benchmarks.load import wrk
from benchmarks.measure import Results, Side, alternate, grpc_side, measure, ratio, section_report
from benchmarks.sections import grpcio, profile
from todo.v1 import todo_service_pb2 as pb

FASTAPI_STACK = (
    "fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "uvloop", "httptools", "dependency-injector",
)  # fmt: skip


def _ratios(results: Results, b0_versions: list[str], default_loop: str, other_loop: str) -> dict[str, Any]:
    uvloop_key, asyncio_key = ("service", f"service-{other_loop}")
    if default_loop != "uvloop":
        uvloop_key, asyncio_key = asyncio_key, uvloop_key
    return {
        "get service/B0": ratio(results, "get:service", "get:b0"),
        "create service/B0": ratio(results, "create:service", "create:b0"),
        "get B1/B0 (cost of the layers)": ratio(results, "get:b1", "get:b0"),
        "get service/B1 (cost of the per-RPC wrapper)": ratio(results, "get:service", "get:b1"),
        "create B1/B0 (cost of the layers)": ratio(results, "create:b1", "create:b0"),
        "create service/B1 (cost of the per-RPC wrapper)": ratio(results, "create:service", "create:b1"),
        "get service/seed": ratio(results, "get:service", "get:seed"),
        "get service/seed per server CPU-s": ratio(results, "get:service", "get:seed", "rps_per_server_cpu"),
        "get service-log-warning/seed-no-access-log": ratio(
            results, "get:service-log-warning", "get:seed-no-access-log"
        ),
        "create service/seed": ratio(results, "create:service", "create:seed"),
        **{
            f"get B0 grpcio {v}/{PINNED_GRPCIO}": ratio(results, f"get:b0-grpcio-{v}", "get:b0")
            for v in b0_versions
            if v != PINNED_GRPCIO
        },
        "get service/B0 per server CPU-s": ratio(results, "get:service", "get:b0", "rps_per_server_cpu"),
        "create service/B0 per server CPU-s": ratio(results, "create:service", "create:b0", "rps_per_server_cpu"),
        "get service uvloop/asyncio": ratio(results, f"get:{uvloop_key}", f"get:{asyncio_key}"),
        "create service uvloop/asyncio": ratio(results, f"create:{uvloop_key}", f"create:{asyncio_key}"),
        "get service log WARNING/INFO (access log cost)": ratio(results, "get:service-log-warning", "get:service"),
    }


def _seed_side(bench: Bench, key: str, label: str, seed: Server, url: str, script: Path | None = None) -> Side:
    return Side(key, label, lambda: measure(bench, [seed.proc], lambda: wrk(bench, url, script)))


def run(bench: Bench, report: Report) -> None:
    uv = bench.options.uv
    default_loop = service_api.default_event_loop()
    other_loop = "asyncio" if default_loop == "uvloop" else "uvloop"
    fastapi_python = str(make_venv(uv, BENCH / ".venv-fastapi", ["-r", str(BENCH / "requirements-fastapi.txt")]))
    grpcio_pythons = grpcio.venvs(bench, report)
    report["tools"]["fastapi_stack"] = {name: installed_version(fastapi_python, name) for name in FASTAPI_STACK}

    get_body = bench.body("get", pb.GetTodoRequest(id="bench-get"))
    create_body = bench.body("create", pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS)))
    log("starting the service variants, B0 on each grpcio, and the seed app (all on the server core)")
    services = {
        "service": start_service(bench, "service"),
        f"service-{other_loop}": start_service(bench, f"service-{other_loop}", TODO_EVENT_LOOP=other_loop),
        "service-log-warning": start_service(bench, "service-log-warning", TODO_LOG_LEVEL="WARNING"),
    }
    for server in services.values():
        wait_serving(server.port)
        ensure_entry(server.port, "bench-get")
    # B0 serves byte-for-byte what the service answers.
    responses = write_b0_responses(services["service"].port, bench.work / "b0-responses")
    b0s = {
        version: start_b0(bench, f"b0-grpcio-{version}", python, responses)
        for version, python in grpcio_pythons.items()
    }
    b1 = start_b1(bench, "b1-layers-without-wrapper")
    seed = start_seed(bench, "seed-fastapi", fastapi_python, access_log=True)
    seed_quiet = start_seed(bench, "seed-fastapi-no-access-log", fastapi_python, access_log=False)
    post_script = bench.work / "post.lua"
    post_script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps({'content': CONTENT, 'tags': TAGS})}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{seed.port}/todos/bench-get") as response:
        seed_get_bytes = len(response.read())
    report["payloads"] = {
        "GetTodoResponse_bytes": len((responses / "GetTodo.bin").read_bytes()),
        "CreateTodoResponse_bytes": (responses / "CreateTodo.bin").stat().st_size,
        "seed_get_bytes": seed_get_bytes,
    }

    pinned_b0 = b0s[PINNED_GRPCIO]
    b0_label = f"B0 grpcio {PINNED_GRPCIO}, {default_loop}"
    b1_label = f"B1: service layers without the per-RPC wrapper, {default_loop}"
    service_label = f"service (defaults: {default_loop})"
    other_label = f"service, TODO_EVENT_LOOP={other_loop}"
    seed_url = f"http://127.0.0.1:{seed.port}/todos"
    seed_quiet_get = f"http://127.0.0.1:{seed_quiet.port}/todos/bench-get"
    sides = [
        grpc_side(bench, "get:b0", b0_label, pinned_b0, "GetTodo", get_body),
        *[
            grpc_side(bench, f"get:b0-grpcio-{v}", f"B0 grpcio {v}, {default_loop}", server, "GetTodo", get_body)
            for v, server in b0s.items() if v != PINNED_GRPCIO
        ],
        grpc_side(bench, "get:b1", b1_label, b1, "GetTodo", get_body),
        grpc_side(bench, "get:service", service_label, services["service"], "GetTodo", get_body),
        grpc_side(
            bench, f"get:service-{other_loop}", other_label, services[f"service-{other_loop}"], "GetTodo", get_body
        ),
        grpc_side(
            bench, "get:service-log-warning", "service, TODO_LOG_LEVEL=WARNING", services["service-log-warning"],
            "GetTodo", get_body,
        ),
        _seed_side(bench, "get:seed", "seed FastAPI", seed, f"{seed_url}/bench-get"),
        _seed_side(bench, "get:seed-no-access-log", "seed FastAPI, --no-access-log", seed_quiet, seed_quiet_get),
        grpc_side(bench, "create:b0", b0_label, pinned_b0, "CreateTodo", create_body),
        grpc_side(bench, "create:b1", b1_label, b1, "CreateTodo", create_body),
        grpc_side(bench, "create:service", service_label, services["service"], "CreateTodo", create_body),
        grpc_side(
            bench, f"create:service-{other_loop}", other_label, services[f"service-{other_loop}"], "CreateTodo",
            create_body,
        ),
        _seed_side(bench, "create:seed", "seed FastAPI", seed, seed_url, post_script),
    ]  # fmt: skip
    results: Results = {}
    alternate(bench, sides, results, "in-memory")
    report["inmemory"] = section_report(results, sides, _ratios(results, list(b0s), default_loop, other_loop))
    if "profile" not in bench.options.skip:
        profile.run(bench, report, services["service"], get_body, create_body)
