"""An unexpected failure inside the service is a generic INTERNAL; details stay in the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import cast

import grpc
import pytest

from service.bootstrap import bootstrap
from service.domain.todo_entry import TodoEntry
from service.infrastructure.config import Settings
from service.infrastructure.grpc.server import start_server
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from tests.support.rich_status import decode
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

SECRET = "password=hunter2"  # noqa: S105 (a fake secret that must not leak)


class BrokenReads(InMemoryTodoRepository):
    """Writes work; every read by id fails the way a buggy adapter would."""

    async def get(self, entry_id: str) -> TodoEntry:
        raise RuntimeError(f"driver exploded ({SECRET})")


@pytest.fixture
async def broken_stub() -> AsyncIterator[pb_grpc.TodoServiceAsyncStub]:
    settings = Settings(grpc_address="127.0.0.1:0")
    running = await start_server(bootstrap(settings, repository=BrokenReads()).api, settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.TodoServiceStub(channel)
    await running.stop(0.5)


async def test_unexpected_exception_is_generic_internal_and_the_server_keeps_serving(
    broken_stub: pb_grpc.TodoServiceAsyncStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broken_stub.GetTodo(pb.GetTodoRequest(id="any"))
    error = decode(caught.value)
    assert (error.code, error.message, error.reason) == (
        grpc.StatusCode.INTERNAL,
        "internal error",
        "UNHANDLED_EXCEPTION",
    )
    trailers = cast(grpc.aio.Metadata, caught.value.trailing_metadata())
    assert error.metadata == {"request_id": trailers["x-request-id"]}, "the id the log lines carry"
    assert SECRET not in str(caught.value.details()) + str(caught.value.trailing_metadata())
    assert any(SECRET in (record.exc_text or "") for record in caplog.records), "the cause is logged server-side"
    created = await broken_stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="still serving")))
    assert created.todo.content == "still serving"
