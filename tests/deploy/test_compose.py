"""docker-compose.yml: the service waits for a healthy MongoDB and speaks the server's contract."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from service.infrastructure.config import Settings
from tests.support import server_contract as contract
from tests.support.dockerfile import parse
from tests.support.manifests import Manifest, compose_value, load_compose, seconds

PINNED_MONGO = re.compile(r"^mongo:\d+\.\d+\.\d+(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
MIN_SHUTDOWN_MARGIN_SECONDS = 5


@pytest.fixture(scope="module")
def compose() -> Manifest:
    return load_compose()


@pytest.fixture(scope="module")
def todo(compose: Manifest) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["todo"]
    return service


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service["environment"]
    assert isinstance(env, dict), "environment as a mapping"
    return {name: compose_value(str(value)) for name, value in env.items()}


def test_the_service_waits_for_a_healthy_mongodb(compose: Manifest, todo: dict[str, Any]) -> None:
    assert todo["depends_on"]["mongodb"]["condition"] == "service_healthy"
    mongodb = compose["services"]["mongodb"]
    assert PINNED_MONGO.match(mongodb["image"]), f"{mongodb['image']} is not pinned to a release"
    test = mongodb["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1] == "mongosh"
    assert "ping" in test[-1]
    # The check's exit status must depend on the answer, not only on mongosh running.
    assert "quit(" in test[-1]


def test_every_environment_name_is_one_the_server_reads(todo: dict[str, Any]) -> None:
    names = set(environment(todo))
    assert names <= contract.ENV, f"not in the server contract: {sorted(names - contract.ENV)}"


def test_addresses_ports_and_database(todo: dict[str, Any]) -> None:
    env = environment(todo)
    assert env["TODO_GRPC_ADDRESS"] == contract.GRPC_ADDRESS
    assert env["TODO_METRICS_ADDRESS"] == contract.METRICS_ADDRESS
    published = {}
    for mapping in todo["ports"]:
        host_ip, host_port, container_port = mapping.split(":")
        assert host_ip == "127.0.0.1", f"{mapping}: published on loopback only"
        published[int(container_port)] = int(host_port)
    assert set(published) == {contract.GRPC_PORT, contract.METRICS_PORT}
    uri = urlsplit(env["TODO_MONGODB_URI"])
    assert uri.hostname == "mongodb"
    assert uri.password is None


def test_the_page_token_key_can_come_from_the_shell(todo: dict[str, Any]) -> None:
    raw = todo["environment"]["TODO_PAGE_TOKEN_SECRET"]
    assert raw.startswith("${TODO_PAGE_TOKEN_SECRET:-")


def test_the_configuration_is_accepted_by_the_server(todo: dict[str, Any]) -> None:
    settings = Settings.from_env(environment(todo))
    assert settings.mongodb is not None
    assert settings.grpc_address == contract.GRPC_ADDRESS


def test_the_healthcheck_is_the_images(todo: dict[str, Any]) -> None:
    healthcheck = parse()[-1].last("HEALTHCHECK")
    assert healthcheck is not None
    _, command = healthcheck.healthcheck_command()
    assert todo["healthcheck"]["test"] == ["CMD", *command]


def test_the_stop_grace_period_covers_drain_and_grace(todo: dict[str, Any]) -> None:
    env = environment(todo)
    needed = float(env[contract.DRAIN_ENV]) + float(env[contract.GRACE_ENV]) + MIN_SHUTDOWN_MARGIN_SECONDS
    assert seconds(todo["stop_grace_period"]) >= needed


def test_the_container_is_locked_down_like_the_pod(todo: dict[str, Any]) -> None:
    user = parse()[-1].last("USER")
    assert user is not None
    assert todo["user"] == user.args
    assert todo["read_only"] is True
    assert "/tmp" in todo["tmpfs"]  # noqa: S108 (the container path)
    assert todo["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in todo["security_opt"]
