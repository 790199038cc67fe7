"""The one module of benchmarks/ that imports the service's internals (an import-linter contract keeps it so).

Everything else reaches the service through a real process and a real channel;
the benchmark servers that run the service's own code in-process (B1, the
pre-filled service) and the MongoDB query plans use these few names:

- `default_event_loop()`: the service's default TODO_EVENT_LOOP (B0 and B1 run on it too);
- `in_memory_repository()`: the in-memory repository the service uses without MongoDB;
- `build_layers(repository=None)`: the use cases, servicer and page-token codec exactly as the
  service builds them from TODO_* in the environment (`repository`: instead of the configured one);
- `serve(repository)`: the unchanged service (`python -m service`) around `repository`; returns the
  exit status;
- `list_filter(...)` and `NEWEST_FIRST`: the MongoDB filter and sort of ListTodos, as the repository
  builds them;
- `configure_logging()` and `Layers.handlers()`: the service's logging as `python -m service` sets it up, and
  its per-RPC handlers (`micro.py` calls them in-process).

When the service's composition root changes, only this file follows it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from service.application.page_token import PageTokenCodec
from service.application.todo_entry import CreateTodo, TodoDraft
from service.bootstrap import App, bootstrap
from service.domain.repository import Cursor, ListQuery, TodoRepository
from service.infrastructure.config import Settings
from service.infrastructure.grpc.todo_entry import TodoServicer
from service.infrastructure.observability.logs import configure_logging as _configure_logging
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from service.infrastructure.persistence.mongo.todo_entry import NEWEST_FIRST as _NEWEST_FIRST
from service.infrastructure.persistence.mongo.todo_entry import list_filter as _list_filter
from service.main import main as _service_main

Repository = TodoRepository
Servicer = TodoServicer
NEWEST_FIRST: list[tuple[str, int]] = list(_NEWEST_FIRST)


@dataclass(frozen=True)
class EntryRef:
    """Where an entry sits in the newest-first order."""

    id: str
    created_at: datetime


@cache
def default_event_loop() -> str:
    """The service's default TODO_EVENT_LOOP ("uvloop" or "asyncio")."""
    return str(Settings.from_env({}).event_loop)


def in_memory_repository() -> Repository:
    return InMemoryTodoRepository()


class Layers:
    """The service's use cases, servicer and page-token codec, built as the service builds them."""

    def __init__(self, app: App) -> None:
        self._todos = app.todos
        self._codec = app.page_tokens
        self._api = app.api
        self.servicer: Servicer = app.api.servicer

    async def create(self, content: str, tags: Sequence[str], todo_id: str = "") -> EntryRef:
        """CreateTodo through the real use case (validation, clock, ids)."""
        entry = await self._todos.create(CreateTodo(todo=TodoDraft(content=content, tags=tuple(tags)), todo_id=todo_id))
        return EntryRef(entry.id, entry.created_at)

    def handlers(self) -> dict[str, Any]:
        """The service's per-RPC handlers (grpc.RpcMethodHandler over raw bytes), by method name."""
        return dict(self._api.method_handlers())

    def page_token_after(self, entry: EntryRef) -> str:
        """The page token of an unfiltered ListTodos page that starts after `entry`."""
        fingerprint = PageTokenCodec.fingerprint("", frozenset(), None)
        return self._codec.encode(Cursor(entry.created_at, entry.id), fingerprint)


def build_layers(repository: Repository | None = None) -> Layers:
    """The layers from TODO_* in the environment; `repository` replaces the configured one."""
    return Layers(bootstrap(Settings.from_env(os.environ), repository=repository))


def configure_logging() -> None:
    """The service's logging from TODO_* in the environment (default: JSON lines on stderr, INFO)."""
    settings = Settings.from_env(os.environ)
    _configure_logging(settings.log_level_number, settings.log_format)


def serve(repository: Repository) -> int:
    """Run the service as `python -m service` does (settings, logging, loop, lifecycle) around `repository`."""
    return _service_main(functools.partial(bootstrap, repository=repository))


def list_filter(
    *,
    limit: int,
    after: EntryRef | None = None,
    done: bool | None = None,
    tags: frozenset[str] = frozenset(),
    search: str = "",
) -> dict[str, Any]:
    """The MongoDB filter of a ListTodos query."""
    cursor = Cursor(after.created_at, after.id) if after is not None else None
    return _list_filter(ListQuery(limit=limit, search=search, tags=tags, done=done, after=cursor))
