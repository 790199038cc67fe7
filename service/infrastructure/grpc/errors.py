"""From exceptions to gRPC statuses with google.rpc details: the one encoder.

Every reason the service sends is a value of the contract's `todo.v1.ErrorReason`
(protos/todo/v1/error_reason.proto); the status code and the ErrorInfo domain
come from that enum's options, not from this module. One table maps each
domain error to its reason. The status goes through grpcio-status
(`rpc_status.to_status`), so the code and message of the `grpc-status-details-bin`
trailer always match the call's.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from service.domain.errors import (
    ConcurrentModificationError,
    DomainError,
    StoreTimeoutError,
    StoreUnavailableError,
    TodoAlreadyExistsError,
    TodoNotFoundError,
    ValidationError,
)
from todo.v1 import error_reason_pb2

Reason: TypeAlias = error_reason_pb2.ErrorReason.ValueType
ErrorReason = error_reason_pb2.ErrorReason
_REASONS = error_reason_pb2.ErrorReason.DESCRIPTOR
ERROR_DOMAIN: str = _REASONS.GetOptions().Extensions[error_reason_pb2.error_domain]
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


@functools.cache  # a fixed contract: looked up once per reason
def status_code(reason: Reason) -> grpc.StatusCode:
    """The status code the contract gives `reason` (its `status_code` option)."""
    options = _REASONS.values_by_name[ErrorReason.Name(reason)].GetOptions()  # ValueError when not a reason
    return _CODES_BY_NUMBER[options.Extensions[error_reason_pb2.status_code]]


# Domain error -> reason. The status code follows from the reason.
ERROR_TABLE: dict[type[DomainError], Reason] = {
    ValidationError: ErrorReason.FIELD_VIOLATION,
    TodoNotFoundError: ErrorReason.TODO_NOT_FOUND,
    TodoAlreadyExistsError: ErrorReason.TODO_ALREADY_EXISTS,
    ConcurrentModificationError: ErrorReason.CONCURRENT_MODIFICATION,
    StoreUnavailableError: ErrorReason.STORE_UNAVAILABLE,
    StoreTimeoutError: ErrorReason.STORE_TIMEOUT,
}


def _packed(detail: Message) -> AnyMessage:
    packed = AnyMessage()
    packed.Pack(detail)
    return packed


def rich_status(
    reason: Reason,
    message: str,
    *,
    metadata: Mapping[str, str] | None = None,
    violations: Sequence[tuple[str, str]] = (),
    retry_after_seconds: float | None = None,
    quota_violations: Sequence[tuple[str, str]] = (),
) -> grpc.Status:
    """The status for `reason`: its code, `message`, and an ErrorInfo in the details trailer (plus a
    BadRequest for field violations, a QuotaFailure for quota violations (subject, description) and a
    RetryInfo with `retry_after_seconds`)."""
    code = status_code(reason)
    details = [
        _packed(
            error_details_pb2.ErrorInfo(reason=ErrorReason.Name(reason), domain=ERROR_DOMAIN, metadata=metadata or {})
        )
    ]
    if violations:
        field_violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=text) for field, text in violations
        ]
        details.append(_packed(error_details_pb2.BadRequest(field_violations=field_violations)))
    if quota_violations:
        quota = [
            error_details_pb2.QuotaFailure.Violation(subject=subject, description=text)
            for subject, text in quota_violations
        ]
        details.append(_packed(error_details_pb2.QuotaFailure(violations=quota)))
    if retry_after_seconds is not None:
        retry_info = AnyMessage()
        delay = Duration()
        delay.FromNanoseconds(round(retry_after_seconds * 1e9))
        retry_info.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(retry_info)
    status: grpc.Status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=details))
    return status


def status_for(error: DomainError) -> grpc.Status:
    """The status for a domain error raised on purpose by the business core."""
    for kind in type(error).__mro__:
        reason = ERROR_TABLE.get(kind)
        if reason is not None:
            break
    else:  # a DomainError subclass nobody put in the table: a bug, not a client mistake
        raise error
    message = str(error)
    metadata: dict[str, str] = {}
    entry_id = getattr(error, "entry_id", None)
    if isinstance(entry_id, str):
        metadata["id"] = entry_id
    if isinstance(error, ValidationError):
        return _field_violations(reason, error)
    return rich_status(reason, _clip(message, MAX_MESSAGE_CHARS), metadata=metadata)


# An error must reach the client whole: gRPC refuses trailers above 8 KiB (the
# soft limit, where some clients start failing) with RESOURCE_EXHAUSTED, and
# `grpc-message` is percent-encoded, the details trailer base64-encoded. So at
# most MAX_VIOLATIONS violations are listed, each field and description is
# clipped (they can echo client input), and the message is ASCII and short.
# Worst case: 8 x (96 + 192) bytes of BadRequest -> about 3.2 KB in base64,
# plus a message of at most 3 x 240 bytes: well under 8 KiB.
MAX_VIOLATIONS = 8
MAX_FIELD_BYTES = 96
MAX_DESCRIPTION_BYTES = 192
MAX_MESSAGE_CHARS = 240


def _clip(text: str, limit: int, *, ascii_only: bool = True) -> str:
    """`text` cut to `limit` characters (ASCII: non-ASCII escaped) or UTF-8 bytes, marked with "..."."""
    if ascii_only:
        text = text.encode("ascii", "backslashreplace").decode("ascii")
        return text if len(text) <= limit else text[: limit - 3] + "..."
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."


def _field_violations(reason: Reason, error: ValidationError) -> grpc.Status:
    shown = error.violations[:MAX_VIOLATIONS]
    violations = [
        (
            _clip(v.field, MAX_FIELD_BYTES, ascii_only=False),
            _clip(v.description, MAX_DESCRIPTION_BYTES, ascii_only=False),
        )
        for v in shown
    ]
    first_field, first_description = violations[0]
    summary = f"invalid request: {first_field}: {first_description}"
    if len(error.violations) > 1:
        listed = "" if len(shown) == len(error.violations) else f"; the first {len(shown)} are in the details"
        summary += f" (and {len(error.violations) - 1} more{listed})"
    return rich_status(reason, _clip(summary, MAX_MESSAGE_CHARS), violations=violations)


def unhandled_exception_status(request_id: str) -> grpc.Status:
    return rich_status(ErrorReason.UNHANDLED_EXCEPTION, "internal error", metadata={"request_id": request_id})


# gRFC A6 server pushback: a client whose retry policy covers the status code waits this long before retrying.
PUSHBACK_HEADER = "grpc-retry-pushback-ms"


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    """A status with trailers of our own choosing (as grpcio-status builds its own)."""


@functools.cache  # the same for every refused call: built once, not while the server is overloaded
def concurrency_limit_status(limit: int, retry_after_seconds: float) -> grpc.Status:
    """UNAVAILABLE (CONCURRENCY_LIMIT_REACHED) with a RetryInfo and the same delay as gRPC's retry pushback."""
    status = rich_status(
        ErrorReason.CONCURRENCY_LIMIT_REACHED,
        f"the server is handling {limit} calls already; retry after {retry_after_seconds:g} s",
        metadata={"limit": str(limit)},
        retry_after_seconds=retry_after_seconds,
    )
    pushback = (PUSHBACK_HEADER, str(round(retry_after_seconds * 1000)))
    return _Status(status.code, status.details, (*status.trailing_metadata, pushback))


@functools.cache  # a constant
def malformed_request_status() -> grpc.Status:
    return rich_status(
        ErrorReason.MALFORMED_REQUEST, "the request is not a valid protobuf message of the expected type"
    )


@functools.lru_cache(maxsize=64)  # a few reasons and configured limits: built once, not per refused call
def limit_status(reason: Reason, message: str, limit: int) -> grpc.Status:
    """The status of a request over a fixed limit: `reason`, `message` and the limit in the ErrorInfo."""
    return rich_status(reason, message, metadata={"limit": str(limit)})


def response_too_large_status(limit: int) -> grpc.Status:
    return limit_status(
        ErrorReason.RESPONSE_TOO_LARGE,
        f"the response would be larger than the server may send ({limit} bytes, TODO_MAX_SEND_MESSAGE_BYTES)",
        limit,
    )
