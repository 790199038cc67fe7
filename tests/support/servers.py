"""In-process test servers for the client tests: the real servicer behind interceptors, TLS or a gated store.

`FAST_RETRY` is the client's default retry shape with short backoffs, so the retry tests are quick.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc
from grpc_health.v1 import _async as health_aio  # public name: grpc_health.v1.health.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.bootstrap import bootstrap
from service.domain.repository import TodoRepository
from service.infrastructure.config import Settings
from service.infrastructure.grpc.todo_entry import SERVICE_NAME
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from todo_client import RetryPolicy

# Short backoffs keep the retry tests quick; the shape is the default's.
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05)

Context = grpc.aio.ServicerContext[bytes, bytes]
Behaviour = Callable[[bytes, Context], Awaitable[bytes]]

if TYPE_CHECKING:
    ServerInterceptor = grpc.aio.ServerInterceptor[bytes, bytes]
else:  # not subscriptable at run time
    ServerInterceptor = grpc.aio.ServerInterceptor


@dataclass(frozen=True)
class Fault:
    """End an attempt with `code`: the first `times` attempts (None: every attempt).

    `after_handler`: run the real handler first, as if the change happened and
    the response was lost on the way back. `trailers`: trailing metadata to add
    (for instance a grpc-status-details-bin, whose message must then be the
    status message: `message`, by default "injected <CODE> on attempt <n>").
    """

    code: grpc.StatusCode
    times: int | None = None
    after_handler: bool = False
    trailers: tuple[tuple[str, str | bytes], ...] = ()
    message: str | None = None


class FaultInjector(ServerInterceptor):
    """Counts the attempts of each method, records their metadata and injects faults."""

    def __init__(self, faults: dict[str, Fault] | None = None) -> None:
        self.faults = faults or {}
        self.attempts: Counter[str] = Counter()
        self.metadata: list[dict[str, str | bytes]] = []

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[bytes, bytes]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[bytes, bytes]:
        if not handler_call_details.method.startswith(f"/{SERVICE_NAME}/"):
            return await continuation(handler_call_details)  # health checks of the balancer: not counted
        method = handler_call_details.method.rsplit("/", 1)[-1]
        self.attempts[method] += 1
        self.metadata.append(dict(handler_call_details.invocation_metadata))
        handler = await continuation(handler_call_details)
        fault = self.faults.get(method)
        if fault is None or (fault.times is not None and self.attempts[method] > fault.times):
            return handler
        inner = cast(Behaviour, handler.unary_unary)
        attempt = self.attempts[method]

        async def fail(request: bytes, context: Context) -> bytes:
            if fault.after_handler:
                await inner(request, context)
            message = fault.message or f"injected {fault.code.name} on attempt {attempt}"
            await context.abort(fault.code, message, fault.trailers)

        return grpc.unary_unary_rpc_method_handler(fail)


@asynccontextmanager
async def todo_server(
    *,
    interceptors: tuple[ServerInterceptor, ...] = (),
    credentials: grpc.ServerCredentials | None = None,
    repository: TodoRepository | None = None,
) -> AsyncIterator[int]:
    """The real TodoServicer on the in-memory store, on a loopback port (yielded)."""
    api = bootstrap(Settings(grpc_address="127.0.0.1:0"), repository=repository or InMemoryTodoRepository()).api
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, api.method_handlers()),))
    # The health the client's balancer watches (healthCheckConfig: readiness), as the real server serves it.
    health = health_aio.HealthServicer()  # the aio servicer: the sync one's Watch would block the event loop
    await health.set("readiness", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0.5)
