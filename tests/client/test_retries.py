"""UNAVAILABLE is retried where repeating a call is safe, and only there."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from tests.support.servers import FAST_RETRY, Fault, FaultInjector, todo_server
from todo_client import ConcurrentModificationError, RetryPolicy, TodoClient, UnavailableError, channel_options

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class Harness:
    """A test server whose FaultInjector the test configures, and a client to it."""

    def __init__(self, injector: FaultInjector, port: int) -> None:
        self.injector = injector
        self.port = port

    def fail(self, method: str, fault: Fault) -> None:
        self.injector.faults[method] = fault
        self.injector.attempts[method] = 0

    def attempts(self, method: str) -> int:
        return self.injector.attempts[method]

    def client(self, retry: RetryPolicy | None = FAST_RETRY) -> TodoClient:
        return TodoClient.connect(f"127.0.0.1:{self.port}", retry=retry)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    injector = FaultInjector()
    async with todo_server(interceptors=(injector,)) as port:
        yield Harness(injector, port)


class TestCreateIsRetriedWithoutDuplicates:
    @pytest.mark.parametrize("after_handler", [False, True], ids=["refused", "response-lost"])
    async def test_two_unavailable_attempts_then_one_entry(self, harness: Harness, after_handler: bool) -> None:
        harness.fail("CreateTodo", Fault(UNAVAILABLE, times=2, after_handler=after_handler))
        async with harness.client() as client:
            todo = await client.create_todo("exactly once", tags=["retry"])
            assert harness.attempts("CreateTodo") == 3
            page = await client.list_todos()
        # With the response lost, the first two attempts did create; the request_id makes the
        # third one return that entry instead of creating another.
        assert page.todos == (todo,)

    async def test_the_callers_request_id_is_kept_across_retries(self, harness: Harness) -> None:
        harness.fail("CreateTodo", Fault(UNAVAILABLE, times=1, after_handler=True))
        async with harness.client() as client:
            todo = await client.create_todo("mine", request_id="caller-key-1")
            assert harness.attempts("CreateTodo") == 2
            again = await client.create_todo("mine", request_id="caller-key-1")
            assert again == todo
            assert [t.id for t in (await client.list_todos()).todos] == [todo.id]


CallMaker = Callable[[TodoClient, str], Awaitable[object]]
SAFE_CALLS: dict[str, CallMaker] = {
    "GetTodo": lambda client, todo_id: client.get_todo(todo_id),
    "ListTodos": lambda client, todo_id: client.list_todos(),
    "AddTag": lambda client, todo_id: client.add_tag(todo_id, "new"),
    "RemoveTag": lambda client, todo_id: client.remove_tag(todo_id, "old"),
}


class TestSafeMethodsAreRetried:
    @pytest.mark.parametrize("method", list(SAFE_CALLS))
    async def test_one_unavailable_attempt_is_retried(self, harness: Harness, method: str) -> None:
        async with harness.client() as client:
            todo = await client.create_todo("entry", tags=["old"])
            harness.fail(method, Fault(UNAVAILABLE, times=1))
            await SAFE_CALLS[method](client, todo.id)
            assert harness.attempts(method) == 2

    @pytest.mark.parametrize("method", ["AddTag", "RemoveTag"])
    async def test_a_tag_change_whose_response_was_lost_is_applied_once(self, harness: Harness, method: str) -> None:
        async with harness.client() as client:
            todo = await client.create_todo("entry", tags=["old"])
            harness.fail(method, Fault(UNAVAILABLE, times=1, after_handler=True))
            changed = await SAFE_CALLS[method](client, todo.id)
            assert harness.attempts(method) == 2
            assert changed == await client.get_todo(todo.id)

    async def test_attempts_stop_at_max_attempts(self, harness: Harness) -> None:
        harness.fail("GetTodo", Fault(UNAVAILABLE))
        async with harness.client() as client:
            with pytest.raises(UnavailableError):
                await client.get_todo("any")
        assert harness.attempts("GetTodo") == FAST_RETRY.max_attempts

    async def test_no_retry_policy_means_one_attempt(self, harness: Harness) -> None:
        harness.fail("GetTodo", Fault(UNAVAILABLE, times=1))
        async with harness.client(retry=None) as client:
            with pytest.raises(UnavailableError):
                await client.get_todo("any")
        assert harness.attempts("GetTodo") == 1

    async def test_retry_throttling_stops_retries(self, harness: Harness) -> None:
        # With 2 tokens, one failure leaves 1 = max_tokens / 2: retries are throttled.
        throttled = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, max_tokens=2, token_ratio=0.1)
        harness.fail("GetTodo", Fault(UNAVAILABLE, times=1))
        async with harness.client(retry=throttled) as client:
            with pytest.raises(UnavailableError):
                await client.get_todo("any")
        assert harness.attempts("GetTodo") == 1


class TestUpdateAndDelete:
    async def test_update_without_etag_is_not_retried(self, harness: Harness) -> None:
        async with harness.client() as client:
            todo = await client.create_todo("entry")
            harness.fail("UpdateTodo", Fault(UNAVAILABLE, times=1))
            with pytest.raises(UnavailableError):
                await client.update_todo(todo.id, done=True)
            assert harness.attempts("UpdateTodo") == 1
            assert await client.get_todo(todo.id) == todo

    async def test_delete_without_etag_is_not_retried(self, harness: Harness) -> None:
        async with harness.client() as client:
            todo = await client.create_todo("entry")
            harness.fail("DeleteTodo", Fault(UNAVAILABLE, times=1))
            with pytest.raises(UnavailableError):
                await client.delete_todo(todo.id)
            assert harness.attempts("DeleteTodo") == 1
            assert await client.get_todo(todo.id) == todo

    async def test_update_with_etag_is_retried(self, harness: Harness) -> None:
        async with harness.client() as client:
            todo = await client.create_todo("entry")
            harness.fail("UpdateTodo", Fault(UNAVAILABLE, times=2))
            updated = await client.update_todo(todo.id, done=True, etag=todo.etag)
            assert harness.attempts("UpdateTodo") == 3
            assert updated.done
            assert await client.get_todo(todo.id) == updated

    async def test_delete_with_etag_is_retried(self, harness: Harness) -> None:
        async with harness.client() as client:
            todo = await client.create_todo("entry")
            harness.fail("DeleteTodo", Fault(UNAVAILABLE, times=1))
            await client.delete_todo(todo.id, etag=todo.etag)
            assert harness.attempts("DeleteTodo") == 2
            assert (await client.list_todos()).todos == ()

    async def test_conditional_retries_stop_at_max_attempts(self, harness: Harness) -> None:
        async with harness.client() as client:
            todo = await client.create_todo("entry")
            harness.fail("UpdateTodo", Fault(UNAVAILABLE))
            with pytest.raises(UnavailableError):
                await client.update_todo(todo.id, done=True, etag=todo.etag)
            assert harness.attempts("UpdateTodo") == FAST_RETRY.max_attempts

    async def test_conditional_retries_are_throttled_too(self, harness: Harness) -> None:
        throttled = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, max_tokens=2)
        async with harness.client(retry=throttled) as client:
            todo = await client.create_todo("entry")
            harness.fail("UpdateTodo", Fault(UNAVAILABLE, times=1))
            with pytest.raises(UnavailableError):
                await client.update_todo(todo.id, done=True, etag=todo.etag)
            assert harness.attempts("UpdateTodo") == 1

    async def test_a_retried_update_whose_first_response_was_lost_reports_the_conflict(self, harness: Harness) -> None:
        # The documented ambiguity: the first attempt changed the entry, so the retry's etag
        # is stale. The caller re-reads (as for any conflict) and finds its own change.
        async with harness.client() as client:
            todo = await client.create_todo("entry")
            harness.fail("UpdateTodo", Fault(UNAVAILABLE, times=1, after_handler=True))
            with pytest.raises(ConcurrentModificationError):
                await client.update_todo(todo.id, content="changed", etag=todo.etag)
            assert harness.attempts("UpdateTodo") == 2
            assert (await client.get_todo(todo.id)).content == "changed"


class TestServiceConfig:
    def test_only_idempotent_methods_get_the_retry_policy(self) -> None:
        options = dict(channel_options(RetryPolicy()))
        assert options["grpc.enable_retries"] == 1
        config = json.loads(str(options["grpc.service_config"]))
        [method_config] = config["methodConfig"]
        methods = {name["method"] for name in method_config["name"]}
        assert methods == {"CreateTodo", "GetTodo", "ListTodos", "AddTag", "RemoveTag"}
        assert {name["service"] for name in method_config["name"]} == {"todo.v1.TodoService"}
        assert method_config["retryPolicy"] == {
            "maxAttempts": 4,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2.0,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        assert config["retryThrottling"] == {"maxTokens": 10, "tokenRatio": 0.1}

    def test_no_policy_disables_retries_and_extra_options_win(self) -> None:
        options = dict(
            channel_options(None, [("grpc.max_receive_message_length", 1024), ("grpc.primary_user_agent", "x")])
        )
        config = json.loads(str(options.pop("grpc.service_config")))
        assert options == {
            "grpc.enable_retries": 0,
            "grpc.max_receive_message_length": 1024,
            "grpc.primary_user_agent": "x",
        }
        assert config == {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": "readiness"},
        }, "balancing stays when retries are off"

    @pytest.mark.parametrize(
        "arguments",
        [
            {"max_attempts": 1},
            {"max_attempts": 6},
            {"initial_backoff": 0},
            {"initial_backoff": 2.0, "max_backoff": 1.0},
            {"backoff_multiplier": 0.5},
            {"max_tokens": 0},
            {"token_ratio": 0},
        ],
    )
    def test_policies_grpc_would_reject_are_refused(self, arguments: dict[str, float]) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 (the message varies by field)
            RetryPolicy(**arguments)  # type: ignore[arg-type]
