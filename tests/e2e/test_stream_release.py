"""A call that ends in an error lets go of its HTTP/2 stream at once, not at the next garbage collection.

gRPC core counts a stream against its connection's limit (TODO_MAX_CONCURRENT_STREAMS)
until the server's Python code has let go of the call, and with overload
protection on it refuses new streams over that count. An error that keeps the
call alive in a reference cycle (grpc.aio's kept AbortError; an exception raised
inside a context manager, whose `__aexit__` frame holds it) would keep the
stream counted until a collection runs: 17 errors in a row on one connection
then left it refusing every new stream. Here the garbage collector is off and
40 failing calls in a row, one at a time, must leave the connection usable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from service.bootstrap import bootstrap
from service.domain.errors import StoreTimeoutError
from service.domain.todo_entry import TodoEntry
from service.infrastructure.config import Settings
from service.infrastructure.grpc.server import RunningServer, start_server
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

FAILURES = 40  # well over the 16 streams of a connection


class TimingOutReads(InMemoryTodoRepository):
    """Reads fail as a timed-out database call does: raised inside an async context manager (a cycle)."""

    @contextlib.asynccontextmanager
    async def _database_call(self) -> AsyncIterator[None]:
        try:
            yield
        except TimeoutError as error:
            raise StoreTimeoutError("the database did not answer in time") from error

    async def get(self, entry_id: str) -> TodoEntry:
        async with self._database_call():
            await asyncio.sleep(0)
            raise TimeoutError("timed out")


async def server(repository: InMemoryTodoRepository) -> RunningServer:
    settings = Settings(grpc_address="127.0.0.1:0")
    assert settings.server.overload_protection, "the defaults: overload protection on"
    running = await start_server(bootstrap(settings, repository=repository).api, settings)
    await running.set_serving(True)
    return running


async def failures_then_a_success(running: RunningServer, failing: pb.GetTodoRequest) -> list[grpc.StatusCode]:
    """FAILURES failing GetTodo calls one after the other on one connection, then a CreateTodo: their codes."""
    codes: list[grpc.StatusCode] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = pb_grpc.TodoServiceStub(channel)
        for _ in range(FAILURES):
            try:
                await stub.GetTodo(failing, timeout=5)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
        created = await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="after")), timeout=5)
        assert created.todo.content == "after"
    return codes


@pytest.mark.usefixtures("no_garbage_collection")
async def test_refused_calls_release_their_streams_without_a_garbage_collection() -> None:
    running = await server(InMemoryTodoRepository())
    try:
        codes = await failures_then_a_success(running, pb.GetTodoRequest(id="no-such-entry"))
    finally:
        await running.stop(0)
    assert codes == [grpc.StatusCode.NOT_FOUND] * FAILURES  # none refused as a stream (UNAVAILABLE)


@pytest.mark.usefixtures("no_garbage_collection")
async def test_errors_raised_in_a_context_manager_release_their_streams_without_a_garbage_collection() -> None:
    running = await server(TimingOutReads())
    try:
        codes = await failures_then_a_success(running, pb.GetTodoRequest(id="any"))
    finally:
        await running.stop(0)
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * FAILURES
