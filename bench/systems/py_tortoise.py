"""Tortoise ORM (over asyncpg)."""

from __future__ import annotations

import tortoise
from tortoise import Tortoise

from dataset import COLUMNS
from systems.base import System
from systems.tortoise_models import BenchInsert, BenchRow, User


class TortoiseORM(System):
    name = "Tortoise ORM"
    w1_variant = "Model.all() → model objects"
    w2_variant = "Model.get(id=…)"
    w3_variant = "bulk_create, batch_size=1000"
    w4_variant = "prefetch_related('posts')"
    w1_note = w2_note = w3_note = w4_note = "over asyncpg"

    def version(self):
        return tortoise.__version__

    async def open(self, url):
        if url.startswith("postgresql://"):
            url = "postgres://" + url[len("postgresql://"):]
        await Tortoise.init(db_url=url, modules={"models": ["systems.tortoise_models"]},
                            use_tz=True, timezone="UTC")

    async def close(self):
        await Tortoise.close_connections()

    async def w1(self):
        return await BenchRow.all()

    def values(self, o):
        return tuple(getattr(o, c) for c in COLUMNS)

    async def w2(self, ids):
        found = 0
        for i in ids:
            if await BenchRow.get_or_none(id=i) is not None:
                found += 1
        return found

    def w3_objects(self, values):
        return [BenchInsert(**dict(zip(COLUMNS, v))) for v in values]

    async def w3(self, objs):
        await BenchInsert.bulk_create(objs, batch_size=1000)

    async def w3_truncate(self):
        await Tortoise.get_connection("default").execute_script("TRUNCATE bench_insert")

    async def w3_count(self):
        return await BenchInsert.all().count()

    async def w4(self, n):
        return await User.all().order_by("id").limit(n).prefetch_related("posts")

    def w4_posts(self, users):
        return [list(u.posts) for u in users]


SYSTEMS = [TortoiseORM]
