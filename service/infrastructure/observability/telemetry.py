"""The metrics and tracing of one process, made at start-up and passed to the container."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from service.infrastructure.observability.metrics import Metrics


@dataclass
class Telemetry:
    metrics: Metrics = field(default_factory=Metrics)
    tracer_provider: TracerProvider | None = None  # None: tracing off

    @property
    def tracer(self) -> Tracer | None:
        return None if self.tracer_provider is None else self.tracer_provider.get_tracer("todo-service")

    def shutdown(self) -> None:
        """Flush and stop the span exporters."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
