"""grpc.health.v1.Health: the statuses of a fixed set of names, with Watch streams capped per peer and in total.

The service serves health itself, over raw bytes, instead of grpc_health's
servicer, because a health request reaches the server before any
authentication and so must cost nothing it can grow:

- a request is refused unparsed above `max_request_bytes` (1 KiB; a service
  name is a few dozen bytes): before, a Watch for a 4 MiB name kept the name
  (and grpc_health's per-name state) for the life of the stream, about
  14 MiB of server memory each;
- a name is looked up in the fixed set of names the server reports on before
  anything is kept: `Check` of another name is NOT_FOUND
  (HEALTH_SERVICE_UNKNOWN), and a `Watch` of one is answered SERVICE_UNKNOWN
  once, as the protocol asks, and then held without keeping the name;
- Watch streams are capped per peer address (`max_watches_per_peer`) as well
  as in total (`max_watches`): one client holding the total would otherwise
  make every client that health-checks this replica (gRFC A17) see it as
  unhealthy. A refusal is RESOURCE_EXHAUSTED (WATCH_LIMIT_REACHED, with the
  scope), counted in todo_overload_refused_total{point="health_watch"}.

`Check` is never capped. Refusals go through `abort_quietly`, which leaves
no reference cycle holding the call (see handlers.py).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from typing import Any, Protocol, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2

from service.infrastructure.grpc.errors import ErrorReason, limit_status, malformed_request_status, rich_status
from service.infrastructure.grpc.handlers import abort_quietly, peer_host

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
MAX_REQUEST_BYTES = 1024
WATCH_POINT = "health_watch"

ServingStatus: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus.ValueType
Context = grpc.aio.ServicerContext[Any, Any]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
_RESPONSES = {
    status: health_pb2.HealthCheckResponse(status=status).SerializeToString()
    for status in health_pb2.HealthCheckResponse.ServingStatus.values()
}


class WatchObserver(Protocol):
    """Where open Watch streams and refused ones are reported (the metrics)."""

    def health_watch_opened(self) -> None: ...

    def health_watch_closed(self) -> None: ...

    def overload_refused(self, point: str, reason: str = ...) -> None: ...


def _too_large() -> grpc.Status:
    return limit_status(
        ErrorReason.REQUEST_TOO_LARGE, f"a health request is at most {MAX_REQUEST_BYTES} bytes", MAX_REQUEST_BYTES
    )


def _unknown(name: str) -> grpc.Status:
    return _unknown_clipped(name[:64])


@functools.lru_cache(maxsize=256)  # a Check needs no token: an unknown name is not worth a new status each time
def _unknown_clipped(name: str) -> grpc.Status:
    return rich_status(ErrorReason.HEALTH_SERVICE_UNKNOWN, "unknown service name", metadata={"service": name})


@functools.cache  # two scopes and the configured limits
def _watch_limit(scope: str, limit: int) -> grpc.Status:
    whom = "your address holds" if scope == "peer" else "the server holds"
    return rich_status(
        ErrorReason.WATCH_LIMIT_REACHED,
        f"{whom} {limit} health Watch streams already; use Check, or close a stream",
        metadata={"scope": scope, "limit": str(limit)},
    )


class HealthService:
    """The statuses of `names` (all NOT_SERVING at first) and their Check and Watch handlers."""

    def __init__(
        self,
        names: Iterable[str],
        *,
        max_watches: int = 0,
        max_watches_per_peer: int = 0,
        observer: WatchObserver | None = None,
    ) -> None:
        self._statuses: dict[str, ServingStatus] = dict.fromkeys(names, NOT_SERVING)
        self._changed = asyncio.Event()
        self._shutting_down = False
        self._max_watches = max_watches
        self._max_per_peer = max_watches_per_peer
        self._observer = observer
        self._watches = 0
        self._by_peer: dict[str, int] = {}

    @property
    def open_watches(self) -> int:
        return self._watches

    async def set(self, name: str, status: ServingStatus) -> None:
        """Set the status of a known name (ignored once graceful shutdown began)."""
        if name not in self._statuses:
            raise KeyError(f"{name!r} is not a health name of this server")
        if self._shutting_down or self._statuses[name] == status:
            return
        self._statuses[name] = status
        self._notify()

    async def enter_graceful_shutdown(self) -> None:
        """Every name NOT_SERVING from now on; later `set` calls are ignored."""
        self._shutting_down = True
        for name in self._statuses:
            self._statuses[name] = NOT_SERVING
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _parse(self, raw: bytes) -> str | grpc.Status:
        """The requested name, or the status refusing the request."""
        if len(raw) > MAX_REQUEST_BYTES:
            return _too_large()
        try:
            name: str = health_pb2.HealthCheckRequest.FromString(raw).service
        except DecodeError:
            return malformed_request_status()
        return name

    async def check(self, raw: bytes, context: Context) -> bytes:
        name = self._parse(raw)
        if not isinstance(name, str):
            await abort_quietly(context, name)
            return b""
        status = self._statuses.get(name)
        if status is None:
            await abort_quietly(context, _unknown(name))
            return b""
        response: bytes = _RESPONSES[status]
        return response

    def _refusal(self, peer: str) -> grpc.Status | None:
        if self._max_per_peer and self._by_peer.get(peer, 0) >= self._max_per_peer:
            return _watch_limit("peer", self._max_per_peer)
        if self._max_watches and self._watches >= self._max_watches:
            return _watch_limit("server", self._max_watches)
        return None

    async def watch(self, raw: bytes, context: Context) -> None:
        name = self._parse(raw)
        if not isinstance(name, str):
            await abort_quietly(context, name)
            return
        peer = peer_host(context.peer())
        refusal = self._refusal(peer)
        if refusal is not None:
            if self._observer is not None:
                self._observer.overload_refused(WATCH_POINT, "WATCH_LIMIT_REACHED")
            await abort_quietly(context, refusal)
            return
        known = name in self._statuses
        del raw
        if not known:
            name = ""  # never kept: the stream is answered SERVICE_UNKNOWN and held
        self._watches += 1
        self._by_peer[peer] = self._by_peer.get(peer, 0) + 1
        if self._observer is not None:
            self._observer.health_watch_opened()
        try:
            last: ServingStatus | None = None
            while True:
                changed = self._changed
                status = self._statuses[name] if known else SERVICE_UNKNOWN
                if status != last:
                    await context.write(_RESPONSES[status])
                    last = status
                await changed.wait()
        except asyncio.CancelledError as error:
            error.__traceback__ = None  # see handlers._forget: no cycle may keep the call
            raise
        finally:
            self._watches -= 1
            left = self._by_peer[peer] - 1
            if left:
                self._by_peer[peer] = left
            else:
                del self._by_peer[peer]
            if self._observer is not None:
                self._observer.health_watch_closed()

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        return {
            "Check": grpc.unary_unary_rpc_method_handler(self.check),
            "Watch": grpc.unary_stream_rpc_method_handler(self.watch),
        }

    def add_to(self, server: grpc.aio.Server) -> None:
        """Serve grpc.health.v1.Health on `server` (several servers may share one HealthService)."""
        handlers = self.method_handlers()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(HEALTH_SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(HEALTH_SERVICE_NAME, handlers)  # type: ignore[attr-defined]
