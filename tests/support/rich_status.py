"""Decoding google.rpc.Status details from a failed call, checked against values written out here.

Every call the tests decode here is also checked against the contract as this
file writes it out (not as the server's encoder reads it): the status carries
an ErrorInfo in the domain "todo.v1" whose reason is one of REASON_CODES, sent
with the status code listed there. tests/unit/test_error_reasons.py checks
that this table and protos/todo/v1/error_reason.proto say the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from todo_client.errors import InvalidArgumentError, error_from_rpc

DOMAIN = "todo.v1"
# Every reason the service sends, with the status code it is sent with.
REASON_CODES = {
    "FIELD_VIOLATION": grpc.StatusCode.INVALID_ARGUMENT,
    "MALFORMED_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "TODO_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "TODO_ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "CONCURRENT_MODIFICATION": grpc.StatusCode.ABORTED,
    "STORE_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "STORE_TIMEOUT": grpc.StatusCode.DEADLINE_EXCEEDED,
    "BEARER_TOKEN_MISSING": grpc.StatusCode.UNAUTHENTICATED,
    "BEARER_TOKEN_INVALID": grpc.StatusCode.UNAUTHENTICATED,
    "UNHANDLED_EXCEPTION": grpc.StatusCode.INTERNAL,
    "CONCURRENCY_LIMIT_REACHED": grpc.StatusCode.UNAVAILABLE,
    "POLICY_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "QUOTA_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "WATCH_LIMIT_REACHED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "REQUEST_TOO_LARGE": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "STREAM_REQUEST_LIMIT_REACHED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "METHOD_NOT_FOUND": grpc.StatusCode.UNIMPLEMENTED,
    "HEALTH_SERVICE_UNKNOWN": grpc.StatusCode.NOT_FOUND,
    "RESPONSE_TOO_LARGE": grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@dataclass(frozen=True)
class RichError:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]
    violations: dict[str, str]


def decode(error: grpc.aio.AioRpcError) -> RichError:
    """The code, ErrorInfo and BadRequest field violations of a failed RPC."""
    decoded = error_from_rpc(error)
    assert decoded.reason, f"no ErrorInfo in the status details of {error.code()}: {error.details()}"
    assert decoded.reason in REASON_CODES, f"{decoded.reason!r} is not a reason of the contract"
    assert decoded.domain == DOMAIN
    assert REASON_CODES[decoded.reason] == error.code(), "sent with another code than the contract's"
    violations = decoded.field_violations if isinstance(decoded, InvalidArgumentError) else {}
    return RichError(
        code=decoded.code,
        message=decoded.message,
        reason=decoded.reason,
        domain=decoded.domain,
        metadata=decoded.metadata,
        violations=violations,
    )


# A grpc-status-details-bin trailer written out field by field from the .proto
# files (google/rpc/status.proto, google/protobuf/any.proto,
# google/rpc/error_details.proto), so that a test of a decoder does not build
# its input with the encoder it is checking (protobuf's messages, grpcio-status).
def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _text(number: int, value: str | bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    payload = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _any(message: str, payload: bytes) -> bytes:
    """google.protobuf.Any{type_url = 1, value = 2}."""
    return _text(1, f"type.googleapis.com/{message}") + _text(2, payload)


def status_details_bin(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    *,
    domain: str = DOMAIN,
    metadata: dict[str, str] | None = None,
    violations: tuple[tuple[str, str], ...] = (),
) -> tuple[tuple[str, bytes], ...]:
    """The trailer of google.rpc.Status{code, message, details: [ErrorInfo, BadRequest?]}, as the wire has it."""
    # ErrorInfo{reason = 1, domain = 2, metadata = 3 (map entries {key = 1, value = 2})}
    info = _text(1, reason) + _text(2, domain)
    for key, value in (metadata or {}).items():
        info += _text(3, _text(1, key) + _text(2, value))
    details = _text(3, _any("google.rpc.ErrorInfo", info))
    if violations:
        # BadRequest{field_violations = 1 (FieldViolation{field = 1, description = 2})}
        bad_request = b"".join(_text(1, _text(1, field) + _text(2, text)) for field, text in violations)
        details += _text(3, _any("google.rpc.BadRequest", bad_request))
    # Status{code = 1 (varint), message = 2, details = 3}
    status = _varint(1 << 3 | 0) + _varint(code.value[0]) + _text(2, message) + details
    return (("grpc-status-details-bin", status),)
