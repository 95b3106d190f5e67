#!/usr/bin/env bash
# Install schemathesis (API fuzzing against the OpenAPI document, from PyPI) into a project-local
# venv and print where its CLI is:
#
#   SCHEMATHESIS=<abs path>    the `schemathesis` command (`schemathesis run <url>/openapi.json ...`)
#
# Idempotent: if the pinned version is already installed and runs, it only prints the path.
# Usage: eval "$(scripts/schemathesis-env.sh)". Diagnostics go to stderr; stdout carries only the
# KEY=VALUE line.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.schemathesis-venv"
TOOL="schemathesis-env"
CLI="$VENV/bin/schemathesis"
source "$ROOT/scripts/lib/venv.sh"

is_ready() {
  [[ -x "$VENV/bin/python" && -x "$CLI" ]] || return 1
  [[ "$(installed_version schemathesis)" == "$SCHEMATHESIS_VERSION" ]] || return 1
  "$CLI" --version >/dev/null 2>&1 || return 1
}

ensure_installed is_ready "schemathesis==$SCHEMATHESIS_VERSION"
echo "SCHEMATHESIS=$CLI"
