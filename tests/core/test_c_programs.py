"""Runs the C test programs built from tests/core/test_*.c, one case per test.

Each program (see ctest.h) lists its cases with `--list`; every case runs in
its own process in each variant:

  plain     build/tests/core/PROG CASE
  asan      build-asan/tests/core/PROG CASE (ASan + UBSan, leaks detected)
  valgrind  valgrind ... build/tests/core/PROG CASE (definite/indirect leaks fail)

Exit 77 is a skip, anything else but 0 a failure with the program's output.
CORM_TEST_VARIANTS=plain,asan narrows the variants (default: all three).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import cormtest

HERE = Path(__file__).resolve().parent
ALL_VARIANTS = ("plain", "asan", "valgrind")
BUILD_OF = {"plain": "plain", "asan": "asan", "valgrind": "plain"}
TIMEOUT = {"plain": 120, "asan": 120, "valgrind": 300}

VALGRIND = [
    "valgrind", "--error-exitcode=99", "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect",
    "--show-leak-kinds=definite,indirect", "--track-origins=no", "-q",
]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def selected_variants() -> list[str]:
    raw = os.environ.get("CORM_TEST_VARIANTS", ",".join(ALL_VARIANTS))
    chosen = [v.strip() for v in raw.split(",") if v.strip()]
    unknown = set(chosen) - set(ALL_VARIANTS)
    if unknown:
        raise pytest.UsageError(f"CORM_TEST_VARIANTS: unknown {sorted(unknown)}")
    return chosen


def program_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("test_*.c"))


def list_cases(exe: Path) -> list[str]:
    proc = subprocess.run([str(exe), "--list"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} --list exited {proc.returncode}:\n{proc.stdout}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _param(prog, case, variant, problem=None):
    marks = []
    if variant == "asan":
        marks.append(pytest.mark.asan)
    elif variant == "valgrind":
        marks.append(pytest.mark.valgrind)
        if shutil.which("valgrind") is None:
            marks.append(pytest.mark.skip(reason="valgrind is not installed"))
    return pytest.param((prog, case, variant, problem), marks=marks,
                        id=f"{prog}-{case}-{variant}")


def pytest_generate_tests(metafunc):
    if "c_case" not in metafunc.fixturenames:
        return
    variants = selected_variants()
    problems = {}  # build variant -> error text
    for b in sorted({BUILD_OF[v] for v in variants}):
        try:
            cormtest.build(b)
        except cormtest.BuildError as e:
            problems[b] = str(e)

    params = []
    for b, text in problems.items():
        # One failing case per broken build, carrying cmake's output.
        params.append(_param("build", b, b if b == "asan" else "plain", text))
    # Case names come from whichever build works (the cases are the same).
    lister = next((b for b in ("plain", "asan") if b not in problems
                   and any(BUILD_OF[v] == b for v in variants)), None)
    for prog in program_names():
        if lister is None:
            break
        exe = cormtest.BUILD_DIRS[lister] / "tests" / "core" / prog
        try:
            cases = list_cases(exe)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            params.append(_param(prog, "list", lister, f"cannot list cases: {e}"))
            continue
        if not cases:
            params.append(_param(prog, "list", lister, f"{exe} --list printed no case"))
        for case in cases:
            for v in variants:
                if BUILD_OF[v] in problems:
                    continue
                params.append(_param(prog, case, v))
    metafunc.parametrize("c_case", params)


def _run(cmd, env, timeout):
    """Runs cmd in its own process group; returns (exit code, output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n"
                    f"{out.decode(errors='replace')}", pytrace=False)
    except BaseException:
        # Ctrl-C: the child is in its own session and would not see it.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def test_c(c_case, database_env, pgtmp):
    prog, case, variant, problem = c_case
    if problem is not None:
        pytest.fail(problem, pytrace=False)

    exe = cormtest.BUILD_DIRS[BUILD_OF[variant]] / "tests" / "core" / prog
    if not exe.exists():
        pytest.fail(f"{exe} was not built", pytrace=False)
    cmd = [str(exe), case]
    env = dict(os.environ)
    env.update(database_env)
    env["CORM_TEST_VARIANT"] = variant   # big cases scale down under valgrind
    if variant == "asan":
        env.update(SANITIZER_ENV)
    elif variant == "valgrind":
        cmd = VALGRIND + cmd

    rc, out = _run(cmd, env, TIMEOUT[variant])

    # A case that paused the server and failed before resuming it must not
    # break every case after it.
    left_paused = pgtmp is not None and not pgtmp.running()
    if left_paused:
        pgtmp.resume()

    if rc == 77:
        reasons = [line[len("SKIP:"):].strip() for line in out.splitlines()
                   if line.startswith("SKIP:")]
        pytest.skip(reasons[-1] if reasons else f"{prog} {case}: exit 77")
    if rc != 0:
        how = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
        if variant == "valgrind" and rc == 99:
            how += " (valgrind found errors)"
        pytest.fail(f"{' '.join(cmd)}: {how}\n{out}", pytrace=False)
    if left_paused:
        pytest.fail(f"{prog} {case} left the server stopped", pytrace=False)
