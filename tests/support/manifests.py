"""Load the deployment manifests: deploy/kubernetes rendered by kustomize, docker-compose.yml with PyYAML."""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from tests.support import REPO
from tests.support.process import installed_tool

KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = KUBERNETES / "overlays"
COMPOSE = REPO / "docker-compose.yml"

Manifest = dict[str, Any]

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIXES = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def load_documents(path: Path) -> list[Manifest]:
    return parse_documents(path.read_text(encoding="utf-8"), str(path))


def parse_documents(text: str, origin: str) -> list[Manifest]:
    documents = [document for document in yaml.safe_load_all(text) if document]
    for document in documents:
        assert isinstance(document, dict), f"{origin}: a document is not a mapping"
    return cast(list[Manifest], documents)


def overlay_names() -> list[str]:
    """Every directory under deploy/kubernetes/overlays: each is a deployable variant."""
    return sorted(path.name for path in OVERLAYS.iterdir() if (path / "kustomization.yaml").is_file())


def kustomize_binary() -> str:
    return installed_tool("kustomize", "TODO_KUSTOMIZE")


@functools.cache
def render(overlay: str) -> tuple[Manifest, ...]:
    """`kustomize build deploy/kubernetes/overlays/OVERLAY`: what `kubectl apply -k` would send."""
    result = subprocess.run(
        [kustomize_binary(), "build", str(OVERLAYS / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kustomize build overlays/{overlay} failed: {result.stderr}"
    return tuple(parse_documents(result.stdout, f"overlays/{overlay}"))


@dataclass(frozen=True)
class Kubernetes:
    """One overlay of deploy/kubernetes as kustomize renders it, by kind."""

    overlay: str
    documents: tuple[Manifest, ...]

    @classmethod
    def load(cls, overlay: str) -> Kubernetes:
        return cls(overlay, render(overlay))

    def all(self, kind: str) -> list[Manifest]:
        return [document for document in self.documents if document.get("kind") == kind]

    def one(self, kind: str) -> Manifest:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> Manifest:
        found = [document for document in self.all(kind) if document["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
        return found[0]

    @property
    def deployment(self) -> Manifest:
        return self.one("Deployment")

    @property
    def pod(self) -> Manifest:
        return cast(Manifest, self.deployment["spec"]["template"]["spec"])

    @property
    def pod_labels(self) -> dict[str, str]:
        return cast(dict[str, str], self.deployment["spec"]["template"]["metadata"]["labels"])

    @property
    def container(self) -> Manifest:
        containers = self.pod["containers"]
        assert len(containers) == 1, "one container per pod"
        return cast(Manifest, containers[0])

    @property
    def config_map(self) -> dict[str, str]:
        return cast(dict[str, str], self.named("ConfigMap", "todo-service-config")["data"])

    @property
    def env(self) -> dict[str, Manifest]:
        """The container's `env` entries by name."""
        return {entry["name"]: entry for entry in self.container.get("env", [])}

    @property
    def environment(self) -> dict[str, str]:
        """What the process sees: the ConfigMap (envFrom) overridden by plain `env` values."""
        values = dict(self.config_map)
        for name, entry in self.env.items():
            assert "value" in entry, f"{name} is not a plain value"
            values[name] = entry["value"]
        return values

    @property
    def volumes(self) -> dict[str, Manifest]:
        return {volume["name"]: volume for volume in self.pod.get("volumes", [])}

    def container_port(self, port: int | str) -> int:
        """A Service targetPort, NetworkPolicy or probe port (number or container port name) as a number."""
        if isinstance(port, int):
            return port
        for entry in self.container["ports"]:
            if entry["name"] == port:
                return cast(int, entry["containerPort"])
        raise AssertionError(f"no container port named {port!r}")

    def secret_file(self, path: str) -> tuple[str, str]:
        """The Secret and key a file path in the container comes from (the mount must be a Secret volume)."""
        for mount in self.container.get("volumeMounts", []):
            directory = mount["mountPath"].rstrip("/") + "/"
            if not path.startswith(directory):
                continue
            assert mount.get("readOnly") is True, f"{mount['mountPath']} is not mounted read-only"
            assert "subPath" not in mount, f"{mount['mountPath']}: a subPath mount never sees a Secret change"
            source = self.volumes[mount["name"]]
            assert "secret" in source, f"{path} is not on a Secret volume"
            secret = source["secret"]
            relative = path.removeprefix(directory)
            keys = {item["path"]: item["key"] for item in secret.get("items", [])}
            return secret["secretName"], keys.get(relative, relative)
        raise AssertionError(f"{path} is on no volume mount")


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (250m, 128Mi, 1) as a number."""
    match = _QUANTITY.match(str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match["number"]) * _SUFFIXES[match["suffix"]]


def seconds(value: str | int | float) -> float:
    """A number of seconds, or a Compose duration (20s, 1m30s)."""
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", value)
    assert parts, f"not a duration: {value!r}"
    assert "".join(number + unit for number, unit in parts) == value, f"not a duration: {value!r}"
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    for number, unit in parts:
        total += float(number) * scale[unit]
    return total


def load_compose(path: Path = COMPOSE) -> Manifest:
    documents = load_documents(path)
    assert len(documents) == 1
    return documents[0]


_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?[-?](?P<default>[^}]*))?\}")


def compose_value(value: str) -> str:
    """A Compose value with `${NAME:-default}` interpolated as if NAME were unset."""
    return _INTERPOLATION.sub(lambda match: match["default"] or "", value)
