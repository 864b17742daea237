#!/usr/bin/env bash
# Installs the system packages a make target needs, when they are missing.
# Idempotent and non-interactive; each argument names a group:
#   build   (the default) libclang (bindgen for the rocksdb crate) and a C++ compiler
#   report  chromium and a font, for the report pages' render check (make test-report)
#   venv    python3-venv, for a python3 whose venv module lacks ensurepip
set -euo pipefail
need=()
for group in "${@:-build}"; do
  case "$group" in
    build)
      ldconfig -p 2>/dev/null | grep -q 'libclang' || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
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
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
