"""deploy/kubernetes: every manifest loaded with PyYAML and held to the server contract.

Ports, probe service names and environment names come from
tests/deploy/server_contract.py; the user ID from the Dockerfile; the shutdown
timings from the ConfigMap.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any, cast

import pytest

from service.infrastructure.config import ConfigError, Settings
from tests.deploy import server_contract as contract
from tests.deploy.dockerfile import parse
from tests.deploy.manifests import KUBERNETES, Kubernetes, Manifest, quantity

# Time left after drain + grace for closing the store and flushing spans.
MIN_SHUTDOWN_MARGIN_SECONDS = 5
EXPECTED = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "ServiceAccount": "v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
}
PLACEHOLDER = "REPLACE-ME"
CREDENTIALS_IN_URI = re.compile(r"://[^/@\s]+:[^/@\s]+@")


@pytest.fixture(scope="module")
def k8s() -> Kubernetes:
    return Kubernetes.load()


def image_uid() -> int:
    user = parse()[-1].last("USER")
    assert user is not None, "the Dockerfile's runtime stage sets no USER"
    return int(user.args.split(":")[0])


def test_the_kustomization_lists_every_manifest_and_nothing_else(k8s: Kubernetes) -> None:
    listed = k8s.kustomization["resources"]
    assert len(listed) == len(set(listed))
    on_disk = {path.name for path in KUBERNETES.glob("*.y*ml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    assert k8s.kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"


def test_one_of_each_kind_with_a_stable_api_version(k8s: Kubernetes) -> None:
    kinds = sorted(document["kind"] for _, document in k8s.documents)
    assert kinds == sorted(EXPECTED)
    for _, document in k8s.documents:
        assert document["apiVersion"] == EXPECTED[document["kind"]], document["kind"]
        assert document["metadata"]["name"]
        assert "namespace" not in document["metadata"], "the namespace is the applier's choice"


def grpc_probe(container: Manifest, name: str) -> dict[str, Any]:
    probe = container[name]
    handlers = {"grpc", "httpGet", "tcpSocket", "exec"} & set(probe)
    assert handlers == {"grpc"}, f"{name} must use the native gRPC probe, has {handlers}"
    return cast(dict[str, Any], probe["grpc"])


@pytest.mark.parametrize(
    ("probe", "service"),
    [
        ("startupProbe", contract.LIVENESS),
        ("livenessProbe", contract.LIVENESS),
        ("readinessProbe", contract.READINESS),
    ],
)
def test_probes_use_grpc_health_on_the_grpc_port(k8s: Kubernetes, probe: str, service: str) -> None:
    handler = grpc_probe(k8s.container, probe)
    # The gRPC probe takes a port number (a name is rejected by the API server).
    assert type(handler["port"]) is int
    assert handler["port"] == contract.GRPC_PORT
    assert handler["service"] == service
    assert service in contract.HEALTH_NAMES


def test_the_liveness_probe_cannot_kill_a_draining_container(k8s: Kubernetes) -> None:
    # Every name is NOT_SERVING during the drain: liveness must not give up before the process exits.
    probe = k8s.container["livenessProbe"]
    window = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
    config = k8s.config_map
    assert window > float(config[contract.DRAIN_ENV]) + float(config[contract.GRACE_ENV])


def test_container_ports_are_the_contract_ports(k8s: Kubernetes) -> None:
    ports = {entry["name"]: entry["containerPort"] for entry in k8s.container["ports"]}
    assert ports == {"grpc": contract.GRPC_PORT, "metrics": contract.METRICS_PORT}
    assert all(entry.get("protocol", "TCP") == "TCP" for entry in k8s.container["ports"])


def test_the_listen_addresses_match_the_container_ports(k8s: Kubernetes) -> None:
    assert k8s.config_map["TODO_GRPC_ADDRESS"] == contract.GRPC_ADDRESS
    assert k8s.config_map["TODO_METRICS_ADDRESS"] == contract.METRICS_ADDRESS


def test_the_service_targets_the_grpc_and_metrics_ports(k8s: Kubernetes) -> None:
    service = k8s.one("Service")
    ports = {entry["name"]: entry for entry in service["spec"]["ports"]}
    assert set(ports) == {"grpc", "metrics"}
    grpc_port = ports["grpc"]
    assert grpc_port["port"] == contract.GRPC_PORT
    assert k8s.container_port(grpc_port["targetPort"]) == contract.GRPC_PORT
    assert grpc_port["appProtocol"] == "grpc"
    assert k8s.container_port(ports["metrics"]["targetPort"]) == contract.METRICS_PORT
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_prometheus_annotations_point_at_the_metrics_port(k8s: Kubernetes) -> None:
    annotations = k8s.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(contract.METRICS_PORT)
    assert annotations["prometheus.io/path"] == contract.METRICS_PATH


def environment_names(k8s: Kubernetes) -> set[str]:
    return set(k8s.config_map) | {entry["name"] for entry in k8s.container.get("env", [])}


def test_every_environment_name_is_one_the_server_reads(k8s: Kubernetes) -> None:
    names = environment_names(k8s)
    assert names <= contract.ENV, f"not in the server contract: {sorted(names - contract.ENV)}"
    # The pod gets no variables the server does not expect (Service links would inject TODO_* names).
    assert k8s.pod["enableServiceLinks"] is False


def test_the_config_map_reaches_the_container_whole(k8s: Kubernetes) -> None:
    sources = k8s.container["envFrom"]
    assert sources == [{"configMapRef": {"name": k8s.one("ConfigMap")["metadata"]["name"]}}]
    assert all(isinstance(value, str) for value in k8s.config_map.values()), "ConfigMap values must be strings"


def test_secrets_come_from_the_secret_only(k8s: Kubernetes) -> None:
    secret_name = k8s.one("Secret")["metadata"]["name"]
    env = {entry["name"]: entry for entry in k8s.container["env"]}
    assert set(env) == contract.SECRET_ENV
    for name, entry in env.items():
        assert "value" not in entry, name
        reference = entry["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret_name
        assert reference["key"] in k8s.secret
        assert reference.get("optional", False) is False
    assert set(k8s.secret) == contract.SECRET_ENV


def test_no_secret_value_appears_in_the_config_map(k8s: Kubernetes) -> None:
    config = k8s.config_map
    assert not contract.SECRET_ENV & set(config)
    for secret_value in k8s.secret.values():
        for name, value in config.items():
            assert secret_value not in value, name
    for name, value in config.items():
        assert not CREDENTIALS_IN_URI.search(value), f"{name} holds credentials"
        assert PLACEHOLDER not in value, name


def test_the_secret_holds_clearly_marked_placeholders(k8s: Kubernetes) -> None:
    for name, value in k8s.secret.items():
        assert PLACEHOLDER in value, f"{name} does not look like a placeholder"
    annotation = k8s.one("Secret")["metadata"]["annotations"]["todo.example.com/placeholder"]
    assert "replace" in annotation.lower()


def test_the_configuration_is_accepted_by_the_server(k8s: Kubernetes) -> None:
    # The Secret as shipped is a template: the server refuses its placeholder (fail closed) ...
    with pytest.raises(ConfigError, match="TODO_PAGE_TOKEN_SECRET is a placeholder"):
        Settings.from_env({**k8s.config_map, **k8s.secret})
    # ... and accepts it filled in as its comment says (`openssl rand -base64 32`).
    filled = {**k8s.secret, "TODO_PAGE_TOKEN_SECRET": base64.b64encode(os.urandom(32)).decode()}
    settings = Settings.from_env({**k8s.config_map, **filled})
    assert settings.grpc_address == contract.GRPC_ADDRESS
    assert settings.metrics_address == contract.METRICS_ADDRESS
    assert settings.mongodb is not None
    assert settings.log_format in contract.LOG_FORMATS


def pre_stop_seconds(container: Manifest) -> float:
    """How long a preStop hook may hold SIGTERM back (0 without one)."""
    hook = container.get("lifecycle", {}).get("preStop")
    if hook is None:
        return 0.0
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = " ".join(hook["exec"]["command"])
    match = re.search(r"sleep\(?\s*(\d+(?:\.\d+)?)", command)
    assert match, f"cannot tell how long the preStop hook {command!r} takes"
    return float(match[1])


def test_the_grace_period_covers_drain_and_grace(k8s: Kubernetes) -> None:
    config = k8s.config_map
    drain = float(config[contract.DRAIN_ENV])
    grace = float(config[contract.GRACE_ENV])
    assert drain > 0, "without a drain, endpoints still route to a pod that stopped accepting RPCs"
    needed = pre_stop_seconds(k8s.container) + drain + grace + MIN_SHUTDOWN_MARGIN_SECONDS
    assert k8s.pod["terminationGracePeriodSeconds"] >= needed


def test_pod_and_container_security_contexts(k8s: Kubernetes) -> None:
    uid = image_uid()
    pod = k8s.pod["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == uid
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    container = k8s.container["securityContext"]
    assert container["runAsNonRoot"] is True
    assert container["runAsUser"] == uid
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container.get("privileged", False) is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert "add" not in container["capabilities"]
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert k8s.pod["automountServiceAccountToken"] is False
    assert k8s.pod["serviceAccountName"] == k8s.one("ServiceAccount")["metadata"]["name"]


def test_the_read_only_root_has_a_writable_tmp(k8s: Kubernetes) -> None:
    mounts = {mount["mountPath"]: mount["name"] for mount in k8s.container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in k8s.pod["volumes"]}
    tmp = volumes[mounts["/tmp"]]  # noqa: S108 (the container path, not a temporary file here)
    assert "emptyDir" in tmp
    assert quantity(tmp["emptyDir"]["sizeLimit"]) > 0


def test_requests_and_limits(k8s: Kubernetes) -> None:
    resources = k8s.container["resources"]
    for resource in ("cpu", "memory"):
        request = quantity(resources["requests"][resource])
        limit = quantity(resources["limits"][resource])
        assert 0 < request <= limit, resource
    # The measured idle footprint is about 60 MiB; the limit leaves room for load.
    assert quantity(resources["limits"]["memory"]) >= 2 * 60 * 2**20


def test_the_image_is_pinned(k8s: Kubernetes) -> None:
    image = k8s.container["image"]
    name, _, tag = image.rpartition(":")
    assert name
    assert tag
    assert tag != "latest"
    assert "@" not in name or "@sha256:" in image
    overrides = {entry["name"]: entry for entry in k8s.kustomization.get("images", [])}
    if name in overrides:
        assert overrides[name].get("newTag", tag) != "latest"


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_every_selector_matches_the_pod_labels(k8s: Kubernetes) -> None:
    labels = k8s.pod_labels
    assert selector_matches(k8s.deployment["spec"]["selector"]["matchLabels"], labels)
    assert selector_matches(k8s.one("Service")["spec"]["selector"], labels)
    assert selector_matches(k8s.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    for constraint in k8s.pod.get("topologySpreadConstraints", []):
        assert selector_matches(constraint["labelSelector"]["matchLabels"], labels)
    target = k8s.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": k8s.deployment["metadata"]["name"]}


def test_the_hpa_scales_on_cpu_and_keeps_the_pdb_satisfiable(k8s: Kubernetes) -> None:
    spec = k8s.one("HorizontalPodAutoscaler")["spec"]
    metrics = spec["metrics"]
    assert [(metric["type"], metric["resource"]["name"]) for metric in metrics] == [("Resource", "cpu")]
    assert metrics[0]["resource"]["target"]["type"] == "Utilization"
    assert 0 < metrics[0]["resource"]["target"]["averageUtilization"] <= 100
    # Utilization is relative to the request: there must be one.
    assert quantity(k8s.container["resources"]["requests"]["cpu"]) > 0
    assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
    # The HPA owns the replica count.
    assert "replicas" not in k8s.deployment["spec"]
    pdb = k8s.one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] < spec["minReplicas"], "a disruption must leave a replica serving"
    rolling = k8s.deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0
