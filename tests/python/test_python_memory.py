"""Memory stays flat: 100,000 fetchval calls (plus fetches, errors and
cancellations) leave no Python objects or C memory behind."""

from __future__ import annotations

import asyncio
import gc
import os
import sys

import pytest

import cormorant as cm

pytestmark = pytest.mark.database


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


def test_no_leaks_over_100000_calls(database_url):
    async def batch(db, start, n):
        got = await asyncio.gather(*(db.fetchval("SELECT $1::int8", i) for i in range(start, start + n)))
        assert got[0] == start and got[-1] == start + n - 1

    async def mixed(db):
        rows = await db.fetch("SELECT g, 'x' || g AS s, NULL::int AS z FROM generate_series(1, 20) g")
        assert rows[19].s == "x20"
        assert (await db.fetchrow("SELECT $1::text AS t, $2::bytea AS b", "t", b"b")).b == b"b"
        try:
            await db.fetchval("SELECT 1 / 0")
        except cm.DataError:
            pass
        try:
            await db.fetchval("SELECT $1", 2**70)
        except cm.DataError:
            pass
        async with db.transaction():
            await db.fetchval("SELECT 1")

    async def main():
        async with await cm.connect(database_url, min_size=1, max_size=4) as db:
            # Warm up: statement caches, free lists, the loop's own buffers.
            for k in range(10):
                await batch(db, k * 1000, 1000)
                await mixed(db)
            blocks0, rss0 = _blocks(), _rss_bytes()
            for k in range(100):
                await batch(db, k * 1000, 1000)
                if k % 5 == 0:
                    await mixed(db)
            task = asyncio.ensure_future(db.fetchval("SELECT pg_sleep(5)"))
            await asyncio.sleep(0.05)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            assert await db.fetchval("SELECT 1") == 1
            blocks1, rss1 = _blocks(), _rss_bytes()
            return blocks1 - blocks0, rss1 - rss0

    dblocks, drss = asyncio.run(main())
    print(f"blocks {dblocks:+d}, rss {drss:+d} bytes")
    # A leak of one object per call would be 100,000 blocks; allow for noise.
    assert dblocks < 2000, f"{dblocks} Python memory blocks not freed"
    # A leak of 100 bytes of C memory per call would be 10 MB.
    assert drss < 8 * 1024 * 1024, f"RSS grew by {drss} bytes"
