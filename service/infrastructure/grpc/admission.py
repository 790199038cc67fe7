"""Admission control for the application service: a cap on RPCs in progress.

gRPC's own `maximum_concurrent_rpcs` counts every RPC of the server, health
checks and health Watch streams included, so a burst of application calls
(or a few idle Watch streams) would make the kubelet's liveness probe fail.
This cap applies to todo.v1.TodoService only: a call over it is refused at
once, before its request is parsed, with RESOURCE_EXHAUSTED, the reason
CONCURRENCY_LIMIT_REACHED and a RetryInfo saying when to try again. Health
and reflection are never counted.

A call only takes a slot once its whole request has arrived (gRPC runs the
handler then), so a caller that never finishes sending holds no slot; the
per-connection stream cap bounds what it holds inside gRPC.
"""

from __future__ import annotations


class Admission:
    """At most `limit` calls at once. Not thread-safe: one event loop."""

    __slots__ = ("_in_flight", "limit", "retry_after_seconds")

    def __init__(self, limit: int, retry_after_seconds: float = 0.1) -> None:
        if limit < 1:
            raise ValueError("limit must be positive (no limit: no Admission)")
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self._in_flight = 0

    def try_enter(self) -> bool:
        """Take a slot; False when every slot is taken."""
        if self._in_flight >= self.limit:
            return False
        self._in_flight += 1
        return True

    def leave(self) -> None:
        self._in_flight -= 1
