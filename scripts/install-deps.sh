#!/usr/bin/env bash
# Installs the system packages the workspace needs, when they are missing:
# libclang (bindgen for the rocksdb crate) and a C++ compiler.
set -euo pipefail
need=()
ldconfig -p 2>/dev/null | grep -q 'libclang' || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
