"""What the deployment expects of the server, in one place.

The manifests (Dockerfile, docker-compose.yml, deploy/kubernetes) are checked
against these names and numbers; the server is checked against them too
(tests/deploy/test_contract.py checks its settings table, and
tests/deploy/test_health_probe.py probes a running server).
"""

from __future__ import annotations

from service.infrastructure.config import Settings, variables

# The numeric user and group the image runs as (Kubernetes' runAsNonRoot checks it without /etc/passwd).
SERVICE_UID = 10001

# Ports inside the container.
GRPC_PORT = 50051
METRICS_PORT = 9090
METRICS_PATH = "/metrics"
GRPC_ADDRESS = f"0.0.0.0:{GRPC_PORT}"
METRICS_ADDRESS = f"0.0.0.0:{METRICS_PORT}"
# The dedicated plaintext listener that serves grpc.health.v1 only
# (TODO_HEALTH_ADDRESS): the Kubernetes probes use it, so TLS, mTLS and tokens
# on the gRPC port never break them.
HEALTH_PORT = 50052
HEALTH_ADDRESS = f"0.0.0.0:{HEALTH_PORT}"

# grpc.health.v1 service names.
API_SERVICE = "todo.v1.TodoService"
# SERVING while the process is alive and serving, even when MongoDB is down:
# the livenessProbe and the startupProbe (and the image's HEALTHCHECK).
LIVENESS = "liveness"
# SERVING only while MongoDB answers and the server is not shutting down: the readinessProbe.
READINESS = "readiness"
# These follow readiness.
READINESS_ALIASES = ("", API_SERVICE)
HEALTH_NAMES = (LIVENESS, READINESS, *READINESS_ALIASES)

# Environment variables the server reads (all optional): the names of its table of settings.
TODO_ENV = tuple(name for name in variables(Settings) if name.startswith("TODO_"))
# The standard OpenTelemetry variables the deployment sets.
OTEL_ENV = ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT")
ENV = frozenset(TODO_ENV + OTEL_ENV)
# Never in a ConfigMap, an image or a compose file in clear: from a Secret only.
# Kubernetes sets none of them at all: it mounts the Secret and sets the *_FILE name.
SECRET_ENV = frozenset({"TODO_MONGODB_URI", "TODO_PAGE_TOKEN_SECRET"})
# Names of files that Kubernetes mounts from a Secret (TLS certificates and the
# CA are not secret, but they arrive in the same cert-manager Secret as the key).
SECRET_FILE_ENV = frozenset(
    {
        "TODO_MONGODB_URI_FILE",
        "TODO_PAGE_TOKEN_SECRET_FILE",
        "TODO_AUTH_TOKENS_FILE",
        "TODO_TLS_CERT_FILE",
        "TODO_TLS_KEY_FILE",
        "TODO_TLS_CLIENT_CA_FILE",
    }
)
# The key names cert-manager writes into a Certificate's Secret.
CERT_MANAGER_KEYS = ("tls.crt", "tls.key", "ca.crt")
LOG_FORMATS = ("json", "console")

# Shutdown: on SIGTERM every health name turns NOT_SERVING, the server keeps
# serving for the drain, then stops with the grace, then closes MongoDB and
# exits 0. A pod needs terminationGracePeriodSeconds >= drain + grace (+ margin).
DRAIN_ENV = "TODO_SHUTDOWN_DRAIN_SECONDS"
GRACE_ENV = "TODO_SHUTDOWN_GRACE_SECONDS"

# Names the manifests set that the server does not read yet (none today). Their
# tests are strict xfails, which fail as soon as the server reads the name.
NOT_YET_READ: frozenset[str] = frozenset()
