"""From exceptions to gRPC statuses with google.rpc details.

One table maps each domain error to a status code and an ErrorInfo reason.
`unary_handler` wraps a servicer method: it parses the request itself (a
malformed message is INVALID_ARGUMENT, not INTERNAL), translates domain
errors through the table, and turns anything unexpected into a generic
INTERNAL whose details stay in the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.message import DecodeError, Message
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
from service.infrastructure.deadline import set_deadline_in

ERROR_DOMAIN = "todo.v1"
_log = logging.getLogger(__name__)

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
INTERNAL = "INTERNAL"

Context = grpc.aio.ServicerContext[Any, Any]
RequestT = TypeVar("RequestT", bound=Message)
ParsedT_co = TypeVar("ParsedT_co", bound=Message, covariant=True)
ResponseT = TypeVar("ResponseT", bound=Message)


class _Parser(Protocol[ParsedT_co]):
    def FromString(self, serialized: bytes) -> ParsedT_co: ...  # noqa: N802 (protobuf's name)


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


async def abort(context: Context, code: grpc.StatusCode, message: str, reason: str) -> None:
    """End the RPC with `code` and an ErrorInfo carrying `reason`."""
    await context.abort(code, message, _details(code, message, reason))


def unary_handler(
    method: Callable[[RequestT, Context], Awaitable[ResponseT]],
    request_type: _Parser[RequestT],
) -> grpc.RpcMethodHandler[bytes, bytes]:
    """A unary-unary handler over raw bytes around a servicer method."""
    parse = request_type.FromString

    async def handle(raw: bytes, context: Context) -> bytes:
        remaining = context.time_remaining()
        if remaining is not None:
            set_deadline_in(remaining)
        try:
            request = parse(raw)
        except DecodeError:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the request is not a valid protobuf message of the expected type",
                MALFORMED_REQUEST,
            )
            raise  # pragma: no cover (abort raises)
        try:
            response = await method(request, context)
        except DomainError as error:
            code, message, trailers = status_for(error)
            await context.abort(code, message, trailers)
            raise  # pragma: no cover (abort raises)
        except grpc.aio.AbortError:
            raise
        except Exception:
            _log.exception("unexpected error in %s", getattr(method, "__name__", "rpc"))
            await abort(context, grpc.StatusCode.INTERNAL, "internal error", INTERNAL)
            raise  # pragma: no cover (abort raises)
        return response.SerializeToString()

    return grpc.unary_unary_rpc_method_handler(handle)
