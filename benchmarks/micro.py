"""In-process cost of the service's per-RPC code, in microseconds per call (benchmark only).

    python -m benchmarks.micro [--calls 20000] [--repeats 7] [--cold MB]    (taskset -c 0 for a steadier figure)

Calls the service's own handlers (`Layers.handlers()`: request id, deadline,
admission, metrics, access line, error table around the servicer) with a
stub context, and the same servicer methods bare (parse, method, serialize:
what B1 runs), on one event loop, no network: the Python work our layers add
per RPC, which grpc's native code (the same for B0) does not hide. The access
line goes to /dev/null through the service's JSON handler. Each figure is
the best of `--repeats` runs of `--calls` calls (the least disturbed by
other processes), so before/after of a change in the per-RPC path compare
within a few per cent on a shared machine, unlike requests per second.

`--cold MB` copies an MB-sized buffer before every call (not timed), which
evicts the CPU's L2 cache as grpc's native work and the kernel do between
two RPCs in a real server: our code then runs from L3 or memory, and its
cost is governed by how many distinct cache lines (code and data) it
touches rather than by how fast it runs hot. That is the figure that
predicts its cost in a server (hot: ~12 us per GetTodo; cold: ~50-75 us,
as the in-server CPU per RPC shows). "floor" is an empty handler returning
canned bytes, what B0 runs: each figure minus it is our cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from benchmarks import service_api
from benchmarks.common import CONTENT, TAGS
from benchmarks.servers import b1
from todo.v1 import todo_service_pb2 as pb


class StubContext:
    """The parts of grpc.aio.ServicerContext the handlers use, answering like a plaintext call without a deadline.

    Its metadata is what h2load sends (no x-request-id: the service makes one per call).
    """

    def __init__(self) -> None:
        self._metadata = (("user-agent", "h2load nghttp2/1.64.0"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None

    def set_trailing_metadata(self, metadata: object) -> None:
        pass

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def code(self) -> grpc.StatusCode | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: object = ()) -> None:
        raise RuntimeError(f"unexpected abort: {code} {details}")


class _Sweep:
    """Evicts the caches between calls by copying `megabytes` of memory (0: no eviction)."""

    def __init__(self, megabytes: int) -> None:
        size = megabytes * 1024 * 1024 // 2
        self._source = bytearray(b"\x01" * size)
        self._target = bytearray(size)

    def __call__(self) -> None:
        if self._source:
            self._target[:] = self._source


async def _per_call_us(call: Callable[[], Awaitable[Any]], calls: int, repeats: int, sweep: _Sweep) -> float:
    best = float("inf")
    clock = time.perf_counter
    for _ in range(repeats):
        spent = 0.0
        for _ in range(calls):
            sweep()
            began = clock()
            await call()
            spent += clock() - began
        best = min(best, spent / calls * 1e6)
    return best


async def measure(calls: int, repeats: int, cold_megabytes: int = 0) -> dict[str, float]:
    layers = service_api.build_layers()
    await layers.create(CONTENT, TAGS, todo_id="bench-get")
    handlers = layers.handlers()
    servicer = layers.servicer
    context: Any = StubContext()
    get_raw = pb.GetTodoRequest(id="bench-get").SerializeToString()
    create_raw = pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS)).SerializeToString()
    get = handlers["GetTodo"].unary_unary
    create = handlers["CreateTodo"].unary_unary

    # What B1 runs: parse, the servicer's method, serialize.
    b1_get = b1.bare(servicer.GetTodo, pb.GetTodoRequest.FromString)
    b1_create = b1.bare(servicer.CreateTodo, pb.CreateTodoRequest.FromString)

    def bare_get() -> Awaitable[bytes]:
        return b1_get(get_raw, context)

    def bare_create() -> Awaitable[bytes]:
        return b1_create(create_raw, context)

    canned = (await bare_get())[:]

    async def floor() -> bytes:
        return canned

    sweep = _Sweep(cold_megabytes)
    results = {
        "floor (B0's handler)": await _per_call_us(floor, calls, repeats, sweep),
        "get service handler": await _per_call_us(lambda: get(get_raw, context), calls, repeats, sweep),
        "get bare servicer (B1)": await _per_call_us(bare_get, calls, repeats, sweep),
        "create service handler": await _per_call_us(lambda: create(create_raw, context), calls, repeats, sweep),
        "create bare servicer (B1)": await _per_call_us(bare_create, calls, repeats, sweep),
    }
    results["get wrapper"] = results["get service handler"] - results["get bare servicer (B1)"]
    results["create wrapper"] = results["create service handler"] - results["create bare servicer (B1)"]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cold", type=int, default=0, metavar="MB", help="evict the caches before each call (8+)")
    args = parser.parse_args()
    stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the access lines (JSON handler on stderr) go nowhere
    try:
        service_api.configure_logging()
        results = asyncio.run(measure(args.calls, args.repeats, args.cold))
    finally:
        os.dup2(stderr, 2)
    print(json.dumps({name: round(value, 2) for name, value in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
