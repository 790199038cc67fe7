"""An in-process server on a loopback port, driven over a real channel.

The `server` fixture runs every end-to-end test once per store kind: the
in-memory store and MongoDB through Motor and through PyMongo's async client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from service.infrastructure.grpc.server import RunningServer
from tests.support.stores import STORE_KINDS, serving
from todo.v1 import todo_service_pb2_grpc as pb_grpc


@pytest.fixture(params=STORE_KINDS)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    async with serving(request.param, request) as running:
        yield running


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.TodoServiceAsyncStub:
    return pb_grpc.TodoServiceStub(channel)
