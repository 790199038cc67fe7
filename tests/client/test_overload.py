"""The client's overload control: adaptive throttling, the stream budget over several connections, ThrottledError.

Unit tests of the two mechanisms (a fake clock, a seeded generator), then the
client against real servers on loopback: calls over its stream budget never
reach the server, a service that keeps refusing is throttled locally, and
`connections` really are connections of their own.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import grpc
import pytest

from service.bootstrap import bootstrap
from service.infrastructure.config import ServerSettings, Settings
from service.infrastructure.grpc.server import start_server
from tests.support.fakes import GatedReads, ManualClock
from tests.support.servers import todo_server
from todo.v1 import todo_service_pb2 as pb
from todo_client import OverloadPolicy, ThrottledError, TodoClient, UnavailableError
from todo_client import overload as overload_module
from todo_client.overload import AdaptiveThrottle, ConnectionSlots


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    return ManualClock.patch(monkeypatch, "todo_client.overload.time.monotonic", now=500.0)


class TestAdaptiveThrottle:
    def test_a_new_client_or_one_that_is_served_never_refuses(self, clock: ManualClock) -> None:
        throttle = AdaptiveThrottle(ratio=2.0, window_seconds=10, padding=8)
        assert throttle.probability() == 0.0
        for _ in range(1000):
            assert throttle.allow()
            throttle.accepted()
        assert throttle.rejected == 0

    def test_the_refusal_probability_follows_requests_and_accepts(self, clock: ManualClock) -> None:
        throttle = AdaptiveThrottle(ratio=2.0, window_seconds=10, padding=8)
        for _ in range(25):
            throttle.accepted()
        for _ in range(75):
            throttle.refused()
        # requests 100, accepts 25: (100 - 2 * 25) / (100 + 8)
        assert throttle.probability() == pytest.approx(50 / 108)

    def test_it_refuses_about_that_share_and_counts_what_it_refused(
        self, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(overload_module, "random", random.Random(7))  # noqa: S311 (a seeded draw)
        throttle = AdaptiveThrottle(ratio=1.0, window_seconds=10, padding=0)
        for _ in range(100):
            throttle.refused()  # the service refused everything: requests 100, accepts 0
        allowed = sum(throttle.allow() for _ in range(200))
        assert allowed < 20  # the probability starts at 1 and stays there: nothing is accepted
        assert throttle.rejected == 200 - allowed

    def test_it_holds_back_until_enough_calls_ended(self, clock: ManualClock) -> None:
        throttle = AdaptiveThrottle(ratio=2.0, window_seconds=10, padding=8, minimum=20)
        for _ in range(19):
            throttle.refused()
        assert throttle.probability() == 0.0  # a client that made a few calls is no load to shed
        throttle.refused()
        assert throttle.probability() == pytest.approx(20 / 28)

    def test_history_leaves_the_window(self, clock: ManualClock) -> None:
        throttle = AdaptiveThrottle(ratio=2.0, window_seconds=10, padding=8)
        for _ in range(100):
            throttle.refused()
        assert throttle.probability() > 0.9
        clock.now += 5
        assert throttle.probability() > 0.9  # still within the window
        clock.now += 5.6
        assert throttle.probability() == 0.0


class TestConnectionSlots:
    def test_calls_spread_over_the_connections_in_turn_up_to_the_budget(self) -> None:
        slots = ConnectionSlots(connections=3, per_connection=2)
        taken = [slots.take() for _ in range(7)]
        assert taken == [0, 1, 2, 0, 1, 2, None]
        assert slots.in_flight == 6
        slots.give_back(1)
        assert slots.take() == 1

    async def test_a_waiting_call_gets_the_next_slot_given_back(self) -> None:
        slots = ConnectionSlots(connections=1, per_connection=1)
        assert slots.take() == 0
        waiting = asyncio.create_task(slots.wait(5))
        await asyncio.sleep(0)
        assert slots.take() is None  # no jumping the queue
        slots.give_back(0)
        assert await waiting == 0
        assert slots.in_flight == 1

    async def test_a_wait_that_runs_out_gets_nothing_and_leaks_nothing(self) -> None:
        slots = ConnectionSlots(connections=1, per_connection=1)
        assert slots.take() == 0
        assert await slots.wait(0.01) is None
        assert await slots.wait(0) is None
        slots.give_back(0)
        assert slots.in_flight == 0
        assert slots.take() == 0

    async def test_a_cancelled_waiter_passes_its_slot_on(self) -> None:
        slots = ConnectionSlots(connections=1, per_connection=1)
        assert slots.take() == 0
        first = asyncio.create_task(slots.wait(5))
        second = asyncio.create_task(slots.wait(5))
        await asyncio.sleep(0)
        slots.give_back(0)  # handed to the first waiter ...
        first.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second == 0
        assert slots.in_flight == 1


def test_policy_values_out_of_range_are_refused() -> None:
    for bad in ({"connections": 0}, {"streams_per_connection": 0}, {"throttle_ratio": 0.5}, {"max_queue_fraction": 2}):
        with pytest.raises(ValueError):  # noqa: PT011 (the message names the field; any of them)
            OverloadPolicy(**bad)


# -- against real servers ---------------------------------------------------------------------------


@pytest.fixture
async def gated() -> AsyncIterator[tuple[int, GatedReads]]:
    reads = GatedReads()
    async with todo_server(repository=reads) as port:
        yield port, reads


async def test_calls_over_the_stream_budget_wait_briefly_then_fail_locally_without_reaching_the_server(
    gated: tuple[int, GatedReads],
) -> None:
    port, reads = gated
    policy = OverloadPolicy(connections=1, streams_per_connection=2, max_queue_seconds=0.05, throttle_ratio=0)
    async with TodoClient.connect(f"127.0.0.1:{port}", overload=policy) as client:
        todo = await client.create_todo("slow")
        calls = [asyncio.create_task(client.get_todo(todo.id, timeout=10)) for _ in range(6)]
        # The four over the budget give up after 0.05 s; the two within it wait at the gate.
        await asyncio.wait(calls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait(calls, timeout=0.5)
        refused = [call for call in calls if call.done()]
        assert len(refused) == 4
        for call in refused:
            error = call.exception()
            assert isinstance(error, ThrottledError)
            assert error.reason == "CLIENT_THROTTLED"
        assert reads.reads == 2, "only the two calls within the budget reached the store"
        assert client.throttled == 4
        reads.gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert sum(isinstance(result, ThrottledError) for result in results) == 4
        assert [result.id for result in results if not isinstance(result, BaseException)] == [todo.id] * 2


async def test_a_waiting_call_is_sent_when_a_stream_comes_free(gated: tuple[int, GatedReads]) -> None:
    port, reads = gated
    policy = OverloadPolicy(connections=1, streams_per_connection=1, max_queue_seconds=5, throttle_ratio=0)
    async with TodoClient.connect(f"127.0.0.1:{port}", overload=policy) as client:
        todo = await client.create_todo("slow")
        first = asyncio.create_task(client.get_todo(todo.id, timeout=10))
        await reads.started.wait()
        second = asyncio.create_task(client.get_todo(todo.id, timeout=10))
        await asyncio.sleep(0.05)
        assert not second.done()  # waiting for the one stream, in the client
        reads.gate.set()
        assert (await first).id == (await second).id == todo.id


async def test_a_service_that_keeps_refusing_is_throttled_in_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # One slot, held by a gated read: every other call is refused by the server's admission (UNAVAILABLE).
    # The throttle's draws are seeded: unseeded, 161 of the 200 calls are refused in the client on average
    # (standard deviation 4, by simulating the throttle's arithmetic), so about 1 run in 100 fell under the bound.
    monkeypatch.setattr(overload_module, "random", random.Random(7))  # noqa: S311 (a seeded draw)
    reads = GatedReads()
    settings = Settings(grpc_address="127.0.0.1:0", server=ServerSettings(max_concurrent_rpcs=1))
    running = await start_server(bootstrap(settings, repository=reads).api, settings)
    await running.set_serving(True)
    policy = OverloadPolicy(connections=1, max_queue_seconds=0, throttle_window_seconds=60)
    try:
        async with TodoClient.connect(f"127.0.0.1:{running.port}", overload=policy, retry=None) as client:
            todo = await client.create_todo("held")
            holder = asyncio.create_task(client.get_todo(todo.id, timeout=30))
            await reads.started.wait()
            outcomes: dict[str, int] = {}
            for _ in range(200):
                try:
                    await client.get_todo(todo.id, timeout=5)
                except ThrottledError:
                    outcomes["throttled"] = outcomes.get("throttled", 0) + 1
                except UnavailableError as error:
                    outcomes[error.reason] = outcomes.get(error.reason, 0) + 1
            reads.gate.set()
            await holder
    finally:
        await running.stop(0)
    # With nothing accepted, the throttle refuses nearly every call once a few refusals are in.
    assert set(outcomes) == {"throttled", "CONCURRENCY_LIMIT_REACHED"}, outcomes
    assert outcomes["throttled"] > 150, outcomes


async def test_each_connection_of_the_policy_is_a_connection_of_its_own() -> None:
    peers: set[str] = set()

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        peers.add(context.peer())
        return pb.GetTodoResponse(todo=pb.Todo(id="x")).SerializeToString()

    server = grpc.aio.server()
    handlers = {"GetTodo": grpc.unary_unary_rpc_method_handler(echo)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("todo.v1.TodoService", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        # No health service here: without it, round_robin's health checking treats the address as healthy.
        policy = OverloadPolicy(connections=3)
        async with TodoClient.connect(f"127.0.0.1:{port}", overload=policy) as client:
            await asyncio.gather(*(client.get_todo("x") for _ in range(30)))
        async with TodoClient.connect(f"127.0.0.1:{port}", overload=None) as single:
            before = set(peers)
            await asyncio.gather(*(single.get_todo("x") for _ in range(10)))
    finally:
        await server.stop(0)
    assert len(before) == 3, before
    assert len(peers - before) == 1
