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
# v5.8.3 needs Go 1.27; v5.8.2 builds with this machine's Go.
KUSTOMIZE_VERSION := v5.8.2

TOOLS := $(CURDIR)/.tools
# Data kept between runs (the `make ferretdb` store); `make clean` leaves it alone.
DATA := $(CURDIR)/.data
UV := $(TOOLS)/uv/bin/uv
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
GRPCURL := $(TOOLS)/bin/grpcurl
GRPC_HEALTH_PROBE := $(TOOLS)/bin/grpc-health-probe
FERRETDB := $(TOOLS)/bin/todo-ferretdb
KUSTOMIZE := $(TOOLS)/bin/kustomize
# checkov lives in its own virtual environment, pinned with hashes in
# tools/checkov/requirements.txt: about 100 packages that stay out of uv.lock.
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
FERRETDB_SOURCES := $(wildcard tools/ferretdb/*.go) tools/ferretdb/go.mod tools/ferretdb/go.sum
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# `make run` listens on loopback only; containers set TODO_GRPC_ADDRESS themselves.
RUN_ADDRESS ?= 127.0.0.1:50051

.PHONY: help install tools kubernetes kubernetes-scan checkov-lock ferretdb run-mongo run bench bench-quick check lint format typecheck imports proto proto-baseline generate generated-check test clean hadolint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	@echo "make: installing uv $(UV_VERSION) into .tools/uv (first run only)"
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV) ## Install the locked Python dependencies into .venv
ifeq ($(wildcard $(BIN)/python),)
	@echo "make: installing the locked Python dependencies into $(VENV) (uv sync; first run only, about 25 s)"
endif
	$(UV) sync --frozen --python $(PYTHON) --quiet

$(GRPCURL):
	@echo "make: building grpcurl $(GRPCURL_VERSION) into .tools/bin (first run only)"
	GOBIN=$(TOOLS)/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# The Kubernetes-style gRPC health checker, for tests/deploy/test_health_probe.py.
$(GRPC_HEALTH_PROBE):
	@echo "make: building grpc-health-probe $(GRPC_HEALTH_PROBE_VERSION) into .tools/bin (first run only)"
	GOBIN=$(TOOLS)/bin go install github.com/grpc-ecosystem/grpc-health-probe@$(GRPC_HEALTH_PROBE_VERSION)

# The MongoDB-wire test server: FerretDB v1.24.2 embedded (see tools/ferretdb).
$(FERRETDB): $(FERRETDB_SOURCES)
	@echo "make: building the FerretDB test server into .tools/bin (first run: a few minutes)"
	cd tools/ferretdb && go build -o $(FERRETDB) .

# Renders deploy/kubernetes/overlays/* for tests/deploy/test_kubernetes.py and `make kubernetes`.
$(KUSTOMIZE):
	@echo "make: building kustomize $(KUSTOMIZE_VERSION) into .tools/bin (first run only, about 1.5 min)"
	GOBIN=$(TOOLS)/bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

$(CHECKOV): tools/checkov/requirements.txt | $(UV)
	@echo "make: installing checkov into .tools/checkov (first run only, about 15 s)"
	rm -rf $(CHECKOV_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python --require-hashes -r tools/checkov/requirements.txt
	touch $(CHECKOV)

checkov-lock: $(UV) ## Re-pin checkov's own requirements (tools/checkov/requirements.in -> requirements.txt)
	cd tools/checkov && $(UV) pip compile --quiet --python-version 3.11 --universal --generate-hashes requirements.in -o requirements.txt

tools: $(GRPCURL) $(FERRETDB) $(GRPC_HEALTH_PROBE) $(KUSTOMIZE) ## Install the pinned Go tools (grpcurl, FerretDB test server, grpc-health-probe, kustomize) into .tools/bin

# Every overlay as `kubectl apply -k` would send it, then the policy scanner on
# all of them, offline (no platform, no policy download, no update check). A
# finding is fixed, or skipped with a reason next to the resource
# (`checkov.io/skip1: CKV_K8S_NN=why` annotation); none is skipped today.
# The strict offline schema validation (kubernetes-validate, its bundled
# schemas) and the contract checks run in pytest: tests/deploy/test_kubernetes.py
# (part of `make test`; `make kubernetes` runs it together with the scan).
kubernetes-scan: $(KUSTOMIZE) $(CHECKOV) ## Scan every rendered Kubernetes overlay with checkov (offline)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for overlay in deploy/kubernetes/overlays/*/; do \
	  $(KUSTOMIZE) build "$$overlay" > "$$tmp/$$(basename "$$overlay").yaml"; \
	done; \
	echo "checkov: overlays $$(cd "$$tmp" && ls | tr '\n' ' ')"; \
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE \
	  $(CHECKOV) --directory "$$tmp" --framework kubernetes --skip-download --quiet --compact

kubernetes: install $(KUSTOMIZE) kubernetes-scan ## Every Kubernetes check: overlays rendered, strict offline schemas, contract tests, checkov
	TODO_KUSTOMIZE=$(KUSTOMIZE) $(BIN)/pytest -q tests/deploy/test_kubernetes.py tests/deploy/test_contract.py

# A local MongoDB-wire server for `make run-mongo`; its data survives `make clean`.
ferretdb: $(FERRETDB) ## Run the FerretDB test server on 127.0.0.1:27017 (data kept in .data/ferretdb)
	mkdir -p $(DATA)/ferretdb
	$(FERRETDB) -listen-addr 127.0.0.1:27017 -state-dir $(DATA)/ferretdb

run-mongo: install ## Serve on MongoDB at TODO_MONGODB_URI (default: the `make ferretdb` server)
	TODO_GRPC_ADDRESS=$${TODO_GRPC_ADDRESS:-$(RUN_ADDRESS)} TODO_LOG_FORMAT=$${TODO_LOG_FORMAT:-console} \
	TODO_MONGODB_URI=$${TODO_MONGODB_URI:-mongodb://127.0.0.1:27017/} $(BIN)/python -m service

run: install ## Serve on the embedded in-memory store (127.0.0.1:50051)
	TODO_GRPC_ADDRESS=$${TODO_GRPC_ADDRESS:-$(RUN_ADDRESS)} TODO_LOG_FORMAT=$${TODO_LOG_FORMAT:-console} \
	$(BIN)/python -m service

generate: install ## Regenerate generated/ from protos/ (and re-copy third_party/googleapis)
	./scripts/vendor-googleapis.sh
	./scripts/generate.sh generated

check: install tools lint typecheck imports proto generated-check hadolint kubernetes-scan test ## Every check and test

lint: install ## ruff lint and format check
	$(BIN)/ruff check service todo_client tests scripts benchmarks
	$(BIN)/ruff format --check service todo_client tests scripts benchmarks

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix service todo_client tests scripts benchmarks
	$(BIN)/ruff format service todo_client tests scripts benchmarks

typecheck: install ## mypy --strict over service/, todo_client/, tests/ and benchmarks/
	$(BIN)/mypy --strict service todo_client tests benchmarks

imports: install ## import-linter layer contracts
	$(BIN)/lint-imports

# The released contract, as a buf image: `buf breaking` compares protos/ with it.
PROTO_BASELINE := protos/baseline/todo.v1.binpb

proto: install ## buf lint, buf format check and buf breaking against the released contract
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	$(BIN)/buf breaking protos --against $(PROTO_BASELINE)

proto-baseline: install ## Accept the current contract as released (after a deliberate breaking change)
	$(BIN)/buf build protos -o $(PROTO_BASELINE)

hadolint: install ## Lint the Dockerfile (hadolint)
	$(BIN)/hadolint Dockerfile

generated-check: install ## Fail when generated/ or the vendored googleapis protos are stale
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	./scripts/generate.sh "$$tmp/generated" >/dev/null; \
	if ! diff -r -x __pycache__ "$$tmp/generated/todo" generated/todo; then \
	  echo "generated/ is stale: run 'make generate' and commit the result" >&2; exit 1; fi; \
	./scripts/vendor-googleapis.sh "$$tmp/googleapis"; \
	if ! diff -r "$$tmp/googleapis" third_party/googleapis; then \
	  echo "third_party/googleapis differs from googleapis-common-protos: run scripts/vendor-googleapis.sh" >&2; exit 1; fi

test: install tools ## pytest (unit, end-to-end, grpcurl)
	TODO_GRPCURL=$(GRPCURL) TODO_TEST_FERRETDB=$(FERRETDB) TODO_GRPC_HEALTH_PROBE=$(GRPC_HEALTH_PROBE) TODO_KUSTOMIZE=$(KUSTOMIZE) $(BIN)/pytest

bench: install tools ## Benchmarks (not part of check; ~13 min): writes benchmarks/results/<date>.md and .json
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

bench-quick: install tools ## Smoke run of every benchmark section (~4 min; figures mean nothing): benchmarks/work/quick-results/
	$(BIN)/python -m benchmarks --quick $(BENCH_ARGS)

clean: ## Remove the virtualenv, the installed tools and caches (keeps .data, the `make ferretdb` store)
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
