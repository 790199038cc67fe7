#!/usr/bin/env bash
# Whether this machine can build and test the container image: it needs root.
#
#   scripts/image-preflight.sh [--after-checks]
#
# The image step (`make image`, `make image-test`, the last step of
# `make check`) builds a Debian base with debootstrap (scripts/image-base.sh:
# no container registry is reachable here), keeps it and the image in
# podman's rootful storage, installs podman, runc and debootstrap with apt-get
# when they are missing, and mounts the built image to test its contents.
# None of that works without root, so as another user this prints what to run
# instead and exits 2; as root it exits 0 and prints nothing.
# --after-checks: the caller (`make check`) has run every other check first.
set -euo pipefail

if [[ $(id -u) -eq 0 ]]; then
  exit 0
fi
{
  if [[ ${1:-} == --after-checks ]]; then
    echo "make check: every check and test passed except the container image, which was not built:"
  else
    echo "image: the container image was not built:"
  fi
  echo "  it needs root (debootstrap builds its Debian base; podman's rootful storage holds it;"
  echo "  apt-get installs podman, runc and debootstrap when missing), and this is user $(id -un)."
  echo "  To build and test it: sudo make image-test"
  echo "  Without root, every other check: make check-no-image"
} >&2
exit 2
