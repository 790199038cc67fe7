"""An in-memory TodoRepository that keeps the same promises as the MongoDB one.

Every method runs without awaiting in between its reads and writes, so on one
event loop each call is atomic: compare-and-set on version, idempotent
request ids and unique ids hold as they do in the database. Entries are kept
in a list sorted by (created_at, id) so that a keyset page costs
O(log n + page), whatever the number of entries.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from service.domain.errors import ConcurrentModificationError, TodoAlreadyExistsError, TodoNotFoundError
from service.domain.repository import ListQuery, TodoRepository
from service.domain.todo_entry import TodoEntry, millis

_Key = tuple[int, str]


def _key(entry: TodoEntry) -> _Key:
    return (millis(entry.created_at), entry.id)


class InMemoryTodoRepository(TodoRepository):
    """Entries in process memory; lost when the process ends."""

    def __init__(self) -> None:
        self._entries: dict[str, TodoEntry] = {}
        self._order: list[_Key] = []
        self._by_request_id: dict[str, str] = {}
        self._request_id_of: dict[str, str] = {}

    async def add(self, entry: TodoEntry, request_id: str | None = None) -> TodoEntry:
        if request_id is not None:
            known = self._by_request_id.get(request_id)
            if known is not None:
                return self._entries[known]
        if entry.id in self._entries:
            raise TodoAlreadyExistsError(entry.id)
        self._entries[entry.id] = entry
        insort(self._order, _key(entry))
        if request_id is not None:
            self._by_request_id[request_id] = entry.id
            self._request_id_of[entry.id] = request_id
        return entry

    async def get(self, entry_id: str) -> TodoEntry:
        entry = self._entries.get(entry_id)
        if entry is None:
            raise TodoNotFoundError(entry_id)
        return entry

    async def replace(self, entry: TodoEntry, expected_version: int) -> None:
        stored = self._entries.get(entry.id)
        if stored is None:
            raise TodoNotFoundError(entry.id)
        if stored.version != expected_version:
            raise ConcurrentModificationError(entry.id)
        if stored.created_at != entry.created_at:
            raise ValueError("an entry's creation time never changes")
        self._entries[entry.id] = entry

    async def delete(self, entry_id: str, expected_version: int | None = None) -> None:
        stored = self._entries.get(entry_id)
        if stored is None:
            raise TodoNotFoundError(entry_id)
        if expected_version is not None and stored.version != expected_version:
            raise ConcurrentModificationError(entry_id)
        del self._entries[entry_id]
        key = _key(stored)
        del self._order[bisect_left(self._order, key)]
        request_id = self._request_id_of.pop(entry_id, None)
        if request_id is not None:
            del self._by_request_id[request_id]

    async def list(self, query: ListQuery) -> list[TodoEntry]:
        if query.limit <= 0:
            return []
        position = len(self._order)
        if query.after is not None:
            position = bisect_left(self._order, (millis(query.after.created_at), query.after.entry_id))
        needle = query.search.lower()
        tags = query.tags
        done = query.done
        entries = self._entries
        order = self._order
        found: list[TodoEntry] = []
        for index in range(position - 1, -1, -1):
            entry = entries[order[index][1]]
            if done is not None and entry.done != done:
                continue
            if tags and not tags <= entry.tags:
                continue
            if needle and needle not in entry.content.lower():
                continue
            found.append(entry)
            if len(found) >= query.limit:
                break
        return found
