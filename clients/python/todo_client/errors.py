"""Typed exceptions for failed calls, decoded from the rich gRPC status.

The service sends a google.rpc.Status in the `grpc-status-details-bin`
trailer: an ErrorInfo (reason: a name of the contract's `todo.v1.ErrorReason`,
domain "todo.v1", metadata such as the entry id) and, for FIELD_VIOLATION, a
BadRequest naming every offending field.
Errors made by gRPC itself (deadline, connection refused, TLS handshake)
carry no details: their `reason` is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from todo.v1.error_reason_pb2 import ErrorReason

# The reasons of the contract, by name: `TodoError.reason` is one of these names
# (compare with `ErrorReason.Name(ErrorReason.TODO_NOT_FOUND)`), or empty when
# gRPC itself failed the call, or a newer name this client does not know yet.
REASONS: frozenset[str] = frozenset(ErrorReason.keys())


class TodoError(Exception):
    """A call to todo.v1.TodoService failed.

    `code` is the gRPC status code, `message` the status message, `reason`
    the ErrorInfo reason (e.g. "TODO_NOT_FOUND"; empty without ErrorInfo),
    `domain` its domain ("todo.v1"), `metadata` its metadata (e.g. {"id": ...}).
    Raised as is for status codes without a subclass (CANCELLED,
    UNIMPLEMENTED, FAILED_PRECONDITION, OUT_OF_RANGE).
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        label = (
            self.code.name if not self.reason or self.reason == self.code.name else f"{self.code.name}/{self.reason}"
        )
        return f"{label}: {self.message}"


class NotFoundError(TodoError):
    """NOT_FOUND: no entry has that id (reason TODO_NOT_FOUND, metadata["id"])."""


class AlreadyExistsError(TodoError):
    """ALREADY_EXISTS: CreateTodo with a todo_id that is taken (TODO_ALREADY_EXISTS)."""


class ConcurrentModificationError(TodoError):
    """ABORTED: the etag is stale, or an unconditional change lost too many races
    (CONCURRENT_MODIFICATION). Read the entry again and decide anew."""


class InvalidArgumentError(TodoError):
    """INVALID_ARGUMENT: `field_violations` maps each offending field (e.g.
    "todo.content", "todo.tags[1]", "page_token") to what is wrong with it.
    Reason FIELD_VIOLATION, or MALFORMED_REQUEST when the bytes did not parse."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, reason=reason, domain=domain, metadata=metadata)
        self.field_violations: dict[str, str] = dict(field_violations or {})


class UnavailableError(TodoError):
    """UNAVAILABLE: the server or its store cannot be reached (retried first where safe)."""


class ThrottledError(UnavailableError):
    """The client refused the call itself; it was never sent (safe to repeat later, for every method).

    Either adaptive throttling refused it (the service has been turning calls
    away: the client sends at most about twice what it accepts), or every
    connection's stream budget stayed in use for as long as the call could wait
    (see `todo_client.overload`). Code UNAVAILABLE, reason "CLIENT_THROTTLED".
    """


class DeadlineExceededError(TodoError):
    """DEADLINE_EXCEEDED: the call's deadline passed (client side, or STORE_TIMEOUT)."""


class UnauthenticatedError(TodoError):
    """UNAUTHENTICATED: no valid credentials (e.g. a missing or unknown token)."""


class PermissionDeniedError(TodoError):
    """PERMISSION_DENIED: the credentials are valid but not allowed this call."""


class ResourceExhaustedError(TodoError):
    """RESOURCE_EXHAUSTED: a quota, rate limit or message size limit was hit."""


class InternalError(TodoError):
    """INTERNAL, UNKNOWN or DATA_LOSS: a server bug; the cause is in the server's log."""


class ClientClosedError(RuntimeError):
    """The TodoClient was closed; no call can be made through it any more."""


_BY_CODE: dict[grpc.StatusCode, type[TodoError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.ABORTED: ConcurrentModificationError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
}


def _status_details(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status of the call's trailers, when present and about this call.

    grpcio-status decodes it and checks that its code and message are the
    call's: details rewritten or mangled on the way (say by a proxy that
    changed the code) describe something else, and are dropped.
    """
    try:
        # grpc.aio's AioRpcError offers the synchronous Call accessors from_call reads.
        return cast("status_pb2.Status | None", rpc_status.from_call(cast(grpc.Call, error)))
    except (ValueError, DecodeError):
        return None


def error_from_rpc(error: grpc.aio.AioRpcError) -> TodoError:
    """The typed exception for a failed call, with its ErrorInfo and BadRequest decoded."""
    code = error.code()
    message = error.details() or ""
    reason = domain = ""
    metadata: dict[str, str] = {}
    violations: dict[str, str] = {}
    status = _status_details(error)
    if status is not None:
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                for violation in bad_request.field_violations:
                    known = violations.get(violation.field)
                    violations[violation.field] = (
                        violation.description if known is None else f"{known}; {violation.description}"
                    )
    kind = _BY_CODE.get(code, TodoError)
    if kind is InvalidArgumentError:
        return InvalidArgumentError(
            message, code=code, reason=reason, domain=domain, metadata=metadata, field_violations=violations
        )
    return kind(message, code=code, reason=reason, domain=domain, metadata=metadata)
