"""Cormorant from Python: db.fetch rows today; models when they land (add a
subclass overriding w1/w2/w3/w4 and list it in SYSTEMS)."""

from __future__ import annotations

import asyncio

import cormorant as cm

from dataset import W1_SQL, W2_SQL, W3_TABLE, W4_POSTS_SQL, W4_USERS_SQL
from systems.base import System, group_posts, insert_values_sql

W3_BATCH = 1000   # rows per INSERT: 10,000 parameters


class CormorantRows(System):
    name = "Cormorant (rows)"
    w1_variant = "db.fetch → Row"
    w2_variant = "db.fetchrow, one connection"
    w2_tasks = (8, 64)
    w2_concurrent_note = "one pool with max_size=1: the tasks pipeline on one connection"
    w3_variant = "multi-row INSERT, 1,000 rows a statement, one transaction"
    w3_note = "raw SQL; Cormorant's COPY is Model.bulk_insert (the models row)"
    w4_variant = "two queries + objects grouped by hand"
    w4_note = "int8[] parameter sent as its text form (a list parameter of raw SQL is JSON)"

    def version(self):
        return getattr(cm, "__version__", "")

    async def open(self, url):
        self.db = await cm.connect(url, min_size=1, max_size=1)

    async def close(self):
        await self.db.close()

    async def w1(self):
        return await self.db.fetch(W1_SQL)

    def values(self, row):
        return tuple(row)

    async def w2(self, ids):
        found = 0
        fetchrow = self.db.fetchrow
        for i in ids:
            if await fetchrow(W2_SQL, i) is not None:
                found += 1
        return found

    def w2_concurrent_variant(self, n):
        return f"{n} tasks, one connection"

    async def w2_concurrent(self, ids, n):
        fetchrow = self.db.fetchrow

        async def worker(part):
            found = 0
            for i in part:
                if await fetchrow(W2_SQL, i) is not None:
                    found += 1
            return found
        return sum(await asyncio.gather(*(worker(ids[k::n]) for k in range(n))))

    def w3_objects(self, values):
        out = []
        for k in range(0, len(values), W3_BATCH):
            batch = values[k:k + W3_BATCH]
            args = [v for row in batch for v in row]
            out.append((insert_values_sql(len(batch)), args))
        return out

    async def w3(self, batches):
        async with self.db.transaction():
            for sql, args in batches:
                await self.db.execute(sql, *args)

    async def w3_truncate(self):
        await self.db.execute(f"TRUNCATE {W3_TABLE}")

    async def w3_count(self):
        return await self.db.fetchval(f"SELECT count(*) FROM {W3_TABLE}")

    async def w4(self, n):
        users = await self.db.fetch(W4_USERS_SQL, n)
        ids = "{" + ",".join(str(r[0]) for r in users) + "}"
        posts = await self.db.fetch(W4_POSTS_SQL, ids)
        return group_posts(users, posts)


SYSTEMS = [CormorantRows]


# ---- model objects (cm.Model), where the models exist ----

try:
    _Model = cm.Model
except AttributeError:  # an engine without models
    _Model = None

if _Model is not None:
    import datetime as _dt
    import decimal as _decimal
    import uuid as _uuid

    class BenchRowModel(cm.Model, table="bench_rows"):
        id: int = cm.column(primary_key=True)
        name: str
        email: str = cm.column(max_length=64)
        age: int = cm.column(type="int4")
        score: float
        active: bool
        created_at: _dt.datetime
        balance: _decimal.Decimal = cm.column(precision=12, scale=2)
        uuid: _uuid.UUID
        tags: dict

    class BenchInsertModel(cm.Model, table="bench_insert"):
        id: int = cm.column(primary_key=True)
        name: str
        email: str = cm.column(max_length=64)
        age: int = cm.column(type="int4")
        score: float
        active: bool
        created_at: _dt.datetime
        balance: _decimal.Decimal = cm.column(precision=12, scale=2)
        uuid: _uuid.UUID
        tags: dict

    class UserModel(cm.Model, table="users"):
        id: int = cm.column(primary_key=True)
        name: str
        email: str = cm.column(max_length=64)
        created_at: _dt.datetime
        posts: list[PostModel] = cm.reverse("PostModel.user_id")

    class PostModel(cm.Model, table="posts"):
        id: int = cm.column(primary_key=True)
        user_id: int = cm.column(references=UserModel)
        title: str
        body: str
        created_at: _dt.datetime

    from dataset import COLUMNS as _COLUMNS

    class CormorantModels(CormorantRows):
        """The same workloads with model objects: what BENCHMARKS.md asks
        Cormorant to be measured as."""
        name = "Cormorant (models)"
        w1_variant = "Model.select() → model objects"
        w2_variant = "Model.get(id=…), one connection"
        w3_variant = "Model.bulk_insert: binary COPY fed from the loop, one transaction"
        w3_note = ""
        w4_variant = "select().prefetch(User.posts): two queries, posts attached"
        w4_note = ""

        async def w1(self):
            return await BenchRowModel.select().using(self.db)

        def values(self, o):
            return tuple(getattr(o, c) for c in _COLUMNS)

        async def w2(self, ids):
            found = 0
            get, db = BenchRowModel.get, self.db
            for i in ids:
                if await get(id=i, db=db) is not None:
                    found += 1
            return found

        async def w2_concurrent(self, ids, n):
            get, db = BenchRowModel.get, self.db

            async def worker(part):
                found = 0
                for i in part:
                    if await get(id=i, db=db) is not None:
                        found += 1
                return found
            return sum(await asyncio.gather(*(worker(ids[k::n]) for k in range(n))))

        def w3_objects(self, values):
            return [BenchInsertModel(**dict(zip(_COLUMNS, v))) for v in values]

        async def w3(self, objs):
            async with self.db.transaction():
                await BenchInsertModel.bulk_insert(objs, db=self.db)

        async def w4(self, n):
            return await UserModel.select().order_by(UserModel.id).limit(n) \
                .prefetch(UserModel.posts).using(self.db)

        def w4_posts(self, users):
            return [u.posts for u in users]

    SYSTEMS.append(CormorantModels)
