# Every user-facing command of the project. `make test` is the one gate CI runs.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test fmt fmt-check clippy unit deps help

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

deps: ## install system packages the build needs (libclang for the rocksdb crate)
	@bash scripts/install-deps.sh

fmt: ## format the workspace
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

unit: deps
	$(CARGO) test --workspace --all-features

test: fmt-check clippy unit ## fmt check, clippy -D warnings, every test (engine, adapters, harness, crash suites)
