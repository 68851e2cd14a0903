#!/usr/bin/env bash
# setup-peers.sh - what `make bench` needs beyond `make build`, into .venv:
# the Python peers of bench/requirements.txt (current releases from PyPI;
# reinstalled only when that file changes: a stamp holds its hash) and the
# cormorant package built from this tree (tests/python/conftest.py's
# ensure_installed: only when a source file changed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$ROOT/.venv/bin/python
REQS=$ROOT/bench/requirements.txt
STAMP=$ROOT/.venv/.bench-requirements.sha256

want=$(sha256sum "$REQS" | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "setup-peers: installing bench/requirements.txt into .venv" >&2
    "$PY" -m pip install -q --disable-pip-version-check --upgrade -r "$REQS"
    echo "$want" >"$STAMP"
fi

"$PY" - "$ROOT" <<'PY'
import importlib.util, sys
root = sys.argv[1]
spec = importlib.util.spec_from_file_location("corm_py_conftest", f"{root}/tests/python/conftest.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)          # builds and installs cormorant when its sources changed
if mod.BUILD_ERROR:
    sys.stderr.write("setup-peers: building the cormorant package failed:\n" + mod.BUILD_ERROR[-4000:])
    sys.exit(1)
PY
