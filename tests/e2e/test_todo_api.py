"""Every RPC of todo.v1.TodoService over a real channel to a real server."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Sequence
from typing import TypeAlias

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.infrastructure.grpc.server import RunningServer
from tests.support.rich_status import RichError, decode
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

# The async stub class exists only in the type stubs: TodoServiceStub(aio_channel) returns it.
Stub: TypeAlias = "pb_grpc.TodoServiceAsyncStub"


async def create(
    stub: Stub,
    content: str = "buy milk",
    *,
    tags: Sequence[str] = (),
    done: bool = False,
    todo_id: str = "",
    request_id: str = "",
) -> pb.Todo:
    request = pb.CreateTodoRequest(
        todo=pb.Todo(content=content, tags=list(tags), done=done), todo_id=todo_id, request_id=request_id
    )
    response = await stub.CreateTodo(request)
    return response.todo


async def failure(call: Awaitable[object]) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return decode(caught.value)


async def list_all(
    stub: Stub, *, page_size: int = 0, search: str = "", tags: Sequence[str] = (), done: bool | None = None
) -> list[pb.Todo]:
    todos: list[pb.Todo] = []
    token = ""
    while True:
        request = pb.ListTodosRequest(page_size=page_size, page_token=token, search=search, tags=list(tags))
        if done is not None:
            request.done = done
        page = await stub.ListTodos(request)
        todos.extend(page.todos)
        token = page.next_page_token
        if not token:
            return todos


class TestCreateAndGet:
    async def test_created_entry_is_returned_normalised_and_readable(self, stub: Stub) -> None:
        todo = await create(stub, "  Buy milk  ", tags=["Home", " errands ", "home"])
        assert todo.content == "Buy milk"
        assert list(todo.tags) == ["errands", "home"]
        assert len(todo.id) == 32
        assert todo.etag
        assert todo.create_time == todo.update_time
        assert todo.create_time.seconds > 0
        fetched = await stub.GetTodo(pb.GetTodoRequest(id=todo.id))
        assert fetched.todo == todo

    async def test_client_chosen_id_is_used_and_a_taken_one_is_already_exists(self, stub: Stub) -> None:
        todo = await create(stub, todo_id="buy-milk")
        assert todo.id == "buy-milk"
        error = await failure(create(stub, "other", todo_id="buy-milk"))
        assert error.code == grpc.StatusCode.ALREADY_EXISTS
        assert (error.reason, error.domain, error.metadata) == (
            "TODO_ALREADY_EXISTS",
            "todo.v1",
            {"id": "buy-milk"},
        )

    async def test_repeated_request_id_returns_the_first_result_and_creates_nothing(self, stub: Stub) -> None:
        first = await create(stub, "once", request_id="7d3f2c1e-0000-4000-8000-000000000001")
        again = await create(stub, "twice?", request_id="7d3f2c1e-0000-4000-8000-000000000001")
        assert again == first
        assert [todo.id for todo in await list_all(stub)] == [first.id]

    async def test_invalid_fields_are_invalid_argument_with_every_violation(self, stub: Stub) -> None:
        error = await failure(create(stub, "   ", tags=["ok", "not ok!"], todo_id="9lives", request_id="a b"))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.reason == "FIELD_VIOLATION"
        assert set(error.violations) == {"todo.content", "todo.tags[1]", "todo_id", "request_id"}
        assert "empty" in error.violations["todo.content"]

    async def test_content_limit_is_4096_characters(self, stub: Stub) -> None:
        assert len((await create(stub, "x" * 4096)).content) == 4096
        error = await failure(create(stub, "x" * 4097))
        assert error.violations.keys() == {"todo.content"}

    async def test_missing_entry_is_not_found(self, stub: Stub) -> None:
        error = await failure(stub.GetTodo(pb.GetTodoRequest(id="nope")))
        assert error.code == grpc.StatusCode.NOT_FOUND
        assert (error.reason, error.metadata) == ("TODO_NOT_FOUND", {"id": "nope"})

    async def test_empty_id_is_invalid_argument(self, stub: Stub) -> None:
        error = await failure(stub.GetTodo(pb.GetTodoRequest(id="")))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.violations.keys() == {"id"}


class TestList:
    async def test_newest_first_with_default_and_coerced_page_sizes(self, stub: Stub) -> None:
        created = [await create(stub, f"entry {index}") for index in range(60)]
        page = await stub.ListTodos(pb.ListTodosRequest())
        assert len(page.todos) == 50
        assert page.next_page_token
        everything = await list_all(stub, page_size=1000)
        newest_first = sorted(created, key=lambda t: (t.create_time.seconds, t.create_time.nanos, t.id), reverse=True)
        assert [todo.id for todo in everything] == [todo.id for todo in newest_first]
        assert everything[0].create_time.ToDatetime() >= everything[-1].create_time.ToDatetime()

    async def test_page_size_above_500_is_coerced(self, stub: Stub) -> None:
        # 8 at a time: a compliant caller keeps fewer calls in flight on one connection than the server's
        # stream limit (16), or some of its streams are refused (docs/overload.md).
        for batch in range(0, 505, 8):
            await asyncio.gather(*(create(stub, f"entry {index}") for index in range(batch, min(batch + 8, 505))))
        page = await stub.ListTodos(pb.ListTodosRequest(page_size=100_000))
        assert len(page.todos) == 500
        last = await stub.ListTodos(pb.ListTodosRequest(page_size=500, page_token=page.next_page_token))
        assert (len(last.todos), last.next_page_token) == (5, "")

    async def test_negative_page_size_is_invalid_argument(self, stub: Stub) -> None:
        error = await failure(stub.ListTodos(pb.ListTodosRequest(page_size=-1)))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.violations.keys() == {"page_size"}

    async def test_filters_search_tags_and_done(self, stub: Stub) -> None:
        milk = await create(stub, "Buy MILK", tags=["home", "shop"])
        await create(stub, "buy bread", tags=["shop"], done=True)
        await create(stub, "milkshake (a.k.a. shake)", tags=["fun"])
        assert [t.id for t in await list_all(stub, search="milk", tags=["SHOP"])] == [milk.id]
        assert len(await list_all(stub, search="MILK")) == 2
        assert len(await list_all(stub, search="a.k.a. (")) == 0
        assert [t.content for t in await list_all(stub, search="(a.k.a.")] == ["milkshake (a.k.a. shake)"]
        assert [t.content for t in await list_all(stub, done=True)] == ["buy bread"]
        assert len(await list_all(stub, done=False)) == 2
        assert len(await list_all(stub, tags=["shop", "home"])) == 1

    async def test_tampered_token_is_invalid_argument(self, stub: Stub) -> None:
        for index in range(3):
            await create(stub, f"entry {index}")
        token = (await stub.ListTodos(pb.ListTodosRequest(page_size=1))).next_page_token
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        raw[-3] ^= 1
        tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        for bad in (tampered, token[:-2], "garbage", "%%%"):
            error = await failure(stub.ListTodos(pb.ListTodosRequest(page_size=1, page_token=bad)))
            assert error.code == grpc.StatusCode.INVALID_ARGUMENT
            assert error.violations.keys() == {"page_token"}

    async def test_token_reused_with_other_filters_is_invalid_argument(self, stub: Stub) -> None:
        for index in range(3):
            await create(stub, f"entry {index}", tags=["a"])
        token = (await stub.ListTodos(pb.ListTodosRequest(page_size=1, tags=["a"]))).next_page_token
        ok = await stub.ListTodos(pb.ListTodosRequest(page_size=2, tags=["A"], page_token=token))
        assert len(ok.todos) == 2
        others = [
            pb.ListTodosRequest(search="x", tags=["a"]),
            pb.ListTodosRequest(tags=["b"]),
            pb.ListTodosRequest(tags=["a"], done=False),
            pb.ListTodosRequest(),
        ]
        for other in others:
            other.page_size = 1
            other.page_token = token
            error = await failure(stub.ListTodos(other))
            assert error.violations.keys() == {"page_token"}, other

    async def test_paging_while_entries_are_created_never_skips_or_repeats(self, stub: Stub) -> None:
        before = {(await create(stub, f"old {index}")).id for index in range(40)}
        seen: list[str] = []
        token = ""
        writer_done = asyncio.Event()

        async def writer() -> None:
            for index in range(40):
                await create(stub, f"new {index}")
            writer_done.set()

        task = asyncio.create_task(writer())
        while True:
            page = await stub.ListTodos(pb.ListTodosRequest(page_size=3, page_token=token))
            seen.extend(todo.id for todo in page.todos)
            token = page.next_page_token
            if not token:
                break
            await asyncio.sleep(0)
        await task
        assert writer_done.is_set()
        assert len(seen) == len(set(seen)), "an entry was returned twice"
        assert before <= set(seen), "an entry that existed when paging began was skipped"


class TestUpdate:
    async def test_mask_paths_update_only_the_named_fields(self, stub: Stub) -> None:
        todo = await create(stub, "draft", tags=["a"])
        request = pb.UpdateTodoRequest(
            todo=pb.Todo(id=todo.id, content="final", tags=["b"], done=True),
            update_mask=FieldMask(paths=["done"]),
        )
        updated = (await stub.UpdateTodo(request)).todo
        assert (updated.content, list(updated.tags), updated.done) == ("draft", ["a"], True)
        assert updated.etag != todo.etag
        assert updated.create_time == todo.create_time

    async def test_star_replaces_every_mutable_field(self, stub: Stub) -> None:
        todo = await create(stub, "draft", tags=["a"], done=True)
        request = pb.UpdateTodoRequest(todo=pb.Todo(id=todo.id, content="new"), update_mask=FieldMask(paths=["*"]))
        updated = (await stub.UpdateTodo(request)).todo
        assert (updated.content, list(updated.tags), updated.done) == ("new", [], False)

    async def test_absent_mask_updates_the_populated_fields(self, stub: Stub) -> None:
        todo = await create(stub, "draft", tags=["a"], done=True)
        updated = (await stub.UpdateTodo(pb.UpdateTodoRequest(todo=pb.Todo(id=todo.id, content="new")))).todo
        assert (updated.content, list(updated.tags), updated.done) == ("new", ["a"], True)

    async def test_unchanged_values_keep_the_etag(self, stub: Stub) -> None:
        todo = await create(stub, "same")
        request = pb.UpdateTodoRequest(
            todo=pb.Todo(id=todo.id, content="same"), update_mask=FieldMask(paths=["content"])
        )
        assert (await stub.UpdateTodo(request)).todo.etag == todo.etag

    async def test_unknown_path_is_invalid_argument(self, stub: Stub) -> None:
        todo = await create(stub)
        for path in ("nope", "todo.done", "content.text", ""):
            request = pb.UpdateTodoRequest(todo=pb.Todo(id=todo.id), update_mask=FieldMask(paths=["done", path]))
            error = await failure(stub.UpdateTodo(request))
            assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_VIOLATION")
            assert error.violations.keys() == {"update_mask.paths[1]"}

    async def test_identifier_and_output_only_paths_are_ignored(self, stub: Stub) -> None:
        """AIP-161/203: a mask may name fields the caller cannot set; they change nothing."""
        todo = await create(stub, "keep")
        ignored = ["id", "etag", "create_time", "update_time"]
        sneaky = pb.Todo(id=todo.id, content="changed", done=True, etag="", create_time=Timestamp(seconds=1))
        alone = await stub.UpdateTodo(pb.UpdateTodoRequest(todo=sneaky, update_mask=FieldMask(paths=ignored)))
        assert alone.todo == todo, "a mask of ignored paths only changes nothing"
        mixed = pb.UpdateTodoRequest(todo=sneaky, update_mask=FieldMask(paths=[*ignored, "done"]))
        updated = (await stub.UpdateTodo(mixed)).todo
        assert (updated.id, updated.content, updated.done) == (todo.id, "keep", True)
        assert updated.create_time == todo.create_time
        assert updated.etag != todo.etag

    async def test_invalid_new_content_is_invalid_argument(self, stub: Stub) -> None:
        todo = await create(stub)
        request = pb.UpdateTodoRequest(todo=pb.Todo(id=todo.id, content=""), update_mask=FieldMask(paths=["content"]))
        error = await failure(stub.UpdateTodo(request))
        assert error.violations.keys() == {"todo.content"}

    async def test_stale_etag_is_aborted_and_changes_nothing(self, stub: Stub) -> None:
        todo = await create(stub, "v1")
        await stub.AddTag(pb.AddTagRequest(id=todo.id, tag="moved-on"))
        request = pb.UpdateTodoRequest(todo=pb.Todo(id=todo.id, content="v2", etag=todo.etag))
        error = await failure(stub.UpdateTodo(request))
        assert error.code == grpc.StatusCode.ABORTED
        assert (error.reason, error.metadata) == ("CONCURRENT_MODIFICATION", {"id": todo.id})
        assert (await stub.GetTodo(pb.GetTodoRequest(id=todo.id))).todo.content == "v1"

    async def test_missing_entry_is_not_found(self, stub: Stub) -> None:
        error = await failure(stub.UpdateTodo(pb.UpdateTodoRequest(todo=pb.Todo(id="ghost", content="x"))))
        assert error.code == grpc.StatusCode.NOT_FOUND

    @pytest.mark.needs_atomic_cas
    async def test_concurrent_updates_with_the_same_etag_exactly_one_wins(self, stub: Stub) -> None:
        todo = await create(stub, "start")
        # 8 writers: fewer calls in flight on one connection than the server's stream limit (docs/overload.md).
        calls = [
            stub.UpdateTodo(pb.UpdateTodoRequest(todo=pb.Todo(id=todo.id, content=f"writer {n}", etag=todo.etag)))
            for n in range(8)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        winners = [result for result in results if isinstance(result, pb.UpdateTodoResponse)]
        losers = [result for result in results if isinstance(result, grpc.aio.AioRpcError)]
        assert len(winners) == 1
        assert len(losers) == 7
        assert {loser.code() for loser in losers} == {grpc.StatusCode.ABORTED}
        stored = (await stub.GetTodo(pb.GetTodoRequest(id=todo.id))).todo
        assert stored == winners[0].todo


class TestDelete:
    async def test_delete_then_get_is_not_found(self, stub: Stub) -> None:
        todo = await create(stub)
        await stub.DeleteTodo(pb.DeleteTodoRequest(id=todo.id, etag=todo.etag))
        assert (await failure(stub.GetTodo(pb.GetTodoRequest(id=todo.id)))).code == grpc.StatusCode.NOT_FOUND
        again = await failure(stub.DeleteTodo(pb.DeleteTodoRequest(id=todo.id)))
        assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "TODO_NOT_FOUND")

    async def test_stale_etag_is_aborted_and_the_entry_stays(self, stub: Stub) -> None:
        todo = await create(stub)
        await stub.AddTag(pb.AddTagRequest(id=todo.id, tag="x"))
        error = await failure(stub.DeleteTodo(pb.DeleteTodoRequest(id=todo.id, etag=todo.etag)))
        assert error.code == grpc.StatusCode.ABORTED
        assert (await stub.GetTodo(pb.GetTodoRequest(id=todo.id))).todo.id == todo.id


class TestTags:
    async def test_add_and_remove_are_idempotent(self, stub: Stub) -> None:
        todo = await create(stub, tags=["a"])
        added = (await stub.AddTag(pb.AddTagRequest(id=todo.id, tag=" Urgent "))).todo
        assert list(added.tags) == ["a", "urgent"]
        assert added.etag != todo.etag
        again = (await stub.AddTag(pb.AddTagRequest(id=todo.id, tag="URGENT"))).todo
        assert again.etag == added.etag
        removed = (await stub.RemoveTag(pb.RemoveTagRequest(id=todo.id, tag="urgent"))).todo
        assert list(removed.tags) == ["a"]
        assert removed.etag not in (todo.etag, added.etag)
        absent = (await stub.RemoveTag(pb.RemoveTagRequest(id=todo.id, tag="urgent"))).todo
        assert absent.etag == removed.etag

    async def test_invalid_tag_and_missing_entry(self, stub: Stub) -> None:
        todo = await create(stub)
        error = await failure(stub.AddTag(pb.AddTagRequest(id=todo.id, tag="no spaces")))
        assert (error.code, set(error.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, {"tag"})
        missing = await failure(stub.RemoveTag(pb.RemoveTagRequest(id="ghost", tag="a")))
        assert missing.code == grpc.StatusCode.NOT_FOUND

    async def test_at_most_32_tags(self, stub: Stub) -> None:
        todo = await create(stub, tags=[f"t{index}" for index in range(32)])
        error = await failure(stub.AddTag(pb.AddTagRequest(id=todo.id, tag="one-more")))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        too_many = await failure(create(stub, tags=[f"t{index}" for index in range(33)]))
        assert too_many.violations.keys() == {"todo.tags"}


class TestTransport:
    async def test_malformed_request_bytes_are_invalid_argument(self, channel: grpc.aio.Channel) -> None:
        raw_call = channel.unary_unary("/todo.v1.TodoService/GetTodo", None, None)
        error = await failure(raw_call(b"\x0a\xff\xff\xff\xff\x0f"))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.reason == "MALFORMED_REQUEST"
        invalid_utf8 = await failure(raw_call(b"\x0a\x02\xc3\x28"))
        assert invalid_utf8.code == grpc.StatusCode.INVALID_ARGUMENT

    async def test_health_reports_serving_for_the_server_and_the_api(self, channel: grpc.aio.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "todo.v1.TodoService"):
            response = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_health_turns_not_serving_on_shutdown(self, server: RunningServer, channel: grpc.aio.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service="todo.v1.TodoService"))
        first = await watch.read()
        assert isinstance(first, health_pb2.HealthCheckResponse)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        await server.health.enter_graceful_shutdown()
        second = await watch.read()
        assert isinstance(second, health_pb2.HealthCheckResponse)
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
