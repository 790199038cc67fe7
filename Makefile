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
# protoc plugins for the Go client (clients/go); protoc itself is grpcio-tools' (uv.lock).
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# v5.8.3 needs Go 1.27; v5.8.2 builds with this machine's Go.
KUSTOMIZE_VERSION := v5.8.2
# The fault proxy of tests/faults (Shopify's Toxiproxy; its command is named `server`).
TOXIPROXY_VERSION := v2.12.0

TOOLS := $(CURDIR)/.tools
# Data kept between runs (the `make ferretdb` store); `make clean` leaves it alone.
DATA := $(CURDIR)/.data
UV := $(TOOLS)/uv/bin/uv
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
GRPCURL := $(TOOLS)/bin/grpcurl
GRPC_HEALTH_PROBE := $(TOOLS)/bin/grpc-health-probe
FERRETDB := $(TOOLS)/bin/todo-ferretdb
GHZ := $(TOOLS)/bin/ghz
# A raw HTTP/2 client that ignores stream limits or resets its streams (tools/h2flood).
H2FLOOD := $(TOOLS)/bin/h2flood
# grpc-go's own authorization engine (authz.NewStatic) behind mTLS, for the policy conformance test (tools/authzcheck).
AUTHZCHECK := $(TOOLS)/bin/authzcheck
GRPCUI := $(TOOLS)/bin/grpcui
KUSTOMIZE := $(TOOLS)/bin/kustomize
# One directory per version, so a new pin never runs an old binary.
TOXIPROXY := $(TOOLS)/toxiproxy-$(TOXIPROXY_VERSION)/toxiproxy-server
# Prometheus, promtool, Alertmanager (amtool) and the blackbox exporter: Debian's
# packages (`make monitoring-tools` installs them as root). Without root, point
# these at your own builds (e.g. `go install github.com/prometheus/prometheus/cmd/...`).
# Debian's binaries: installed ones (/usr/bin), else unpacked for a developer without root (.tools/debian).
MONITORING_BIN := $(if $(wildcard /usr/bin/promtool),/usr/bin,$(TOOLS)/debian/usr/bin)
PROMETHEUS ?= $(MONITORING_BIN)/prometheus
PROMTOOL ?= $(MONITORING_BIN)/promtool
ALERTMANAGER ?= $(MONITORING_BIN)/prometheus-alertmanager
AMTOOL ?= $(MONITORING_BIN)/amtool
BLACKBOX_EXPORTER ?= $(MONITORING_BIN)/prometheus-blackbox-exporter
MONITORING_PACKAGES := prometheus prometheus-alertmanager prometheus-blackbox-exporter
# checkov lives in its own virtual environment, pinned with hashes in
# tools/checkov/requirements.txt: about 100 packages that stay out of uv.lock.
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
FERRETDB_SOURCES := $(wildcard tools/ferretdb/*.go) tools/ferretdb/go.mod tools/ferretdb/go.sum
H2FLOOD_SOURCES := $(wildcard tools/h2flood/*.go) tools/h2flood/go.mod tools/h2flood/go.sum
AUTHZCHECK_SOURCES := $(wildcard tools/authzcheck/*.go) tools/authzcheck/go.mod tools/authzcheck/go.sum
# One directory per pair of plugin versions, so a new pin never runs an old binary.
PROTOC_PLUGINS := $(TOOLS)/protoc-plugins-go$(PROTOC_GEN_GO_VERSION)-grpc$(PROTOC_GEN_GO_GRPC_VERSION)
# The Go example caller (clients/go/cmd/todo-example), run by tests/client/test_go_client.py.
GO_EXAMPLE := $(TOOLS)/bin/todo-go-example
GO_EXAMPLE_SOURCES := $(shell find clients/go -name '*.go') clients/go/go.mod clients/go/go.sum
# Python sources under ruff (the client library is its own distribution in clients/python).
PY_SOURCES := service clients/python tests scripts benchmarks
# Go builds the pinned tools. A fresh account on a machine where Go came from the
# official tarball may not have it on PATH: /usr/local/go/bin is tried after PATH.
ifeq ($(shell command -v go 2>/dev/null),)
ifneq ($(wildcard /usr/local/go/bin/go),)
export PATH := $(PATH):/usr/local/go/bin
endif
endif
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# The container image: built with podman from the Dockerfile (scripts/image-build.sh).
# PYTHON_IMAGE empty: the base is a local stand-in made from Debian's packages
# (scripts/image-base.sh; no container registry is reachable here). With a registry:
#   make image PYTHON_IMAGE=python:3.11.15-slim-bookworm
# One tag per checkout, so that worktrees sharing podman's storage do not race.
IMAGE ?= localhost/todo-service:$(shell basename "$(CURDIR)" | tr -c 'a-z0-9_.\n-' '-')
PYTHON_IMAGE ?=

# `make run` listens on loopback only; containers set TODO_GRPC_ADDRESS themselves.
RUN_ADDRESS ?= 127.0.0.1:50051

.PHONY: monitoring-tools rules faults-long help install docs test-fast check-no-image go-available tools go-plugins go-example clients-generated-check clients-check kubernetes kubernetes-scan checkov-lock ferretdb run-mongo run bench bench-quick check lint format typecheck imports proto proto-baseline generate generated-check test clean hadolint image image-test

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

$(GRPCURL): | go-available
	@echo "make: building grpcurl $(GRPCURL_VERSION) into .tools/bin (first run only)"
	GOBIN=$(TOOLS)/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# The Kubernetes-style gRPC health checker, for tests/deploy/test_health_probe.py.
$(GRPC_HEALTH_PROBE): | go-available
	@echo "make: building grpc-health-probe $(GRPC_HEALTH_PROBE_VERSION) into .tools/bin (first run only)"
	GOBIN=$(TOOLS)/bin go install github.com/grpc-ecosystem/grpc-health-probe@$(GRPC_HEALTH_PROBE_VERSION)

# The MongoDB-wire test server: FerretDB v1.24.2 embedded (see tools/ferretdb).
$(FERRETDB): $(FERRETDB_SOURCES) | go-available
	@echo "make: building the FerretDB test server into .tools/bin (first run: a few minutes)"
	cd tools/ferretdb && go build -o $(FERRETDB) .

# The gRPC load tester, for tests/e2e/test_reflection.py (it needs method symbols from reflection).
$(GHZ): | go-available
	@echo "make: building ghz $(GHZ_VERSION) into .tools/bin (first run only, about 2 min)"
	GOBIN=$(TOOLS)/bin go install -ldflags "-X main.version=$(GHZ_VERSION)" github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

# The uncooperative HTTP/2 client of the overload benchmark and tests (tools/h2flood).
$(H2FLOOD): $(H2FLOOD_SOURCES) | go-available
	@echo "make: building h2flood into .tools/bin (first run only)"
	cd tools/h2flood && go build -o $(H2FLOOD) .

# grpc-go's authz engine as a server, for tests/e2e/test_authz_conformance.py (tools/authzcheck; grpc-go pinned in its go.mod).
$(AUTHZCHECK): $(AUTHZCHECK_SOURCES) | go-available
	@echo "make: building authzcheck into .tools/bin (first run only)"
	cd tools/authzcheck && go build -o $(AUTHZCHECK) .

# protoc plugins for clients/go (scripts/generate-clients.sh).
$(PROTOC_PLUGINS)/protoc-gen-go: | go-available
	@echo "make: building protoc-gen-go $(PROTOC_GEN_GO_VERSION) into $(PROTOC_PLUGINS) (first run only)"
	GOBIN=$(PROTOC_PLUGINS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(PROTOC_PLUGINS)/protoc-gen-go-grpc: | go-available
	@echo "make: building protoc-gen-go-grpc $(PROTOC_GEN_GO_GRPC_VERSION) into $(PROTOC_PLUGINS) (first run only)"
	GOBIN=$(PROTOC_PLUGINS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

go-plugins: $(PROTOC_PLUGINS)/protoc-gen-go $(PROTOC_PLUGINS)/protoc-gen-go-grpc ## Install the pinned protoc-gen-go and protoc-gen-go-grpc

# gofmt and go vet first: the example is what Go callers copy.
$(GO_EXAMPLE): $(GO_EXAMPLE_SOURCES) | go-available
	@unformatted=$$(cd clients/go && gofmt -l cmd); if [[ -n "$$unformatted" ]]; then \
	  echo "gofmt would change: $$unformatted (run gofmt -w in clients/go)" >&2; exit 1; fi
	cd clients/go && go vet ./... && go build -o $(GO_EXAMPLE) ./cmd/todo-example

go-example: $(GO_EXAMPLE) ## Build the Go example caller (clients/go) into .tools/bin/todo-go-example

# The gRPC web UI, pinned in tools/grpcui/go.mod (a `tool` directive: `go install
# grpcui@version` fails because the module proxy refuses grpcui's version list).
$(GRPCUI): tools/grpcui/go.mod tools/grpcui/go.sum | go-available
	@echo "make: building grpcui (pinned in tools/grpcui/go.mod) into .tools/bin (first run only, about 1 min)"
	cd tools/grpcui && go build -o $(GRPCUI) github.com/fullstorydev/grpcui/cmd/grpcui

go-available:
	@command -v go >/dev/null || { echo "make: Go is needed to build the pinned tools: install Go >= 1.26 (https://go.dev/dl) and put it on PATH" >&2; exit 2; }

# The fault proxy between the service and the database in tests/faults.
$(TOXIPROXY): | go-available
	@echo "make: building toxiproxy $(TOXIPROXY_VERSION) into $(dir $(TOXIPROXY)) (first run only, about 20 s)"
	GOBIN=$(dir $(TOXIPROXY)) go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	mv $(dir $(TOXIPROXY))server $(TOXIPROXY)

tools: $(GRPCURL) $(FERRETDB) $(GRPC_HEALTH_PROBE) $(GHZ) $(H2FLOOD) $(AUTHZCHECK) $(GRPCUI) $(KUSTOMIZE) $(TOXIPROXY) go-plugins $(GO_EXAMPLE) monitoring-tools ## Install the pinned Go tools (grpcurl, FerretDB test server, grpc-health-probe, ghz, h2flood, authzcheck, grpcui, kustomize, toxiproxy, protoc Go plugins, the Go example) into .tools, and the monitoring tools

# Debian's Prometheus, Alertmanager and blackbox exporter (promtool, the
# real-Prometheus test, the prober): installed with apt-get when missing and
# running as root (CI); without root, the packages are downloaded (apt-get
# download) and unpacked into .tools/debian; if even that fails, the message
# says what to install or set.
monitoring-tools: ## Install Prometheus, promtool, Alertmanager and the blackbox exporter (Debian packages) when missing
	@missing=""; for tool in $(PROMETHEUS) $(PROMTOOL) $(ALERTMANAGER) $(AMTOOL) $(BLACKBOX_EXPORTER); do \
	  [[ -x $$tool ]] || missing="$$missing $$tool"; done; \
	if [[ -n $$missing ]]; then \
	  if [[ $$(id -u) -ne 0 ]]; then \
	    echo "make: unpacking Debian's $(MONITORING_PACKAGES) into .tools/debian (no root: apt-get download, first run only)"; \
	    mkdir -p $(TOOLS)/debian/debs && (cd $(TOOLS)/debian/debs && apt-get download -qq $(MONITORING_PACKAGES)) \
	      && for deb in $(TOOLS)/debian/debs/*.deb; do dpkg-deb -x "$$deb" $(TOOLS)/debian; done \
	      || { echo "make: missing$$missing: run 'sudo apt-get install $(MONITORING_PACKAGES)', or set PROMETHEUS, PROMTOOL, ALERTMANAGER, AMTOOL and BLACKBOX_EXPORTER to your own builds" >&2; exit 1; }; \
	  else \
	    echo "make: installing Debian's $(MONITORING_PACKAGES) (first run only)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(MONITORING_PACKAGES) >/dev/null; \
	  fi; \
	fi

# Renders deploy/kubernetes/overlays/* for tests/deploy/test_kubernetes.py and `make kubernetes`.
$(KUSTOMIZE): | go-available
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

# MongoDB needs a page-token secret: yours (TODO_PAGE_TOKEN_SECRET[_FILE]), else a random one for this run.
run-mongo: install ## Serve on MongoDB at TODO_MONGODB_URI (default: the `make ferretdb` server)
	if [ -z "$${TODO_PAGE_TOKEN_SECRET:-}$${TODO_PAGE_TOKEN_SECRET_FILE:-}" ]; then \
	  echo "make: TODO_PAGE_TOKEN_SECRET is not set: a random one for this run (its page tokens end with it)"; \
	  export TODO_PAGE_TOKEN_SECRET="$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')"; fi; \
	TODO_GRPC_ADDRESS=$${TODO_GRPC_ADDRESS:-$(RUN_ADDRESS)} TODO_LOG_FORMAT=$${TODO_LOG_FORMAT:-console} \
	TODO_MONGODB_URI=$${TODO_MONGODB_URI:-mongodb://127.0.0.1:27017/} $(BIN)/python -m service

run: install ## Serve on the embedded in-memory store (127.0.0.1:50051)
	TODO_GRPC_ADDRESS=$${TODO_GRPC_ADDRESS:-$(RUN_ADDRESS)} TODO_LOG_FORMAT=$${TODO_LOG_FORMAT:-console} \
	$(BIN)/python -m service

docs: install ## Rewrite the generated parts of docs/ (the settings table of docs/configuration.md, from the code)
	$(BIN)/python -m tests.support.docs

generate: install go-plugins ## Regenerate generated/ and clients/ (Go stubs, service config) from protos/ (and re-copy third_party/googleapis)
	./scripts/vendor-googleapis.sh
	./scripts/generate.sh generated
	TODO_PROTOC_PLUGINS=$(PROTOC_PLUGINS) ./scripts/generate-clients.sh clients

# `make check` as root runs every step. As another user it runs every step but the
# image and then stops with one message saying so and what to run (scripts/image-preflight.sh);
# `make check-no-image` is that run without the message, and exits 0.
CHECKS_BUT_THE_IMAGE := install tools lint typecheck imports proto generated-check clients-generated-check hadolint kubernetes-scan rules test

check: $(CHECKS_BUT_THE_IMAGE) ## Every check and test, then the container image built and tested (the image step needs root)
	@./scripts/image-preflight.sh --after-checks
	@$(MAKE) --no-print-directory image-test

check-no-image: $(CHECKS_BUT_THE_IMAGE) ## Every check and test but the container image (no root needed)
	@echo "make: every check and test passed; the container image was not built (make image-test, as root)"

rules: monitoring-tools ## Prometheus rules checked and unit-tested (promtool), the Alertmanager configuration checked (amtool)
	$(PROMTOOL) check rules deploy/prometheus/rules/*.yaml
	$(PROMTOOL) test rules deploy/prometheus/tests/*.yaml
	$(PROMTOOL) check config deploy/prometheus/prometheus.yaml
	$(AMTOOL) check-config deploy/alertmanager/alertmanager.yaml
	$(BLACKBOX_EXPORTER) --config.check --config.file deploy/prometheus/blackbox.yaml

lint: install ## ruff lint and format check
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)

typecheck: install ## mypy --strict over service/, clients/python/todo_client/, tests/ and benchmarks/
	$(BIN)/mypy --strict service clients/python/todo_client tests benchmarks

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

clients-generated-check: install go-plugins ## Fail when clients/go/todo or clients/service_config.json is stale
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	TODO_PROTOC_PLUGINS=$(PROTOC_PLUGINS) ./scripts/generate-clients.sh "$$tmp"; \
	if ! diff -r "$$tmp/go/todo" clients/go/todo || ! diff "$$tmp/service_config.json" clients/service_config.json; then \
	  echo "clients/ is stale: run 'make generate' and commit the result" >&2; exit 1; fi

# Environment for the tests that run installed tools.
TEST_TOOLS := TODO_GRPCURL=$(GRPCURL) TODO_TEST_FERRETDB=$(FERRETDB) TODO_GRPC_HEALTH_PROBE=$(GRPC_HEALTH_PROBE) \
	TODO_GHZ=$(GHZ) TODO_H2FLOOD=$(H2FLOOD) TODO_AUTHZCHECK=$(AUTHZCHECK) TODO_GRPCUI=$(GRPCUI) TODO_UV=$(UV) TODO_GO_EXAMPLE=$(GO_EXAMPLE) TODO_KUSTOMIZE=$(KUSTOMIZE) \
	TODO_TOXIPROXY=$(TOXIPROXY) TODO_PROMETHEUS=$(PROMETHEUS) TODO_PROMTOOL=$(PROMTOOL) TODO_ALERTMANAGER=$(ALERTMANAGER) \
	TODO_BLACKBOX_EXPORTER=$(BLACKBOX_EXPORTER)

test: install tools ## pytest (unit, end-to-end, grpcurl, the client wheel and the Go client)
	$(TEST_TOOLS) $(BIN)/pytest --ignore=tests/image

# The quick loop while working: unit tests and tests against an in-process server on
# the in-memory store. Nothing is built with Go, nothing runs as a process of its own
# (tests marked `process`), no MongoDB-wire server (`mongo`): TODO_TEST_FAST makes a
# test that starts one anyway fail, asking for its mark. test_contract.py and
# test_kubernetes.py render the Kubernetes overlays with kustomize while they are collected.
test-fast: install ## Unit and in-process tests, under a minute: no Go tools, no processes, no MongoDB
	TODO_TEST_FAST=1 $(BIN)/pytest -q -m "not process and not mongo" --ignore=tests/image \
	  --ignore=tests/deploy/test_contract.py --ignore=tests/deploy/test_kubernetes.py

clients-check: install tools ## Only the caller tests: the todo-client wheel in a fresh venv, the Go client (both part of `test`)
	$(TEST_TOOLS) $(BIN)/pytest tests/client/test_distribution.py tests/client/test_go_client.py

image: ## Build the container image with podman, tagged IMAGE (as root; installs podman; stand-in base unless PYTHON_IMAGE is set)
	@./scripts/image-preflight.sh
	./scripts/image-build.sh $(IMAGE) "$(PYTHON_IMAGE)"

image-test: install ## Build the image, then test it as built: configuration, contents, size, a container run (tests/image; as root)
	@./scripts/image-preflight.sh
	base="$(PYTHON_IMAGE)"; if [[ -z $$base ]]; then base=$$(./scripts/image-base.sh | tail -1); fi; \
	./scripts/image-build.sh $(IMAGE) "$$base"; \
	TODO_IMAGE=$(IMAGE) TODO_IMAGE_BASE="$$base" $(BIN)/pytest tests/image

bench: install tools ## Benchmarks (not part of check; ~14 min): writes benchmarks/results/<date>.md and .json
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

faults-long: install tools ## The fault scenarios at full size (tests/faults; minutes, not part of check)
	$(TEST_TOOLS) TODO_FAULTS_SCALE=long $(BIN)/pytest tests/faults

bench-quick: install tools ## Smoke run of every benchmark section (~4 min; figures mean nothing): benchmarks/work/quick-results/
	$(BIN)/python -m benchmarks --quick $(BENCH_ARGS)

clean: ## Remove the virtualenv, the installed tools and caches (keeps .data, the `make ferretdb` store)
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
