"""iter_todos walks every page, and entries created meanwhile never disturb it."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.servers import FaultInjector, todo_server
from tests.support.stores import STORE_KINDS
from todo_client import TodoClient


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_iterating_while_entries_are_created_neither_repeats_nor_misses(client: TodoClient) -> None:
    existing = {(await client.create_todo(f"old {index}", tags=["t"])).id for index in range(25)}
    created_meanwhile: list[str] = []

    async def writer() -> None:
        for index in range(20):
            created_meanwhile.append((await client.create_todo(f"concurrent {index}", tags=["t"])).id)
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    seen: list[str] = []
    async for todo in client.iter_todos(tags=["t"], page_size=3):
        seen.append(todo.id)
        if len(seen) % 3 == 0:
            # One more entry between every two pages, whatever the writer task manages.
            created_meanwhile.append((await client.create_todo(f"between pages {len(seen)}", tags=["t"])).id)
    await task
    assert len(created_meanwhile) >= 8, "entries were created while iterating"
    assert len(seen) == len(set(seen)), "an entry came twice"
    assert existing <= set(seen), "an entry that existed at the start was missed"


async def test_pages_are_fetched_as_the_caller_goes() -> None:
    calls = FaultInjector()
    async with todo_server(interceptors=(calls,)) as port, TodoClient.connect(f"127.0.0.1:{port}") as client:
        for index in range(10):
            await client.create_todo(f"entry {index}")
        first: list[str] = []
        async for todo in client.iter_todos(page_size=4):
            first.append(todo.content)
            if len(first) == 4:
                break
        assert calls.attempts["ListTodos"] == 1
        everything = [todo.content async for todo in client.iter_todos(page_size=4)]
        assert calls.attempts["ListTodos"] == 1 + 3
        assert sorted(everything) == [f"entry {index}" for index in range(10)]
        assert first == everything[:4]
