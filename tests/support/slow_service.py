"""`python -m tests.support.slow_service`: the real service whose GetTodo waits until the test lets it go.

(Or, with TODO_TEST_READ_SECONDS, whose every GetTodo takes that long: a database that answers slowly.)

The process runs the real entry point (`service.main.main`) on an App built
with one fake (`bootstrap(settings, repository=GatedFileReads(...))`): a read
announces itself on stderr ("slow read started: <id>"), then waits until the
test writes a line into the FIFO named by TODO_TEST_READ_GATE, so a test can
send SIGTERM while an RPC is provably in flight, and let it finish when it
chooses.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys

from service.bootstrap import bootstrap
from service.domain.todo_entry import TodoEntry
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from service.main import main


class GatedFileReads(InMemoryTodoRepository):
    """Reads by id wait for a line in the FIFO at `gate` (a thread waits, the event loop goes on)."""

    def __init__(self, gate: str) -> None:
        super().__init__()
        self._gate = gate

    def _wait_for_the_gate(self) -> None:
        with open(self._gate, encoding="utf-8") as fifo:  # blocks until the test opens it for writing
            fifo.readline()

    async def get(self, entry_id: str) -> TodoEntry:
        print(f"slow read started: {entry_id}", file=sys.stderr, flush=True)
        await asyncio.to_thread(self._wait_for_the_gate)
        return await super().get(entry_id)


def open_gate(gate: str) -> None:
    """Let the waiting reads go (the test's side of the FIFO; blocks until a read waits on it)."""
    with open(gate, "w", encoding="utf-8") as fifo:
        fifo.write("go\n")


class SleepingReads(InMemoryTodoRepository):
    """Reads by id take `seconds` (a database round trip that costs this process no CPU)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds

    async def get(self, entry_id: str) -> TodoEntry:
        await asyncio.sleep(self._seconds)
        return await super().get(entry_id)


if __name__ == "__main__":
    # TODO_TEST_READ_SECONDS: every read takes that long; else reads wait at the gate TODO_TEST_READ_GATE.
    seconds = os.environ.get("TODO_TEST_READ_SECONDS")
    reads = SleepingReads(float(seconds)) if seconds else GatedFileReads(os.environ["TODO_TEST_READ_GATE"])
    sys.exit(main(functools.partial(bootstrap, repository=reads)))
