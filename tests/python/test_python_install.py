"""`pip install .` as a user runs it: a fresh venv, build isolation (pip
fetches setuptools itself), then the README's first lines work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.database

# As in conftest.py: this checkout, or CORM_TEST_SOURCE_ROOT.
SOURCE_ROOT = Path(os.environ.get("CORM_TEST_SOURCE_ROOT") or Path(__file__).resolve().parents[2])
SHIPPED = ("setup.py", "pyproject.toml", "README.md", "libcore", "bindings/python", "python")


def _can_fetch_build_deps(python: str, tmp: Path) -> bool:
    """Whether pip can get setuptools from its index (or local wheels): a
    quick download with no retries, so an offline machine skips fast."""
    proc = subprocess.run(
        [python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
         "--timeout", "5", "--retries", "0", "-d", str(tmp / "probe"), "setuptools>=61"],
        capture_output=True, text=True, timeout=60,
    )
    return proc.returncode == 0


def test_pip_install_in_fresh_venv(tmp_path, database_url):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    if not _can_fetch_build_deps(py, tmp_path):
        pytest.skip("pip cannot reach a package index: build isolation needs setuptools")
    # A copy of what an sdist ships, so the build sees no stray build output.
    src = tmp_path / "src"
    for rel in SHIPPED:
        s, d = SOURCE_ROOT / rel, src / rel
        if s.is_dir():
            shutil.copytree(s, d, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
        elif s.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    proc = subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = textwrap.dedent("""
        import asyncio, os, pathlib, cormorant as cm
        assert pathlib.Path(cm.__file__).parent.joinpath("py.typed").exists()
        async def main():
            db = await cm.connect(os.environ["URL"], min_size=1, max_size=4)
            rows = await db.fetch("SELECT $1::int8 + 1 AS n, 'x'::text AS s", 41)
            assert rows[0]["n"] == 42 and rows[0].s == "x", rows
            async with db.transaction(isolation="serializable"):
                assert await db.fetchval("SELECT 2") == 2
            await db.close()
            print("ok")
        asyncio.run(main())
    """)
    proc = subprocess.run([py, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "URL": database_url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"
