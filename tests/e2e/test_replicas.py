"""Three replicas, one database, the typed client with its defaults: shared load and a rolling restart.

The client's default service config balances per RPC (`round_robin`) and
follows each replica's `readiness` health (client-side health checking), so:
- under steady load every replica serves a fair share;
- a rolling restart (SIGTERM, wait for the exit, start again, wait for
  SERVING; one replica at a time) surfaces no error to callers and loses no
  acknowledged write;
- a draining replica (health NOT_SERVING, listener still open for the drain)
  receives no new RPC: it begins at most the RPCs its callers had already
  sent it when the health update reached them, one per caller.
The figures are printed (`pytest -s`): shares, writes, errors, late RPCs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest

from tests.support.logs import json_lines, log_timestamp
from tests.support.metrics import scrape
from tests.support.mongo_server import MongoServer
from tests.support.process import ServiceProcess, free_port
from todo_client import TodoClient, TodoError

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process

REPLICAS = 3
CALLERS = 8
STEADY_SECONDS = 3.0
DRAIN_SECONDS = 1.0
HANDLED = "grpc_server_handled_total"


@dataclass
class Replica:
    port: int
    metrics_port: int
    env: dict[str, str]
    process: ServiceProcess | None = None
    logs: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.process = ServiceProcess(self.env)
        self.process.wait_serving(timeout=60)

    def stop(self) -> None:
        """SIGTERM, wait for the exit (0), keep the log."""
        assert self.process is not None
        assert self.process.terminate() == 0, self.process.output
        self.logs.append(self.process.output)
        self.process = None

    def handled(self) -> float:
        samples = scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")
        return sum(
            count
            for (name, labels), count in samples.items()
            if name == HANDLED and dict(labels).get("grpc_service") == "todo.v1.TodoService"
        )


def late_rpcs(log: str) -> int:
    """How many RPCs a replica began after it turned NOT_SERVING (its drain had begun)."""
    lines = json_lines(log)
    [draining] = [
        log_timestamp(line["time"])
        for line in lines
        if str(line.get("message", "")).startswith("shutting down: health NOT")
    ]
    return sum(
        1
        for line in lines
        if str(line.get("method", "")).startswith("/todo.v1.TodoService/")
        and log_timestamp(line["time"]) - float(line["duration_ms"]) / 1000 > draining
    )


@dataclass
class Load:
    acknowledged: dict[str, str] = field(default_factory=dict)  # request_id -> entry id
    errors: list[str] = field(default_factory=list)
    calls: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def caller(self, client: TodoClient, number: int) -> None:
        while not self.stop.is_set():
            request_id = str(uuid.uuid4())
            try:
                created = await client.create_todo(f"caller {number}", request_id=request_id, timeout=10)
                self.acknowledged[request_id] = created.id
                assert (await client.get_todo(created.id, timeout=10)).id == created.id
                self.calls += 2
            except TodoError as error:
                self.errors.append(f"{type(error).__name__}: {error}")


async def test_three_replicas_share_the_load_and_restart_without_errors(mongo_server: MongoServer) -> None:
    database = mongo_server.database_name("replicas")
    replicas = []
    for _ in range(REPLICAS):
        port, metrics_port = free_port(), free_port()
        env = {
            "TODO_GRPC_ADDRESS": f"127.0.0.1:{port}",
            "TODO_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            "TODO_MONGODB_URI": mongo_server.uri,
            "TODO_MONGODB_DATABASE": database,
            "TODO_SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
            "TODO_HEALTH_CHECK_INTERVAL_SECONDS": "0.2",
        }
        replicas.append(Replica(port, metrics_port, env))
    try:
        for replica in replicas:
            replica.start()
        target = "ipv4:" + ",".join(f"127.0.0.1:{replica.port}" for replica in replicas)
        load = Load()
        async with TodoClient.connect(target) as client:  # the client's defaults
            callers = [asyncio.ensure_future(load.caller(client, number)) for number in range(CALLERS)]
            await asyncio.sleep(STEADY_SECONDS)
            counts = [replica.handled() for replica in replicas]
            shares = [count / sum(counts) for count in counts]
            for replica in replicas:  # the rolling restart, under load
                await asyncio.to_thread(replica.stop)
                await asyncio.to_thread(replica.start)
            await asyncio.sleep(1.0)
            load.stop.set()
            await asyncio.gather(*callers)
            stored: list[str] = []
            async for todo in client.iter_todos(page_size=500):
                stored.append(todo.id)
        for replica in replicas:
            replica.stop()
    finally:
        for replica in replicas:
            if replica.process is not None:
                replica.process.process.kill()
    late = [late_rpcs(replica.logs[0]) for replica in replicas]
    acknowledged = list(load.acknowledged.values())
    print(  # shown with `pytest -s`: the figures of the closing note
        f"replicas: shares before the restart {[round(share, 2) for share in shares]} of {sum(counts):.0f} RPCs; "
        f"{load.calls} calls, {len(acknowledged)} acknowledged writes, {len(load.errors)} errors; "
        f"RPCs begun after NOT_SERVING, per replica: {late}"
    )
    assert min(shares) >= 0.2, shares
    assert load.errors == []
    assert sorted(stored) == sorted(acknowledged), "every acknowledged write, exactly once"
    assert len(set(acknowledged)) == len(acknowledged)
    # Each caller sends one RPC at a time, so a replica that turns NOT_SERVING can
    # still receive one RPC per caller, picked before the health update reached the
    # client; round-robin without health checking would keep sending it a third of
    # every caller's RPCs for the whole drain.
    assert all(count <= CALLERS for count in late), late
