#!/usr/bin/env python3
"""`make bench`: the performance comparisons of the todo service, written to benchmarks/results/.

Not part of `make check`; no test asserts a duration. Each comparison runs its
sides in the same run, alternating (round-robin, the order rotated every
round), `--rounds` times, and reports medians and ratios. Servers are pinned
to one core (`taskset -c 0`), load generators to the other (`taskset -c 1`):
h2load (Debian nghttp2-client) for gRPC, wrk (Debian) for HTTP. For every run
the CPU time of the server processes (from /proc) and the busy time of each
core (from /proc/stat) are recorded, so a run disturbed by other processes on
the server core shows up in the results as "foreign" CPU.

Sections (all by default, or `--sections a,b`):
  inmemory  1 layer overhead (service vs B0), 2 seed design (FastAPI), 3 grpcio
            release (B0 pinned vs latest), 4 uvloop, access-log cost; 9 profile
  list      6 a 50-entry page at 1,000 vs 100,000 entries (in-memory)
  memory    8 resident memory after 20,000 and 200,000 mixed requests
  mongo     5 MongoDB path (service vs raw driver, Motor vs PyMongo), 6 explain
  workers   7 TODO_WORKERS=2 vs 1 (on MongoDB, as workers need it)
Optional (`--sections`, not in `make bench`):
  grpcio    3 alone: B0 on the pinned, the newest and BENCH_GRPCIO_EXTRA grpcio releases

Everything benchmark-only lives in benchmarks/: b0_server.py (bare grpc.aio),
seed_app.py (FastAPI), bench_server.py (pre-filled in-memory service),
driver_bench.py (raw driver). Extra Python packages go to separate venvs under
benchmarks/.venv-* (FastAPI stack, the latest grpcio, py-spy), never to .venv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path[:0] = [str(REPO), str(REPO / "generated")]

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from todo.v1 import todo_service_pb2 as pb

SERVICE = "todo.v1.TodoService"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONTENT = "Buy milk and bread"
TAGS = ["home", "errands"]
PINNED_GRPCIO = grpc.__version__  # .venv holds what uv.lock pins


def _default_event_loop() -> str:
    """The service's default TODO_EVENT_LOOP: B0 and B1 run on the same loop, so layers are compared alike."""
    from service.infrastructure.config import Settings

    return str(getattr(Settings.from_env({}), "event_loop", "asyncio"))


DEFAULT_LOOP = _default_event_loop()
OTHER_LOOP = "asyncio" if DEFAULT_LOOP == "uvloop" else "uvloop"
MONGO_LIST_CONNECTIONS = 4
LOOP_FLAG = ["--uvloop"] if DEFAULT_LOOP == "uvloop" else []

# --------------------------------------------------------------------------
# Small utilities


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def frame(message: Message) -> bytes:
    """A gRPC length-prefixed message (uncompressed), as h2load sends it."""
    body = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def ms(seconds: float) -> str:
    """A duration as h2load takes it."""
    return f"{round(seconds * 1000)}ms"


def run_text(argv: list[str], timeout: float = 60) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    return (done.stdout + done.stderr).strip()


@dataclass
class Finished:
    stdout: str
    stderr: str
    returncode: int
    cpu: float  # CPU seconds of the command (user + system), from wait4
    wall: float


def run_measured(argv: list[str], cpus: str, timeout: float, cwd: Path | None = None) -> Finished:
    """Run a command pinned to `cpus`; its output, exit code and own CPU time (wait4's rusage)."""
    began = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", cpus, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    open_fds = {out_fd, err_fd}
    deadline = time.monotonic() + timeout
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            process.kill()
            break
        ready, _, _ = select.select(list(open_fds), [], [], min(left, 1.0))
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    process.stderr.close()
    return Finished(
        b"".join(chunks[out_fd]).decode(errors="replace"),
        b"".join(chunks[err_fd]).decode(errors="replace"),
        process.returncode,
        usage.ru_utime + usage.ru_stime,
        time.perf_counter() - began,
    )


# --------------------------------------------------------------------------
# /proc: CPU and memory of processes, busy time of cores


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def core_times() -> dict[str, tuple[int, int, int]]:
    """Per core: (busy, total, steal) in clock ticks."""
    result = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
            busy = user + nice + system + irq + softirq
            result[name] = (busy, busy + idle + iowait + steal, steal)
    return result


# --------------------------------------------------------------------------
# Processes started by the benchmark (and only those are ever stopped)

RUNNING: list[Proc] = []
Database = tuple["Proc | None", str]  # the FerretDB process (None: a MongoDB given by URI) and its URI


class Proc:
    """A long-running process (server, database) pinned to `cpus`; output to a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        cpus: str,
        logs: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready_line: bool = False,
    ) -> None:
        self.name = name
        self.cpus = cpus
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.popen = subprocess.Popen(
            ["taskset", "-c", cpus, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if ready_line else self._log,
            stderr=self._log,
            env=env,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C of make reaches run.py, which stops them in order
        )
        self.pid = self.popen.pid
        RUNNING.append(self)

    def read_line(self, timeout: float) -> str:
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"{self.name} printed nothing in {timeout:.0f}s (log: {self.log_path})")
        return self.popen.stdout.readline().decode().strip()

    def pids(self) -> list[int]:
        return [self.pid, *descendants(self.pid)]

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()
        if self in RUNNING:
            RUNNING.remove(self)


def stop_all() -> None:
    for proc in reversed(list(RUNNING)):
        proc.stop()


# --------------------------------------------------------------------------
# gRPC helpers (the orchestrator's own client, from .venv)


def wait_serving(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as error:
                last = error
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not SERVING after {timeout:.0f}s: {last}")


def call_raw(port: int, method: str, request: Message, timeout: float = 10) -> bytes:
    """One call; returns the serialized response (what B0 then serves canned)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        rpc = channel.unary_unary(f"/{SERVICE}/{method}", None, None)  # bytes in, bytes out
        return bytes(rpc(request.SerializeToString(), timeout=timeout))


def create_entries(port: int, count: int, prefix: str = "entry") -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        rpc = channel.unary_unary(f"/{SERVICE}/CreateTodo", None, None)
        for index in range(count):
            todo = pb.Todo(content=f"{prefix} {index}: {CONTENT}", tags=TAGS[: index % 3])
            rpc(pb.CreateTodoRequest(todo=todo).SerializeToString(), timeout=10)


def ensure_entry(port: int, entry_id: str) -> None:
    request = pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS), todo_id=entry_id)
    try:
        call_raw(port, "CreateTodo", request)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


_HANDLED = re.compile(r"^grpc_server_handled_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)", re.M)


def handled_codes(metrics_port: int | None) -> Counter[str]:
    """grpc_server_handled_total by (method, code) from the service's /metrics."""
    counts: Counter[str] = Counter()
    if metrics_port is None:
        return counts
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return counts
    for match in _HANDLED.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("grpc_service") == SERVICE:
            counts[f"{labels['grpc_method']}:{labels['grpc_code']}"] += int(float(match["value"]))
    return counts


# --------------------------------------------------------------------------
# Load generators


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


class Bench:
    """Settings of this run and the tools it drives."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seconds: float = args.seconds
        self.warmup: float = args.warmup
        self.rounds: int = args.rounds
        self.connections: int = args.connections
        self.streams: int = args.streams
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("the benchmark needs 2 cores: one for the server, one for the load generator")
        self.server_cpu = str(cpus[0])
        self.load_cpu = str(cpus[1])
        self.all_cpus = ",".join(str(c) for c in cpus[:2])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.work = BENCH / "work" / stamp
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.python = str(REPO / ".venv" / "bin" / "python")
        self.h2load_bin = shutil.which("h2load") or "h2load"
        self.wrk_bin = shutil.which("wrk") or "wrk"
        self.bodies: dict[str, Path] = {}

    def body(self, name: str, message: Message) -> Path:
        path = self.work / f"{name}.body"
        path.write_bytes(frame(message))
        self.bodies[name] = path
        return path

    def h2load(
        self,
        port: int,
        methods: list[str],
        body: Path,
        *,
        seconds: float | None = None,
        requests: int | None = None,
        connections: int | None = None,
        streams: int | None = None,
        tag: str = "run",
    ) -> Load:
        connections = connections or self.connections
        streams = streams or self.streams
        log_file = self.work / f"h2load-{tag}-{time.monotonic_ns()}.log"
        argv = [
            self.h2load_bin, "-t", "1", "-c", str(connections), "-m", str(streams),
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body),
            "--log-file", str(log_file),
        ]  # fmt: skip
        if requests is not None:
            argv += ["-n", str(requests)]
            timeout = 600.0
        else:
            argv += ["-D", ms(seconds or self.seconds), "--warm-up-time", ms(self.warmup)]
            timeout = (seconds or self.seconds) + self.warmup + 60
        argv += [f"http://127.0.0.1:{port}/{SERVICE}/{method}" for method in methods]
        done = run_measured(argv, self.load_cpu, timeout)
        return self._parse_h2load(done, log_file, requests is not None)

    @staticmethod
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

    def wrk(self, url: str, script: Path | None = None, seconds: float | None = None) -> Load:
        seconds = seconds or self.seconds
        options = ["-t1", f"-c{self.connections}", "--latency", "--timeout", "10s"]
        if script is not None:
            options += ["-s", str(script)]
        # wrk has no warm-up option: a short run first, not counted.
        run_measured([self.wrk_bin, *options, f"-d{max(1, round(self.warmup))}s", url], self.load_cpu, 60)
        done = run_measured([self.wrk_bin, *options, f"-d{round(seconds)}s", url], self.load_cpu, seconds + 60)
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
            if found is None:
                return None
            return float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]

        mean = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
        mean_ms = float(mean[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean[2]] if mean else None
        return Load(
            float(match[1]), int(total[1]), failed, latency("50%"), latency("99%"), mean_ms, done.cpu, done.wall
        )


# --------------------------------------------------------------------------
# Measurements: one run of one side, and the alternation of sides


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


def measure(
    bench: Bench,
    servers: list[Proc],
    load: Callable[[], Load],
    metrics_port: int | None = None,
    others: dict[str, Proc] | None = None,
    our_extra_pids: Callable[[], list[int]] | None = None,
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


@dataclass
class Side:
    key: str
    label: str
    run: Callable[[], Run]


def alternate(bench: Bench, sides: list[Side], results: dict[str, list[Run]], title: str) -> None:
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


def ratio(results: dict[str, list[Run]], a: str, b: str, attr: str = "rps") -> dict[str, Any]:
    """Median of A over median of B, and the per-round ratios (A_i / B_i)."""
    values_a = [getattr(r, attr) for r in results.get(a, [])]
    values_b = [getattr(r, attr) for r in results.get(b, [])]
    if not values_a or not values_b or None in values_a or None in values_b:
        return {"ratio": None, "per_round": []}
    return {
        "ratio": median(values_a) / median(values_b),
        "per_round": [round(x / y, 3) for x, y in zip(values_a, values_b, strict=False) if y],
    }


# --------------------------------------------------------------------------
# Set-up: tools and the benchmark-only virtual environments


def ensure_load_generators() -> None:
    missing = [name for name, tool in (("nghttp2-client", "h2load"), ("wrk", "wrk")) if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"install {' '.join(missing)} (Debian: apt-get install -y {' '.join(missing)})")
    log(f"installing {' '.join(missing)} with apt-get (Debian packages)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *missing]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def uv_env() -> dict[str, str]:
    return {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": ""}


def make_venv(uv: str, path: Path, requirements: list[str]) -> Path:
    """A venv at `path` with exactly `requirements` (uv, from PyPI); reused when it is already complete."""
    python = path / "bin" / "python"
    stamp = path / ".requirements"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating {path.relative_to(REPO)}: {' '.join(r for r in requirements if not r.startswith('-'))}")
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([uv, "venv", "-q", "--python", "python3.11", str(path)], env=uv_env(), check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *requirements], env=uv_env(), check=True)
    stamp.write_text(wanted)
    return python


def latest_version(uv: str, package: str) -> str:
    """The newest release of `package` that installs on Python 3.11 (uv's resolver, one look-up)."""
    done = subprocess.run(
        [uv, "pip", "compile", "-q", "--no-header", "--no-annotate", "--no-deps", "--python-version", "3.11", "-"],
        input=f"{package}\n",
        capture_output=True,
        text=True,
        env=uv_env(),
        check=True,
    )
    match = re.search(rf"^{package}==(\S+)$", done.stdout, re.M)
    if match is None:
        raise RuntimeError(f"cannot resolve the latest {package}: {done.stdout} {done.stderr}")
    return match[1]


def installed_version(python: Path | str, module: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    return run_text([str(python), "-c", code]).splitlines()[-1]


# --------------------------------------------------------------------------
# Starting the servers


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TODO_", "OTEL_", "PROMETHEUS_"))}
    env.update(extra)
    return env


@dataclass
class Server:
    proc: Proc
    port: int
    metrics_port: int | None = None
    health: bool = False  # serves grpc.health.v1 (the service does; B0, B1 do not)


def start_service(
    bench: Bench,
    name: str,
    cpus: str | None = None,
    entry: list[str] | None = None,
    port: int | None = None,
    metrics: bool = True,
    **env: str,
) -> Server:
    """`python -m service` (or a benchmark entry point) with TODO_* settings; waits for SERVING."""
    port = port or free_port()
    metrics_port = free_port() if metrics else None
    settings = {"TODO_GRPC_ADDRESS": f"127.0.0.1:{port}", **env}
    if metrics_port is not None:
        settings["TODO_METRICS_ADDRESS"] = f"127.0.0.1:{metrics_port}"
    argv = [bench.python, *(entry or ["-m", "service"])]
    proc = Proc(name, argv, cpus or bench.server_cpu, bench.logs, env=clean_env(**settings), cwd=REPO)
    return Server(proc, port, metrics_port, health=True)


def start_b0(bench: Bench, name: str, python: str, responses: Path) -> Server:
    proc = Proc(
        name,
        [python, str(BENCH / "b0_server.py"), "--port", "0", "--responses", str(responses), *LOOP_FLAG],
        bench.server_cpu,
        bench.logs,
        env=clean_env(),
        ready_line=True,
    )
    line = proc.read_line(60)
    if not line.startswith("ready "):
        raise RuntimeError(f"{name} did not start: {line!r} (log: {proc.log_path})")
    return Server(proc, int(line.split()[1]))


def start_b1(bench: Bench, name: str) -> Server:
    proc = Proc(
        name,
        [bench.python, str(BENCH / "b1_server.py"), "--port", "0", *LOOP_FLAG],
        bench.server_cpu,
        bench.logs,
        env=clean_env(),
        cwd=REPO,
        ready_line=True,
    )
    line = proc.read_line(60)
    if not line.startswith("ready "):
        raise RuntimeError(f"{name} did not start: {line!r} (log: {proc.log_path})")
    return Server(proc, int(line.split()[1]))


def start_seed(bench: Bench, name: str, python: str, access_log: bool) -> Server:
    port = free_port()
    argv = [python, "-m", "uvicorn", "seed_app:app", "--host", "127.0.0.1", "--port", str(port)]
    if not access_log:
        argv.append("--no-access-log")
    proc = Proc(name, argv, bench.server_cpu, bench.logs, env=clean_env(), cwd=BENCH)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/todos/bench-get", timeout=2) as response:
                if response.status == 200:
                    return Server(proc, port)
        except OSError:
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f"{name} did not start (log: {proc.log_path})") from None
            time.sleep(0.3)


def start_ferretdb(bench: Bench, binary: Path) -> Database:
    state = bench.work / "ferretdb"
    state.mkdir(exist_ok=True)
    argv = [str(binary), "-listen-addr", "127.0.0.1:0", "-state-dir", str(state), "-log-level", "error"]
    # FerretDB shares the load generator's core: the service's core stays its own.
    proc = Proc("ferretdb", argv, bench.load_cpu, bench.logs, env=clean_env(), ready_line=True)
    line = proc.read_line(60)
    if not line.startswith("ready "):
        raise RuntimeError(f"FerretDB did not start: {line!r} (log: {proc.log_path})")
    return proc, line.split()[1]


# --------------------------------------------------------------------------
# Sections


def grpc_side(
    bench: Bench,
    key: str,
    label: str,
    server: Server,
    method: str,
    body: Path,
    connections: int | None = None,
    **kw: Any,
) -> Side:
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
            lambda: bench.h2load(server.port, [method], body, connections=connections, tag=key.replace(":", "-")),
            server.metrics_port, **kw,
        )  # fmt: skip

    return Side(key, label, run)


def grpcio_venvs(bench: Bench, report: dict[str, Any]) -> dict[str, str]:
    """Python of a venv per grpcio release for B0: the pinned one (.venv), the newest, BENCH_GRPCIO_EXTRA."""
    uv = bench.args.uv
    latest = bench.args.grpcio_latest or latest_version(uv, "grpcio")
    pythons = {PINNED_GRPCIO: bench.python}
    for version in [latest, *bench.args.grpcio_extra]:
        if version not in pythons:
            # B0 needs grpcio only; protobuf is installed (newest) to check whether the generated code imports.
            venv = BENCH / f".venv-grpcio-{version}"
            extra = [f"uvloop=={installed_version(bench.python, 'uvloop')}"] if DEFAULT_LOOP == "uvloop" else []
            pythons[version] = str(make_venv(uv, venv, [f"grpcio=={version}", "protobuf", *extra]))
    generated_check = {}
    for version, python in pythons.items():
        code = (
            f"import sys; sys.path.insert(0, {str(REPO / 'generated')!r}); "
            "import google.protobuf, grpc; from todo.v1 import todo_service_pb2, todo_service_pb2_grpc; "
            "print('imports with protobuf', google.protobuf.__version__)"
        )
        generated_check[version] = {
            "protobuf": installed_version(python, "protobuf"),
            "generated_code": run_text([python, "-c", code]).splitlines()[-1][:300],
        }
    report["grpcio"] = {
        "pinned": PINNED_GRPCIO,
        "latest": latest,
        "extra": bench.args.grpcio_extra,
        "venvs": generated_check,
    }
    return pythons


def section_grpcio(bench: Bench, report: dict[str, Any]) -> None:
    """3 alone (not run by default): B0 GetTodo on the pinned, the newest and BENCH_GRPCIO_EXTRA releases."""
    pythons = grpcio_venvs(bench, report)
    responses = bench.work / "b0-responses"
    responses.mkdir(exist_ok=True)
    todo = pb.Todo(
        id="0123456789abcdef0123456789abcdef", content=CONTENT, tags=sorted(TAGS), etag='"1-19ad3f1a2bb"',
        create_time=Timestamp(seconds=1764500000, nanos=123000000),
        update_time=Timestamp(seconds=1764500000, nanos=123000000),
    )  # fmt: skip
    (responses / "GetTodo.bin").write_bytes(pb.GetTodoResponse(todo=todo).SerializeToString())
    get_body = bench.bodies.get("get") or bench.body("get", pb.GetTodoRequest(id="bench-get"))
    servers = {
        version: start_b0(bench, f"b0-grpcio-{version}", python, responses) for version, python in pythons.items()
    }
    sides = [
        grpc_side(bench, f"get:b0-grpcio-{version}", f"B0 grpcio {version}", server, "GetTodo", get_body)
        for version, server in sorted(servers.items(), key=lambda item: [int(p) for p in item[0].split(".")])
    ]
    results: dict[str, list[Run]] = {}
    alternate(bench, sides, results, "grpcio")
    report["grpcio_releases"] = {
        "runs": {key: [asdict(r) for r in runs] for key, runs in results.items()},
        "summary": {key: summary(runs) for key, runs in results.items()},
        "labels": {side.key: side.label for side in sides},
        "ratios": {
            f"B0 grpcio {version}/{PINNED_GRPCIO}": ratio(
                results, f"get:b0-grpcio-{version}", f"get:b0-grpcio-{PINNED_GRPCIO}"
            )
            for version in servers
            if version != PINNED_GRPCIO
        },
    }
    for server in servers.values():
        server.proc.stop()


def section_inmemory(bench: Bench, report: dict[str, Any]) -> None:
    """1 layer overhead, 2 seed design, 3 grpcio release, 4 uvloop, access log; then 9 profile."""
    args = bench.args
    uv = args.uv
    fastapi_python = str(make_venv(uv, BENCH / ".venv-fastapi", ["-r", str(BENCH / "requirements-fastapi.txt")]))
    grpcio_pythons = grpcio_venvs(bench, report)
    report["tools"]["fastapi_stack"] = {
        name: installed_version(fastapi_python, name)
        for name in (
            "fastapi",
            "starlette",
            "pydantic",
            "pydantic-core",
            "uvicorn",
            "uvloop",
            "httptools",
            "dependency-injector",
        )
    }

    get_body = bench.body("get", pb.GetTodoRequest(id="bench-get"))
    create_body = bench.body("create", pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS)))
    log("starting the service variants, B0 on each grpcio, and the seed app (all on the server core)")
    services = {
        "service": start_service(bench, "service"),
        f"service-{OTHER_LOOP}": start_service(bench, f"service-{OTHER_LOOP}", TODO_EVENT_LOOP=OTHER_LOOP),
        "service-log-warning": start_service(bench, "service-log-warning", TODO_LOG_LEVEL="WARNING"),
    }
    for server in services.values():
        wait_serving(server.port)
        ensure_entry(server.port, "bench-get")
    # B0 serves byte-for-byte what the service answers.
    responses = bench.work / "b0-responses"
    responses.mkdir(exist_ok=True)
    main = services["service"].port
    (responses / "GetTodo.bin").write_bytes(call_raw(main, "GetTodo", pb.GetTodoRequest(id="bench-get")))
    created = call_raw(main, "CreateTodo", pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS)))
    (responses / "CreateTodo.bin").write_bytes(created)
    b0s = {
        version: start_b0(bench, f"b0-grpcio-{version}", python, responses)
        for version, python in grpcio_pythons.items()
    }
    b1 = start_b1(bench, "b1-layers-without-wrapper")
    seed = start_seed(bench, "seed-fastapi", fastapi_python, access_log=True)
    seed_quiet = start_seed(bench, "seed-fastapi-no-access-log", fastapi_python, access_log=False)
    post_script = bench.work / "post.lua"
    post_script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps({'content': CONTENT, 'tags': TAGS})}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    report["payloads"] = {
        "GetTodoResponse_bytes": len((responses / "GetTodo.bin").read_bytes()),
        "CreateTodoResponse_bytes": len(created),
        "seed_get_bytes": len(urllib.request.urlopen(f"http://127.0.0.1:{seed.port}/todos/bench-get").read()),
    }

    pinned_b0 = b0s[PINNED_GRPCIO]
    B0_LABEL = f"B0 grpcio {PINNED_GRPCIO}, {DEFAULT_LOOP}"  # noqa: N806
    B1_LABEL = f"B1: service layers without the per-RPC wrapper, {DEFAULT_LOOP}"  # noqa: N806
    SERVICE_LABEL = f"service (defaults: {DEFAULT_LOOP})"  # noqa: N806
    uv_get, asyncio_get = (("get:service", f"get:service-{OTHER_LOOP}") if DEFAULT_LOOP == "uvloop"
                           else (f"get:service-{OTHER_LOOP}", "get:service"))  # fmt: skip
    uv_create, asyncio_create = ("create" + uv_get[3:], "create" + asyncio_get[3:])
    seed_get = f"http://127.0.0.1:{seed.port}/todos/bench-get"
    seed_quiet_get = f"http://127.0.0.1:{seed_quiet.port}/todos/bench-get"
    seed_post = f"http://127.0.0.1:{seed.port}/todos"
    sides = [
        grpc_side(bench, "get:b0", B0_LABEL, pinned_b0, "GetTodo", get_body),
        *[
            grpc_side(bench, f"get:b0-grpcio-{v}", f"B0 grpcio {v}, {DEFAULT_LOOP}", server, "GetTodo", get_body)
            for v, server in b0s.items() if v != PINNED_GRPCIO
        ],
        grpc_side(bench, "get:b1", B1_LABEL, b1, "GetTodo", get_body),
        grpc_side(bench, "get:service", SERVICE_LABEL, services["service"], "GetTodo", get_body),
        grpc_side(
            bench, f"get:service-{OTHER_LOOP}", f"service, TODO_EVENT_LOOP={OTHER_LOOP}",
            services[f"service-{OTHER_LOOP}"], "GetTodo", get_body,
        ),
        grpc_side(
            bench, "get:service-log-warning", "service, TODO_LOG_LEVEL=WARNING", services["service-log-warning"],
            "GetTodo", get_body,
        ),
        Side("get:seed", "seed FastAPI", lambda: measure(bench, [seed.proc], lambda: bench.wrk(seed_get))),
        Side(
            "get:seed-no-access-log", "seed FastAPI, --no-access-log",
            lambda: measure(bench, [seed_quiet.proc], lambda: bench.wrk(seed_quiet_get)),
        ),
        grpc_side(bench, "create:b0", B0_LABEL, pinned_b0, "CreateTodo", create_body),
        grpc_side(bench, "create:b1", B1_LABEL, b1, "CreateTodo", create_body),
        grpc_side(bench, "create:service", SERVICE_LABEL, services["service"], "CreateTodo", create_body),
        grpc_side(
            bench, f"create:service-{OTHER_LOOP}", f"service, TODO_EVENT_LOOP={OTHER_LOOP}",
            services[f"service-{OTHER_LOOP}"], "CreateTodo", create_body,
        ),
        Side(
            "create:seed", "seed FastAPI",
            lambda: measure(bench, [seed.proc], lambda: bench.wrk(seed_post, post_script)),
        ),
    ]  # fmt: skip
    results: dict[str, list[Run]] = {}
    alternate(bench, sides, results, "in-memory")
    report["inmemory"] = {
        "runs": {key: [asdict(r) for r in runs] for key, runs in results.items()},
        "summary": {key: summary(runs) for key, runs in results.items()},
        "labels": {side.key: side.label for side in sides},
        "ratios": {
            "get service/B0": ratio(results, "get:service", "get:b0"),
            "create service/B0": ratio(results, "create:service", "create:b0"),
            "get B1/B0 (cost of the layers)": ratio(results, "get:b1", "get:b0"),
            "get service/B1 (cost of the per-RPC wrapper)": ratio(results, "get:service", "get:b1"),
            "create B1/B0 (cost of the layers)": ratio(results, "create:b1", "create:b0"),
            "create service/B1 (cost of the per-RPC wrapper)": ratio(results, "create:service", "create:b1"),
            "get service/seed": ratio(results, "get:service", "get:seed"),
            "get service/seed per server CPU-s": ratio(results, "get:service", "get:seed", "rps_per_server_cpu"),
            "get service-log-warning/seed-no-access-log": ratio(
                results, "get:service-log-warning", "get:seed-no-access-log"
            ),
            "create service/seed": ratio(results, "create:service", "create:seed"),
            **{
                f"get B0 grpcio {v}/{PINNED_GRPCIO}": ratio(results, f"get:b0-grpcio-{v}", "get:b0")
                for v in b0s
                if v != PINNED_GRPCIO
            },
            "get service/B0 per server CPU-s": ratio(results, "get:service", "get:b0", "rps_per_server_cpu"),
            "create service/B0 per server CPU-s": ratio(results, "create:service", "create:b0", "rps_per_server_cpu"),
            "get service uvloop/asyncio": ratio(results, uv_get, asyncio_get),
            "create service uvloop/asyncio": ratio(results, uv_create, asyncio_create),
            "get service log WARNING/INFO (access log cost)": ratio(results, "get:service-log-warning", "get:service"),
        },
    }
    if "profile" not in args.skip:
        section_profile(bench, report, services["service"], get_body, create_body)
    for server in [*services.values(), *b0s.values(), b1, seed, seed_quiet]:
        server.proc.stop()


def section_profile(bench: Bench, report: dict[str, Any], server: Server, get_body: Path, create_body: Path) -> None:
    """9: py-spy samples the service (default settings, in-memory store) under Get and Create load."""
    report["profile"] = {
        method: profile_under_load(bench, server, method, body, method)
        for method, body in (("GetTodo", get_body), ("CreateTodo", create_body))
    }


def profile_under_load(bench: Bench, server: Server, method: str, body: Path, name: str) -> dict[str, Any]:
    """Sample `server` with py-spy (on the load core) for `bench.seconds` while h2load drives `method`."""
    python = make_venv(bench.args.uv, BENCH / ".venv-profile", ["-r", str(BENCH / "requirements-profile.txt")])
    pyspy = str(python.parent / "py-spy")
    output = bench.work / f"profile-{name.replace(' ', '-')}.txt"
    seconds = max(1, int(bench.seconds))
    load = subprocess.Popen(
        [
            "taskset", "-c", bench.load_cpu, bench.h2load_bin, "-t", "1", "-c", str(bench.connections),
            "-m", str(bench.streams), "-D", ms(seconds + 1), "--warm-up-time", ms(bench.warmup),
            "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body),
            f"http://127.0.0.1:{server.port}/{SERVICE}/{method}",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(bench.warmup + 0.5)
    done = run_measured(
        [pyspy, "record", "--pid", str(server.proc.pid), "--duration", str(seconds), "--rate", "250",
         "--nonblocking", "--format", "raw", "--output", str(output)],
        bench.load_cpu, seconds + 60,
    )  # fmt: skip
    out, _ = load.communicate(timeout=seconds + 60)
    rps = re.search(r"([\d.]+) req/s", out.decode())
    if done.returncode != 0 or not output.exists():
        return {"error": (done.stdout + done.stderr)[-600:]}
    result = {"rps_while_sampled": float(rps[1]) if rps else None, **analyse_profile(output)}
    log(f"profile {name}: {result['samples']} samples")
    return result


# Where the CPU goes, by the innermost Python frame of each sample (first match wins, so the shares add
# up to 100%). Leaf-based on purpose: py-spy --nonblocking reads stacks while the process runs, so outer
# frames are sometimes mixed up, but the innermost one is reliable. Native code (the Cython grpc core,
# protobuf's upb, datetime) counts for the Python frame that called it.
PROFILE_COMPONENTS: list[tuple[str, list[str]]] = [
    # With asyncio, grpc's Cython code runs under Handle._run; with uvloop the loop itself is native code too,
    # so both show up as the self time of Runner.run.
    ("native code under the event loop: grpc aio (Cython cygrpc), and with uvloop the loop itself",
     ["Handle._run (asyncio/events.py", "Runner.run (asyncio/runners.py"]),
    ("grpc threads (native poller)", ["Thread.run (threading.py"]),
    ("event loop, selector, tasks (asyncio)", ["(asyncio/", "(selectors.py", "(contextvars"]),
    ("logging: the access line and others (logging, logs.py, json)",
     ["(logging/", "(service/infrastructure/observability/logs.py", "(json/"]),
    ("prometheus_client (metrics)", ["(prometheus_client/"]),
    ("uuid4 (request id, entry id)", ["(uuid.py"]),
    ("per-RPC wrapper (grpc/handlers.py, deadline.py)",
     ["(service/infrastructure/grpc/handlers.py", "(service/infrastructure/deadline.py"]),
    ("servicer and message mapper (grpc/todo_entry*.py, protobuf)",
     ["(service/infrastructure/grpc/todo_entry", "(google/"]),
    ("use cases (application/)", ["(service/application/"]),
    ("domain (domain/)", ["(service/domain/"]),
    ("repositories, MongoStore (persistence/)", ["(service/infrastructure/persistence/"]),
    ("motor", ["(motor/"]),
    ("pymongo and bson", ["(pymongo/", "(bson/"]),
    ("thread pool, queues, locks (concurrent.futures, threading, queue)",
     ["(concurrent/", "(threading.py", "(queue.py"]),
    ("opentelemetry", ["(opentelemetry/"]),
    ("other", [""]),
]  # fmt: skip


def analyse_profile(path: Path) -> dict[str, Any]:
    """Top frames by self time, and the share of each component (by innermost frame)."""
    self_time: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        leaf = stack.split(";")[-1]
        total += count
        self_time[_short_frame(leaf)] += count
        for component, needles in PROFILE_COMPONENTS:
            if any(needle in leaf for needle in needles):
                components[component] += count
                break
    return {
        "samples": total,
        "top_self": [
            {"frame": frame, "samples": count, "share": count / total} for frame, count in self_time.most_common(15)
        ],
        "components": {name: components[name] / total for name, _ in PROFILE_COMPONENTS if total and components[name]},
    }


def _short_frame(frame: str) -> str:
    # "function (/path/to/site-packages/pkg/mod.py:123)" -> "function (pkg/mod.py:123)"
    return re.sub(r"\(/[^)]*?/(?:site-packages|lib/python3\.\d+|main)/", "(", frame)


def section_list(bench: Bench, report: dict[str, Any]) -> None:
    """6: a 50-entry page at 1,000 vs 100,000 entries, first page and a page in the middle."""
    sizes = bench.args.list_entries
    servers: dict[int, Server] = {}
    tokens: dict[int, str] = {}
    for size in sizes:
        token_file = bench.work / f"token-{size}.txt"
        servers[size] = start_service(
            bench, f"service-prefilled-{size}",
            entry=[str(BENCH / "bench_server.py"), "--entries", str(size), "--token-file", str(token_file)],
        )  # fmt: skip
    for size, server in servers.items():
        wait_serving(server.port, timeout=180)
        tokens[size] = (bench.work / f"token-{size}.txt").read_text()
    first = bench.body("list-first", pb.ListTodosRequest(page_size=50))
    sides = []
    for size, server in servers.items():
        middle = bench.body(f"list-middle-{size}", pb.ListTodosRequest(page_size=50, page_token=tokens[size]))
        sides += [
            grpc_side(bench, f"list-first:{size}", f"first page, {size:,} entries", server, "ListTodos", first),
            grpc_side(
                bench, f"list-middle:{size}", f"page in the middle, {size:,} entries", server, "ListTodos", middle
            ),
        ]
    results: dict[str, list[Run]] = {}
    alternate(bench, sides, results, "list")
    small, large = sizes[0], sizes[-1]
    report["list"] = {
        "entries": sizes,
        "runs": {key: [asdict(r) for r in runs] for key, runs in results.items()},
        "summary": {key: summary(runs) for key, runs in results.items()},
        "labels": {side.key: side.label for side in sides},
        "ratios": {
            f"first page p50 latency {large}/{small}": ratio(
                results, f"list-first:{large}", f"list-first:{small}", "p50_ms"
            ),
            f"middle page p50 latency {large}/{small}": ratio(
                results, f"list-middle:{large}", f"list-middle:{small}", "p50_ms"
            ),
            f"first page rps {large}/{small}": ratio(results, f"list-first:{large}", f"list-first:{small}"),
            f"middle page rps {large}/{small}": ratio(results, f"list-middle:{large}", f"list-middle:{small}"),
        },
    }
    for server in servers.values():
        server.proc.stop()


# The mixed traffic of the memory test: (share, methods (cycled), request). The store stays bounded:
# Create with a fixed request_id replays, Create/Delete of one fixed id race each other.
MEMORY_MIX: list[tuple[float, list[str], Message]] = [
    (0.45, ["GetTodo"], pb.GetTodoRequest(id="bench-mem")),
    (0.20, ["AddTag", "RemoveTag"], pb.AddTagRequest(id="bench-mem", tag="urgent")),
    (0.05, ["ListTodos"], pb.ListTodosRequest(page_size=50)),
    (0.10, ["CreateTodo"], pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS), request_id="bench-replay")),
    (0.10, ["CreateTodo"], pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS), todo_id="bench-tmp")),
    (0.10, ["DeleteTodo"], pb.DeleteTodoRequest(id="bench-tmp")),
]


def section_memory(bench: Bench, report: dict[str, Any]) -> None:
    """8: resident memory after 20,000 and after 200,000 mixed requests."""
    checkpoint, total = bench.args.memory_requests
    server = start_service(bench, "service-memory", entry=[str(BENCH / "bench_server.py"), "--entries", "1000"])
    wait_serving(server.port, timeout=120)
    bodies = [bench.body(f"mix-{i}", request) for i, (_, _, request) in enumerate(MEMORY_MIX)]
    points: list[dict[str, float]] = [{"after_requests": 0, "rss_kib": server.proc.rss_kib()}]
    codes_before = handled_codes(server.metrics_port)
    done = 0
    for target in (checkpoint, total):
        count = target - done
        began = time.perf_counter()
        processes = []
        for (share, methods, _), body in zip(MEMORY_MIX, bodies, strict=True):
            argv = [
                "taskset", "-c", bench.load_cpu, bench.h2load_bin, "-t", "1", "-c", "8", "-m", "1",
                "-n", str(int(count * share)), "-H", "content-type: application/grpc", "-H", "te: trailers",
                "-d", str(body), *[f"http://127.0.0.1:{server.port}/{SERVICE}/{m}" for m in methods],
            ]  # fmt: skip
            processes.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        sent = 0
        for process in processes:
            out, _ = process.communicate(timeout=900)
            found = re.search(r"requests: (\d+) total", out.decode())
            sent += int(found[1]) if found else 0
        done += sent
        time.sleep(1.0)
        points.append(
            {"after_requests": done, "rss_kib": server.proc.rss_kib(), "seconds": round(time.perf_counter() - began, 1)}
        )
        log(f"memory: {done:,} requests, RSS {points[-1]['rss_kib'] / 1024:.1f} MiB")
    codes_after = handled_codes(server.metrics_port)
    server.proc.stop()
    report["memory"] = {
        "points": points,
        "mix": [{"share": share, "methods": methods} for share, methods, _ in MEMORY_MIX],
        "codes": {k: codes_after[k] - codes_before.get(k, 0) for k in codes_after},
        "ratio": points[2]["rss_kib"] / points[1]["rss_kib"],
    }


def section_mongo(bench: Bench, report: dict[str, Any], ferretdb: Database) -> None:
    """5: the service on MongoDB (FerretDB) vs the raw driver; Motor vs PyMongo; 6: explain."""
    db_proc, uri = ferretdb
    report["database"] = (
        f"FerretDB {ferretdb_version()} (tools/ferretdb, SQLite backend)" if db_proc else "MongoDB at --mongodb-uri"
    )
    servers = {
        driver: start_service(
            bench, f"service-mongo-{driver}", TODO_MONGODB_URI=uri, TODO_MONGODB_DATABASE=f"bench_{driver}",
            TODO_MONGODB_DRIVER=driver,
        )
        for driver in ("motor", "pymongo")
    }  # fmt: skip
    for server in servers.values():
        wait_serving(server.port)
        ensure_entry(server.port, "bench-get")
        create_entries(server.port, bench.args.mongo_entries)
    get_body = bench.bodies.get("get") or bench.body("get", pb.GetTodoRequest(id="bench-get"))
    create_body = bench.bodies.get("create") or bench.body(
        "create", pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS))
    )
    list_body = bench.body("list-first", pb.ListTodosRequest(page_size=50))
    concurrency = bench.connections * bench.streams
    others = {"ferretdb": db_proc} if db_proc is not None else {}

    def driver_side(driver: str, operation: str) -> Side:
        def load() -> Load:
            done = run_measured(
                [bench.python, str(BENCH / "driver_bench.py"), "--driver", driver, "--operation", operation,
                 "--uri", uri, "--database", f"bench_{driver}", "--concurrency", str(concurrency),
                 "--seconds", str(bench.seconds), "--warmup", str(bench.warmup)],
                bench.server_cpu, bench.seconds + bench.warmup + 60,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"driver_bench failed: {done.stderr[-800:]}")
            data = json.loads(done.stdout.strip().splitlines()[-1])
            # The driver process is "the server" here: its CPU is reported as the server CPU.
            holder["cpu"] = done.cpu / done.wall
            return Load(data["rps"], data["ops"], 0, data["p50_ms"], data["p99_ms"], data["mean_ms"], 0.0, done.wall)

        holder: dict[str, float] = {}

        def run() -> Run:
            measured = measure(bench, [], load, others=others)
            measured.server_cpu = holder.get("cpu", float("nan"))
            measured.foreign_on_server_core = max(0.0, measured.server_core_busy - measured.server_cpu)
            return measured

        return Side(f"{operation}:driver-{driver}", f"raw {driver} driver", run)

    def service_side(driver: str, operation: str, method: str, body: Path, connections: int | None = None) -> Side:
        server = servers[driver]
        label = f"service, {driver}" + (f", {connections} connections" if connections else "")
        return grpc_side(
            bench, f"{operation}:service-{driver}", label, server, method, body, connections=connections, others=others
        )

    results: dict[str, list[Run]] = {}
    read_sides = [
        service_side("motor", "get", "GetTodo", get_body),
        service_side("pymongo", "get", "GetTodo", get_body),
        driver_side("motor", "get"),
        driver_side("pymongo", "get"),
    ]
    alternate(bench, read_sides, results, "mongo get")
    report["explain"] = explain_queries(uri, "bench_motor")
    if "profile" not in bench.args.skip:
        report["profile_mongo"] = {
            f"GetTodo on MongoDB, {driver}": profile_under_load(
                bench, servers[driver], "GetTodo", get_body, f"GetTodo-mongo-{driver}"
            )
            for driver in ("motor", "pymongo")
        }
    # ListTodos saturates FerretDB (a table scan, then a sort in FerretDB): its own block, on the
    # collection as the gets saw it (before the creates grow it), at 4 connections: at 64 the queue
    # of slow finds delays the readiness ping past its timeout and the service turns NOT_SERVING.
    list_sides = [
        service_side("motor", "list50", "ListTodos", list_body, connections=MONGO_LIST_CONNECTIONS),
        service_side("pymongo", "list50", "ListTodos", list_body, connections=MONGO_LIST_CONNECTIONS),
    ]
    alternate(bench, list_sides, results, "mongo list")
    write_sides = [
        service_side("motor", "create", "CreateTodo", create_body),
        service_side("pymongo", "create", "CreateTodo", create_body),
        driver_side("motor", "create"),
        driver_side("pymongo", "create"),
    ]
    alternate(bench, write_sides, results, "mongo create")
    for server in servers.values():
        server.proc.stop()
    inmemory = report.get("inmemory", {}).get("summary", {})
    b0_get = (inmemory.get("get:b0") or {}).get("rps")
    b0_create = (inmemory.get("create:b0") or {}).get("rps")
    summaries = {key: summary(runs) for key, runs in results.items()}
    harmonic = {}
    for driver in ("motor", "pymongo"):
        for operation, b0 in (("get", b0_get), ("create", b0_create)):
            raw = summaries.get(f"{operation}:driver-{driver}", {}).get("rps")
            service = summaries.get(f"{operation}:service-{driver}", {}).get("rps")
            if b0 and raw and service:
                h = 1 / (1 / b0 + 1 / raw)
                harmonic[f"{operation} {driver}"] = {
                    "B0": b0,
                    "driver": raw,
                    "H": h,
                    "service": service,
                    "service/H": service / h,
                }
    report["mongo"] = {
        "uri": uri,
        "concurrency": concurrency,
        "entries_per_database_before_writes": bench.args.mongo_entries + 1,
        "runs": {key: [asdict(r) for r in runs] for key, runs in results.items()},
        "summary": summaries,
        "labels": {side.key: side.label for side in read_sides + write_sides + list_sides},
        "harmonic": harmonic,
        "ratios": {
            "get motor/pymongo": ratio(results, "get:service-motor", "get:service-pymongo"),
            "create motor/pymongo": ratio(results, "create:service-motor", "create:service-pymongo"),
            "list50 motor/pymongo": ratio(results, "list50:service-motor", "list50:service-pymongo"),
            "get raw motor/pymongo": ratio(results, "get:driver-motor", "get:driver-pymongo"),
            "create raw motor/pymongo": ratio(results, "create:driver-motor", "create:driver-pymongo"),
        },
    }


def ferretdb_version() -> str:
    found = re.search(r"github.com/FerretDB/FerretDB (v\S+)", (REPO / "tools" / "ferretdb" / "go.mod").read_text())
    return found[1] if found else "v1"


def explain_queries(uri: str, database: str) -> dict[str, Any]:
    """The plans of GetTodo and the ListTodos queries, as the repository builds them."""
    import pymongo

    from service.domain.repository import Cursor, ListQuery
    from service.infrastructure.persistence.mongo.todo_entry import NEWEST_FIRST, list_filter

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    collection = client[database]["todos"]
    newest = collection.find_one(sort=NEWEST_FIRST)
    after = Cursor(newest["create_time"], newest["_id"]) if newest else None
    intended = {
        "GetTodo: _id": "_id_",
        "ListTodos: no filter": "newest_first",
        "ListTodos: next page (keyset)": "newest_first",
        "ListTodos: done=false": "done_newest_first",
        "ListTodos: tags=[home]": "tag_newest_first",
        "ListTodos: search": "newest_first (the regex is checked on the entries read in index order)",
        "CreateTodo replay: request_key": "request_key_unique",
    }
    queries = {
        "GetTodo: _id": ({"_id": "bench-get"}, None),
        "ListTodos: no filter": (list_filter(ListQuery(limit=51)), NEWEST_FIRST),
        "ListTodos: next page (keyset)": (list_filter(ListQuery(limit=51, after=after)), NEWEST_FIRST),
        "ListTodos: done=false": (list_filter(ListQuery(limit=51, done=False)), NEWEST_FIRST),
        "ListTodos: tags=[home]": (list_filter(ListQuery(limit=51, tags=frozenset({"home"}))), NEWEST_FIRST),
        "ListTodos: search": (list_filter(ListQuery(limit=51, search="milk")), NEWEST_FIRST),
        "CreateTodo replay: request_key": ({"request_key": "r:x"}, None),
    }
    plans: dict[str, Any] = {"server": {}, "indexes": sorted(collection.index_information())}
    info = client.admin.command("buildInfo")
    plans["server"] = {"version": info.get("version"), "ferretdb": info.get("ferretdbVersion")}
    for name, (query, sort) in queries.items():
        cursor = collection.find(query)
        if sort:
            cursor = cursor.sort(sort).limit(51)
        try:
            explained = cursor.explain()
        except pymongo.errors.PyMongoError as error:
            plans[name] = {"error": str(error)[:300]}
            continue
        planner = explained.get("queryPlanner", {})
        winning = planner.get("winningPlan", planner)
        plans[name] = {
            "filter": json.loads(json.dumps(query, default=str)),
            "winningPlan": json.loads(json.dumps(winning, default=str))[:1]
            if isinstance(winning, list)
            else json.loads(json.dumps(winning, default=str)),
            "pushdown": {k: v for k, v in explained.items() if "pushdown" in k.lower()},
            "index_used": _indexes_in(winning),
            "intended_index": intended[name],
        }
    client.close()
    return plans


def _indexes_in(plan: Any) -> list[str]:
    """Index names or SQLite index mentions found anywhere in a plan."""
    found: list[str] = []
    text = json.dumps(plan, default=str)
    found += re.findall(r'"indexName":\s*"([^"]+)"', text)
    found += re.findall(r"USING (?:COVERING )?INDEX (\S+)", text)
    found += re.findall(r"USING INTEGER PRIMARY KEY", text)
    if '"IXSCAN"' in text or "IDHACK" in text or "EXPRESS_IXSCAN" in text:
        found.append("IXSCAN")
    if "COLLSCAN" in text or re.search(r"\bSCAN\b(?! USING)", text):
        found.append("SCAN")
    return sorted(set(found))


def section_workers(bench: Bench, report: dict[str, Any], ferretdb: Database) -> None:
    """7: TODO_WORKERS=2 vs 1 on MongoDB (workers need it), GetTodo."""
    db_proc, uri = ferretdb
    one = start_service(
        bench, "service-workers-1", port=free_port(), TODO_WORKERS="1", TODO_MONGODB_URI=uri,
        TODO_MONGODB_DATABASE="bench_workers",
    )  # fmt: skip
    # Two workers get both cores (the load generator and FerretDB stay on the second one).
    two = start_service(
        bench, "service-workers-2", cpus=bench.all_cpus, port=free_port(), TODO_WORKERS="2", TODO_MONGODB_URI=uri,
        TODO_MONGODB_DATABASE="bench_workers",
    )  # fmt: skip
    for server in (one, two):
        wait_serving(server.port)
    ensure_entry(one.port, "bench-get")
    get_body = bench.bodies.get("get") or bench.body("get", pb.GetTodoRequest(id="bench-get"))
    others = {"ferretdb": db_proc} if db_proc is not None else {}
    sides = [
        grpc_side(bench, "get:workers-1", "TODO_WORKERS=1 (core 0)", one, "GetTodo", get_body, others=others),
        grpc_side(bench, "get:workers-2", "TODO_WORKERS=2 (cores 0-1)", two, "GetTodo", get_body, others=others),
    ]
    results: dict[str, list[Run]] = {}
    alternate(bench, sides, results, "workers")
    report["workers"] = {
        "processes": {"workers-1": len(one.proc.pids()), "workers-2": len(two.proc.pids())},
        "runs": {key: [asdict(r) for r in runs] for key, runs in results.items()},
        "summary": {key: summary(runs) for key, runs in results.items()},
        "labels": {side.key: side.label for side in sides},
        "ratios": {
            "rps 2/1": ratio(results, "get:workers-2", "get:workers-1"),
            "rps per server CPU-s 2/1": ratio(results, "get:workers-2", "get:workers-1", "rps_per_server_cpu"),
        },
    }
    one.proc.stop()
    two.proc.stop()


# --------------------------------------------------------------------------
# Machine and tool information


def machine_info() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    memory = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    return {
        "cpu_model": model[1].strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory[1]) / 1024 / 1024, 1) if memory else None,
        "kernel": platform.release(),
        "os": run_text(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "hypervisor": "yes" if "hypervisor" in cpuinfo else "no",
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def tool_info(bench: Bench) -> dict[str, Any]:
    return {
        "h2load": run_text([bench.h2load_bin, "--version"]).splitlines()[0],
        "wrk": run_text([bench.wrk_bin, "-v"]).splitlines()[0].split(" [")[0],
        "uv": run_text([bench.args.uv, "--version"]),
        "grpcio (pinned, .venv)": PINNED_GRPCIO,
        "protobuf (.venv)": installed_version(bench.python, "protobuf"),
        "motor": installed_version(bench.python, "motor"),
        "pymongo": installed_version(bench.python, "pymongo"),
        "uvloop": installed_version(bench.python, "uvloop"),
        "prometheus-client": installed_version(bench.python, "prometheus-client"),
        "taskset": run_text(["taskset", "--version"]),
    }


# --------------------------------------------------------------------------
# The report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: measured value, target, met or not."""
    rows: list[dict[str, Any]] = []

    def add(item: str, what: str, value: float | None, target: str, met: bool | None, note: str = "") -> None:
        rows.append({"item": item, "what": what, "value": value, "target": target, "met": met, "note": note})

    inm = report.get("inmemory", {}).get("ratios", {})
    if inm:
        r = inm["get service/B0"]["ratio"]
        add("1", "GetTodo: service / B0 (rps)", r, ">= 0.85", r is not None and r >= 0.85)
        r = inm["create service/B0"]["ratio"]
        add("1", "CreateTodo: service / B0 (rps)", r, ">= 0.80", r is not None and r >= 0.80)
        r = inm["get service/seed"]["ratio"]
        add("2", "GetTodo service / seed FastAPI GET (rps, one core each)", r, ">= 1.0", r is not None and r >= 1.0)
        r = inm["get service/seed per server CPU-s"]["ratio"]
        add("2", "... per server CPU-second", r, ">= 1.0", r is not None and r >= 1.0)
        for key, value in inm.items():
            if key.startswith("get B0 grpcio"):
                add("3", f"B0 {key[len('get B0 grpcio ') :]} (rps)", value["ratio"], "report; pin the fastest", None)
        r = inm["get service uvloop/asyncio"]["ratio"]
        add("4", "GetTodo uvloop / asyncio (rps)", r, ">= 1.05 to adopt", r is not None and r >= 1.05)
        r = inm["create service uvloop/asyncio"]["ratio"]
        add("4", "CreateTodo uvloop / asyncio (rps)", r, ">= 1.05 to adopt", r is not None and r >= 1.05)
        r = inm["get service log WARNING/INFO (access log cost)"]["ratio"]
        add("-", "access log cost: GetTodo LOG_LEVEL=WARNING / INFO (rps)", r, "report", None)
    mongo = report.get("mongo", {})
    for key, value in mongo.get("harmonic", {}).items():
        add("5", f"MongoDB {key}: service / H", value["service/H"], ">= 0.80", value["service/H"] >= 0.80)
    for key, value in mongo.get("ratios", {}).items():
        if not key.startswith(("get raw", "create raw")):
            add("5", f"{key} (service rps)", value["ratio"], "report (Motor stays default)", None)
    lst = report.get("list", {}).get("ratios", {})
    for key, value in lst.items():
        if "latency" in key:
            r = value["ratio"]
            add("6", f"ListTodos {key}", r, "<= 1.5", r is not None and r <= 1.5)
    workers = report.get("workers", {}).get("ratios", {})
    if workers:
        r = workers["rps per server CPU-s 2/1"]["ratio"]
        add("7", "workers 2/1: rps per server CPU-second", r, ">= 0.85", r is not None and r >= 0.85)
        r = workers["rps 2/1"]["ratio"]
        add("7", "workers 2/1: total rps", r, "> 1.0", r is not None and r > 1.0)
    memory = report.get("memory")
    if memory:
        r = memory["ratio"]
        add("8", "RSS after 200,000 / after 20,000 mixed requests", r, "<= 1.1", r <= 1.1)
    if report.get("profile"):
        add("9", "profile of Get and Create (top frames below)", None, "listed", True)
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines: list[str] = []
    out = lines.append
    settings = report["settings"]
    out(f"# Benchmark results {report['date']}")
    out("")
    out(
        f"`make bench` ({report['duration_s'] / 60:.1f} min). Each comparison alternates its sides in one run, "
        f"{settings['rounds']} rounds of {settings['seconds']:g} s per side "
        f"(+{settings['warmup']:g} s warm-up not counted); "
        f"medians and median ratios. Server processes pinned to core {settings['server_cpu']} "
        f"(`taskset`), load generators (h2load for gRPC, wrk for HTTP) to core {settings['load_cpu']}; "
        f"{settings['connections']} connections x {settings['streams']} stream(s) for gRPC, "
        f"{settings['connections']} connections for HTTP. Servers log as configured by default (JSON access "
        "line per RPC on stderr, to a file; uvicorn's own access log for the seed). Server CPU: utime+stime of "
        "the server's processes (/proc) per wall second; foreign / steal: the server core's busy time not used "
        "by the server, and hypervisor steal on it (/proc/stat). Errors: transport failures plus non-OK status "
        "codes from the service's /metrics (CANCELLED at the end of a timed run, the RPCs h2load left in "
        "flight, excluded)."
    )
    out("")
    m = report["machine"]
    out(
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, kernel {m['kernel']}, "
        f"Python {m['python']}, load average at start {' '.join(m['loadavg_at_start'])}."
    )
    out("")
    tools = [v if v.startswith(k) else f"{k} {v}" for k, v in report["tools"].items() if isinstance(v, str)]
    out("Tools: " + ", ".join(tools) + ".")
    if "fastapi_stack" in report["tools"]:
        out(
            "Seed stack (benchmarks/.venv-fastapi): "
            + ", ".join(f"{k} {v}" for k, v in report["tools"]["fastapi_stack"].items())
            + "."
        )
    out("")
    out("## Targets")
    out("")
    out("| # | comparison | measured | target | met |")
    out("| --- | --- | --- | --- | --- |")
    for row in report["targets"]:
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        out(f"| {row['item']} | {row['what']} | {fmt(row['value'], 3)} | {row['target']} | {met} |")
    out("")
    for title, key in (
        ("In-memory store: layers, seed design, grpcio, uvloop, access log", "inmemory"),
        ("ListTodos scaling (in-memory)", "list"),
        ("MongoDB", "mongo"),
        ("Workers (MongoDB)", "workers"),
        ("grpcio releases: B0 GetTodo only", "grpcio_releases"),
    ):
        section = report.get(key)
        if not section:
            continue
        out(f"## {title}")
        out("")
        if key == "mongo":
            out(
                f"{report.get('database', 'FerretDB')} on core "
                f"{settings['load_cpu']} with the load generator; the service (or the raw-driver process) on core "
                f"{settings['server_cpu']}; concurrency {section['concurrency']} "
                f"(ListTodos on FerretDB: {MONGO_LIST_CONNECTIONS} connections). "
                "H = 1 / (1/B0 + 1/driver), with B0 from the in-memory section of this run."
            )
            out("")
        if key == "workers":
            out(
                f"TODO_WORKERS=1 pinned to core {settings['server_cpu']}; TODO_WORKERS=2 on both cores "
                f"({settings['server_cpu']},{settings['load_cpu']}), sharing core {settings['load_cpu']} with h2load "
                "and FerretDB. Server CPU = utime+stime of the parent and every worker from /proc, per wall second; "
                "metrics on in both (multiprocess mode with 2 workers, as production would run it)."
            )
            out("")
        out(
            "| side | rps (median) | per round | p50 ms | p99 ms | server CPU | rps per server CPU-s "
            "| foreign / steal on server core (max) | errors |"
        )
        out("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for side, s in section["summary"].items():
            label = section["labels"].get(side, side)
            out(
                f"| `{side}` {label} | {fmt(s['rps'])} | {', '.join(fmt(v) for v in s['rps_all'])} | "
                f"{fmt(s['p50_ms'], 2)} | "
                f"{fmt(s['p99_ms'], 2)} | {fmt(s['server_cpu'], 2)} | {fmt(s['rps_per_server_cpu'])} | "
                f"{fmt(s['foreign_on_server_core_max'], 2)} / {fmt(s['steal_max'], 2)} | {s['errors']} |"
            )
        out("")
        out("| ratio | median ratio | per round |")
        out("| --- | --- | --- |")
        for name, value in section["ratios"].items():
            out(f"| {name} | {fmt(value['ratio'], 3)} | {', '.join(str(v) for v in value['per_round'])} |")
        out("")
        if key == "mongo" and section.get("harmonic"):
            out("| operation | B0 rps | raw driver rps | H | service rps | service / H |")
            out("| --- | --- | --- | --- | --- | --- |")
            for name, h in section["harmonic"].items():
                out(
                    f"| {name} | {fmt(h['B0'])} | {fmt(h['driver'])} | {fmt(h['H'])} | {fmt(h['service'])} | "
                    f"{fmt(h['service/H'], 3)} |"
                )
            out("")
    if report.get("grpcio"):
        g = report["grpcio"]
        out("## grpcio releases")
        out("")
        out(
            f"Pinned (uv.lock): {g['pinned']}; latest on PyPI at run time: {g['latest']}. Generated code "
            "(`generated/`, protobuf 6.31 gencode, grpcio >= 1.78.2) in each B0 venv:"
        )
        out("")
        for version, check in g["venvs"].items():
            out(f"- grpcio {version}, protobuf {check['protobuf']}: {check['generated_code']}")
        out("")
    if report.get("explain"):
        out("## MongoDB query plans (explain)")
        out("")
        ex = report["explain"]
        out(f"Server: {ex['server']}; indexes: {', '.join(ex['indexes'])}.")
        out("")
        out("| query | filter | intended index | plan | pushdown (FerretDB) |")
        out("| --- | --- | --- | --- | --- |")
        for name, plan in ex.items():
            if name in ("server", "indexes"):
                continue
            if "error" in plan:
                out(f"| {name} | | error: {plan['error']} | |")
                continue
            shown = json.dumps(plan["winningPlan"])[:160].replace("|", "/")
            out(
                f"| {name} | `{json.dumps(plan['filter'])[:100]}` | {plan['intended_index']} | {shown} | "
                f"{json.dumps(plan['pushdown'])} |"
            )
        out("")
    if report.get("memory"):
        mem = report["memory"]
        out("## Memory (in-memory store, 1,000 entries, mixed traffic)")
        out("")
        out(
            "Mix: "
            + ", ".join(f"{int(m['share'] * 100)}% {'/'.join(m['methods'])}" for m in mem["mix"])
            + " (Create with a fixed request_id replays; Create and Delete of one fixed id race, "
            "so the store stays bounded)."
        )
        out("")
        out("| after requests | RSS MiB |")
        out("| --- | --- |")
        for point in mem["points"]:
            out(f"| {point['after_requests']:,} | {point['rss_kib'] / 1024:.1f} |")
        out("")
        out("Status codes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(mem["codes"].items()) if v) + ".")
        out("")
    for profile_key, profile_title in (
        ("profile", "Profile (py-spy, service with default settings, in-memory store)"),
        ("profile_mongo", "Profile of the MongoDB path (py-spy, FerretDB)"),
    ):
        if not report.get(profile_key):
            continue
        out(f"## {profile_title}")
        out("")
        out(
            "py-spy 0.4.3 `record --nonblocking --rate 250` (the server is not paused, so it keeps its speed) "
            f"for {max(1, int(settings['seconds']))} s under the same h2load load; shares are of the samples in "
            "which a thread of the server was running (idle threads are not sampled), all threads together."
        )
        out("")
        for method, prof in report[profile_key].items():
            if "error" in prof:
                out(f"{method}: profiling failed: {prof['error']}")
                continue
            out(f"### {method} ({prof['samples']} samples, {fmt(prof['rps_while_sampled'])} rps while sampled)")
            out("")
            out("Top frames by self time:")
            out("")
            out("| self % | frame |")
            out("| --- | --- |")
            for row in prof["top_self"]:
                out(f"| {row['share'] * 100:.1f} | `{row['frame']}` |")
            out("")
            out("Self time by component (innermost Python frame; native code counts for its Python caller):")
            out("")
            out("| component | % of samples |")
            out("| --- | --- |")
            for group, share in sorted(prof["components"].items(), key=lambda item: -item[1]):
                out(f"| {group} | {share * 100:.1f} |")
            out("")
    if report.get("errors"):
        out("## Sections that failed")
        out("")
        for name, error in report["errors"].items():
            out(f"- {name}: `{error.splitlines()[-1] if error else ''}`")
        out("")
    out("Raw figures, every run: the `.json` file next to this one.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------


SECTIONS = ("inmemory", "list", "memory", "mongo", "workers")
OPTIONAL_SECTIONS = ("grpcio",)  # not run by default


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "5")))
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--skip", default="", help="e.g. profile")
    parser.add_argument("--uv", default=str(REPO / ".tools" / "uv" / "bin" / "uv"))
    parser.add_argument("--ferretdb", default=str(REPO / ".tools" / "bin" / "todo-ferretdb"))
    parser.add_argument(
        "--mongodb-uri",
        default=os.environ.get("BENCH_MONGODB_URI", ""),
        help="a running MongoDB for the mongo and workers sections instead of the FerretDB test server",
    )
    parser.add_argument("--grpcio-latest", default="", help="default: the newest grpcio on PyPI")
    parser.add_argument(
        "--grpcio-extra", default=os.environ.get("BENCH_GRPCIO_EXTRA", ""), help="more grpcio releases for B0"
    )
    parser.add_argument("--list-entries", default="1000,100000")
    parser.add_argument("--memory-requests", default="20000,200000")
    parser.add_argument("--mongo-entries", type=int, default=200)
    parser.add_argument("--results", default=str(BENCH / "results"))
    parser.add_argument("--keep-work", action="store_true", help="keep benchmarks/work/<stamp> (logs, profiles)")
    args = parser.parse_args()
    args.sections = [s for s in args.sections.split(",") if s]
    args.skip = [s for s in args.skip.split(",") if s]
    args.grpcio_extra = [v for v in args.grpcio_extra.replace(",", " ").split() if v]
    args.list_entries = [int(v) for v in args.list_entries.split(",")]
    args.memory_requests = [int(v) for v in args.memory_requests.split(",")]
    unknown = set(args.sections) - set(SECTIONS) - set(OPTIONAL_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    return args


def main() -> int:
    args = parse_args()
    began = time.perf_counter()
    ensure_load_generators()
    if not Path(args.uv).exists():
        raise SystemExit(f"no uv at {args.uv}: run `make install` first (or pass --uv)")
    bench = Bench(args)

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "tools": tool_info(bench),
        "settings": {
            "seconds": bench.seconds, "warmup": bench.warmup, "rounds": bench.rounds,
            "connections": bench.connections, "streams": bench.streams,
            "server_cpu": bench.server_cpu, "load_cpu": bench.load_cpu, "sections": args.sections,
        },
        "errors": {},
    }  # fmt: skip
    log(f"work directory {bench.work.relative_to(REPO)}; sections {', '.join(args.sections)}")
    ferretdb: Database | None = None
    try:
        for name in args.sections:
            section_began = time.perf_counter()
            try:
                if name == "inmemory":
                    section_inmemory(bench, report)
                elif name == "list":
                    section_list(bench, report)
                elif name == "memory":
                    section_memory(bench, report)
                elif name == "grpcio":
                    section_grpcio(bench, report)
                else:
                    if ferretdb is None:
                        ferretdb = (
                            (None, args.mongodb_uri) if args.mongodb_uri else start_ferretdb(bench, Path(args.ferretdb))
                        )
                    if name == "mongo":
                        section_mongo(bench, report, ferretdb)
                    else:
                        section_workers(bench, report, ferretdb)
            except Exception:  # one failed section must not lose the others
                report["errors"][name] = traceback.format_exc()
                log(f"section {name} FAILED:\n{report['errors'][name]}")
                for proc in list(RUNNING):
                    if ferretdb is None or proc is not ferretdb[0]:
                        proc.stop()
            report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - section_began, 1)
            log(f"section {name} done in {time.perf_counter() - section_began:.0f}s")
    finally:
        stop_all()
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    report["duration_s"] = round(time.perf_counter() - began, 1)
    report["targets"] = targets(report)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stem = datetime.now(UTC).strftime("%Y-%m-%d")
    (results / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (results / f"{stem}.md").write_text(markdown(report))
    if not args.keep_work:
        shutil.rmtree(bench.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            bench.work.parent.rmdir()  # benchmarks/work, when nothing else is kept there
    log(f"wrote {results / stem}.md and .json in {report['duration_s'] / 60:.1f} min")
    for row in report["targets"]:
        met = {True: "met", False: "NOT MET", None: ""}[row["met"]]
        log(f"  [{row['item']}] {row['what']}: {fmt(row['value'], 3)} (target {row['target']}) {met}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
