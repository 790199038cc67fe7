"""The server reads every environment name the manifests set.

Each TODO_* and OTEL_* name used by the Dockerfile, docker-compose.yml or
deploy/kubernetes must be a variable of the server's table of settings
(service/infrastructure/config/settings.py). A name the server does not read
yet goes into NOT_YET_READ: its test is then a strict xfail, which turns into
a failure as soon as the server reads it, so the list never goes stale. (That
the reader reads exactly the table's variables is a server test:
tests/unit/infrastructure/test_config.py.)
"""

from __future__ import annotations

import pytest

from service.infrastructure.config import Settings, variables
from tests.support import server_contract as contract
from tests.support.dockerfile import parse
from tests.support.manifests import Kubernetes, load_compose, overlay_names
from tests.support.server_contract import NOT_YET_READ

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process


def names_in_manifests() -> set[str]:
    names: set[str] = set()
    for stage in parse():
        names |= {name for name in stage.env({}) if name.startswith(("TODO_", "OTEL_"))}
    for overlay in overlay_names():
        k8s = Kubernetes.load(overlay)
        names |= set(k8s.config_map) | set(k8s.env)
    for service in load_compose()["services"].values():
        names |= {name for name in service.get("environment", {}) if name.startswith(("TODO_", "OTEL_"))}
    return names


def parameters() -> list[object]:
    return [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason=f"{name} is set by the manifests but not read yet"),
        )
        if name in NOT_YET_READ
        else name
        for name in sorted(names_in_manifests())
    ]


def test_the_manifests_use_only_contract_names() -> None:
    names = names_in_manifests()
    assert names <= contract.ENV | NOT_YET_READ, sorted(names - contract.ENV - NOT_YET_READ)
    assert NOT_YET_READ.issubset(names), "NOT_YET_READ lists a name no manifest uses"


@pytest.mark.parametrize("name", parameters())
def test_the_server_reads(name: str) -> None:
    assert name in set(variables(Settings)), f"{name} is not in the table of settings"
