"""An in-process server on a loopback port, driven over a real channel.

The `server` fixture runs every end-to-end test once per store kind: the
in-memory store and MongoDB through Motor and through PyMongo's async client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from service.container import build_container
from service.infrastructure.grpc.server import RunningServer, start_server
from service.infrastructure.persistence.store import Store
from tests.stores import STORE_KINDS, cleaned_up, ready, settings_for
from todo.v1 import todo_service_pb2_grpc as pb_grpc


@pytest.fixture(params=STORE_KINDS)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    settings = settings_for(request.param, request)
    container = build_container(settings)
    store: Store = container.resolve(Store)
    async with cleaned_up(settings, store):
        await ready(store)
        running = await start_server(container, settings.grpc_address)
        await running.set_serving(True)
        yield running
        await running.stop(0.5)


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.TodoServiceAsyncStub:
    return pb_grpc.TodoServiceStub(channel)
