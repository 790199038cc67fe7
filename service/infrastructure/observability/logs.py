"""Logging: JSON lines (default) or console text, with the RPC's request id and trace id.

Every record gets `request_id` and `trace_id` from the RPC being served (a
context variable set by the gRPC handler), so every line an RPC causes can be
found by its request id. Anything that looks like a credential is masked
before a line is written.
"""

from __future__ import annotations

import json
import logging
import os
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


_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
_seconds_cache: tuple[int, str] = (-1, "")


def _utc_time(moment: float) -> str:
    """ISO 8601 UTC with milliseconds; the part up to the second is formatted once per second."""
    global _seconds_cache  # noqa: PLW0603 (a one-entry cache)
    second = int(moment)
    if second != _seconds_cache[0]:
        _seconds_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_seconds_cache[1]}.{int((moment - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, ids, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_time(record.created),
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
        return _ENCODER.encode(entry)


class ConsoleFormatter(logging.Formatter):
    """Human-readable lines for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(process)d %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.ids = f" [{request_id}]" if request_id else ""
        return redact(super().format(record))


class AccessLog:
    """The access line of an RPC (logger `service.access`, INFO).

    In JSON format the line is written straight to the log handler's stream,
    under its lock: the same object the JsonFormatter would write, without a
    LogRecord, a filter pass or redaction (its fields are the method, status,
    duration, peer and ids: no user text). This is the one log line every RPC
    writes, so it is kept cheap. In console format it goes through logging.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger("service.access")
        self._pid = os.getpid()

    def write(self, method: str, code: str, seconds: float, peer: str) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        duration_ms = round(seconds * 1000, 3)
        handler = _json_handler
        if handler is None:
            self._logger.info(
                "%s %s %.2fms",
                method,
                code,
                duration_ms,
                extra={"method": method, "code": code, "duration_ms": duration_ms, "peer": peer},
            )
            return
        entry: dict[str, Any] = {
            "time": _utc_time(time.time()),
            "level": "INFO",
            "logger": "service.access",
            "message": f"{method} {code} {duration_ms:.2f}ms",
            "pid": self._pid,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        trace_id = trace_id_var.get()
        if trace_id:
            entry["trace_id"] = trace_id
        entry["method"] = method
        entry["code"] = code
        entry["duration_ms"] = duration_ms
        entry["peer"] = peer
        line = _ENCODER.encode(entry) + "\n"
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.stream.flush()
        finally:
            handler.release()


_json_handler: logging.StreamHandler[TextIO] | None = None


def configure_logging(level: int, log_format: str, stream: TextIO | None = None) -> None:
    """Route every logger to one stream handler in the chosen format."""
    global _json_handler  # noqa: PLW0603 (the one process-wide log handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    _json_handler = handler if log_format == "json" else None
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
