"""`python -m tests.support.slow_service`: the real service whose GetTodo takes a while.

The process runs the real entry point (`service.main.main`) on an App built
with one fake (`bootstrap(settings, repository=SlowReads(...))`): reads wait
TODO_TEST_READ_DELAY seconds and announce themselves on stderr, so a test can
send SIGTERM while an RPC is provably in flight.
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


class SlowReads(InMemoryTodoRepository):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self._delay = delay

    async def get(self, entry_id: str) -> TodoEntry:
        print(f"slow read started: {entry_id}", file=sys.stderr, flush=True)
        await asyncio.sleep(self._delay)
        return await super().get(entry_id)


if __name__ == "__main__":
    delay = float(os.environ.get("TODO_TEST_READ_DELAY", "2"))
    sys.exit(main(functools.partial(bootstrap, repository=SlowReads(delay))))
