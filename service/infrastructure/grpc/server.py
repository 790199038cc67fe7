"""The gRPC server factory: a container and an address in, a started server out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc
import punq
from grpc_health.v1 import _async as health_aio  # public name: grpc_health.v1.health.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.infrastructure.grpc.todo_entry import SERVICE_NAME, TodoServicer

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# The health names that report readiness: the whole server ("") and the API.
SERVED_HEALTH_NAMES = ("", SERVICE_NAME)


class HealthStatuses(Protocol):
    """The part of grpc_health's aio HealthServicer we use (it ships no types)."""

    async def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None: ...

    async def enter_graceful_shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started server, the port it bound and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: HealthStatuses

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in SERVED_HEALTH_NAMES:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING everywhere, then stop; in-flight RPCs get `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(container: punq.Container, address: str) -> RunningServer:
    """Build, bind and start the server. Binding port 0 picks a free port.

    Health answers NOT_SERVING until the caller calls `set_serving(True)`.
    Raises RuntimeError when the address cannot be bound.
    """
    server = grpc.aio.server(
        options=[
            # Refuse to share a port with another process by accident.
            ("grpc.so_reuseport", 0),
        ]
    )
    servicer: TodoServicer = container.resolve(TodoServicer)
    handlers = servicer.method_handlers()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    # Registered handlers skip the generic lookup per call (missing from grpc-stubs).
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]

    health_servicer: HealthStatuses = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in SERVED_HEALTH_NAMES:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    reflection.enable_server_reflection((SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server)

    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise RuntimeError(f"cannot listen on {address}: {error}") from None
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    await server.start()
    return RunningServer(server=server, port=port, health=health_servicer)
