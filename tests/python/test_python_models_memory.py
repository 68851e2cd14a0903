"""Memory stays flat over 100,000 model instances fetched (plus gets,
saves, upserts, expressions and errors): no reference leaks in the C
model layer (instances, columns, expressions, queries, shapes)."""

from __future__ import annotations

import asyncio
import enum
import gc
import os
import sys
from typing import Optional

import pytest

import cormorant as cm

pytestmark = pytest.mark.database


class Mood0(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Leaky(cm.Model, table="tmem_leaky"):
    id: int = cm.column(primary_key=True)
    name: str
    tags: list[str] = cm.column(default_factory=list)
    note: Optional[str] = None
    mood: Mood0 = Mood0.LOW


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


def test_no_leaks_over_100000_model_fetches(database_url):
    async def round_(db, k):
        # 100 instances per query, 10 queries: 1,000 instances a round.
        for _ in range(10):
            rows = await Leaky.select().where(Leaky.id > 0).order_by(Leaky.id).limit(100)
            assert len(rows) == 100 and rows[-1].tags == ["t", str(rows[-1].id)]
        got = await asyncio.gather(*(Leaky.get(id=i) for i in range(1, 21)))
        assert got[5].name == "n6" and got[5].mood is Mood0.LOW
        got[0].note = f"k{k}"
        await got[0].save()
        await Leaky.filter(name__in=["n1", "n2"], tags=["t", "1"], mood=Mood0.LOW).dicts()
        await Leaky.insert(id=1, name="n1", tags=["t", "1"]).on_conflict(Leaky.id, update=[Leaky.name])
        assert await Leaky.filter(name__startswith="n").count() == 100
        for bad in (lambda: Leaky(name=1), lambda: Leaky.filter(nope=1), lambda: Leaky.id == "x"):
            try:
                bad()
            except (TypeError, cm.Error):
                pass
        try:
            await Leaky.get(id=-1)
        except cm.NotFound:
            pass

    async def main():
        async with await cm.connect(database_url, min_size=1, max_size=4) as db:
            await db.drop_tables(Leaky, if_exists=True)
            await db.create_tables(Leaky)
            await Leaky.bulk_create([Leaky(id=i, name=f"n{i}", tags=["t", str(i)]) for i in range(1, 101)])
            for k in range(10):  # warm up: statement caches, free lists
                await round_(db, k)
            # A reference leaked on a long-lived object (the class, its
            # table, a column, the registry) allocates nothing: count them.
            lived = (Leaky, Leaky.__table__, Leaky.__dict__["name"], cm.model.registry, Mood0)
            refs0 = [sys.getrefcount(o) for o in lived]
            blocks0, rss0 = _blocks(), _rss_bytes()
            for k in range(100):  # 100,000 instances
                await round_(db, k)
            blocks1, rss1 = _blocks(), _rss_bytes()
            refs1 = [sys.getrefcount(o) for o in lived]
            assert refs1 == refs0, f"references leaked: {refs0} -> {refs1}"
            await db.drop_tables(Leaky)
            return blocks1 - blocks0, rss1 - rss0

    dblocks, drss = asyncio.run(main())
    print(f"blocks {dblocks:+d}, rss {drss:+d} bytes")
    # One leaked object per instance would be 100,000 blocks.
    assert dblocks < 2000, f"{dblocks} Python memory blocks not freed"
    # 100 bytes of C memory per instance would be 10 MB.
    assert drss < 8 * 1024 * 1024, f"RSS grew by {drss} bytes"
