"""Fixtures for the Python package's tests.

Importing this file makes sure the package in this tree is built and
installed into the running interpreter (the .venv): `pip install
--no-build-isolation --no-deps --no-index .`, run only when a source file
changed since the last install (a hash in the venv), so it works offline
and costs nothing on a second run. It happens at import, before the test
modules are collected, because they `import cormorant` at the top.

Fixtures:
  url      the database URL (tests/conftest.py's database_url)
  run      run(coro) -> its result, on a fresh event loop (asyncio.run)
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The tree to build from: this checkout, unless CORM_TEST_SOURCE_ROOT names
# another (a clean export, while colleagues' half-done engine files sit in a
# shared work tree).
SOURCE_ROOT = Path(os.environ.get("CORM_TEST_SOURCE_ROOT") or ROOT).resolve()
SOURCES = (
    "setup.py",
    "pyproject.toml",
    "libcore/include/*.h",
    "libcore/src/*.c",
    "libcore/src/*.h",
    "bindings/python/*.c",
    "bindings/python/*.h",
    "python/cormorant/*.py",
    "python/cormorant/*.pyi",
    "python/cormorant/py.typed",
)


def source_hash() -> str:
    h = hashlib.sha256(sys.version.encode())
    for pattern in SOURCES:
        for p in sorted(SOURCE_ROOT.glob(pattern)):
            if p.is_file():
                h.update(str(p.relative_to(SOURCE_ROOT)).encode() + b"\0")
                h.update(p.read_bytes())
    return h.hexdigest()


def ensure_installed() -> "str | None":
    """Installs the package when its sources changed; the build log when
    that failed, else None."""
    stamp = Path(sys.prefix) / ".cormorant-build.sha256"
    want = source_hash()
    if stamp.is_file() and stamp.read_text().strip() == want:
        try:
            spec = importlib.util.find_spec("cormorant._core")
        except ModuleNotFoundError:
            spec = None
        if spec is not None and not str(spec.origin).startswith(str(SOURCE_ROOT / "python")):
            return None
    # A clean build: setuptools judges staleness by whole seconds of mtime.
    shutil.rmtree(SOURCE_ROOT / "build-python", ignore_errors=True)
    cmd = [
        sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
        "--no-index", "--disable-pip-version-check", str(SOURCE_ROOT),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=SOURCE_ROOT)
    if proc.returncode != 0:
        # Not raised here: a conftest that fails to import stops every
        # suite. An older build must not stand in, so it goes; the test
        # modules then fail to import, and the log is printed at the end.
        stamp.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "cormorant"],
                       capture_output=True)
        importlib.invalidate_caches()
        return f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    stamp.write_text(want + "\n")
    importlib.invalidate_caches()
    return None


BUILD_ERROR = ensure_installed()


def pytest_terminal_summary(terminalreporter):
    if BUILD_ERROR:
        terminalreporter.section("building the Python package failed")
        terminalreporter.write_line(BUILD_ERROR[-20000:])


@pytest.fixture(scope="session")
def url(database_url: str) -> str:
    return database_url


@pytest.fixture
def run():
    def run(coro):
        return asyncio.run(coro)

    return run
