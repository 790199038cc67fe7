"""Measurement: one run of one side (`measure`), the alternation of sides (`alternate`), medians and ratios.

Each comparison alternates its sides in one run, `rounds` times, the order
rotated every round. For every run: the server's CPU time (its processes, from
/proc), the busy and steal time of the server core, the load generator's CPU,
and the gRPC status codes from the service's /metrics before and after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import fmt, log, median
from benchmarks.context import Bench
from benchmarks.grpc_calls import handled_codes, wait_serving
from benchmarks.launch import Server
from benchmarks.load import Load, h2load
from benchmarks.procs import Proc, core_times, cpu_seconds


@dataclass
class Run:
    rps: float
    requests: int
    failed: int
    grpc_codes: dict[str, int]
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    server_cpu: float  # CPU-seconds of the server processes per wall second
    loadgen_cpu: float  # CPU-seconds of the load generator per wall second
    server_core_busy: float  # busy fraction of the server core
    foreign_on_server_core: float  # busy fraction of the server core not used by our processes
    steal: float  # hypervisor steal on the server core (time the VM's vCPU did not run)
    wall: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rps_per_server_cpu(self) -> float:
        return self.rps / self.server_cpu if self.server_cpu else float("nan")

    @property
    def server_cpu_us_per_rpc(self) -> float:
        return self.server_cpu / self.rps * 1e6 if self.rps else float("nan")


Results = dict[str, list[Run]]


@dataclass
class Side:
    key: str
    label: str
    run: Callable[[], Run]


def measure(
    bench: Bench,
    servers: list[Proc],
    load: Callable[[], Load],
    metrics_port: int | None = None,
    others: dict[str, Proc] | None = None,
) -> Run:
    """Run `load` once while watching the server processes' CPU and the cores."""
    pids = [pid for server in servers for pid in server.pids()]
    codes_before = handled_codes(metrics_port)
    cores_before = core_times()
    cpu_before = cpu_seconds(pids)
    others_before = {name: proc.cpu() for name, proc in (others or {}).items()}
    began = time.perf_counter()
    result = load()
    wall = time.perf_counter() - began
    cpu_after = cpu_seconds(pids)
    cores_after = core_times()
    others_after = {name: proc.cpu() for name, proc in (others or {}).items()}
    codes_after = handled_codes(metrics_port)
    server_cpu = (cpu_after - cpu_before) / wall
    core = f"cpu{servers[0].cpus.split(',')[0]}" if servers else f"cpu{bench.server_cpu}"
    busy = (cores_after[core][0] - cores_before[core][0]) / max(1, cores_after[core][1] - cores_before[core][1])
    steal_ticks = cores_after[core][2] - cores_before[core][2]
    total_ticks = cores_after[core][1] - cores_before[core][1]
    pinned_alone = servers and all(server.cpus == bench.server_cpu for server in servers)
    # The server core's busy share not explained by the server itself (only meaningful when the server
    # has the core to itself).
    ours_on_core = server_cpu if pinned_alone else busy
    extra = {f"{name}_cpu": (others_after[name] - others_before[name]) / wall for name in others_after}
    return Run(
        rps=result.rps,
        requests=result.requests,
        failed=result.failed,
        grpc_codes={
            key: codes_after[key] - codes_before.get(key, 0)
            for key in codes_after
            if codes_after[key] - codes_before.get(key, 0)
        },
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        mean_ms=result.mean_ms,
        server_cpu=server_cpu,
        loadgen_cpu=result.cpu / wall,
        server_core_busy=busy,
        foreign_on_server_core=max(0.0, busy - ours_on_core),
        steal=steal_ticks / max(1, total_ticks),
        wall=wall,
        extra=extra,
    )


def grpc_side(
    bench: Bench,
    key: str,
    label: str,
    server: Server,
    method: str,
    body: Path,
    connections: int | None = None,
    others: dict[str, Proc] | None = None,
) -> Side:
    """A side that drives `method` on `server` with h2load."""

    def run() -> Run:
        if server.health:
            # A run starts on a ready service: after an overload (FerretDB at 100% under ListTodos) the
            # readiness check may have turned it NOT_SERVING for a few seconds (reported, not measured).
            waited = time.perf_counter()
            wait_serving(server.port, timeout=60)
            if time.perf_counter() - waited > 0.5:
                log(f"{key}: waited {time.perf_counter() - waited:.1f}s for the service to be SERVING again")
        return measure(
            bench, [server.proc],
            lambda: h2load(bench, server.port, [method], body, connections=connections, tag=key.replace(":", "-")),
            server.metrics_port, others,
        )  # fmt: skip

    return Side(key, label, run)


def alternate(bench: Bench, sides: list[Side], results: Results, title: str) -> None:
    """Every side once per round, the order rotated each round, `bench.rounds` rounds."""
    for round_index in range(bench.rounds):
        shift = round_index % len(sides)
        order = sides[shift:] + sides[:shift]
        for side in order:
            measured = side.run()
            results.setdefault(side.key, []).append(measured)
            errors = measured.failed + error_codes(measured.grpc_codes)
            log(
                f"{title} round {round_index + 1}/{bench.rounds} {side.key:<28} {measured.rps:8.0f} rps"
                f"  p50 {fmt(measured.p50_ms, 1)} ms  p99 {fmt(measured.p99_ms, 1)} ms"
                f"  server cpu {measured.server_cpu:.2f}  foreign {measured.foreign_on_server_core:.2f}"
                + (f"  ERRORS {errors}" if errors else "")
            )


def error_codes(codes: dict[str, int]) -> int:
    """Non-OK RPCs, except CANCELLED: the RPCs still in flight when a timed h2load run stops."""
    return sum(v for k, v in codes.items() if not k.endswith((":OK", ":CANCELLED")))


def summary(runs: list[Run]) -> dict[str, Any]:
    def med(attr: str) -> float | None:
        values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
        return median(values) if values else None

    return {
        "rps": med("rps"),
        "rps_all": [round(r.rps, 1) for r in runs],
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "server_cpu": med("server_cpu"),
        "rps_per_server_cpu": median([r.rps_per_server_cpu for r in runs]),
        "foreign_on_server_core_max": max((r.foreign_on_server_core for r in runs), default=0.0),
        "steal_max": max((r.steal for r in runs), default=0.0),
        "loadgen_cpu": med("loadgen_cpu"),
        "errors": sum(r.failed + error_codes(r.grpc_codes) for r in runs),
        "cancelled_at_end": sum(v for r in runs for k, v in r.grpc_codes.items() if k.endswith(":CANCELLED")),
        "requests": sum(r.requests for r in runs),
    }


def ratio(results: Results, a: str, b: str, attr: str = "rps") -> dict[str, Any]:
    """Median of A over median of B, and the per-round ratios (A_i / B_i)."""
    values_a = [getattr(r, attr) for r in results.get(a, [])]
    values_b = [getattr(r, attr) for r in results.get(b, [])]
    if not values_a or not values_b or None in values_a or None in values_b:
        return {"ratio": None, "per_round": []}
    return {
        "ratio": median(values_a) / median(values_b),
        "per_round": [round(x / y, 3) for x, y in zip(values_a, values_b, strict=False) if y],
    }


def section_report(results: Results, sides: list[Side], ratios: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A comparison as the report stores it: every run, the summary per side, the labels and the ratios."""
    return {
        "runs": {key: [asdict(r) for r in runs] for key, runs in results.items()},
        "summary": {key: summary(runs) for key, runs in results.items()},
        "labels": {side.key: side.label for side in sides},
        "ratios": ratios,
    }
