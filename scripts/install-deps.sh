#!/usr/bin/env bash
# Installs the system packages a make target needs, when they are missing.
# Idempotent and non-interactive; each argument names a group:
#   build   (the default) libclang (bindgen for the rocksdb crate) and a C++ compiler
#   report  chromium and a font, for the report pages' render check (make test-report)
#   venv    python3-venv, for a python3 whose venv module lacks ensurepip
#
# Every check looks for the thing the build really uses, never for a name that
# merely resembles it: a fresh Debian machine has libclang-cpp.so.14 (the C++
# API, from libclang-cpp14), which bindgen cannot use, and no libclang.so.
#
# `install-deps.sh --check GROUP...` only reports: it prints what is missing,
# one package per line, and exits 1 when anything is (scripts/test-install-deps.sh
# runs it against fake library directories). LIBCLANG_SEARCH_DIRS (colon
# separated) replaces the directories searched for libclang.
set -euo pipefail

check_only=0
if [ "${1:-}" = "--check" ]; then
  check_only=1
  shift
fi

# The directories clang-sys searches at build time, in its order of preference.
libclang_dirs() {
  if [ -n "${LIBCLANG_SEARCH_DIRS:-}" ]; then
    tr ':' '\n' <<<"$LIBCLANG_SEARCH_DIRS"
    return
  fi
  [ -n "${LIBCLANG_PATH:-}" ] && echo "$LIBCLANG_PATH"
  command -v llvm-config >/dev/null 2>&1 && llvm-config --libdir 2>/dev/null
  ls -d /usr/lib/llvm-*/lib /usr/local/llvm*/lib 2>/dev/null || true
  echo /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64 /lib64 /usr/lib /usr/local/lib | tr ' ' '\n'
}

# True when some directory holds a libclang that loads and exports the C API
# bindgen calls. libclang-cpp* is a different library and never counts.
have_libclang() {
  local dir lib
  while IFS= read -r dir; do
    [ -d "$dir" ] || continue
    for lib in "$dir"/libclang.so "$dir"/libclang.so.* "$dir"/libclang-[0-9]*.so*; do
      [ -f "$lib" ] || continue
      if python3 - "$lib" <<'PY' >/dev/null 2>&1; then
import ctypes, sys
ctypes.CDLL(sys.argv[1]).clang_createIndex
PY
        return 0
      fi
    done
  done < <(libclang_dirs)
  return 1
}

need=()
for group in "${@:-build}"; do
  case "$group" in
    build)
      have_libclang || need+=(libclang-dev)
      command -v g++ >/dev/null 2>&1 || need+=(g++)
      ;;
    report)
      command -v chromium >/dev/null 2>&1 || need+=(chromium)
      fc-list 2>/dev/null | grep -q . || need+=(fonts-dejavu-core)
      ;;
    venv)
      python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
      ;;
    *)
      echo "install-deps.sh: unknown group '$group' (build, report, venv)" >&2
      exit 2
      ;;
  esac
done
if [ "$check_only" -eq 1 ]; then
  [ ${#need[@]} -eq 0 ] && exit 0
  printf '%s\n' "${need[@]}"
  exit 1
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  # Verify the install gave what the check looks for, so a package rename
  # fails here with a clear message and not 10 minutes later in bindgen.
  if ! bash "$0" --check "${@:-build}" >/dev/null; then
    echo "install-deps.sh: still missing after install: $(bash "$0" --check "${@:-build}" | tr '\n' ' ')" >&2
    exit 1
  fi
fi
