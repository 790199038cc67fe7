"""Every error the server (or the network) can produce arrives as a typed TodoError."""

from __future__ import annotations

import base64
import pickle

import grpc
import pytest

from service.domain.errors import StoreTimeoutError, StoreUnavailableError
from tests.support.fakes import FailingReads
from tests.support.rich_status import status_details_bin
from tests.support.servers import FAST_RETRY, Fault, FaultInjector, todo_server
from tests.support.stores import STORE_KINDS
from todo_client import (
    AlreadyExistsError,
    ConcurrentModificationError,
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TodoClient,
    TodoError,
    UnauthenticatedError,
    UnavailableError,
    error_from_rpc,
)


@pytest.mark.parametrize("store_kind", STORE_KINDS)
class TestServiceErrors:
    async def test_missing_entry_is_not_found_for_every_method(self, client: TodoClient) -> None:
        calls = [
            client.get_todo("nope"),
            client.update_todo("nope", done=True),
            client.update_todo("nope", done=True, etag='"1-0"'),
            client.delete_todo("nope"),
            client.delete_todo("nope", etag='"1-0"'),
            client.add_tag("nope", "x"),
            client.remove_tag("nope", "x"),
        ]
        for call in calls:
            with pytest.raises(NotFoundError) as caught:
                await call
            error = caught.value
            assert isinstance(error, TodoError)
            assert error.code == grpc.StatusCode.NOT_FOUND
            assert (error.reason, error.domain, error.metadata) == ("TODO_NOT_FOUND", "todo.v1", {"id": "nope"})
            assert "nope" in error.message

    async def test_taken_id_is_already_exists(self, client: TodoClient) -> None:
        await client.create_todo("first", todo_id="taken")
        with pytest.raises(AlreadyExistsError) as caught:
            await client.create_todo("second", todo_id="taken")
        assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.ALREADY_EXISTS, "TODO_ALREADY_EXISTS")
        assert caught.value.metadata == {"id": "taken"}

    async def test_stale_etag_is_concurrent_modification_and_changes_nothing(self, client: TodoClient) -> None:
        todo = await client.create_todo("original")
        current = await client.update_todo(todo.id, content="changed by someone else")
        with pytest.raises(ConcurrentModificationError) as caught:
            await client.update_todo(todo.id, content="mine", etag=todo.etag)
        assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.ABORTED, "CONCURRENT_MODIFICATION")
        with pytest.raises(ConcurrentModificationError):
            await client.delete_todo(todo.id, etag=todo.etag)
        assert await client.get_todo(todo.id) == current

    async def test_invalid_fields_are_invalid_argument_with_every_violation(self, client: TodoClient) -> None:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.create_todo("   ", tags=["ok", "not ok!"], todo_id="9lives", request_id="a b")
        error = caught.value
        assert (error.code, error.reason, error.domain) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "FIELD_VIOLATION",
            "todo.v1",
        )
        assert set(error.field_violations) == {"todo.content", "todo.tags[1]", "todo_id", "request_id"}
        assert "empty" in error.field_violations["todo.content"]


class TestMoreInvalidArguments:
    async def test_list_arguments(self, client: TodoClient) -> None:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.list_todos(page_size=-1)
        assert caught.value.field_violations.keys() == {"page_size"}
        for index in range(3):
            await client.create_todo(f"entry {index}")
        token = (await client.list_todos(page_size=1)).next_page_token
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        raw[-3] ^= 1
        tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        with pytest.raises(InvalidArgumentError) as caught:
            await client.list_todos(page_size=1, page_token=tampered)
        assert caught.value.field_violations.keys() == {"page_token"}
        with pytest.raises(InvalidArgumentError) as caught:
            await client.list_todos(page_size=1, page_token=token, search="other filter")
        assert caught.value.field_violations.keys() == {"page_token"}

    async def test_update_and_tag_arguments(self, client: TodoClient) -> None:
        todo = await client.create_todo("fine")
        with pytest.raises(InvalidArgumentError) as caught:
            await client.update_todo(todo.id, content="", tags=["fine", "#bad"])
        assert caught.value.field_violations.keys() == {"todo.content", "todo.tags[1]"}
        with pytest.raises(InvalidArgumentError) as caught:
            await client.add_tag(todo.id, "no spaces allowed")
        assert caught.value.field_violations
        with pytest.raises(InvalidArgumentError) as caught:
            await client.get_todo("")
        assert caught.value.field_violations.keys() == {"id"}


class TestStoreAndServerFailures:
    async def test_store_unavailable_is_retried_then_unavailable_with_its_reason(self) -> None:
        calls = FaultInjector()
        repository = FailingReads(StoreUnavailableError("the database is down"))
        async with (
            todo_server(interceptors=(calls,), repository=repository) as port,
            TodoClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY) as client,
        ):
            with pytest.raises(UnavailableError) as caught:
                await client.get_todo("any")
        assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
        assert calls.attempts["GetTodo"] == FAST_RETRY.max_attempts

    async def test_store_timeout_is_deadline_exceeded_with_its_reason(self) -> None:
        repository = FailingReads(StoreTimeoutError("the database did not answer"))
        async with (
            todo_server(repository=repository) as port,
            TodoClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY) as client,
        ):
            with pytest.raises(DeadlineExceededError) as caught:
                await client.get_todo("any")
        assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "STORE_TIMEOUT")

    async def test_a_server_bug_is_internal(self) -> None:
        repository = FailingReads(RuntimeError("boom (secret)"))
        async with (
            todo_server(repository=repository) as port,
            TodoClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY) as client,
        ):
            with pytest.raises(InternalError) as caught:
                await client.get_todo("any")
        assert (caught.value.code, caught.value.reason, caught.value.message) == (
            grpc.StatusCode.INTERNAL,
            "UNHANDLED_EXCEPTION",
            "internal error",
        )

    async def test_nothing_listening_is_unavailable(self, closed_port: int) -> None:
        async with TodoClient.connect(f"127.0.0.1:{closed_port}", retry=FAST_RETRY, timeout=5) as client:
            with pytest.raises(UnavailableError) as caught:
                await client.get_todo("any")
            assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "")
            with pytest.raises(UnavailableError):
                await client.update_todo("any", done=True)
            with pytest.raises(UnavailableError):
                await client.delete_todo("any", etag='"1-0"')


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
        (grpc.StatusCode.UNKNOWN, InternalError),
        (grpc.StatusCode.DATA_LOSS, InternalError),
        (grpc.StatusCode.FAILED_PRECONDITION, TodoError),
        (grpc.StatusCode.UNIMPLEMENTED, TodoError),
        (grpc.StatusCode.OUT_OF_RANGE, TodoError),
    ],
)
class TestOtherStatusCodes:
    async def test_with_rich_details(self, code: grpc.StatusCode, kind: type[TodoError]) -> None:
        trailers = status_details_bin(code, "refused by policy", f"TEST_{code.name}", metadata={"who": "test"})
        refuse = FaultInjector({"GetTodo": Fault(code, trailers=trailers, message="refused by policy")})
        async with (
            todo_server(interceptors=(refuse,)) as port,
            TodoClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY) as client,
        ):
            with pytest.raises(TodoError) as caught:
                await client.get_todo("any")
        error = caught.value
        assert type(error) is kind
        assert (error.code, error.message, error.reason, error.domain) == (
            code,
            "refused by policy",
            f"TEST_{code.name}",
            "todo.v1",
        )
        assert error.metadata == {"who": "test"}
        assert refuse.attempts["GetTodo"] == 1, "only UNAVAILABLE is retried"

    async def test_without_details(self, code: grpc.StatusCode, kind: type[TodoError]) -> None:
        refuse = FaultInjector({"CreateTodo": Fault(code)})
        async with (
            todo_server(interceptors=(refuse,)) as port,
            TodoClient.connect(f"127.0.0.1:{port}", retry=FAST_RETRY) as client,
        ):
            with pytest.raises(TodoError) as caught:
                await client.create_todo("x")
        assert type(caught.value) is kind
        assert (caught.value.code, caught.value.reason, caught.value.metadata) == (code, "", {})
        assert caught.value.message == f"injected {code.name} on attempt 1"


def aio_error(
    code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str | bytes], ...]
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details, None)


class TestDecoding:
    def test_repeated_fields_are_joined_and_other_details_ignored(self) -> None:
        code = grpc.StatusCode.INVALID_ARGUMENT
        trailers = status_details_bin(
            code, "bad", "FIELD_VIOLATION", violations=(("a", "one"), ("a", "two"), ("b", "three"))
        )
        error = error_from_rpc(aio_error(code, "bad", (("other-key", "x"), *trailers)))
        assert isinstance(error, InvalidArgumentError)
        assert error.field_violations == {"a": "one; two", "b": "three"}
        assert str(error) == "INVALID_ARGUMENT/FIELD_VIOLATION: bad"

    def test_unparseable_details_fall_back_to_the_status_message(self) -> None:
        error = error_from_rpc(
            aio_error(grpc.StatusCode.NOT_FOUND, "plain", (("grpc-status-details-bin", b"\xff\xff\xff"),))
        )
        assert isinstance(error, NotFoundError)
        assert (error.message, error.reason, error.metadata) == ("plain", "", {})

    def test_details_of_another_code_are_ignored(self) -> None:
        trailers = status_details_bin(grpc.StatusCode.NOT_FOUND, "from elsewhere", "TODO_NOT_FOUND")
        error = error_from_rpc(aio_error(grpc.StatusCode.UNAVAILABLE, "proxy says no", trailers))
        assert isinstance(error, UnavailableError)
        assert (error.message, error.reason) == ("proxy says no", "")

    def test_errors_survive_pickling(self) -> None:
        trailers = status_details_bin(grpc.StatusCode.NOT_FOUND, "gone", "TODO_NOT_FOUND", metadata={"who": "test"})
        error = error_from_rpc(aio_error(grpc.StatusCode.NOT_FOUND, "gone", trailers))
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
        assert type(copy) is NotFoundError
        assert (copy.code, copy.message, copy.reason, copy.metadata) == (
            grpc.StatusCode.NOT_FOUND,
            "gone",
            "TODO_NOT_FOUND",
            {"who": "test"},
        )
        assert str(copy) == "NOT_FOUND/TODO_NOT_FOUND: gone"
