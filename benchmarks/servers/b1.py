"""B1: the service's layers without its per-RPC wrapper (benchmark only, never shipped).

Between B0 (bare grpc.aio, canned bytes) and the service: the real use cases,
servicer, domain, mapper and in-memory repository, built as the service
builds them (benchmarks/service_api.py), registered over raw bytes exactly as
the service registers them, but without what the service's per-RPC wrapper
adds around each RPC (request id, deadline, metrics, trailing metadata, error
table, access log). So B0 -> B1 is the cost of the layers, B1 -> service the
cost of the wrapper.

    python -m benchmarks.servers.b1 --port 0 [--uvloop]    prints `ready PORT` once it serves
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from benchmarks import service_api
from benchmarks.common import CONTENT, SERVICE, TAGS
from todo.v1 import todo_service_pb2 as pb


def _bare(
    method: Callable[[Any, Any], Awaitable[Any]], parse: Callable[[bytes], Any]
) -> grpc.RpcMethodHandler[bytes, bytes]:
    async def handle(raw: bytes, context: Any) -> bytes:
        response = await method(parse(raw), context)
        serialized: bytes = response.SerializeToString()
        return serialized

    return grpc.unary_unary_rpc_method_handler(handle)


async def serve(port: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    layers = service_api.build_layers()
    await layers.create(CONTENT, TAGS, todo_id="bench-get")
    servicer = layers.servicer
    handlers = {
        "GetTodo": _bare(servicer.GetTodo, pb.GetTodoRequest.FromString),
        "CreateTodo": _bare(servicer.CreateTodo, pb.CreateTodoRequest.FromString),
        "ListTodos": _bare(servicer.ListTodos, pb.ListTodosRequest.FromString),
    }
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)  # type: ignore[attr-defined]
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {bound}", flush=True)
    await stop.wait()
    await server.stop(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.port))
    else:
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
