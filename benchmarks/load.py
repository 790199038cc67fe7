"""Load generation: h2load for gRPC, wrk for HTTP, both pinned to the load core; their output parsed into `Load`."""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import SERVICE, ms
from benchmarks.context import Bench
from benchmarks.procs import Finished, run_measured

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Load:
    rps: float
    requests: int
    failed: int  # transport-level failures (h2load failed/errored, wrk non-2xx or socket errors)
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    cpu: float  # load generator CPU seconds
    wall: float


def h2load_argv(
    bench: Bench, port: int, methods: list[str], body: Path, connections: int, streams: int, options: list[str]
) -> list[str]:
    """h2load sending `body` as unary gRPC calls of `methods` (cycled) to the server on `port`."""
    return [
        bench.h2load_bin, "-t", "1", "-c", str(connections), "-m", str(streams),
        "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body), *options,
        *[f"http://127.0.0.1:{port}/{SERVICE}/{method}" for method in methods],
    ]  # fmt: skip


def h2load(
    bench: Bench,
    port: int,
    methods: list[str],
    body: Path,
    *,
    requests: int | None = None,
    connections: int | None = None,
    streams: int | None = None,
    rate: int | None = None,
    tag: str = "run",
) -> Load:
    """One timed (`bench.seconds`, after the warm-up) or counted (`requests`) h2load run; `rate`: requests per second
    per connection (h2load --rps), a fixed offered load instead of as many as the server answers."""
    log_file = bench.work / f"h2load-{tag}-{time.monotonic_ns()}.log"
    options = ["--log-file", str(log_file)]
    if rate is not None:
        options += ["--rps", str(rate)]
    if requests is not None:
        options += ["-n", str(requests)]
        timeout = 600.0
    else:
        options += ["-D", ms(bench.seconds), "--warm-up-time", ms(bench.warmup)]
        timeout = bench.seconds + bench.warmup + 60
    argv = h2load_argv(bench, port, methods, body, connections or bench.connections, streams or bench.streams, options)
    done = run_measured(argv, bench.load_cpu, timeout)
    return _parse_h2load(done, log_file, counted=requests is not None)


def _percentiles(latencies_us: list[int]) -> tuple[float | None, float | None, float | None]:
    if not latencies_us:
        return None, None, None
    latencies_us.sort()
    count = len(latencies_us)
    return (
        latencies_us[int(0.50 * (count - 1))] / 1000,
        latencies_us[int(0.99 * (count - 1))] / 1000,
        sum(latencies_us) / count / 1000,
    )


def _parse_h2load(done: Finished, log_file: Path, counted: bool) -> Load:
    out = done.stdout
    match = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    totals = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out
    )
    if match is None or totals is None:
        raise RuntimeError(f"h2load failed ({done.returncode}): {out[-800:]} {done.stderr[-800:]}")
    latencies: list[int] = []
    statuses: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in log_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                statuses[parts[1]] += 1
                latencies.append(int(parts[2]))
        log_file.unlink()
    p50, p99, mean = _percentiles(latencies)
    requests = int(totals[1])
    failed = int(totals[5]) + int(totals[6]) + sum(v for k, v in statuses.items() if k != "200")
    rps = float(match[2])
    if counted:  # -n mode: req/s over the whole run
        rps = requests / float(match[1]) if float(match[1]) else 0.0
    return Load(rps, requests, failed, p50, p99, mean, done.cpu, done.wall)


def wrk(bench: Bench, url: str, script: Path | None = None) -> Load:
    """A warm-up run (not counted: wrk has no warm-up option), then the timed one."""
    seconds = bench.seconds
    options = ["-t1", f"-c{bench.connections}", "--latency", "--timeout", "10s"]
    if script is not None:
        options += ["-s", str(script)]
    run_measured([bench.wrk_bin, *options, f"-d{max(1, round(bench.warmup))}s", url], bench.load_cpu, 60)
    done = run_measured([bench.wrk_bin, *options, f"-d{round(seconds)}s", url], bench.load_cpu, seconds + 60)
    return _parse_wrk(done)


def _parse_wrk(done: Finished) -> Load:
    out = done.stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if match is None or total is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {out[-800:]} {done.stderr[-800:]}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(non2xx[1]) if non2xx else 0
    if socket_errors:
        failed += sum(int(socket_errors[i]) for i in range(1, 5))

    def latency(label: str) -> float | None:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return None if found is None else float(found[1]) * _UNITS_MS[found[2]]

    mean = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    mean_ms = float(mean[1]) * _UNITS_MS[mean[2]] if mean else None
    return Load(float(match[1]), int(total[1]), failed, latency("50%"), latency("99%"), mean_ms, done.cpu, done.wall)
