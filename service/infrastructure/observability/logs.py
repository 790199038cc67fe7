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
import threading
import time
from collections import deque
from contextvars import ContextVar
from typing import Any, TextIO

request_id_var: ContextVar[str | None] = ContextVar("todo_request_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("todo_trace_id", default=None)
principal_var: ContextVar[str | None] = ContextVar("todo_principal", default=None)

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
    "principal",
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
        record.principal = principal_var.get()
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
        principal = getattr(record, "principal", None)
        if principal:
            entry["principal"] = principal
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return _ENCODER.encode(entry)


_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape_controls(text: str) -> str:
    """`text` with control characters written as escapes (`\\n`, `\\x1b`), so it stays one line and no terminal
    escape sequence reaches the reader."""
    return text.translate(_CONTROLS) if not text.isprintable() else text


class ConsoleFormatter(logging.Formatter):
    """Human-readable lines for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(process)d %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        principal = getattr(record, "principal", None)
        ids = f" [{request_id}]" if request_id else ""
        if principal:
            ids += f" ({escape_controls(principal)})"
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:  # a value from a caller cannot forge a line: the message stays on one line
            record = logging.makeLogRecord(record.__dict__)
            record.msg, record.args = escaped, None
        record.ids = ids
        return redact(super().format(record))


class AccessLog:
    """The access line of an RPC (logger `service.access`, INFO).

    In JSON format the line is formatted here, without a LogRecord, a filter
    pass or redaction (its fields are the method, status, duration, peer and
    ids: no user text), and handed to the JSON handler's buffer, which a
    background thread writes out (see `BufferedJsonHandler`): the RPC pays
    for a string and an append, not for a write to the stream. In console
    format the line goes through logging. `TODO_ACCESS_LOG=false` (see
    `set_access_log`) turns the line off, as does a level above INFO for
    `service.access`; callers ask `enabled` before they gather the fields.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._pid = os.getpid()
        self._peers: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        """Whether an access line is written now (asked per RPC: logging may be configured later)."""
        return self._logger.isEnabledFor(logging.INFO)

    def _json_peer(self, peer: str) -> str:
        """The peer as a JSON string, encoded once per peer (a connection's RPCs share it); a bounded cache."""
        encoded = self._peers.get(peer)
        if encoded is None:
            if len(self._peers) >= 4096:
                self._peers.clear()
            encoded = self._peers[peer] = _ENCODER.encode(peer)
        return encoded

    def write(
        self,
        method: str,
        code: str,
        seconds: float,
        peer: str,
        request_id: str | None = None,
        *,
        principal: str | None = None,
    ) -> None:
        """One access line (when `enabled`); `request_id` saves reading it back from the context;
        `principal`: who called, when the server tells callers apart."""
        handler = _json_handler
        if handler is None:
            duration_ms = round(seconds * 1000, 3)
            self._logger.info(
                "%s %s %.2fms",
                method,
                code,
                duration_ms,
                extra={"method": method, "code": code, "duration_ms": duration_ms, "peer": peer},
            )
            return
        if request_id is None:
            request_id = request_id_var.get()
        trace_id = trace_id_var.get()
        # What JsonFormatter would write for the record, in the same order; only the peer is free text.
        # The duration in ms with 3 decimals, formatted directly (round() and repr() cost twice as much).
        duration_ms = seconds * 1000
        ids = f', "request_id": "{request_id}"' if request_id else ""
        if trace_id:
            ids += f', "trace_id": "{trace_id}"'
        if principal is not None:
            ids += f', "principal": {self._json_peer(principal)}'
        handler.enqueue(
            f'{{"time": "{_utc_time(time.time())}", "level": "INFO", "logger": "service.access", '
            f'"message": "{method} {code} {duration_ms:.2f}ms", "pid": {self._pid}{ids}, "method": "{method}", '
            f'"code": "{code}", "duration_ms": {duration_ms:.3f}, "peer": {self._json_peer(peer)}}}\n'
        )


ACCESS_LOGGER = "service.access"
FLUSH_SECONDS = 0.1  # an access line reaches the stream at most this long after its RPC
MAX_BUFFERED_LINES = 10_000  # beyond this an access line is dropped and counted: the event loop never waits


def set_access_log(enabled: bool) -> None:
    """TODO_ACCESS_LOG: with False no RPC writes an access line."""
    logging.getLogger(ACCESS_LOGGER).disabled = not enabled


class BufferedJsonHandler(logging.StreamHandler[TextIO]):
    """The JSON stream handler, with a buffer for access lines written by a background thread.

    Access lines (`enqueue`) go to a deque; a daemon thread writes what has
    gathered every FLUSH_SECONDS, in one write. The buffer is bounded: at
    MAX_BUFFERED_LINES (the stream has stalled: stderr to a pipe nobody
    reads) a new access line is dropped and counted (`dropped`, exported as
    todo_access_log_dropped_total), and the next write says how many were
    lost, so a stalled stream never blocks the event loop and every RPC with
    it (before, the RPC that found the buffer full wrote it out itself). Every other record
    is written at once, after the access lines before it (the stream keeps
    their order). `flush()` and `close()` write out the buffer: logging's
    shutdown (at exit, and in a worker before it leaves) calls them, so a
    SIGTERM loses no line. The thread starts with the first access line, in
    the process that writes it (a forked worker starts its own).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: deque[str] = deque()
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False
        self.dropped = 0  # access lines dropped since start because the stream could not keep up
        self._dropped_unsaid = 0  # ... and not yet reported on the stream

    def forget_parent(self) -> None:
        """In a forked child: the parent's thread is gone and its lines are the parent's to write."""
        self._pending = deque()
        self._writer = None
        self._wake = threading.Event()

    def enqueue(self, line: str) -> None:
        pending = self._pending
        if len(pending) >= MAX_BUFFERED_LINES:
            self.dropped += 1
            self._dropped_unsaid += 1
            return
        pending.append(line)
        if self._writer is None:
            self._start_writer()

    def _start_writer(self) -> None:
        if self._closed:  # after shutdown: nobody would write the buffer later
            self.write_pending()
            return
        self._writer = threading.Thread(target=self._run, name="access-log-writer", daemon=True)
        self._writer.start()

    def _run(self) -> None:
        wake = self._wake
        while not wake.wait(FLUSH_SECONDS):
            self.write_pending()

    def write_pending(self) -> None:
        """Write every buffered line now, in one write (deque pops are safe against concurrent appends)."""
        pending = self._pending
        if not pending:
            return
        self.acquire()
        try:
            lines = [pending.popleft() for _ in range(len(pending))]
            if self._dropped_unsaid:
                dropped, self._dropped_unsaid = self._dropped_unsaid, 0
                note = logging.makeLogRecord(
                    {
                        "name": ACCESS_LOGGER,
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "msg": "%d access lines dropped: the log stream did not keep up",
                        "args": (dropped,),
                    }
                )
                lines.append(self.format(note) + "\n")
            self.stream.write("".join(lines))
            self.stream.flush()
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            self.write_pending()
        super().emit(record)

    def flush(self) -> None:
        self.write_pending()
        super().flush()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.write_pending()
        super().close()


_json_handler: BufferedJsonHandler | None = None


def dropped_access_lines() -> int:
    """Access lines dropped so far because the log stream did not keep up (JSON format only)."""
    handler = _json_handler
    return 0 if handler is None else handler.dropped


def _after_fork_in_child() -> None:
    if _json_handler is not None:
        _json_handler.forget_parent()


_fork_hook_registered = False


def configure_logging(level: int, log_format: str, stream: TextIO | None = None) -> None:
    """Route every logger to one stream handler in the chosen format."""
    global _json_handler, _fork_hook_registered  # noqa: PLW0603 (the one process-wide log handler)
    if not _fork_hook_registered:  # at the first configuration, not at import time
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True
    handler: logging.StreamHandler[TextIO]
    if log_format == "json":
        handler = _json_handler = BufferedJsonHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        _json_handler = None
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
        if isinstance(existing, BufferedJsonHandler):
            existing.close()  # its buffered lines written, its thread stopped
    root.addHandler(handler)
    root.setLevel(level)
