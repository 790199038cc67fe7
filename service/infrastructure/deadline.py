"""The deadline of the RPC being served, for outbound calls to honour.

The gRPC layer records each RPC's deadline here (a context variable: every
RPC runs in its own task); adapters such as the MongoDB repository bound their
calls by what is left of it. Nothing above the infrastructure layer sees it.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("todo_rpc_deadline", default=None)


def set_deadline_in(seconds: float | None) -> None:
    """Record that the current RPC must be answered within `seconds` (None: no deadline)."""
    _deadline.set(None if seconds is None else time.monotonic() + seconds)


def time_left() -> float | None:
    """Seconds left before the current RPC's deadline, or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
