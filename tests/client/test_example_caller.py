"""The client example of docs/clients.md runs as written against a real server."""

from __future__ import annotations

import pytest

from tests.support import example_caller
from todo_client import TodoClient


async def test_the_example_runs_and_cleans_up_after_itself(
    target: str, client: TodoClient, capsys: pytest.CaptureFixture[str]
) -> None:
    await example_caller.main(target)
    lines = capsys.readouterr().out.splitlines()
    created, done, conflict, bad_content, bad_tag, *rest = lines
    todo_id = created.split()[1].rstrip(":")
    assert created.startswith(f"created {todo_id}: 'Buy milk' ('errands', 'home') at ")
    assert created.endswith("+0000")
    assert done == "done=True tags=('home', 'shop')"
    assert conflict == "conflict: CONCURRENT_MODIFICATION; read it again and decide"
    assert bad_content.startswith("invalid todo.content: ")
    assert bad_tag.startswith("invalid todo.tags[0]: ")
    assert rest == ["first page: 1 entries, more: False", "- Buy milk (home, shop)", f"deleted: NOT_FOUND {todo_id}"]
    assert (await client.list_todos()).todos == ()
