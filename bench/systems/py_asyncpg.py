"""asyncpg: the reference peer for Python."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from dataset import COLUMNS, W1_SQL, W2_SQL, W3_TABLE, W4_POSTS_SQL, W4_USERS_SQL
from systems.base import System, group_posts


def _jsonb_encode(v):
    return b"\x01" + json.dumps(v).encode()


def _jsonb_decode(b):
    return json.loads(b[1:])


async def _init(conn):
    # jsonb parsed to dict; binary format so binary COPY can encode it too.
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode,
                              schema="pg_catalog", format="binary")


class Asyncpg(System):
    name = "asyncpg"
    w1_variant = "fetch → Record (jsonb parsed)"
    w2_variant = "fetchrow, one connection"
    w2_tasks = (8, 64)
    w2_concurrent_note = "pool of 8 connections"
    w3_variant = "copy_records_to_table (binary COPY)"
    w4_variant = "two queries + objects grouped by hand"

    def version(self):
        return asyncpg.__version__

    async def open(self, url):
        self.conn = await asyncpg.connect(url)
        await _init(self.conn)
        self.pool = None
        self.url = url

    async def close(self):
        if self.pool is not None:
            await self.pool.close()
        await self.conn.close()

    async def w1(self):
        return await self.conn.fetch(W1_SQL)

    def values(self, row):
        return tuple(row)

    async def w2(self, ids):
        found = 0
        fetchrow = self.conn.fetchrow
        for i in ids:
            if await fetchrow(W2_SQL, i) is not None:
                found += 1
        return found

    def w2_concurrent_variant(self, n):
        return f"{n} tasks, pool of 8"

    async def w2_concurrent(self, ids, n):
        if self.pool is None:
            self.pool = await asyncpg.create_pool(self.url, min_size=8, max_size=8, init=_init)
        fetchrow = self.pool.fetchrow

        async def worker(part):
            found = 0
            for i in part:
                if await fetchrow(W2_SQL, i) is not None:
                    found += 1
            return found
        return sum(await asyncio.gather(*(worker(ids[k::n]) for k in range(n))))

    def w3_objects(self, values):
        return [tuple(v) for v in values]

    async def w3(self, records):
        await self.conn.copy_records_to_table(W3_TABLE, records=records, columns=list(COLUMNS))

    async def w3_truncate(self):
        await self.conn.execute(f"TRUNCATE {W3_TABLE}")

    async def w3_count(self):
        return await self.conn.fetchval(f"SELECT count(*) FROM {W3_TABLE}")

    async def w4(self, n):
        users = await self.conn.fetch(W4_USERS_SQL, n)
        posts = await self.conn.fetch(W4_POSTS_SQL, [r[0] for r in users])
        return group_posts(users, posts)


class AsyncpgExecutemany(Asyncpg):
    """asyncpg's executemany for W3 only (BENCHMARKS.md's second figure)."""
    name = "asyncpg executemany"
    w3_variant = "executemany INSERT"
    workloads = ("W3",)

    async def w3(self, records):
        await self.conn.executemany(
            f"INSERT INTO {W3_TABLE} ({', '.join(COLUMNS)}) VALUES "
            f"({', '.join(f'${k + 1}' for k in range(len(COLUMNS)))})", records)


SYSTEMS = [Asyncpg, AsyncpgExecutemany]
