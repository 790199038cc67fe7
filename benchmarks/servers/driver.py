"""The raw MongoDB driver doing what GetTodo and CreateTodo do, at a fixed concurrency (benchmark only).

One process, one client, `--concurrency` tasks looping on the operation for
`--warmup` + `--seconds`; only the operations that finish after the warm-up
count. `get` is `find_one({"_id": id})`, `create` is `insert_one()` of a
document of the service's shape (same collection, so the same indexes are
maintained). The client has the service's options (tz_aware, timeouts), but
nothing else of the service: no deadline bookkeeping, no mapping, no metrics.

Prints one JSON object: {"ops": N, "seconds": S, "rps": R, "p50_ms": .., "p99_ms": ..}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any


def _client(driver: str, uri: str) -> Any:
    options: dict[str, Any] = {
        "tz_aware": True,
        "appname": "todo-bench-driver",
        "serverSelectionTimeoutMS": 2000,
        "connectTimeoutMS": 2000,
        "timeoutMS": 5000,
    }
    if driver == "motor":
        from motor.motor_asyncio import AsyncIOMotorClient

        return AsyncIOMotorClient(uri, **options)
    import pymongo

    return pymongo.AsyncMongoClient(uri, **options)


def _document() -> dict[str, Any]:
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
    entry_id = uuid.uuid4().hex
    return {
        "_id": entry_id,
        "content": "Buy milk and bread",
        "tags": ["errands", "home"],
        "done": False,
        "create_time": now,
        "update_time": now,
        "version": 1,
        "request_key": f"e:{entry_id}",
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = _client(args.driver, args.uri)
    collection = client[args.database]["todos"]
    await client.admin.command("ping")
    start = time.perf_counter()
    measure_from = start + args.warmup
    stop_at = measure_from + args.seconds
    latencies: list[float] = []

    async def worker() -> None:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            if args.operation == "get":
                document = await collection.find_one({"_id": args.id})
                if document is None:
                    raise SystemExit(f"no document with _id {args.id!r}")
            else:
                await collection.insert_one(_document())
            ended = time.perf_counter()
            if began >= measure_from and ended <= stop_at:
                latencies.append(ended - began)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    result = client.close()
    if asyncio.iscoroutine(result):
        await result
    latencies.sort()
    count = len(latencies)

    def percentile(fraction: float) -> float:
        return latencies[min(count - 1, int(fraction * count))] * 1000 if count else 0.0

    return {
        "ops": count,
        "seconds": args.seconds,
        "rps": count / args.seconds,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "mean_ms": sum(latencies) / count * 1000 if count else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--driver", choices=("motor", "pymongo"), required=True)
    parser.add_argument("--operation", choices=("get", "create"), required=True)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--id", default="bench-get")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
