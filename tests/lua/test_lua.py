"""Runs every tests/lua/*_test.lua under lua5.4 and under luajit.

Each script is a plain Lua program that raises (and so exits non-zero) on
the first failed check; exit status 77 means skipped (a missing optional
library). It finds the pure-Lua layer in lua/, the C module
in build/lua/<5.4|jit>/ (built by tests/cormtest.py's plain CMake build),
and the server in DATABASE_URL (the session's database_url fixture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

import cormtest  # noqa: E402

RUNTIMES = {"lua5.4": "5.4", "luajit": "jit"}
SCRIPTS = sorted(p.name for p in HERE.glob("*_test.lua"))


@pytest.fixture(scope="session")
def lua_build_dir():
    try:
        return cormtest.build("plain")
    except cormtest.BuildError as e:
        pytest.fail(f"building the C code (plain) failed:\n{e}", pytrace=False)


def lua_env(build_dir: Path, runtime: str, database_env: dict) -> dict:
    env = dict(os.environ)
    env.update(database_env)
    path = f"{ROOT}/lua/?.lua;{ROOT}/lua/?/init.lua;{HERE}/?.lua;;"
    cpath = f"{build_dir}/lua/{RUNTIMES[runtime]}/?.so;;"
    # Lua 5.4 prefers the versioned variables when they are set.
    for suffix in ("", "_5_4"):
        env["LUA_PATH" + suffix] = path
        env["LUA_CPATH" + suffix] = cpath
    return env


@pytest.mark.database
@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_lua(runtime, script, lua_build_dir, database_env):
    exe = shutil.which(runtime)
    if not exe:
        pytest.skip(f"{runtime} is not installed (scripts/install-deps.sh installs it)")
    module = lua_build_dir / "lua" / RUNTIMES[runtime] / "cormorant" / "core.so"
    assert module.exists(), f"{module} was not built (pkg-config {runtime} missing?)"
    proc = subprocess.run([exe, script], cwd=HERE, env=lua_env(lua_build_dir, runtime, database_env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=600)
    if proc.returncode == 77:
        pytest.skip(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "skipped")
    if proc.returncode != 0:
        pytest.fail(f"{runtime} {script} exited {proc.returncode}:\n{proc.stdout[-6000:]}",
                    pytrace=False)


# Scripts also run under valgrind memcheck on Lua 5.4 (LuaJIT's allocator
# and JIT confuse memcheck): any invalid access or definite/indirect leak
# in the binding or the engine fails them.
VALGRIND_SCRIPTS = ["lifecycle_test.lua", "errors_test.lua", "transaction_test.lua",
                    "types_test.lua", "misuse_test.lua", "model_test.lua", "query_test.lua",
                    "model_types_test.lua", "stream_test.lua"]


@pytest.mark.database
@pytest.mark.valgrind
@pytest.mark.parametrize("script", VALGRIND_SCRIPTS)
def test_lua_valgrind(script, lua_build_dir, database_env):
    variants = os.environ.get("CORM_TEST_VARIANTS", "plain,asan,valgrind").split(",")
    if "valgrind" not in variants:
        pytest.skip("valgrind not in CORM_TEST_VARIANTS")
    exe, valgrind = shutil.which("lua5.4"), shutil.which("valgrind")
    if not exe or not valgrind:
        pytest.skip("lua5.4 or valgrind is not installed")
    cmd = [valgrind, "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
           "--error-exitcode=99", exe, script]
    proc = subprocess.run(cmd, cwd=HERE, env=lua_env(lua_build_dir, "lua5.4", database_env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"valgrind lua5.4 {script} exited {proc.returncode}:\n{proc.stdout[-8000:]}",
                    pytrace=False)


# The same scripts against build-asan/'s module (ASan + UBSan, LeakSanitizer
# on), on both runtimes: the interpreters are not instrumented, so the
# sanitizer runtimes are preloaded.
ASAN_SCRIPTS = ["lifecycle_test.lua", "errors_test.lua", "transaction_test.lua",
                "types_test.lua", "bigint_test.lua", "concurrency_test.lua",
                "model_test.lua", "query_test.lua", "model_types_test.lua", "stream_test.lua"]


def _sanitizer_preload() -> str | None:
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        proc = subprocess.run(["cc", f"-print-file-name={name}"], stdout=subprocess.PIPE,
                              text=True, check=False)
        path = proc.stdout.strip()
        if proc.returncode != 0 or not os.path.isabs(path) or not os.path.exists(path):
            return None
        libs.append(path)
    return " ".join(libs)


@pytest.mark.database
@pytest.mark.asan
@pytest.mark.parametrize("script", ASAN_SCRIPTS)
@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_lua_asan(runtime, script, database_env):
    variants = os.environ.get("CORM_TEST_VARIANTS", "plain,asan,valgrind").split(",")
    if "asan" not in variants:
        pytest.skip("asan not in CORM_TEST_VARIANTS")
    exe = shutil.which(runtime)
    preload = _sanitizer_preload()
    if not exe or not preload:
        pytest.skip(f"{runtime} or the sanitizer runtimes are not installed")
    try:
        build_dir = cormtest.build("asan")
    except cormtest.BuildError as e:
        pytest.fail(f"building the C code (asan) failed:\n{e}", pytrace=False)
    env = lua_env(build_dir, runtime, database_env)
    env["LD_PRELOAD"] = preload
    # Leaks are checked by the valgrind runs (Lua 5.4) and by the C suites'
    # LeakSanitizer runs. Here LeakSanitizer's tracking of the interpreter's
    # dynamic TLS sometimes records a bogus range and its tracer crashes at
    # exit ("Tracer caught signal 11"), a failure of the tool, not the code;
    # ASan and UBSan still check every access.
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    proc = subprocess.run([exe, script], cwd=HERE, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"{runtime} {script} (asan) exited {proc.returncode}:\n{proc.stdout[-8000:]}",
                    pytrace=False)
