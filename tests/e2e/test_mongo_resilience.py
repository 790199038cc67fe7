"""MongoDB outages: fast, typed failures, readiness that follows, nothing lost (slowness and hangs: tests/faults)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.infrastructure.config import Driver
from tests.e2e.process import ServiceProcess
from tests.e2e.rich_status import decode
from tests.mongo_server import FerretDB, MongoServer
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

DRIVERS: list[Driver] = ["motor", "pymongo"]
STORE_FAILURES = {
    (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "STORE_TIMEOUT"),
}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_status(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service="todo.v1.TodoService"), timeout=5)
    return int(response.status)


async def wait_for_health(channel: grpc.aio.Channel, wanted: int, attempts: int = 300) -> None:
    """Poll (bounded: at most `attempts` x 0.1 s) until health reports `wanted`."""
    status = -1
    for _ in range(attempts):
        status = await health_status(channel)
        if status == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health stayed {status}, wanted {wanted}")


@pytest.mark.parametrize("driver", DRIVERS)
def test_entries_survive_a_restart_of_the_service(mongo_server: MongoServer, driver: Driver) -> None:
    env = {
        "TODO_MONGODB_URI": mongo_server.uri,
        "TODO_MONGODB_DATABASE": mongo_server.database_name("restart"),
        "TODO_MONGODB_DRIVER": driver,
    }

    async def write(address: str) -> list[pb.Todo]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            todos = [
                (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=f"keep {n}", tags=["t"])))).todo
                for n in range(5)
            ]
            todos[2] = (await stub.AddTag(pb.AddTagRequest(id=todos[2].id, tag="changed"))).todo
            return todos

    async def read(address: str, ids: list[str]) -> tuple[list[pb.Todo], list[str]]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            todos = [(await stub.GetTodo(pb.GetTodoRequest(id=todo_id))).todo for todo_id in ids]
            listed = await stub.ListTodos(pb.ListTodosRequest())
            return todos, [todo.id for todo in listed.todos]

    with ServiceProcess(env) as first:
        written = asyncio.run(write(first.wait_serving()))
        assert first.terminate() == 0, first.output
    with ServiceProcess(env) as second:
        read_back, listed = asyncio.run(read(second.wait_serving(), [todo.id for todo in written]))
        assert second.terminate() == 0, second.output
    assert read_back == written
    assert sorted(listed) == sorted(todo.id for todo in written)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_database_outage_fails_fast_turns_health_and_loses_no_acknowledged_write(driver: Driver) -> None:
    with tempfile.TemporaryDirectory(prefix="todo-outage-") as state_dir:
        database = FerretDB(state_dir=Path(state_dir)).start()
        env = {
            "TODO_MONGODB_URI": database.uri,
            "TODO_MONGODB_DRIVER": driver,
            "TODO_HEALTH_CHECK_INTERVAL_SECONDS": "0.2",
            "TODO_MONGODB_TIMEOUT_SECONDS": "2",
            "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS": "1",
        }
        try:
            with ServiceProcess(env) as service:
                async with grpc.aio.insecure_channel(service.wait_serving()) as channel:
                    stub = pb_grpc.TodoServiceStub(channel)
                    acknowledged = [
                        (await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=f"before {n}")))).todo
                        for n in range(10)
                    ]
                    assert database.stop() == 0

                    await wait_for_health(channel, NOT_SERVING)
                    for call in (
                        stub.GetTodo(pb.GetTodoRequest(id=acknowledged[0].id), timeout=20),
                        stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="during")), timeout=20),
                        stub.ListTodos(pb.ListTodosRequest(), timeout=20),
                    ):
                        with pytest.raises(grpc.aio.AioRpcError) as caught:
                            await call
                        error = decode(caught.value)  # details present: the server answered, not the client's deadline
                        assert (error.code, error.reason) in STORE_FAILURES

                    database.start()  # same port, same data
                    await wait_for_health(channel, SERVING)
                    for todo in acknowledged:
                        assert (await stub.GetTodo(pb.GetTodoRequest(id=todo.id))).todo == todo
                    listed = await stub.ListTodos(pb.ListTodosRequest())
                    assert {todo.id for todo in acknowledged} <= {todo.id for todo in listed.todos}
                assert service.terminate() == 0, service.output
        finally:
            database.stop()
