"""Test helpers shared by every suite: a controllable clock and id generator, ports, log lines, metrics."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from service.infrastructure.observability.logs import request_id_var, trace_id_var


class FakeClock:
    """A clock that moves only when told (or by `step` on every reading)."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(0)) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self.step = step

    def now(self) -> datetime:
        moment = self.current
        self.current += self.step
        return moment

    def advance(self, delta: timedelta = timedelta(milliseconds=1)) -> None:
        self.current += delta


class SequentialIds:
    """Ids `id-0001`, `id-0002`, ... in order; incarnations `00000001`, `00000002`, ..."""

    def __init__(self, prefix: str = "id-") -> None:
        self._counter = itertools.count(1)
        self._incarnations = itertools.count(1)
        self._prefix = prefix

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._counter):04d}"

    def new_incarnation(self) -> str:
        return f"{next(self._incarnations):08x}"


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level (and the RPC ids) afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        request_id_var.set(None)
        trace_id_var.set(None)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (other lines skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def log_timestamp(value: str) -> float:
    """A log line's `time` ("...Z") as seconds since the epoch."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus endpoint, keyed by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a loopback URL of our own)
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
