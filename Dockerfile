# syntax=docker/dockerfile:1
# The todo service image.
#
# build:   the locked runtime dependencies (uv.lock, no dev group) into /app/.venv,
#          then the service itself, installed as a package (not editable).
# runtime: the same slim Python with only /app/.venv copied in; no compiler, no
#          uv, no sources, no tests, no development tools; a numeric non-root user.
#
# The base image is the official slim Python, pinned by version (3.11.x on
# Debian bookworm). Pin it by digest as well where the registry can be checked
# (docs/operations.md, "Container image"):
#   docker buildx imagetools inspect python:3.11.15-slim-bookworm
#   docker build --build-arg PYTHON_IMAGE=python:3.11.15-slim-bookworm@sha256:<digest> .
# PYTHON_IMAGE exists for machines that reach no registry: `make image` there
# passes a stand-in built from Debian's packages (scripts/image-base.sh; see
# docs/operations.md, "Container image"). Both stages must use the same base: the
# virtual environment's interpreter path comes from it.
# `make image-test` builds this file with podman and checks the image as built
# (tests/image/); tests/deploy/test_dockerfile.py reads what only the file shows.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The system CA bundle for pip and uv (the build stage's own: the runtime stage starts again from the base).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_SYSTEM_CERTS=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A build machine behind a TLS-inspecting proxy passes its CA bundle as the build secret `build-ca`
# (scripts/image-build.sh does): it replaces the build stage's bundle and reaches no layer of the
# image. The same uv as the Makefile's UV_VERSION, checked against its hashes.
COPY uv-build-requirements.txt /tmp/
# hadolint ignore=DL3013
RUN --mount=type=secret,id=build-ca,required=false \
    if [ -s /run/secrets/build-ca ]; then cp /run/secrets/build-ca /etc/ssl/certs/ca-certificates.crt; fi \
    && pip install --no-cache-dir --require-hashes -r /tmp/uv-build-requirements.txt
WORKDIR /src
# Dependencies first, from the lockfile only: this layer stays cached while
# only the code changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# Then the service itself, as a package in site-packages.
COPY README.md ./
COPY generated/ generated/
COPY service/ service/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="todo-service" \
      org.opencontainers.image.description="A todo-entry microservice served over gRPC (todo.v1.TodoService)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 todo \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin todo
# Owned by root and not writable by the service user.
COPY --from=build /app/.venv /app/.venv
# Bytecode is compiled at build time, so the root filesystem can be read-only.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TODO_GRPC_ADDRESS=0.0.0.0:50051 \
    TODO_HEALTH_ADDRESS=0.0.0.0:50052 \
    TODO_METRICS_ADDRESS=0.0.0.0:9090
WORKDIR /app
USER 10001:10001
# 50051: gRPC (todo.v1.TodoService, grpc.health.v1, reflection; TLS when configured);
# 50052: plaintext grpc.health.v1 only, for probes; 9090: Prometheus /metrics.
EXPOSE 50051 50052 9090
# SIGTERM: health turns NOT_SERVING, the server drains, then exits 0.
STOPSIGNAL SIGTERM
# The gRPC health protocol, service "liveness": SERVING while the process
# serves, even when MongoDB is down (readiness is for load balancers to judge).
# Asked on the plaintext health listener (TODO_HEALTH_ADDRESS), so it keeps
# working when the main port requires TLS or client certificates.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "service.probe", "--service", "liveness"]
ENTRYPOINT ["python", "-m", "service"]
