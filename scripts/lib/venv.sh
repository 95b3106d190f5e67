# Shared by the scripts/*-env.sh installers (sourced, not run): a project-local venv holding pinned
# PyPI tools. The caller sets VENV (the venv's folder) and TOOL (the prefix of its messages) and
# defines a function that says whether the install is complete and runs.

log() { echo "$TOOL: $*" >&2; }

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  for c in python3 python; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
  done
  log "no python3 found on PATH (set PYTHON=...)"; exit 1
}

# The installed version of a distribution in the venv, or nothing.
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

# Installs the requirements unless <ready-check> already passes; fails if it does not pass after.
ensure_installed() { # <ready-check function> <pip requirement>...
  local ready="$1"; shift
  "$ready" && return 0
  local start=$SECONDS
  if [[ ! -x "$VENV/bin/python" ]]; then
    local py
    py="$(pick_python)"
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  log "installing $*"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  if ! "$ready"; then
    log "install finished but the tools are missing or do not run (venv $VENV)"
    exit 1
  fi
  log "installed in $((SECONDS - start))s"
}
