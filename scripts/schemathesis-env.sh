#!/usr/bin/env bash
# Install schemathesis (API fuzzing against the OpenAPI document, from PyPI)
# into a project-local venv and print where its CLI is:
#
#   SCHEMATHESIS=<abs path>    the `schemathesis` command (`schemathesis run <url>/openapi.json ...`)
#
# Idempotent: if the pinned version is already installed and runs, it only
# prints the path. Usage: eval "$(scripts/schemathesis-env.sh)".
# Diagnostics go to stderr; stdout carries only the KEY=VALUE line.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.schemathesis-venv"
CLI="$VENV/bin/schemathesis"
PYTHON="${PYTHON:-}"

log() { echo "schemathesis-env: $*" >&2; }

pick_python() {
  if [[ -n "$PYTHON" ]]; then echo "$PYTHON"; return; fi
  for c in python3 python; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
  done
  log "no python3 found on PATH (set PYTHON=...)"; exit 1
}

installed_version() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version, PackageNotFoundError
try:
    print(version("schemathesis"))
except PackageNotFoundError:
    pass
PY
}

is_ready() {
  [[ -x "$VENV/bin/python" && -x "$CLI" ]] || return 1
  [[ "$(installed_version)" == "$SCHEMATHESIS_VERSION" ]] || return 1
  "$CLI" --version >/dev/null 2>&1 || return 1
}

if ! is_ready; then
  start=$SECONDS
  if [[ ! -x "$VENV/bin/python" ]]; then
    py="$(pick_python)"
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  log "installing schemathesis==$SCHEMATHESIS_VERSION"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
  if ! is_ready; then
    log "install finished but $CLI is missing or does not run"
    exit 1
  fi
  log "installed in $((SECONDS - start))s"
fi

echo "SCHEMATHESIS=$CLI"
