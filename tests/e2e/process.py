"""Run the service as its own process and find the port it bound."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_SERVING = re.compile(r"serving todo\.v1\.TodoService on (?P<host>\S+):(?P<port>\d+)")


class ServiceProcess:
    """`python -m <module>` with TODO_* settings; stderr is collected."""

    def __init__(self, env: Mapping[str, str] | None = None, module: str = "service") -> None:
        full_env = {key: value for key, value in os.environ.items() if not key.startswith("TODO_")}
        full_env.update({"TODO_GRPC_ADDRESS": "127.0.0.1:0", "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env=full_env,
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
                if remaining <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r}; output so far:\n{''.join(self._lines)}")
                self._changed.wait(min(remaining, 0.1))

    def wait_serving(self, timeout: float = 30.0, ready: bool = True) -> str:
        """The address `host:port` the service listens on (once ready, by default)."""
        match = self.wait_for(_SERVING.pattern, timeout)
        if ready:
            self.wait_for(r"readiness: SERVING", timeout)
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
            raise AssertionError(f"the service did not exit in {timeout}s; output:\n{self.output}") from None
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()
