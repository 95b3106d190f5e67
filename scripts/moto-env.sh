#!/usr/bin/env bash
# Install moto's EC2 API server (PyPI `moto[server]`) into a project-local venv, for the EC2 driver
# tests, and print where it is:
#
#   MOTO_SERVER=<abs path>    `moto_server -H 127.0.0.1 -p <port>`
#
# A venv of its own, not .temporal-venv: that one is part of what `npm start` runs, this one only
# serves the tests. Idempotent: when the pinned version is installed and runs, it only prints the
# path. Diagnostics go to stderr; stdout carries only the KEY=VALUE line.
set -euo pipefail

MOTO_VERSION="5.2.5"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.moto-venv"
SERVER="$VENV/bin/moto_server"
PYTHON="${PYTHON:-}"

log() { echo "moto-env: $*" >&2; }

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
    print(version("moto"))
except PackageNotFoundError:
    pass
PY
}

is_ready() {
  [[ -x "$VENV/bin/python" && -x "$SERVER" ]] || return 1
  [[ "$(installed_version)" == "$MOTO_VERSION" ]] || return 1
  # The server's own imports (flask, werkzeug, the EC2 backend) must load, not just the package.
  "$VENV/bin/python" -c 'import moto.server, moto.ec2' >/dev/null 2>&1 || return 1
}

if ! is_ready; then
  start=$SECONDS
  if [[ ! -x "$VENV/bin/python" ]]; then
    py="$(pick_python)"
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  log "installing moto[server]==$MOTO_VERSION"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  if ! is_ready; then
    log "install finished but $SERVER is missing or moto does not import"
    exit 1
  fi
  log "installed in $((SECONDS - start))s"
fi

echo "MOTO_SERVER=$SERVER"
