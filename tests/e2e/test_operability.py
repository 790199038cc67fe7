"""Rollouts without errors, server limits, and workers sharing the port."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator
from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from service.bootstrap import bootstrap
from service.domain.repository import TodoRepository
from service.infrastructure.config import ServerSettings, Settings
from service.infrastructure.grpc.server import RunningServer, start_server
from tests.support.fakes import GatedReads, ThreadedReads
from tests.support.logs import json_lines, log_timestamp
from tests.support.metrics import scrape, value
from tests.support.mongo_server import MongoServer
from tests.support.process import ServiceProcess, free_port
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc
from todo_client.errors import error_from_rpc


def log_time(output: str, message_start: str) -> float:
    for line in json_lines(output):
        if str(line["message"]).startswith(message_start):
            return log_timestamp(str(line["time"]))
    raise AssertionError(f"no log line starting with {message_start!r}:\n{output}")


@pytest.mark.process
def test_sigterm_under_load_fails_nothing_before_the_listener_closes_and_loses_no_write(
    mongo_server: MongoServer,
) -> None:
    env = {
        "TODO_MONGODB_URI": mongo_server.uri,
        "TODO_MONGODB_DATABASE": mongo_server.database_name("rollout"),
        "TODO_SHUTDOWN_DRAIN_SECONDS": "1.5",
        "TODO_SHUTDOWN_GRACE_SECONDS": "5",
    }
    acknowledged: list[pb.Todo] = []
    failures: list[tuple[float, grpc.StatusCode]] = []
    readiness_during_drain: list[int] = []

    async def load(address: str, service: ServiceProcess) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)

            async def client(number: int) -> None:
                for sequence in range(100_000):  # bounded; ends at the first failure
                    request = pb.CreateTodoRequest(todo=pb.Todo(content=f"client {number} #{sequence}"))
                    try:
                        acknowledged.append((await stub.CreateTodo(request, timeout=10)).todo)
                    except grpc.aio.AioRpcError as error:
                        failures.append((time.time(), error.code()))
                        return

            clients = [asyncio.create_task(client(number)) for number in range(4)]
            await asyncio.sleep(0.5)
            assert not failures
            service.process.terminate()  # SIGTERM with 4 RPCs in flight
            await asyncio.to_thread(service.wait_for, "shutting down: health NOT_SERVING")
            health = health_pb2_grpc.HealthStub(channel)
            check = await health.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=5)
            readiness_during_drain.append(check.status)
            await asyncio.wait_for(asyncio.gather(*clients), timeout=60)

    with ServiceProcess(env) as service:
        address = service.wait_serving()
        asyncio.run(load(address, service))
        assert service.wait() == 0, service.output
    listener_closed = log_time(service.output, "shutting down: no new RPCs")
    assert readiness_during_drain == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert len(failures) == 4
    # Nothing fails while the server drains; once the listener closes, new RPCs
    # are refused (UNAVAILABLE), and one racing the close itself may be
    # CANCELLED before it started (never acknowledged).
    assert min(moment for moment, _ in failures) >= listener_closed - 0.001  # log times have ms precision
    assert {code for _, code in failures} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert grpc.StatusCode.UNAVAILABLE in {code for _, code in failures}

    async def read_back(address: str) -> list[pb.Todo]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            return [(await stub.GetTodo(pb.GetTodoRequest(id=todo.id))).todo for todo in acknowledged]

    with ServiceProcess({key: env[key] for key in ("TODO_MONGODB_URI", "TODO_MONGODB_DATABASE")}) as reader:
        assert asyncio.run(read_back(reader.wait_serving())) == acknowledged
        assert reader.terminate() == 0
    after_sigterm = [moment for moment, _ in failures]
    print(  # shown with `pytest -s`: the figures of the closing note
        f"drain: 4 RPCs in flight at SIGTERM; {len(acknowledged)} acknowledged, all read back; "
        f"{len(failures)} failed ({sorted(code.name for _, code in failures)}), "
        f"first {min(after_sigterm) - listener_closed:+.3f}s after the listener closed; 0 lost"
    )


async def server_with(settings: Settings, repository: TodoRepository | None = None) -> RunningServer:
    settings = dataclasses.replace(settings, grpc_address="127.0.0.1:0")
    running = await start_server(bootstrap(settings, repository=repository).api, settings)
    await running.set_serving(True)
    return running


@dataclasses.dataclass(frozen=True)
class Limited:
    """A server with two application slots whose reads wait at a gate the test opens."""

    server: RunningServer
    stub: pb_grpc.TodoServiceAsyncStub
    reads: GatedReads


@pytest.fixture
async def limited() -> AsyncIterator[Limited]:
    settings = Settings(server=ServerSettings(max_concurrent_rpcs=2, max_receive_message_bytes=64 * 1024))
    reads = GatedReads()
    running = await server_with(settings, reads)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield Limited(running, pb_grpc.TodoServiceStub(channel), reads)
    reads.gate.set()
    await running.stop(0)


async def test_excess_concurrent_rpcs_are_refused_at_once_with_unavailable_and_pushback(limited: Limited) -> None:
    running, stub, reads = limited.server, limited.stub, limited.reads
    todo = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="slow")))).todo
    get = pb.GetTodoRequest(id=todo.id)
    admitted = [asyncio.ensure_future(stub.GetTodo(get, timeout=30)) for _ in range(2)]
    await reads.waiting(2)  # both slots are taken: two reads wait at the gate
    calls = [asyncio.ensure_future(stub.GetTodo(get, timeout=30)) for _ in range(4)]
    refused: list[grpc.aio.AioRpcError] = []
    for finished in asyncio.as_completed(calls):
        try:
            await finished
        except grpc.aio.AioRpcError as error:
            refused.append(error)
    # Every application slot is taken (two reads at the gate): health still answers.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("liveness", "readiness"):
            response = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert not any(call.done() for call in admitted), "the two admitted calls are still running"
    assert (len(refused), reads.reads) == (4, 2), "the four calls over the limit were refused before any read"
    reads.gate.set()
    results = await asyncio.gather(*admitted)
    assert [result.todo for result in results] == [todo, todo]
    for refusal in refused:
        decoded = error_from_rpc(refusal)
        # UNAVAILABLE: overload, which gRPC retry policies and retry throttling act on (RESOURCE_EXHAUSTED would not).
        assert (decoded.code, decoded.reason) == (grpc.StatusCode.UNAVAILABLE, "CONCURRENCY_LIMIT_REACHED")
        assert decoded.metadata == {"limit": "2"}
        assert retry_delay(refusal) == 0.1
        trailers = cast(grpc.aio.Metadata, refusal.trailing_metadata())
        assert trailers.get_all("grpc-retry-pushback-ms") == ["100"]  # gRFC A6 pushback: the same delay
    assert (await stub.GetTodo(pb.GetTodoRequest(id=todo.id), timeout=30)).todo == todo


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The google.rpc.RetryInfo delay of a failed call, in seconds."""
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


async def test_an_oversized_message_is_resource_exhausted_and_the_server_keeps_serving(limited: Limited) -> None:
    stub = limited.stub
    huge = pb.CreateTodoRequest(todo=pb.Todo(content="x" * 4000, tags=[f"t{n}" for n in range(20)]))
    huge.todo.content = "x" * (100 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateTodo(huge)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    fine = await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="fits")))
    assert fine.todo.content == "fits"


@pytest.mark.process
def test_workers_share_the_port_and_stop_together(mongo_server: MongoServer) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        "TODO_WORKERS": "2",
        "TODO_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "TODO_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "TODO_MONGODB_URI": mongo_server.uri,
        "TODO_MONGODB_DATABASE": mongo_server.database_name("workers"),
    }
    with ServiceProcess(env) as service:
        pids = json.loads(service.wait_for(r"started 2 workers: (\[[\d, ]+\])")[1])
        for _ in range(2):
            service.wait_for(r"readiness: SERVING")
        deadline = time.monotonic() + 30
        while service.output.count("readiness: SERVING") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.output.count("readiness: SERVING") == 2, service.output

        async def calls() -> None:
            for number in range(30):  # a new connection each time: the kernel spreads them
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = pb_grpc.TodoServiceStub(channel)
                    await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=f"w{number}")), timeout=10)

        asyncio.run(calls())
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        code = service.terminate()
    assert code == 0, service.output
    served_by = {line["pid"] for line in json_lines(service.output) if line["logger"] == "service.access"}
    assert served_by == set(pids), "both workers should have served connections"
    created = value(
        samples,
        "grpc_server_handled_total",
        grpc_type="unary",
        grpc_service="todo.v1.TodoService",
        grpc_method="CreateTodo",
        grpc_code="OK",
    )
    assert created == 30  # the parent's endpoint adds up both workers
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_cancelled_call_keeps_its_slot_until_its_database_call_ends() -> None:
    """Send-and-cancel cannot make the server run more database calls than TODO_MAX_CONCURRENT_RPCS.

    The store runs each read in a thread for 0.5 s, as Motor does; a cancellation
    does not stop it. Before, a cancelled call freed its slot at once and the
    next calls started more reads beside the orphaned ones.
    """
    limit = 2
    settings = Settings(grpc_address="127.0.0.1:0", server=ServerSettings(max_concurrent_rpcs=limit))
    reads = ThreadedReads(0.5)
    running = await start_server(bootstrap(settings, repository=reads).api, settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            entry = (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="x")))).todo
            refused = 0
            for _ in range(4):  # four waves of send-and-cancel
                calls = [stub.GetTodo(pb.GetTodoRequest(id=entry.id), timeout=5) for _ in range(limit)]
                for _ in range(200):  # until both reads run in their threads
                    if reads.running >= limit:
                        break
                    await asyncio.sleep(0.01)
                for call in calls:
                    call.cancel()
                reason = ""
                try:
                    await stub.GetTodo(pb.GetTodoRequest(id=entry.id), timeout=5)
                except grpc.aio.AioRpcError as error:
                    reason = error_from_rpc(error).reason
                assert reason in {"", "CONCURRENCY_LIMIT_REACHED"}
                refused += reason == "CONCURRENCY_LIMIT_REACHED"
            await asyncio.sleep(0.6)
            assert (await stub.GetTodo(pb.GetTodoRequest(id=entry.id), timeout=5)).todo.id == entry.id
    finally:
        await running.stop(0)
    print(f"send-and-cancel: at most {reads.most} database reads at once (limit {limit}); {refused} calls refused")
    assert reads.most <= limit
    assert refused >= 1
