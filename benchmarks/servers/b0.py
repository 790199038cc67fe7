"""B0: a bare `grpc.aio` server for todo.v1 GetTodo and CreateTodo (benchmark only).

It answers every call with a canned serialized response of the v1 shape
(written by the orchestrator from the generated classes), through raw-bytes handlers:
no request parsing, no protobuf at run time, no interceptors, logging or
metrics. That is the floor a gRPC service in Python cannot go below on a
given grpcio release, and it imports on any release (no generated code), so
the same file measures the pinned release and the latest one.

    python -m benchmarks.servers.b0 --port 0 --responses DIR [--uvloop]   (from the repository root)
        [--option grpc.max_concurrent_streams=4 ...] [--maximum-concurrent-rpcs N] [--refuse]

prints `ready PORT` on stdout once it serves; SIGTERM or SIGINT stops it.
The overload section (sections/overload.py) starts it with channel options
(`--option`), with grpc.aio's own `maximum_concurrent_rpcs`, or with
`--refuse`: every call is refused from the handler with RESOURCE_EXHAUSTED
and a google.rpc.Status in the trailers of the service's refusal's size,
what a refusal made in Python costs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import grpc

SERVICE = "todo.v1.TodoService"


SERVED = [0]  # calls answered by a handler, printed at exit (`served N`): what grpc.aio's limiter let through

# Stands for the service's google.rpc.Status trailer (ErrorInfo and RetryInfo): the same size, 212 bytes.
_REFUSAL_DETAILS = bytes(212)


def _handlers(responses: Path, refuse: bool = False) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
    handlers = {}
    for method in ("GetTodo", "CreateTodo", "ListTodos"):
        path = responses / f"{method}.bin"
        if not path.exists():
            continue
        canned = path.read_bytes()

        async def handle(_request: bytes, _context: object, canned: bytes = canned) -> bytes:
            SERVED[0] += 1
            return canned

        # No (de)serializers: the handler sees and returns bytes.
        handlers[method] = grpc.unary_unary_rpc_method_handler(_refuse if refuse else handle)
    return handlers


async def _refuse(_request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    await context.abort(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "the server is handling 128 calls already; retry after 0.1 s",
        (("grpc-status-details-bin", _REFUSAL_DETAILS),),
    )


async def serve_handlers(
    port: int,
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]],
    options: list[tuple[str, int]] | None = None,
    maximum_concurrent_rpcs: int | None = None,
) -> None:
    """Serve raw-bytes `handlers` for todo.v1.TodoService on 127.0.0.1:`port` until SIGTERM or SIGINT (B0 and B1)."""
    server = grpc.aio.server(
        options=[("grpc.so_reuseport", 0), *(options or [])], maximum_concurrent_rpcs=maximum_concurrent_rpcs
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if hasattr(server, "add_registered_method_handlers"):  # grpcio >= 1.63: no generic lookup per call
        server.add_registered_method_handlers(SERVICE, handlers)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {bound} grpcio={grpc.__version__}", flush=True)
    await stop.wait()
    await server.stop(0.5)
    print(f"served {SERVED[0]}", flush=True)


def _option(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    return name, int(value)


def run(serving: Coroutine[Any, Any, None], use_uvloop: bool) -> int:
    """Run `serving` on uvloop or asyncio; the exit status."""
    if use_uvloop:
        import uvloop

        uvloop.run(serving)
    else:
        asyncio.run(serving)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--option", type=_option, action="append", default=[], help="a channel argument NAME=INT")
    parser.add_argument("--maximum-concurrent-rpcs", type=int, default=None, help="grpc.aio's own limit")
    parser.add_argument("--refuse", action="store_true", help="refuse every call from the handler")
    args = parser.parse_args()
    handlers = _handlers(args.responses, args.refuse)
    return run(serve_handlers(args.port, handlers, args.option, args.maximum_concurrent_rpcs), args.uvloop)


if __name__ == "__main__":
    sys.exit(main())
