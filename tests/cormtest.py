"""Test-suite plumbing shared by every suite (core, python, lua, c).

Two things live here, used by tests/conftest.py's fixtures and by test
collection (which runs before any fixture):

* ``build(variant)`` configures and builds the C code with CMake, once per
  process: ``plain`` in build/ (RelWithDebInfo) and ``asan`` in build-asan/
  (Debug, ASan + UBSan). CORM_WERROR is ON when the CI variable is set.
* ``PgTmp`` drives scripts/pgtmp: a throwaway PostgreSQL cluster that is
  stopped at exit, on Ctrl-C and SIGTERM, and by pgtmp's own watchdog if this
  process dies any other way.

Environment knobs: CORM_TEST_NO_BUILD=1 uses the build directories as they
are (no cmake run); CORM_TEST_VARIANTS (default "plain,asan,valgrind")
chooses which C variants tests/core runs.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import signal
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGTMP = ROOT / "scripts" / "pgtmp"

BUILD_DIRS = {"plain": ROOT / "build", "asan": ROOT / "build-asan"}
JOBS = "2"


class BuildError(Exception):
    """cmake failed; str() is the command and the tail of its output."""


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def cmake_options(variant: str) -> dict[str, str]:
    opts = {
        "CORM_WERROR": "ON" if ci() else "OFF",
        "CORM_BUILD_TESTS": "ON",
        "CORM_BUILD_EXAMPLES": "ON",
    }
    if variant == "plain":
        opts.update(CMAKE_BUILD_TYPE="RelWithDebInfo", CORM_ASAN="OFF", CORM_UBSAN="OFF")
    elif variant == "asan":
        opts.update(CMAKE_BUILD_TYPE="Debug", CORM_ASAN="ON", CORM_UBSAN="ON")
    else:
        raise ValueError(f"unknown build variant {variant!r}")
    return opts


def _cache_matches(build_dir: Path, opts: dict[str, str]) -> bool:
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists():
        return False
    values = {}
    for line in cache.read_text(errors="replace").splitlines():
        if line.startswith(("#", "//")) or "=" not in line or ":" not in line:
            continue
        key, _, rest = line.partition(":")
        values[key] = rest.partition("=")[2]
    source = values.get("CMAKE_HOME_DIRECTORY")
    if source and Path(source).resolve() != ROOT:
        return False  # a copied tree: configure afresh
    return all(values.get(k, "").upper() == v.upper() for k, v in opts.items())


def _run(cmd: list[str], log: list[str]) -> None:
    log.append("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    log.append(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join("\n".join(log).splitlines()[-150:])
        raise BuildError(f"{' '.join(cmd)} exited {proc.returncode}\n{tail}")


_built: dict[str, Path | BuildError] = {}
_build_lock = threading.Lock()


def build(variant: str) -> Path:
    """Configures (when needed) and builds one variant; returns its build dir.

    Memoised per process, failures included. Raises BuildError.
    """
    with _build_lock:
        if variant not in _built:
            try:
                _built[variant] = _build(variant)
            except BuildError as e:
                _built[variant] = e
        result = _built[variant]
    if isinstance(result, BuildError):
        raise result
    return result


def _build(variant: str) -> Path:
    build_dir = BUILD_DIRS[variant]
    if os.environ.get("CORM_TEST_NO_BUILD"):
        return build_dir
    build_dir.mkdir(exist_ok=True)
    opts = cmake_options(variant)
    log: list[str] = []
    # Several pytest processes (xdist workers, two terminals) may build at once.
    with open(build_dir / ".corm-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _cache_matches(build_dir, opts):
            _run(["cmake", "-S", str(ROOT), "-B", str(build_dir)]
                 + [f"-D{k}={v}" for k, v in opts.items()], log)
        _run(["cmake", "--build", str(build_dir), "-j", JOBS], log)
    return build_dir


# ---------------------------------------------------------------------------
# Throwaway cluster


class PgTmp:
    """One scripts/pgtmp cluster. Stopping is idempotent."""

    def __init__(self) -> None:
        self.dir: str | None = None
        self.url: str | None = None

    def start(self) -> "PgTmp":
        proc = subprocess.run(
            [str(PGTMP), "start", "--owner-pid", str(os.getpid())],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/pgtmp start failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            if key == "PGTMP_DIR":
                self.dir = value
            elif key == "DATABASE_URL":
                self.url = value
        if not self.dir or not self.url:
            raise RuntimeError(f"scripts/pgtmp start printed no cluster:\n{proc.stdout}")
        atexit.register(self.stop)
        return self

    def _call(self, verb: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(PGTMP), verb, self.dir], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def stop(self) -> None:
        if self.dir:
            d, self.dir = self.dir, None
            subprocess.run([str(PGTMP), "stop", d], timeout=120, check=False)

    def pause(self) -> None:
        self._call("pause").check_returncode()

    def resume(self) -> None:
        proc = self._call("resume")
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/pgtmp resume failed:\n{proc.stdout}")

    def running(self) -> bool:
        return bool(self.dir) and self._call("status", timeout=30).returncode == 0

    def env(self) -> dict[str, str]:
        """What a child process needs: the URL and the pgtmp control variables."""
        return {"DATABASE_URL": self.url or "", "CORM_TEST_PGTMP": str(PGTMP),
                "CORM_TEST_PGDIR": self.dir or ""}


def stop_on_sigterm() -> None:
    """Make SIGTERM/SIGHUP unwind like Ctrl-C, so fixtures' teardown runs.

    Only replaces default dispositions, and only from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, handler)
