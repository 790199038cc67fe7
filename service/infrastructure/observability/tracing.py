"""OpenTelemetry traces: off by default, switched on by the standard OTEL_* variables.

Tracing is on when OTEL_TRACES_EXPORTER names an exporter (`otlp`,
`console`) or an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and OTEL_SDK_DISABLED is not `true`. The
resource comes from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES. Without
them nothing is exported and no exporter connection is ever made.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from service.infrastructure.config import ConfigError


def tracer_provider_from_env(environ: Mapping[str, str]) -> TracerProvider | None:
    """A provider with the configured exporters, or None when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not names:
        if not endpoint:
            return None
        names = "otlp"
    exporters: list[SpanExporter] = []
    for name in (part.strip() for part in names.split(",")):
        if name == "none":
            continue
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415 (only when used)
                OTLPSpanExporter,
            )

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r} is not supported (otlp, console or none)")
    if not exporters:
        return None
    name = environ.get("OTEL_SERVICE_NAME", "").strip() or "todo-service"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
