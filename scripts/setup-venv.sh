#!/usr/bin/env bash
# Makes the virtualenv the report scripts run in (make show-*, make
# test-report) and installs their pinned packages into it, so no one needs a
# manual pip install. Usage: setup-venv.sh VENV REQUIREMENTS
set -euo pipefail
venv=${1:?usage: setup-venv.sh VENV REQUIREMENTS}
requirements=${2:?usage: setup-venv.sh VENV REQUIREMENTS}
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  # A half-made venv (say, from a python3 without ensurepip) is made anew.
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    rm -rf "$venv"
    bash "$(dirname "$0")/install-deps.sh" venv
    python3 -m venv "$venv"
  fi
fi
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q -r "$requirements"
