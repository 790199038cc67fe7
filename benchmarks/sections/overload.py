"""10: overload (issue 19): what a refusal costs, and who gets served past capacity.

Parts, each on the service with its default settings (in-memory store, plus
the dedicated health listener the Kubernetes manifests use) and on bare
grpc.aio (B0, gRPC's defaults) where a bare server means something:

1. `refusal_cost`: server CPU per call at a fixed offered rate (h2load, or
   h2flood for refused streams), unthrottled, for each point where a call can
   be refused: HTTP/2 REFUSED_STREAM (gRPC core, before a call exists),
   grpc.aio's `maximum_concurrent_rpcs`, a refusal from a Python handler (B0's
   and the service's own refusal path). f = CPU per refused call / CPU per
   served call on the same server.
2. `busy_connection`: one well-behaved connection with 64 calls in flight
   (ghz, 1 connection x 64 callers, GetTodo): the service with its defaults
   against the service as it was configured before (100 streams per
   connection, overload protection off), alternated; throughput ratio.
3. The rest runs with the servers' core throttled by a CPU quota
   (`QUOTA_PERCENT` of core 0, cgroup), so that ghz, on the other core, can
   offer several times their capacity: capacity (h2load 4 x 16), then the
   steps: ghz floods (8 connections, 1,000 callers, 100 ms deadlines) at
   0.5x, 1x, 2x, 4x capacity and as fast as it goes, while a victim (its own
   connection, 100 calls/s, 100 ms deadlines) and a health prober (a new
   connection per Check, liveness and readiness, main and health ports) run.
4. `recovery`: a steady 0.5x caller (100 ms deadlines) runs through a 9 s
   flood at ghz's full rate and for 4 s after it; its goodput in 250 ms bins.
   `levers`: the steps at 2x and at ghz's full rate again with each server
   lever taken away in turn (the settings before issue 19, overload
   protection off, 32 and 64 streams per connection).
5. `cooperating`: the project's Python client (benchmarks/cooperating.py,
   open loop) at 2x and 4x the service's capacity, at its defaults and with
   each part of its overload control taken away in turn.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from benchmarks.common import BENCH, REPO, Report, free_port, log
from benchmarks.context import Bench
from benchmarks.environment import installed_version, latest_version, make_venv
from benchmarks.ghz import Callers, GhzResult, ghz, ghz_run
from benchmarks.grpc_calls import ensure_entry, handled_codes, wait_serving, write_b0_responses
from benchmarks.launch import Server, loop_flag, start_b0, start_service
from benchmarks.procs import CpuQuota, Proc, run_measured
from todo.v1 import todo_service_pb2 as pb

# The servers' core for the flood steps: 75% gives the service about the capacity of the machine issue 19 was
# measured on (~2,500 GetTodo/s; here ~2,000-2,400), where ghz reaches a bit more than 2x; and a slower one for
# the cooperating client, a Python load generator that can offer 4x only of a small capacity.
QUOTA_PERCENT = 75.0
COOPERATING_QUOTA_PERCENT = 10.0
# The flood at nice 10 on the shared load core: the victim's and the prober's client side stand for callers
# on other machines, which the flood's own CPU use would not slow down.
FLOOD = Callers(connections=8, callers=1000, deadline_ms=100, nice=10)
VICTIM = Callers(connections=1, callers=10, deadline_ms=100, rate=100.0)
# The recovery step's steady caller (its rate: half the capacity): at most 100 calls in flight over 16
# connections, well under their stream limit, as a compliant caller keeps.
STEADY = Callers(connections=16, callers=100, deadline_ms=100)
STEPS = (0.5, 1.0, 2.0, 4.0, 0.0)  # multiples of capacity; 0: as fast as ghz goes
GET = '{"id":"bench-get"}'
# The service as configured before issue 19: 100 streams per connection, gRPC's overload protection off.
BEFORE = {"TODO_MAX_CONCURRENT_STREAMS": "100", "TODO_GRPC_OVERLOAD_PROTECTION": "false"}
# Each server lever taken away in turn (the flood steps at 2x and ghz's full rate, under the same quota).
LEVERS = {
    "before issue 19 (100 streams, protection off)": BEFORE,
    "16 streams, protection off": {"TODO_GRPC_OVERLOAD_PROTECTION": "false"},
    "32 streams, protection on": {"TODO_MAX_CONCURRENT_STREAMS": "32"},
    "64 streams, protection on": {"TODO_MAX_CONCURRENT_STREAMS": "64"},
}
H2FLOOD = REPO / ".tools" / "bin" / "h2flood"


def run(bench: Bench, report: Report) -> None:
    section: dict[str, Any] = {
        "quota_percent": QUOTA_PERCENT,
        "flood": asdict(FLOOD),
        "victim": asdict(VICTIM),
        "steady": asdict(STEADY),
    }
    report["overload"] = section
    protoset = _protoset(bench.work)
    responses = bench.work / "overload-responses"
    seconds = max(2.0, bench.seconds)

    service = _service(bench, "overload-service")
    ensure_entry(service.port, "bench-get")
    write_b0_responses(service.port, responses)

    section["refusal_cost"] = _refusal_costs(bench, service, responses, seconds)
    section["busy_connection"] = _busy_connection(bench, protoset, service, seconds)

    quota = CpuQuota(f"todo-bench-{bench.work.name}", QUOTA_PERCENT)
    try:
        b0 = start_b0(bench, "overload-b0", bench.python, responses)
        servers = {"service": service, "b0": b0}
        for server in servers.values():
            quota.add(server.proc)
        section["quota_percent"] = round(quota.percent, 1)
        capacity = {name: _capacity(bench, protoset, server, seconds) for name, server in servers.items()}
        section["capacity_rps"] = {name: round(value) for name, value in capacity.items()}
        log(f"overload: capacity under the quota {section['capacity_rps']}")
        section["steps"] = {
            name: [_step(bench, protoset, server, capacity[name], multiple, seconds) for multiple in STEPS]
            for name, server in servers.items()
        }
        section["recovery"] = {
            name: _recovery(bench, protoset, server, capacity[name]) for name, server in servers.items()
        }
        b0.proc.stop()
        section["levers"] = {}
        for lever, env in LEVERS.items():
            variant = _service(bench, "overload-lever", env)
            ensure_entry(variant.port, "bench-get")
            quota.add(variant.proc)
            lever_capacity = _capacity(bench, protoset, variant, seconds)
            section["levers"][lever] = {
                "capacity_rps": round(lever_capacity),
                "steps": [_step(bench, protoset, variant, lever_capacity, m, seconds) for m in (2.0, 0.0)],
            }
            variant.proc.stop()
    finally:
        quota.close()
    slow = CpuQuota(f"todo-bench-slow-{bench.work.name}", COOPERATING_QUOTA_PERCENT)
    try:
        slow.add(service.proc)
        section["cooperating"] = _cooperating(bench, service, seconds)
        section["cooperating"]["quota_percent"] = round(slow.percent, 1)
    finally:
        slow.close()


# -- set-up ---------------------------------------------------------------------------------------


def _service(bench: Bench, name: str, env: dict[str, str] | None = None) -> Server:
    """The service with its default settings (but `env`), plus the dedicated health listener (as in Kubernetes)."""
    health_port = free_port()
    settings = {"TODO_HEALTH_ADDRESS": f"127.0.0.1:{health_port}", **(env or {})}
    server = start_service(bench, name, None, None, None, **settings)
    server.health_port = health_port
    wait_serving(server.port)
    return server


def _protoset(work: Path) -> Path:
    """The todo.v1 descriptors with their imports, as ghz's --protoset reads them."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(descriptor: Any) -> None:
        if descriptor.name in files:
            return
        for dependency in descriptor.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor.CopyToProto(proto)
        files[descriptor.name] = proto

    add(pb.DESCRIPTOR)
    path = work / "todo.protoset"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString())
    return path


def _h2load_completed(bench: Bench, port: int, body: Path, argv_extra: list[str], seconds: float) -> tuple[int, float]:
    """h2load on the load core; (calls answered with HTTP 200, wall seconds).

    Streams the server refused (RST_STREAM) are not counted: h2load counts them
    as "done" too, and under gRPC's overload protection a saturated server
    refuses many of a client's streams even when it keeps to the stream limit.
    """
    argv = [
        bench.h2load_bin, "-t", "1", "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-d", str(body), *argv_extra, f"http://127.0.0.1:{port}/todo.v1.TodoService/GetTodo",
    ]  # fmt: skip
    done = run_measured(argv, bench.load_cpu, seconds + 60)
    totals = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", done.stdout)
    if totals is None:
        raise RuntimeError(f"h2load failed ({done.returncode}): {done.stdout[-400:]} {done.stderr[-400:]}")
    return int(totals[4]), done.wall


def _capacity(bench: Bench, protoset: Path, server: Server, seconds: float) -> float:
    """GetTodo calls answered per second at saturation by callers shaped like the flood's: ghz, 16 connections
    x 8 callers (under the stream limit), 5 s deadlines; the best of two runs.

    h2load would give a higher figure under a CPU quota (its 64 x 8 streams queue more calls per wake-up of
    the server), one that ghz-shaped traffic never gets: 0.5x of it was 0.9x for the recovery caller.
    """
    shape = Callers(connections=16, callers=128, deadline_ms=5000)
    rates = [
        ghz(protoset, server.port, "GetTodo", GET, shape, cpus=bench.load_cpu, out=bench.work / "capacity.json",
            seconds=seconds).ok_per_second
        for _ in range(2)
    ]  # fmt: skip
    return max(rates)


def _h2load_capacity(bench: Bench, server: Server, seconds: float) -> float:
    """The same with h2load: the best of 16 connections x 4 streams and 64 x 8 (for the cooperating client)."""
    body = bench.body("get", pb.GetTodoRequest(id="bench-get"))
    rates = []
    for connections, streams in ((16, 4), (64, 8)):
        argv = ["-c", str(connections), "-m", str(streams), "-D", f"{seconds:g}s", "--warm-up-time", "500ms"]
        completed, _wall = _h2load_completed(bench, server.port, body, argv, seconds)
        rates.append(completed / seconds)
    return max(rates)


# -- 1. what a refusal costs ----------------------------------------------------------------------


def _cpu_per_call(proc: Proc, load: Callable[[], int]) -> dict[str, float]:
    """CPU-us of `proc` per call while `load` runs (it returns the calls it made)."""
    time.sleep(0.5)
    before = proc.cpu()
    calls = load()
    time.sleep(0.3)  # what the server does after the last reply
    cpu = proc.cpu() - before
    return {"calls": calls, "cpu_s": round(cpu, 3), "cpu_us_per_call": round(cpu / calls * 1e6, 1) if calls else 0}


def _refusal_costs(bench: Bench, service: Server, responses: Path, seconds: float) -> dict[str, Any]:
    """Server CPU per call at a fixed rate (1,200 calls/s: well under capacity), served and refused."""
    rate, connections = 1200, 4
    body = bench.body("get", pb.GetTodoRequest(id="bench-get"))
    fixed = ["-c", str(connections), "-m", "16", "--rps", str(rate // connections), "-D", f"{seconds:g}s"]

    def h2load() -> Callable[[Server], int]:
        return lambda server: _h2load_completed(bench, server.port, body, fixed, seconds)[0]

    points: dict[str, dict[str, Any]] = {}

    def measure(name: str, server: Server, load: Callable[[Server], int]) -> None:
        points[name] = _cpu_per_call(server.proc, lambda: load(server))
        log(f"overload: refusal cost {name}: {points[name]}")

    # The handler's refusal is measured with the stream settings from before issue 19 on both sides: refused
    # calls are released later than served ones, and with overload protection gRPC core would refuse some of
    # the next streams, which h2load does not count.
    served_side = start_service(bench, "overload-serving", None, None, None, **BEFORE)
    wait_serving(served_side.port)
    ensure_entry(served_side.port, "bench-get")
    measure("service: served", served_side, h2load())
    served_side.proc.stop()
    token_file = bench.work / "overload-tokens"
    token_file.write_text(secrets.token_urlsafe(32) + "\n")
    refusing_env = {"TODO_AUTH_TOKENS_FILE": str(token_file), **BEFORE}
    refusing = start_service(bench, "overload-refusing", None, None, None, **refusing_env)
    wait_serving(refusing.port)  # health needs no token
    # No token: refused by the same synchronous check that refuses over TODO_MAX_CONCURRENT_RPCS
    # (handlers._refusal), with a status of the same size.
    measure("service: refused in the handler", refusing, h2load())
    refusing.proc.stop()
    streams_1 = start_service(bench, "overload-1-stream", TODO_MAX_CONCURRENT_STREAMS="1")
    wait_serving(streams_1.port)
    measure("service: REFUSED_STREAM (gRPC core)", streams_1, lambda server: _flood_refused(bench, server, body))
    streams_1.proc.stop()
    for name, options in (("B0: served", []), ("B0: refused in the handler", ["--refuse"])):
        b0 = start_b0(bench, "overload-b0-cost", bench.python, responses, *options)
        measure(name, b0, h2load())
        b0.proc.stop()
    # grpc.aio's own maximum_concurrent_rpcs, on the newest grpcio: on the pinned one each refusal lowers its
    # count, so it soon refuses nothing (grpc/grpc#41531, fixed after 1.78).
    points.update(_aio_limiter_points(bench, responses, h2load()))
    f = {}
    for name, point in points.items():
        base = points[str(point.get("base", "service: served" if name.startswith("service") else "B0: served"))]
        f[name] = round(point["cpu_us_per_call"] / base["cpu_us_per_call"], 3) if base["cpu_us_per_call"] else None
    return {"rate": rate, "seconds": seconds, "points": points, "f": f}


def _aio_limiter_points(bench: Bench, responses: Path, load: Callable[[Server], int]) -> dict[str, dict[str, Any]]:
    """B0 on the newest grpcio: served, and with maximum_concurrent_rpcs=1 while h2flood holds the one slot.

    B0 prints how many calls its handler answered; the limiter refused the rest, so the CPU of a refusal is
    what the limited run used beyond its served calls at the served cost.
    """
    version = bench.options.grpcio_latest or latest_version(bench.options.uv, "grpcio")
    extra = [f"uvloop=={installed_version(bench.python, 'uvloop')}"] if loop_flag() else []
    python = str(
        make_venv(bench.options.uv, BENCH / f".venv-grpcio-{version}", [f"grpcio=={version}", "protobuf", *extra])
    )
    served_name, limited_name = f"B0 grpcio {version}: served", f"B0 grpcio {version}: maximum_concurrent_rpcs=1"
    points: dict[str, dict[str, Any]] = {}
    b0 = start_b0(bench, "overload-b0-latest", python, responses)
    points[served_name] = _cpu_per_call(b0.proc, lambda: load(b0))
    b0.proc.stop()
    b0 = start_b0(bench, "overload-b0-limited", python, responses, "--maximum-concurrent-rpcs", "1")
    holder = subprocess.Popen(
        [str(H2FLOOD), "-addr", f"127.0.0.1:{b0.port}", "-conns", "1", "-rate", "1", "-hold", "1",
         "-duration", f"{bench.seconds + 30:g}s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)  # the held stream takes the one slot
        mixed = _cpu_per_call(b0.proc, lambda: load(b0))
    finally:
        holder.kill()
        holder.wait()
    b0.proc.popen.send_signal(signal.SIGTERM)  # B0 then prints how many calls its handler answered
    served = int(b0.proc.read_line(10).split()[1])
    b0.proc.stop()
    refused = mixed["calls"] - served
    cost = points[served_name]["cpu_us_per_call"]
    log(f"overload: grpc.aio's limiter on grpcio {version}: {refused} of {mixed['calls']} calls refused")
    if refused < 0.5 * mixed["calls"]:  # the pinned release's limiter stops counting (grpc/grpc#41531)
        points[f"{limited_name} (refused only {refused} of {mixed['calls']}: not measured)"] = mixed | {
            "base": served_name
        }
        return points
    cpu_refused = mixed["cpu_s"] * 1e6 - served * cost
    points[limited_name + ", refused"] = {
        "calls": refused, "cpu_s": round(cpu_refused / 1e6, 3), "cpu_us_per_call": round(cpu_refused / refused, 1),
        "base": served_name,
    }  # fmt: skip
    return points


def _flood_refused(bench: Bench, server: Server, body: Path) -> int:
    """h2flood at 1,200 calls/s on 4 connections, each holding the one stream the server allows: all refused."""
    argv = [
        str(H2FLOOD), "-addr", f"127.0.0.1:{server.port}", "-body", str(body), "-conns", "4", "-rate", "1200",
        "-duration", f"{max(2.0, bench.seconds):g}s", "-hold", "1",
    ]  # fmt: skip
    done = run_measured(argv, bench.load_cpu, bench.seconds + 60)
    counts = json.loads(done.stdout)["counts"]
    refused = int(counts["rst_stream"].get("REFUSED_STREAM", 0))
    if refused < counts["sent"] * 0.9:
        raise RuntimeError(f"h2flood: expected REFUSED_STREAM for nearly every call, got {counts}")
    return refused


# -- 2. one busy, well-behaved connection -------------------------------------------------------------


def _busy_connection(bench: Bench, protoset: Path, service: Server, seconds: float) -> dict[str, Any]:
    """64 calls at once from one busy caller: the defaults against the settings before, alternated.

    The issue's caller: the project's Python client in a closed loop with 64 callers, as it is now (4
    connections, its stream budget) against the service as it is now, and as it was (one connection, gRPC's
    own queueing: `overload=None`) against the service as it was. And any other gRPC client that keeps 64
    calls on one connection (ghz, 1 connection x 64 callers, no deadline), which gets some of its streams
    refused at 16 streams per connection with overload protection.
    """
    before = _service(bench, "overload-before", BEFORE)
    ensure_entry(before.port, "bench-get")
    sides = {"defaults": service, "before": before}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {"client": {}, "ghz": {}}
    for round_number in range(bench.rounds):
        order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
        for name in order:
            client = ["--closed", "64"] if name == "defaults" else ["--closed", "64", "--no-overload"]
            runs["client"].setdefault(name, []).append(_cooperating_run(bench, sides[name], seconds, *client))
            one_connection = ghz(
                protoset, sides[name].port, "GetTodo", GET, Callers(connections=1, callers=64, deadline_ms=20_000),
                cpus=bench.load_cpu, out=bench.work / "busy.json", seconds=seconds,
            )  # fmt: skip
            runs["ghz"].setdefault(name, []).append(one_connection.summary())
    before.proc.stop()
    summary: dict[str, Any] = {"runs": runs, "ok_per_s": {}, "ratio": {}}
    for caller, by_side in runs.items():
        medians = {name: statistics.median(r.get("ok_per_s") or 0.0 for r in rs) for name, rs in by_side.items()}
        summary["ok_per_s"][caller] = medians
        summary["ratio"][caller] = round(medians["defaults"] / medians["before"], 3) if medians["before"] else None
    return summary


# -- 3. the steps -------------------------------------------------------------------------------------


def _in_thread(target: Callable[[], Any]) -> Callable[[], Any]:
    """Start `target` in a thread; the returned function waits for it and returns its result."""
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(value=target()))
    thread.start()

    def join() -> Any:
        thread.join()
        return box.get("value")

    return join


def _probe(bench: Bench, server: Server, seconds: float) -> Callable[[], Any]:
    addresses = [f"main=127.0.0.1:{server.port}"]
    if server.health_port is not None:
        addresses.append(f"health=127.0.0.1:{server.health_port}")
    argv = [bench.python, "-m", "benchmarks.prober", "--seconds", f"{seconds:g}", "--interval", "0.1"]
    for address in addresses:
        argv += ["--address", address]
    if not server.health:  # B0 serves no health service
        return lambda: None

    def go() -> Any:
        done = run_measured(argv, bench.load_cpu, seconds + 60, cwd=REPO)
        return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-400:]}

    return _in_thread(go)


def _step(
    bench: Bench, protoset: Path, server: Server, capacity: float, multiple: float, seconds: float
) -> dict[str, Any]:
    flood_seconds = max(4.0, seconds + 3)
    rate = multiple * capacity
    handled_before = handled_codes(server.metrics_port) if server.health else Counter[str]()
    health = _probe(bench, server, flood_seconds)
    flood = _in_thread(
        lambda: ghz(
            protoset,
            server.port,
            "GetTodo",
            GET,
            replace(FLOOD, rate=rate),
            cpus=bench.load_cpu,
            out=bench.work / "flood.json",
            seconds=flood_seconds,
        )
    )
    time.sleep(0.5)
    victim = ghz(
        protoset, server.port, "GetTodo", GET, VICTIM, cpus=bench.load_cpu, out=bench.work / "victim.json",
        seconds=flood_seconds - 1,
    )  # fmt: skip
    flooded: GhzResult = flood()
    result = {
        "offered": f"{multiple:g}x" if multiple else "max",
        "flood": flooded.summary(capacity),
        "victim": victim.summary(),
        "health": health(),
    }
    if server.health:  # the service: what its handlers finished, by status (a refused stream never gets there)
        handled = handled_codes(server.metrics_port)
        handled.subtract(handled_before)
        result["server_handled"] = {key.split(":", 1)[1]: count for key, count in sorted(handled.items()) if count}
    result["flood"]["offered_multiple"] = round(flooded.rps / capacity, 2)
    log(
        f"overload: {server.proc.name} {result['offered']}: flood goodput {result['flood'].get('goodput')} "
        f"(ghz {flooded.rps:.0f}/s), victim OK {result['victim']['ok_fraction']}"
    )
    return result


# -- 4. recovery ------------------------------------------------------------------------------------


def _recovery(bench: Bench, protoset: Path, server: Server, capacity: float) -> dict[str, Any]:
    """A steady 0.5x caller through a 9 s flood and for 4 s after: the share of its calls OK within their
    deadline, by when they were started, in 250 ms bins."""
    flood_seconds, after, steady_rate = 9.0, 4.0, 0.5 * capacity
    steady = _in_thread(
        lambda: ghz(
            protoset,
            server.port,
            "GetTodo",
            GET,
            replace(STEADY, rate=steady_rate),
            cpus=bench.load_cpu,
            out=bench.work / "steady.json",
            seconds=flood_seconds + after + 1,
        )
    )
    time.sleep(1.0)
    read_flood = ghz_run(
        protoset, server.port, "GetTodo", GET, FLOOD, cpus=bench.load_cpu, out=bench.work / "recovery-flood.json",
        seconds=flood_seconds,
    )  # fmt: skip
    result: GhzResult = steady()
    flooded = read_flood()  # after the steady caller: reading the flood's report takes a second of CPU
    flood_end = 1.0 + flood_seconds  # seconds after the steady caller's first call
    bin_seconds = 0.25
    bins: list[float | None] = []
    for index in range(int(after / bin_seconds)):
        low = flood_end + index * bin_seconds
        calls = [ok for t, ok in result.calls if low <= t < low + bin_seconds]
        bins.append(round(sum(calls) / len(calls), 3) if calls else None)
    during = [ok for t, ok in result.calls if 1.0 <= t < flood_end]
    recovered_after = next(
        (i * bin_seconds for i in range(len(bins)) if all(value is not None and value >= 0.95 for value in bins[i:])),
        None,
    )
    return {
        "flood": flooded.summary(capacity),
        "steady": result.summary(),
        "steady_ok_fraction_during_flood": round(sum(during) / len(during), 3) if during else None,
        "steady_ok_fraction_bins_after": bins,
        "seconds_to_0.95": recovered_after,
    }


# -- 5. cooperating clients ---------------------------------------------------------------------------


COOPERATING_VARIANTS = {
    "defaults": [],
    "no throttle": ["--no-throttle"],
    "1 connection": ["--connections", "1"],
    "no overload control": ["--no-overload"],
}


def _cooperating_run(bench: Bench, service: Server, seconds: float, *options: str) -> dict[str, Any]:
    argv = [
        bench.python, "-m", "benchmarks.cooperating", "--target", f"127.0.0.1:{service.port}",
        "--seconds", f"{max(4.0, seconds + 3):g}", *options,
    ]  # fmt: skip
    done = run_measured(argv, bench.load_cpu, seconds + 120, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr[-600:]}
    outcome: dict[str, Any] = json.loads(done.stdout)
    outcome["client_cpu"] = round(done.cpu / done.wall, 2)
    return outcome


def _cooperating(bench: Bench, service: Server, seconds: float) -> dict[str, Any]:
    """The Python client, open loop, at 2x and 4x capacity: at its defaults and with each part taken away.

    Capacity: what the client itself gets at saturation, in a closed loop with as many callers as its
    defaults keep in flight (64; the median of three runs). h2load's figure and the client's with 128
    callers on 8 connections of 16 streams are reported beside it: under a 10% CPU quota the server's
    throughput moves with how many calls wait (more of them per wake-up), and with the client.
    """
    closed = [_cooperating_run(bench, service, seconds, "--closed", "64") for _ in range(3)]
    capacity = statistics.median(run.get("ok_per_s") or 0.0 for run in closed)
    reference = {
        "h2load": round(_h2load_capacity(bench, service, seconds)),
        "client, 128 callers on 8 connections of 16": _cooperating_run(
            bench, service, seconds, "--closed", "128", "--connections", "8", "--streams", "16", "--no-throttle"
        ).get("ok_per_s"),
    }
    results: dict[str, Any] = {}
    for multiple in (2.0, 4.0):
        for variant, extra in COOPERATING_VARIANTS.items():
            outcome = _cooperating_run(bench, service, seconds, "--rate", f"{multiple * capacity:.0f}", *extra)
            if "ok_per_s" in outcome:
                outcome["goodput"] = round(outcome["ok_per_s"] / capacity, 3)
                log(f"overload: cooperating {multiple:g}x {variant}: goodput {outcome['goodput']}")
            results[f"{multiple:g}x {variant}"] = outcome
    return {
        "capacity_rps": round(capacity),
        "capacity_closed_runs": [run.get("ok_per_s") for run in closed],
        "reference": reference,
        "runs": results,
    }
