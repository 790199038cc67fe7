"""B1: the service's layers without its per-RPC wrapper (benchmark only, never shipped).

Between B0 (bare grpc.aio, canned bytes) and the service: the real use cases,
servicer, domain, mapper and in-memory repository, built as the service
builds them (benchmarks/service_api.py), registered over raw bytes exactly as
the service registers them, but without what the service's per-RPC wrapper
adds around each RPC (request id, deadline, metrics, trailing metadata, error
table, access log). So B0 -> B1 is the cost of the layers, B1 -> service the
cost of the wrapper.

    python -m benchmarks.servers.b1 --port 0 [--uvloop]    prints `ready PORT` once it serves

It serves through B0's start-up (`b0.serve_handlers`), so the two differ in
their handlers only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from benchmarks import service_api
from benchmarks.common import CONTENT, TAGS
from benchmarks.servers import b0
from todo.v1 import todo_service_pb2 as pb


def bare(
    method: Callable[[Any, Any], Awaitable[Any]], parse: Callable[[bytes], Any]
) -> Callable[[bytes, Any], Awaitable[bytes]]:
    """A servicer method over raw bytes with nothing around it: parse, the method, serialize."""

    async def handle(raw: bytes, context: Any) -> bytes:
        response = await method(parse(raw), context)
        serialized: bytes = response.SerializeToString()
        return serialized

    return handle


def bare_handler(
    method: Callable[[Any, Any], Awaitable[Any]], parse: Callable[[bytes], Any]
) -> grpc.RpcMethodHandler[bytes, bytes]:
    return grpc.unary_unary_rpc_method_handler(bare(method, parse))


async def serve(port: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    layers = service_api.build_layers()
    await layers.create(CONTENT, TAGS, todo_id="bench-get")
    servicer = layers.servicer
    handlers = {
        "GetTodo": bare_handler(servicer.GetTodo, pb.GetTodoRequest.FromString),
        "CreateTodo": bare_handler(servicer.CreateTodo, pb.CreateTodoRequest.FromString),
        "ListTodos": bare_handler(servicer.ListTodos, pb.ListTodosRequest.FromString),
    }
    await b0.serve_handlers(port, handlers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    return b0.run(serve(args.port), args.uvloop)


if __name__ == "__main__":
    sys.exit(main())
