"""Processes under test: stderr collected line by line, waited on by pattern; the pinned tools; free ports.

`LoggedProcess` runs an argv (the base of `ServiceProcess`); `ServiceProcess`
runs `python -m service` (or another module) from the repository with TODO_*
settings and finds the port it bound; `running_service` is one that is ready,
for callers that are not this interpreter (the fresh-environment wheel, the Go
client). `installed_tool` finds a pinned tool (grpcurl, grpc-health-probe,
...), `grpcurl` runs grpcurl against an address.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pytest

from tests.support import REPO

SERVING = re.compile(r"serving todo\.v1\.TodoService on (?P<host>\S+):(?P<port>\d+)")
READY = r"readiness: SERVING"
HEALTH_LISTENER = re.compile(r"health listener: (?P<host>[^\s;]+):(?P<port>\d+)")
# The page-token secret of test services on MongoDB (required there); processes share it like replicas.
TEST_PAGE_TOKEN_SECRET = "tests-only-page-token-key-5b0e9d47c1"  # noqa: S105 (a throwaway test value)


# Set by `make test-fast`, which deselects the tests marked `process` and `mongo`:
# a test that starts a process or needs the MongoDB-wire server without its mark fails.
FAST_MODE = "TODO_TEST_FAST"


def refuse_in_fast_mode(what: str) -> None:
    """Fail a test that uses `what` in `make test-fast`: it lacks its `process` or `mongo` mark."""
    if os.environ.get(FAST_MODE):
        pytest.fail(f"this test uses {what}: mark it `process` (or `mongo`) so that `make test-fast` leaves it out")


class LoggedProcess:
    """A process whose stderr is collected; its stdout is discarded."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        refuse_in_fast_mode(f"a process ({argv[0]})")
        self.argv = list(argv)
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first stderr match of `pattern`; fails when the process exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                exited = self.process.poll() is not None and not self._reader.is_alive()
                if remaining <= 0 or exited:
                    status = f"exited with {self.process.returncode}" if exited else "still running"
                    raise AssertionError(
                        f"{self.argv}: no line matching {pattern!r} ({status}); output:\n{''.join(self._lines)}"
                    )
                self._changed.wait(min(remaining, 0.1))

    def wait_serving(self, timeout: float = 30.0, ready: bool = True) -> str:
        """The address `host:port` the service listens on (once ready, by default)."""
        match = self.wait_for(SERVING.pattern, timeout)
        if ready:
            self.wait_for(READY, timeout)
        return f"{match['host']}:{match['port']}"

    def wait_health_listener(self, timeout: float = 30.0) -> str:
        """The address `host:port` of the dedicated health listener (TODO_HEALTH_ADDRESS)."""
        match = self.wait_for(HEALTH_LISTENER.pattern, timeout)
        return f"{match['host']}:{match['port']}"

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.argv} did not exit in {timeout}s; output:\n{self.output}") from None
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


class ServiceProcess(LoggedProcess):
    """`python -m <module>` from the repository, with TODO_* settings from `env` only."""

    def __init__(self, env: Mapping[str, str] | None = None, module: str = "service") -> None:
        full_env = {key: value for key, value in os.environ.items() if not key.startswith("TODO_")}
        full_env.update({"TODO_GRPC_ADDRESS": "127.0.0.1:0", "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        uses_mongodb = "TODO_MONGODB_URI" in full_env or "TODO_MONGODB_URI_FILE" in full_env
        if uses_mongodb and not {"TODO_PAGE_TOKEN_SECRET", "TODO_PAGE_TOKEN_SECRET_FILE"} & set(full_env):
            full_env["TODO_PAGE_TOKEN_SECRET"] = TEST_PAGE_TOKEN_SECRET
        super().__init__([sys.executable, "-m", module], full_env, REPO)


@contextmanager
def running_service(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`host:port` of a started, ready service; terminated (SIGTERM, exit 0) afterwards."""
    with ServiceProcess(env) as process:
        address = process.wait_serving()
        yield address
        assert process.terminate() == 0, process.output


def tool(variable: str, default: Path, how: str) -> Path:
    """A binary the project installs: from `variable`, else `default`; fails saying how to provide it."""
    refuse_in_fast_mode(f"a pinned tool ({default.name})")
    path = Path(os.environ.get(variable, str(default)))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing: {how}, or point {variable} at one")
    return path


def installed_tool(name: str, variable: str) -> str:
    """A pinned tool `make tools` installs into .tools/bin (grpcurl, ghz, grpcui, kustomize, ...)."""
    return str(tool(variable, REPO / ".tools" / "bin" / name, "run `make tools` (make check does) to install it"))


def grpcurl_binary() -> str:
    """The project's pinned grpcurl (TODO_GRPCURL overrides)."""
    return installed_tool("grpcurl", "TODO_GRPCURL")


def grpcurl(address: str, *args: str, data: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """grpcurl in plaintext against `address`, with `data` as the JSON request body."""
    argv = [grpcurl_binary(), "-plaintext"]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    return subprocess.run([*argv, address, *args], capture_output=True, text=True, timeout=30, check=False)


def uv_binary() -> Path:
    """The pinned uv `make install` installs (TODO_UV overrides)."""
    return tool("TODO_UV", REPO / ".tools" / "uv" / "bin" / "uv", "run `make install` (it installs the pinned uv)")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")
