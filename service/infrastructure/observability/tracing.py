"""OpenTelemetry traces: off by default, switched on by the standard OTEL_* variables.

The switch is read into `TracingSettings` with the rest of the configuration
(see config/settings.py): tracing is on when OTEL_TRACES_EXPORTER names an exporter
(`otlp`, `console`) or an OTLP endpoint is set, and OTEL_SDK_DISABLED is not
`true`. Without them nothing is exported and no exporter connection is ever
made.
"""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from service.infrastructure.config import TracingSettings


def tracer_provider(settings: TracingSettings) -> TracerProvider | None:
    """A provider with the configured exporters, or None when tracing is off."""
    if not settings.exporters:
        return None
    exporters: list[SpanExporter] = []
    for name in settings.exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415 (only when used)
                OTLPSpanExporter,
            )

            exporters.append(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise ValueError(f"unknown span exporter {name!r}")
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
