"""The built image run as a container (`podman run`, runc) and talked to from outside.

The container runs as the image says: its ENTRYPOINT, USER, ENV and WORKDIR,
with a read-only root filesystem, every capability dropped and no new
privileges, as the Kubernetes manifests run it. Its ports are published on
127.0.0.1 only. The RLIMIT flags in RUN_LIMITS are this sandbox's (podman's
default limits are refused here); nothing else is adapted.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import server_contract as contract
from tests.support.image import RUN_LIMITS, podman
from tests.support.server_contract import SERVICE_UID
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

# Generous: two cores are shared with other work; nothing here measures time.
READY_SECONDS = 120.0
RPC_TIMEOUT = 30.0


@dataclass
class Container:
    name: str
    grpc_address: str
    metrics_address: str

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict[str, object]:
        (found,) = json.loads(podman("container", "inspect", self.name).stdout)
        state = found["State"]
        assert isinstance(state, dict)
        return state


def published(name: str, port: int) -> str:
    address = podman("port", name, f"{port}/tcp").stdout.strip().splitlines()[0]
    assert address.startswith("127.0.0.1:"), address
    return address


def health(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT
        )
    return int(response.status)


def wait_serving(container: Container) -> None:
    deadline = time.monotonic() + READY_SECONDS
    last: Exception | None = None
    while time.monotonic() < deadline:
        if container.state()["Status"] != "running":
            pytest.fail(f"the container stopped: {container.state()}\n{container.logs()}")
        try:
            if health(container.grpc_address, contract.LIVENESS) == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError as error:
            last = error
        time.sleep(0.5)
    pytest.fail(f"not SERVING within {READY_SECONDS}s ({last}):\n{container.logs()}")


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    name = f"todo-image-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "--detach", "--name", name, *RUN_LIMITS,
        "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        f"--publish=127.0.0.1::{contract.GRPC_PORT}", f"--publish=127.0.0.1::{contract.METRICS_PORT}",
        image,
    )  # fmt: skip
    try:
        running = Container(name, published(name, contract.GRPC_PORT), published(name, contract.METRICS_PORT))
        wait_serving(running)
        yield running
    finally:
        podman("rm", "--force", "--time=10", name, check=False)


def test_the_process_runs_as_the_service_user_on_a_read_only_root(container: Container) -> None:
    status = podman("exec", container.name, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
    assert set(uids) == {str(SERVICE_UID)}
    assert set(gids) == {str(SERVICE_UID)}
    cmdline = podman("exec", container.name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert cmdline[1:3] == ["-m", "service"], cmdline
    written = podman("exec", container.name, "touch", "/app/written", check=False)
    assert written.returncode != 0
    assert "Read-only file system" in written.stderr


def test_health_answers_serving_from_outside(container: Container) -> None:
    for service in (contract.LIVENESS, contract.READINESS, contract.API_SERVICE):
        assert health(container.grpc_address, service) == health_pb2.HealthCheckResponse.SERVING, service


def test_a_todo_is_created_and_read_back(container: Container) -> None:
    with grpc.insecure_channel(container.grpc_address) as channel:
        stub = pb_grpc.TodoServiceStub(channel)
        created = stub.CreateTodo(
            pb.CreateTodoRequest(todo=pb.Todo(content="  from the image  ", tags=["Image"])), timeout=RPC_TIMEOUT
        ).todo
        assert created.content == "from the image"
        assert list(created.tags) == ["image"]
        fetched = stub.GetTodo(pb.GetTodoRequest(id=created.id), timeout=RPC_TIMEOUT).todo
    assert fetched == created


def test_metrics_are_served_on_the_exposed_port(container: Container) -> None:
    url = f"http://{container.metrics_address}{contract.METRICS_PATH}"
    with urllib.request.urlopen(url, timeout=RPC_TIMEOUT) as response:
        body = response.read().decode()
    assert response.status == 200
    assert "grpc" in body


def test_the_images_healthcheck_passes_inside_the_container(container: Container) -> None:
    # podman runs the image's own HEALTHCHECK command in the container.
    result = podman("healthcheck", "run", container.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert container.state()["Health"]["Status"] == "healthy"  # type: ignore[index]


def test_sigterm_drains_and_exits_0(container: Container) -> None:
    # `podman stop` sends the image's STOPSIGNAL (SIGTERM), and SIGKILL only after the timeout.
    podman("stop", "--time=60", container.name, timeout=120)
    state = container.state()
    assert state["Status"] == "exited"
    logs = container.logs()
    assert state["ExitCode"] == 0, logs
    assert "shutting down" in logs
    assert '"message": "stopped"' in logs.rstrip().splitlines()[-1], logs
