"""Requests built to hurt: every one gets INVALID_ARGUMENT with details the client can read.

gRPC refuses trailers above its 8 KiB soft limit (intermittently) and 16 KiB
hard limit with RESOURCE_EXHAUSTED, which would hide the BadRequest from the
caller; so the error for any number of bad fields stays small.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.infrastructure.grpc.errors import MAX_VIOLATIONS
from service.infrastructure.grpc.server import RunningServer
from tests.support.process import ServiceProcess
from tests.support.rich_status import decode
from tests.support.stores import serving
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

SOFT_LIMIT = 8 * 1024


@pytest.fixture
async def stub(request: pytest.FixtureRequest) -> AsyncIterator[pb_grpc.TodoServiceAsyncStub]:
    running: RunningServer
    async with (
        serving("memory", request) as running,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        yield pb_grpc.TodoServiceStub(channel)


def trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    """What the error costs in trailers: the status message plus every trailing entry."""
    trailers = cast(grpc.aio.Metadata, error.trailing_metadata())
    size = len((error.details() or "").encode())
    for key, value in trailers:
        size += len(key) + (len(value) * 4 // 3 if isinstance(value, bytes) else len(value.encode()))
    return size


async def invalid_argument(call: object) -> tuple[grpc.aio.AioRpcError, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    error = decode(caught.value)  # fails unless the details arrived and name a contract reason
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_VIOLATION")
    return caught.value, error.violations


@pytest.mark.parametrize("count", [40, 150, 5000])
async def test_many_invalid_tags_reach_the_client_with_their_details(
    stub: pb_grpc.TodoServiceAsyncStub, count: int
) -> None:
    tags = [f"Not Valid {i} \u00e9\u00e9\u00e9" for i in range(count)]
    raw, violations = await invalid_argument(
        stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="x", tags=tags)))
    )
    assert 1 <= len(violations) <= MAX_VIOLATIONS
    assert all(field.startswith("todo.tags") for field in violations)
    assert "more" in (raw.details() or ""), "the message says how many were left out"
    assert trailer_bytes(raw) < SOFT_LIMIT // 2


async def test_a_huge_mask_path_is_echoed_clipped(stub: pb_grpc.TodoServiceAsyncStub) -> None:
    created = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="x")))).todo
    path = "p" * 20_000
    request = pb.UpdateTodoRequest(todo=pb.Todo(id=created.id, done=True), update_mask=FieldMask(paths=[path]))
    raw, violations = await invalid_argument(stub.UpdateTodo(request))
    [description] = violations.values()
    assert "ppp" in description
    assert len(description) < 300
    assert trailer_bytes(raw) < SOFT_LIMIT // 2


async def test_a_long_non_ascii_content_is_clipped_in_the_message(stub: pb_grpc.TodoServiceAsyncStub) -> None:
    content = "\u4e2d" * 5000  # over the 4,096-character limit, 3 bytes each in UTF-8
    raw, violations = await invalid_argument(stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=content))))
    assert set(violations) == {"todo.content"}
    assert trailer_bytes(raw) < SOFT_LIMIT // 2


def _memory(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure (VmRSS, VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.process
@pytest.mark.parametrize("method", ["ListTodos", "CreateTodo"])
async def test_half_a_million_tags_cost_little_and_never_block_health(method: str) -> None:
    """INVALID_ARGUMENT with its details, little memory, and a liveness probe sent behind the attack answers."""
    count = 500_000
    if method == "ListTodos":
        raw = pb.ListTodosRequest(tags=[""] * count).SerializeToString()
    else:
        raw = pb.CreateTodoRequest(todo=pb.Todo(content="x", tags=[""] * count)).SerializeToString()
    with ServiceProcess() as service:
        address = service.wait_serving()
        pid = service.process.pid
        async with grpc.aio.insecure_channel(address) as channel:
            # The unary method called as client-streaming: the same bytes on the wire, but the
            # test learns when the whole request has been handed to the connection.
            attack = channel.stream_unary(
                f"/todo.v1.TodoService/{method}", request_serializer=None, response_deserializer=None
            )(timeout=30)  # type: ignore[call-arg]  # no iterator: written below (grpc-stubs require one)
            health = health_pb2_grpc.HealthStub(channel)
            liveness = health_pb2.HealthCheckRequest(service="liveness")
            await health.Check(liveness, timeout=5)  # the channel is connected
            before = _memory(pid, "VmRSS")
            started = time.perf_counter()
            await attack.write(raw)
            await attack.done_writing()  # the attack is sent: the probe follows it on the same connection
            attack_in_flight = not attack.done()
            probe_started = time.perf_counter()
            probe = await health.Check(liveness, timeout=5)
            probe_seconds = time.perf_counter() - probe_started
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await attack
            seconds = time.perf_counter() - started
            growth = _memory(pid, "VmHWM") - before
        assert service.terminate() == 0
    error = decode(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_VIOLATION")
    assert set(error.violations) == {"tags" if method == "ListTodos" else "todo.tags"}
    assert probe.status == health_pb2.HealthCheckResponse.SERVING
    print(  # `pytest -s` shows the figures of the closing note (measured, never asserted: a shared machine)
        f"{method} with {count} tags: answered in {seconds:.3f}s, peak RSS +{growth / 2**20:.1f} MiB, "
        f"liveness sent {'while the attack was in flight' if attack_in_flight else 'after the attack'} "
        f"answered in {probe_seconds * 1000:.0f} ms"
    )
    assert growth < 32 * 2**20
