"""`python -m service.probe [ADDRESS] [SERVICE]`: a gRPC health check from the command line.

Exit 0 when grpc.health.v1.Health/Check answers SERVING, 1 otherwise, 2 on a
usage error. Used by the container image's HEALTHCHECK, where no
grpc-health-probe binary exists. ADDRESS defaults to 127.0.0.1 and the port
of TODO_HEALTH_ADDRESS (the plaintext health listener) when it is set, else
of TODO_GRPC_ADDRESS; SERVICE (or --service) to "" (the whole server).
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.infrastructure.config import ConfigError, local_health_address


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


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python -m service.probe",
        description="Ask a todo service for its gRPC health (grpc.health.v1). "
        "Exit 0 when SERVING, 1 otherwise, 2 on a usage error.",
    )
    command.add_argument(
        "address",
        nargs="?",
        help="HOST:PORT to ask (default: 127.0.0.1 and the port of TODO_HEALTH_ADDRESS, else of TODO_GRPC_ADDRESS)",
    )
    command.add_argument(
        "service", nargs="?", default="", help='health service name: "" (default), liveness or readiness'
    )
    command.add_argument(
        "-s", "--service", dest="service_option", help="the health service name, without giving an address"
    )
    command.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default: 3)")
    return command


def main(argv: list[str]) -> int:
    command = parser()
    args = command.parse_args(argv[1:])
    address = args.address
    if address is None:
        try:
            address = local_health_address(os.environ)
        except ConfigError as error:
            command.error(str(error))
    if args.service_option is not None and args.service:
        command.error("give the service name once: as SERVICE or as --service")
    service = args.service_option if args.service_option is not None else args.service
    return 0 if check(address, service, args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
