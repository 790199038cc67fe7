"""Load the deployment manifests (deploy/kubernetes, docker-compose.yml) with PyYAML."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from tests.deploy.dockerfile import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"
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
    documents = [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]
    for document in documents:
        assert isinstance(document, dict), f"{path}: a document is not a mapping"
    return cast(list[Manifest], documents)


@dataclass(frozen=True)
class Kubernetes:
    """Every manifest under deploy/kubernetes, by kind."""

    documents: list[tuple[Path, Manifest]]
    kustomization: Manifest

    @classmethod
    def load(cls, directory: Path = KUBERNETES) -> Kubernetes:
        documents = []
        kustomization: Manifest | None = None
        for path in sorted(directory.glob("*.y*ml")):
            for document in load_documents(path):
                if document.get("kind") == "Kustomization":
                    kustomization = document
                else:
                    documents.append((path, document))
        assert kustomization is not None, f"no kustomization.yaml in {directory}"
        return cls(documents, kustomization)

    def all(self, kind: str) -> list[Manifest]:
        return [document for _, document in self.documents if document.get("kind") == kind]

    def one(self, kind: str) -> Manifest:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
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
        return cast(dict[str, str], self.one("ConfigMap")["data"])

    @property
    def secret(self) -> dict[str, str]:
        secret = self.one("Secret")
        assert "data" not in secret, "the placeholder Secret uses stringData, readable as such"
        return cast(dict[str, str], secret["stringData"])

    def container_port(self, port: int | str) -> int:
        """A Service targetPort or probe port (number or container port name) as a number."""
        if isinstance(port, int):
            return port
        for entry in self.container["ports"]:
            if entry["name"] == port:
                return cast(int, entry["containerPort"])
        raise AssertionError(f"no container port named {port!r}")


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
