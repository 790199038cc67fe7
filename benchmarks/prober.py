"""`python -m benchmarks.prober`: health checks as a kubelet makes them, timed, while the overload section floods.

Every `--interval` seconds, for each address and each health service name, one
grpc.health.v1 Check on a new connection (a local subchannel pool, as a probe
from another process would have) with a `--timeout` deadline. Prints one JSON
object: per address and name, the number of checks, the statuses seen and the
latency percentiles. A status other than SERVING (or an error) is what a
kubelet would count as a failed probe.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _probe(address: str, service: str, timeout: float) -> tuple[str, float]:
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
    started = time.perf_counter()
    with grpc.insecure_channel(address, options=options) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
            outcome = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as error:
            outcome = error.code().name
    return outcome, (time.perf_counter() - started) * 1000


def _loop(label: str, service: str, args: argparse.Namespace, into: dict[str, Any]) -> None:
    name, _, address = label.rpartition("=")
    outcomes: dict[str, int] = {}
    latencies: list[float] = []
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        began = time.monotonic()
        outcome, ms = _probe(address, service, args.timeout)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        latencies.append(ms)
        time.sleep(max(0.0, args.interval - (time.monotonic() - began)))
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))], 1) if latencies else None

    into[f"{name or address} {service}"] = {
        "checks": len(latencies),
        "outcomes": outcomes,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 1) if latencies else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", action="append", required=True, help="[NAME=]host:port (repeatable)")
    parser.add_argument("--service", action="append", default=[], help="health service name (repeatable)")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(target=_loop, args=(address, service, args, results))
        for address in args.address
        for service in args.service or ["liveness", "readiness"]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    json.dump(dict(sorted(results.items())), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
