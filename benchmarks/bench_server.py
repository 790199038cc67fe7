"""The real service on a pre-filled in-memory store (benchmark only, never shipped).

Filling 100,000 entries through gRPC would take most of the time budget, so
this entry point creates them in-process through the real use case
(`TodoEntryService.create` on the real `InMemoryTodoRepository`), then runs
the unchanged service around that repository with `service.main.main(make_app)`,
`make_app` being `bootstrap(settings, repository=...)`: the same settings from
the environment, logging, event loop, composition root, servicer, handlers and
lifecycle as `python -m service`.

    TODO_GRPC_ADDRESS=127.0.0.1:PORT python benchmarks/bench_server.py --entries N [--token-file F]

`--token-file` receives a page token (signed with the configured secret) that
points at the middle of the store, for a ListTodos page away from the newest end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from pathlib import Path

from service.application.page_token import PageTokenCodec
from service.application.todo_entry import CreateTodo, TodoDraft, TodoEntryService
from service.bootstrap import bootstrap
from service.domain.repository import Cursor
from service.domain.todo_entry import TodoEntry
from service.infrastructure.config import Settings
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from service.main import main as service_main

TAGS = (("home", "errands"), ("work",), ("home",), ())


async def prefill(todos: TodoEntryService, count: int) -> list[TodoEntry]:
    entries = []
    for index in range(count):
        draft = TodoDraft(content=f"Entry {index}: buy milk and bread", tags=TAGS[index % len(TAGS)])
        entries.append(await todos.create(CreateTodo(todo=draft)))
    for entry_id in ("bench-get", "bench-mem"):
        draft = TodoDraft(content="Buy milk and bread", tags=("home", "errands"))
        entries.append(await todos.create(CreateTodo(todo=draft, todo_id=entry_id)))
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--token-file", type=Path)
    args = parser.parse_args()
    settings = Settings.from_env(os.environ)
    repository = InMemoryTodoRepository()
    # The use case, clock, id generator and page-token codec exactly as the service builds them.
    app = bootstrap(settings, repository=repository)
    began = time.perf_counter()
    entries = asyncio.run(prefill(app.todos, args.entries))
    print(f"prefilled {len(entries)} entries in {time.perf_counter() - began:.1f}s", file=sys.stderr, flush=True)
    if args.token_file is not None:
        middle = entries[len(entries) // 2]
        fingerprint = PageTokenCodec.fingerprint("", frozenset(), None)
        args.token_file.write_text(app.page_tokens.encode(Cursor(middle.created_at, middle.id), fingerprint))
    return service_main(functools.partial(bootstrap, repository=repository))


if __name__ == "__main__":
    sys.exit(main())
