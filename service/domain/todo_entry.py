"""The TodoEntry aggregate and the rules its fields follow.

An entry is immutable: every change returns a new entry with the version
raised by one, or the same object when nothing changed. The etag is derived
from the version (and the creation time, so that an id reused after a delete
never repeats an old etag).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from service.domain.errors import ConcurrentModificationError, FieldViolation, ValidationError

MAX_CONTENT_LENGTH = 4096
MAX_TAGS = 32
MAX_TAG_LENGTH = 64
# Bounds checked before any per-element work, so that no request can make the
# service loop over (or report on) more than this many values: tag values a
# request may carry before normalisation (duplicates and case collapse, so a
# few more than MAX_TAGS are fine), and characters of one raw tag.
MAX_RAW_TAGS = 256
MAX_RAW_TAG_LENGTH = 1024
TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9._:/-]*")
TAG_RULE = f"1 to {MAX_TAG_LENGTH} characters of [a-z0-9] followed by [a-z0-9._:/-]"
MAX_ID_LENGTH = 128
CLIENT_ID_PATTERN = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
CLIENT_ID_RULE = (
    "1 to 63 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
)


def normalize_content(raw: str) -> str:
    """Trimmed content, or a ValidationError naming `content`."""
    content = raw.strip()
    if not content:
        raise ValidationError.single("content", "must not be empty")
    if len(content) > MAX_CONTENT_LENGTH:
        raise ValidationError.single("content", f"must be at most {MAX_CONTENT_LENGTH} characters")
    return content


def _normalized_tag(raw: str) -> tuple[str, str | None]:
    """The trimmed, lower-cased tag and what is wrong with it (None: nothing); an overlong raw tag is not read."""
    if len(raw) > MAX_RAW_TAG_LENGTH:
        return "", f"must be at most {MAX_TAG_LENGTH} characters"
    tag = raw.strip().lower()
    if not tag:
        return tag, "must not be empty"
    if len(tag) > MAX_TAG_LENGTH:
        return tag, f"must be at most {MAX_TAG_LENGTH} characters"
    if TAG_PATTERN.fullmatch(tag) is None:
        return tag, f"must be {TAG_RULE}"
    return tag, None


def normalize_tag(raw: str) -> str:
    """A trimmed, lower-cased tag, or a ValidationError naming `tag`."""
    tag, problem = _normalized_tag(raw)
    if problem is not None:
        raise ValidationError.single("tag", problem)
    return tag


def normalize_tags(raw: Sequence[str]) -> frozenset[str]:
    """A set of at most MAX_TAGS normalised tags; every bad tag is reported as `tags[i]`.

    More than MAX_RAW_TAGS values is one violation, found before looking at any.
    """
    if len(raw) > MAX_RAW_TAGS:
        raise ValidationError.single(
            "tags", f"must hold at most {MAX_TAGS} distinct tags; more than {MAX_RAW_TAGS} values were sent"
        )
    tags: set[str] = set()
    violations: list[FieldViolation] = []
    for index, item in enumerate(raw):
        tag, problem = _normalized_tag(item)
        if problem is None:
            tags.add(tag)
        else:
            violations.append(FieldViolation(f"tags[{index}]", problem))
    if len(tags) > MAX_TAGS:
        violations.append(FieldViolation("tags", f"must hold at most {MAX_TAGS} distinct tags"))
    if violations:
        raise ValidationError(violations)
    return frozenset(tags)


def validate_client_id(entry_id: str) -> str:
    """A client-chosen id (`todo_id`), checked against the documented pattern."""
    if CLIENT_ID_PATTERN.fullmatch(entry_id) is None:
        raise ValidationError.single("todo_id", f"must be {CLIENT_ID_RULE}")
    return entry_id


def validate_entry_id(entry_id: str, field: str = "id") -> str:
    """An id used to address an existing entry: non-empty and of sane length."""
    if not entry_id:
        raise ValidationError.single(field, "must not be empty")
    if len(entry_id) > MAX_ID_LENGTH:
        raise ValidationError.single(field, f"must be at most {MAX_ID_LENGTH} characters")
    return entry_id


def truncate_to_millis(moment: datetime) -> datetime:
    """Timestamps keep millisecond precision, the precision every store keeps."""
    if moment.tzinfo is not UTC:  # the clock's own zone needs no conversion
        if moment.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def millis(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (floored, as the stores keep them)."""
    # Exact integer arithmetic in C: aware subtraction honours any offset, and
    # timedelta // timedelta floors.
    return (moment - _EPOCH) // _ONE_MILLISECOND


def from_millis(milliseconds: int) -> datetime:
    """The UTC datetime `milliseconds` after the epoch (the inverse of `millis`)."""
    return _EPOCH + timedelta(milliseconds=milliseconds)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class TodoEntry:
    """A todo entry: the aggregate root of this service."""

    id: str
    content: str
    tags: frozenset[str]
    done: bool
    created_at: datetime
    updated_at: datetime
    version: int
    # A random tag given at creation and kept for the entry's life. The etag
    # carries it, so an id deleted and created again within the same
    # millisecond (same version 1, same create_time) never repeats an etag
    # of the deleted entry, which would let a stale etag pass.
    incarnation: str = ""

    @classmethod
    def create(
        cls,
        entry_id: str,
        content: str,
        tags: Sequence[str],
        done: bool,
        now: datetime,
        *,
        incarnation: str = "",
    ) -> TodoEntry:
        """A new entry at version 1; every invalid field is reported at once."""
        violations: list[FieldViolation] = []
        normalized_content = ""
        normalized_tags: frozenset[str] = frozenset()
        try:
            normalized_content = normalize_content(content)
        except ValidationError as error:
            violations.extend(error.violations)
        try:
            normalized_tags = normalize_tags(tags)
        except ValidationError as error:
            violations.extend(error.violations)
        if violations:
            raise ValidationError(violations)
        moment = truncate_to_millis(now)
        return cls(
            id=entry_id,
            content=normalized_content,
            tags=normalized_tags,
            done=done,
            created_at=moment,
            updated_at=moment,
            version=1,
            incarnation=incarnation,
        )

    @property
    def etag(self) -> str:
        """Opaque token of this state; changes with every change of the entry."""
        if self.incarnation:
            return f'"{self.version}-{millis(self.created_at):x}-{self.incarnation}"'
        return f'"{self.version}-{millis(self.created_at):x}"'

    def ensure_etag(self, etag: str) -> None:
        """Raise ConcurrentModificationError unless `etag` (when given) is current."""
        if etag and etag != self.etag:
            raise ConcurrentModificationError(self.id)

    def edit(
        self,
        now: datetime,
        *,
        content: str | None = None,
        tags: Sequence[str] | None = None,
        done: bool | None = None,
    ) -> TodoEntry:
        """The entry with the given fields replaced; `self` when nothing changes."""
        violations: list[FieldViolation] = []
        new_content = self.content
        new_tags = self.tags
        if content is not None:
            try:
                new_content = normalize_content(content)
            except ValidationError as error:
                violations.extend(error.violations)
        if tags is not None:
            try:
                new_tags = normalize_tags(tags)
            except ValidationError as error:
                violations.extend(error.violations)
        if violations:
            raise ValidationError(violations)
        new_done = self.done if done is None else done
        return self._changed(now, new_content, new_tags, new_done)

    def add_tag(self, tag: str, now: datetime) -> TodoEntry:
        """The entry with `tag` added; `self` when it is already there."""
        normalized = normalize_tag(tag)
        if normalized in self.tags:
            return self
        if len(self.tags) >= MAX_TAGS:
            raise ValidationError.single("tag", f"the entry already has the maximum of {MAX_TAGS} tags")
        return self._changed(now, self.content, self.tags | {normalized}, self.done)

    def remove_tag(self, tag: str, now: datetime) -> TodoEntry:
        """The entry without `tag`; `self` when it was not there."""
        normalized = normalize_tag(tag)
        if normalized not in self.tags:
            return self
        return self._changed(now, self.content, self.tags - {normalized}, self.done)

    def _changed(self, now: datetime, content: str, tags: frozenset[str], done: bool) -> TodoEntry:
        if content == self.content and tags == self.tags and done == self.done:
            return self
        moment = max(truncate_to_millis(now), self.updated_at)
        return replace(
            self,
            content=content,
            tags=tags,
            done=done,
            updated_at=moment,
            version=self.version + 1,
        )
