"""Client-side overload control: what a cooperating caller does so that an overloaded service keeps its goodput.

Past its capacity the service refuses work where refusing is cheap (gRPC core
refuses streams over its per-connection limit before a call exists) and
answers UNAVAILABLE; a refusal still costs the server something, and a call
that waited in a queue until its caller gave up costs it a whole call. Two
mechanisms keep this client's share of that waste near zero:

- **A stream budget per connection** (`ConnectionSlots`). The client opens
  `connections` connections (channels) and keeps at most
  `streams_per_connection` calls in flight on each, below the server's own
  per-connection limit (TODO_MAX_CONCURRENT_STREAMS). A call that finds every
  slot taken waits for one in the client, for at most `max_queue_seconds`
  (and never more than `max_queue_fraction` of its own deadline), then fails
  at once with `ThrottledError`. Without this budget the excess would wait in
  gRPC's own per-connection queue until its deadline and reach the server
  with no time left.
- **Adaptive throttling** (`AdaptiveThrottle`, the Google SRE book's
  "Handling Overload"): over the last `throttle_window_seconds` the client
  counts the calls that ended (`requests`: accepted, refused by the service,
  or refused by the throttle itself; not those the stream budget turned away,
  which say nothing of the service) and those the service accepted (`accepts`: every outcome
  except UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED), and refuses
  a new call locally with probability
  max(0, (requests - K * accepts) / (requests + padding)), once at least
  `throttle_min_requests` calls ended in the window (a client that makes a
  few calls is no load to shed, and one failure among them says little).
  With K = 2 the client sends at most about twice what the service has been
  accepting.

A call refused by either mechanism never left the client: it raises
`ThrottledError` (an `UnavailableError`), safe to repeat later for every method.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from dataclasses import dataclass

import grpc

# Outcomes that say "the service did not take the call" (overload, quota, or a queue too long for the deadline).
REJECTED_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


@dataclass(frozen=True, slots=True)
class OverloadPolicy:
    """How this client keeps its load off an overloaded service (see the module's docstring).

    `streams_per_connection` stays at half the server's TODO_MAX_CONCURRENT_STREAMS
    (16 by default): gRPC core counts a stream against that limit until the
    server's Python code has let go of its call, a little after the answer, so
    a connection kept at the limit has some of its streams refused (measured:
    none at 8 of 16, a quarter at 16 of 16). `connections` x
    `streams_per_connection` calls (64) can be in flight at once per replica
    before calls wait in the client. `throttle_ratio` 0 turns adaptive
    throttling off.
    """

    connections: int = 8
    streams_per_connection: int = 8
    max_queue_seconds: float = 0.1
    max_queue_fraction: float = 0.5
    throttle_ratio: float = 2.0
    throttle_window_seconds: float = 10.0
    throttle_padding: int = 8
    throttle_min_requests: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 64:
            raise ValueError(f"connections must be 1 to 64, not {self.connections}")
        if not 1 <= self.streams_per_connection <= 65_536:
            raise ValueError("streams_per_connection must be 1 to 65536")
        if self.max_queue_seconds < 0 or not 0 <= self.max_queue_fraction <= 1:
            raise ValueError("need max_queue_seconds >= 0 and 0 <= max_queue_fraction <= 1")
        if self.throttle_ratio != 0 and self.throttle_ratio < 1:
            raise ValueError("throttle_ratio must be 0 (off) or at least 1")
        if self.throttle_window_seconds <= 0 or self.throttle_padding < 0 or self.throttle_min_requests < 0:
            raise ValueError("need throttle_window_seconds > 0, throttle_padding >= 0 and throttle_min_requests >= 0")


DEFAULT_OVERLOAD_POLICY = OverloadPolicy()


class AdaptiveThrottle:
    """Client-side adaptive throttling over a sliding window of `bins` time bins. One event loop, no locks.

    As grpc-go's (RLS) throttler counts: `requests` are the calls that ended,
    accepted or not, plus those refused here; a call still in flight is not
    counted yet, so a new client starts with nothing to hold against the service.
    """

    __slots__ = (
        "_accepts",
        "_bin_seconds",
        "_current",
        "_minimum",
        "_padding",
        "_ratio",
        "_refusals",
        "_started",
        "rejected",
    )

    def __init__(self, ratio: float, window_seconds: float, padding: int, minimum: int = 0, bins: int = 20) -> None:
        self._ratio = ratio
        self._padding = padding
        self._minimum = minimum
        self._bin_seconds = window_seconds / bins
        self._accepts = [0] * bins
        self._refusals = [0] * bins  # refused by the service, or here
        self._started = time.monotonic()
        self._current = 0  # the absolute number of the newest bin
        self.rejected = 0  # calls refused here so far

    def _bin(self) -> int:
        """The index of the current bin; bins that fell out of the window are zeroed on the way."""
        now = math.floor((time.monotonic() - self._started) / self._bin_seconds)
        bins = len(self._accepts)
        if now != self._current:
            for absolute in range(max(self._current + 1, now - bins + 1), now + 1):
                self._accepts[absolute % bins] = 0
                self._refusals[absolute % bins] = 0
            self._current = now
        return now % bins

    def probability(self) -> float:
        """The chance that a call made now is refused here."""
        self._bin()
        accepts = sum(self._accepts)
        requests = accepts + sum(self._refusals)
        if requests < self._minimum:
            return 0.0
        return max(0.0, (requests - self._ratio * accepts) / (requests + self._padding))

    def allow(self) -> bool:
        """False when this call is to be refused here (and counts it as refused)."""
        if random.random() >= self.probability():  # noqa: S311 (not cryptography)
            return True
        self._refusals[self._current % len(self._refusals)] += 1
        self.rejected += 1
        return False

    def accepted(self) -> None:
        self._accepts[self._bin()] += 1

    def refused(self) -> None:
        """The service turned the call away (or it ran out of time waiting)."""
        self._refusals[self._bin()] += 1


class ConnectionSlots:
    """At most `per_connection` calls in flight on each of `connections` channels; a FIFO wait for a slot.

    `take()` returns the next channel in turn that has a free slot, at once;
    otherwise `wait(seconds)` waits for a slot to be given back. One event loop.
    """

    __slots__ = ("_in_flight", "_next", "_per_connection", "_waiters")

    def __init__(self, connections: int, per_connection: int) -> None:
        self._in_flight = [0] * connections
        self._next = 0
        self._per_connection = per_connection
        self._waiters: deque[asyncio.Future[int]] = deque()

    def take(self) -> int | None:
        """A channel with a free slot (now held by the caller), or None; the channels are tried in turn."""
        if self._waiters:
            return None
        in_flight, limit, count = self._in_flight, self._per_connection, len(self._in_flight)
        start = self._next
        for step in range(count):
            index = (start + step) % count
            if in_flight[index] < limit:
                in_flight[index] += 1
                self._next = (index + 1) % count
                return index
        return None

    async def wait(self, seconds: float) -> int | None:
        """A slot given back within `seconds` (now held by the caller), or None."""
        if seconds <= 0:
            return None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(seconds, waiter.cancel)
        try:
            return await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():  # a slot came, but this caller is being cancelled: pass it on
                self.give_back(waiter.result())
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return None  # the timer ended the wait
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
            if waiter.cancelled():  # never handed a slot, so still queued (a handed one was popped already);
                with contextlib.suppress(ValueError):  # the oldest waiters time out first: found near the front
                    self._waiters.remove(waiter)

    def give_back(self, index: int) -> None:
        """The call on channel `index` ended: hand its slot to the first waiter, else free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(index)
                return
        self._in_flight[index] -= 1

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight)
