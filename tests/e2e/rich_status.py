"""Decoding google.rpc.Status details from a failed call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2


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
    # grpc-stubs types this as a tuple; grpc.aio returns its Metadata mapping.
    metadata = cast(grpc.aio.Metadata, error.trailing_metadata())
    raw = metadata.get("grpc-status-details-bin")
    assert isinstance(raw, bytes), f"no grpc-status-details-bin on {error.code()}: {error.details()}"
    status = status_pb2.Status.FromString(raw)
    assert status.code == error.code().value[0]
    info = error_details_pb2.ErrorInfo()
    bad_request = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            detail.Unpack(bad_request)
    return RichError(
        code=error.code(),
        message=status.message,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        violations={v.field: v.description for v in bad_request.field_violations},
    )
