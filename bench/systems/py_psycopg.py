"""psycopg 3 (async), with its C speedups (psycopg-binary)."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from dataset import COLUMNS, W1_SQL, W2_SQL, W3_TABLE, W4_POSTS_SQL, W4_USERS_SQL
from systems.base import System, group_posts


def pg(sql: str) -> str:
    """$n placeholders as psycopg's %s (the same statement otherwise)."""
    for k in range(10, 0, -1):
        sql = sql.replace(f"${k}", "%s")
    return sql


class Psycopg(System):
    name = "psycopg 3"
    w1_variant = "AsyncCursor.fetchall → tuples (text format)"
    w2_variant = "execute + fetchone, one connection (auto-prepared)"
    w3_variant = "binary COPY, write_row"
    w4_variant = "two queries + objects grouped by hand"

    def version(self):
        impl = psycopg.pq.__impl__
        return f"{psycopg.__version__} ({impl})"

    @property
    def w1_note(self):
        return "" if psycopg.pq.__impl__ in ("c", "binary") else "pure-Python build"

    async def open(self, url):
        self.conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        self.conn.prepare_threshold = 0   # prepare every statement, as Cormorant does

    async def close(self):
        await self.conn.close()

    async def w1(self):
        async with self.conn.cursor() as cur:
            await cur.execute(W1_SQL)
            return await cur.fetchall()

    def values(self, row):
        return tuple(row)

    async def w2(self, ids):
        found = 0
        sql = pg(W2_SQL)
        async with self.conn.cursor() as cur:
            for i in ids:
                await cur.execute(sql, (i,))
                if await cur.fetchone() is not None:
                    found += 1
        return found

    def w3_objects(self, values):
        return [v[:9] + (Jsonb(v[9]),) for v in values]

    async def w3(self, rows):
        async with self.conn.cursor() as cur:
            async with cur.copy(f"COPY {W3_TABLE} ({', '.join(COLUMNS)}) FROM STDIN "
                                "(FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "varchar", "int4", "float8", "bool",
                                "timestamptz", "numeric", "uuid", "jsonb"])
                for r in rows:
                    await copy.write_row(r)

    async def w3_truncate(self):
        await self.conn.execute(f"TRUNCATE {W3_TABLE}")

    async def w3_count(self):
        cur = await self.conn.execute(f"SELECT count(*) FROM {W3_TABLE}")
        return (await cur.fetchone())[0]

    async def w4(self, n):
        async with self.conn.cursor() as cur:
            await cur.execute(pg(W4_USERS_SQL), (n,))
            users = await cur.fetchall()
            await cur.execute(pg(W4_POSTS_SQL), ([r[0] for r in users],))
            posts = await cur.fetchall()
        return group_posts(users, posts)


SYSTEMS = [Psycopg]
