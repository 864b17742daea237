#!/usr/bin/env bash
# After `make bench-build`: the benchmarking guide's profiling recipes name
# `./target/release/write_benchmark`. When CARGO_TARGET_DIR puts the build
# elsewhere, this links every harness binary into ./target/release so that
# they work as written. Nothing to do when the target dir is ./target.
#
# usage: link-bins.sh <release dir of the build> [harness Cargo.toml]
set -euo pipefail

real=${1:?usage: link-bins.sh <release dir> [Cargo.toml]}
manifest=${2:-harness/Cargo.toml}
local_dir=target/release

real_abs=$(realpath -m "$real")
local_abs=$(realpath -m "$local_dir")
[ "$real_abs" = "$local_abs" ] && exit 0

# The harness's [[bin]] names, in the manifest's order.
mapfile -t bins < <(awk '
    /^\[\[bin\]\]/ { in_bin = 1; next }
    /^\[/ { in_bin = 0 }
    in_bin && /^name *=/ { gsub(/^name *= *"|".*$/, ""); print }
' "$manifest")
[ "${#bins[@]}" -gt 0 ] || { echo "link-bins: no [[bin]] in $manifest" >&2; exit 1; }

mkdir -p "$local_dir"
linked=()
for bin in "${bins[@]}"; do
    if [ -x "$real_abs/$bin" ]; then
        ln -sfn "$real_abs/$bin" "$local_dir/$bin"
        linked+=("$bin")
    fi
done
[ "${#linked[@]}" -gt 0 ] || exit 0
names=$(IFS=,; echo "${linked[*]}")
if [ "${#linked[@]}" -gt 1 ]; then names="{$names}"; fi
echo "linked $local_dir/$names -> $real_abs/ (CARGO_TARGET_DIR is outside the clone)"
