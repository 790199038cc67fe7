"""`python -m benchmarks.cooperating`: the project's Python client as a cooperating caller, at a fixed offered rate.

Open loop: GetTodo calls are started at `--rate` per second for `--seconds`
whatever happens to the earlier ones (a caller's traffic does not wait for the
service), each through one shared `TodoClient` at its defaults unless told
otherwise (`--connections`, `--streams`, `--no-throttle`, `--no-overload`,
`--timeout`). Prints one JSON object: calls started, outcomes by status
(`THROTTLED`: refused by the client itself, never sent), OK per second and the
latency percentiles of OK calls. Run pinned to the load core by the overload
section.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from typing import Any

from todo_client import DEFAULT_OVERLOAD_POLICY, DEFAULT_TIMEOUT, ThrottledError, TodoClient, TodoError


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    overload = None
    if not args.no_overload:
        overload = dataclasses.replace(
            DEFAULT_OVERLOAD_POLICY,
            **{k: v for k, v in (("connections", args.connections), ("streams_per_connection", args.streams)) if v},
        )
        if args.no_throttle:
            overload = dataclasses.replace(overload, throttle_ratio=0.0)
    outcomes: dict[str, int] = {}
    latencies: list[float] = []
    async with TodoClient.connect(args.target, overload=overload, timeout=args.timeout) as client:
        await client.get_todo(args.id)  # connected, the entry exists

        async def one() -> None:
            began = time.perf_counter()
            try:
                await client.get_todo(args.id)
            except ThrottledError:
                outcome = "THROTTLED"
            except TodoError as error:
                outcome = error.code.name
            else:
                outcome = "OK"
                latencies.append((time.perf_counter() - began) * 1000)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        began = loop.time()
        started = 0
        if args.closed:  # closed loop: N callers, each calls again as soon as its call ends

            async def caller() -> None:
                nonlocal started
                while loop.time() < began + args.seconds:
                    started += 1
                    await one()

            await asyncio.gather(*(caller() for _ in range(args.closed)))
        while not args.closed and (now := loop.time()) < began + args.seconds:
            due = int((now - began) * args.rate) + 1
            for _ in range(due - started):  # catch up in a burst when the loop fell behind
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            started = max(started, due)
            await asyncio.sleep(1 / args.rate)
        sending = loop.time() - began
        if tasks:
            await asyncio.wait(tasks)
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))], 2) if latencies else None

    return {
        "offered_rps": args.rate or None,
        "started": started,
        "sent_rps": round(started / sending, 1),
        "outcomes": dict(sorted(outcomes.items())),
        "ok_per_s": round(outcomes.get("OK", 0) / args.seconds, 1),
        "p50_ok_ms": pct(0.5),
        "p99_ok_ms": pct(0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--id", default="bench-get")
    parser.add_argument("--rate", type=float, default=0.0, help="calls started per second (open loop)")
    parser.add_argument("--closed", type=int, default=0, help="instead: this many callers in a closed loop")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--connections", type=int, default=0, help="0: the policy's default")
    parser.add_argument("--streams", type=int, default=0, help="streams_per_connection; 0: the policy's default")
    parser.add_argument("--no-throttle", action="store_true", help="adaptive throttling off")
    parser.add_argument("--no-overload", action="store_true", help="no overload control: one channel, as before")
    args = parser.parse_args()
    if (args.rate > 0) == (args.closed > 0):
        parser.error("give --rate or --closed")
    import uvloop

    json.dump(uvloop.run(_run(args)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
