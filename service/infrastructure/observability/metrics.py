"""Prometheus metrics: RPCs started, handled and in flight, latency, database health.

Names follow the go-grpc-prometheus conventions operators already have
dashboards for. Each Metrics object owns its registry, so tests can make as
many as they like. With several workers each worker's Metrics is given the
supervisor's directory (`multiprocess_dir`) and writes its values there;
the supervisor's endpoint adds them up (see service.supervisor).

The RPC metrics are counted on the hot path, once or twice per RPC: in a
single process they are plain integers and a fixed-bucket histogram per
method (`RpcStats`), turned into the same Prometheus families by a collector
only when /metrics is scraped, so an RPC pays no lock and no label lookup.
With several workers the values have to reach the supervisor through
prometheus_client's multiprocess files, so there they stay prometheus_client
metrics (`_PrometheusRpcStats`, the same interface).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from service.infrastructure.startup import StartupError

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


_RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
_STARTED = ("grpc_server_started", "RPCs started on the server.")
_HANDLED = ("grpc_server_handled", "RPCs completed on the server, by status code.")
_HANDLING_SECONDS = ("grpc_server_handling_seconds", "Time from the start of an RPC until its response, by method.")
_IN_FLIGHT = ("grpc_server_in_flight", "RPCs being handled right now.")
_BUCKET_BOUNDS = (*(str(float(bound)) for bound in LATENCY_BUCKETS), "+Inf")


class RpcRecorder(Protocol):
    """What the per-RPC handler reports for one method: an RPC began; it ended with `code` after `seconds`."""

    def begin(self) -> None: ...

    def end(self, code: str, seconds: float) -> None: ...


class RpcStats:
    """The RPC metrics of one method as plain numbers (see the module's docstring).

    Written by the event loop's thread only (every RPC of the process is
    served there) and read by the scrape thread, which copies before it
    sums: under the GIL a read never sees half an update, and with one
    writer no update is lost. `_count` is the sum of the buckets it exposes.
    """

    __slots__ = ("buckets", "created", "handled", "in_flight", "labels", "started", "sum")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.created = time.time()
        self.started = 0
        self.in_flight = 0
        self.handled: dict[str, int] = {}
        self.buckets = [0] * len(_BUCKET_BOUNDS)  # per bucket (not cumulative); the last is +Inf
        self.sum = 0.0

    def begin(self) -> None:
        self.started += 1
        self.in_flight += 1

    def end(self, code: str, seconds: float) -> None:
        self.in_flight -= 1
        handled = self.handled
        handled[code] = handled.get(code, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # `le`: a value on a bound counts in it
        self.sum += seconds


class _RpcCollector(Collector):
    """Turns every method's RpcStats into the four grpc_server_* families, at scrape time."""

    def __init__(self, stats: dict[tuple[str, str, str], RpcStats]) -> None:
        self._stats = stats

    def describe(self) -> list[Metric]:
        return list(self._families([]))

    def collect(self) -> Iterator[Metric]:
        return self._families(list(self._stats.values()))

    @staticmethod
    def _families(methods: list[RpcStats]) -> Iterator[Metric]:
        started = CounterMetricFamily(*_STARTED, labels=_RPC_LABELS)
        handled = CounterMetricFamily(*_HANDLED, labels=[*_RPC_LABELS, "grpc_code"])
        latency = HistogramMetricFamily(*_HANDLING_SECONDS, labels=_RPC_LABELS)
        in_flight = GaugeMetricFamily(*_IN_FLIGHT, labels=_RPC_LABELS)
        for stats in methods:
            labels = stats.labels
            started.add_metric(labels, stats.started, created=stats.created)
            for code, count in list(stats.handled.items()):
                handled.add_metric([*labels, code], count, created=stats.created)
            counts = list(stats.buckets)
            cumulative, running = [], 0
            for bound, count in zip(_BUCKET_BOUNDS, counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            latency.add_metric(labels, cumulative, stats.sum)
            label_dict = dict(zip(_RPC_LABELS, labels, strict=True))
            latency.samples.append(Sample(f"{_HANDLING_SECONDS[0]}_created", label_dict, stats.created))
            in_flight.add_metric(labels, stats.in_flight)
        yield started
        yield handled
        yield latency
        yield in_flight


class _DroppedLinesCollector(Collector):
    """todo_access_log_dropped_total: access lines the log handler dropped (observability/logs.py)."""

    def collect(self) -> Iterator[Metric]:
        from service.infrastructure.observability.logs import dropped_access_lines  # noqa: PLC0415

        family = CounterMetricFamily(
            "todo_access_log_dropped",
            "Access lines dropped because the log stream did not keep up (the event loop never waits for it).",
        )
        family.add_metric([], dropped_access_lines())
        yield family


class _PrometheusRpcStats:
    """The RPC metrics of one method as prometheus_client children (multiprocess mode)."""

    def __init__(self, metrics: Metrics, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._handled_family = metrics._handled
        self._started = metrics._started.labels(*labels)
        self._in_flight = metrics._in_flight.labels(*labels)
        self._latency = metrics._handling_seconds.labels(*labels)
        self._handled: dict[str, Any] = {}

    def begin(self) -> None:
        self._started.inc()
        self._in_flight.inc()

    def end(self, code: str, seconds: float) -> None:
        self._in_flight.dec()
        self._latency.observe(seconds)
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = self._handled_family.labels(*self._labels, code)
        counter.inc()


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
        self._rpc_stats: dict[tuple[str, str, str], RpcStats] = {}
        if self.multiprocess_dir is not None:
            _write_values_to(self.multiprocess_dir)
            registry = None  # the supervisor's endpoint reads the files
            self._started = Counter(*_STARTED, _RPC_LABELS, registry=None)
            self._handled = Counter(*_HANDLED, [*_RPC_LABELS, "grpc_code"], registry=None)
            self._handling_seconds = Histogram(*_HANDLING_SECONDS, _RPC_LABELS, buckets=LATENCY_BUCKETS, registry=None)
            self._in_flight = Gauge(*_IN_FLIGHT, _RPC_LABELS, registry=None, multiprocess_mode="livesum")
        else:
            self.registry.register(_RpcCollector(self._rpc_stats))
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
        self.overload_refusals = Counter(
            "todo_overload_refused",
            "Calls the service refused because of load or a caller's limit, by where (point: admission, quota, "
            "health_watch, reflection) and why (reason). "
            "Streams gRPC core refuses over TODO_MAX_CONCURRENT_STREAMS are not seen here (see docs/overload.md).",
            ["point", "reason"],
            registry=registry,
        )
        # Exported at 0 from the start, so that rate() and alerts see the series before the first refusal.
        for point, reason in (
            ("admission", "CONCURRENCY_LIMIT_REACHED"),
            ("quota", "QUOTA_EXCEEDED"),
            ("health_watch", "WATCH_LIMIT_REACHED"),
            ("reflection", "REQUEST_TOO_LARGE"),
            ("reflection", "STREAM_REQUEST_LIMIT_REACHED"),
        ):
            self.overload_refusals.labels(point, reason)
        self.principal_rpcs = Counter(
            "todo_principal_rpcs",
            "todo.v1.TodoService calls by principal (the names configuration gives: tokens file, policy, quota "
            "file; every other principal is `other`) and status code. Only when callers are told apart.",
            ["principal", "grpc_code"],
            registry=registry,
        )
        self._principal_children: dict[tuple[str, str], Any] = {}
        self.authz_denials = Counter(
            "todo_authz_denied",
            "Calls the authorization policy refused (PERMISSION_DENIED), by principal (named ones, else `other`).",
            ["principal"],
            registry=registry,
        )
        self.authz_policy_loaded = Gauge(
            "todo_authz_policy_loaded_timestamp_seconds",
            "When the authorization policy in effect was read (Unix time); time() minus it is the policy's age. "
            "A reload that fails keeps the old policy and this value.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.authz_policy_reload_failures = Counter(
            "todo_authz_policy_reload_failures",
            "Reloads that found the authorization policy file unusable (the last good policy stays in effect).",
            registry=registry,
        )
        if registry is not None:  # one process: read from the log handler when scraped
            registry.register(_DroppedLinesCollector())
        self.reflection_requests = Counter(
            "todo_reflection_requests",
            "Server reflection requests answered (each question of a ServerReflectionInfo stream).",
            registry=registry,
        )
        self.overload_limits = Gauge(
            "todo_overload_limit",
            "The configured overload limits: max_concurrent_rpcs (0: none), max_concurrent_streams (per connection), "
            "overload_protection (1: on).",
            ["limit"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.database_seconds = Histogram(
            "todo_database_operation_seconds",
            "Time of one database operation, by operation and outcome.",
            ["operation", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def rpc(self, service: str, method: str, grpc_type: str = "unary") -> RpcRecorder:
        """The recorder of one method's RPCs (made once per method, at start-up)."""
        labels = (grpc_type, service, method)
        if self.multiprocess_dir is not None:
            return _PrometheusRpcStats(self, labels)
        stats = self._rpc_stats.get(labels)
        if stats is None:
            stats = self._rpc_stats[labels] = RpcStats(labels)
        return stats

    def tokens_loaded(self, count: int) -> None:
        """Bearer tokens accepted now (the auth.TokenObserver protocol)."""
        self.auth_tokens.set(count)

    def reload_failed(self) -> None:
        """A reload of the tokens file found it unusable (the auth.TokenObserver protocol)."""
        self.auth_tokens_reload_failures.inc()

    def overload_refused(self, point: str, reason: str = "CONCURRENCY_LIMIT_REACHED") -> None:
        """A call refused because of load (the admission.RefusalCounter protocol); only on the refusal path."""
        self.overload_refusals.labels(point, reason).inc()

    def principal_rpc(self, label: str, code: str) -> None:
        """One call of a principal ended with `code` (`label`: its bounded label)."""
        child = self._principal_children.get((label, code))
        if child is None:
            child = self._principal_children[(label, code)] = self.principal_rpcs.labels(label, code)
        child.inc()

    def authz_denied(self, label: str) -> None:
        self.authz_denials.labels(label).inc()

    def policy_loaded(self, loaded_at: float) -> None:
        self.authz_policy_loaded.set(loaded_at)

    def policy_reload_failed(self) -> None:
        self.authz_policy_reload_failures.inc()

    def overload_limits_are(self, limits: dict[str, float]) -> None:
        for name, limit in limits.items():
            self.overload_limits.labels(name).set(limit)

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
