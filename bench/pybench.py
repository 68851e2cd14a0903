"""Runs the workloads for one Python system and prints one JSON line per
measurement on stdout. Started by bench/run.py, once per system (and once
more per system for W5, in a fresh process).

    pybench.py SYSTEM --url URL --sizes JSON [--workloads W1,W2,W3,W4] [--memory]

A system is a module bench/systems/py_<name>.py defining SYSTEMS: a list of
classes (see systems/base.py for the interface). A system whose library is
not installed exits with status 3 and a line saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dataset import Sizes, lookup_ids  # noqa: E402
from systems.base import check_w1_types, expect_rows, NotSupported  # noqa: E402


def emit(**rec) -> None:
    print(json.dumps(rec), flush=True)


async def timed(sizes: Sizes, fn, check, before=None) -> list[float]:
    """warmup + runs calls of fn; only fn is on the clock. The previous
    result is freed and garbage collected before each run; the collector
    is off while the clock runs."""
    times = []
    result = None
    for i in range(sizes.warmup + sizes.runs):
        result = None
        if before is not None:
            await before()
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            result = await fn()
            dt = time.perf_counter() - t0
        finally:
            gc.enable()
        check(result)
        if i >= sizes.warmup:
            times.append(dt)
    result = None
    gc.collect()
    return times


async def run_system(sysobj, url: str, sizes: Sizes, workloads: list[str]) -> None:
    name = sysobj.name
    await sysobj.open(url)
    try:
        base = dict(system=name, lang="python", version=sysobj.version())
        # W1: fetch everything; types checked on the first result.
        first_values = None
        if "W1" in workloads or "W3" in workloads:
            rows = await sysobj.w1()
            expect_rows(rows, sizes.rows, "W1")
            first_values = [sysobj.values(r) for r in rows]
            type_note = check_w1_types(first_values[0])
            rows = None
        if "W1" in workloads:
            def c1(r):
                expect_rows(r, sizes.rows, "W1")
            times = await timed(sizes, sysobj.w1, c1)
            emit(**base, workload="W1", variant=sysobj.w1_variant, times=times, rows=sizes.rows,
                 note="; ".join(x for x in (type_note, sysobj.w1_note) if x))
        if "W2" in workloads:
            ids = lookup_ids(sizes)

            def c2(found):
                if found != len(ids):
                    raise AssertionError(f"W2: {found} rows found, want {len(ids)}")
            times = await timed(sizes, lambda: sysobj.w2(ids), c2)
            emit(**base, workload="W2", variant=sysobj.w2_variant, times=times, rows=len(ids),
                 note=sysobj.w2_note)
            for tasks in sysobj.w2_tasks:
                try:
                    times = await timed(sizes, lambda: sysobj.w2_concurrent(ids, tasks), c2)
                except NotSupported as e:
                    emit(**base, workload="W2", key=f"W2/{tasks}", variant=f"{tasks} tasks",
                         skipped=str(e))
                    continue
                emit(**base, workload="W2", key=f"W2/{tasks}", variant=sysobj.w2_concurrent_variant(tasks),
                     times=times, rows=len(ids), note=sysobj.w2_concurrent_note)
        if "W3" in workloads:
            try:
                objs_holder = {}

                async def before():
                    await sysobj.w3_truncate()
                    objs_holder["objs"] = sysobj.w3_objects(first_values)

                async def go():
                    await sysobj.w3(objs_holder.pop("objs"))
                    return None

                counts = []

                def c3(_):
                    counts.append(None)

                times = await timed(sizes, go, c3, before=before)
                n = await sysobj.w3_count()
                if n != sizes.rows:
                    raise AssertionError(f"W3: {n} rows in bench_insert, want {sizes.rows}")
                emit(**base, workload="W3", variant=sysobj.w3_variant, times=times,
                     rows=sizes.rows, note=sysobj.w3_note)
            except NotSupported as e:
                emit(**base, workload="W3", variant="", skipped=str(e))
        first_values = None
        if "W4" in workloads:
            try:
                def c4(users):
                    if len(users) != sizes.w4_users:
                        raise AssertionError(f"W4: {len(users)} users, want {sizes.w4_users}")
                    posts = sum(len(p) for p in sysobj.w4_posts(users))
                    if posts != 10 * sizes.w4_users:
                        raise AssertionError(f"W4: {posts} posts, want {10 * sizes.w4_users}")
                times = await timed(sizes, lambda: sysobj.w4(sizes.w4_users), c4)
                emit(**base, workload="W4", variant=sysobj.w4_variant, times=times,
                     rows=11 * sizes.w4_users, note=sysobj.w4_note)
            except NotSupported as e:
                emit(**base, workload="W4", variant="", skipped=str(e))
    finally:
        await sysobj.close()


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")   # resets VmHWM to the current RSS (Linux 4.0+)
        return True
    except OSError:
        return False


async def run_memory(sysobj, url: str, sizes: Sizes) -> None:
    """W5: in this fresh process (nothing else ran in it), RSS held (and
    peak) while W1's objects are alive, minus the RSS after connecting and
    one single-row lookup (codecs loaded, type caches filled). Freed memory
    is not returned to the OS reliably, so there is no warm-up W1 here:
    its pages would be reused and hide the cost."""
    await sysobj.open(url)
    try:
        found = await sysobj.w2([1])
        if found != 1:
            raise AssertionError("W5: the warm-up lookup found nothing")
        gc.collect()
        base = rss_kib("VmRSS")
        peak_ok = reset_peak()
        rows = await sysobj.w1()
        gc.collect()
        held = rss_kib("VmRSS") - base
        peak = rss_kib("VmHWM") - base if peak_ok else None
        expect_rows(rows, sizes.rows, "W5")
        emit(system=sysobj.name, lang="python", version=sysobj.version(), workload="W5",
             variant=sysobj.w1_variant, held_kib=held, peak_kib=peak, rows=sizes.rows,
             note=sysobj.w1_note)
        rows = None
    finally:
        await sysobj.close()


def find_system(name: str):
    for mod in sorted(p.stem for p in (HERE / "systems").glob("py_*.py")):
        try:
            m = importlib.import_module(f"systems.{mod}")
        except ImportError as e:
            if name.split(" ")[0].lower() in mod:
                raise SystemExit(f"{name}: not installed ({e})") from None
            continue
        for cls in m.SYSTEMS:
            if cls.name == name:
                return cls
    raise SystemExit(f"no system named {name!r}")


def list_systems() -> list[str]:
    out = []
    for mod in sorted(p.stem for p in (HERE / "systems").glob("py_*.py")):
        try:
            m = importlib.import_module(f"systems.{mod}")
        except ImportError:
            continue
        out.extend(cls.name for cls in m.SYSTEMS)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("system", nargs="?")
    ap.add_argument("--url", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--sizes", default=Sizes().to_json())
    ap.add_argument("--workloads", default="W1,W2,W3,W4")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--list", action="store_true", help="print the installed systems")
    args = ap.parse_args()
    if args.list:
        for n in list_systems():
            print(n)
        return 0
    try:
        cls = find_system(args.system)
    except SystemExit as e:
        print(str(e), file=sys.stderr)
        return 3
    sizes = Sizes.from_json(args.sizes)
    sysobj = cls()
    workloads = [w for w in args.workloads.split(",") if w in cls.workloads]
    if args.memory and "W5" not in cls.workloads:
        return 0
    if args.memory:
        asyncio.run(run_memory(sysobj, args.url, sizes))
    else:
        asyncio.run(run_system(sysobj, args.url, sizes, workloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())


