"""The one place where MongoDB documents and TodoEntry objects meet.

Document shape (collection `todos`):
    {_id: id, content, tags: [sorted], done, create_time, update_time,
     version, incarnation, request_key}
(`incarnation` is absent from documents written before it existed: read as "".)
`request_key` is always set, so that a unique index on it works without
sparse or partial indexes (FerretDB v1 has neither): `r:<request_id>` when the
client sent a request id, `e:<id>` otherwise.
"""

from __future__ import annotations

from typing import Any

from service.domain.todo_entry import TodoEntry


def request_key(entry_id: str, request_id: str | None) -> str:
    return f"r:{request_id}" if request_id is not None else f"e:{entry_id}"


def to_document(entry: TodoEntry, request_id: str | None) -> dict[str, Any]:
    return {
        "_id": entry.id,
        "content": entry.content,
        "tags": sorted(entry.tags),
        "done": entry.done,
        "create_time": entry.created_at,
        "update_time": entry.updated_at,
        "version": entry.version,
        "incarnation": entry.incarnation,
        "request_key": request_key(entry.id, request_id),
    }


def changes(entry: TodoEntry) -> dict[str, Any]:
    """The `$set` of an update from any version to `entry`."""
    return {
        "content": entry.content,
        "tags": sorted(entry.tags),
        "done": entry.done,
        "update_time": entry.updated_at,
        "version": entry.version,
    }


def from_document(document: dict[str, Any]) -> TodoEntry:
    return TodoEntry(
        id=document["_id"],
        content=document["content"],
        tags=frozenset(document["tags"]),
        done=document["done"],
        created_at=document["create_time"],
        updated_at=document["update_time"],
        version=document["version"],
        incarnation=document.get("incarnation", ""),
    )
