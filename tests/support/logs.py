"""Log lines in tests: the root logger restored afterwards, a capture that includes buffered access lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from service.infrastructure.observability.logs import request_id_var, trace_id_var


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level (and the RPC ids) afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        request_id_var.set(None)
        trace_id_var.set(None)


class CapturedLog(io.StringIO):
    """A captured log stream whose value includes the access lines still buffered for the background writer."""

    def getvalue(self) -> str:
        for handler in logging.getLogger().handlers:
            handler.flush()
        return super().getvalue()


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (other lines skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def log_timestamp(value: str) -> float:
    """A log line's `time` ("...Z") as seconds since the epoch."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
