#!/usr/bin/env bash
# Runs install-deps.sh's libclang detection against fake library directories:
# it must report libclang-dev missing where only look-alikes exist, and
# present where a loadable library with clang's C API exists. Run by `make test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A shared library that exports `symbol`, built with the machine's C compiler.
make_lib() { # path symbol
  echo "int $2(void) { return 0; }" >"$work/src.c"
  cc -shared -fPIC -o "$1" "$work/src.c"
}

mkdir -p "$work/lookalikes" "$work/real" "$work/versioned" "$work/empty"
make_lib "$work/lookalikes/libclang-cpp.so.14" clang_createIndex   # right symbol, wrong library
make_lib "$work/lookalikes/libclangBasic.so" clang_createIndex     # neither pattern
echo 'not an ELF file' >"$work/lookalikes/libclang.so"              # right name, not loadable
make_lib "$work/lookalikes/libclang.so.1" clang_other_symbol        # loads, lacks the C API
make_lib "$work/real/libclang.so" clang_createIndex
make_lib "$work/versioned/libclang-14.so.1" clang_createIndex

fails=0
expect() { # want(present|missing) dirs
  local got=present
  LIBCLANG_SEARCH_DIRS="$2" bash "$here/install-deps.sh" --check build >/dev/null 2>&1 || got=missing
  if [ "$got" = "$1" ]; then
    echo "ok: libclang $got in ${2//$work\//}"
  else
    echo "FAIL: libclang $got in ${2//$work\//}, expected $1" >&2
    fails=$((fails + 1))
  fi
}
expect missing "$work/empty"
expect missing "$work/lookalikes"
expect missing "$work/does-not-exist"
expect present "$work/real"
expect present "$work/versioned"
expect present "$work/lookalikes:$work/real"
[ "$fails" -eq 0 ]
