"""The built image's configuration, read with `podman image inspect`."""

from __future__ import annotations

import re
from typing import Any

from tests.support import server_contract as contract
from tests.support.server_contract import SERVICE_UID

LISTEN = re.compile(r"^(?P<host>[^:]+):(?P<port>\d+)$")


def env_of(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config["Config"]["Env"])


def exposed(config: dict[str, Any]) -> set[int]:
    ports = config["Config"].get("ExposedPorts") or {}
    assert all(port.endswith("/tcp") for port in ports), ports
    return {int(port.split("/")[0]) for port in ports}


def test_runs_as_a_numeric_non_root_user(config: dict[str, Any]) -> None:
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert config["Config"]["User"] == f"{SERVICE_UID}:{SERVICE_UID}"


def test_the_entrypoint_is_the_service_in_exec_form(config: dict[str, Any]) -> None:
    assert config["Config"]["Entrypoint"] == ["python", "-m", "service"]
    # No CMD inherited from the base image: arguments after the image name go to the service.
    assert not config["Config"].get("Cmd")
    assert config["Config"]["WorkingDir"] == "/app"
    assert config["Config"]["StopSignal"] == "SIGTERM"


def test_every_listener_in_the_environment_is_exposed(config: dict[str, Any]) -> None:
    env = env_of(config)
    listeners = {name: LISTEN.match(value) for name, value in env.items() if name.endswith("_ADDRESS")}
    assert set(listeners) >= {"TODO_GRPC_ADDRESS", "TODO_HEALTH_ADDRESS", "TODO_METRICS_ADDRESS"}
    ports = set()
    for name, match in listeners.items():
        assert match, f"{name}={env[name]} is not HOST:PORT"
        # In a container, loopback would be unreachable from the published port.
        assert match["host"] == "0.0.0.0", f"{name}={env[name]}"  # noqa: S104 (inside the container's own network)
        ports.add(int(match["port"]))
    assert exposed(config) == ports == {contract.GRPC_PORT, contract.HEALTH_PORT, contract.METRICS_PORT}


def test_the_healthcheck_is_the_grpc_liveness_check_on_an_exposed_port(config: dict[str, Any]) -> None:
    # Kept only because the image is built in Docker's format (OCI images have no HEALTHCHECK).
    healthcheck = config.get("Healthcheck")
    assert healthcheck, "no HEALTHCHECK: the image must be built with --format=docker"
    kind, *command = healthcheck["Test"]
    assert kind == "CMD", "exec form: no shell needed in the image"
    # No address: the probe asks 127.0.0.1 on the port of TODO_HEALTH_ADDRESS, the
    # plaintext health listener, which TLS or mTLS on the main port cannot break.
    assert command == ["python", "-m", "service.probe", "--service", contract.LIVENESS]
    health = LISTEN.match(env_of(config)["TODO_HEALTH_ADDRESS"])
    assert health
    assert int(health["port"]) == contract.HEALTH_PORT
    assert contract.HEALTH_PORT in exposed(config)
    assert healthcheck["Retries"] >= 1
    assert healthcheck["Timeout"] > 0
    assert healthcheck["StartPeriod"] > 0


def test_the_environment_holds_no_secret_and_only_known_settings(config: dict[str, Any]) -> None:
    env = env_of(config)
    assert env["PATH"].startswith("/app/.venv/bin:")
    # Bytecode is compiled at build time; nothing is written under a read-only root.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    names = {name for name in env if name.startswith(("TODO_", "OTEL_"))}
    assert names <= contract.ENV, names - contract.ENV
    assert not names & contract.SECRET_ENV
    assert env["TODO_GRPC_ADDRESS"] == contract.GRPC_ADDRESS
    assert env["TODO_METRICS_ADDRESS"] == contract.METRICS_ADDRESS
    # Nothing of the build stage's tooling leaks into the runtime configuration.
    assert not [name for name in env if name.startswith(("UV_", "PIP_"))]


def test_the_labels_describe_the_service(config: dict[str, Any]) -> None:
    labels = config["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "todo-service"
    assert "todo.v1.TodoService" in labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
