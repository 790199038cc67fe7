"""What the use cases need from the outside world besides the repository."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from random import getrandbits
from typing import Protocol


class Clock(Protocol):
    """Tells the current time (timezone-aware)."""

    def now(self) -> datetime: ...


class IdGenerator(Protocol):
    """Chooses ids for entries whose client did not choose one, and each entry's incarnation."""

    def new_id(self) -> str: ...

    def new_incarnation(self) -> str:
        """A short tag that two creations of the same id (even in one millisecond) almost never share."""
        ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIdGenerator:
    """Ids: 32 lowercase hex characters from the operating system's random source (128 bits).

    Incarnations: 8 hex characters (32 bits) from Python's generator (reseeded
    in a forked worker): they only keep an etag from repeating across a
    delete and re-create, they guard nothing, and they cost no system call.
    """

    def new_id(self) -> str:
        return os.urandom(16).hex()

    def new_incarnation(self) -> str:
        return f"{getrandbits(32):08x}"
