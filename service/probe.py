"""`python -m service.probe [ADDRESS] [SERVICE]`: a gRPC health check from the command line.

Exit 0 when grpc.health.v1.Health/Check answers SERVING, 1 otherwise. Used by
the container image's HEALTHCHECK, where no grpc-health-probe binary exists.
ADDRESS defaults to 127.0.0.1 and the port of TODO_GRPC_ADDRESS; SERVICE to
"" (the whole server).
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def default_address() -> str:
    port = os.environ.get("TODO_GRPC_ADDRESS", "0.0.0.0:50051").rsplit(":", 1)[-1]
    return f"127.0.0.1:{port}"


def check(address: str, service: str = "", timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            print(f"health check failed: {error.code().name}", file=sys.stderr)
            return False
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else default_address()
    service = argv[2] if len(argv) > 2 else ""
    return 0 if check(address, service) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
