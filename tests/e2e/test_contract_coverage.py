"""Every RPC of the contract is served, wrapped by the typed client and documented.

The lists come from the service descriptor, so an RPC added to the proto and
forgotten in one of these places fails here, by name.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable

import grpc
import pytest
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor

from service.infrastructure.grpc.server import RunningServer
from tests.support.docs import page, section
from todo.v1 import todo_service_pb2 as pb
from todo_client import TodoClient
from todo_client.retry import IDEMPOTENCY_KEY_FIELD, RETRIED_METHODS

SERVICE = pb.DESCRIPTOR.services_by_name["TodoService"]
METHODS = list(SERVICE.methods)


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.fixture(scope="module")
def api_table() -> str:
    """The API table of docs/api.md (the rows under `## RPCs`)."""
    rpcs = section(page("docs/api.md"), "## RPCs")
    return "\n".join(line for line in rpcs.splitlines() if line.startswith("| `"))


async def _code(call: Awaitable[object]) -> grpc.StatusCode:
    """The status of a call (an empty request is mostly a client mistake: any code but UNIMPLEMENTED)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("server", ["memory"], indirect=True)
async def test_every_rpc_is_served(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for method in METHODS:
            request_type = message_factory.GetMessageClass(method.input_type)
            response_type = message_factory.GetMessageClass(method.output_type)
            call = channel.unary_unary(
                f"/{SERVICE.full_name}/{method.name}",
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )
            assert await _code(call(request_type(), timeout=10)) != grpc.StatusCode.UNIMPLEMENTED, method.full_name


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
def test_every_rpc_has_a_client_method(method: MethodDescriptor) -> None:
    assert callable(getattr(TodoClient, snake_case(method.name), None)), (
        f"TodoClient has no {snake_case(method.name)}() for {method.full_name}"
    )


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
def test_every_rpc_is_in_the_api_table(method: MethodDescriptor, api_table: str) -> None:
    assert f"`{method.name}{{" in api_table, f"the API table of docs/api.md has no row for {method.name}"


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
def test_every_rpc_declares_its_idempotency_and_the_client_follows_it(method: MethodDescriptor) -> None:
    level = method.GetOptions().idempotency_level
    assert method.GetOptions().HasField("idempotency_level"), f"{method.name} does not declare idempotency_level"
    safe = level in (descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS, descriptor_pb2.MethodOptions.IDEMPOTENT)
    keyed = IDEMPOTENCY_KEY_FIELD in method.input_type.fields_by_name
    assert (method.name in RETRIED_METHODS) == (safe or keyed)
