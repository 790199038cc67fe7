"""The service as a separate process on a loopback port, for callers that are not this interpreter.

The fresh-environment wheel test and the Go client run in processes of their
own, so they need the service outside this one: `python -m service` on the
in-memory store, bound to 127.0.0.1:0 (the port it reports is read from its log).
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.process import REPO, running_service, tool

__all__ = ["running_service", "tool", "uv_binary"]


def uv_binary() -> Path:
    return tool("TODO_UV", REPO / ".tools" / "uv" / "bin" / "uv", "run `make install` (it installs the pinned uv)")
