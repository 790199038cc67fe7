"""The repository interface the domain owns; adapters implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from service.domain.todo_entry import TodoEntry


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order: the last entry of a page."""

    created_at: datetime
    entry_id: str


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Which entries to list, in newest-first order (created_at, then id).

    `search` is matched case-insensitively as a plain substring of the
    content (never as a pattern); `tags` must all be present; `done`, when
    not None, must equal the entry's flag. Entries at or after `after` in the
    order are left out (keyset paging). At most `limit` entries come back.
    """

    limit: int
    search: str = ""
    tags: frozenset[str] = frozenset()
    done: bool | None = None
    after: Cursor | None = None


class TodoRepository(ABC):
    """Where todo entries live. Every implementation keeps these promises:

    - `add` is idempotent per `request_id`: a second add with the same key
      returns the entry the first one stored and stores nothing.
    - ids are unique: adding a taken id raises TodoAlreadyExistsError.
    - `replace` and `delete` are compare-and-set on the stored version: the
      store, not the caller, decides who wins.

    Any method may raise StoreUnavailableError (the store cannot be reached)
    or StoreTimeoutError (it did not answer in time); nothing else escapes
    from a store failure.
    """

    @abstractmethod
    async def add(self, entry: TodoEntry, request_id: str | None = None) -> TodoEntry:
        """Store a new entry; return it, or the entry stored earlier under `request_id`.

        Raises TodoAlreadyExistsError when the id is taken.
        """

    @abstractmethod
    async def get(self, entry_id: str) -> TodoEntry:
        """The stored entry. Raises TodoNotFoundError."""

    @abstractmethod
    async def replace(self, entry: TodoEntry, expected_version: int) -> None:
        """Store `entry` if the stored version is still `expected_version`.

        Raises TodoNotFoundError when the entry is gone and
        ConcurrentModificationError when its version moved on.
        """

    @abstractmethod
    async def delete(self, entry_id: str, expected_version: int | None = None) -> None:
        """Delete the entry (only at `expected_version`, when given).

        Raises TodoNotFoundError or ConcurrentModificationError.
        """

    @abstractmethod
    async def list(self, query: ListQuery) -> list[TodoEntry]:
        """At most `query.limit` matching entries, newest first."""
