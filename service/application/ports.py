"""What the use cases need from the outside world besides the repository."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the current time (timezone-aware)."""

    def now(self) -> datetime: ...


class IdGenerator(Protocol):
    """Chooses ids for entries whose client did not choose one."""

    def new_id(self) -> str: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIdGenerator:
    """32 lowercase hex characters from the operating system's random source (128 bits)."""

    def new_id(self) -> str:
        return os.urandom(16).hex()
