"""The server reads every environment name the manifests set (a textual check).

For each TODO_* name used by the Dockerfile, docker-compose.yml or
deploy/kubernetes, service/infrastructure/config.py must contain it as a string
literal; each OTEL_* name must appear somewhere under service/. A name the
server does not read yet goes into NOT_YET_READ: its test is then a strict
xfail, which turns into a failure as soon as the server reads it, so the list
never goes stale. (A test that config.py reads exactly server_contract.TODO_ENV
belongs with the server's tests.)
"""

from __future__ import annotations

import pytest

from tests.support import REPO
from tests.support import server_contract as contract
from tests.support.dockerfile import parse
from tests.support.manifests import Kubernetes, load_compose, overlay_names
from tests.support.server_contract import NOT_YET_READ

# Settings.from_env and the secrets and key files it reads through config_secrets.py.
CONFIG_FILES = [REPO / "service" / "infrastructure" / name for name in ("config.py", "config_secrets.py")]


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
    assert names <= contract.ENV, sorted(names - contract.ENV)
    assert NOT_YET_READ.issubset(names), "NOT_YET_READ lists a name no manifest uses"


@pytest.mark.parametrize("name", parameters())
def test_the_server_reads(name: str) -> None:
    if name.startswith("TODO_"):
        source = "".join(path.read_text(encoding="utf-8") for path in CONFIG_FILES)
        assert f'"{name}"' in source, f"service/infrastructure/config*.py does not read {name}"
    else:
        sources = "\n".join(path.read_text(encoding="utf-8") for path in sorted((REPO / "service").rglob("*.py")))
        assert name in sources, f"nothing under service/ reads {name}"
