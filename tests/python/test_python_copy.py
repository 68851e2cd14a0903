"""Bulk insert through binary COPY (Model.bulk_insert): every built-in
column type, chunks, the switch between COPY and INSERT, a failing row,
bad input before anything is stored, and inside a transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Optional

import pytest

import cormorant as cm

pytestmark = pytest.mark.database


class Reading(cm.Model, table="tcopy_reading"):
    id: int = cm.column(primary_key=True)
    sensor: str = cm.column(max_length=20)
    value: float
    ok: bool
    at: dt.datetime
    day: dt.date
    amount: Decimal = cm.column(precision=12, scale=2)
    tag: uuid.UUID
    meta: dict
    levels: list[int]
    note: Optional[str] = None
    blob: Optional[bytes] = None


class CopyMood(enum.Enum):
    happy = "happy"
    sad = "sad"


class Feeling(cm.Model, table="tcopy_feeling"):
    id: int = cm.column(primary_key=True)
    mood: CopyMood


def reading(i: int) -> Reading:
    return Reading(id=i, sensor=f"s{i % 7}", value=i / 8, ok=i % 2 == 0,
                   at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=i * 1001),
                   day=dt.date(2024, 1, 1) + dt.timedelta(days=i % 365),
                   amount=Decimal(i) / 4 - 100, tag=uuid.UUID(int=i), meta={"i": i, "odd": i % 2 == 1},
                   levels=[i, -i], note=None if i % 3 else f"n{i}", blob=bytes([i % 256, 0, 1]))


def with_db(url, body):
    async def main():
        db = await cm.connect(url, min_size=1, max_size=2)
        try:
            await db.drop_tables(Reading, Feeling, if_exists=True)
            await db.create_tables(Reading, Feeling)
            await body(db)
        finally:
            await db.drop_tables(Reading, Feeling, if_exists=True)
            await db.close()

    asyncio.run(main())


def test_copy_round_trip_every_type(url):
    async def body(db):
        # A statement trigger logs the top-level statement of every write,
        # to show the rows came by COPY, one per chunk.
        await db.execute("CREATE TABLE IF NOT EXISTS tcopy_stmts (q text)")
        await db.execute("TRUNCATE tcopy_stmts")
        await db.execute("CREATE OR REPLACE FUNCTION tcopy_log_fn() RETURNS trigger"
                         " LANGUAGE plpgsql AS $$ BEGIN"
                         " INSERT INTO tcopy_stmts VALUES (current_query()); RETURN NULL; END $$")
        await db.execute("CREATE TRIGGER tcopy_log AFTER INSERT ON tcopy_reading"
                         " FOR EACH STATEMENT EXECUTE FUNCTION tcopy_log_fn()")
        objs = [reading(i) for i in range(1, 25001)]
        n = await Reading.bulk_insert(objs, chunk_size=10000)
        assert n == 25000
        stmts = [r[0] for r in await db.fetch("SELECT q FROM tcopy_stmts")]
        assert len(stmts) == 3 and all(q.startswith("COPY ") for q in stmts), stmts
        await db.execute("DROP TRIGGER tcopy_log ON tcopy_reading")
        await db.execute("DROP TABLE tcopy_stmts")
        await db.execute("DROP FUNCTION tcopy_log_fn()")
        assert await db.fetchval("SELECT count(*) FROM tcopy_reading") == 25000
        for i in (1, 2, 3, 9999, 10000, 10001, 25000):
            got = await Reading.get(id=i)
            want = reading(i)
            for f in ("sensor", "value", "ok", "at", "day", "amount", "tag", "meta", "levels", "note", "blob"):
                assert getattr(got, f) == getattr(want, f), (i, f)

    with_db(url, body)


def test_small_batches_insert_and_enum_columns_fall_back(url):
    async def body(db):
        assert await Reading.bulk_insert([reading(i) for i in range(1, 11)]) == 10
        feelings = [Feeling(id=i, mood=CopyMood.happy if i % 2 else CopyMood.sad) for i in range(1, 3001)]
        assert await Feeling.bulk_insert(feelings) == 3000   # enum: multi-row INSERT
        assert await db.fetchval("SELECT count(*) FROM tcopy_feeling WHERE mood = 'sad'") == 1500
        assert await Reading.bulk_insert([]) == 0

    with_db(url, body)


def test_failing_row_stores_nothing(url):
    async def body(db):
        objs = [reading(i) for i in range(1, 2001)]
        objs[1500] = reading(7)   # a duplicate primary key
        with pytest.raises(cm.IntegrityError) as e:
            await Reading.bulk_insert(objs)
        assert e.value.sqlstate == "23505"
        assert "line" in str(e.value)
        assert await db.fetchval("SELECT count(*) FROM tcopy_reading") == 0
        # The pool is fine afterwards.
        assert await Reading.bulk_insert([reading(i) for i in range(1, 2001)]) == 2000

    with_db(url, body)


def test_bad_input_raises_before_storing(url):
    async def body(db):
        objs = [reading(i) for i in range(1, 2001)]
        with pytest.raises(TypeError):
            await Reading.bulk_insert(objs + ["not a model"])  # type: ignore[list-item]
        assert await db.fetchval("SELECT count(*) FROM tcopy_reading") == 0

    with_db(url, body)


def test_copy_inside_a_transaction_rolls_back(url):
    async def body(db):
        with pytest.raises(RuntimeError):
            async with db.transaction():
                assert await Reading.bulk_insert([reading(i) for i in range(1, 3001)]) == 3000
                assert await db.fetchval("SELECT count(*) FROM tcopy_reading") == 3000
                raise RuntimeError("roll back")
        assert await db.fetchval("SELECT count(*) FROM tcopy_reading") == 0

    with_db(url, body)


def test_large_copy_is_fed_as_the_server_takes_it(url):
    """60,000 wide rows in one COPY: more than the socket and a chunk hold,
    so the rows are put from the loop as the server takes them; other
    tasks on the loop keep running meanwhile."""
    async def main():
        async with await cm.connect(url, min_size=1, max_size=2) as db:
            await db.execute("DROP TABLE IF EXISTS py_copy_big")
            await db.execute("CREATE TABLE py_copy_big (id int8 PRIMARY KEY, body text)")

            class Big(cm.Model, table="py_copy_big"):
                id: int = cm.column(primary_key=True)
                body: str

            objs = [Big(id=i, body="x" * 200 + str(i)) for i in range(60_000)]
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0)
                    ticks += 1

            t = asyncio.ensure_future(ticker())
            n = await Big.bulk_insert(objs, db=db)
            t.cancel()
            count, last = await db.fetchrow("SELECT count(*), max(body) FROM py_copy_big")
            await db.execute("DROP TABLE py_copy_big")
            return n, count, ticks

    n, count, ticks = asyncio.run(main())
    assert n == 60_000 and count == 60_000
    assert ticks > 0


def test_bad_value_deep_in_a_large_copy_stores_nothing(url):
    """The bad row comes after many were sent: the copy is aborted, the
    caller gets the encoding error, nothing is stored, the pool goes on."""
    async def main():
        async with await cm.connect(url, min_size=1, max_size=2) as db:
            await db.execute("DROP TABLE IF EXISTS py_copy_bad")
            await db.execute("CREATE TABLE py_copy_bad (id int8 PRIMARY KEY, body text)")

            class Bad(cm.Model, table="py_copy_bad"):
                id: int = cm.column(primary_key=True)
                body: str

            objs = [Bad(id=i, body="y" * 200) for i in range(40_000)]
            objs[35_000].body = "nul \x00 inside"   # text cannot carry NUL: refused at encoding
            try:
                await Bad.bulk_insert(objs, db=db)
            except (cm.DataError, TypeError) as e:
                err = e
            else:
                err = None
            count = await db.fetchval("SELECT count(*) FROM py_copy_bad")
            await db.execute("DROP TABLE py_copy_bad")
            return err, count

    err, count = asyncio.run(main())
    assert err is not None and count == 0
