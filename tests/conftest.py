"""Fixtures shared by every suite."""

from __future__ import annotations

import gc
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.infrastructure.observability.logs import configure_logging
from tests.support.fakes import FakeClock, SequentialIds
from tests.support.logs import CapturedLog, preserved_logging
from tests.support.mongo_server import MongoServer, describe, temporary_ferretdb
from tests.support.process import installed_tool, refuse_in_fast_mode


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
    config.addinivalue_line(
        "markers",
        "process: runs the service or a pinned tool as a process of its own (not in `make test-fast`)",
    )
    config.addinivalue_line(
        "markers",
        "mongo: needs the MongoDB-wire test server (not in `make test-fast`; marked by the hook below)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `mongo` every test that asks for the MongoDB-wire server or runs on a MongoDB store kind."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        kinds = callspec.params.values() if callspec is not None else ()
        if "mongo_server" in getattr(item, "fixturenames", ()) or any(
            isinstance(kind, str) and kind.startswith("mongo-") for kind in kinds
        ):
            item.add_marker(pytest.mark.mongo)


@pytest.fixture(scope="module")
def health_probe() -> Path:
    """The project's pinned grpc-health-probe (TODO_GRPC_HEALTH_PROBE overrides)."""
    return Path(installed_tool("grpc-health-probe", "TODO_GRPC_HEALTH_PROBE"))


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    """The session's MongoDB-wire server (see tests/support/mongo_server.py)."""
    refuse_in_fast_mode("the MongoDB-wire test server")
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


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log line (DEBUG and up) as the service writes it in JSON, captured."""
    stream = CapturedLog()
    with preserved_logging():
        configure_logging(logging.DEBUG, "json", stream)
        yield stream


@pytest.fixture
def no_garbage_collection() -> Iterator[None]:
    """What a busy server may see between two collections: nothing collected while the test runs.

    A refusal that left its call in a reference cycle would keep the HTTP/2 stream until the next
    collection; with overload protection a connection then refuses every new stream (handlers.py).
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
