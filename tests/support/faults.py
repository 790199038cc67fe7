"""What the fault scenarios share: sizes, the service behind the proxy, load, health, figures.

Sizes are bounded for `make check` (seconds per scenario); `make faults-long`
sets TODO_FAULTS_SCALE=long for the longer version of the same scenarios.
Every scenario records its figures (`Figures`); they are printed at the end
of the run and docs/faults.md quotes them.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.infrastructure.config import Driver
from tests.support.metrics import scrape, value
from tests.support.process import ServiceProcess
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc
from todo_client import TodoClient
from todo_client.errors import TodoError, error_from_rpc

LONG = os.environ.get("TODO_FAULTS_SCALE", "") == "long"
DRIVERS: list[Driver] = ["motor", "pymongo"]
# Scenarios whose outcome does not depend on the driver (a crash, a restart, a lost reply: FerretDB
# has no retryable writes, so neither driver retries) run on the default driver in `make check`
# and on both in `make faults-long`.
EITHER_DRIVER: list[Driver] = DRIVERS if LONG else ["motor"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
READINESS = "readiness"


@dataclass(frozen=True)
class Sizes:
    load_seconds: float  # how long a load runs before (and after) the fault
    callers: int  # concurrent callers of a load
    crowd: int  # concurrent callers of the pile-up scenario


SIZES = Sizes(load_seconds=8.0, callers=50, crowd=5000) if LONG else Sizes(load_seconds=1.0, callers=8, crowd=1000)

# Settings of the service under fault: readiness checked every 0.2 s, a ping bounded by 1 s.
HEALTH_INTERVAL = 0.2
SELECTION_TIMEOUT = 1.0
# Documented bound on detection (docs/faults.md): one interval plus one bounded ping, plus a margin
# for a shared 2-core machine.
DETECTION_BOUND = HEALTH_INTERVAL + SELECTION_TIMEOUT + 3.0


def service_env(uri: str, driver: Driver, database: str, **extra: str) -> dict[str, str]:
    env = {
        "TODO_MONGODB_URI": uri,
        "TODO_MONGODB_DATABASE": database,
        "TODO_MONGODB_DRIVER": driver,
        "TODO_HEALTH_CHECK_INTERVAL_SECONDS": str(HEALTH_INTERVAL),
        "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS": str(SELECTION_TIMEOUT),
        "TODO_MONGODB_CONNECT_TIMEOUT_SECONDS": "1",
        "TODO_MONGODB_TIMEOUT_SECONDS": "2",
        "TODO_METRICS_ADDRESS": "127.0.0.1:0",
        "TODO_ACCESS_LOG": "false",
        "TODO_LOG_FORMAT": "console",
        "TODO_EVENT_LOOP": "asyncio",
    }
    env.update(extra)
    return env


class FaultService(ServiceProcess):
    """The service as a process (it can be killed), with its address and metrics URL once ready."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.address = ""
        self.metrics_url = ""

    def ready(self, timeout: float = 30.0) -> FaultService:
        self.address = self.wait_serving(timeout)
        self.metrics_url = self.wait_for(r"metrics on (http://\S+/metrics)", timeout)[1]
        return self

    def metric(self, name: str, **labels: str) -> float:
        return value(scrape(self.metrics_url), name, **labels)

    def memory(self) -> tuple[int, int]:
        """Resident memory (KiB) and threads of the process, from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        rss = int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]
        threads = int(re.search(r"Threads:\s+(\d+)", status)[1])  # type: ignore[index]
        return rss, threads


async def readiness(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response = await stub.Check(health_pb2.HealthCheckRequest(service=READINESS), timeout=2)
    except grpc.aio.AioRpcError:
        return -1
    return int(response.status)


async def seconds_until(channel: grpc.aio.Channel, wanted: int, bound: float) -> float:
    """Seconds until readiness reports `wanted` (polled every 50 ms); fails past `bound`."""
    start = time.monotonic()
    status = -1
    while (elapsed := time.monotonic() - start) < bound:
        status = await readiness(channel)
        if status == wanted:
            return elapsed
        await asyncio.sleep(0.05)
    raise AssertionError(f"readiness stayed {status} for {bound:.1f}s, wanted {wanted}")


async def seconds_until_at(address: str, wanted: int, bound: float) -> float:
    """`seconds_until` on a channel of its own to `address`."""
    async with grpc.aio.insecure_channel(address) as channel:
        return await seconds_until(channel, wanted, bound)


def code_of(error: BaseException) -> str:
    """`CODE` or `CODE/REASON` (the ErrorInfo reason the service sent, when it did)."""
    if isinstance(error, grpc.aio.AioRpcError):
        error = error_from_rpc(error)
    if not isinstance(error, TodoError):
        return type(error).__name__
    return f"{error.code.name}/{error.reason}" if error.reason else error.code.name


Create = Callable[[str, str], Awaitable[str]]  # (content, request_id) -> the acknowledged entry's id


def stub_create(stub: pb_grpc.TodoServiceAsyncStub, timeout: float = 5.0, with_request_id: bool = True) -> Create:
    """CreateTodo on a plain stub: no retries (grpc's own channel has no retry policy)."""

    async def create(content: str, request_id: str) -> str:
        request = pb.CreateTodoRequest(todo=pb.Todo(content=content), request_id=request_id if with_request_id else "")
        return (await stub.CreateTodo(request, timeout=timeout)).todo.id

    return create


def client_create(client: TodoClient, timeout: float = 10.0) -> Create:
    """CreateTodo through the todo-client library: its request_id, its retries on UNAVAILABLE."""

    async def create(content: str, request_id: str) -> str:
        return (await client.create_todo(content, request_id=request_id, timeout=timeout)).id

    return create


@dataclass
class Load:
    """Concurrent callers creating entries with unique contents: what was acknowledged, how calls ended."""

    create: Create
    callers: int
    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged: dict[str, str] = field(default_factory=dict)  # id -> content
    sent: set[str] = field(default_factory=set)  # every content sent, acknowledged or not
    messages: dict[str, str] = field(default_factory=dict)  # the first message of each failure
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _caller(self, number: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            content = f"load {number}-{n} {uuid.uuid4().hex[:8]}"
            self.sent.add(content)
            try:
                entry_id = await self.create(content, str(uuid.uuid4()))
            except (grpc.aio.AioRpcError, TodoError) as error:
                code = code_of(error)
                self.statuses[code] += 1
                self.messages.setdefault(code, str(error)[:300])
                await asyncio.sleep(0.02)
                continue
            self.statuses["OK"] += 1
            self.acknowledged[entry_id] = content
            await asyncio.sleep(0.01)  # a steady load, not a flood (the machine is shared)

    @contextmanager
    def running(self) -> Iterator[asyncio.Future[list[None]]]:
        """Callers run inside the block; await the future it gives to wait until they have stopped."""
        self._stop.clear()
        tasks = asyncio.gather(*(self._caller(n) for n in range(self.callers)))
        try:
            yield tasks
        finally:
            self._stop.set()


async def audit(stub: pb_grpc.TodoServiceAsyncStub, load: Load) -> tuple[int, int]:
    """(lost, duplicated): acknowledged entries missing or changed, and contents stored more than once."""
    stored = Counter(await all_contents(stub))

    async def missing(entry_id: str, content: str) -> bool:
        try:
            todo = (await stub.GetTodo(pb.GetTodoRequest(id=entry_id), timeout=30)).todo
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return True
        return todo.content != content

    items = list(load.acknowledged.items())
    lost = 0
    for batch in range(0, len(items), 8):  # under the connection's stream limit, as a compliant caller keeps
        lost += sum(await asyncio.gather(*(missing(*item) for item in items[batch : batch + 8])))
    duplicated = sum(count - 1 for content, count in stored.items() if content in load.sent and count > 1)
    return lost, duplicated


async def all_contents(stub: pb_grpc.TodoServiceAsyncStub) -> list[str]:
    """The content of every stored entry (all pages)."""
    contents: list[str] = []
    token = ""
    while True:
        page = await stub.ListTodos(pb.ListTodosRequest(page_size=500, page_token=token), timeout=30)
        contents += [todo.content for todo in page.todos]
        token = page.next_page_token
        if not token:
            return contents


async def timed(call: Awaitable[Any]) -> tuple[str, float]:
    """How a call ended (OK or its code) and after how long."""
    start = time.monotonic()
    try:
        await call
        code = "OK"
    except grpc.aio.AioRpcError as error:
        code = code_of(error)
    return code, time.monotonic() - start


@dataclass
class Figures:
    """What one scenario measured, printed at the end of the run."""

    rows: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def record(self, scenario: str, **figures: object) -> None:
        self.rows.append((scenario, figures))

    def lines(self) -> list[str]:
        out = []
        for scenario, figures in self.rows:
            shown = ", ".join(f"{key}={_shown(item)}" for key, item in figures.items())
            out.append(f"{scenario}: {shown}")
        return out


def _shown(item: object) -> str:
    if isinstance(item, float):
        return f"{item:.2f}"
    if isinstance(item, Counter):
        return "{" + ", ".join(f"{key}: {count}" for key, count in sorted(item.items())) + "}"
    return str(item)


FIGURES = Figures()
