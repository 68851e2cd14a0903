"""Raw SQL through cormorant: connect, fetch/fetchrow/fetchval/execute, rows,
errors, pipelining over a pool, cancellation, timeouts, transactions."""

from __future__ import annotations

import asyncio
import time

import pytest

import cormorant as cm

pytestmark = pytest.mark.database


async def _db(url, **kw):
    kw.setdefault("min_size", 1)
    kw.setdefault("max_size", 4)
    return await cm.connect(url, **kw)


# ---- basics -------------------------------------------------------------


def test_fetch_fetchrow_fetchval_execute(url, run):
    async def main():
        db = await _db(url)
        try:
            rows = await db.fetch("SELECT $1::int8 + 1 AS n, 'x'::text AS s", 41)
            assert len(rows) == 1
            row = rows[0]
            assert isinstance(row, cm.Row)
            assert row[0] == 42 and row["n"] == 42 and row.n == 42
            assert row[1] == row["s"] == row.s == "x"
            assert row[-1] == "x" and row[0:2] == (42, "x")
            assert len(row) == 2 and list(row) == [42, "x"] and tuple(row) == (42, "x")
            assert row == (42, "x") and row != (42, "y")
            assert row.keys() == ("n", "s") and row.values() == (42, "x")
            assert row.items() == [("n", 42), ("s", "x")]
            assert row.get("s") == "x" and row.get("zz", 5) == 5
            assert dict(row) == {"n": 42, "s": "x"} == row.as_dict()
            assert "x" in row
            assert repr(row) == "<Row n=42 s='x'>"
            assert hash(row) == hash((42, "x"))
            with pytest.raises(KeyError):
                row["nope"]
            with pytest.raises(IndexError):
                row[2]
            with pytest.raises(AttributeError):
                row.nope
            with pytest.raises(TypeError):
                cm.Row()

            assert await db.fetchrow("SELECT 1 AS a") == (1,)
            assert await db.fetchrow("SELECT 1 WHERE false") is None
            assert await db.fetchval("SELECT 2") == 2
            assert await db.fetchval("SELECT 1 WHERE false") is None
            assert await db.fetch("SELECT 1 WHERE false") == []
            many = await db.fetch("SELECT g, g * 2 AS d FROM generate_series(1, 1000) g")
            assert [r.d for r in many] == [2 * i for i in range(1, 1001)]
            # rows of one result share their column names
            assert many[0].keys() is many[999].keys()

            await db.execute("DROP TABLE IF EXISTS py_exec")
            assert await db.execute("CREATE TABLE py_exec (x int)") == 0
            assert await db.execute("INSERT INTO py_exec SELECT generate_series(1, 5)") == 5
            assert await db.execute("UPDATE py_exec SET x = x + 1 WHERE x > $1", 2) == 3
            assert await db.execute("DELETE FROM py_exec") == 5
            await db.execute("DROP TABLE py_exec")
        finally:
            await db.close()
        assert db.closed

    run(main())


def test_duplicate_column_names_first_wins(url, run):
    async def main():
        async with await _db(url) as db:
            row = await db.fetchrow("SELECT 1 AS a, 2 AS a")
            assert row.a == 1 and row["a"] == 1 and tuple(row) == (1, 2)

    run(main())


def test_closed_pool_is_interface_error(url, run):
    async def main():
        db = await _db(url)
        await db.close()
        with pytest.raises(cm.InterfaceError):
            await db.fetchval("SELECT 1")

    run(main())


def test_default_database(url, run):
    async def main():
        db = await _db(url)
        try:
            assert cm.default_database() is db
        finally:
            await db.close()
        with pytest.raises(cm.InterfaceError):
            cm.default_database()

    run(main())


# ---- errors ------------------------------------------------------------


def test_error_hierarchy():
    for name in ("ConnectionError", "Timeout", "QueryCanceled", "IntegrityError", "DataError",
                 "ProgrammingError", "InterfaceError", "OutOfMemory", "InternalError",
                 "OperationalError", "TransactionError", "NotFound", "MultipleFound"):
        cls = getattr(cm, name)
        assert issubclass(cls, cm.Error), name
        assert cls.__module__ == "cormorant"
    assert issubclass(cm.Timeout, TimeoutError)
    assert issubclass(cm.ConnectionError, ConnectionError)
    assert issubclass(cm.OutOfMemory, MemoryError)
    # one class per entry of the engine's CORM_ERRNO_MAP
    assert set(cm.errors.ERRORS) >= {"connection", "timeout", "cancelled", "integrity", "data",
                                     "programming", "misuse", "nomem", "internal",
                                     "operational", "transaction", "not_found",
                                     "multiple_found"}
    assert cm.errors.ERRORS["integrity"] is cm.IntegrityError
    e = cm.NotFound("no row")
    assert e.sqlstate is None and e.detail is None and e.hint is None
    assert cm.NotFound.code_name == "not_found"


def test_server_errors_map_to_classes(url, run):
    async def main():
        async with await _db(url) as db:
            await db.execute("DROP TABLE IF EXISTS py_err")
            await db.execute(
                "CREATE TABLE py_err (id int PRIMARY KEY, v int CHECK (v > 0), n int NOT NULL)")
            await db.execute("INSERT INTO py_err VALUES (1, 1, 1)")
            try:
                with pytest.raises(cm.IntegrityError) as ei:
                    await db.execute("INSERT INTO py_err VALUES (1, 1, 1)")
                e = ei.value
                assert e.sqlstate == "23505"
                assert e.code_name == "integrity"
                assert "duplicate key" in str(e)
                assert e.detail == "Key (id)=(1) already exists."

                with pytest.raises(cm.IntegrityError) as ei:
                    await db.execute("INSERT INTO py_err VALUES (2, 1, NULL)")
                assert ei.value.sqlstate == "23502"

                with pytest.raises(cm.DataError) as ei:
                    await db.fetchval("SELECT 1 / 0")
                assert ei.value.sqlstate == "22012"

                with pytest.raises(cm.ProgrammingError) as ei:
                    await db.fetch("SELECT * FROM py_no_such_table")
                assert ei.value.sqlstate == "42P01"

                with pytest.raises(cm.ProgrammingError) as ei:
                    await db.fetch("SELEC 1")
                assert ei.value.sqlstate == "42601"

                # a hint, through RAISE ... USING HINT
                with pytest.raises(cm.Error) as ei:
                    await db.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'd1', "
                        "HINT = 'h1', ERRCODE = '22023'; END $$")
                assert isinstance(ei.value, cm.DataError)
                assert (ei.value.sqlstate, ei.value.detail, ei.value.hint) == ("22023", "d1", "h1")
                assert str(ei.value) == "boom"

                with pytest.raises(cm.TransactionError) as ei:
                    await db.execute("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$")
                assert ei.value.sqlstate == "40001"

                # the pool still works after every error
                assert await db.fetchval("SELECT 3") == 3
            finally:
                await db.execute("DROP TABLE py_err")

    run(main())


def test_connection_refused(run):
    async def main():
        t = time.monotonic()
        with pytest.raises(cm.ConnectionError) as ei:
            await cm.connect("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=5)
        assert time.monotonic() - t < 5
        assert ei.value.code_name == "connection"
        assert isinstance(ei.value, ConnectionError)

    run(main())


def test_bad_conninfo_raises(run):
    async def main():
        with pytest.raises(cm.Error):
            await cm.connect("postgresql://[bad")

    run(main())


# ---- pipelining over a pool --------------------------------------------


def test_gather_1000_over_pool_of_4(url, run):
    async def main():
        async with await _db(url, max_size=4) as db:
            got = await asyncio.gather(*(db.fetchval("SELECT $1::int8", i) for i in range(1000)))
            assert got == list(range(1000))
            assert db.size <= 4
            # and mixed shapes, each task its own result
            async def one(i):
                row = await db.fetchrow("SELECT $1::int8 AS i, $2::text AS s", i, str(i))
                return row.i, row.s
            got = await asyncio.gather(*(one(i) for i in range(500)))
            assert got == [(i, str(i)) for i in range(500)]

    run(main())


def test_one_persistent_reader_per_socket_writer_only_when_needed(url, run):
    async def main():
        async with await _db(url, min_size=2, max_size=2) as db:
            await asyncio.gather(*(db.fetchval("SELECT 1") for _ in range(50)))
            await asyncio.sleep(0.05)
            watched, writers = db._pool._watched
            assert watched == db.size == 2
            assert writers == 0
            loop = asyncio.get_running_loop()
            readers = loop._selector.get_map() if hasattr(loop, "_selector") else None
            if readers is not None:
                assert len(readers) >= 2

    run(main())


def test_large_parameter_needs_the_writer_then_drops_it(url, run):
    async def main():
        async with await _db(url, max_size=1) as db:
            big = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than one flush
            assert await db.fetchval("SELECT length($1)", big) == len(big)
            assert await db.fetchval("SELECT md5($1)", big) == __import__("hashlib").md5(big).hexdigest()
            await asyncio.sleep(0.01)
            assert db._pool._watched[1] == 0  # no writer once everything is sent

    run(main())


def test_killed_backend_fails_its_requests_and_pool_recovers(url, run):
    async def main():
        async with await _db(url, min_size=1, max_size=2) as db:
            with pytest.raises(cm.ConnectionError):
                async with db.transaction():
                    pid = await db.fetchval("SELECT pg_backend_pid()")
                    killer = await cm.connect(url, max_size=1)
                    try:
                        assert await killer.fetchval("SELECT pg_terminate_backend($1::int)", pid)
                    finally:
                        await killer.close()
                    await db.fetchval("SELECT 1", timeout=5)
            # the broken connection was replaced
            for _ in range(3):
                assert await db.fetchval("SELECT 2", timeout=5) == 2
            assert await db.fetchval("SELECT pg_backend_pid()") != pid

    run(main())


# ---- cancellation and timeouts ----------------------------------------


def test_cancel_task_cancels_server_query(url, run):
    async def main():
        async with await _db(url, min_size=1, max_size=1) as db:
            t = time.monotonic()
            task = asyncio.ensure_future(db.fetchval("SELECT pg_sleep(10)"))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the only connection is usable again quickly: the server stopped
            assert await db.fetchval("SELECT 42", timeout=5) == 42
            assert time.monotonic() - t < 3
            assert await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(10)' "
                "AND state = 'active'") == 0

    run(main())


def test_wait_for_cancels(url, run):
    async def main():
        async with await _db(url, max_size=1) as db:
            t = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(db.fetchval("SELECT pg_sleep(10)"), 0.1)
            assert await db.fetchval("SELECT 1") == 1
            assert time.monotonic() - t < 3

    run(main())


def test_timeout(url, run):
    async def main():
        async with await _db(url, max_size=1) as db:
            t = time.monotonic()
            with pytest.raises(cm.Timeout) as ei:
                await db.fetchval("SELECT pg_sleep(10)", timeout=0.1)
            assert isinstance(ei.value, TimeoutError)
            assert ei.value.code_name == "timeout"
            assert time.monotonic() - t < 2
            assert await db.fetchval("SELECT 7", timeout=5) == 7
            assert time.monotonic() - t < 3
            # a query within its timeout is not affected
            assert await db.fetchval("SELECT 8", timeout=0.5) == 8
            with pytest.raises(ValueError):
                await db.fetchval("SELECT 1", timeout=-1)

    run(main())


def test_close_with_queries_in_flight(url, run):
    async def main():
        db = await _db(url)
        task = asyncio.ensure_future(db.fetchval("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.05)
        await db.close()
        with pytest.raises(cm.QueryCanceled):
            await task

    run(main())


# ---- transactions --------------------------------------------------------


def test_transactions(url, run):
    async def main():
        async with await _db(url, max_size=4) as db:
            await db.execute("DROP TABLE IF EXISTS py_txn")
            await db.execute("CREATE TABLE py_txn (x int)")
            try:
                async with db.transaction() as tx:
                    pid = await db.fetchval("SELECT pg_backend_pid()")
                    await db.execute("INSERT INTO py_txn VALUES (1)")
                    # every query in the block runs on the transaction's connection
                    for _ in range(5):
                        assert await db.fetchval("SELECT pg_backend_pid()") == pid
                    assert tx.connection.txn_depth == 1
                assert await db.fetchval("SELECT count(*) FROM py_txn") == 1

                with pytest.raises(RuntimeError):
                    async with db.transaction():
                        await db.execute("INSERT INTO py_txn VALUES (2)")
                        raise RuntimeError("boom")
                assert await db.fetchval("SELECT count(*) FROM py_txn") == 1

                # nested: savepoints
                async with db.transaction() as outer:
                    await db.execute("INSERT INTO py_txn VALUES (10)")
                    with pytest.raises(cm.DataError):
                        async with db.transaction():
                            assert outer.connection.txn_depth == 2
                            await db.execute("INSERT INTO py_txn VALUES (11)")
                            await db.fetchval("SELECT 1 / 0")
                    assert outer.connection.txn_depth == 1
                    async with db.transaction():
                        await db.execute("INSERT INTO py_txn VALUES (12)")
                    # the outer transaction survived the failed savepoint
                    assert sorted(r[0] for r in await db.fetch("SELECT x FROM py_txn")) == [1, 10, 12]
                assert sorted(r[0] for r in await db.fetch("SELECT x FROM py_txn")) == [1, 10, 12]

                # isolation
                async with db.transaction(isolation="serializable"):
                    assert await db.fetchval("SHOW transaction_isolation") == "serializable"
                async with db.transaction(isolation="repeatable_read", read_only=True):
                    assert await db.fetchval("SHOW transaction_isolation") == "repeatable read"
                    assert await db.fetchval("SHOW transaction_read_only") == "on"
                    with pytest.raises(cm.Error):
                        await db.execute("INSERT INTO py_txn VALUES (3)")
                with pytest.raises(ValueError):
                    async with db.transaction(isolation="chaos"):
                        pass
                # a savepoint takes no options
                async with db.transaction():
                    with pytest.raises(cm.InterfaceError):
                        async with db.transaction(isolation="serializable"):
                            pass

                # outside any block queries go back to the pool
                assert await db.fetchval("SELECT count(*) FROM py_txn") == 3
                assert db.size <= 4
            finally:
                await db.execute("DROP TABLE py_txn")

    run(main())


def test_transactions_in_concurrent_tasks_are_separate(url, run):
    async def main():
        async with await _db(url, max_size=4) as db:
            async def worker(i):
                async with db.transaction():
                    pid = await db.fetchval("SELECT pg_backend_pid()")
                    await asyncio.sleep(0.01)
                    assert await db.fetchval("SELECT pg_backend_pid()") == pid
                    return await db.fetchval("SELECT $1::int8", i)
            assert await asyncio.gather(*(worker(i) for i in range(12))) == list(range(12))

    run(main())


def test_serialization_failure_is_transaction_error(url, run):
    async def main():
        async with await _db(url, max_size=4) as db:
            await db.execute("DROP TABLE IF EXISTS py_ser")
            await db.execute("CREATE TABLE py_ser (id int PRIMARY KEY, v int)")
            await db.execute("INSERT INTO py_ser VALUES (1, 0)")
            try:
                first_read = asyncio.Event()
                both_read = asyncio.Event()
                n_read = 0

                async def bump():
                    nonlocal n_read
                    async with db.transaction(isolation="serializable"):
                        v = await db.fetchval("SELECT v FROM py_ser WHERE id = 1")
                        n_read += 1
                        if n_read == 2:
                            both_read.set()
                        await asyncio.wait_for(both_read.wait(), 5)
                        await db.execute("UPDATE py_ser SET v = $1 WHERE id = 1", v + 1)

                results = await asyncio.gather(bump(), bump(), return_exceptions=True)
                errors = [r for r in results if isinstance(r, BaseException)]
                assert len(errors) == 1, results
                assert isinstance(errors[0], cm.TransactionError)
                assert errors[0].sqlstate == "40001"
                assert await db.fetchval("SELECT v FROM py_ser WHERE id = 1") == 1
                del first_read
            finally:
                await db.execute("DROP TABLE py_ser")

    run(main())


def test_cancelled_transaction_rolls_back_and_releases(url, run):
    async def main():
        async with await _db(url, max_size=1) as db:
            await db.execute("DROP TABLE IF EXISTS py_txc")
            await db.execute("CREATE TABLE py_txc (x int)")
            try:
                async def slow():
                    async with db.transaction():
                        await db.execute("INSERT INTO py_txc VALUES (1)")
                        await db.fetchval("SELECT pg_sleep(10)")
                task = asyncio.ensure_future(slow())
                await asyncio.sleep(0.2)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # the single connection came back, rolled back
                assert await db.fetchval("SELECT count(*) FROM py_txc", timeout=5) == 0
            finally:
                await db.execute("DROP TABLE py_txc")

    run(main())


def test_cancel_while_waiting_for_a_connection(url, run):
    async def main():
        async with await _db(url, min_size=1, max_size=1) as db:
            held = asyncio.Event()
            done = asyncio.Event()

            async def holder():
                async with db.transaction():
                    held.set()
                    await done.wait()
                    return await db.fetchval("SELECT 1")

            async def waiter():
                async with db.transaction():
                    return await db.fetchval("SELECT 2")

            h = asyncio.ensure_future(holder())
            await held.wait()
            w = asyncio.ensure_future(waiter())
            await asyncio.sleep(0.05)
            assert not w.done()  # waiting in acquire: the only connection is lent
            w.cancel()
            with pytest.raises(asyncio.CancelledError):
                await w
            done.set()
            assert await h == 1
            # the connection went back; a new transaction gets it
            async with db.transaction():
                assert await db.fetchval("SELECT 3") == 3
            assert db.size == 1

    run(main())


def test_queries_wait_for_a_lent_out_pool(url, run):
    """With every connection lent, shared queries queue until one is back."""
    async def main():
        async with await _db(url, min_size=1, max_size=1) as db:
            async with db.transaction():
                other = asyncio.ensure_future(asyncio.shield(db._pool.fetchval("SELECT 5")))
                await asyncio.sleep(0.05)
                assert not other.done()
            assert await other == 5

    run(main())


def test_pool_options(url, run):
    async def main():
        async with await _db(url, min_size=2, max_size=3, prepared_statements=False,
                             statement_cache_size=4, connect_timeout=5) as db:
            assert await asyncio.gather(*(db.fetchval("SELECT $1::int8 * 2", i) for i in range(100))) \
                == [2 * i for i in range(100)]
            # unnamed statements only: nothing prepared on the server
            assert await db.fetchval("SELECT count(*) FROM pg_prepared_statements") == 0
            assert 2 <= db.size <= 3
        with pytest.raises(ValueError):
            await cm.connect(url, min_size=3, max_size=2)
        with pytest.raises(TypeError):
            cm._core.Pool(url, nonsense=1)

    run(main())


def test_pool_is_bound_to_its_loop(url):
    async def make():
        return await _db(url)

    db = asyncio.run(make())

    async def use():
        with pytest.raises(cm.InterfaceError, match="another event loop"):
            await db.fetchval("SELECT 1")
        await db.close()

    asyncio.run(use())
    with pytest.raises(RuntimeError):
        cm._core.Pool(url)  # no running loop


def test_idle_pool_does_not_spin(url, run):
    """After queries, a transaction and a timeout, an idle pool sleeps: the
    timer follows the engine's deadlines and nothing polls."""
    async def main():
        async with await _db(url, min_size=2, max_size=4) as db:
            await asyncio.gather(*(db.fetchval("SELECT 1") for _ in range(100)))
            async with db.transaction():
                await db.fetchval("SELECT 1")
            with pytest.raises(cm.Timeout):
                await db.fetchval("SELECT pg_sleep(1)", timeout=0.05)
            await asyncio.sleep(0.1)
            c0 = time.process_time()
            await asyncio.sleep(0.5)
            assert time.process_time() - c0 < 0.1

    run(main())
