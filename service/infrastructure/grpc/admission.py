"""Admission control for the application service: a cap on RPCs in progress.

gRPC's own `maximum_concurrent_rpcs` counts every RPC of the server, health
checks and health Watch streams included, so a burst of application calls
(or a few idle Watch streams) would make the kubelet's liveness probe fail;
on the pinned grpcio it also stops counting after refusals (its count goes
negative: grpc/grpc#41531). This cap applies to todo.v1.TodoService only: a
call over it is refused at once, before its request is parsed, with
UNAVAILABLE, the reason CONCURRENCY_LIMIT_REACHED, a RetryInfo and gRPC's
`grpc-retry-pushback-ms` saying when to try again. Health and reflection are
never counted.

What it protects: calls that wait on something other than this process's CPU
(the database). A call only takes a slot once its whole request has arrived
(gRPC runs the handler then), and a refusal made here costs the server about
as much CPU as serving the call would (benchmarks: f of about 1 with the
in-memory store), so it is no shield against a CPU flood: gRPC core's
per-connection stream limit and overload protection are (see docs/overload.md).
With the in-memory store a handler never waits, so the cap is
never reached.

The first refusal after a quiet spell logs one WARNING line ("shedding"), and
the first admitted call after `QUIET_SECONDS` without a refusal logs one INFO
line with the count: at most one pair per quiet spell, however hard the flood.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

QUIET_SECONDS = 5.0
POINT = "admission"
_log = logging.getLogger("service.overload")


class RefusalCounter(Protocol):
    """Where refusals are counted (the metrics)."""

    def overload_refused(self, point: str, reason: str = ...) -> None: ...


class Admission:
    """At most `limit` calls at once. Not thread-safe: one event loop."""

    __slots__ = (
        "_counter",
        "_in_flight",
        "_last_refusal",
        "_refused_since",
        "_shedding",
        "limit",
        "retry_after_seconds",
    )

    def __init__(self, limit: int, retry_after_seconds: float = 0.1, counter: RefusalCounter | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be positive (no limit: no Admission)")
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self._counter = counter
        self._in_flight = 0
        self._shedding = False
        self._last_refusal = 0.0
        self._refused_since = 0  # refusals since shedding began

    def try_enter(self) -> bool:
        """Take a slot; False when every slot is taken (the refusal is counted)."""
        if self._in_flight >= self.limit:
            self._refuse()
            return False
        self._in_flight += 1
        if self._shedding:
            self._maybe_quiet()
        return True

    def leave(self) -> None:
        self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _refuse(self) -> None:
        if self._counter is not None:
            self._counter.overload_refused(POINT)
        self._last_refusal = time.monotonic()
        self._refused_since += 1
        if not self._shedding:
            self._shedding = True
            _log.warning(
                "overload: shedding started: %d todo.v1.TodoService calls in progress (TODO_MAX_CONCURRENT_RPCS); "
                "new calls are refused with UNAVAILABLE (CONCURRENCY_LIMIT_REACHED)",
                self.limit,
            )

    def _maybe_quiet(self) -> None:
        if time.monotonic() - self._last_refusal >= QUIET_SECONDS:
            _log.info(
                "overload: shedding stopped: %d calls refused, none in the last %.0f s",
                self._refused_since,
                QUIET_SECONDS,
            )
            self._shedding = False
            self._refused_since = 0
