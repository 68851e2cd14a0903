"""Lists of rows are streamed: fetch() and the list-valued model queries
build their items while the rest of the rows arrive (the engine's
corm_*_submit_stream). What a user sees must not change: complete lists in
order, errors that drop the partial list, cancellation that stops the
server, a conversion failure that surfaces as the query's exception, and a
connection that stays usable after each."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

import cormorant as cm

pytestmark = pytest.mark.database

N = 30_000


class Streamed(cm.Model, table="py_streamed"):
    id: int = cm.column(primary_key=True)
    label: str
    at: dt.datetime


def test_every_list_shape_complete_and_in_order(url, run):
    async def main():
        async with await cm.connect(url, min_size=1, max_size=2) as db:
            await db.drop_tables(Streamed, if_exists=True)
            await db.create_tables(Streamed)
            await db.execute(
                "INSERT INTO py_streamed SELECT i, 'l' || i, "
                "timestamptz '2024-01-01 00:00+00' + i * interval '1 second' "
                f"FROM generate_series(1, {N}) AS i")
            rows = await db.fetch("SELECT id, label FROM py_streamed ORDER BY id")
            models = await Streamed.select().order_by(Streamed.id)
            dicts = await Streamed.select(Streamed.id, Streamed.label).order_by(Streamed.id).dicts()
            tuples = await Streamed.select(Streamed.id).order_by(Streamed.id).tuples()
            empty = await Streamed.select().where(Streamed.id < 0)
            first = await Streamed.select().order_by(Streamed.id).first()
            count = await Streamed.select().count()
            await db.drop_tables(Streamed)
            return rows, models, dicts, tuples, empty, first, count

    rows, models, dicts, tuples, empty, first, count = run(main())
    assert [r["id"] for r in rows] == list(range(1, N + 1))
    assert rows[-1]["label"] == f"l{N}"
    assert [m.id for m in models] == list(range(1, N + 1))
    assert all(type(m) is Streamed for m in models[:10])
    assert models[9].at == dt.datetime(2024, 1, 1, 0, 0, 10, tzinfo=dt.timezone.utc)
    assert dicts[0] == {"id": 1, "label": "l1"} and len(dicts) == N
    assert tuples[-1] == (N,) and len(tuples) == N
    assert empty == [] and isinstance(empty, list)
    assert first is not None and first.id == 1 and count == N


def test_server_error_after_some_rows_raises_and_keeps_nothing(url, run):
    async def main():
        async with await cm.connect(url, min_size=1, max_size=1) as db:
            with pytest.raises(cm.DataError) as e:
                await db.fetch("SELECT (CASE WHEN i = 20000 THEN 1 / (i - i) ELSE i END)::int8 "
                               "FROM generate_series(1, 40000) AS i")
            # The same connection goes on.
            return e.value, await db.fetchval("SELECT 41 + 1")

    exc, after = run(main())
    assert exc.sqlstate == "22012" and after == 42


def test_conversion_error_mid_stream_is_the_query_exception(url, run):
    """Row 5,000 holds a date Python cannot represent: the query raises
    that error (not a half list), and later queries work."""
    async def main():
        async with await cm.connect(url, min_size=1, max_size=1) as db:
            with pytest.raises(cm.DataError) as e:
                await db.fetch("SELECT CASE WHEN i = 5000 THEN date '10000-01-01' "
                               "ELSE date '2000-01-01' + i END "
                               "FROM generate_series(1, 10000) AS i")
            return str(e.value), await db.fetch("SELECT i FROM generate_series(1, 3) AS i")

    msg, after = run(main())
    assert "range" in msg or "year" in msg
    assert [r[0] for r in after] == [1, 2, 3]


def test_cancelling_a_streaming_fetch_stops_the_server(url, run):
    async def main():
        async with await cm.connect(url, min_size=1, max_size=1) as db:
            pid = await db.fetchval("SELECT pg_backend_pid()")
            task = asyncio.ensure_future(
                db.fetch("SELECT i, pg_sleep(0.001) FROM generate_series(1, 100000) AS i"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The backend is free again soon: the statement was cancelled,
            # not left to run its 100 seconds.
            async with await cm.connect(url, min_size=1, max_size=1) as other:
                for _ in range(100):
                    state = await other.fetchval(
                        "SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
                    if state == "idle":
                        break
                    await asyncio.sleep(0.05)
            return state, await db.fetchval("SELECT 7")

    state, after = run(main())
    assert state == "idle" and after == 7


def test_timeout_mid_stream(url, run):
    async def main():
        async with await cm.connect(url, min_size=1, max_size=1) as db:
            with pytest.raises(cm.Timeout):
                await db.fetch("SELECT i, repeat('x', 200) FROM generate_series(1, 2000) AS i "
                               "WHERE pg_sleep(0.002) IS NOT NULL", timeout=0.3)
            return await db.fetchval("SELECT 8")

    assert run(main()) == 8


def test_streams_inside_a_transaction(url, run):
    """A transaction runs on a lent connection (not the shared ones)."""
    async def main():
        async with await cm.connect(url, min_size=1, max_size=2) as db:
            async with db.transaction():
                a = await db.fetch("SELECT i FROM generate_series(1, 5000) AS i")
                b = await db.fetch("SELECT i FROM generate_series(1, 5000) AS i")
            return [r[0] for r in a] == list(range(1, 5001)), len(b)

    assert run(main()) == (True, 5000)


def test_row_names_follow_each_result(url, run):
    """Row descriptions are shared between results with the same columns;
    results whose names differ (in name, order or number) must not share."""
    async def main():
        async with await cm.connect(url, min_size=1, max_size=1) as db:
            out = []
            for _ in range(3):
                out.append(await db.fetchrow("SELECT 1 AS a, 2 AS b"))
                out.append(await db.fetchrow("SELECT 1 AS b, 2 AS a"))
                out.append(await db.fetchrow("SELECT 1 AS a, 2 AS c"))
                out.append(await db.fetchrow("SELECT 1 AS a"))
                out.append(await db.fetchrow('SELECT 1 AS "a b", 2 AS "é"'))
            return out

    rows = run(main())
    for k in range(3):
        ab, ba, ac, a, odd = rows[5 * k:5 * k + 5]
        assert (ab["a"], ab["b"]) == (1, 2)
        assert (ba["a"], ba["b"]) == (2, 1)
        assert (ac["a"], ac["c"]) == (1, 2) and "b" not in ac.keys()
        assert len(a) == 1 and a["a"] == 1
        assert (odd["a b"], odd["é"]) == (1, 2)
