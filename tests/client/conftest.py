"""A real server on a loopback port and a TodoClient connected to it.

`server` runs on the in-memory store; a test parametrized with
`@pytest.mark.parametrize("store_kind", STORE_KINDS)` runs on every store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.infrastructure.grpc.server import RunningServer
from tests.support.process import free_port
from tests.support.servers import FAST_RETRY
from tests.support.stores import serving
from todo_client import TodoClient


@pytest.fixture
def store_kind() -> str:
    return "memory"


@pytest.fixture
async def server(store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    async with serving(store_kind, request) as running:
        yield running


@pytest.fixture
def target(server: RunningServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
async def client(target: str) -> AsyncIterator[TodoClient]:
    async with TodoClient.connect(target, retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return free_port()
