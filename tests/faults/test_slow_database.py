"""A slow or hung database: every call ends by its deadline, or by TODO_MAX_RPC_SECONDS without one, and
nothing piles up (threads, memory, calls in flight) with 1,000 callers waiting at once.

Readiness stays SERVING here on purpose (the ping may take 5 s): the calls
themselves have to reach the slow database to show that they are bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import pytest

from service.infrastructure.config import Driver
from tests.support.faults import (
    DRIVERS,
    EITHER_DRIVER,
    FIGURES,
    LONG,
    SERVING,
    SIZES,
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

LATENCY_MS = 2000
JITTER_MS = 300
MAX_RPC_SECONDS = 1.5
# How late after its deadline a call may end: the server answers a little before it
# (DEADLINE_RESERVE_SECONDS), so this is only the margin of a shared, noisy machine.
LATE_BOUND = 0.75
SHORT_ENDINGS = {"DEADLINE_EXCEEDED/STORE_TIMEOUT", "DEADLINE_EXCEEDED", "UNAVAILABLE/STORE_UNAVAILABLE"}
CROWD_ENDINGS = {
    "DEADLINE_EXCEEDED/STORE_TIMEOUT",
    "UNAVAILABLE/CONCURRENCY_LIMIT_REACHED",
    "UNAVAILABLE/STORE_UNAVAILABLE",
}
# 16 streams per connection (TODO_MAX_CONCURRENT_STREAMS): 1,000 callers at once need 63 connections.
CHANNELS = 63
CROWD_ROUNDS = 3 if LONG else 1


def slow_env(proxy: Proxy, driver: Driver, mongo_server: MongoServer) -> dict[str, str]:
    return service_env(
        proxy.uri,
        driver,
        mongo_server.database_name("slow"),
        TODO_MAX_RPC_SECONDS=str(MAX_RPC_SECONDS),
        TODO_MONGODB_TIMEOUT_SECONDS="10",
        TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS="5",
        # The driver's heartbeat waits connectTimeoutMS for its reply: a database slower than
        # that is marked unknown and every call fails as unavailable (docs/faults.md).
        TODO_MONGODB_CONNECT_TIMEOUT_SECONDS="5",
    )


async def crowd(service: FaultService, entry_id: str) -> tuple[Counter[str], float, int, int]:
    """SIZES.crowd GetTodo calls at once, without deadlines: how they ended, the slowest, peak RSS and threads."""
    # A subchannel pool each: channels with the same arguments would share one connection.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(service.address, options=options) for _ in range(CHANNELS)]
    stubs = [pb_grpc.TodoServiceStub(channel) for channel in channels]
    peak_rss, peak_threads = service.memory()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_rss, peak_threads
        while not done.is_set():
            rss, threads = service.memory()
            peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    try:
        results = await asyncio.gather(
            *(timed(stubs[n % CHANNELS].GetTodo(pb.GetTodoRequest(id=entry_id))) for n in range(SIZES.crowd))
        )
    finally:
        done.set()
        await sampler
        for channel in channels:
            await channel.close(None)
    return Counter(code for code, _ in results), max(seconds for _, seconds in results), peak_rss, peak_threads


@pytest.mark.parametrize("driver", DRIVERS)
async def test_slow_replies_end_by_their_deadline_and_nothing_piles_up(
    driver: Driver, db_proxy: Proxy, mongo_server: MongoServer
) -> None:
    with FaultService(slow_env(db_proxy, driver, mongo_server)) as service:
        service.ready()
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            created = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="slow")))).todo
            rss_before, threads_before = service.memory()
            with db_proxy.toxic("latency", "downstream", latency=LATENCY_MS, jitter=JITTER_MS):
                # 8 at once: fewer than the connection's stream limit (16), as a compliant caller keeps.
                short = await asyncio.gather(
                    *(timed(stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=0.5)) for _ in range(8))
                )
                await seconds_until(channel, SERVING, 15)  # the pool may have been paused by the calls above
                unbounded = await timed(stub.GetTodo(pb.GetTodoRequest(id=created.id)))
                rounds = [await crowd(service, created.id) for _ in range(CROWD_ROUNDS)]
            in_flight = service.metric(
                "grpc_server_in_flight", grpc_type="unary", grpc_service="todo.v1.TodoService", grpc_method="GetTodo"
            )
            rss_after, threads_after = service.memory()
            recovered = await seconds_until(channel, SERVING, 15)
            assert (await stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=10)).todo == created
        assert service.terminate() == 0, service.output
        output = service.output
        flips = output.count("readiness: NOT_SERVING")

    short_codes = Counter(code for code, _ in short)
    # DEADLINE_EXCEEDED, answered by the server; or, when a new connection's handshake ran out of the
    # call's time, the driver marks the server unknown and pauses its pool (the SDAM specification):
    # the calls of that moment end UNAVAILABLE, also within their deadline (docs/faults.md).
    # With Motor, calls past its thread pool's size wait for a thread, and the client's own deadline
    # may fire before the server's answer arrives (plain DEADLINE_EXCEEDED, no reason).
    assert set(short_codes) <= SHORT_ENDINGS, short_codes
    assert max(seconds for _, seconds in short) < 0.5 + LATE_BOUND
    # Without a deadline: the server's own bound, answered by the server (a reason, not the client's clock).
    assert unbounded[0] in {"DEADLINE_EXCEEDED/STORE_TIMEOUT", "UNAVAILABLE/STORE_UNAVAILABLE"}, unbounded
    assert unbounded[1] < MAX_RPC_SECONDS + LATE_BOUND, unbounded
    for codes, slowest, _rss, threads in rounds:
        # Each call ended: by the server's bound, or refused at once past TODO_MAX_CONCURRENT_RPCS (128).
        # (or refused as not ready, when the readiness ping itself timed out behind them).
        assert set(codes) <= CROWD_ENDINGS, codes
        assert slowest < MAX_RPC_SECONDS + 10.0, slowest  # time queued in front of the handler included
        assert threads - threads_before < 64, (threads_before, threads)  # Motor's pool is bounded (5 x cores)
    assert in_flight == 0
    # Bounded: a thousand waiting calls cost tens of MiB, not hundreds; and (faults-long) later crowds of
    # the same size need no more memory than the first: nothing outlives a crowd.
    assert rounds[0][2] - rss_before < 96 * 1024, (rss_before, rounds[0][2])
    for later in rounds[1:]:
        assert later[2] - rounds[0][2] < 32 * 1024, (rounds[0][2], later[2])
    FIGURES.record(
        f"latency +{LATENCY_MS}±{JITTER_MS} ms ({driver})",
        deadline_0_5s=short_codes,
        slowest_0_5s_call_s=max(seconds for _, seconds in short),
        no_deadline=f"{unbounded[0]} after {unbounded[1]:.2f}s",
        crowd=rounds[0][0],
        crowd_slowest_s=rounds[0][1],
        rss_kib=f"{rss_before} -> peak {max(r[2] for r in rounds)} -> {rss_after}",
        threads=f"{threads_before} -> peak {max(r[3] for r in rounds)} -> {threads_after}",
        readiness_flips=flips,
        serving_again_s=recovered,
    )


@pytest.mark.parametrize("driver", EITHER_DRIVER)
async def test_a_hung_database_is_bounded_by_the_rpc_deadline(
    driver: Driver, db_proxy: Proxy, mongo_server: MongoServer
) -> None:
    """A black hole (bytes stop, connections stay open): the call's deadline bounds the database call."""
    with FaultService(slow_env(db_proxy, driver, mongo_server)) as service:
        service.ready()
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            created = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="x")))).todo
            db_proxy.black_hole()
            start = time.monotonic()
            code, seconds = await timed(stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=1.5))
            db_proxy.clear()
            # The server itself answered (a reason) before the client's deadline: it bounded the
            # database call by the RPC's deadline, not by its 10 s maximum.
            assert code.split("/") == ["DEADLINE_EXCEEDED", "STORE_TIMEOUT"], code
            assert seconds < 1.5, seconds
            bound = float(service.wait_for(r"database call timed out after ([\d.]+)s", 10)[1])
            assert bound < 1.5, bound
            await seconds_until(channel, SERVING, 20)
            assert (await stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=15)).todo == created
            FIGURES.record(
                f"hung database ({driver})",
                call=f"{code} after {seconds:.2f}s",
                database_bound_s=bound,
                back_after_s=time.monotonic() - start,
            )
        assert service.terminate() == 0, service.output
