"""Every TodoClient method against a real server, on every store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.stores import STORE_KINDS
from todo_client import Todo, TodoClient, TodoPage

pytestmark = pytest.mark.parametrize("store_kind", STORE_KINDS)


def newest_first(todos: list[Todo]) -> list[Todo]:
    """The service's order: create_time, then id, both descending (entries may share a millisecond)."""
    return sorted(todos, key=lambda todo: (todo.create_time, todo.id), reverse=True)


class TestCreateAndGet:
    async def test_create_returns_a_normalised_frozen_todo_with_aware_timestamps(self, client: TodoClient) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        todo = await client.create_todo("  Buy milk  ", tags=["Home", " errands "])
        assert isinstance(todo, Todo)
        assert (todo.content, todo.tags, todo.done) == ("Buy milk", ("errands", "home"), False)
        assert len(todo.id) == 32
        assert todo.etag
        assert todo.create_time.tzinfo is not None
        assert todo.create_time.utcoffset() == timedelta(0)
        assert before <= todo.create_time <= datetime.now(UTC) + timedelta(seconds=1)
        assert todo.update_time == todo.create_time
        with pytest.raises(AttributeError):
            todo.content = "changed"  # type: ignore[misc]
        assert await client.get_todo(todo.id) == todo

    async def test_create_with_client_chosen_id_and_done(self, client: TodoClient) -> None:
        todo = await client.create_todo("call mum", todo_id="call-mum", done=True, tags=("family",))
        assert (todo.id, todo.done, todo.tags) == ("call-mum", True, ("family",))
        assert (await client.get_todo("call-mum")).content == "call mum"

    async def test_the_same_request_id_creates_once(self, client: TodoClient) -> None:
        first = await client.create_todo("once", request_id="req-1")
        again = await client.create_todo("twice?", request_id="req-1")
        assert again == first
        page = await client.list_todos()
        assert [todo.id for todo in page.todos] == [first.id]

    async def test_without_a_request_id_every_call_creates(self, client: TodoClient) -> None:
        first = await client.create_todo("same text")
        second = await client.create_todo("same text")
        assert first.id != second.id
        assert len((await client.list_todos()).todos) == 2

    async def test_a_single_string_is_not_taken_for_a_list_of_tags(self, client: TodoClient) -> None:
        with pytest.raises(TypeError):
            await client.create_todo("x", tags="home")


class TestList:
    async def test_pages_newest_first_with_filters(self, client: TodoClient) -> None:
        milk = await client.create_todo("Buy MILK", tags=["home", "shop"])
        bread = await client.create_todo("buy bread", tags=["shop"], done=True)
        shake = await client.create_todo("milkshake", tags=["fun"])
        ordered = newest_first([milk, bread, shake])
        first = await client.list_todos(page_size=2)
        assert isinstance(first, TodoPage)
        assert list(first.todos) == ordered[:2]
        assert first.next_page_token
        rest = await client.list_todos(page_size=2, page_token=first.next_page_token)
        assert (list(rest.todos), rest.next_page_token) == (ordered[2:], "")
        assert [t.id for t in (await client.list_todos(search="milk", tags=["SHOP"])).todos] == [milk.id]
        assert [t.id for t in (await client.list_todos(done=True)).todos] == [bread.id]
        assert list((await client.list_todos(done=False)).todos) == [t for t in ordered if not t.done]
        assert (await client.list_todos(search="nothing like it")).todos == ()

    async def test_iter_todos_follows_every_page(self, client: TodoClient) -> None:
        created = [
            await client.create_todo(f"entry {index}", tags=["even" if index % 2 == 0 else "odd"]) for index in range(7)
        ]
        ordered = newest_first(created)
        assert [todo async for todo in client.iter_todos(page_size=2)] == ordered
        evens = [todo async for todo in client.iter_todos(tags=["even"], page_size=3)]
        assert evens == [todo for todo in ordered if "even" in todo.tags]
        assert len(evens) == 4
        assert [todo async for todo in client.iter_todos(search="entry 3", done=False)] == [created[3]]
        assert [todo async for todo in client.iter_todos(done=True)] == []


class TestChange:
    async def test_update_changes_only_the_fields_given(self, client: TodoClient) -> None:
        todo = await client.create_todo("draft", tags=["a", "b"])
        done = await client.update_todo(todo.id, done=True)
        assert (done.content, done.tags, done.done) == ("draft", ("a", "b"), True)
        assert done.etag != todo.etag
        assert done.update_time >= todo.update_time
        renamed = await client.update_todo(todo.id, content="final", tags=["C"], etag=done.etag)
        assert (renamed.content, renamed.tags, renamed.done) == ("final", ("c",), True)
        cleared = await client.update_todo(todo.id, tags=())
        assert cleared.tags == ()
        assert await client.get_todo(todo.id) == cleared

    async def test_update_without_any_field_is_refused_before_any_call(self, client: TodoClient) -> None:
        todo = await client.create_todo("draft")
        with pytest.raises(ValueError, match="at least one"):
            await client.update_todo(todo.id, etag=todo.etag)
        assert await client.get_todo(todo.id) == todo

    async def test_add_and_remove_tag(self, client: TodoClient) -> None:
        todo = await client.create_todo("tagged", tags=["one"])
        added = await client.add_tag(todo.id, "Two")
        assert added.tags == ("one", "two")
        assert (await client.add_tag(todo.id, "two")).etag == added.etag
        removed = await client.remove_tag(todo.id, "one")
        assert removed.tags == ("two",)
        assert (await client.remove_tag(todo.id, "one")).etag == removed.etag

    async def test_delete_with_and_without_etag(self, client: TodoClient) -> None:
        first = await client.create_todo("first")
        second = await client.create_todo("second")
        await client.delete_todo(first.id)
        await client.delete_todo(second.id, etag=second.etag)
        assert (await client.list_todos()).todos == ()

    async def test_concurrent_calls_share_one_client(self, client: TodoClient) -> None:
        todos = await asyncio.gather(*(client.create_todo(f"parallel {index}") for index in range(20)))
        assert len({todo.id for todo in todos}) == 20
        fetched = await asyncio.gather(*(client.get_todo(todo.id) for todo in todos))
        assert list(fetched) == list(todos)
