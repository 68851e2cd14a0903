"""Smoke run of `make bench` (bench/run.py --small): tiny sizes, one run,
against this session's server, so the harness cannot rot.

The floor, Cormorant's C runner, Cormorant from Python and Cormorant from
Lua (each runtime whose module was built) must produce every workload; the
Python peers (bench/requirements.txt, installed by `make bench` only) and
LuaSQL run when installed, and their runners must work too; a peer that is
not installed is skipped. The dataset goes into a database of its own
(created and dropped here) so it cannot touch other suites' tables.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import cormtest  # noqa: E402

pytestmark = pytest.mark.database

PEERS = {  # system name -> the module it needs
    "asyncpg": "asyncpg",
    "psycopg 3": "psycopg",
    "SQLAlchemy ORM": "sqlalchemy",
    "SQLAlchemy Core": "sqlalchemy",
    "Tortoise ORM": "tortoise",
    "Piccolo": "piccolo",
}
WORKLOADS = ("W1", "W2", "W3", "W4")


def _ensure_cormorant_installed() -> None:
    """The package from this tree in the running interpreter (tests/python's
    conftest does it when that suite is collected; this suite may run alone)."""
    spec = importlib.util.spec_from_file_location(
        "corm_bench_py_install", ROOT / "tests" / "python" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.BUILD_ERROR:
        pytest.fail(f"building the cormorant package failed:\n{mod.BUILD_ERROR[-4000:]}",
                    pytrace=False)


def _psql(url: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def bench_db(database_url):
    """A fresh database on the session's server for the dataset."""
    if not shutil.which("psql"):
        pytest.skip("psql is not installed (postgresql-client-15)")
    name = f"corm_bench_smoke_{uuid.uuid4().hex[:8]}"
    made = _psql(database_url, f"CREATE DATABASE {name}")
    if made.returncode != 0:
        yield database_url   # no CREATEDB: use the session's database itself
        return
    parts = urlsplit(database_url)
    yield urlunsplit(parts._replace(path="/" + name))
    _psql(database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def smoke(bench_db, tmp_path_factory):
    """Runs the harness once; (records, RESULTS.md text, stderr)."""
    try:
        build = cormtest.build("plain")
    except cormtest.BuildError as e:
        pytest.fail(f"building the C code (plain) failed:\n{e}", pytrace=False)
    _ensure_cormorant_installed()
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env.pop("BENCH_DATABASE_URL", None)
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--small", "--strict",
           "--database-url", bench_db, "--build-dir", str(build),
           "--out", str(out / "RESULTS.md"), "--json", str(out / "results.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    if proc.returncode != 0:
        pytest.fail(f"bench/run.py exited {proc.returncode}:\n{proc.stdout[-4000:]}\n"
                    f"{proc.stderr[-8000:]}", pytrace=False)
    recs = json.loads((out / "results.json").read_text())
    return recs, (out / "RESULTS.md").read_text(), proc.stderr


def _workloads(recs, system, lang):
    return {r["workload"] for r in recs
            if r["system"] == system and r["lang"] == lang and (r.get("times") or "held_kib" in r)}


def test_results_file(smoke):
    recs, text, _ = smoke
    assert text.startswith("# Benchmark results")
    for w in WORKLOADS + ("W5",):
        assert f"## {w}:" in text
    assert "Machine and versions" in text


def test_floor_and_cormorant_c(smoke):
    recs, _, _ = smoke
    for system in ("C floor (libpq binary)", "Cormorant C"):
        assert _workloads(recs, system, "c") == set(WORKLOADS), system
    for r in recs:
        if r.get("lang") == "c":
            assert len(r["times"]) == 1 and r["times"][0] > 0


def test_cormorant_python(smoke):
    recs, _, _ = smoke
    assert _workloads(recs, "Cormorant (rows)", "python") == set(WORKLOADS) | {"W5"}
    keys = {r.get("key") for r in recs if r["system"] == "Cormorant (rows)"}
    assert {"W2/8", "W2/64"} <= keys
    w1 = next(r for r in recs if r["system"] == "Cormorant (rows)" and r["workload"] == "W1")
    assert "not converted" not in w1["note"], w1["note"]


@pytest.mark.parametrize("runtime,subdir", [("lua5.4", "5.4"), ("luajit", "jit")])
def test_cormorant_lua(smoke, runtime, subdir):
    recs, _, _ = smoke
    if not shutil.which(runtime):
        pytest.skip(f"{runtime} is not installed")
    if not (cormtest.BUILD_DIRS["plain"] / "lua" / subdir / "cormorant" / "core.so").exists():
        pytest.skip(f"the Lua module for {runtime} was not built")
    assert _workloads(recs, "Cormorant", runtime) == set(WORKLOADS) | {"W5"}


@pytest.mark.parametrize("runtime", ["lua5.4", "luajit"])
def test_luasql(smoke, runtime):
    recs, _, _ = smoke
    have = [r for r in recs if r["system"] == "LuaSQL" and r["lang"] == runtime]
    if not have:
        pytest.skip(f"LuaSQL for {runtime} is not installed (lua-sql-postgres)")
    assert _workloads(recs, "LuaSQL", runtime) == set(WORKLOADS) | {"W5"}


@pytest.mark.parametrize("system", list(PEERS))
def test_python_peer(smoke, system):
    recs, _, _ = smoke
    if importlib.util.find_spec(PEERS[system]) is None:
        pytest.skip(f"{PEERS[system]} is not installed (make bench installs bench/requirements.txt)")
    assert _workloads(recs, system, "python") == set(WORKLOADS) | {"W5"}


def test_cormorant_models_python(smoke):
    recs, _, _ = smoke
    import cormorant
    if not hasattr(cormorant, "Model"):
        pytest.skip("this cormorant has no models yet")
    assert _workloads(recs, "Cormorant (models)", "python") == set(WORKLOADS) | {"W5"}


@pytest.mark.parametrize("runtime,subdir", [("lua5.4", "5.4"), ("luajit", "jit")])
def test_cormorant_models_lua(smoke, runtime, subdir):
    recs, _, _ = smoke
    if not shutil.which(runtime):
        pytest.skip(f"{runtime} is not installed")
    if not (cormtest.BUILD_DIRS["plain"] / "lua" / subdir / "cormorant" / "core.so").exists():
        pytest.skip(f"the Lua module for {runtime} was not built")
    if not (ROOT / "lua" / "cormorant" / "model.lua").exists():
        pytest.skip("this cormorant has no Lua models yet")
    assert _workloads(recs, "Cormorant (models)", runtime) == set(WORKLOADS) | {"W5"}
