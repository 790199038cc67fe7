"""Entries survive a restart of the service (outages, slowness, crashes of either process: tests/faults)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from service.infrastructure.config import Driver
from tests.support.mongo_server import MongoServer
from tests.support.process import ServiceProcess
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process

DRIVERS: list[Driver] = ["motor", "pymongo"]


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
