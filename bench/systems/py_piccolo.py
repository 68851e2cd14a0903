"""Piccolo ORM (over asyncpg), tables bound to an engine made at open()."""

from __future__ import annotations

import piccolo
from piccolo.columns import (JSONB, UUID, BigInt, Boolean, DoublePrecision, ForeignKey,
                             Integer, Numeric, Text, Timestamptz, Varchar)
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

from dataset import COLUMNS
from systems.base import NotSupported, System, User as HandUser, Post as HandPost  # noqa: F401

W3_BATCH = 1000


def make_tables(engine):
    def cols():
        return dict(
            id=BigInt(primary_key=True), name=Text(), email=Varchar(length=64), age=Integer(),
            score=DoublePrecision(), active=Boolean(), created_at=Timestamptz(),
            balance=Numeric(digits=(12, 2)), uuid=UUID(), tags=JSONB())

    BenchRow = type("BenchRow", (Table,), cols(), tablename="bench_rows", db=engine)
    BenchInsert = type("BenchInsert", (Table,), cols(), tablename="bench_insert", db=engine)
    PUser = type("PUser", (Table,), dict(
        id=BigInt(primary_key=True), name=Text(), email=Varchar(length=64),
        created_at=Timestamptz()), tablename="users", db=engine)
    PPost = type("PPost", (Table,), dict(
        id=BigInt(primary_key=True), user_id=ForeignKey(PUser, db_column_name="user_id"),
        title=Text(), body=Text(), created_at=Timestamptz()), tablename="posts", db=engine)
    return BenchRow, BenchInsert, PUser, PPost


class PiccoloORM(System):
    name = "Piccolo"
    w1_variant = "objects().output(load_json=True) → model objects"
    w2_variant = "objects().get(id == …)"
    w3_variant = "insert(*objs), 1,000 rows a statement, one transaction"
    w4_variant = "two queries (objects) grouped by hand"
    w1_note = w2_note = w3_note = "over asyncpg, pool of 1"
    w4_note = "Piccolo has no reverse foreign-key prefetch"

    def version(self):
        return piccolo.__VERSION__ if hasattr(piccolo, "__VERSION__") else ""

    async def open(self, url):
        self.engine = PostgresEngine(config={"dsn": url}, log_queries=False)
        await self.engine.start_connection_pool(min_size=1, max_size=1)
        self.BenchRow, self.BenchInsert, self.User, self.Post = make_tables(self.engine)

    async def close(self):
        await self.engine.close_connection_pool()

    async def w1(self):
        return await self.BenchRow.objects().output(load_json=True)

    def values(self, o):
        return tuple(getattr(o, c) for c in COLUMNS)

    async def w2(self, ids):
        B = self.BenchRow
        found = 0
        for i in ids:
            if await B.objects().output(load_json=True).get(B.id == i) is not None:
                found += 1
        return found

    def w3_objects(self, values):
        B = self.BenchInsert
        return [B(**dict(zip(COLUMNS, v))) for v in values]

    async def w3(self, objs):
        async with self.engine.transaction():
            for k in range(0, len(objs), W3_BATCH):
                await self.BenchInsert.insert(*objs[k:k + W3_BATCH])

    async def w3_truncate(self):
        await self.engine.run_ddl("TRUNCATE bench_insert")

    async def w3_count(self):
        return await self.BenchInsert.count()

    async def w4(self, n):
        U, P = self.User, self.Post
        users = await U.objects().order_by(U.id).limit(n)
        posts = await P.objects().where(P.user_id.is_in([u.id for u in users]))
        by_id = {}
        for u in users:
            u.posts = []
            by_id[u.id] = u
        for p in posts:
            by_id[p.user_id].posts.append(p)
        return users


SYSTEMS = [PiccoloORM]
