"""A typed async client for todo.v1.TodoService.

    async with TodoClient.connect("localhost:50051") as client:
        todo = await client.create_todo("Buy milk", tags=["home"])

Results are frozen dataclasses (`Todo`, `TodoPage`); failures are `TodoError`
subclasses. Needs grpcio, grpcio-status (googleapis-common-protos), protobuf
and the generated `todo.v1` package: none of the server's dependencies.
"""

from todo.v1.error_reason_pb2 import ErrorReason
from todo_client.client import DEFAULT_TIMEOUT, TodoClient
from todo_client.errors import (
    REASONS,
    AlreadyExistsError,
    ClientClosedError,
    ConcurrentModificationError,
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ThrottledError,
    TodoError,
    UnauthenticatedError,
    UnavailableError,
    error_from_rpc,
)
from todo_client.models import Todo, TodoPage
from todo_client.overload import DEFAULT_OVERLOAD_POLICY, OverloadPolicy
from todo_client.retry import DEFAULT_RETRY_POLICY, RetryPolicy, channel_options, service_config

__all__ = [
    "DEFAULT_OVERLOAD_POLICY",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_TIMEOUT",
    "REASONS",
    "AlreadyExistsError",
    "ClientClosedError",
    "ConcurrentModificationError",
    "DeadlineExceededError",
    "ErrorReason",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OverloadPolicy",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "ThrottledError",
    "Todo",
    "TodoClient",
    "TodoError",
    "TodoPage",
    "UnauthenticatedError",
    "UnavailableError",
    "channel_options",
    "error_from_rpc",
    "service_config",
]
