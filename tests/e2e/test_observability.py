"""Access logs, request ids, metrics and traces, observed from outside the service."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.infrastructure.observability.telemetry import Telemetry
from tests.support.logs import json_lines
from tests.support.metrics import scrape, value
from tests.support.mongo_server import MongoServer
from tests.support.process import ServiceProcess, free_port
from tests.support.stores import serving
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc


@dataclass
class Traced:
    stub: pb_grpc.TodoServiceAsyncStub
    spans: InMemorySpanExporter
    log: io.StringIO

    def log_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.log.getvalue())


@pytest.fixture(params=["mongo-motor", "mongo-pymongo"])
async def traced(request: pytest.FixtureRequest, json_log: io.StringIO) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with (
        serving(request.param, request, telemetry=Telemetry(tracer_provider=provider)) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        yield Traced(pb_grpc.TodoServiceStub(channel), exporter, json_log)
    provider.shutdown()


def spans_named(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


async def test_one_server_span_per_rpc_with_mongodb_children_and_the_trace_id_in_the_logs(traced: Traced) -> None:
    call = traced.stub.CreateTodo(
        pb.CreateTodoRequest(todo=pb.Todo(content="traced")), metadata=(("x-request-id", "trace-me"),)
    )
    created = (await call).todo
    await traced.stub.GetTodo(pb.GetTodoRequest(id=created.id))
    spans = traced.spans.get_finished_spans()
    servers = spans_named(spans, "todo.v1.TodoService/")
    assert [span.name for span in servers] == ["todo.v1.TodoService/CreateTodo", "todo.v1.TodoService/GetTodo"]
    assert all(span.kind == SpanKind.SERVER for span in servers)
    create_span = servers[0]
    assert create_span.attributes is not None
    assert create_span.attributes["todo.request_id"] == "trace-me"
    children = [span for span in spans_named(spans, "mongodb ") if span.parent is not None]
    assert {span.name for span in children} >= {"mongodb insert_one", "mongodb find_one"}
    insert = next(span for span in children if span.name == "mongodb insert_one")
    assert insert.parent is not None
    assert insert.parent.span_id == create_span.context.span_id
    assert insert.kind == SpanKind.CLIENT
    trace_id = format(create_span.context.trace_id, "032x")
    lines = [line for line in traced.log_lines() if line.get("request_id") == "trace-me"]
    assert lines, "no log line carries the request id"
    assert {line.get("trace_id") for line in lines} == {trace_id}


async def test_incoming_trace_context_is_continued(traced: Traced) -> None:
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    metadata = (("traceparent", f"00-{parent_trace}-00f067aa0ba902b7-01"),)
    await traced.stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="child")), metadata=metadata)
    server = spans_named(traced.spans.get_finished_spans(), "todo.v1.TodoService/")[0]
    assert format(server.context.trace_id, "032x") == parent_trace


GET = {"grpc_type": "unary", "grpc_service": "todo.v1.TodoService", "grpc_method": "GetTodo"}
CREATE = {**GET, "grpc_method": "CreateTodo"}


@pytest.mark.process
def test_metrics_endpoint_counts_real_calls_and_database_health(mongo_server: MongoServer) -> None:
    env = {
        "TODO_METRICS_ADDRESS": "127.0.0.1:0",
        "TODO_MONGODB_URI": mongo_server.uri,
        "TODO_MONGODB_DATABASE": mongo_server.database_name("metrics"),
    }
    with ServiceProcess(env) as service:
        address = service.wait_serving()
        url = service.wait_for(r"metrics on (http://\S+/metrics)")[1]
        before = scrape(url)

        async def calls() -> str:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = pb_grpc.TodoServiceStub(channel)
                todo = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="m")))).todo
                for _ in range(3):
                    await stub.GetTodo(pb.GetTodoRequest(id=todo.id))
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.GetTodo(pb.GetTodoRequest(id="missing"))
                return todo.id

        import asyncio  # noqa: PLC0415

        asyncio.run(calls())
        after = scrape(url)
        assert service.terminate() == 0

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("grpc_server_started_total", **GET) == 4
    assert moved("grpc_server_handled_total", **GET, grpc_code="OK") == 3
    assert moved("grpc_server_handled_total", **GET, grpc_code="NOT_FOUND") == 1
    assert moved("grpc_server_handled_total", **CREATE, grpc_code="OK") == 1
    assert moved("grpc_server_handling_seconds_count", **GET) == 4
    assert value(after, "grpc_server_in_flight", **GET) == 0
    assert value(after, "todo_database_up") == 1
    assert moved("todo_database_operation_seconds_count", operation="insert_one", outcome="ok") == 1
    assert moved("todo_database_operation_seconds_count", operation="find_one", outcome="ok") == 4


@pytest.mark.process
def test_access_log_line_per_rpc_with_request_id_returned_in_metadata(mongo_server: MongoServer) -> None:
    env = {"TODO_LOG_FORMAT": "json"}
    with ServiceProcess(env) as service:
        address = service.wait_serving()

        async def calls() -> tuple[str, str]:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = pb_grpc.TodoServiceStub(channel)
                call = stub.CreateTodo(
                    pb.CreateTodoRequest(todo=pb.Todo(content="a")), metadata=(("x-request-id", "abc-123"),)
                )
                await call
                given = (await call.trailing_metadata()).get("x-request-id")
                failing = stub.GetTodo(pb.GetTodoRequest(id="nope"))
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await failing
                generated = cast(grpc.aio.Metadata, caught.value.trailing_metadata()).get("x-request-id")
                return str(given), str(generated)

        import asyncio  # noqa: PLC0415

        given, generated = asyncio.run(calls())
        assert service.terminate() == 0
    assert given == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    lines = json_lines(service.output)
    access = [line for line in lines if line["logger"] == "service.access"]
    assert len(access) == 2
    create, get = access
    assert (create["method"], create["code"], create["request_id"]) == (
        "/todo.v1.TodoService/CreateTodo",
        "OK",
        "abc-123",
    )
    assert (get["method"], get["code"], get["request_id"]) == ("/todo.v1.TodoService/GetTodo", "NOT_FOUND", generated)
    for line in access:
        assert line["duration_ms"] >= 0
        assert line["peer"].startswith("ipv4:127.0.0.1:")
        assert {"time", "level", "logger", "message"} <= line.keys()


@pytest.mark.process
def test_sigterm_right_after_a_burst_loses_no_access_line() -> None:
    """Access lines are buffered and written by a background thread: the shutdown writes what is left."""
    calls_made = 300
    with ServiceProcess({"TODO_LOG_FORMAT": "json"}) as service:
        address = service.wait_serving()

        async def burst() -> None:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = pb_grpc.TodoServiceStub(channel)
                for number in range(calls_made):
                    with pytest.raises(grpc.aio.AioRpcError):
                        await stub.GetTodo(
                            pb.GetTodoRequest(id="nope"), metadata=(("x-request-id", f"burst-{number}"),)
                        )

        import asyncio  # noqa: PLC0415

        asyncio.run(burst())
        assert service.terminate() == 0  # at once: the last lines are still in the buffer
    lines = json_lines(service.output)
    ids = [line["request_id"] for line in lines if line["logger"] == "service.access"]
    assert ids == [f"burst-{number}" for number in range(calls_made)]


@pytest.mark.process
def test_access_log_switch_off_writes_no_access_line() -> None:
    with ServiceProcess({"TODO_LOG_FORMAT": "json", "TODO_ACCESS_LOG": "false"}) as service:
        address = service.wait_serving()

        async def one_call() -> None:
            async with grpc.aio.insecure_channel(address) as channel:
                await pb_grpc.TodoServiceStub(channel).CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="q")))

        import asyncio  # noqa: PLC0415

        asyncio.run(one_call())
        assert service.terminate() == 0
    loggers = {line["logger"] for line in json_lines(service.output)}
    assert "service" in loggers  # the service still logs its start and stop
    assert "service.access" not in loggers


@pytest.mark.process
def test_database_credentials_never_reach_the_log() -> None:
    port = free_port()  # a loopback port nobody listens on
    env = {
        "TODO_MONGODB_URI": f"mongodb://admin:s3cret-pw@127.0.0.1:{port}/?authSource=admin",
        "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS": "0.2",
        "TODO_LOG_LEVEL": "DEBUG",
    }
    with ServiceProcess(env) as service:
        service.wait_for(r"readiness: NOT_SERVING")
        service.wait_for(r"database not usable")
        assert service.terminate() == 0
    assert "s3cret-pw" not in service.output
    assert f"127.0.0.1:{port}" in service.output  # the failure itself is logged, usefully
