"""The metrics and tracing of one process, made at start-up by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from service.infrastructure.config import Settings
from service.infrastructure.observability.logs import set_access_log
from service.infrastructure.observability.metrics import Metrics
from service.infrastructure.observability.tracing import tracer_provider


@dataclass
class Telemetry:
    metrics: Metrics = field(default_factory=Metrics)
    tracer_provider: TracerProvider | None = None  # None: tracing off

    @classmethod
    def from_settings(cls, settings: Settings) -> Telemetry:
        """Fresh metrics (in the supervisor's directory for a worker), the configured tracing and access line."""
        set_access_log(settings.access_log)
        return cls(Metrics(multiprocess_dir=settings.metrics_multiprocess_dir), tracer_provider(settings.tracing))

    @property
    def tracer(self) -> Tracer | None:
        return None if self.tracer_provider is None else self.tracer_provider.get_tracer("todo-service")

    def shutdown(self) -> None:
        """Flush and stop the span exporters."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
