"""Logging: JSON lines (default) or console text, with the RPC's request id and trace id.

Every record gets `request_id` and `trace_id` from the RPC being served (a
context variable set by the gRPC handler), so every line an RPC causes can be
found by its request id. Anything that looks like a credential is masked
before a line is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

request_id_var: ContextVar[str | None] = ContextVar("todo_request_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("todo_trace_id", default=None)

# user:password@ in URIs, bearer tokens, and secret-looking key=value pairs.
_SECRETS = re.compile(
    r"(?P<uri>(?<=://)[^/@\s:]+:[^/@\s]+(?=@))"
    r"|(?P<bearer>(?i:bearer)\s+[A-Za-z0-9._~+/=-]+)"
    r"|(?P<pair>(?i:password|passwd|pwd|secret|token)=[^\s&;,]+)"
)
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "trace_id",
    "taskName",
}


def redact(text: str) -> str:
    """`text` with credentials replaced by `***`."""

    def mask(match: re.Match[str]) -> str:
        if match["uri"]:
            return "***:***"
        if match["bearer"]:
            return "Bearer ***"
        return match["pair"].split("=", 1)[0] + "=***"

    return _SECRETS.sub(mask, text)


class ContextFilter(logging.Filter):
    """Adds the current RPC's request id and trace id to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.trace_id = trace_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, ids, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Human-readable lines for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.ids = f" [{request_id}]" if request_id else ""
        return redact(super().format(record))


def configure_logging(level: int, log_format: str, stream: TextIO | None = None) -> None:
    """Route every logger to one stream handler in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
