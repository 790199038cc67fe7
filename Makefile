# Two set-up commands on a fresh machine: `make run` and `make check`.
# Everything they need is installed here, pinned: Python packages from uv.lock
# (through a pinned uv), Go tools at pinned versions into .tools/bin.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.8
GRPCURL_VERSION := v1.9.4
GRPC_HEALTH_PROBE_VERSION := v0.4.62
GHZ_VERSION := v0.120.0

TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/uv/bin/uv
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
GRPCURL := $(TOOLS)/bin/grpcurl
GRPC_HEALTH_PROBE := $(TOOLS)/bin/grpc-health-probe
FERRETDB := $(TOOLS)/bin/todo-ferretdb
GHZ := $(TOOLS)/bin/ghz
GRPCUI := $(TOOLS)/bin/grpcui
FERRETDB_SOURCES := $(wildcard tools/ferretdb/*.go) tools/ferretdb/go.mod tools/ferretdb/go.sum
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# `make run` listens on loopback only; containers set TODO_GRPC_ADDRESS themselves.
RUN_ADDRESS ?= 127.0.0.1:50051

.PHONY: help install tools ferretdb run-mongo run bench check lint format typecheck imports proto generate generated-check test clean hadolint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV) ## Install the locked Python dependencies into .venv
	$(UV) sync --frozen --python $(PYTHON) --quiet

$(GRPCURL):
	GOBIN=$(TOOLS)/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# The Kubernetes-style gRPC health checker, for tests/deploy/test_health_probe.py.
$(GRPC_HEALTH_PROBE):
	GOBIN=$(TOOLS)/bin go install github.com/grpc-ecosystem/grpc-health-probe@$(GRPC_HEALTH_PROBE_VERSION)

# The MongoDB-wire test server: FerretDB v1.24.2 embedded (see tools/ferretdb).
$(FERRETDB): $(FERRETDB_SOURCES)
	cd tools/ferretdb && go build -o $(FERRETDB) .

# The gRPC load tester, for tests/e2e/test_reflection.py (it needs method symbols from reflection).
$(GHZ):
	GOBIN=$(TOOLS)/bin go install -ldflags "-X main.version=$(GHZ_VERSION)" github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

# The gRPC web UI, pinned in tools/grpcui/go.mod (a `tool` directive: `go install
# grpcui@version` fails because the module proxy refuses grpcui's version list).
$(GRPCUI): tools/grpcui/go.mod tools/grpcui/go.sum
	cd tools/grpcui && go build -o $(GRPCUI) github.com/fullstorydev/grpcui/cmd/grpcui

tools: $(GRPCURL) $(FERRETDB) $(GRPC_HEALTH_PROBE) $(GHZ) $(GRPCUI) ## Install the pinned Go tools (grpcurl, FerretDB test server, grpc-health-probe, ghz, grpcui) into .tools/bin

# A local MongoDB-wire server for `make run-mongo` (data in .tools/ferretdb-data).
ferretdb: $(FERRETDB) ## Run the FerretDB test server on 127.0.0.1:27017 (data kept in .tools/ferretdb-data)
	$(FERRETDB) -listen-addr 127.0.0.1:27017 -state-dir $(TOOLS)/ferretdb-data

run-mongo: install ## Serve on MongoDB at TODO_MONGODB_URI (default: the `make ferretdb` server)
	TODO_GRPC_ADDRESS=$${TODO_GRPC_ADDRESS:-$(RUN_ADDRESS)} TODO_LOG_FORMAT=$${TODO_LOG_FORMAT:-console} \
	TODO_MONGODB_URI=$${TODO_MONGODB_URI:-mongodb://127.0.0.1:27017/} $(BIN)/python -m service

run: install ## Serve on the embedded in-memory store (127.0.0.1:50051)
	TODO_GRPC_ADDRESS=$${TODO_GRPC_ADDRESS:-$(RUN_ADDRESS)} TODO_LOG_FORMAT=$${TODO_LOG_FORMAT:-console} \
	$(BIN)/python -m service

generate: install ## Regenerate generated/ from protos/
	./scripts/generate.sh generated

check: install tools lint typecheck imports proto generated-check hadolint test ## Every check and test

lint: install ## ruff lint and format check
	$(BIN)/ruff check service todo_client tests scripts
	$(BIN)/ruff format --check service todo_client tests scripts

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix service todo_client tests scripts
	$(BIN)/ruff format service todo_client tests scripts

typecheck: install ## mypy --strict over service/, todo_client/ and tests/
	$(BIN)/mypy --strict service todo_client tests

imports: install ## import-linter layer contracts
	$(BIN)/lint-imports

proto: install ## buf lint and buf format check
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

hadolint: install ## Lint the Dockerfile (hadolint)
	$(BIN)/hadolint Dockerfile

generated-check: install ## Fail when generated/ is stale
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	./scripts/generate.sh "$$tmp" >/dev/null; \
	if ! diff -r -x __pycache__ "$$tmp/todo" generated/todo; then \
	  echo "generated/ is stale: run 'make generate' and commit the result" >&2; exit 1; fi

test: install tools ## pytest (unit, end-to-end, grpcurl)
	TODO_GRPCURL=$(GRPCURL) TODO_TEST_FERRETDB=$(FERRETDB) TODO_GRPC_HEALTH_PROBE=$(GRPC_HEALTH_PROBE) \
	TODO_GHZ=$(GHZ) TODO_GRPCUI=$(GRPCUI) $(BIN)/pytest

bench: install tools ## Benchmarks (not part of check; ~13 min): writes benchmarks/results/<date>.md and .json
	$(BIN)/python benchmarks/run.py

clean: ## Remove the virtualenv and the installed tools
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
