"""The decoders under libFuzzer: tests/fuzz/fuzz_decode.c built with clang
(-fsanitize=fuzzer,address,undefined) and run for a bounded time on the seed
corpus in tests/fuzz/corpus, new inputs going to a temporary directory.

CORM_FUZZ_SECONDS sets the time (default 30). Skipped, saying why, when
clang or its libFuzzer runtime (Debian: clang libclang-rt-14-dev) is
missing. A failure shows the fuzzer's report and the failing input in hex;
reproduce it with `fuzz_decode CRASHFILE`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cormtest

ROOT = cormtest.ROOT
FUZZ = ROOT / "tests" / "fuzz"
SOURCES = ["alloc.c", "error.c", "codec.c", "codec_array.c", "codec_numeric.c", "codec_time.c",
           "json.c"]
SECONDS = int(os.environ.get("CORM_FUZZ_SECONDS", "30"))
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def _libpq_flags() -> list[str]:
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "libpq"], check=True,
                             capture_output=True, text=True).stdout
        return out.split()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        inc = subprocess.run(["pg_config", "--includedir"], check=True, capture_output=True,
                             text=True).stdout.strip()
        lib = subprocess.run(["pg_config", "--libdir"], check=True, capture_output=True,
                             text=True).stdout.strip()
        return [f"-I{inc}", f"-L{lib}", "-lpq"]
    except (OSError, subprocess.CalledProcessError):
        return ["-lpq"]


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian: apt-get install clang libclang-rt-14-dev); "
                    "the decoder fuzz target needs clang's libFuzzer")
    exe = tmp_path_factory.mktemp("fuzz") / "fuzz_decode"
    cmd = [clang, "-std=gnu11", "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
           "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer",
           f"-I{ROOT / 'libcore' / 'include'}", f"-I{ROOT / 'libcore' / 'src'}",
           str(FUZZ / "fuzz_decode.c"), *[str(ROOT / "libcore" / "src" / s) for s in SOURCES],
           *_libpq_flags(), "-lm", "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        if "libclang_rt.fuzzer" in proc.stderr or "clang_rt.fuzzer" in proc.stderr:
            pytest.skip("clang has no libFuzzer runtime (Debian: apt-get install "
                        "libclang-rt-14-dev)")
        pytest.fail("building the fuzz target failed:\n$ " + " ".join(cmd) + "\n"
                    + proc.stderr[-6000:], pytrace=False)
    return exe


def _report(proc: subprocess.CompletedProcess, artifacts: list[Path]) -> str:
    lines = [f"exit status {proc.returncode}", proc.stdout[-8000:]]
    for a in artifacts:
        data = a.read_bytes()
        lines.append(f"{a.name} ({len(data)} bytes): {data[:512].hex()}")
    return "\n".join(lines)


def test_fuzz_decoders(fuzzer: Path, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    work.mkdir()
    cmd = [str(fuzzer), f"-max_total_time={SECONDS}", "-timeout=20", "-rss_limit_mb=2048",
           "-print_final_stats=1", f"-artifact_prefix={tmp_path}/", str(work),
           str(FUZZ / "corpus")]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", env={**os.environ, **SANITIZER_ENV},
                          timeout=SECONDS + 300)
    artifacts = [p for p in tmp_path.iterdir()
                 if p.name.split("-")[0] in ("crash", "leak", "timeout", "oom", "slow")]
    assert proc.returncode == 0 and not artifacts, _report(proc, artifacts)
    assert "Done" in proc.stdout, _report(proc, artifacts)


def test_seeds_replay(fuzzer: Path) -> None:
    """Every seed once, deterministically (what the timed run starts from)."""
    seeds = sorted((FUZZ / "corpus").iterdir())
    assert seeds, "tests/fuzz/corpus is empty: run tests/fuzz/make_corpus.py"
    proc = subprocess.run([str(fuzzer), *map(str, seeds)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace",
                          env={**os.environ, **SANITIZER_ENV}, timeout=300)
    assert proc.returncode == 0, proc.stdout[-8000:]


def test_seed_corpus_is_current(tmp_path: Path) -> None:
    """The committed seeds are what make_corpus.py writes (its type table
    follows fuzz_decode.c's)."""
    subprocess.run([sys.executable, str(FUZZ / "make_corpus.py"), str(tmp_path)], check=True)
    want = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    have = {p.name: p.read_bytes() for p in (FUZZ / "corpus").iterdir()}
    assert have == want, "tests/fuzz/corpus is stale: run tests/fuzz/make_corpus.py"
