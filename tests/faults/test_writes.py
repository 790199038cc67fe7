"""Writes under faults: a reply lost after the write was applied, a database restart behind the proxy,
kill -9 of the service and of the database, a stop under load. Every acknowledged write is read back.

What a crash test proves: an acknowledged write survives the crash of a
process (the service's, the database's). The machine's page cache survives
too, so it does not prove that the write reached the disk: that rests on
MongoDB's journal and the write concern (`w: majority`, journaled), which
only a real replica set (TODO_TEST_MONGODB_URI) exercises.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pymongo
import pytest

from service.infrastructure.config import Driver
from tests.support.faults import (
    DETECTION_BOUND,
    EITHER_DRIVER,
    FIGURES,
    NOT_SERVING,
    SERVING,
    SIZES,
    FaultService,
    Load,
    audit,
    client_create,
    code_of,
    seconds_until_at,
    service_env,
    stub_create,
)
from tests.support.mongo_server import FerretDB, MongoServer
from tests.support.toxiproxy import Proxy
from todo.v1 import todo_service_pb2_grpc as pb_grpc
from todo_client import TodoClient
from todo_client.errors import TodoError

pytestmark = pytest.mark.process  # the service, the database and the fault proxy run as processes

RECOVERY_BOUND = 20.0


@asynccontextmanager
async def served(env: Mapping[str, str]) -> AsyncIterator[tuple[FaultService, pb_grpc.TodoServiceAsyncStub]]:
    """A ready service process and a stub on it; SIGTERM (exit 0) afterwards unless the test killed it."""
    with FaultService(env) as service:
        service.ready()
        async with grpc.aio.insecure_channel(service.address) as channel:
            yield service, pb_grpc.TodoServiceStub(channel)
        if service.process.poll() is None:
            assert service.terminate() == 0, service.output


async def stored(collection: Any, content: str) -> int:
    return int(await collection.count_documents({"content": content}))


async def lose_reply(proxy: Proxy, collection: Any, content: str) -> None:
    """Drop the database's replies until `content` is stored, then reset the connections: applied, reply lost."""
    proxy.add("replies_dropped", "timeout", "downstream", timeout=0)
    deadline = time.monotonic() + 10
    while not await stored(collection, content):
        assert time.monotonic() < deadline, f"{content!r} never reached the database"
        await asyncio.sleep(0.02)
    proxy.add("reset", "reset_peer", "downstream", timeout=0)
    await asyncio.sleep(0.3)
    proxy.clear()


async def create_until_acknowledged(client: TodoClient, content: str, request_id: str) -> tuple[str, list[str]]:
    """A caller that keeps its request_id and retries (the library retries UNAVAILABLE too) until acknowledged."""
    endings: list[str] = []
    deadline = time.monotonic() + RECOVERY_BOUND
    while True:
        try:
            return (await client.create_todo(content, request_id=request_id, timeout=5)).id, endings
        except TodoError as error:
            endings.append(code_of(error))
            assert time.monotonic() < deadline, endings
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("driver", EITHER_DRIVER)
async def test_a_reply_lost_after_the_write_is_stored_once_with_a_request_id(
    driver: Driver, db_proxy: Proxy, mongo_server: MongoServer
) -> None:
    database = mongo_server.database_name("lost_reply")
    direct: pymongo.AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(mongo_server.uri)
    collection = direct[database]["todos"]
    try:
        async with served(service_env(db_proxy.uri, driver, database)) as (service, stub):
            async with TodoClient.connect(service.address) as client:
                load = Load(client_create(client), SIZES.callers // 2)
                with load.running() as callers:
                    await asyncio.sleep(SIZES.load_seconds / 2)
                    # With a request_id: the caller's retries find the entry the first attempt stored.
                    content, request_id = f"lost reply {uuid.uuid4()}", str(uuid.uuid4())
                    call = asyncio.ensure_future(create_until_acknowledged(client, content, request_id))
                    await lose_reply(db_proxy, collection, content)
                    entry_id, endings = await call
                    with_id_stored = await stored(collection, content)
                    await seconds_until_at(service.address, SERVING, RECOVERY_BOUND)
                    await asyncio.sleep(SIZES.load_seconds / 2)
                await callers
                lost, duplicated = await audit(stub, load)
            # Without a request_id: the caller sees UNAVAILABLE, yet the entry is stored; its retry stores another.
            bare = f"lost reply, no request id {uuid.uuid4()}"
            first = asyncio.ensure_future(stub_create(stub, with_request_id=False)(bare, ""))
            await lose_reply(db_proxy, collection, bare)
            try:
                await first
                seen = "OK"
            except grpc.aio.AioRpcError as error:
                seen = code_of(error)
            after_failure = await stored(collection, bare)
            await seconds_until_at(service.address, SERVING, RECOVERY_BOUND)
            await stub_create(stub, with_request_id=False)(bare, "")
            after_retry = await stored(collection, bare)
    finally:
        await direct.drop_database(database)
        await direct.close()
    assert with_id_stored == 1
    assert (lost, duplicated) == (0, 0), load.statuses
    assert load.statuses["OK"] > 0, load.statuses
    assert seen == "UNAVAILABLE/STORE_UNAVAILABLE"
    assert (after_failure, after_retry) == (1, 2)
    FIGURES.record(
        f"reply lost after the write ({driver})",
        with_request_id=f"stored once after {len(endings) + 1} calls, {len(endings)} failed ({', '.join(endings)})",
        entry=entry_id[:8],
        load=load.statuses,
        lost=lost,
        duplicated=duplicated,
        without_request_id=f"caller saw {seen}, stored {after_failure}; a retry made it {after_retry}",
    )


@pytest.mark.parametrize("driver", EITHER_DRIVER)
async def test_database_restarts_behind_a_live_proxy_lose_nothing(
    driver: Driver, own_database: FerretDB, own_proxy: Proxy
) -> None:
    """Under load, the database stops (SIGTERM), then crashes (SIGKILL), each time restarted on the same
    port and data while the proxy stays up with the service's connections: nothing acknowledged is lost."""
    figures: dict[str, object] = {}
    async with served(service_env(own_proxy.uri, driver, "restart")) as (service, stub):
        async with TodoClient.connect(service.address) as client:
            load = Load(client_create(client), SIZES.callers)
            with load.running() as callers:
                for how in ("sigterm", "sigkill"):
                    await asyncio.sleep(SIZES.load_seconds)
                    start = time.monotonic()
                    if how == "sigkill":
                        assert own_database.process is not None
                        own_database.process.send_signal(signal.SIGKILL)
                    assert own_database.stop() == (0 if how == "sigterm" else -signal.SIGKILL)
                    await seconds_until_at(service.address, NOT_SERVING, DETECTION_BOUND)
                    figures[f"{how}_detect_s"] = time.monotonic() - start  # the database's own stop included
                    own_database.start()  # same port, same data
                    figures[f"{how}_recover_s"] = await seconds_until_at(service.address, SERVING, RECOVERY_BOUND)
                await asyncio.sleep(SIZES.load_seconds)
            await callers
        lost, duplicated = await audit(stub, load)
    assert (lost, duplicated) == (0, 0), load.statuses
    assert load.statuses["OK"] > 0, load.statuses
    FIGURES.record(
        f"database SIGTERM and kill -9 behind the proxy, restarted ({driver})",
        **figures,
        calls=load.statuses,
        acknowledged=len(load.acknowledged),
        lost=lost,
        duplicated=duplicated,
    )


async def crash_under_load(env: Mapping[str, str], kill: Any) -> tuple[Load, float]:
    """Load a service, run `kill(service)` in the middle (SIGKILL of something); the load and the killing time."""
    with FaultService(env) as service:
        service.ready()
        async with grpc.aio.insecure_channel(service.address) as channel:
            load = Load(stub_create(pb_grpc.TodoServiceStub(channel), timeout=3), SIZES.callers)
            with load.running() as callers:
                await asyncio.sleep(SIZES.load_seconds)
                start = time.monotonic()
                await kill(service)
                took = time.monotonic() - start
                await asyncio.sleep(0.5)
            await callers
        if service.process.poll() is None:
            assert service.terminate() == 0, service.output
    return load, took


@pytest.mark.parametrize("driver", EITHER_DRIVER)
async def test_acknowledged_writes_survive_kill_9_of_the_service(driver: Driver, own_database: FerretDB) -> None:
    env = service_env(own_database.uri, driver, "crash")

    async def kill(service: FaultService) -> None:
        service.process.send_signal(signal.SIGKILL)
        assert service.wait(10) == -signal.SIGKILL

    load, _ = await crash_under_load(env, kill)
    async with served(env) as (_service, stub):  # a new process on the same database
        lost, duplicated = await audit(stub, load)
    assert (lost, duplicated) == (0, 0)
    assert load.statuses["OK"] > 0, load.statuses
    FIGURES.record(
        f"kill -9 of the service ({driver})",
        acknowledged=len(load.acknowledged),
        calls=load.statuses,
        lost=lost,
        duplicated=duplicated,
    )


async def test_a_stop_under_load_without_drain(own_database: FerretDB) -> None:
    """SIGTERM with TODO_SHUTDOWN_DRAIN_SECONDS=0 while callers create entries: how calls end, nothing lost."""
    env = service_env(own_database.uri, "pymongo", "stop", TODO_SHUTDOWN_DRAIN_SECONDS="0")

    async def stop(service: FaultService) -> None:
        assert await asyncio.to_thread(service.terminate) == 0, service.output

    load, took = await crash_under_load(env, stop)
    async with served(env) as (_service, stub):
        lost, duplicated = await audit(stub, load)
    assert (lost, duplicated) == (0, 0)
    assert load.statuses["OK"] > 0, load.statuses
    # After the stop nothing listens: UNAVAILABLE. CANCELLED: see docs/faults.md.
    assert set(load.statuses) <= {"OK", "UNAVAILABLE", "CANCELLED"}, load.statuses
    FIGURES.record(
        "stop under load, no drain",
        stop_s=took,
        calls=load.statuses,
        acknowledged=len(load.acknowledged),
        lost=lost,
        duplicated=duplicated,
    )
