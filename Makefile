# Herald's developer commands. `make run` and `make test` are the two that matter.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run test test-rust lint fmt bench sqlx-prepare check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## build and start the embedded `herald` (one process, http://127.0.0.1:8080)
	$(CARGO) run --release -p herald

test: test-rust ## the whole test suite (needs Redis and Postgres; see README)

test-rust: ## Rust tests of every crate, against real Redis and Postgres
	$(CARGO) nextest run --workspace --no-fail-fast

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
