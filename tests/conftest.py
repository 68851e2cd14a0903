"""Session fixtures shared by every suite under tests/ (core, python, lua, c).

Fixtures:
  c_build       dict {"plain": Path("build"), "asan": Path("build-asan")}, both
                built with CMake once per session (see cormtest.build).
  database_env  dict of the variables a child process needs: DATABASE_URL,
                and when the cluster is this session's own, CORM_TEST_PGTMP
                (scripts/pgtmp) and CORM_TEST_PGDIR (the cluster dir), so a
                test can `pgtmp pause`/`resume` the server. They are also set
                in os.environ for the session.
  database_url  the URL alone. DATABASE_URL from the environment when set;
                otherwise a throwaway cluster from scripts/pgtmp, stopped at
                the end of the session (also on Ctrl-C, SIGTERM or a crash).
  pgtmp         the cormtest.PgTmp of this session's own cluster, or None
                when DATABASE_URL came from outside.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cormtest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "asan: a C test run under ASan+UBSan (build-asan/)")
    config.addinivalue_line("markers", "valgrind: a C test run under valgrind (build/)")
    config.addinivalue_line("markers", "database: needs a PostgreSQL server")


@pytest.fixture(scope="session")
def c_build():
    dirs = {}
    for variant in ("plain", "asan"):
        try:
            dirs[variant] = cormtest.build(variant)
        except cormtest.BuildError as e:
            pytest.fail(f"building the C code ({variant}) failed:\n{e}", pytrace=False)
    return dirs


@pytest.fixture(scope="session")
def _database():
    """(env dict, PgTmp or None); starts and finally stops our cluster."""
    outside = os.environ.get("DATABASE_URL")
    if outside:
        yield {"DATABASE_URL": outside}, None
        return
    cormtest.stop_on_sigterm()
    cluster = cormtest.PgTmp()
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "CORM_TEST_PGTMP", "CORM_TEST_PGDIR")}
    try:
        cluster.start()
        env = cluster.env()
        os.environ.update(env)
        yield env, cluster
    finally:
        cluster.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def database_env(_database):
    return dict(_database[0])


@pytest.fixture(scope="session")
def database_url(_database):
    return _database[0]["DATABASE_URL"]


@pytest.fixture(scope="session")
def pgtmp(_database):
    return _database[1]
