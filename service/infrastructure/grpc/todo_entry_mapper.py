"""The one place where protobuf messages and domain objects meet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.api import field_behavior_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from service.application.todo_entry import MAX_MASK_PATHS, CreateTodo, ListTodos, TodoDraft, UpdateTodo
from service.domain.todo_entry import MAX_RAW_TAGS, TodoEntry, millis
from todo.v1 import todo_service_pb2 as pb


def _unsettable_fields() -> frozenset[str]:
    """Todo fields an update mask may name but that no update changes (AIP-161,
    AIP-203): those the contract marks IDENTIFIER or OUTPUT_ONLY, and `etag`,
    which is the update's precondition, not data."""
    unsettable = {field_behavior_pb2.IDENTIFIER, field_behavior_pb2.OUTPUT_ONLY}
    names = {
        field.name
        for field in pb.Todo.DESCRIPTOR.fields
        if unsettable.intersection(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])
    }
    return frozenset({*names, "etag"})


IGNORED_MASK_PATHS = _unsettable_fields()


def _set_time(target: Timestamp, moment: datetime) -> None:
    seconds, rest = divmod(millis(moment), 1000)
    target.seconds = seconds
    target.nanos = rest * 1_000_000


def fill(todo: pb.Todo, entry: TodoEntry) -> None:
    """Write `entry` into `todo` (an empty message, typically a response's field), tags sorted.

    In place: a response built around its `todo` field is never copied, and
    each Timestamp is set field by field rather than built and copied in.
    """
    todo.id = entry.id
    todo.content = entry.content
    todo.tags.extend(sorted(entry.tags))
    todo.done = entry.done
    _set_time(todo.create_time, entry.created_at)
    if entry.updated_at == entry.created_at:  # a new entry: one conversion
        todo.update_time.CopyFrom(todo.create_time)
    else:
        _set_time(todo.update_time, entry.updated_at)
    todo.etag = entry.etag


def _bounded(values: Sequence[str], limit: int) -> tuple[str, ...]:
    """At most `limit` + 1 of `values`: enough for the rules to see that there
    are too many, without turning a million-element field into Python strings."""
    return tuple(values[: limit + 1])


def _draft(todo: pb.Todo) -> TodoDraft:
    return TodoDraft(content=todo.content, tags=_bounded(todo.tags, MAX_RAW_TAGS), done=todo.done)


def create_command(request: pb.CreateTodoRequest) -> CreateTodo:
    return CreateTodo(todo=_draft(request.todo), todo_id=request.todo_id, request_id=request.request_id)


def list_command(request: pb.ListTodosRequest) -> ListTodos:
    return ListTodos(
        page_size=request.page_size,
        page_token=request.page_token,
        search=request.search,
        tags=_bounded(request.tags, MAX_RAW_TAGS),
        done=request.done if request.HasField("done") else None,
    )


def update_command(request: pb.UpdateTodoRequest) -> UpdateTodo:
    """AIP-134: an absent mask means the fields `todo` sets to non-default values."""
    todo = request.todo
    if request.HasField("update_mask"):
        paths = _bounded(request.update_mask.paths, MAX_MASK_PATHS)
    else:
        implied = (("content", bool(todo.content)), ("tags", bool(todo.tags)), ("done", todo.done))
        paths = tuple(name for name, populated in implied if populated)
    return UpdateTodo(id=todo.id, todo=_draft(todo), paths=paths, etag=todo.etag, ignored_paths=IGNORED_MASK_PATHS)
