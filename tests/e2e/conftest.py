"""An in-process server on a loopback port, driven over a real channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from service.container import build_container
from service.infrastructure.config import Settings
from service.infrastructure.grpc.server import RunningServer, start_server
from todo.v1 import todo_service_pb2_grpc as pb_grpc


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    running = await start_server(build_container(Settings(grpc_address="127.0.0.1:0")), "127.0.0.1:0")
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
