"""A database that stops answering: a black hole (no reply, no reset) and connection resets.

Readiness turns NOT_SERVING within DETECTION_BOUND (one health interval plus
one ping bounded by the server-selection timeout, plus a margin), calls then
fail fast with UNAVAILABLE / STORE_UNAVAILABLE, and both come back on their
own once the fault is removed.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from service.infrastructure.config import Driver
from tests.support.faults import (
    DETECTION_BOUND,
    DRIVERS,
    FIGURES,
    NOT_SERVING,
    SERVING,
    FaultService,
    seconds_until,
    service_env,
    timed,
)
from tests.support.mongo_server import MongoServer
from tests.support.toxiproxy import Proxy
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.process  # the service, the database and the fault proxy run as processes

# A refused call is answered from memory (the store is known not ready): well under a second.
FAIL_FAST_BOUND = 1.0
# Recovery: the driver notices the connection works again (a heartbeat or a new connection,
# each bounded by the 1 s connect timeout), then the next readiness ping.
RECOVERY_BOUND = 15.0


def inject(proxy: Proxy, fault: str) -> None:
    if fault == "black_hole":
        proxy.black_hole()
    else:  # every connection reset (RST) as soon as it carries data
        proxy.add("reset_peer", "reset_peer", "upstream", timeout=0)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_an_unreachable_database_turns_readiness_fails_fast_and_recovers(
    driver: Driver, db_proxy: Proxy, mongo_server: MongoServer
) -> None:
    env = service_env(db_proxy.uri, driver, mongo_server.database_name("unreachable"))
    with FaultService(env) as service:
        service.ready()
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            created = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="before")))).todo
            for fault in ("black_hole", "reset_peer"):
                inject(db_proxy, fault)
                # A call already waiting on the database when the fault starts: bounded by its deadline.
                in_flight = asyncio.ensure_future(timed(stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=3)))
                detect = await seconds_until(channel, NOT_SERVING, DETECTION_BOUND)
                during, during_seconds = await in_flight
                assert during_seconds < 3.5, (during, during_seconds)
                refused: Counter[str] = Counter()
                slowest = 0.0
                for call in range(10):
                    code, seconds = await timed(
                        stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=f"refused {call}")), timeout=5)
                        if call % 2
                        else stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=5)
                    )
                    refused[code] += 1
                    slowest = max(slowest, seconds)
                assert refused == Counter({"UNAVAILABLE/STORE_UNAVAILABLE": 10}), refused
                assert slowest < FAIL_FAST_BOUND, slowest
                db_proxy.clear()
                recover = await seconds_until(channel, SERVING, RECOVERY_BOUND)
                assert (await stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=10)).todo == created
                FIGURES.record(
                    f"{fault} ({driver})",
                    detect_s=detect,
                    recover_s=recover,
                    in_flight_call=f"{during} after {during_seconds:.2f}s",
                    refused=refused,
                    slowest_refusal_s=slowest,
                )
        assert service.terminate() == 0, service.output
