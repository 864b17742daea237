#!/usr/bin/env bash
# `make profile`: a flame graph of a short write run, as the benchmarking
# guide's "Profiling" section describes, written to
# benchmarks/flamegraph_<timestamp>.svg.
#
#  1. Checks that perf can sample here (`perf stat -e task-clock true`); if
#     not, says why in one line and stops (exit 0: nothing is broken, the
#     machine just cannot profile).
#  2. Installs inferno (inferno-collapse-perf, inferno-flamegraph) into
#     $TOOLS_DIR the first time.
#  3. Builds the harness (`make bench-build`), runs write_benchmark for
#     PROFILE_SECONDS under `perf record`, and folds the stacks into an SVG.
#
# The run takes the guide's variables (STORE, FSYNC, THREADS, ENTRY_SIZE,
# BACKEND, ...); unset ones default to walrus, no-fsync (the CPU path; a
# sync-each profile is mostly waiting on the disk) and 4 threads.
# PROFILE_FREQ (Hz, default 499) and PROFILE_CALL_GRAPH (dwarf, or fp for
# smaller files and shallower stacks) tune perf.
set -euo pipefail

: "${BENCH_BIN:?BENCH_BIN (the release dir) is set by the Makefile}"
: "${TOOLS_DIR:?TOOLS_DIR is set by the Makefile}"
MAKE=${MAKE:-make}
CARGO=${CARGO:-cargo}
out_dir=${PROFILE_OUT:-benchmarks}
work=${PROFILE_WORK:-$(dirname "$BENCH_BIN")/profile}
seconds=${PROFILE_SECONDS:-5}
freq=${PROFILE_FREQ:-499}
call_graph=${PROFILE_CALL_GRAPH:-dwarf}

say() { echo "make profile: $*"; }

# 1. Can perf sample on this machine?
if ! command -v perf >/dev/null 2>&1; then
    say "perf is not installed, so no flame graph (Debian: apt-get install linux-perf; Ubuntu: linux-tools-\$(uname -r))"
    exit 0
fi
if ! probe=$(perf stat -e task-clock true 2>&1) || grep -qiE 'not supported|not counted|permission|denied' <<<"$probe"; then
    why=$({ grep -iE 'not supported|not counted|permission|denied|not found|fail' <<<"$probe" \
        || grep -E '[[:alnum:]]' <<<"$probe"; } | head -n1 | sed 's/^[[:space:]]*//; s/[[:space:]]\{1,\}/ /g' || true)
    say "perf cannot sample here (${why:-no reason given}; kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?'), and VMs often hide perf events), so no flame graph"
    exit 0
fi

# 2. The SVG tools, installed once into the tool dir (never by `make test`).
export PATH="$TOOLS_DIR/bin:$PATH"
if ! command -v inferno-collapse-perf >/dev/null 2>&1 || ! command -v inferno-flamegraph >/dev/null 2>&1; then
    say "installing inferno into $TOOLS_DIR (once; a few minutes)"
    install=("$CARGO" install inferno --bin inferno-collapse-perf --bin inferno-flamegraph
        --root "$TOOLS_DIR" --target-dir "$TOOLS_DIR/build" --quiet)
    "${install[@]}" --locked || "${install[@]}"
    rm -rf "$TOOLS_DIR/build" # the binaries are in $TOOLS_DIR/bin; the build is 100s of MiB
fi

# 3. Build, record, fold.
"$MAKE" --no-print-directory bench-build
bin="$BENCH_BIN/write_benchmark"
mkdir -p "$work" "$out_dir"
data="$work/perf.data"

# A default only where the guide's variable and its twin are both unset
# (the harness refuses two spellings that disagree).
default() { # default VALUE NAME [TWIN]
    local value=$1 name=$2 twin=${3:-}
    if [ -z "${!name:-}" ] && { [ -z "$twin" ] || [ -z "${!twin:-}" ]; }; then
        export "$name=$value"
    fi
}
default walrus STORE STORES
default no-fsync FSYNC WALRUS_FSYNC
default 4 THREADS WALRUS_THREADS
export WALRUS_DURATION="${seconds}s"
# Its CSV is not a result: keep it out of benchmarks/, where show-writes
# would pick it up as the newest.
export WALRUS_OUT_DIR="$work"

what="store=${STORE:-$STORES} fsync=${FSYNC:-$WALRUS_FSYNC} threads=${THREADS:-$WALRUS_THREADS}"
say "recording write_benchmark for ${seconds}s ($what) with perf record -F $freq --call-graph $call_graph"
perf record -q -F "$freq" --call-graph "$call_graph" -o "$data" -- "$bin"

ts=$(date +%Y%m%d_%H%M%S)
svg="$out_dir/flamegraph_$ts.svg"
say "folding stacks (perf script) into $svg"
# --no-inline: perf's inline resolution runs addr2line per address and can
# take many minutes; the frames without it are the functions themselves.
perf script -i "$data" --no-inline 2>/dev/null \
    | inferno-collapse-perf >"$work/stacks.folded"
inferno-flamegraph --title "write_benchmark ($what, ${seconds}s)" \
    <"$work/stacks.folded" >"$svg"
say "wrote $svg (perf data: $data; \`perf report -i $data\` to browse it)"
