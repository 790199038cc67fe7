"""Past capacity the service refuses where refusing is cheap, and keeps serving everyone else.

The real service process, with a store whose reads wait (tests/e2e/slow_service.py:
each GetTodo that reaches the store says so on stderr and then waits a minute)
and two streams per connection (TODO_MAX_CONCURRENT_STREAMS=2). A client that
does not cooperate (tools/h2flood, raw HTTP/2) opens GetTodo calls on four
connections regardless of that limit, or opens and cancels them at once (a
reset flood, CVE-2023-44487). Meanwhile a well-behaved caller on a connection
of its own and the health probes must be served. No duration is asserted:
the figures are printed for the record.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.process import ServiceProcess, installed_tool, rss_mib
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.process  # runs the service and h2flood as processes

STREAMS = 2
CONNECTIONS = 4
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[ServiceProcess, str, str]]:
    gate = tmp_path / "gate"
    os.mkfifo(gate)  # never opened: every read stays in flight until the process stops
    env = {
        "TODO_MAX_CONCURRENT_STREAMS": str(STREAMS),
        "TODO_TEST_READ_GATE": str(gate),
        "TODO_HEALTH_ADDRESS": "127.0.0.1:0",
    }
    with ServiceProcess(env, module="tests.support.slow_service") as process:
        address = process.wait_serving()
        yield process, address, process.wait_health_listener()


def flood(address: str, body: Path, *options: str, rate: int = 2000) -> subprocess.Popen[str]:
    argv = [
        installed_tool("h2flood", "TODO_H2FLOOD"), "-addr", address, "-body", str(body),
        "-conns", str(CONNECTIONS), "-rate", str(rate), "-duration", "2s", *options,
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def counts(flooding: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = flooding.communicate(timeout=60)
    assert flooding.returncode == 0, err
    result: dict[str, Any] = json.loads(out)["counts"]
    return result


def framed(message: pb.GetTodoRequest) -> bytes:
    body = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(body)) + body


def served_meanwhile(address: str, health_address: str, until: threading.Event) -> dict[str, list[Any]]:
    """A caller on its own connection creates entries, and health is checked on new connections, until `until`."""
    seen: dict[str, list[Any]] = {"created": [], "failed": [], "health": []}
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = pb_grpc.TodoServiceStub(channel)
        while not until.is_set() or not seen["created"]:
            try:
                seen["created"].append(stub.CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="bystander")), 10))
            except grpc.RpcError as error:
                seen["failed"].append(error.code())
            for target in (address, health_address):
                with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as probe:
                    health = health_pb2_grpc.HealthStub(probe)
                    for name in ("liveness", "readiness"):
                        seen["health"].append(
                            health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
                        )
    return seen


def run_flood_with_bystander(
    process: ServiceProcess, address: str, health_address: str, tmp_path: Path, *options: str, rate: int = 2000
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    with grpc.insecure_channel(address) as channel:
        entry = pb_grpc.TodoServiceStub(channel).CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="x")), 10).todo
    body = tmp_path / "get.body"
    body.write_bytes(framed(pb.GetTodoRequest(id=entry.id)))
    flooding = flood(address, body, *options, rate=rate)
    done = threading.Event()
    result: dict[str, dict[str, list[Any]]] = {}
    bystander = threading.Thread(target=lambda: result.update(seen=served_meanwhile(address, health_address, done)))
    bystander.start()
    try:
        flooded = counts(flooding)
    finally:
        done.set()
        bystander.join(60)
    return flooded, result["seen"]


def test_a_flood_over_the_stream_limit_is_refused_before_any_call_exists_while_others_are_served(
    service: tuple[ServiceProcess, str, str], tmp_path: Path
) -> None:
    process, address, health_address = service
    flooded, seen = run_flood_with_bystander(process, address, health_address, tmp_path)
    refused = flooded["rst_stream"].get("REFUSED_STREAM", 0)
    reads = process.output.count("slow read started")
    print(
        f"flood: {flooded['sent']} calls sent on {CONNECTIONS} connections, {refused} refused with REFUSED_STREAM, "
        f"{reads} reached the store; bystander: {len(seen['created'])} created, {len(seen['failed'])} failed; "
        f"health checks: {len(seen['health'])}"
    )
    # gRPC core refused the calls over each connection's limit before a call (or a handler) existed: the store
    # saw no more than the streams each connection may hold, whatever the flood sent.
    assert flooded["sent"] > 100
    assert reads <= CONNECTIONS * (STREAMS + 1)
    assert refused >= flooded["sent"] - CONNECTIONS * (STREAMS + 1)
    assert seen["failed"] == []
    assert len(seen["created"]) >= 1
    assert set(seen["health"]) == {SERVING}


def test_a_reset_flood_neither_grows_the_server_nor_starves_other_callers(
    service: tuple[ServiceProcess, str, str], tmp_path: Path
) -> None:
    process, address, health_address = service
    before = rss_mib(process.process.pid)
    # 30,000 streams a second: faster than the server can clean up after them. Without gRPC's overload
    # protection the streams it has not let go of yet are not counted, and the server grew by ~600 MiB (50,000
    # streams a second: 1.2 GB, kept after the flood); with it, most are refused (REFUSED_STREAM).
    flooded, seen = run_flood_with_bystander(process, address, health_address, tmp_path, "-reset", rate=30_000)
    after = rss_mib(process.process.pid)
    print(
        f"reset flood: {flooded['sent']} streams opened and cancelled ({flooded['rst_stream']}, "
        f"GOAWAY {flooded['goaway']}); server RSS {before:.0f} -> {after:.0f} MiB; bystander: "
        f"{len(seen['created'])} created, {len(seen['failed'])} failed"
    )
    assert flooded["sent"] > 100
    assert "slow read started" not in process.output  # no cancelled call reached the store
    assert after - before < 48, "a reset flood grew the server by more than 48 MiB"
    assert seen["failed"] == []
    assert set(seen["health"]) == {SERVING}
    with grpc.insecure_channel(address) as channel:  # and it still serves afterwards
        created = pb_grpc.TodoServiceStub(channel).CreateTodo(pb.CreateTodoRequest(todo=pb.Todo(content="after")), 10)
        assert created.todo.content == "after"
