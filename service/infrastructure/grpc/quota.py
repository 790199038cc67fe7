"""Quotas per principal: a share of the application slots, and an optional rate.

What the quota shares: the application's slots (TODO_MAX_CONCURRENT_RPCS,
the calls in progress that wait on the database), not gRPC core's CPU, which
the per-connection stream limit and overload protection guard (docs/overload.md).
A principal over its share is refused at once, before its request is parsed,
with RESOURCE_EXHAUSTED (QUOTA_EXCEEDED): a QuotaFailure names the quota and
the principal, a RetryInfo says when to try again. It is a limit of the
caller's own, not overload, so it is not retried by gRPC and does not count
against the availability objective; other principals keep their slots.

Every limit is per process: with TODO_WORKERS workers a principal may have
up to workers x its share in progress on one replica, and replicas x that in
all; its rate likewise. Not thread-safe: one event loop.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping

import grpc

from service.infrastructure.config.quotas import QuotaLimits
from service.infrastructure.grpc.admission import RefusalCounter
from service.infrastructure.grpc.errors import PUSHBACK_HEADER, ErrorReason, rich_status

POINT = "quota"
CONCURRENCY_RETRY_SECONDS = 0.1
_MAX_BUCKETS = 10_000


@functools.lru_cache(maxsize=1024)  # one per principal and kind: built once, not while a caller floods
def quota_status(principal: str, quota: str, limit: str, retry_after_seconds: float) -> grpc.Status:
    """RESOURCE_EXHAUSTED (QUOTA_EXCEEDED) with a QuotaFailure and a RetryInfo."""
    return rich_status(
        ErrorReason.QUOTA_EXCEEDED,
        f"principal {principal[:128]!r} is over its quota {quota} ({limit}); retry after {retry_after_seconds:g} s",
        metadata={"principal": principal[:128], "quota": quota, "limit": limit},
        quota_violations=((f"principal:{principal[:128]}", f"{quota}: {limit}"),),
        retry_after_seconds=retry_after_seconds,
    )


class Quotas:
    """Per principal: at most `max_concurrent_rpcs` calls in progress, and a token bucket of `rate_per_second`."""

    __slots__ = ("_buckets", "_counter", "_default", "_in_flight", "_overrides")

    def __init__(
        self,
        default: QuotaLimits,
        overrides: Mapping[str, QuotaLimits] | None = None,
        counter: RefusalCounter | None = None,
    ) -> None:
        self._default = default.with_burst()
        self._overrides = {name: limits.with_burst() for name, limits in (overrides or {}).items()}
        self._counter = counter
        self._in_flight: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # principal -> (tokens, at)

    def try_enter(self, principal: str) -> grpc.Status | None:
        """Take a slot of `principal`'s share (and a token of its rate); the refusal status when it cannot."""
        limits = self._overrides.get(principal, self._default)
        held = self._in_flight.get(principal, 0)
        if limits.max_concurrent_rpcs and held >= limits.max_concurrent_rpcs:
            return self._refuse(
                principal, "max_concurrent_rpcs", str(limits.max_concurrent_rpcs), CONCURRENCY_RETRY_SECONDS
            )
        if limits.rate_per_second:
            wait = self._take(principal, limits)
            if wait:
                return self._refuse(principal, "rate_per_second", f"{limits.rate_per_second:g}", wait)
        self._in_flight[principal] = held + 1
        return None

    def leave(self, principal: str) -> None:
        left = self._in_flight[principal] - 1
        if left:
            self._in_flight[principal] = left
        else:
            del self._in_flight[principal]

    def _take(self, principal: str, limits: QuotaLimits) -> float:
        """Take one token; 0 when taken, else the seconds until one is there (rounded up to 10 ms)."""
        now = time.monotonic()
        tokens, at = self._buckets.get(principal, (limits.burst, now))
        tokens = min(limits.burst, tokens + (now - at) * limits.rate_per_second)
        if tokens >= 1.0:
            if len(self._buckets) >= _MAX_BUCKETS and principal not in self._buckets:
                self._buckets.clear()  # every bucket refills to its burst when idle: forgetting them is safe enough
            self._buckets[principal] = (tokens - 1.0, now)
            return 0.0
        self._buckets[principal] = (tokens, now)
        return max(0.01, round((1.0 - tokens) / limits.rate_per_second, 2))

    def _refuse(self, principal: str, quota: str, limit: str, retry_after: float) -> grpc.Status:
        if self._counter is not None:
            self._counter.overload_refused(POINT, "QUOTA_EXCEEDED")
        return quota_status(principal, quota, limit, retry_after)


__all__ = ["PUSHBACK_HEADER", "QuotaLimits", "Quotas", "quota_status"]
