"""A ListTodos page of large entries stays under the send limit, and a response that cannot is recorded truly.

Before: 300 entries of 16 KiB made a page of 500 about 5 MB, over the 4 MiB
send limit: every such call failed (gRPC's RESOURCE_EXHAUSTED) and yet the
metrics and the access line said OK.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from service.bootstrap import bootstrap
from service.infrastructure.config import ServerSettings, Settings
from service.infrastructure.grpc.server import start_server
from service.infrastructure.persistence.memory.todo_entry import InMemoryTodoRepository
from tests.support.rich_status import decode
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

LARGE = "\U0001f600" * 4096  # 4,096 characters, 16 KiB of UTF-8: the largest content allowed
ENTRIES = 300


async def started(
    send_limit: int, repository: InMemoryTodoRepository | None = None
) -> tuple[str, CollectorRegistry, AsyncIterator[None]]:
    settings = Settings(grpc_address="127.0.0.1:0", server=ServerSettings(max_send_message_bytes=send_limit))
    app = bootstrap(settings, repository=repository or InMemoryTodoRepository())
    running = await start_server(app.api, settings)
    await running.set_serving(True)

    async def stop() -> AsyncIterator[None]:
        yield
        await running.stop(0)

    return f"127.0.0.1:{running.port}", app.telemetry.metrics.registry, stop()


def handled(registry: CollectorRegistry, code: str) -> float:
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            ours = labels.get("grpc_method") == "ListTodos" and labels.get("grpc_code") == code
            if sample.name == "grpc_server_handled_total" and ours:
                return sample.value
    return 0.0


async def test_a_page_of_large_entries_is_cut_under_the_send_limit_and_pages_through_all() -> None:
    address, registry, stop = await started(4 * 1024 * 1024)
    await anext(stop)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            for number in range(ENTRIES):
                await stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content=LARGE), todo_id=f"large-{number}"))
            seen: list[str] = []
            pages, token = 0, ""
            while True:
                page = await stub.ListTodos(pb.ListTodosRequest(page_size=500, page_token=token), timeout=30)
                assert page.ByteSize() <= 4 * 1024 * 1024
                seen += [todo.id for todo in page.todos]
                pages += 1
                token = page.next_page_token
                if not token:
                    break
        print(f"{ENTRIES} entries of 16 KiB: {pages} pages of at most 4 MiB")
        assert sorted(seen) == sorted(f"large-{number}" for number in range(ENTRIES))
        assert pages >= 2
        for _ in range(100):
            if handled(registry, "OK") >= pages:
                break
            await asyncio.sleep(0.02)
        assert handled(registry, "OK") == pages
    finally:
        await anext(stop, None)


async def test_a_response_over_the_send_limit_is_refused_and_recorded_as_refused(json_log: io.StringIO) -> None:
    entries = InMemoryTodoRepository()  # written through a server with room, listed through one without
    roomy, _, roomy_stop = await started(4 * 1024 * 1024, entries)
    await anext(roomy_stop)
    async with grpc.aio.insecure_channel(roomy) as channel:
        await pb_grpc.TodoServiceStub(channel).CreateTodo(
            pb.CreateTodoRequest(todo=pb.Todo(content=LARGE), todo_id="too-large")
        )
    await anext(roomy_stop, None)
    address, registry, stop = await started(8 * 1024, entries)  # one 16 KiB entry cannot fit
    await anext(stop)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.TodoServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListTodos(pb.ListTodosRequest(), timeout=10)
        refused = decode(caught.value)
        assert (refused.code, refused.reason, refused.metadata["limit"]) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "RESPONSE_TOO_LARGE",
            "8192",
        )
        for _ in range(100):  # the handler records the call just after the client has its status
            if handled(registry, "RESOURCE_EXHAUSTED"):
                break
            await asyncio.sleep(0.02)
        assert handled(registry, "RESOURCE_EXHAUSTED") == 1
        assert handled(registry, "OK") == 0
        access = [json.loads(line) for line in json_log.getvalue().splitlines() if "ListTodos" in line]
        assert [line["code"] for line in access if line.get("logger") == "service.access"] == ["RESOURCE_EXHAUSTED"]
    finally:
        await anext(stop, None)


@pytest.mark.parametrize(
    ("content", "tags", "entry_id"),
    [("", (), "a"), ("x", ("t",), "b" * 128), (LARGE, tuple(f"tag-{n:02d}-" + "z" * 56 for n in range(32)), "c" * 128)],
)
def test_the_page_budget_bounds_an_entry_from_above(content: str, tags: tuple[str, ...], entry_id: str) -> None:
    """`entry_bytes` is never below what the entry takes in a ListTodosResponse (its key and length included)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from service.application.todo_entry import entry_bytes  # noqa: PLC0415
    from service.domain.todo_entry import TodoEntry  # noqa: PLC0415
    from service.infrastructure.grpc import todo_entry_mapper  # noqa: PLC0415

    now = datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    entry = TodoEntry(entry_id, content, frozenset(tags), True, now, now, 2**31, "f" * 8)
    page = pb.ListTodosResponse()
    todo_entry_mapper.fill(page.todos.add(), entry)
    assert page.ByteSize() <= entry_bytes(entry)
