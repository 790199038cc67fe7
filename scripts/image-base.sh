#!/usr/bin/env bash
# A stand-in for the Dockerfile's base image, built from Debian's packages.
#
# The Dockerfile's base is the official `python:3.11.15-slim-bookworm` (its
# PYTHON_IMAGE build argument). Where a registry is reachable, `make image
# PYTHON_IMAGE=python:3.11.15-slim-bookworm` builds on it and this script is
# not used. On machines that reach no container registry (these), this script
# makes a base with the same layout from Debian bookworm's own packages:
#   debootstrap --variant=minbase + python3.11, python3-venv, python3-pip,
#   ca-certificates; `python`, `python3` and `pip` on PATH as the official
#   image has them; no EXTERNALLY-MANAGED marker (the official image has none);
#   Debian's own CA bundle, as the official image has it. (This machine's
#   bundle, with its TLS proxy's root, reaches the build stage only, as a build
#   secret: scripts/image-build.sh. Before, it was copied into this base, so the
#   runtime image trusted the proxy's CA.)
# What differs from the official image: Debian's Python 3.11.2 in /usr/bin
# instead of 3.11.15 built into /usr/local.
#
# The result is imported into podman as localhost/todo-python-base:<recipe>,
# labelled with its recipe hash (this file); the root
# filesystem is cached as .tools/image-base/<recipe>.tar, so it is built once
# per recipe. Prints the image name on its last line of stdout.
#
# The packages come from the Debian mirror this machine's apt uses for
# bookworm (its sources.list or deb822 .sources files, through `apt-get
# indextargets`); TODO_DEBIAN_MIRROR overrides it, and deb.debian.org is the
# fallback on a machine whose apt names no bookworm archive.
# `image-base.sh --mirror` prints the mirror it would use and exits.
#
# Needs root (scripts/image-preflight.sh says so before anything runs).
# Installs podman, runc and debootstrap from Debian's packages when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TODO_IMAGE_BASE_CACHE:-$ROOT/.tools/image-base}
SUITE=bookworm
FALLBACK_MIRROR=http://deb.debian.org/debian
PACKAGES=python3.11,python3-venv,python3-pip,ca-certificates
LABEL=org.todo.image-base.recipe

log() { echo "image-base: $*" >&2; }

# The archive that this machine's apt uses for $SUITE (the first one), else the fallback.
debian_mirror() {
  if [[ -n ${TODO_DEBIAN_MIRROR:-} ]]; then
    echo "$TODO_DEBIAN_MIRROR"
    return
  fi
  local uri=""
  if command -v apt-get >/dev/null; then
    uri=$(apt-get indextargets --no-release-info --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
      awk -v suite="$SUITE" '$1 == suite { print $2; exit }')
  fi
  echo "${uri:-$FALLBACK_MIRROR}"
}

if [[ ${1:-} == --mirror ]]; then
  debian_mirror
  exit 0
fi

"$ROOT/scripts/image-preflight.sh"
MIRROR=$(debian_mirror)

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

recipe=$(sha256sum <"$0" | cut -c1-16)
image=localhost/todo-python-base:$recipe

if podman image exists "$image"; then
  log "$image is loaded"
  echo "$image"
  exit 0
fi

mkdir -p "$CACHE"
tarball=$CACHE/$recipe.tar
if [[ ! -s $tarball ]]; then
  work=$(mktemp -d "$CACHE/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  rootfs=$work/rootfs
  log "debootstrap $SUITE ($PACKAGES) from $MIRROR into $rootfs"
  # The downloaded packages are kept, so a changed recipe does not download them again.
  mkdir -p "$CACHE/debs"
  debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE/debs" \
    "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
  }
  # The official image's names for the interpreter and pip.
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
  ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
  # The official image's Python is not Debian-managed: pip installs system-wide.
  rm -f "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED
  # Slim, like the official image: no package lists, caches, docs or manuals.
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  find "$rootfs" -name __pycache__ -type d -prune -exec rm -rf {} +
  # Keep the two newest other recipes (worktrees of this repository share the cache), drop the rest.
  find "$CACHE" -maxdepth 1 -name '*.tar' ! -name "$recipe.tar" -printf '%T@ %p\n' | sort -rn | tail -n +3 |
    cut -d' ' -f2- | xargs -r rm -f
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  log "cached $tarball ($(du -h "$tarball" | cut -f1))"
fi

log "importing $tarball as $image"
podman import \
  --change "LABEL $LABEL=$recipe" \
  --change "LABEL org.opencontainers.image.description=stand-in for python:3.11.15-slim-bookworm from Debian packages" \
  --change "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change 'CMD ["python3"]' \
  "$tarball" "$image" >&2
echo "$image"
