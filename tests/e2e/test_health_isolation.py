"""Health never starves: application slots, Watch streams and one greedy connection cannot silence liveness.

- every todo.v1.TodoService slot (TODO_MAX_CONCURRENT_RPCS) taken and the Watch
  cap (TODO_MAX_HEALTH_WATCHES) full: liveness answers SERVING on the main port
  and on the dedicated health listener (TODO_HEALTH_ADDRESS);
- 5,000 Watch streams on one connection: the server holds no more than the
  per-connection stream cap (TODO_MAX_CONCURRENT_STREAMS) at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.bootstrap import bootstrap
from service.infrastructure.config import ServerSettings, Settings
from service.infrastructure.grpc.server import RunningServer, start_server
from tests.support.fakes import GatedReads
from tests.support.metrics import scrape, value
from tests.support.process import ServiceProcess, rss_mib
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc
from todo_client.errors import error_from_rpc

SERVING = health_pb2.HealthCheckResponse.SERVING
APP_SLOTS = 2
WATCH_CAP = 4


@pytest.fixture
async def crowded() -> AsyncIterator[tuple[RunningServer, GatedReads]]:
    """A server with APP_SLOTS application slots and WATCH_CAP Watch streams; reads wait at a gate."""
    settings = Settings(
        grpc_address="127.0.0.1:0",
        health_address="127.0.0.1:0",
        server=ServerSettings(max_concurrent_rpcs=APP_SLOTS, max_health_watches=WATCH_CAP),
    )
    reads = GatedReads()
    running = await start_server(bootstrap(settings, repository=reads).api, settings)
    await running.set_serving(True)
    yield running, reads
    reads.gate.set()
    await running.stop(0)


async def check(address: str, service: str) -> tuple[int, float]:
    """The status of Health/Check on a fresh connection, and the seconds it took."""
    # A local subchannel pool: a connection of its own, as the kubelet's would be
    # (channels to one target in one process share a connection otherwise).
    async with grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        started = time.perf_counter()
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return response.status, time.perf_counter() - started


async def test_liveness_answers_on_both_ports_with_every_app_slot_and_the_watch_cap_full(
    crowded: tuple[RunningServer, GatedReads],
) -> None:
    server, reads = crowded
    main, health_port = f"127.0.0.1:{server.port}", server.health_port
    assert health_port is not None
    async with grpc.aio.insecure_channel(main) as channel:
        stub = pb_grpc.TodoServiceStub(channel)
        todo = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="slow")))).todo
        get = pb.GetTodoRequest(id=todo.id)
        slow = [asyncio.ensure_future(stub.GetTodo(get, timeout=30)) for _ in range(APP_SLOTS)]
        await reads.waiting(APP_SLOTS)  # every application slot is taken by a read at the gate
        health = health_pb2_grpc.HealthStub(channel)
        watches = [health.Watch(health_pb2.HealthCheckRequest(service="liveness")) for _ in range(WATCH_CAP)]
        for watch in watches:  # each stream is open: its first answer has arrived
            assert (await watch.read()).status == SERVING
        assert server.health.open_watches == WATCH_CAP

        # Both limits are reached: one more of each is refused at once ...
        with pytest.raises(grpc.aio.AioRpcError) as app_refused:
            await stub.GetTodo(pb.GetTodoRequest(id=todo.id), timeout=5)
        assert error_from_rpc(app_refused.value).reason == "CONCURRENCY_LIMIT_REACHED"
        extra = health.Watch(health_pb2.HealthCheckRequest(service="liveness"))
        with pytest.raises(grpc.aio.AioRpcError) as watch_refused:
            await extra.read()
        assert watch_refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert sum(not call.done() for call in slow) == APP_SLOTS

        # ... and liveness still answers SERVING, on the main port and on the health listener.
        figures = []
        for address in (main, f"127.0.0.1:{health_port}"):
            for name in ("liveness", "readiness"):
                status, seconds = await check(address, name)
                assert status == SERVING, (address, name)
                figures.append(seconds)
        print(
            f"health with {APP_SLOTS} app slots and {WATCH_CAP} watches taken: Check answered in "
            f"{max(figures) * 1000:.1f} ms at most (main and health port)"
        )

        for watch in watches:
            watch.cancel()
        for call in slow:
            call.cancel()


async def test_the_health_listener_serves_grpc_health_only(crowded: tuple[RunningServer, GatedReads]) -> None:
    server, _ = crowded
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.TodoServiceStub(channel).ListTodos(pb.ListTodosRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        await server.begin_shutdown()  # the same statuses as the main port, shutdown included
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="liveness"), timeout=5
        )
        assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.process
async def test_5000_watch_streams_on_one_connection_are_bounded_by_the_stream_cap() -> None:
    streams, cap = 5000, ServerSettings().max_concurrent_streams
    env = {"TODO_METRICS_ADDRESS": "127.0.0.1:0", "TODO_LOG_FORMAT": "console"}
    with ServiceProcess(env) as service:
        address = service.wait_serving()
        metrics = service.wait_for(r"metrics on (http://\S+/metrics)")[1]
        before = rss_mib(service.process.pid)
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watches = [health.Watch(health_pb2.HealthCheckRequest(service="liveness")) for _ in range(streams)]
            deadline = time.monotonic() + 60
            open_now = 0.0
            while open_now < cap and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                open_now = value(await asyncio.to_thread(scrape, metrics), "todo_health_watch_streams")
            assert open_now == cap, f"{open_now} Watch streams open on the server, expected the cap {cap}"
            await asyncio.sleep(1.0)  # the rest stay queued in the client, not on the server
            held = value(await asyncio.to_thread(scrape, metrics), "todo_health_watch_streams")
            during = rss_mib(service.process.pid)
            status, seconds = await check(address, "liveness")  # another connection: not queued behind them
            assert status == SERVING
            for watch in watches:
                watch.cancel()
        print(
            f"{streams} Watch streams on one connection: {held:.0f} held by the server (cap {cap}); "
            f"server RSS {before:.0f} -> {during:.0f} MiB; liveness on another connection in {seconds * 1000:.1f} ms"
        )
        assert held == cap
        assert during - before < 32, "the server grew by more than 32 MiB for one connection's streams"
        assert service.terminate() == 0, service.output


def test_settings_carry_the_caps_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "TODO_MAX_CONCURRENT_STREAMS": "10",
            "TODO_MAX_HEALTH_WATCHES": "7",
            "TODO_HEALTH_ADDRESS": "127.0.0.1:8081",
        }
    )
    assert (settings.server.max_concurrent_streams, settings.server.max_health_watches) == (10, 7)
    assert settings.health_address == "127.0.0.1:8081"
    assert Settings().health_address == ""  # off by default
