"""Fakes the tests control: a clock, an id generator, and repositories whose reads wait or fail."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from service.domain.todo_entry import TodoEntry
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository


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


class GatedReads(InMemoryTodoRepository):
    """Reads by id wait until the test opens the gate: RPCs that provably stay in flight.

    `started` is set by the first read; `waiting(n)` returns once n reads have begun.
    """

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.reads = 0
        self._changed = asyncio.Condition()

    async def get(self, entry_id: str) -> TodoEntry:
        async with self._changed:
            self.reads += 1
            self.started.set()
            self._changed.notify_all()
        await self.gate.wait()
        return await super().get(entry_id)

    async def waiting(self, count: int) -> None:
        """Return once `count` reads have begun (they wait at the gate until it opens)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.reads >= count)


class FailingReads(InMemoryTodoRepository):
    """Reads by id raise the given exception (a store failure, or a bug)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get(self, entry_id: str) -> TodoEntry:
        raise self.error


class ThreadedReads(InMemoryTodoRepository):
    """Reads by id run `seconds` in a thread, as Motor runs a database call: a cancelled caller does not stop them.

    `running` is how many run now, `most` the most that ran at once.
    """

    work_outlives_cancellation = True

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def _read(self) -> None:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1

    async def get(self, entry_id: str) -> TodoEntry:
        await asyncio.get_running_loop().run_in_executor(None, self._read)
        return await super().get(entry_id)


class ManualClock:
    """A stand-in for time.monotonic that moves only when a test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    @classmethod
    def patch(cls, monkeypatch: pytest.MonkeyPatch, target: str, now: float = 1000.0) -> ManualClock:
        """Install a clock at ``target`` (a dotted path to a module's ``time.monotonic``) for one test."""
        clock = cls(now)
        monkeypatch.setattr(target, clock)
        return clock
