#!/usr/bin/env bash
# Build the Dockerfile with a real OCI builder: Debian's podman (buildah inside).
#
#   scripts/image-build.sh IMAGE [PYTHON_IMAGE]
#
# PYTHON_IMAGE empty (the default here): the base is the local stand-in from
# scripts/image-base.sh, since these machines reach no container registry.
# With a registry: PYTHON_IMAGE=python:3.11.15-slim-bookworm (or
# `docker build -t todo-service .`, which uses the Dockerfile's default).
#
# --isolation=chroot: RUN steps in a chroot, which works in this sandbox where
#   the OCI runtimes cannot start a container;
# --network=host: the build reaches PyPI the way this machine does;
# --pull=never: the base is local; a registry is never asked;
# --format=docker: keeps HEALTHCHECK, which the OCI image format has no field for.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${1:?usage: image-build.sh IMAGE [PYTHON_IMAGE]}
PYTHON_IMAGE=${2:-}

if [[ -z $PYTHON_IMAGE ]]; then
  PYTHON_IMAGE=$("$ROOT/scripts/image-base.sh" | tail -1)
fi
command -v podman >/dev/null || {
  echo "image-build: podman is missing: run scripts/image-base.sh (installs it) or apt-get install podman" >&2
  exit 2
}

pull=never
[[ $PYTHON_IMAGE == localhost/* ]] || pull=missing
# This machine's CA bundle (with the TLS proxy's root here) for the build stage only: a build secret,
# never a layer, so the image trusts the CAs of its base and no other.
CA_BUNDLE=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
secret=()
[[ -r $CA_BUNDLE ]] && secret=(--secret "id=build-ca,src=$CA_BUNDLE")
echo "image-build: $IMAGE on $PYTHON_IMAGE" >&2
podman build \
  --isolation=chroot \
  --network=host \
  --pull="$pull" \
  --format=docker \
  --layers \
  --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
  "${secret[@]}" \
  --tag "$IMAGE" \
  --file "$ROOT/Dockerfile" \
  "$ROOT" >&2
podman image inspect --format '{{.Id}} {{.Size}}' "$IMAGE"
