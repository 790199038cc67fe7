"""deploy/kubernetes: every overlay rendered by kustomize and held to the server contract.

Ports, probe service names and environment names come from
tests/support/server_contract.py; the user ID from the Dockerfile; the shutdown
timings from the ConfigMap. Each overlay is rendered once (`kustomize build`,
the pinned binary in .tools/bin) and checked as `kubectl apply -k` would send
it. The schemas are checked strictly and offline with kubernetes-validate (its
bundled schemas), for the oldest supported Kubernetes and the newest it knows;
`make k8s` adds the policy scanner (checkov).
"""

from __future__ import annotations

import re
import secrets
import stat
from pathlib import Path
from typing import Any, cast

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from service.infrastructure.config import Settings
from tests.support import server_contract as contract
from tests.support.certificates import CertificateAuthority
from tests.support.dockerfile import parse
from tests.support.manifests import (
    BASE,
    KUBERNETES,
    OVERLAYS,
    Kubernetes,
    Manifest,
    load_documents,
    overlay_names,
    quantity,
)
from tests.support.server_contract import NOT_YET_READ

pytestmark = pytest.mark.process  # runs the service or a pinned tool as a process

# Time left after drain + grace for closing the store and flushing spans.
MIN_SHUTDOWN_MARGIN_SECONDS = 5
# Kubernetes >= 1.27: native gRPC probes GA, PDB unhealthyPodEvictionPolicy on by default.
OLDEST_KUBERNETES = "1.27.0"
EXPECTED = {
    ("Namespace", "todo"): "v1",
    ("ServiceAccount", "todo-service"): "v1",
    ("ConfigMap", "todo-service-config"): "v1",
    ("Deployment", "todo-service"): "apps/v1",
    ("Service", "todo-service"): "v1",
    ("Service", "todo-service-headless"): "v1",
    ("NetworkPolicy", "todo-service"): "networking.k8s.io/v1",
    ("PodDisruptionBudget", "todo-service"): "policy/v1",
    ("HorizontalPodAutoscaler", "todo-service"): "autoscaling/v2",
}
NAMESPACES = {"tokens": "todo", "tls": "todo", "mtls": "todo", "dev": "todo-dev"}
TLS_FILES = {"TODO_TLS_CERT_FILE", "TODO_TLS_KEY_FILE"}
# The files each overlay's server reads from Secrets.
SECRET_FILES = {
    "tokens": {"TODO_MONGODB_URI_FILE", "TODO_PAGE_TOKEN_SECRET_FILE", "TODO_AUTH_TOKENS_FILE"},
    "dev": {"TODO_MONGODB_URI_FILE", "TODO_PAGE_TOKEN_SECRET_FILE", "TODO_AUTH_TOKENS_FILE"},
    "tls": {"TODO_MONGODB_URI_FILE", "TODO_PAGE_TOKEN_SECRET_FILE", "TODO_AUTH_TOKENS_FILE", *TLS_FILES},
    "mtls": {
        "TODO_MONGODB_URI_FILE",
        "TODO_PAGE_TOKEN_SECRET_FILE",
        "TODO_AUTH_TOKENS_FILE",
        *TLS_FILES,
        "TODO_TLS_CLIENT_CA_FILE",
    },
}
PLACEHOLDER = "REPLACE-ME"
CREDENTIALS_IN_URI = re.compile(r"://[^/@\s]+:[^/@\s]+@")
CLIENT_LABEL = {"todo.example/client": "true"}
DNS_PORT = 53
MONGODB_PORT = 27017
EXAMPLE_SECRETS = KUBERNETES / "examples" / "secrets.example.yaml"


@pytest.fixture(scope="module", params=overlay_names())
def k8s(request: pytest.FixtureRequest) -> Kubernetes:
    return Kubernetes.load(cast(str, request.param))


def image_uid() -> int:
    user = parse()[-1].last("USER")
    assert user is not None, "the Dockerfile's runtime stage sets no USER"
    return int(user.args.split(":")[0])


def test_the_overlays_are_the_documented_ones() -> None:
    assert overlay_names() == sorted(NAMESPACES) == sorted(SECRET_FILES)


def test_the_base_kustomization_lists_every_manifest_and_nothing_else() -> None:
    (kustomization,) = load_documents(BASE / "kustomization.yaml")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    on_disk = {path.name for path in BASE.glob("*.y*ml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"


def test_no_kustomization_applies_the_example_secrets() -> None:
    # An applied placeholder is a real secret that everybody knows.
    for path in KUBERNETES.rglob("kustomization.yaml"):
        (kustomization,) = load_documents(path)
        for field in ("resources", "components", "patches"):
            assert "examples" not in str(kustomization.get(field, "")), f"{path} uses examples/"
        assert "secretGenerator" not in kustomization, f"{path}: secrets are created out of band"


def test_no_overlay_renders_a_secret(k8s: Kubernetes) -> None:
    assert k8s.all("Secret") == []


def test_every_resource_and_api_version(k8s: Kubernetes) -> None:
    namespace = NAMESPACES[k8s.overlay]
    found = {(document["kind"], document["metadata"]["name"]): document for document in k8s.documents}
    expected = {
        (kind, namespace if kind == "Namespace" else name): version for (kind, name), version in EXPECTED.items()
    }
    if k8s.overlay == "mtls":  # its example authorization policy
        expected[("ConfigMap", "todo-service-authz-policy")] = "v1"
    assert sorted(found) == sorted(expected)
    for key, document in found.items():
        assert document["apiVersion"] == expected[key], key
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, key


def test_the_namespace_enforces_the_restricted_pod_security_standard(k8s: Kubernetes) -> None:
    labels = k8s.one("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
def test_strict_schema_validation_offline(k8s: Kubernetes, version: str) -> None:
    # Strict: a misspelt or misplaced field is an error, not silently dropped by the API server.
    for document in k8s.documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    deployment = Kubernetes.load("tokens").deployment
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, OLDEST_KUBERNETES, strict=True)


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
def test_probes_use_grpc_health_on_the_health_port(k8s: Kubernetes, probe: str, service: str) -> None:
    handler = grpc_probe(k8s.container, probe)
    # The gRPC probe takes a port number (a name is rejected by the API server).
    assert type(handler["port"]) is int
    # The plaintext health listener: TLS, mTLS or tokens on the gRPC port cannot break the probes.
    assert handler["port"] == contract.HEALTH_PORT != contract.GRPC_PORT
    assert k8s.container_port("health") == contract.HEALTH_PORT
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
    assert ports == {"grpc": contract.GRPC_PORT, "metrics": contract.METRICS_PORT, "health": contract.HEALTH_PORT}
    assert all(entry.get("protocol", "TCP") == "TCP" for entry in k8s.container["ports"])


def test_the_listen_addresses_match_the_container_ports(k8s: Kubernetes) -> None:
    environment = k8s.environment
    assert environment["TODO_GRPC_ADDRESS"] == contract.GRPC_ADDRESS
    assert environment["TODO_METRICS_ADDRESS"] == contract.METRICS_ADDRESS
    assert environment["TODO_HEALTH_ADDRESS"] == contract.HEALTH_ADDRESS


def test_the_cluster_ip_service_targets_the_grpc_and_metrics_ports(k8s: Kubernetes) -> None:
    service = k8s.named("Service", "todo-service")
    ports = {entry["name"]: entry for entry in service["spec"]["ports"]}
    assert set(ports) == {"grpc", "metrics"}
    grpc_port = ports["grpc"]
    assert grpc_port["port"] == contract.GRPC_PORT
    assert k8s.container_port(grpc_port["targetPort"]) == contract.GRPC_PORT
    assert grpc_port["appProtocol"] == "grpc"
    assert k8s.container_port(ports["metrics"]["targetPort"]) == contract.METRICS_PORT
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert "clusterIP" not in service["spec"]


def test_the_headless_service_publishes_ready_pods_for_client_side_balancing(k8s: Kubernetes) -> None:
    spec = k8s.named("Service", "todo-service-headless")["spec"]
    assert spec["clusterIP"] == "None"
    assert spec.get("type", "ClusterIP") == "ClusterIP"
    # DNS lists only ready pods: a replica that is not ready gets no new connection.
    assert spec.get("publishNotReadyAddresses", False) is False
    (port,) = spec["ports"]
    assert port["name"] == "grpc"
    assert port["port"] == contract.GRPC_PORT
    assert k8s.container_port(port["targetPort"]) == contract.GRPC_PORT
    assert port["appProtocol"] == "grpc"


def test_prometheus_annotations_point_at_the_metrics_port(k8s: Kubernetes) -> None:
    annotations = k8s.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(contract.METRICS_PORT)
    assert annotations["prometheus.io/path"] == contract.METRICS_PATH


def test_every_environment_name_is_one_the_server_reads(k8s: Kubernetes) -> None:
    names = set(k8s.environment)
    assert names <= contract.ENV, f"not in the server contract: {sorted(names - contract.ENV)}"
    # The pod gets no variables the server does not expect (Service links would inject TODO_* names).
    assert k8s.pod["enableServiceLinks"] is False


def test_the_config_map_reaches_the_container_whole(k8s: Kubernetes) -> None:
    sources = k8s.container["envFrom"]
    assert sources == [{"configMapRef": {"name": "todo-service-config"}}]
    assert all(isinstance(value, str) for value in k8s.config_map.values()), "ConfigMap values must be strings"


def test_no_secret_is_in_the_environment(k8s: Kubernetes) -> None:
    for name, entry in k8s.env.items():
        assert set(entry) == {"name", "value"}, f"{name}: only plain values (file names), no valueFrom"
    assert not contract.SECRET_ENV & set(k8s.environment), "secrets are files, not variables"
    assert all("secretRef" not in source for source in k8s.container["envFrom"])
    for name, value in k8s.config_map.items():
        assert not CREDENTIALS_IN_URI.search(value), f"{name} holds credentials"
        assert PLACEHOLDER not in value, name


def test_every_secret_is_a_file_from_a_secret_volume(k8s: Kubernetes) -> None:
    files = set(k8s.env) & contract.SECRET_FILE_ENV
    assert files == SECRET_FILES[k8s.overlay]
    for name in files:
        secret, key = k8s.secret_file(k8s.env[name]["value"])
        assert secret.startswith("todo-service-"), (name, secret)
        assert key, name
    for volume in k8s.volumes.values():
        if "secret" in volume:
            source = volume["secret"]
            # A missing Secret or key keeps the pod from starting: no start without its secrets.
            assert source.get("optional", False) is False, volume["name"]
            mode = source["defaultMode"]
            assert mode & (stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP) == 0, f"{volume['name']}: mode {mode:o}"
            assert all("mode" not in item for item in source.get("items", [])), volume["name"]


def test_the_tokens_file_is_mounted_so_rotation_reaches_the_server(k8s: Kubernetes) -> None:
    # A directory mount (no subPath) is updated by the kubelet when the Secret changes.
    secret, key = k8s.secret_file(k8s.env["TODO_AUTH_TOKENS_FILE"]["value"])
    assert (secret, key) == ("todo-service-auth-tokens", "tokens")
    assert float(k8s.config_map["TODO_AUTH_TOKENS_RELOAD_SECONDS"]) > 0


def test_tls_comes_from_a_cert_manager_secret(k8s: Kubernetes) -> None:
    expected = {"tls": {"TODO_TLS_CERT_FILE": "tls.crt", "TODO_TLS_KEY_FILE": "tls.key"}}
    expected["mtls"] = {**expected["tls"], "TODO_TLS_CLIENT_CA_FILE": "ca.crt"}
    wanted = expected.get(k8s.overlay, {})
    found = {name: k8s.secret_file(k8s.env[name]["value"]) for name in k8s.env if name.startswith("TODO_TLS_")}
    assert found == {name: ("todo-service-tls", key) for name, key in wanted.items()}
    assert set(wanted.values()) <= set(contract.CERT_MANAGER_KEYS)


def test_reflection_is_off_except_in_dev(k8s: Kubernetes) -> None:
    assert k8s.config_map["TODO_REFLECTION"] == ("true" if k8s.overlay == "dev" else "false")


def rule_ports(k8s: Kubernetes, rule: Manifest) -> list[int]:
    """The ports of a NetworkPolicy rule as numbers (a name is a container port name)."""
    return [k8s.container_port(entry["port"]) for entry in rule["ports"]]


def rules_for(k8s: Kubernetes, rules: list[Manifest], port: int) -> list[Manifest]:
    return [rule for rule in rules if port in rule_ports(k8s, rule)]


def test_the_network_policy_admits_clients_and_the_scraper_only(k8s: Kubernetes) -> None:
    policy = k8s.one("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == k8s.deployment["spec"]["selector"]["matchLabels"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    ingress = policy["ingress"]
    for rule in ingress:
        # No rule open to every source or every port.
        assert rule.get("from"), rule
        assert rule.get("ports"), rule
    (grpc_rule,) = rules_for(k8s, ingress, contract.GRPC_PORT)
    assert rule_ports(k8s, grpc_rule) == [contract.GRPC_PORT]
    for peer in grpc_rule["from"]:
        assert peer["podSelector"]["matchLabels"] == CLIENT_LABEL
        # Pods of another namespace only where that namespace is let in (a namespaceSelector with labels).
        if "namespaceSelector" in peer:
            assert peer["namespaceSelector"]["matchLabels"]
    (metrics_rule,) = rules_for(k8s, ingress, contract.METRICS_PORT)
    assert rule_ports(k8s, metrics_rule) == [contract.METRICS_PORT]
    for peer in metrics_rule["from"]:
        assert peer["namespaceSelector"]["matchLabels"]
        assert peer["podSelector"]["matchLabels"]
    # The kubelet's probes are not subject to NetworkPolicy: nobody else needs the health port.
    assert rules_for(k8s, ingress, contract.HEALTH_PORT) == []
    assert len(ingress) == 2


def test_the_network_policy_lets_out_dns_and_mongodb_only(k8s: Kubernetes) -> None:
    egress = k8s.one("NetworkPolicy")["spec"]["egress"]
    ports: set[tuple[int, str]] = set()
    for rule in egress:
        assert rule.get("to"), rule
        assert rule.get("ports"), rule
        assert all("ipBlock" not in peer for peer in rule["to"]), rule
        ports |= {(entry["port"], entry.get("protocol", "TCP")) for entry in rule["ports"]}
    assert ports == {(DNS_PORT, "UDP"), (DNS_PORT, "TCP"), (MONGODB_PORT, "TCP")}
    (dns,) = rules_for(k8s, egress, DNS_PORT)
    assert [peer["podSelector"]["matchLabels"] for peer in dns["to"]] == [{"k8s-app": "kube-dns"}]
    # MongoDB only in namespaces an administrator labelled: a pod labelled mongodb elsewhere gets nothing.
    (mongodb,) = rules_for(k8s, egress, MONGODB_PORT)
    for peer in mongodb["to"]:
        assert peer["namespaceSelector"]["matchLabels"] == {"todo.example/mongodb": "allowed"}
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "mongodb"}


def write_secret_files(k8s: Kubernetes, directory: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """The pod's environment with every mounted secret file written below `directory`, and the files' contents."""
    authority = CertificateAuthority("todo test CA")
    server = authority.issue_server("todo-service.todo.svc")
    contents = {
        "mongodb-uri": b"mongodb://todo:a-long-password@mongodb.todo.svc:27017/todo?authSource=admin",
        "page-token-secret": secrets.token_urlsafe(32).encode(),
        "tokens": f"# one token a line\n{secrets.token_urlsafe(32)}\n".encode(),
        "tls.crt": server.certificate,
        "tls.key": server.key,
        "ca.crt": authority.certificate,
    }
    environment = k8s.environment
    for name in set(environment) & contract.SECRET_FILE_ENV:
        _, key = k8s.secret_file(environment[name])
        path = directory / key
        path.write_bytes(contents[key])
        path.chmod(0o400)
        environment[name] = str(path)
    if "TODO_AUTHZ_POLICY_FILE" in environment:  # from a ConfigMap volume: its content as rendered
        policy = directory / "policy.json"
        policy.write_text(k8s.named("ConfigMap", "todo-service-authz-policy")["data"]["policy.json"])
        environment["TODO_AUTHZ_POLICY_FILE"] = str(policy)
    return environment, contents


@pytest.mark.xfail(
    bool(NOT_YET_READ),
    strict=True,
    reason="the server does not read every name the manifests set yet (test_contract.NOT_YET_READ)",
)
def test_the_configuration_is_accepted_by_the_server(k8s: Kubernetes, tmp_path: Path) -> None:
    environment, contents = write_secret_files(k8s, tmp_path)
    settings = Settings.from_env(environment)
    assert settings.grpc_address == contract.GRPC_ADDRESS
    assert settings.metrics_address == contract.METRICS_ADDRESS
    assert settings.mongodb is not None, "the MongoDB URI file was not read"
    assert settings.page_token_secret == contents["page-token-secret"].decode(), "the page-token file was not read"
    assert settings.auth_tokens is not None
    assert settings.reflection is (k8s.overlay == "dev")
    assert (settings.tls is not None) is (k8s.overlay in {"tls", "mtls"})
    assert (settings.tls is not None and settings.tls.client_ca_file is not None) is (k8s.overlay == "mtls")
    assert settings.log_format in contract.LOG_FORMATS
    assert (settings.authz_policy is not None) is (k8s.overlay == "mtls")


def test_the_example_secrets_match_the_mounts_and_are_placeholders() -> None:
    examples = {document["metadata"]["name"]: document for document in load_documents(EXAMPLE_SECRETS)}
    mounted: set[tuple[str, str]] = set()
    k8s = Kubernetes.load("tokens")
    for name in SECRET_FILES["tokens"]:
        mounted.add(k8s.secret_file(k8s.env[name]["value"]))
    assert {(name, key) for name, secret in examples.items() for key in secret["stringData"]} == mounted
    for secret in examples.values():
        assert secret["metadata"]["namespace"] == "todo"
        assert "replace" in secret["metadata"]["annotations"]["todo.example.com/placeholder"].lower()
        for key, value in secret["stringData"].items():
            assert PLACEHOLDER in value, f"{key} does not look like a placeholder"


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
    # The secret files are group-readable only: the group must be the process's own.
    assert pod["fsGroup"] == pod["runAsGroup"]
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
    account = k8s.one("ServiceAccount")
    assert k8s.pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False


def test_the_read_only_root_has_a_writable_tmp(k8s: Kubernetes) -> None:
    mounts = {mount["mountPath"]: mount["name"] for mount in k8s.container["volumeMounts"]}
    tmp = k8s.volumes[mounts["/tmp"]]  # noqa: S108 (the container path, not a temporary file here)
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


def test_the_image_is_pinned_by_digest(k8s: Kubernetes) -> None:
    image = k8s.container["image"]
    match = re.fullmatch(r"(?P<name>[^:@]+(?::\d+)?/[^:@]+):(?P<tag>[\w.-]+)@sha256:(?P<digest>[0-9a-f]{64})", image)
    assert match, f"{image} is not NAME:TAG@sha256:DIGEST"
    assert match["tag"] != "latest"


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_every_selector_matches_the_pod_labels(k8s: Kubernetes) -> None:
    labels = k8s.pod_labels
    assert selector_matches(k8s.deployment["spec"]["selector"]["matchLabels"], labels)
    for service in k8s.all("Service"):
        assert selector_matches(service["spec"]["selector"], labels)
    assert selector_matches(k8s.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    assert selector_matches(k8s.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"], labels)
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


def test_every_overlay_directory_is_rendered_here() -> None:
    assert sorted(path.name for path in OVERLAYS.iterdir() if path.is_dir()) == overlay_names()


def test_the_mtls_overlay_ships_a_policy_with_a_reader_and_a_writer() -> None:
    """The example policy parses as the service parses it, and lets the reader read and the writer write."""
    from service.infrastructure.authz import Principal  # noqa: PLC0415
    from service.infrastructure.config.authz_policy import parse_policy  # noqa: PLC0415

    k8s = Kubernetes.load("mtls")
    path = k8s.environment["TODO_AUTHZ_POLICY_FILE"]
    mount = next(m for m in k8s.container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/"))
    assert mount.get("readOnly") is True
    assert "subPath" not in mount, "a subPath mount never sees an update"
    config_map = k8s.named("ConfigMap", k8s.volumes[mount["name"]]["configMap"]["name"])
    policy = parse_policy(config_map["data"][path.rsplit("/", 1)[1]])
    reader = Principal("r", ("spiffe://example.org/ns/reporting/sa/reporter",), authenticated=True)
    writer = Principal("w", ("spiffe://example.org/ns/app/sa/todo-writer",), authenticated=True)
    stranger = Principal("s", ("spiffe://example.org/ns/other/sa/x",), authenticated=True)
    service = "/todo.v1.TodoService/"
    assert policy.decide(reader, service + "ListTodos", ()).allowed
    assert not policy.decide(reader, service + "DeleteTodo", ()).allowed
    assert policy.decide(writer, service + "DeleteTodo", ()).allowed
    assert not policy.decide(stranger, service + "GetTodo", ()).allowed
