"""What the client returns: plain, immutable, typed Python values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Todo:
    """A todo entry.

    `tags` are normalised (trimmed, lower-cased) and sorted; `create_time` and
    `update_time` are timezone-aware UTC datetimes (millisecond precision);
    `etag` changes with every change of the entry: pass it to `update_todo` or
    `delete_todo` to make the change conditional on nobody having changed the
    entry since.
    """

    id: str
    content: str
    tags: tuple[str, ...]
    done: bool
    create_time: datetime
    update_time: datetime
    etag: str


@dataclass(frozen=True, slots=True)
class TodoPage:
    """One page of `list_todos`, newest first; `next_page_token` is "" on the last page."""

    todos: tuple[Todo, ...]
    next_page_token: str
