"""From exceptions to gRPC statuses with google.rpc details.

One table maps each domain error to a status code and an ErrorInfo reason;
the README's error table documents it. `handlers.unary_handler` applies it.
"""

from __future__ import annotations

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.rpc import error_details_pb2, status_pb2

from service.domain.errors import (
    ConcurrentModificationError,
    DomainError,
    StoreTimeoutError,
    StoreUnavailableError,
    TodoAlreadyExistsError,
    TodoNotFoundError,
    ValidationError,
)

ERROR_DOMAIN = "todo.v1"

# Domain error -> (status code, ErrorInfo reason). The README's API section
# documents this table; keep the two together.
ERROR_TABLE: dict[type[DomainError], tuple[grpc.StatusCode, str]] = {
    ValidationError: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    TodoNotFoundError: (grpc.StatusCode.NOT_FOUND, "TODO_NOT_FOUND"),
    TodoAlreadyExistsError: (grpc.StatusCode.ALREADY_EXISTS, "TODO_ALREADY_EXISTS"),
    ConcurrentModificationError: (grpc.StatusCode.ABORTED, "CONCURRENT_MODIFICATION"),
    StoreUnavailableError: (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE"),
    StoreTimeoutError: (grpc.StatusCode.DEADLINE_EXCEEDED, "STORE_TIMEOUT"),
}
MALFORMED_REQUEST = "MALFORMED_REQUEST"
UNAUTHENTICATED = "UNAUTHENTICATED"
INTERNAL = "INTERNAL"


def _details(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str] | None = None,
    violations: tuple[tuple[str, str], ...] = (),
) -> tuple[tuple[str, bytes], ...]:
    info = AnyMessage()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {}))
    details = [info]
    if violations:
        bad_request = AnyMessage()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                    for field, description in violations
                ]
            )
        )
        details.append(bad_request)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return (("grpc-status-details-bin", status.SerializeToString()),)


def status_for(error: DomainError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]:
    """Status code, message and trailing metadata (with details) for a domain error."""
    for kind in type(error).__mro__:
        entry = ERROR_TABLE.get(kind)
        if entry is not None:
            break
    else:  # a DomainError subclass nobody put in the table: a bug, not a client mistake
        raise error
    code, reason = entry
    message = str(error)
    metadata: dict[str, str] = {}
    violations: tuple[tuple[str, str], ...] = ()
    entry_id = getattr(error, "entry_id", None)
    if isinstance(entry_id, str):
        metadata["id"] = entry_id
    if isinstance(error, ValidationError):
        violations = tuple((v.field, v.description) for v in error.violations)
        message = "invalid request: " + message
    return code, message, _details(code, message, reason, metadata, violations)


def internal_error_trailers() -> tuple[tuple[str, bytes], ...]:
    return _details(grpc.StatusCode.INTERNAL, "internal error", INTERNAL)


def malformed_request_trailers(message: str) -> tuple[tuple[str, bytes], ...]:
    return _details(grpc.StatusCode.INVALID_ARGUMENT, message, MALFORMED_REQUEST)


def unauthenticated_trailers(message: str) -> tuple[tuple[str, bytes], ...]:
    return _details(grpc.StatusCode.UNAUTHENTICATED, message, UNAUTHENTICATED)
