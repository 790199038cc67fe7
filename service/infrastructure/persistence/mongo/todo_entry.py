"""TodoRepository on MongoDB, through Motor or PyMongo's async client.

The database keeps the promises: `_id` makes ids unique, the unique index on
`request_key` makes CreateTodo idempotent, every update and delete is one
write filtered on id and version (compare-and-set), and lists are keyset
queries on (create_time, _id) served by an index, never skip/offset. User text
reaches the database only as values: the search text is regex-escaped, and
no field is ever used as an operator or a key.
"""

from __future__ import annotations

import re
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from service.domain.errors import ConcurrentModificationError, TodoAlreadyExistsError, TodoNotFoundError
from service.domain.repository import ListQuery, TodoRepository
from service.domain.todo_entry import TodoEntry
from service.infrastructure.persistence.mongo import todo_entry_mapper as mapper
from service.infrastructure.persistence.mongo.store import MongoStore

NEWEST_FIRST = [("create_time", DESCENDING), ("_id", DESCENDING)]


def list_filter(query: ListQuery) -> dict[str, Any]:
    """The find() filter of a ListQuery (values only; no user-chosen keys)."""
    conditions: dict[str, Any] = {}
    if query.done is not None:
        conditions["done"] = bool(query.done)
    if query.tags:
        conditions["tags"] = {"$all": sorted(query.tags)}
    if query.search:
        conditions["content"] = {"$regex": re.escape(query.search), "$options": "i"}
    if query.after is not None:
        created, entry_id = query.after.created_at, query.after.entry_id
        conditions["$or"] = [
            {"create_time": {"$lt": created}},
            {"create_time": created, "_id": {"$lt": entry_id}},
        ]
    return conditions


class MongoTodoRepository(TodoRepository):
    def __init__(self, store: MongoStore) -> None:
        self._store = store
        self._collection = store.collection
        # Motor runs each call in a thread of its own pool that a cancellation does not stop: the server keeps
        # a cancelled call's slots until its database call has ended (grpc/handlers.py, `outlast`).
        self.work_outlives_cancellation = store.settings.driver == "motor"

    async def add(self, entry: TodoEntry, request_id: str | None = None) -> TodoEntry:
        self._store.ensure_ready()
        document = mapper.to_document(entry, request_id)
        try:
            with self._store.bounded("insert_one"):
                await self._collection.insert_one(document)
        except DuplicateKeyError:
            # Either the id or the request key is taken (FerretDB does not say
            # which): a stored entry under this request key is the answer.
            if request_id is not None:
                with self._store.bounded("find_one"):
                    earlier = await self._collection.find_one({"request_key": document["request_key"]})
                if earlier is not None:
                    return mapper.from_document(earlier)
            raise TodoAlreadyExistsError(entry.id) from None
        return entry

    async def get(self, entry_id: str) -> TodoEntry:
        self._store.ensure_ready()
        with self._store.bounded("find_one"):
            document = await self._collection.find_one({"_id": entry_id})
        if document is None:
            raise TodoNotFoundError(entry_id)
        return mapper.from_document(document)

    async def replace(self, entry: TodoEntry, expected_version: int) -> None:
        self._store.ensure_ready()
        with self._store.bounded("update_one"):
            result = await self._collection.update_one(
                {"_id": entry.id, "version": expected_version}, {"$set": mapper.changes(entry)}
            )
        if result.matched_count == 0:
            await self._raise_missing_or_moved(entry.id)

    async def delete(self, entry_id: str, expected_version: int | None = None) -> None:
        self._store.ensure_ready()
        condition: dict[str, Any] = {"_id": entry_id}
        if expected_version is not None:
            condition["version"] = expected_version
        with self._store.bounded("delete_one"):
            result = await self._collection.delete_one(condition)
        if result.deleted_count == 0:
            await self._raise_missing_or_moved(entry_id)

    async def list(self, query: ListQuery) -> list[TodoEntry]:
        if query.limit <= 0:  # MongoDB's limit(0) would mean "no limit"
            return []
        self._store.ensure_ready()
        with self._store.bounded("find"):
            cursor = self._collection.find(list_filter(query)).sort(NEWEST_FIRST).limit(query.limit)
            documents = await cursor.to_list(length=query.limit)
        return [mapper.from_document(document) for document in documents]

    async def _raise_missing_or_moved(self, entry_id: str) -> None:
        """After a conditional write matched nothing: say why."""
        with self._store.bounded("find_one"):
            exists = await self._collection.find_one({"_id": entry_id}, projection={"_id": 1})
        if exists is None:
            raise TodoNotFoundError(entry_id)
        raise ConcurrentModificationError(entry_id)
