"""What the process lifecycle needs from a store: readiness and an orderly close."""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    """A backing store as the lifecycle sees it (not as the use cases do)."""

    description: str

    async def check(self) -> bool:
        """True when the store answers and is ready for requests."""
        ...

    async def close(self) -> None:
        """Release connections; called once at shutdown."""
        ...
