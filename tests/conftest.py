"""Fixtures shared by every suite."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.infrastructure.observability.logs import configure_logging
from tests.e2e.process import installed_tool
from tests.mongo_server import MongoServer, describe, temporary_ferretdb
from tests.support import FakeClock, SequentialIds, preserved_logging


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_atomic_cas: needs single-document atomic compare-and-set under concurrent writers, which "
        "MongoDB guarantees and FerretDB v1 does not (its conditional update is read-then-write)",
    )


@pytest.fixture(scope="module")
def health_probe() -> Path:
    """The project's pinned grpc-health-probe (TODO_GRPC_HEALTH_PROBE overrides)."""
    return Path(installed_tool("grpc-health-probe", "TODO_GRPC_HEALTH_PROBE"))


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    """The session's MongoDB-wire server (see tests/mongo_server.py)."""
    uri = os.environ.get("TODO_TEST_MONGODB_URI")
    if uri:
        yield describe(uri)
        return
    ferretdb, directory = temporary_ferretdb()
    try:
        yield describe(ferretdb.uri)
    finally:
        ferretdb.stop()
        directory.cleanup()


def skip_unless_atomic(request: pytest.FixtureRequest, server: MongoServer) -> None:
    """Tests marked needs_atomic_cas do not apply to FerretDB; say so, never silently."""
    if server.is_ferretdb and request.node.get_closest_marker("needs_atomic_cas") is not None:
        pytest.skip(
            "FerretDB v1 runs a conditional update as read-then-write, so concurrent compare-and-set "
            "writes can both succeed; set TODO_TEST_MONGODB_URI to a real MongoDB to run this test"
        )


class CapturedLog(io.StringIO):
    """A captured log stream whose value includes the access lines still buffered for the background writer."""

    def getvalue(self) -> str:
        for handler in logging.getLogger().handlers:
            handler.flush()
        return super().getvalue()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log line (DEBUG and up) as the service writes it in JSON, captured."""
    stream = CapturedLog()
    with preserved_logging():
        configure_logging(logging.DEBUG, "json", stream)
        yield stream
