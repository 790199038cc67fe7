"""The in-memory store's lifecycle side: always ready, nothing to close."""

from __future__ import annotations


class InMemoryStore:
    description = "in-memory store (entries are lost when the process stops)"

    async def check(self) -> bool:
        return True

    async def close(self) -> None:
        return None
