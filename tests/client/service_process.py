"""The service as a separate process on a loopback port, for callers that are not this interpreter.

The fresh-environment wheel test and the Go client run in processes of their
own, so they need the service outside this one: `python -m service` on the
in-memory store, bound to 127.0.0.1:0 (the port it reports is read from its log).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.process import REPO, ServiceProcess


@contextmanager
def running_service() -> Iterator[str]:
    """`host:port` of a started, ready service; terminated (SIGTERM, exit 0) afterwards."""
    with ServiceProcess() as process:
        address = process.wait_serving()
        yield address
        assert process.terminate() == 0, process.output


def tool(variable: str, default: Path, how: str) -> Path:
    """A binary the project installs: from `variable`, else `default`; fails saying how to provide it."""
    path = Path(os.environ.get(variable, str(default)))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing: {how}, or point {variable} at one")
    return path


def uv_binary() -> Path:
    return tool("TODO_UV", REPO / ".tools" / "uv" / "bin" / "uv", "run `make install` (it installs the pinned uv)")
