"""Log formatting, secret masking and the tracing switch."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from service.infrastructure.config import TracingSettings
from service.infrastructure.observability.logs import (
    ContextFilter,
    JsonFormatter,
    configure_logging,
    redact,
    request_id_var,
    trace_id_var,
)
from service.infrastructure.observability.tracing import tracer_provider
from tests.support import preserved_logging


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


def capture(log_format: str) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(logging.INFO, log_format, stream)
    return stream


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

    def test_filter_and_formatter_work_on_a_plain_record(self) -> None:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        request_id_var.set("r")
        assert ContextFilter().filter(record)
        assert json.loads(JsonFormatter().format(record))["request_id"] == "r"


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
