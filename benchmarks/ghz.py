"""ghz (the gRPC load tester, Go) as the overload section drives it: callers with deadlines, outcomes by status.

Unlike h2load, ghz is a real gRPC client: every call has a deadline
(`--timeout`), calls over a connection's stream limit wait in the client (as
grpc-go queues them), and the result of every call is reported with its
status. `GhzResult.ok_per_second` counts the calls that came back OK within
their deadline, the goodput.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import REPO
from benchmarks.procs import run_measured

GHZ = REPO / ".tools" / "bin" / "ghz"
PROTOSET_NAME = "todo.binpb"


@dataclass(frozen=True)
class Callers:
    """Who calls: `callers` concurrent callers over `connections` connections, each call with a deadline;
    `rate` calls per second in all (0: each caller calls again as soon as its call ends)."""

    connections: int
    callers: int
    deadline_ms: int
    rate: float = 0.0
    nice: int = 0  # the flood runs at a lower priority than the victim and the prober on the shared load core


@dataclass
class GhzResult:
    seconds: float  # the load's duration (-z)
    total: int
    codes: dict[str, int]
    ok_latencies_ms: list[float]
    calls: list[tuple[float, bool]]  # every call: when it started (seconds after the first call), and whether OK
    rps: float  # calls ghz made per second (its own figure)
    cpu: float  # ghz's CPU seconds per wall second
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return self.codes.get("OK", 0)

    @property
    def ok_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        values = sorted(self.ok_latencies_ms)
        return round(values[int(q * (len(values) - 1))], 2) if values else None

    def summary(self, capacity: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "calls": self.total,
            "rps": round(self.rps),
            "ok_per_s": round(self.ok_per_second, 1),
            "ok_fraction": round(self.ok / self.total, 4) if self.total else None,
            "p50_ok_ms": self.percentile(0.5),
            "p99_ok_ms": self.percentile(0.99),
            "codes": dict(sorted(self.codes.items())),
            "ghz_cpu": round(self.cpu, 2),
        }
        if capacity:
            result["goodput"] = round(self.ok_per_second / capacity, 3)
        if self.error:
            result["error"] = self.error
        return result


def ghz(
    protoset: Path,
    port: int,
    method: str,
    data: str,
    who: Callers,
    *,
    cpus: str,
    out: Path,
    seconds: float,
) -> GhzResult:
    """One ghz run of `seconds` against 127.0.0.1:`port`; waits for it."""
    return ghz_run(protoset, port, method, data, who, cpus=cpus, out=out, seconds=seconds)()


def ghz_run(
    protoset: Path,
    port: int,
    method: str,
    data: str,
    who: Callers,
    *,
    cpus: str,
    out: Path,
    seconds: float,
) -> Callable[[], GhzResult]:
    """Run ghz and wait for it; the result is read when the returned function is called.

    A flood's report holds every call (about 100,000): reading it takes this process a second or
    more of CPU, on any core, so a step that goes on measuring reads it afterwards.
    """
    argv = [
        str(GHZ), "--insecure", "--protoset", str(protoset), "--call", f"todo.v1.TodoService.{method}", "-d", data,
        "--connections", str(who.connections), "-c", str(who.callers), "-t", f"{who.deadline_ms}ms",
        "-z", f"{seconds:g}s", "-O", "json", "-o", str(out), f"127.0.0.1:{port}",
    ]  # fmt: skip
    if who.rate > 0:
        argv[1:1] = ["--rps", str(round(who.rate))]
    if who.nice:
        argv = ["nice", "-n", str(who.nice), *argv]
    done = run_measured(argv, cpus, seconds + 120)
    return lambda: _read(out, seconds, done.returncode, done.stderr, done.cpu / done.wall if done.wall else 0.0)


def _read(out: Path, seconds: float, returncode: int, stderr: str, cpu: float) -> GhzResult:
    """ghz's JSON report, every call with its start time and outcome."""
    if not out.exists():
        return GhzResult(seconds, 0, {}, [], [], 0.0, 0.0, error=f"ghz ({returncode}): {stderr[-400:]}")
    report = json.loads(out.read_text())
    out.unlink()
    latencies: list[float] = []
    calls: list[tuple[float, bool]] = []
    details = report.get("details") or []
    stamps = [_nanos(detail["timestamp"]) for detail in details]  # parsed once: a flood's report has ~100,000
    first = min(stamps, default=0)
    for detail, stamp in zip(details, stamps, strict=True):
        ok = detail.get("status") == "OK"
        calls.append(((stamp - first) / 1e9, ok))
        if ok:
            latencies.append(detail["latency"] / 1e6)
    return GhzResult(
        seconds=seconds,
        total=int(report.get("count", 0)),
        codes={str(k): int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()},
        ok_latencies_ms=latencies,
        calls=calls,
        rps=float(report.get("rps", 0.0)),
        cpu=cpu,
    )


def _nanos(timestamp: str) -> int:
    """ghz's RFC 3339 timestamp (nanosecond precision) as nanoseconds since the epoch."""
    head, _, rest = timestamp.partition(".")
    digits = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(digits) :]
    seconds = datetime.fromisoformat(head + (zone if zone != "Z" else "+00:00")).timestamp()
    return int(seconds) * 1_000_000_000 + int((digits + "000000000")[:9])
