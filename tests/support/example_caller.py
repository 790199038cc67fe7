"""How a service calls todo.v1 through todo_client (the example of docs/clients.md, checked by mypy --strict).

Run it against `make run`:  .venv/bin/python -m tests.support.example_caller [localhost:50051]
tests/client/test_example_caller.py runs it against a test server.
"""

from __future__ import annotations

import asyncio
import sys

from todo_client import (
    ConcurrentModificationError,
    InvalidArgumentError,
    NotFoundError,
    Todo,
    TodoClient,
    TodoError,
    TodoPage,
)


async def main(target: str = "localhost:50051") -> None:
    # One client per process, shared by every task: it holds one channel.
    async with TodoClient.connect(target, timeout=5.0) as client:
        todo: Todo = await client.create_todo("Buy milk", tags=["Home", "errands"])
        print(f"created {todo.id}: {todo.content!r} {todo.tags} at {todo.create_time:%Y-%m-%d %H:%M:%S%z}")

        todo = await client.add_tag(todo.id, "shop")
        todo = await client.remove_tag(todo.id, "errands")
        # Conditional on nobody having changed the entry since we read it:
        todo = await client.update_todo(todo.id, done=True, etag=todo.etag)
        print(f"done={todo.done} tags={todo.tags}")

        try:
            await client.update_todo(todo.id, content="Buy oat milk", etag='"0-stale"')
        except ConcurrentModificationError as error:
            print(f"conflict: {error.reason}; read it again and decide")

        try:
            await client.create_todo("   ", tags=["not ok!"])
        except InvalidArgumentError as error:
            for field, problem in sorted(error.field_violations.items()):
                print(f"invalid {field}: {problem}")

        page: TodoPage = await client.list_todos(search="milk", tags=["home"], page_size=10, timeout=2.0)
        print(f"first page: {len(page.todos)} entries, more: {bool(page.next_page_token)}")
        async for entry in client.iter_todos(search="milk", done=True):
            print(f"- {entry.content} ({', '.join(entry.tags)})")

        await client.delete_todo(todo.id, etag=todo.etag)
        try:
            await client.get_todo(todo.id)
        except NotFoundError as error:
            print(f"deleted: {error.code.name} {error.metadata['id']}")
        except TodoError as error:  # every other failure: code, message, reason, metadata
            print(f"unexpected: {error}")
            raise


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:2]))
