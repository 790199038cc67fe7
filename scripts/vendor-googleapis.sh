#!/usr/bin/env bash
# Copies the googleapis .proto files the contract imports from the installed
# googleapis-common-protos package (pinned in uv.lock) into a directory
# (default: third_party/googleapis). buf's remote dependencies (buf.build) cannot
# be reached from our build machines, so these files are committed, verbatim;
# `make check` copies them again into a temporary directory and fails when the
# committed copies differ (see the Makefile's generated-check).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-third_party/googleapis}"
site="$(.venv/bin/python -c 'import google.api, pathlib; print(pathlib.Path(google.api.__path__[0]).parent.parent)')"
files=(google/api/field_behavior.proto google/api/resource.proto google/rpc/code.proto)
rm -rf "${out:?}/google"
for file in "${files[@]}"; do
  mkdir -p "$out/$(dirname "$file")"
  cp "$site/$file" "$out/$file"
done
