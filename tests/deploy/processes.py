"""A process started from any argv (an installed image's ENTRYPOINT), its stderr collected line by line.

tests/e2e/process.py's ServiceProcess runs `sys.executable -m service` from
the repository; the image tests need another interpreter and working directory.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

SERVING = re.compile(r"serving todo\.v1\.TodoService on (?P<host>\S+):(?P<port>\d+)")
READY = r"readiness: SERVING"


class LoggedProcess:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
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
        """The first stderr line matching `pattern`; fails when the process exits first."""
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

    def wait_serving(self, ready: bool = True) -> str:
        """`host:port` of the gRPC server, once ready (by default)."""
        match = self.wait_for(SERVING.pattern)
        if ready:
            self.wait_for(READY)
        return f"{match['host']}:{match['port']}"

    def terminate(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
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

    def __enter__(self) -> LoggedProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()
