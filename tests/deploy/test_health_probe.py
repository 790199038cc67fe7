"""The real grpc-health-probe binary against `python -m service`.

grpc-health-probe speaks the same grpc.health.v1 Check the kubelet's native
gRPC probes send (`grpc: {port, service}` in deploy/kubernetes/deployment.yaml),
so these tests pin down what the probes will see:
- while serving, every name the manifests use (`liveness`, `readiness`) and the
  generic ones (`""`, `todo.v1.TodoService`) answer SERVING (exit 0);
- an unknown name is an RPC failure (NOT_FOUND), never SERVING;
- MongoDB unreachable: readiness NOT_SERVING, liveness SERVING (no restart loop);
- SIGTERM: every name NOT_SERVING while the server still answers (the drain),
  then exit 0.

The binary comes from `make tools` (pinned in the Makefile) or TODO_GRPC_HEALTH_PROBE.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pymongo
import pytest

from tests.support import REPO
from tests.support import server_contract as contract
from tests.support.certificates import CertificateAuthority
from tests.support.mongo_server import MongoServer
from tests.support.process import ServiceProcess, free_port
from todo.v1 import todo_service_pb2 as pb
from todo.v1 import todo_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process

# grpc-health-probe's exit statuses.
SERVING = 0
CONNECTION_FAILURE = 2
RPC_FAILURE = 3
UNHEALTHY = 4  # the server answered with a status other than SERVING


def probe(binary: Path, address: str, service: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), f"-addr={address}", f"-service={service}", "-connect-timeout=2s", "-rpc-timeout=5s"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"{' '.join(result.args)} exited {result.returncode}: {result.stdout.strip()} {result.stderr.strip()}"


@pytest.fixture(scope="module")
def serving_address() -> Iterator[str]:
    """One service on the in-memory store (always ready) for the read-only checks."""
    with ServiceProcess() as service:
        yield service.wait_serving()
        assert service.terminate() == 0, service.output


@pytest.mark.parametrize("name", contract.HEALTH_NAMES, ids=repr)
def test_every_health_name_is_serving_while_the_service_serves(
    health_probe: Path, serving_address: str, name: str
) -> None:
    result = probe(health_probe, serving_address, name)
    assert result.returncode == SERVING, explain(result)
    assert "status: SERVING" in result.stderr, explain(result)


def test_an_unknown_service_name_fails(health_probe: Path, serving_address: str) -> None:
    result = probe(health_probe, serving_address, "no.such.Service")
    assert result.returncode != SERVING, explain(result)
    assert result.returncode == RPC_FAILURE, explain(result)
    assert "NotFound" in result.stderr, explain(result)


def test_readiness_serving_with_a_reachable_mongodb(health_probe: Path, mongo_server: MongoServer) -> None:
    database = mongo_server.database_name("probe")
    try:
        with ServiceProcess({"TODO_MONGODB_URI": mongo_server.uri, "TODO_MONGODB_DATABASE": database}) as service:
            address = service.wait_serving()
            for name in (contract.READINESS, contract.LIVENESS):
                result = probe(health_probe, address, name)
                assert result.returncode == SERVING, explain(result)
            assert service.terminate() == 0, service.output
    finally:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongo_server.uri)
        try:
            client.drop_database(database)
        finally:
            client.close()


def test_mongodb_unreachable_makes_readiness_fail_but_not_liveness(health_probe: Path) -> None:
    # A loopback port that is bound but not listening: every connection is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {
            "TODO_MONGODB_URI": f"mongodb://127.0.0.1:{port}/?directConnection=true",
            "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS": "0.2",
            "TODO_MONGODB_CONNECT_TIMEOUT_SECONDS": "0.2",
        }
        with ServiceProcess(env) as service:
            address = service.wait_serving(ready=False)
            service.wait_for(r"readiness: NOT_SERVING")  # the first check has failed
            for name in (contract.READINESS, *contract.READINESS_ALIASES):
                result = probe(health_probe, address, name)
                assert result.returncode == UNHEALTHY, explain(result)
            result = probe(health_probe, address, contract.LIVENESS)
            assert result.returncode == SERVING, f"liveness must not depend on MongoDB: {explain(result)}"
            assert service.terminate() == 0, service.output


def test_sigterm_turns_every_name_not_serving_during_the_drain_then_exits_0(health_probe: Path) -> None:
    with ServiceProcess({contract.DRAIN_ENV: "3", contract.GRACE_ENV: "2"}) as service:
        address = service.wait_serving()
        before = probe(health_probe, address, contract.LIVENESS)
        assert before.returncode == SERVING, explain(before)
        service.process.send_signal(signal.SIGTERM)
        # Ask until liveness stops being SERVING. Bounded by the process's life
        # (and a guard against a server that ignores SIGTERM), not by a duration.
        guard = time.monotonic() + 60
        result = before
        while result.returncode == SERVING and service.process.poll() is None and time.monotonic() < guard:
            result = probe(health_probe, address, contract.LIVENESS)
        assert result.returncode != SERVING, f"liveness still SERVING after SIGTERM: {service.output}"
        # The server still answers (it is draining, not gone), and says NOT_SERVING for every name.
        assert result.returncode == UNHEALTHY, f"{explain(result)}\nservice output:\n{service.output}"
        for name in (contract.READINESS, *contract.READINESS_ALIASES):
            during = probe(health_probe, address, name)
            assert during.returncode == UNHEALTHY, explain(during)
        # RPCs are still served during the drain.
        with grpc.insecure_channel(address) as channel:
            listed = pb_grpc.TodoServiceStub(channel).ListTodos(pb.ListTodosRequest(), timeout=5)
        assert list(listed.todos) == []
        assert service.wait() == 0, service.output
    after = probe(health_probe, address, contract.LIVENESS)
    assert after.returncode == CONNECTION_FAILURE, explain(after)


def test_the_health_listener_serves_the_probes_while_the_main_port_requires_mtls(
    health_probe: Path, tmp_path: Path
) -> None:
    ca = CertificateAuthority("todo test CA")
    server = ca.issue_server("localhost")
    files = {"server.pem": server.certificate, "server.key": server.key, "ca.pem": ca.certificate}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        (tmp_path / name).chmod(0o600)
    health_port = free_port()
    env = {
        "TODO_TLS_CERT_FILE": str(tmp_path / "server.pem"),
        "TODO_TLS_KEY_FILE": str(tmp_path / "server.key"),
        "TODO_TLS_CLIENT_CA_FILE": str(tmp_path / "ca.pem"),
        "TODO_HEALTH_ADDRESS": f"127.0.0.1:{health_port}",
    }
    with ServiceProcess(env) as service:
        main = service.wait_serving()
        health = service.wait_health_listener()
        assert health == f"127.0.0.1:{health_port}"
        for name in contract.HEALTH_NAMES:
            result = probe(health_probe, health, name)
            assert result.returncode == SERVING, explain(result)
        plaintext_main = probe(health_probe, main, contract.LIVENESS)
        assert plaintext_main.returncode != SERVING, explain(plaintext_main)
        # The image's HEALTHCHECK: `python -m service.probe` with the container's environment and no address.
        probe_env = {**os.environ, "TODO_GRPC_ADDRESS": main, "TODO_HEALTH_ADDRESS": f"0.0.0.0:{health_port}"}
        local = subprocess.run(
            [sys.executable, "-m", "service.probe", "--service", contract.LIVENESS],
            cwd=REPO,
            env=probe_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (local.returncode, local.stdout.strip()) == (0, "SERVING"), local.stderr
        assert service.terminate() == 0, service.output
