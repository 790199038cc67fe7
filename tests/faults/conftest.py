"""Fixtures of the fault scenarios: Toxiproxy, a proxy to the database, a database of the test's own."""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import FIGURES
from tests.support.mongo_server import FerretDB, MongoServer
from tests.support.toxiproxy import Proxy, Toxiproxy

_names = itertools.count(1)


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[Toxiproxy]:
    server = Toxiproxy()
    try:
        yield server
    finally:
        server.close()


def host_port(uri: str) -> str:
    match = re.fullmatch(r"mongodb://([^/?]+)/?(\?.*)?", uri)
    if match is None or "," in match[1]:
        pytest.fail(f"the fault scenarios need a single-host mongodb:// URI, not {uri!r}")
    return match[1]


@pytest.fixture
def db_proxy(toxiproxy: Toxiproxy, mongo_server: MongoServer) -> Iterator[Proxy]:
    """A proxy in front of the session's MongoDB-wire server, without toxics."""
    proxy = toxiproxy.proxy(f"db{next(_names)}", host_port(mongo_server.uri))
    try:
        yield proxy
    finally:
        toxiproxy.call("DELETE", f"/proxies/{proxy.name}")


@pytest.fixture
def own_database() -> Iterator[FerretDB]:
    """A FerretDB process of this test alone, which it may stop, kill and restart (same port, same data).

    Always the project's FerretDB, also when TODO_TEST_MONGODB_URI is set: a
    test cannot kill a server it did not start.
    """
    with tempfile.TemporaryDirectory(prefix="todo-faults-") as directory:
        database = FerretDB(state_dir=Path(directory)).start()
        try:
            yield database
        finally:
            database.stop()


@pytest.fixture
def own_proxy(toxiproxy: Toxiproxy, own_database: FerretDB) -> Iterator[Proxy]:
    """A proxy in front of `own_database`; it stays up while the database stops and starts."""
    proxy = toxiproxy.proxy(f"own{next(_names)}", f"127.0.0.1:{own_database.port}")
    try:
        yield proxy
    finally:
        toxiproxy.call("DELETE", f"/proxies/{proxy.name}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = FIGURES.lines()
    if lines:
        terminalreporter.section("fault scenarios: measured figures")
        for line in lines:
            terminalreporter.write_line(line)
