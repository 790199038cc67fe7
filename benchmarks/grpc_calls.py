"""The orchestrator's own gRPC client (from .venv): readiness, set-up calls, status codes from /metrics."""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.common import CONTENT, SERVICE, TAGS
from todo.v1 import todo_service_pb2 as pb


def wait_serving(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as error:
                last = error
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not SERVING after {timeout:.0f}s: {last}")


def call_raw(port: int, method: str, request: Message, timeout: float = 10) -> bytes:
    """One call; returns the serialized response (what B0 then serves canned)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        rpc = channel.unary_unary(f"/{SERVICE}/{method}", None, None)  # bytes in, bytes out
        return bytes(rpc(request.SerializeToString(), timeout=timeout))


def create_entries(port: int, count: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        rpc = channel.unary_unary(f"/{SERVICE}/CreateTodo", None, None)
        for index in range(count):
            todo = pb.Todo(content=f"entry {index}: {CONTENT}", tags=TAGS[: index % 3])
            rpc(pb.CreateTodoRequest(todo=todo).SerializeToString(), timeout=10)


def write_b0_responses(port: int, directory: Path) -> Path:
    """What the service on `port` answers to GetTodo (of bench-get) and to a CreateTodo, as B0's canned responses."""
    directory.mkdir(exist_ok=True)
    (directory / "GetTodo.bin").write_bytes(call_raw(port, "GetTodo", pb.GetTodoRequest(id="bench-get")))
    created = call_raw(port, "CreateTodo", pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS)))
    (directory / "CreateTodo.bin").write_bytes(created)
    return directory


def ensure_entry(port: int, entry_id: str) -> None:
    request = pb.CreateTodoRequest(todo=pb.Todo(content=CONTENT, tags=TAGS), todo_id=entry_id)
    try:
        call_raw(port, "CreateTodo", request)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


_HANDLED = re.compile(r"^grpc_server_handled_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)", re.M)


def handled_codes(metrics_port: int | None) -> Counter[str]:
    """grpc_server_handled_total by (method, code) from the service's /metrics."""
    counts: Counter[str] = Counter()
    if metrics_port is None:
        return counts
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return counts
    for match in _HANDLED.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("grpc_service") == SERVICE:
            counts[f"{labels['grpc_method']}:{labels['grpc_code']}"] += int(float(match["value"]))
    return counts
