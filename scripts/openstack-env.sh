#!/usr/bin/env bash
# Install a real OpenStack Compute API (PyPI `nova`, with its functional-test fixtures, Placement and
# Keystone) into a project-local venv, for the OpenStack driver tests, and print where it is:
#
#   OPENSTACK_PYTHON=<abs path>    the venv's python; runs test/support/openstack_cloud.py
#
# A venv of its own: it is large (~400 MB) and only the tests use it. Idempotent: when the pinned
# versions are installed and import, it only prints the path. Diagnostics go to stderr; stdout
# carries only the KEY=VALUE line.
set -euo pipefail

NOVA_VERSION="34.0.0"
PLACEMENT_VERSION="16.0.0"
KEYSTONE_VERSION="30.0.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.openstack-venv"
TOOL="openstack-env"
source "$ROOT/scripts/lib/venv.sh"

is_ready() {
  [[ -x "$VENV/bin/python" ]] || return 1
  [[ "$(installed_version nova)" == "$NOVA_VERSION" ]] || return 1
  [[ "$(installed_version keystone)" == "$KEYSTONE_VERSION" ]] || return 1
  # Nova's functional fixtures and the WSGI apps must load, not just the packages.
  "$VENV/bin/python" -c 'import nova.tests.functional.integrated_helpers, placement.wsgi, keystone.server.wsgi' \
    >/dev/null 2>&1 || return 1
}

# SQLAlchemy 2.1 deprecates noload(), which Nova still uses (warnings become errors in its fixtures).
ensure_installed is_ready \
  "nova==$NOVA_VERSION" "openstack-placement==$PLACEMENT_VERSION" "keystone==$KEYSTONE_VERSION" \
  "SQLAlchemy<2.1" oslotest testtools wsgi-intercept requests-mock
echo "OPENSTACK_PYTHON=$VENV/bin/python"
