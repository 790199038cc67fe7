"""A MongoDB-wire server for the tests, provided by the project itself.

- TODO_TEST_MONGODB_URI set: that server is used (a real MongoDB, say).
- Otherwise the FerretDB program in tools/ferretdb (FerretDB v1.24.2 embedded,
  SQLite backend) is built with Go (cached in .tools/bin, rebuilt when its
  sources change) and started on a free 127.0.0.1 port with a temporary state
  directory, and stopped at the end.
There is no silent skip: when neither works, the run fails and says how to
provide a server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
import pytest

from tests.support import REPO

FERRETDB_SOURCE = REPO / "tools" / "ferretdb"
FERRETDB_BINARY = Path(os.environ.get("TODO_TEST_FERRETDB", REPO / ".tools" / "bin" / "todo-ferretdb"))
HOW_TO_PROVIDE = (
    "set TODO_TEST_MONGODB_URI=mongodb://HOST:PORT to use a running MongoDB, or install Go >= 1.24 "
    "so that the harness can build the FerretDB test server from tools/ferretdb (`make tools` builds it)"
)


def _sources_newer_than(binary: Path) -> bool:
    built = binary.stat().st_mtime
    return any(
        path.stat().st_mtime > built for path in FERRETDB_SOURCE.iterdir() if path.suffix in {".go", ".mod", ".sum"}
    )


def ferretdb_binary() -> Path:
    """The FerretDB test server, built first when missing or stale."""
    if FERRETDB_BINARY.is_file() and not _sources_newer_than(FERRETDB_BINARY):
        return FERRETDB_BINARY
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"no MongoDB-wire server for the tests and no Go to build one: {HOW_TO_PROVIDE}")
    FERRETDB_BINARY.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "build", "-o", str(FERRETDB_BINARY), "."],
        cwd=FERRETDB_SOURCE,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"building the FerretDB test server failed:\n{result.stderr}\n{HOW_TO_PROVIDE}")
    return FERRETDB_BINARY


@dataclass
class FerretDB:
    """One FerretDB process on loopback; `restart()` brings it back on the same port and data."""

    state_dir: Path
    port: int = 0
    process: subprocess.Popen[str] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> FerretDB:
        binary = ferretdb_binary()
        self.process = subprocess.Popen(
            [
                str(binary),
                "-listen-addr",
                f"127.0.0.1:{self.port}",
                "-state-dir",
                str(self.state_dir),
                "-log-level",
                "error",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        # "ready mongodb://127.0.0.1:PORT/" once it answers a ping; the program
        # gives up (and closes stdout) after 30 s without one.
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.stop()
            pytest.fail(f"the FerretDB test server did not start: {line!r} {self._stderr()}\n{HOW_TO_PROVIDE}")
        self.port = int(line.split(":")[-1].strip().rstrip("/"))
        return self

    def _stderr(self) -> str:
        if self.process is None or self.process.stderr is None or self.process.poll() is None:
            return ""
        return self.process.stderr.read()

    def stop(self) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        return code


@dataclass(frozen=True)
class MongoServer:
    uri: str
    is_ferretdb: bool

    def database_name(self, prefix: str = "test") -> str:
        return f"{prefix}_{os.getpid()}_{time.monotonic_ns()}"


def describe(uri: str) -> MongoServer:
    """Ping the server and tell FerretDB from MongoDB (buildInfo)."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        info = client.admin.command("buildInfo")
    except pymongo.errors.PyMongoError as error:
        pytest.fail(f"the MongoDB-wire server at {uri} does not answer: {error}\n{HOW_TO_PROVIDE}")
    finally:
        client.close()
    return MongoServer(uri=uri, is_ferretdb="ferretdbVersion" in info or "ferretdbFeatures" in info)


def temporary_ferretdb() -> tuple[FerretDB, tempfile.TemporaryDirectory[str]]:
    directory = tempfile.TemporaryDirectory(prefix="todo-ferretdb-")
    return FerretDB(state_dir=Path(directory.name)).start(), directory


def skip_unless_atomic(request: pytest.FixtureRequest, server: MongoServer) -> None:
    """Tests marked needs_atomic_cas do not apply to FerretDB; say so, never silently."""
    if server.is_ferretdb and request.node.get_closest_marker("needs_atomic_cas") is not None:
        pytest.skip(
            "FerretDB v1 runs a conditional update as read-then-write, so concurrent compare-and-set "
            "writes can both succeed; set TODO_TEST_MONGODB_URI to a real MongoDB to run this test"
        )
