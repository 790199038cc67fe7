"""A thin pipe to the database and connections that close slowly: large pages stay bounded, no stream is stuck.

One driver: both send the same bytes over the same pool; the difference the
drivers show under slowness (Motor's thread pool) is in test_slow_database.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import pytest

from tests.support.faults import FIGURES, SERVING, FaultService, seconds_until, service_env, timed
from tests.support.mongo_server import MongoServer
from tests.support.toxiproxy import Proxy
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.process  # the service, the database and the fault proxy run as processes

ENTRIES = 120
CONTENT = "x" * 4000  # ~4 KB an entry: a 120-entry page is ~480 KB from the database
RATE_KB = 64  # KB/s downstream: the page needs ~7.5 s
MAX_RPC_SECONDS = 2.0
LATE_BOUND = 0.75


async def test_large_pages_through_a_thin_pipe_stay_bounded_and_nothing_sticks(
    db_proxy: Proxy, mongo_server: MongoServer
) -> None:
    env = service_env(
        db_proxy.uri,
        "pymongo",
        mongo_server.database_name("bandwidth"),
        TODO_MAX_RPC_SECONDS=str(MAX_RPC_SECONDS),
        TODO_MONGODB_TIMEOUT_SECONDS="10",
        TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS="5",
        TODO_MONGODB_CONNECT_TIMEOUT_SECONDS="5",
    )
    with FaultService(env) as service:
        service.ready()
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            for _ in range(ENTRIES // 8):  # 8 at a time: under the connection's stream limit
                await asyncio.gather(
                    *(stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT))) for _ in range(8))
                )
            page = pb.ListTodosRequest(page_size=ENTRIES)
            assert len((await stub.ListTodos(page, timeout=20)).todos) == ENTRIES
            db_proxy.add("thin", "bandwidth", "downstream", rate=RATE_KB)
            db_proxy.add("slow_close_down", "slow_close", "downstream", delay=3000)
            db_proxy.add("slow_close_up", "slow_close", "upstream", delay=3000)
            with_deadline, without = await asyncio.gather(
                asyncio.gather(*(timed(stub.ListTodos(page, timeout=1.0)) for _ in range(5))),
                asyncio.gather(*(timed(stub.ListTodos(page)) for _ in range(5))),
            )
            small = await timed(stub.GetTodo(pb.GetTodoRequest(id="missing"), timeout=5))
            db_proxy.clear()
            start = time.monotonic()
            back = await seconds_until(channel, SERVING, 20)
            assert len((await stub.ListTodos(page, timeout=20)).todos) == ENTRIES
            in_flight = sum(
                service.metric(
                    "grpc_server_in_flight", grpc_type="unary", grpc_service="todo.v1.TodoService", grpc_method=method
                )
                for method in ("ListTodos", "GetTodo", "CreateTodo")
            )
        stop_start = time.monotonic()
        assert service.terminate(30) == 0, service.output
        stopped = time.monotonic() - stop_start
    assert all(seconds < 1.0 + LATE_BOUND for _, seconds in with_deadline), with_deadline
    assert all(seconds < MAX_RPC_SECONDS + LATE_BOUND for _, seconds in without), without
    assert {code for code, _ in with_deadline + without} <= {"DEADLINE_EXCEEDED/STORE_TIMEOUT", "DEADLINE_EXCEEDED"}
    assert in_flight == 0
    FIGURES.record(
        f"bandwidth {RATE_KB} KB/s + slow close 3 s (pymongo)",
        page_1s_deadline=Counter(code for code, _ in with_deadline),
        page_no_deadline=Counter(code for code, _ in without),
        slowest_s=max(seconds for _, seconds in with_deadline + without),
        small_call_meanwhile=f"{small[0]} after {small[1]:.2f}s",
        serving_after_removal_s=back,
        recovered_after_s=time.monotonic() - start,
        stop_s=stopped,
    )
