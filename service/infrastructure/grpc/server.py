"""The gRPC server factory: the API (servicer under its call policy) and the settings in, a started server out."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2

from service.infrastructure.config import ServerSettings, Settings, TlsSettings
from service.infrastructure.grpc.health import HEALTH_SERVICE_NAME, NOT_SERVING, SERVING, HealthService
from service.infrastructure.grpc.reflection import enable_reflection
from service.infrastructure.grpc.todo_entry import SERVICE_NAME, TodoApi
from service.infrastructure.startup import StartupError
from todo.v1 import error_reason_pb2

# Health service names (grpc.health.v1):
# - LIVENESS: SERVING while the process serves RPCs at all, also while the
#   database is down (restarting a pod does not fix a database). Kubernetes
#   livenessProbe and startupProbe.
# - READINESS: SERVING only while the store answers and no shutdown has begun.
#   Kubernetes readinessProbe. "" (the whole server) and todo.v1.TodoService
#   follow it, as generic clients expect.
LIVENESS = "liveness"
READINESS = "readiness"
READINESS_NAMES = (READINESS, "", SERVICE_NAME)
HEALTH_NAMES = (LIVENESS, *READINESS_NAMES)


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started server, the port it bound and its health servicer (and the health listener, when on)."""

    server: grpc.aio.Server
    port: int
    health: HealthService
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None

    async def set_serving(self, serving: bool) -> None:
        """Report readiness (the liveness name is SERVING from the start)."""
        status = SERVING if serving else NOT_SERVING
        for name in READINESS_NAMES:
            await self.health.set(name, status)

    async def begin_shutdown(self) -> None:
        """Every health name NOT_SERVING from now on; RPCs are still served."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING everywhere, then stop; in-flight RPCs get `grace` seconds.

        The health listener answers (NOT_SERVING) until the main server has stopped.
        """
        await self.begin_shutdown()
        try:
            await self.server.stop(grace)
        finally:
            if self.health_server is not None:
                await self.health_server.stop(0)


async def start_server(api: TodoApi, settings: Settings) -> RunningServer:
    """Serve `api` on `settings.grpc_address`, with health and (when on) reflection; port 0 picks a free port.

    `api` is the servicer under the call policy the composition root built
    (authentication, admission, time limit). With `settings.health_address`, a
    second plaintext listener serves the same health statuses (grpc.health.v1
    only) there. Health answers NOT_SERVING until the caller calls
    `set_serving(True)`. The API's metrics count the open Watch streams.
    Raises StartupError when an address cannot be bound.
    """
    address = settings.grpc_address
    knobs = settings.server
    # No server-wide maximum_concurrent_rpcs: it would count health checks too.
    # TODO_MAX_CONCURRENT_RPCS caps todo.v1.TodoService only (grpc/admission.py).
    server = grpc.aio.server(options=server_options(knobs, reuse_port=settings.workers > 1))
    handlers = api.method_handlers()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    # Registered handlers skip the generic lookup per call (missing from grpc-stubs).
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]

    health_servicer = HealthService(
        HEALTH_NAMES,
        max_watches=knobs.max_health_watches,
        max_watches_per_peer=knobs.max_health_watches_per_peer,
        observer=api.metrics,
    )  # every name NOT_SERVING until set
    health_servicer.add_to(server)

    if settings.reflection:
        # error_reason.proto and google/rpc/error_details.proto are served too: no served file imports them,
        # and tools decode the details of errors (ErrorInfo, BadRequest, RetryInfo, QuotaFailure) with them.
        enable_reflection(
            (SERVICE_NAME, HEALTH_SERVICE_NAME),
            server,
            files=(error_reason_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR),
            guard=api.reflection_guard(),
            observer=api.observer,
        )
    # Last: consulted only for paths nothing else serves.
    server.add_generic_rpc_handlers((api.unknown_method_handler(),))

    credentials = None if settings.tls is None else server_credentials(settings.tls)
    port = _bind(server, address, credentials, "")
    health_server, health_port = None, None
    if settings.health_address:
        health_server = grpc.aio.server(options=server_options(knobs, reuse_port=settings.workers > 1))
        health_servicer.add_to(health_server)
        health_port = _bind(health_server, settings.health_address, None, " (health)")
        await health_server.start()
    await server.start()
    await health_servicer.set(LIVENESS, SERVING)
    return RunningServer(
        server=server, port=port, health=health_servicer, health_server=health_server, health_port=health_port
    )


def _bind(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None, what: str) -> int:
    """The port `server` bound at `address` (TLS with `credentials`); StartupError when it cannot."""
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as error:
        raise StartupError(f"cannot listen on {address}{what}: {error}") from None
    if port == 0:
        raise StartupError(f"cannot listen on {address}{what}")
    return port


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """TLS credentials; with a client CA, a client certificate it signed is required (mTLS)."""
    with open(tls.cert_file, "rb") as cert, open(tls.key_file, "rb") as key:
        pair = (key.read(), cert.read())
    client_ca = None
    if tls.client_ca_file is not None:
        with open(tls.client_ca_file, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def server_options(knobs: ServerSettings, reuse_port: bool) -> list[tuple[str, int]]:
    """Channel arguments of the server, from the configured knobs."""
    options = [
        # Share the port only when workers do, never with a stray process.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", knobs.max_receive_message_bytes),
        ("grpc.max_send_message_length", knobs.max_send_message_bytes),
        # Ping idle clients so dead connections are noticed; accept clients'
        # keepalive pings down to every 10 s.
        ("grpc.keepalive_time_ms", int(knobs.keepalive_time_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(knobs.keepalive_timeout_seconds * 1000)),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Calls open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): a
        # connection cannot make the server hold more; a compliant client queues the rest at
        # no cost to the server. Small on purpose: it bounds how long a call waits behind a
        # flood on other connections (see docs/overload.md).
        ("grpc.max_concurrent_streams", knobs.max_concurrent_streams),
        # gRPC core's default: streams over the limit (counting streams whose calls Python has
        # not released yet) are refused with RST_STREAM(REFUSED_STREAM) before a call exists,
        # about a seventh of the CPU a served call costs; clients retry them once on their own.
        # It is also the guard against reset-and-reopen floods (CVE-2023-44487).
        ("grpc.http.overload_protection", 1 if knobs.overload_protection else 0),
    ]
    if knobs.max_connection_age_seconds > 0:
        # Long-lived HTTP/2 connections are closed (with GOAWAY) after this
        # age, so clients reconnect and spread over new pods.
        options += [
            ("grpc.max_connection_age_ms", int(knobs.max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(knobs.max_connection_age_grace_seconds * 1000)),
        ]
    return options
