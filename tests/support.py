"""Test helpers shared by every suite: a controllable clock and id generator."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from service.infrastructure.observability.logs import request_id_var, trace_id_var


class FakeClock:
    """A clock that moves only when told (or by `step` on every reading)."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(0)) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self.step = step

    def now(self) -> datetime:
        moment = self.current
        self.current += self.step
        return moment

    def advance(self, delta: timedelta = timedelta(milliseconds=1)) -> None:
        self.current += delta


class SequentialIds:
    """Ids `id-0001`, `id-0002`, ... in order; incarnations `00000001`, `00000002`, ..."""

    def __init__(self, prefix: str = "id-") -> None:
        self._counter = itertools.count(1)
        self._incarnations = itertools.count(1)
        self._prefix = prefix

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._counter):04d}"

    def new_incarnation(self) -> str:
        return f"{next(self._incarnations):08x}"


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level (and the RPC ids) afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        request_id_var.set(None)
        trace_id_var.set(None)
