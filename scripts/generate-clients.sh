#!/usr/bin/env bash
# Regenerates what callers outside Python are handed, from the contract, into a
# directory (default: clients/):
#   go/todo/v1/*.pb.go       Go messages and gRPC stubs (protoc-gen-go, protoc-gen-go-grpc,
#                            pinned in the Makefile; protoc is grpcio-tools' bundled one)
#   service_config.json      the gRPC service config (retries), from todo_client.retry,
#                            which derives it from the contract's idempotency levels
# `make generate` writes clients/; `make check` (clients-generated-check) generates into a
# temporary directory and fails when it differs. Never edit the outputs by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-clients}"
root="$(pwd)"
venv_bin="$root/.venv/bin"
tools_bin="${TODO_PROTOC_PLUGINS:?set TODO_PROTOC_PLUGINS to the directory of protoc-gen-go and protoc-gen-go-grpc (make go-plugins)}"
for plugin in protoc-gen-go protoc-gen-go-grpc; do
  if [[ ! -x "$tools_bin/$plugin" ]]; then
    echo "$tools_bin/$plugin is missing: run 'make go-plugins' (pinned in the Makefile, from the Go module proxy)" >&2
    exit 1
  fi
done
# The Go import path of the generated package, inside the clients/go module.
go_module="todo-service/clients/go"
go_package="$go_module/todo/v1;todov1"
mkdir -p "$out/go"
rm -rf "${out:?}/go/todo"
mapfile -t protos < <(cd protos && find todo -name '*.proto' | LC_ALL=C sort)
# The contract sets no go_package (it is language-neutral); the M options say where each file goes.
mappings=()
for proto in "${protos[@]}"; do
  mappings+=("--go_opt=M$proto=$go_package" "--go-grpc_opt=M$proto=$go_package")
done
"$venv_bin/python" -m grpc_tools.protoc \
  -I protos \
  -I third_party/googleapis \
  --plugin=protoc-gen-go="$tools_bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$tools_bin/protoc-gen-go-grpc" \
  --go_out="$out/go" --go_opt=module="$go_module" \
  --go-grpc_out="$out/go" --go-grpc_opt=module="$go_module" \
  "${mappings[@]}" \
  "${protos[@]}"
"$venv_bin/python" -c '
import json, sys
from todo_client.retry import DEFAULT_RETRY_POLICY, service_config
json.dump(service_config(DEFAULT_RETRY_POLICY), sys.stdout, indent=2)
print()
' > "$out/service_config.json"
