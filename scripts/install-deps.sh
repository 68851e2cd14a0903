#!/usr/bin/env bash
# install-deps.sh - install what building and testing Cormorant needs.
#
# Idempotent and quick when nothing is missing: Debian packages are checked
# with dpkg-query (no apt-get, no network), and the .venv is rebuilt only when
# scripts/requirements-dev.txt or the Python interpreter changed (a stamp
# file holds their hash). The system PostgreSQL service is never started by
# an install here; tests use scripts/pgtmp.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
REQS=$ROOT/scripts/requirements-dev.txt
STAMP=$VENV/.requirements.sha256

log() { echo "install-deps: $*" >&2; }

packages=(
    build-essential cmake pkg-config git
    libpq-dev
    postgresql-15          # server binaries for scripts/pgtmp
    valgrind
    clang libclang-rt-14-dev   # fuzzing
    lua5.4 liblua5.4-dev luajit libluajit-5.1-dev lua-cjson lua-cqueues
    lua-sql-postgres       # LuaSQL, the Lua peer of make bench (5.1 build loads in LuaJIT)
    python3
    iproute2 procps util-linux
)

# python3 may be another build (pyenv here): Debian's venv and headers are
# only needed when that python3 lacks them.
python_ok() {
    command -v python3 >/dev/null 2>&1 || return 1
    python3 - <<'PY' 2>/dev/null
import os, sys, sysconfig, venv, ensurepip
inc = sysconfig.get_paths()["include"]
sys.exit(0 if os.path.exists(os.path.join(inc, "Python.h")) else 1)
PY
}

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
if ! python_ok; then
    for p in python3-venv python3-dev; do
        installed "$p" || missing+=("$p")
    done
fi

if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { log "not root and no sudo: install ${missing[*]} yourself"; exit 1; }
        SUDO=(sudo)
    fi
    # Keep package scripts from starting services (Debian's postgresql
    # creates a cluster; it must not start it). policy-rc.d exit 101 = deny.
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 0755 "$policy"
        made_policy=1
    fi
    cleanup_policy() { if [ "$made_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
    trap cleanup_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
    cleanup_policy
    trap - EXIT
fi

# ---- Python venv with the test tools ----
want=$( { sha256sum "$REQS" | cut -d' ' -f1; python3 -c 'import sys; print(sys.version)'; } \
        | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && "$VENV/bin/python" -c 'import pytest, cffi' 2>/dev/null; then
    exit 0
fi
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "removing a broken $VENV"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
log "installing $(basename "$REQS") into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
echo "$want" >"$STAMP"
