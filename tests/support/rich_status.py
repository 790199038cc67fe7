"""Decoding google.rpc.Status details from a failed call, through the client's decoder.

Every call the tests decode here is also checked against the contract: the
status carries an ErrorInfo whose reason is a value of todo.v1.ErrorReason in
the domain the enum declares, sent with the status code the enum gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from service.infrastructure.grpc.errors import ERROR_DOMAIN, status_code
from todo.v1.error_reason_pb2 import ErrorReason
from todo_client.errors import InvalidArgumentError, error_from_rpc


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
    known = ErrorReason.keys()  # an enum wrapper's names, not a dict
    assert decoded.reason in known, f"{decoded.reason!r} is not a todo.v1.ErrorReason"
    assert decoded.domain == ERROR_DOMAIN
    assert status_code(ErrorReason.Value(decoded.reason)) == error.code(), "sent with another code than the contract's"
    violations = decoded.field_violations if isinstance(decoded, InvalidArgumentError) else {}
    return RichError(
        code=decoded.code,
        message=decoded.message,
        reason=decoded.reason,
        domain=decoded.domain,
        metadata=decoded.metadata,
        violations=violations,
    )
