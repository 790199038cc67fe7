"""Every call has a deadline: the client's default, or the one given to the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.support.fakes import GatedReads
from tests.support.servers import FAST_RETRY, FaultInjector, todo_server
from todo_client import DeadlineExceededError, Todo, TodoClient


class SlowServer:
    def __init__(self, port: int, reads: GatedReads, calls: FaultInjector) -> None:
        self.port = port
        self.reads = reads
        self.calls = calls

    def client(self, timeout: float | None) -> TodoClient:
        return TodoClient.connect(f"127.0.0.1:{self.port}", timeout=timeout, retry=FAST_RETRY)

    async def entry(self) -> Todo:
        """An entry to read; creating it reads nothing, so the closed gate does not matter."""
        async with self.client(timeout=5) as client:
            return await client.create_todo("slow to read")


@pytest.fixture
async def slow() -> AsyncIterator[SlowServer]:
    reads = GatedReads()
    calls = FaultInjector()
    async with todo_server(interceptors=(calls,), repository=reads) as port:
        try:
            yield SlowServer(port, reads, calls)
        finally:
            reads.gate.set()  # let handlers still waiting finish before the server stops


async def test_the_default_deadline_applies_to_every_call(slow: SlowServer) -> None:
    todo = await slow.entry()
    async with slow.client(timeout=0.5) as client:
        with pytest.raises(DeadlineExceededError) as caught:
            await client.get_todo(todo.id)
    assert slow.reads.started.is_set(), "the call reached the server's handler before its deadline passed"
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "")


async def test_a_shorter_per_call_timeout_overrides_the_default(slow: SlowServer) -> None:
    todo = await slow.entry()
    async with slow.client(timeout=30) as client:
        with pytest.raises(DeadlineExceededError):
            await client.get_todo(todo.id, timeout=0.05)


async def test_a_longer_per_call_timeout_overrides_the_default(slow: SlowServer) -> None:
    todo = await slow.entry()
    async with slow.client(timeout=0.05) as client:
        call = asyncio.create_task(client.get_todo(todo.id, timeout=30))
        await slow.reads.started.wait()
        # Well past the client's default deadline: the call is still waiting only if its own
        # timeout replaced the default.
        await asyncio.sleep(0.3)
        slow.reads.gate.set()
        assert await call == todo


async def test_a_deadline_is_not_retried_even_for_conditional_calls(slow: SlowServer) -> None:
    todo = await slow.entry()
    async with slow.client(timeout=0.5) as client:
        with pytest.raises(DeadlineExceededError):
            await client.update_todo(todo.id, done=True, etag=todo.etag)
        with pytest.raises(DeadlineExceededError):
            await client.get_todo(todo.id)
    assert (slow.calls.attempts["UpdateTodo"], slow.calls.attempts["GetTodo"]) == (1, 1)


@pytest.mark.parametrize("bad_timeout", [0, -1.0])
async def test_a_default_timeout_must_be_positive(bad_timeout: float, closed_port: int) -> None:
    with pytest.raises(ValueError, match="timeout"):
        TodoClient.connect(f"127.0.0.1:{closed_port}", timeout=bad_timeout)
