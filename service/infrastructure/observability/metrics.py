"""Prometheus metrics: RPCs started, handled and in flight, latency, database health.

Names follow the go-grpc-prometheus conventions operators already have
dashboards for. Each Metrics object owns its registry, so tests can make as
many as they like. With several workers each worker's Metrics is given the
supervisor's directory (`multiprocess_dir`) and writes its values there;
the supervisor's endpoint adds them up (see service.supervisor).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector

from service.infrastructure.startup import StartupError

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _write_values_to(directory: str) -> None:
    """Make prometheus_client keep this process's values in files under `directory`.

    prometheus_client takes no parameter for this: its value class reads
    PROMETHEUS_MULTIPROC_DIR from the environment each time a value is
    created (and checks it for multiprocess gauges). So this is the one place
    the service sets that variable, from the directory it is given
    explicitly, and nothing in the service reads it back. The value class is
    switched here too, so the import order does not matter.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


@dataclass
class Metrics:
    """The service's metrics; with `multiprocess_dir`, values go to files there (a worker of several)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    multiprocess_dir: str | None = None

    def __post_init__(self) -> None:
        registry: CollectorRegistry | None = self.registry
        if self.multiprocess_dir is not None:
            _write_values_to(self.multiprocess_dir)
            registry = None  # the supervisor's endpoint reads the files
        rpc = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter("grpc_server_started", "RPCs started on the server.", rpc, registry=registry)
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            [*rpc, "grpc_code"],
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC until its response, by method.",
            rpc,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight",
            "RPCs being handled right now.",
            rpc,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.database_up = Gauge(
            "todo_database_up",
            "1 while the store answers its readiness check, else 0.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.auth_tokens = Gauge(
            "todo_auth_tokens",
            "Bearer tokens accepted from TODO_AUTH_TOKENS_FILE; 0 with tokens on: the file is unusable, "
            "every call is refused.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.auth_tokens_reload_failures = Counter(
            "todo_auth_tokens_reload_failures",
            "Reloads that found the tokens file missing, unreadable, malformed or without a token.",
            registry=registry,
        )
        self.health_watches = Gauge(
            "todo_health_watch_streams",
            "grpc.health.v1 Watch streams open now (capped by TODO_MAX_HEALTH_WATCHES).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.database_seconds = Histogram(
            "todo_database_operation_seconds",
            "Time of one database operation, by operation and outcome.",
            ["operation", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def tokens_loaded(self, count: int) -> None:
        """Bearer tokens accepted now (the auth.TokenObserver protocol)."""
        self.auth_tokens.set(count)

    def reload_failed(self) -> None:
        """A reload of the tokens file found it unusable (the auth.TokenObserver protocol)."""
        self.auth_tokens_reload_failures.inc()

    def health_watch_opened(self) -> None:
        self.health_watches.inc()

    def health_watch_closed(self) -> None:
        self.health_watches.dec()

    def database_observer(self) -> Callable[[str, str, float], None]:
        histogram = self.database_seconds
        children: dict[tuple[str, str], Any] = {}

        def observe(operation: str, outcome: str, seconds: float) -> None:
            child = children.get((operation, outcome))
            if child is None:
                child = children[(operation, outcome)] = histogram.labels(operation, outcome)
            child.observe(seconds)

        return observe


class MetricsEndpoint:
    """The HTTP endpoint Prometheus scrapes (`/metrics`): one registry, or the workers' files in a directory."""

    def __init__(
        self, address: str, registry: CollectorRegistry | None = None, multiprocess_dir: str | None = None
    ) -> None:
        """Raises StartupError when the address cannot be bound."""
        host, port = address.rsplit(":", 1)
        if multiprocess_dir is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        try:
            self._server, self._thread = start_http_server(int(port), host.strip("[]"), registry or CollectorRegistry())
        except OSError as error:
            raise StartupError(f"cannot listen on {address} (metrics): {error.strerror}") from None
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
