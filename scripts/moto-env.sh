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
TOOL="moto-env"
SERVER="$VENV/bin/moto_server"
source "$ROOT/scripts/lib/venv.sh"

is_ready() {
  [[ -x "$VENV/bin/python" && -x "$SERVER" ]] || return 1
  [[ "$(installed_version moto)" == "$MOTO_VERSION" ]] || return 1
  # The server's own imports (flask, werkzeug, the EC2 backend) must load, not just the package.
  "$VENV/bin/python" -c 'import moto.server, moto.ec2' >/dev/null 2>&1 || return 1
}

ensure_installed is_ready "moto[server]==$MOTO_VERSION"
echo "MOTO_SERVER=$SERVER"
