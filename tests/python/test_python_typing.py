"""Type checking: pyright and mypy on tests/python/typing_check.py (the
installed package, with its py.typed and _core.pyi). Skipped when a
checker is not installed (scripts/requirements-dev.txt has both)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CHECK = HERE / "typing_check.py"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = BIN / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -r scripts/requirements-dev.txt)")
    return found


def _expect_clean(proc: subprocess.CompletedProcess, what: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} found problems:\n{out}"


def test_pyright(tmp_path):
    pyright = _tool("pyright")
    # Unneeded `type: ignore`s are errors: each marks an error that must be found.
    shutil.copy(CHECK, tmp_path / CHECK.name)
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({
        "include": [CHECK.name],
        "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}",
        "reportUnnecessaryTypeIgnoreComment": "error",
        "enableTypeIgnoreComments": True,
    }))
    try:
        proc = subprocess.run([pyright, "--pythonpath", sys.executable, "-p", str(tmp_path)],
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("pyright did not finish (it may be fetching node)")
    out = proc.stdout + proc.stderr
    if not re.search(r"\d+ errors?, \d+ warnings?", out):
        # The pip package fetches pyright itself on first use: offline, it cannot.
        pytest.skip(f"pyright could not run: {out[-500:]}")
    _expect_clean(proc, "pyright")
    assert 'Type of "users" is "list[User]"' in out
    assert 'Type of "Account.name" is "Column[str]"' in out


def test_mypy(tmp_path):
    mypy = _tool("mypy")
    cfg = tmp_path / "mypy.ini"
    cfg.write_text("[mypy]\nwarn_unused_ignores = True\nstrict_optional = True\n")
    proc = subprocess.run(
        [mypy, "--config-file", str(cfg), "--cache-dir", str(tmp_path / "cache"),
         "--python-executable", sys.executable, str(CHECK)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    _expect_clean(proc, "mypy")
    assert 'Revealed type is "builtins.list[typing_check.User]"' in proc.stdout or \
        'Revealed type is "list[typing_check.User]"' in proc.stdout
    assert 'Revealed type is "cormorant._core.Column[builtins.str]"' in proc.stdout or \
        'Revealed type is "cormorant._core.Column[str]"' in proc.stdout


def test_package_passes_mypy_strict(tmp_path):
    """The package's own code (python/cormorant) under mypy --strict."""
    mypy = _tool("mypy")
    pkg = HERE.parents[1] / "python" / "cormorant"
    proc = subprocess.run(
        [mypy, "--strict", "--cache-dir", str(tmp_path / "cache"),
         "--python-executable", sys.executable, str(pkg)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
