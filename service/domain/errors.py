"""Domain errors. Each one names a kind of failure a client can act on."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base class of every error the business core raises on purpose."""


class TodoNotFoundError(DomainError):
    """No entry has the given id."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"todo entry {entry_id!r} does not exist")
        self.entry_id = entry_id


class TodoAlreadyExistsError(DomainError):
    """An entry with the requested id exists already."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"todo entry {entry_id!r} already exists")
        self.entry_id = entry_id


class ConcurrentModificationError(DomainError):
    """The entry changed since the caller read it (stale etag or version)."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"todo entry {entry_id!r} was changed concurrently; read it again and retry")
        self.entry_id = entry_id


class StoreUnavailableError(DomainError):
    """The store cannot be reached right now; the same request may succeed later."""


class StoreTimeoutError(DomainError):
    """The store did not answer within the time the request had left."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One field of a request that breaks a rule.

    `field` is a dotted path relative to what was validated (`content`,
    `tags[2]`, `page_size`); `ValidationError.under` nests it.
    """

    field: str
    description: str


class ValidationError(DomainError):
    """One or more fields break the documented rules."""

    def __init__(self, violations: list[FieldViolation] | tuple[FieldViolation, ...]) -> None:
        if not violations:
            raise ValueError("a ValidationError needs at least one violation")
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def single(cls, field: str, description: str) -> ValidationError:
        return cls([FieldViolation(field, description)])

    def under(self, prefix: str) -> ValidationError:
        """The same violations with their fields nested below `prefix`."""
        return ValidationError([FieldViolation(f"{prefix}.{v.field}", v.description) for v in self.violations])
