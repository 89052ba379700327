# Herald's developer commands. `make run` and `make test` are the two that matter.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run test test-deps test-rust test-autobahn test-sdk test-dev test-web web screenshots lint fmt bench sqlx-prepare check

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: web ## build the web client and start the embedded `herald` (one process, http://127.0.0.1:8080)
	$(CARGO) run --release -p herald

WEB_MODULES := web/node_modules/.package-lock.json

$(WEB_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --ignore-scripts

web: $(WEB_MODULES) ## build the web client into web/dist (TypeScript bundled by esbuild)
	cd web && npm run build

test: test-deps test-rust test-autobahn test-sdk test-dev test-web ## the whole test suite; installs or starts what it needs first (see README)

test-deps: ## install or start what the tests need when missing: Redis, Postgres, cargo-nextest, Chromium, nginx
	deploy/test-deps.sh

test-rust: web ## Rust tests of every crate (after building the web client, which the binaries embed), against real Redis and Postgres
	$(CARGO) nextest run --workspace --no-fail-fast

test-autobahn: ## Autobahn|Testsuite sections 1-10 (AB_DEFLATE=1: and a permessage-deflate subset of 12-13) against the gateway's /ws/echo (installs the suite into /tmp/autobahn-venv when missing)
	CARGO="$(CARGO)" tests/autobahn/gateway.sh

SDK_MODULES := tests/sdk/node_modules/.package-lock.json

$(SDK_MODULES): tests/sdk/package.json tests/sdk/package-lock.json
	cd tests/sdk && npm ci --no-audit --no-fund --ignore-scripts

test-sdk: $(SDK_MODULES) ## the npm centrifuge SDK against real herald-auth and herald-gateway (tests/sdk, Node 20)
	$(CARGO) build -p herald-auth -p herald-gateway --bins
	cd tests/sdk && node --test --test-concurrency=1

test-dev: $(SDK_MODULES) ## `make dev` end to end: deploy/dev.sh on free ports, SDK client, POST /tasks, notification, stop (tests/dev)
	@# The same build as deploy/dev.sh's, so the script's own cargo build is a no-op.
	$(CARGO) build -p herald-auth -p herald-tasks-api -p herald-notifier -p herald-gateway
	node --test tests/dev/

test-web: $(WEB_MODULES) ## the web client in Debian's Chromium against a real `herald` (web/tests; /usr/bin/chromium)
	$(CARGO) build -p herald
	cd web && npm run check && npm run build && npm test

screenshots: $(WEB_MODULES) ## refresh docs/screenshots/ (the main screens, from a real `herald` in Chromium)
	$(CARGO) build -p herald
	cd web && npm run build && node tests/screenshots.mjs

lint: ## formatting and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

bench: ## criterion benchmarks (see docs/benchmarks.md)
	$(CARGO) bench -p herald-broker

sqlx-prepare: ## refresh the committed offline query data in .sqlx/ (needs Postgres and sqlx-cli)
	$(CARGO) sqlx prepare --workspace -- --all-targets

check: ## type-check everything quickly
	$(CARGO) check --workspace --all-targets

# --- Distributed mode and deploy files (deploy/, k8s/, docker-compose.yml) -----------------
# The checks install their own tools into .venv (pinned in deploy/requirements.txt); no
# Docker engine or cluster is needed.
DEPLOY_VENV ?= .venv
DEPLOY_TOOLS := $(DEPLOY_VENV)/.herald-deploy-tools
KUBECTL ?= $(DEPLOY_VENV)/bin/kubectl
K8S_VERSION ?= 1.32.0
K8S_OVERLAYS := dev prod
HERALD_IMAGE ?= herald:dev

.PHONY: dev deploy-tools deploy-check k8s-check compose-check image

dev: ## the four services as separate processes on local Redis and Postgres (DEV_ARGS=--release)
	deploy/dev.sh $(DEV_ARGS)

$(DEPLOY_TOOLS): deploy/requirements.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install -q --disable-pip-version-check -r deploy/requirements.txt
	deploy/fetch-debian-tools.sh $(DEPLOY_VENV)/opt
	touch $@

deploy-tools: $(DEPLOY_TOOLS) ## install the deploy checkers into .venv

deploy-check: k8s-check compose-check ## every check of the deploy files

k8s-check: $(DEPLOY_TOOLS) ## render each k8s overlay; schema-validate (strict), yamllint, routing/probe/drain checks
	@set -euo pipefail; out="$$(mktemp -d)"; trap 'rm -rf "$$out"' EXIT; \
	for overlay in $(K8S_OVERLAYS); do \
	  echo "== kubectl kustomize k8s/overlays/$$overlay | kubernetes-validate --strict"; \
	  $(KUBECTL) kustomize "k8s/overlays/$$overlay" > "$$out/$$overlay.yaml"; \
	  $(DEPLOY_VENV)/bin/kubernetes-validate --strict --quiet -k $(K8S_VERSION) "$$out/$$overlay.yaml"; \
	  echo "   $$(grep -c '^kind:' "$$out/$$overlay.yaml") resources valid against Kubernetes $(K8S_VERSION)"; \
	done; \
	echo "== kubernetes-validate --strict k8s/overlays/prod/secrets.example.yaml"; \
	$(DEPLOY_VENV)/bin/kubernetes-validate --strict --quiet -k $(K8S_VERSION) k8s/overlays/prod/secrets.example.yaml; \
	echo "== yamllint k8s/"; \
	$(DEPLOY_VENV)/bin/yamllint -s -c deploy/yamllint.yaml k8s/; \
	echo "== deploy/check.py k8s"; \
	$(DEPLOY_VENV)/bin/python deploy/check.py k8s $(foreach o,$(K8S_OVERLAYS),"$$out/$(o).yaml")

compose-check: $(DEPLOY_TOOLS) ## compose schema, hadolint, yamllint, Prometheus/Grafana/collector/nginx configs
	@set -euo pipefail; \
	echo "== check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml"; \
	$(DEPLOY_VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml; \
	echo "== hadolint deploy/Dockerfile"; \
	$(DEPLOY_VENV)/bin/hadolint deploy/Dockerfile; \
	echo "== yamllint docker-compose.yml deploy/"; \
	$(DEPLOY_VENV)/bin/yamllint -s -c deploy/yamllint.yaml docker-compose.yml deploy/; \
	echo "== bash -n deploy/*.sh"; \
	for script in deploy/*.sh; do bash -n "$$script"; done; \
	echo "== deploy/check.py compose"; \
	PATH="$(CURDIR)/$(DEPLOY_VENV)/opt/usr/sbin:$(CURDIR)/$(DEPLOY_VENV)/opt/usr/bin:$$PATH" \
	  $(DEPLOY_VENV)/bin/python deploy/check.py compose

image: ## build the runtime image (needs a Docker engine): docker build -f deploy/Dockerfile
	docker build -f deploy/Dockerfile -t $(HERALD_IMAGE) .
