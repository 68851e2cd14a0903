#!/usr/bin/env python3
"""`make bench`: every workload of ../shared/BENCHMARKS.md for Cormorant and
its peers in one run, written to bench/RESULTS.md.

    .venv/bin/python bench/run.py [--small] [--rows N] [--runs N] ...

Starts a throwaway cluster (scripts/pgtmp) unless BENCH_DATABASE_URL (or
--database-url) names a server, loads the deterministic dataset, then runs
each system in its own process, one after another (never side by side):

  C       the floor (build/bench/corm_floor: libpq, binary results) and
          Cormorant's C API (build/bench/corm_cbench)
  Python  bench/pybench.py SYSTEM for every system in bench/systems/ whose
          library is installed (peers: bench/requirements.txt), and for W5
          once more in a fresh process
  Lua     bench/lua/bench.lua under lua5.4 and luajit: Cormorant (db:query)
          and LuaSQL (Debian's lua-sql-postgres)

Every runner prints JSON lines; this script checks them, takes medians and
writes the tables. A runner that fails is reported in the table and makes
the exit status 1 (--keep-going is the default for peers; --strict makes
any failure fatal at once, as the smoke test wants).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from dataset import Sizes, schema_sql  # noqa: E402

LUA_RUNTIMES = {"lua5.4": "5.4", "luajit": "jit"}
FLOOR = "C floor (libpq binary)"
REFERENCE = {"python": "asyncpg", "lua5.4": "LuaSQL", "luajit": "LuaSQL"}
TITLES = {
    "W1": "fetch every row of bench_rows",
    "W2": "primary-key lookups of full rows",
    "W3": "insert bench_rows' contents into bench_insert from host objects",
    "W4": "users with their posts (relation prefetch)",
    "W5": "memory holding W1's objects",
}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Cluster and dataset


class Cluster:
    def __init__(self, url: str | None):
        self.url = url
        self.dir = None

    def __enter__(self):
        if self.url:
            return self
        proc = subprocess.run([str(ROOT / "scripts" / "pgtmp"), "start", "--owner-pid",
                               str(os.getpid())], capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            raise SystemExit(f"scripts/pgtmp start failed:\n{proc.stdout}{proc.stderr}")
        for line in proc.stdout.splitlines():
            k, _, v = line.partition("=")
            if k == "PGTMP_DIR":
                self.dir = v
            elif k == "DATABASE_URL":
                self.url = v
        log(f"throwaway cluster at {self.url}")
        return self

    def __exit__(self, *exc):
        if self.dir:
            subprocess.run([str(ROOT / "scripts" / "pgtmp"), "stop", self.dir], timeout=120,
                           capture_output=True)


def psql(url: str, sql: str) -> str:
    proc = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url],
                          input=sql, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"psql failed:\n{proc.stderr}")
    return proc.stdout.strip()


def load_dataset(url: str, sizes: Sizes) -> str:
    """Creates and fills the tables with psql (so loading needs none of the
    systems under test); returns the server's version."""
    if not shutil.which("psql"):
        raise SystemExit("psql not found (Debian: postgresql-client-15, which "
                         "scripts/install-deps.sh's postgresql-15 brings)")
    t0 = time.perf_counter()
    psql(url, ";\n".join(schema_sql(sizes)) + ";\n")
    for table, want in (("bench_rows", sizes.rows), ("users", sizes.users),
                        ("posts", 10 * sizes.users)):
        n = int(psql(url, f"SELECT count(*) FROM {table}"))
        if n != want:
            raise SystemExit(f"dataset: {table} has {n} rows, want {want}")
    log(f"dataset loaded in {time.perf_counter() - t0:.1f} s "
        f"({sizes.rows} rows, {sizes.users} users, {10 * sizes.users} posts)")
    return psql(url, "SHOW server_version")


# ---------------------------------------------------------------------------
# Runners


class Failure(Exception):
    pass


def run_json(cmd: list[str], env: dict | None = None, timeout: float = 3600) -> list[dict]:
    """Runs a runner; its JSON lines. Exit status 3 means 'not installed'."""
    log("$ " + " ".join(cmd[:3]) + (" ..." if len(cmd) > 3 else ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)
    recs = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            recs.append(json.loads(line))
    if proc.returncode == 3:
        raise LookupError((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1])
    if proc.returncode != 0:
        raise Failure(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                      f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return recs


def c_runners(build: Path) -> list[tuple[str, list[str]]]:
    return [("floor", [str(build / "bench" / "corm_floor")]),
            ("Cormorant C", [str(build / "bench" / "corm_cbench")])]


def python_systems(py: str) -> list[str]:
    proc = subprocess.run([py, str(HERE / "pybench.py"), "--list"], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise Failure(f"pybench --list failed:\n{proc.stderr}")
    return [s for s in proc.stdout.splitlines() if s.strip()]


def lua_env(build: Path, runtime: str) -> dict:
    env = dict(os.environ)
    path = f"{ROOT}/lua/?.lua;{ROOT}/lua/?/init.lua;{HERE}/lua/?.lua;;"
    cpath = f"{build}/lua/{LUA_RUNTIMES[runtime]}/?.so;;"
    for suffix in ("", "_5_4"):
        env["LUA_PATH" + suffix] = path
        env["LUA_CPATH" + suffix] = cpath
    return env


def selected(name: str, only: list[str] | None) -> bool:
    return not only or any(o.lower() in name.lower() for o in only)


def run_all(url: str, sizes: Sizes, build: Path, only: list[str] | None,
            strict: bool, workloads: list[str]) -> tuple[list[dict], list[str]]:
    recs: list[dict] = []
    problems: list[str] = []
    common = ["--url", url, "--sizes", sizes.to_json(), "--workloads", ",".join(workloads)]

    def attempt(label, cmd, env=None, required=False):
        try:
            out = run_json(cmd, env=env)
            recs.extend(out)
            return out
        except LookupError as e:
            msg = f"{label}: skipped ({e})"
            if required:
                raise Failure(msg)
            log(msg)
            problems.append(msg)
        except (Failure, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            msg = f"{label}: FAILED: {e}"
            log(msg)
            if strict or required:
                raise Failure(msg)
            problems.append(msg.splitlines()[0] + " (see the log)")
        return []

    for label, cmd in c_runners(build):
        if not selected(label, only) and label != "floor":
            continue
        if not Path(cmd[0]).exists():
            attempt(label, ["false"], required=True)
        attempt(label, cmd + common, required=True)

    py = sys.executable
    for name in python_systems(py):
        if not selected(name, only):
            continue
        attempt(name, [py, str(HERE / "pybench.py"), name] + common)
        if "W5" in workloads:
            attempt(name + " (W5)", [py, str(HERE / "pybench.py"), name, "--memory"] + common)

    for runtime in LUA_RUNTIMES:
        exe = shutil.which(runtime)
        if not exe:
            problems.append(f"{runtime}: not installed, Lua systems skipped")
            continue
        for lsys in ("cormorant", "cormorant-models", "luasql"):
            label = f"{lsys} on {runtime}"
            if not selected(lsys, only) and not selected(label, only):
                continue
            attempt(label, [exe, str(HERE / "lua" / "bench.lua"), lsys] + common,
                    env=lua_env(build, runtime), required=(lsys == "cormorant"))

    return recs, problems


# ---------------------------------------------------------------------------
# Report


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip() \
            or subprocess.run(cmd, capture_output=True, text=True, timeout=30).stderr.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lua = {rt: " ".join(sh([rt, "-v"]).split()[:2]) if shutil.which(rt) and sh([rt, "-v"]) else
           f"{rt} not installed" for rt in LUA_RUNTIMES}
    luasql = sh(["dpkg-query", "-W", "-f=${Version}", "lua-sql-postgres"]) or "not installed"
    return {
        "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
        "kernel": platform.release(), "os": sh(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "python": platform.python_version(), "lua": lua, "luasql": luasql,
        "libpq": sh(["pkg-config", "--modversion", "libpq"]),
        "cc": sh(["cc", "--version"]).splitlines()[0] if shutil.which("cc") else "",
    }


def fmt_time(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 10 else f"{s:.2f} s"


def fmt_rate(r: float) -> str:
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.0f} k" if r >= 1e3 else f"{r:.0f}"


def key_of(r: dict) -> str:
    return r.get("key") or r["workload"]


def tasks_of(r: dict) -> int:
    """W2's concurrency (0: sequential), for ordering."""
    k = key_of(r)
    return int(k.split("/")[1]) if "/" in k else 0


def row_lang(r: dict) -> str:
    return r.get("lang", "")


def report(recs: list[dict], problems: list[str], sizes: Sizes, pg_version: str,
           started: str, elapsed: float, small: bool) -> str:
    m = machine()
    timed = [r for r in recs if "times" in r and r["times"]]
    for r in timed:
        r["median"] = statistics.median(r["times"])
    floors = {key_of(r): r for r in timed if r["system"] == FLOOR}

    def ref_of(r):
        lang = row_lang(r)
        want = REFERENCE.get(lang)
        for x in timed:
            if x["system"] == want and row_lang(x) == lang and key_of(x) == key_of(r):
                return x
        return None

    out = ["# Benchmark results", ""]
    out.append(f"Written by `make bench` (bench/run.py) on {started}, in {elapsed / 60:.1f} min. "
               "Ratios are times divided by the floor's (or the reference peer's) time for "
               "the same workload in this run: lower is faster. The machine is shared and "
               "noisy; compare ratios, not absolute times.")
    if small:
        out += ["", "**Smoke run with tiny sizes: these numbers mean nothing.**"]
    out += ["", "## Machine and versions", "",
            f"- CPU: {m['cpu']}, {m['cores']} cores; kernel {m['kernel']}; {m['os']}",
            f"- PostgreSQL {pg_version} (server, same machine, TCP to 127.0.0.1); "
            f"libpq {m['libpq']}; {m['cc']}",
            f"- Python {m['python']}; "
            + ", ".join(sorted({f"{r['system'].split(' (')[0].split(' executemany')[0]} "
                                f"{r['version']}" for r in recs
                                if r.get("lang") == "python" and r.get("version")})),
            f"- Lua: {m['lua']['lua5.4']}; {m['lua']['luajit']}; LuaSQL (lua-sql-postgres) "
            f"{m['luasql']}",
            f"- Sizes: {sizes.rows:,} rows in bench_rows; {sizes.users:,} users and "
            f"{10 * sizes.users:,} posts; W2 {sizes.lookups:,} lookups; W4 {sizes.w4_users:,} "
            f"users. Median of {sizes.runs} timed runs after {sizes.warmup} warm-up run(s), "
            "each system in its own process; the garbage collector runs (and the previous "
            "result is freed) between runs, never on the clock.",
            ""]
    out.append("Reference peers: asyncpg for Python, LuaSQL on the same runtime for Lua. "
               "W2's concurrent variants are compared with asyncpg's pool of 8 at the same "
               "number of tasks. \"not converted\" in a note names columns a system leaves in "
               "another form than the host's native type.")
    for w in ("W1", "W2", "W3", "W4"):
        rows = [r for r in timed if r["workload"] == w]
        if not rows:
            continue
        out += ["", f"## {w}: {TITLES[w]}", "",
                "| system | runtime | how | median | rows/s | × floor | × reference | note |",
                "|---|---|---|---:|---:|---:|---:|---|"]
        order = {"c": 0, "python": 1, "lua5.4": 2, "luajit": 3}
        rows.sort(key=lambda r: (order.get(row_lang(r), 9), tasks_of(r), r["system"] != FLOOR,
                                 r["median"]))
        for r in rows:
            fl = floors.get(r["workload"])
            ref = ref_of(r)
            xf = f"{r['median'] / fl['median']:.2f}" if fl else "—"
            xr = f"{r['median'] / ref['median']:.2f}" if ref else "—"
            out.append(f"| {r['system']} | {row_lang(r)} | {r.get('variant', '')} | "
                       f"{fmt_time(r['median'])} | {fmt_rate(r['rows'] / r['median'])} | "
                       f"{xf} | {xr} | {r.get('note', '')} |")
    mem = [r for r in recs if r.get("workload") == "W5" and "held_kib" in r]
    if mem:
        out += ["", f"## W5: {TITLES['W5']}", "",
                "Python: RSS of a fresh process holding W1's result, minus its RSS after "
                "connecting and one single-row lookup; peak is VmHWM over the same baseline "
                "(the transient cost of building the result). Lua: the Lua heap "
                "(collectgarbage \"count\") held by W1's tables.", "",
                "| system | runtime | how | held | peak | held × reference | note |",
                "|---|---|---|---:|---:|---:|---|"]
        refs = {row_lang(r): r for r in mem if r["system"] == REFERENCE.get(row_lang(r))}
        order = {"c": 0, "python": 1, "lua5.4": 2, "luajit": 3}
        for r in sorted(mem, key=lambda r: (order.get(row_lang(r), 9), r["held_kib"])):
            ref = refs.get(row_lang(r))
            x = f"{r['held_kib'] / ref['held_kib']:.2f}" if ref and ref["held_kib"] > 0 else "—"
            peak = f"{r['peak_kib'] / 1024:.1f} MiB" if r.get("peak_kib") is not None else "—"
            out.append(f"| {r['system']} | {row_lang(r)} | {r.get('variant', '')} | "
                       f"{r['held_kib'] / 1024:.1f} MiB | {peak} | {x} | {r.get('note', '')} |")
    skipped = [r for r in recs if r.get("skipped")]
    if skipped or problems:
        out += ["", "## Not measured", ""]
        for r in skipped:
            out.append(f"- {r['system']} ({row_lang(r)}), {key_of(r)}: {r['skipped']}")
        for p in problems:
            out.append(f"- {p}")
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                    help="use this server instead of a throwaway cluster (BENCH_DATABASE_URL)")
    ap.add_argument("--small", action="store_true",
                    help="smoke sizes: 1,000 rows, 100 users, 100 lookups, one run, no warm-up")
    for f in ("rows", "users", "lookups", "w4-users", "runs", "warmup"):
        ap.add_argument("--" + f, type=int)
    ap.add_argument("--systems", help="comma-separated substrings of system names to run "
                                      "(the floor and Cormorant C always run)")
    ap.add_argument("--workloads", default="W1,W2,W3,W4,W5")
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--json", help="also write every raw record here")
    ap.add_argument("--strict", action="store_true", help="any runner failure is fatal")
    args = ap.parse_args()

    sizes = Sizes(rows=1000, users=100, lookups=100, w4_users=10, runs=1, warmup=0) \
        if args.small else Sizes()
    for f in ("rows", "users", "lookups", "w4_users", "runs", "warmup"):
        v = getattr(args, f)
        if v is not None:
            setattr(sizes, f, v)
    sizes.w4_users = min(sizes.w4_users, sizes.users)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.perf_counter()
    only = [s.strip() for s in args.systems.split(",")] if args.systems else None
    with Cluster(args.database_url) as cluster:
        pg_version = load_dataset(cluster.url, sizes)
        try:
            recs, problems = run_all(cluster.url, sizes, Path(args.build_dir), only,
                                     args.strict, args.workloads.split(","))
        except Failure as e:
            log(str(e))
            return 1
    text = report(recs, problems, sizes, pg_version, started, time.perf_counter() - t0,
                  args.small)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(recs, indent=1))
    log(f"wrote {args.out}")
    failed = [p for p in problems if "FAILED" in p]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
