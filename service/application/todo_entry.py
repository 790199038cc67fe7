"""Use cases for todo entries: create, read, list, update, delete, tag."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from service.application.page_token import PageTokenCodec
from service.application.ports import Clock, IdGenerator
from service.domain.errors import ConcurrentModificationError, FieldViolation, ValidationError
from service.domain.repository import Cursor, ListQuery, TodoRepository
from service.domain.todo_entry import (
    TodoEntry,
    normalize_tags,
    validate_client_id,
    validate_entry_id,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_SEARCH_LENGTH = 256
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MUTABLE_FIELDS = ("content", "tags", "done")
# More paths than this is one violation, found before looking at any path.
MAX_MASK_PATHS = 16
# Attempts of a read-compare-write cycle for a change the caller did not make
# conditional (no etag): a concurrent writer makes us read again, not fail.
UNCONDITIONAL_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class TodoDraft:
    """The client-writable fields of an entry."""

    content: str = ""
    tags: tuple[str, ...] = ()
    done: bool = False


@dataclass(frozen=True, slots=True)
class CreateTodo:
    todo: TodoDraft
    todo_id: str = ""
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class UpdateTodo:
    """Replace the fields named in `paths` (`*` = all mutable fields) with `todo`'s.

    Paths in `ignored_paths` (fields the caller cannot set: the identifier and
    output-only fields, as the contract marks them) are skipped, not rejected.
    """

    id: str
    todo: TodoDraft
    paths: tuple[str, ...]
    etag: str = ""
    ignored_paths: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ListTodos:
    page_size: int = 0
    page_token: str = ""
    search: str = ""
    tags: tuple[str, ...] = ()
    done: bool | None = None


@dataclass(frozen=True, slots=True)
class TodoPage:
    entries: list[TodoEntry]
    next_page_token: str


# What an entry costs in a response at most, besides its text: field keys and lengths, two timestamps, the etag,
# the flag, and its own key and length in the page (about 75 bytes; rounded up).
ENTRY_OVERHEAD_BYTES = 128


def entry_bytes(entry: TodoEntry) -> int:
    """An upper bound of the entry's size in a ListTodos response."""
    return (
        ENTRY_OVERHEAD_BYTES
        + len(entry.id.encode())
        + len(entry.content.encode())
        + sum(len(tag.encode()) + 2 for tag in entry.tags)
    )


def _cut_to_bytes(entries: list[TodoEntry], budget: int) -> bool:
    """Cut `entries` where they pass `budget` bytes (one entry always stays); whether any was cut."""
    used = 0
    for index, entry in enumerate(entries):
        used += entry_bytes(entry)
        if used > budget and index > 0:
            del entries[index:]
            return True
    return False


class TodoEntryService:
    """The application service for todo entries."""

    def __init__(
        self,
        repository: TodoRepository,
        page_tokens: PageTokenCodec,
        clock: Clock,
        ids: IdGenerator,
        max_page_bytes: int | None = None,
    ) -> None:
        """`max_page_bytes`: a page's entries stay under this many bytes on the wire (by `entry_bytes`, an upper
        bound): a page is cut short, with a token for the rest, rather than fail over the send limit."""
        self._repository = repository
        self._page_tokens = page_tokens
        self._clock = clock
        self._ids = ids
        self._max_page_bytes = max_page_bytes

    async def create(self, command: CreateTodo) -> TodoEntry:
        violations: list[FieldViolation] = []
        entry_id = ""
        if command.todo_id:
            try:
                entry_id = validate_client_id(command.todo_id)
            except ValidationError as error:
                violations.extend(error.violations)
        if command.request_id and REQUEST_ID_PATTERN.fullmatch(command.request_id) is None:
            violations.append(FieldViolation("request_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]"))
        draft = command.todo
        try:
            entry = TodoEntry.create(
                entry_id or self._ids.new_id(),
                draft.content,
                draft.tags,
                draft.done,
                self._clock.now(),
                incarnation=self._ids.new_incarnation(),
            )
        except ValidationError as error:
            violations.extend(error.under("todo").violations)
        if violations:
            raise ValidationError(violations)
        return await self._repository.add(entry, command.request_id or None)

    async def get(self, entry_id: str) -> TodoEntry:
        return await self._repository.get(validate_entry_id(entry_id))

    async def list(self, command: ListTodos) -> TodoPage:
        violations: list[FieldViolation] = []
        if command.page_size < 0:
            violations.append(FieldViolation("page_size", "must not be negative"))
        if len(command.search) > MAX_SEARCH_LENGTH:
            violations.append(FieldViolation("search", f"must be at most {MAX_SEARCH_LENGTH} characters"))
        tags: frozenset[str] = frozenset()
        try:
            tags = normalize_tags(command.tags)
        except ValidationError as error:
            violations.extend(error.violations)
        fingerprint = PageTokenCodec.fingerprint(command.search, tags, command.done)
        after: Cursor | None = None
        if command.page_token:
            try:
                after = self._page_tokens.decode(command.page_token, fingerprint)
            except ValidationError as error:
                violations.extend(error.violations)
        if violations:
            raise ValidationError(violations)
        size = min(command.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        entries = await self._repository.list(
            ListQuery(limit=size + 1, search=command.search, tags=tags, done=command.done, after=after)
        )
        more = len(entries) > size
        del entries[size:]
        if self._max_page_bytes is not None and _cut_to_bytes(entries, self._max_page_bytes):
            more = True
        if not more:
            return TodoPage(entries, "")
        last = entries[-1]
        token = self._page_tokens.encode(Cursor(last.created_at, last.id), fingerprint)
        return TodoPage(entries, token)

    async def update(self, command: UpdateTodo) -> TodoEntry:
        violations: list[FieldViolation] = []
        try:
            validate_entry_id(command.id, "todo.id")
        except ValidationError as error:
            violations.extend(error.violations)
        fields: set[str] = set()
        if len(command.paths) > MAX_MASK_PATHS:
            raise ValidationError.single("update_mask.paths", f"must name at most {MAX_MASK_PATHS} paths")
        for index, path in enumerate(command.paths):
            if path == "*":
                fields.update(MUTABLE_FIELDS)
            elif path in MUTABLE_FIELDS:
                fields.add(path)
            elif path not in command.ignored_paths:
                violations.append(
                    FieldViolation(
                        f"update_mask.paths[{index}]",
                        f"{path!r} is not a mutable field; use content, tags, done or *",
                    )
                )
        if violations:
            raise ValidationError(violations)
        draft = command.todo

        def change(entry: TodoEntry) -> TodoEntry:
            try:
                return entry.edit(
                    self._clock.now(),
                    content=draft.content if "content" in fields else None,
                    tags=draft.tags if "tags" in fields else None,
                    done=draft.done if "done" in fields else None,
                )
            except ValidationError as error:
                raise error.under("todo") from None

        return await self._change(command.id, change, command.etag)

    async def delete(self, entry_id: str, etag: str = "") -> None:
        validate_entry_id(entry_id)
        if not etag:
            await self._repository.delete(entry_id)
            return
        entry = await self._repository.get(entry_id)
        entry.ensure_etag(etag)
        await self._repository.delete(entry_id, expected_version=entry.version)

    async def add_tag(self, entry_id: str, tag: str) -> TodoEntry:
        validate_entry_id(entry_id)
        return await self._change(entry_id, lambda entry: entry.add_tag(tag, self._clock.now()))

    async def remove_tag(self, entry_id: str, tag: str) -> TodoEntry:
        validate_entry_id(entry_id)
        return await self._change(entry_id, lambda entry: entry.remove_tag(tag, self._clock.now()))

    async def _change(self, entry_id: str, change: Callable[[TodoEntry], TodoEntry], etag: str = "") -> TodoEntry:
        """Read, change and compare-and-set write one entry.

        With an etag, a concurrent change is the caller's conflict
        (ConcurrentModificationError). Without one, the cycle is retried on
        the fresh state a few times before giving up with the same error.
        """
        attempts = 1 if etag else UNCONDITIONAL_ATTEMPTS
        for attempt in range(attempts):
            entry = await self._repository.get(entry_id)
            entry.ensure_etag(etag)
            changed = change(entry)
            if changed is entry:
                return entry
            try:
                await self._repository.replace(changed, expected_version=entry.version)
            except ConcurrentModificationError:
                if attempt + 1 == attempts:
                    raise
                continue
            return changed
        raise AssertionError("unreachable")  # pragma: no cover
