"""The real service on a pre-filled in-memory store (benchmark only, never shipped).

Filling 100,000 entries through gRPC would take most of the time budget, so
this entry point creates them in-process through the real use case on the
real in-memory repository (benchmarks/service_api.py), then runs the unchanged
service around that repository: the same settings from the environment,
logging, event loop, servicer, handlers and lifecycle as `python -m service`.

    TODO_GRPC_ADDRESS=127.0.0.1:PORT python -m benchmarks.servers.prefilled --entries N [--token-file F]

`--token-file` receives a page token (signed with the configured secret) that
points at the middle of the store, for a ListTodos page away from the newest end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from benchmarks import service_api

TAGS = (("home", "errands"), ("work",), ("home",), ())


async def prefill(layers: service_api.Layers, count: int) -> list[service_api.EntryRef]:
    entries = []
    for index in range(count):
        entries.append(await layers.create(f"Entry {index}: buy milk and bread", TAGS[index % len(TAGS)]))
    for entry_id in ("bench-get", "bench-mem"):
        entries.append(await layers.create("Buy milk and bread", ("home", "errands"), todo_id=entry_id))
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--token-file", type=Path)
    args = parser.parse_args()
    repository = service_api.in_memory_repository()
    # The use case, clock, id generator and page-token codec exactly as the service builds them.
    layers = service_api.build_layers(repository)
    began = time.perf_counter()
    entries = asyncio.run(prefill(layers, args.entries))
    print(f"prefilled {len(entries)} entries in {time.perf_counter() - began:.1f}s", file=sys.stderr, flush=True)
    if args.token_file is not None:
        args.token_file.write_text(layers.page_token_after(entries[len(entries) // 2]))
    return service_api.serve(repository)


if __name__ == "__main__":
    sys.exit(main())
