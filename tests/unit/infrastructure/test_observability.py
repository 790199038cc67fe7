"""Log formatting, secret masking, the tracing switch and the RPC metrics' exposition."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.infrastructure.config import TracingSettings
from service.infrastructure.observability import logs
from service.infrastructure.observability.logs import (
    AccessLog,
    BufferedJsonHandler,
    ContextFilter,
    JsonFormatter,
    configure_logging,
    principal_var,
    redact,
    request_id_var,
    set_access_log,
    trace_id_var,
)
from service.infrastructure.observability.metrics import LATENCY_BUCKETS, Metrics
from service.infrastructure.observability.tracing import tracer_provider
from tests.support.logs import preserved_logging


class TestRedact:
    @pytest.mark.parametrize(
        ("text", "secret"),
        [
            ("cannot reach mongodb://admin:hunter2@db:27017/todo", "hunter2"),
            ("mongodb+srv://svc:p%40ss@cluster.example/", "p%40ss"),
            ("authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz"),
            ("retrying with token=s3cr3t&x=1", "s3cr3t"),
            ("password=letmein", "letmein"),
        ],
    )
    def test_credentials_are_masked(self, text: str, secret: str) -> None:
        masked = redact(text)
        assert secret not in masked
        assert "***" in masked

    def test_ordinary_text_is_unchanged(self) -> None:
        text = "serving todo.v1.TodoService on 127.0.0.1:50051 (mongodb://db:27017/)"
        assert redact(text) == text


def capture(log_format: str, stream: io.StringIO | None = None) -> io.StringIO:
    stream = stream or io.StringIO()
    configure_logging(logging.INFO, log_format, stream)
    return stream


class StalledStream(io.StringIO):
    """A stream whose writes wait until `release` is set (the first one says so with `entered`)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(30)
        return super().write(text)


class TestJsonLines:
    def test_fields_ids_and_extras(self) -> None:
        stream = capture("json")
        request_id_var.set("req-1")
        trace_id_var.set("0af7651916cd43dd8448eb211c80319c")
        logging.getLogger("service.test").info("hello %s", "world", extra={"code": "OK", "duration_ms": 1.5})
        entry = json.loads(stream.getvalue().strip().splitlines()[-1])
        assert entry["message"] == "hello world"
        assert (entry["level"], entry["logger"]) == ("INFO", "service.test")
        assert entry["time"].endswith("Z")
        assert (entry["request_id"], entry["trace_id"]) == ("req-1", "0af7651916cd43dd8448eb211c80319c")
        assert (entry["code"], entry["duration_ms"]) == ("OK", 1.5)

    def test_exceptions_are_one_line_and_masked(self) -> None:
        stream = capture("json")
        request_id_var.set(None)
        try:
            raise RuntimeError("bad uri mongodb://u:topsecret@h/")
        except RuntimeError:
            logging.getLogger("service.test").exception("failed with token=abc123")
        lines = stream.getvalue().strip().splitlines()
        entry = json.loads(lines[-1])
        assert "RuntimeError" in entry["exception"]
        assert "topsecret" not in stream.getvalue()
        assert "abc123" not in stream.getvalue()
        assert "request_id" not in entry

    def test_console_format_is_text_with_the_request_id(self) -> None:
        stream = capture("console")
        request_id_var.set("req-9")
        logging.getLogger("service.test").warning("careful Bearer qwerty")
        line = stream.getvalue().strip().splitlines()[-1]
        assert "WARNING" in line
        assert "[req-9]" in line
        assert "qwerty" not in line
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)

    def test_console_lines_escape_control_characters_and_carry_the_principal(self) -> None:
        """A value from a caller cannot forge a second line or send a terminal escape sequence."""
        stream = capture("console")
        principal_var.set("spiffe://x/\x1b[31mred")
        try:
            logging.getLogger("service.test").warning("id %r and %s", "a", "b\nFAKE 2026 ERROR forged\x1b[2J")
        finally:
            principal_var.set(None)
        text = stream.getvalue()
        assert text.count("\n") == 1, text
        assert "\x1b" not in text
        assert "b\\nFAKE 2026 ERROR forged\\x1b[2J" in text
        assert "(spiffe://x/\\x1b[31mred)" in text

    def test_filter_and_formatter_work_on_a_plain_record(self) -> None:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        request_id_var.set("r")
        assert ContextFilter().filter(record)
        assert json.loads(JsonFormatter().format(record))["request_id"] == "r"


SERVICE = "todo.v1.TodoService"
OBSERVED = [  # (method, code, seconds): on bucket bounds, between them and beyond the last
    ("GetTodo", "OK", 0.0005),
    ("GetTodo", "OK", 0.0007),
    ("GetTodo", "NOT_FOUND", 0.003),
    ("GetTodo", "OK", 11.0),
    ("CreateTodo", "OK", 0.0),
    ("CreateTodo", "INVALID_ARGUMENT", 2.5),
]


def exposed(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the grpc_server_* families (but the _created times), by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        if family.name.startswith("grpc_server")
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


class TestRpcMetrics:
    def test_plain_counters_expose_what_prometheus_client_would(self) -> None:
        """The same samples, types and help text as prometheus_client's own metrics of the same calls."""
        metrics = Metrics()
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        reference = CollectorRegistry()
        started = Counter("grpc_server_started", "RPCs started on the server.", labels, registry=reference)
        handled = Counter(
            "grpc_server_handled", "RPCs completed on the server, by status code.", [*labels, "grpc_code"],
            registry=reference,
        )  # fmt: skip
        seconds = Histogram(
            "grpc_server_handling_seconds", "Time from the start of an RPC until its response, by method.", labels,
            buckets=LATENCY_BUCKETS, registry=reference,
        )  # fmt: skip
        in_flight = Gauge("grpc_server_in_flight", "RPCs being handled right now.", labels, registry=reference)
        recorders = {name: metrics.rpc(SERVICE, name) for name in ("GetTodo", "CreateTodo")}
        for method, code, duration in OBSERVED:
            recorders[method].begin()
            recorders[method].end(code, duration)
            started.labels("unary", SERVICE, method).inc()
            handled.labels("unary", SERVICE, method, code).inc()
            seconds.labels("unary", SERVICE, method).observe(duration)
            in_flight.labels("unary", SERVICE, method).set(0)
        recorders["GetTodo"].begin()  # one still in flight
        started.labels("unary", SERVICE, "GetTodo").inc()
        in_flight.labels("unary", SERVICE, "GetTodo").inc()

        ours = exposed(metrics.registry)
        assert ours == exposed(reference)
        assert ours[("grpc_server_handling_seconds_bucket", (*sorted({
            "grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "GetTodo", "le": "0.0005"
        }.items()),))] == 1  # fmt: skip
        families = {f.name: (f.type, f.documentation) for f in metrics.registry.collect()}
        assert {k: v for k, v in families.items() if k.startswith("grpc_server")} == {
            f.name: (f.type, f.documentation) for f in reference.collect()
        }
        text = generate_latest(metrics.registry).decode()
        assert 'grpc_server_started_created{grpc_method="GetTodo"' in text
        assert 'grpc_server_handling_seconds_created{grpc_method="GetTodo"' in text

    def test_one_recorder_per_method(self) -> None:
        metrics = Metrics()
        assert metrics.rpc(SERVICE, "GetTodo") is metrics.rpc(SERVICE, "GetTodo")


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def eventually(condition: Callable[[], bool]) -> bool:
    """Polls `condition` for up to 10 s (a bound for a stalled machine, not a duration under test)."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class TestAccessLine:
    def test_the_line_is_the_json_formatters_object_with_the_peer_escaped(self) -> None:
        stream = capture("json")
        trace_id_var.set("0af7651916cd43dd8448eb211c80319c")
        AccessLog().write("/todo.v1.TodoService/GetTodo", "NOT_FOUND", 0.0012345, 'unix:/tmp/a"b\\c', "req-7")
        logging.getLogger().handlers[0].flush()
        (line,) = json_lines(stream)
        assert line == {
            "time": line["time"],
            "level": "INFO",
            "logger": "service.access",
            "message": "/todo.v1.TodoService/GetTodo NOT_FOUND 1.23ms",
            "pid": os.getpid(),
            "request_id": "req-7",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "method": "/todo.v1.TodoService/GetTodo",
            "code": "NOT_FOUND",
            "duration_ms": 1.234,
            "peer": 'unix:/tmp/a"b\\c',
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])

    def test_lines_reach_the_stream_without_a_flush_in_order_with_other_records(self) -> None:
        stream = capture("json")
        access = AccessLog()
        for number in range(3):
            access.write("/s/M", "OK", 0.001, "ipv4:127.0.0.1:1", f"r{number}")
        logging.getLogger("service.test").warning("after the three")
        assert [line.get("request_id") for line in json_lines(stream)] == ["r0", "r1", "r2", None]
        access.write("/s/M", "OK", 0.001, "ipv4:127.0.0.1:1", "r3")
        assert eventually(lambda: stream.getvalue().count("\n") == 5)
        assert json_lines(stream)[-1]["request_id"] == "r3"

    def test_a_stalled_stream_never_blocks_the_caller_lines_are_dropped_and_counted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """stderr to a pipe nobody reads: the writer thread waits, the event loop must not (before, it wrote)."""
        monkeypatch.setattr(logs, "MAX_BUFFERED_LINES", 5)
        monkeypatch.setattr(logs, "FLUSH_SECONDS", 0.01)
        stalled = StalledStream()
        capture("json", stalled)
        access = AccessLog()
        access.write("/s/M", "OK", 0.001, "p", "first")  # starts the writer, which then waits in write()
        assert stalled.entered.wait(5)

        def hundred_lines() -> None:
            for number in range(100):
                access.write("/s/M", "OK", 0.001, "p", f"r{number}")

        caller = threading.Thread(target=hundred_lines, daemon=True)
        caller.start()
        caller.join(10)
        assert not caller.is_alive(), "the caller waited for the stalled stream"
        assert logs.dropped_access_lines() == 95
        stalled.release.set()
        assert eventually(lambda: "access lines dropped" in stalled.getvalue())
        assert '"message": "95 access lines dropped: the log stream did not keep up"' in stalled.getvalue()

    def test_closing_the_handler_writes_what_is_buffered(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(logs, "FLUSH_SECONDS", 3600.0)
        stream = capture("json")
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, BufferedJsonHandler)
        AccessLog().write("/s/M", "OK", 0.001, "p", "last")
        assert stream.getvalue() == ""
        logging.shutdown([weakref.ref(handler)])  # what exit and a worker's end do, for this handler
        assert [line["request_id"] for line in json_lines(stream)] == ["last"]

    def test_the_switch_turns_the_line_off(self) -> None:
        stream = capture("json")
        set_access_log(False)
        try:
            access = AccessLog()
            assert not access.enabled
        finally:
            set_access_log(True)
        assert AccessLog().enabled
        assert stream.getvalue() == ""


class TestTracerProvider:
    def test_no_exporter_means_no_provider(self) -> None:
        assert tracer_provider(TracingSettings()) is None

    def test_console_exporter_and_service_name(self) -> None:
        provider = tracer_provider(TracingSettings(exporters=("console",), service_name="todo-b"))
        assert provider is not None
        try:
            assert provider.resource.attributes["service.name"] == "todo-b"
        finally:
            provider.shutdown()

    def test_otlp_exporter_to_the_configured_endpoint(self) -> None:
        provider = tracer_provider(TracingSettings(exporters=("otlp",), otlp_endpoint="http://127.0.0.1:4317"))
        assert provider is not None
        provider.shutdown()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    with preserved_logging():
        yield
