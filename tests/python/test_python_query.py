"""The query API on models: every construct against PostgreSQL, both styles
(select().where() chains and filter(**lookups)), result shapes, writes,
upserts, RETURNING, joins, aggregates, CTEs, windows, streaming, bulk
insert, and 1,000 concurrent model fetches over a pool of 4."""

from __future__ import annotations

import asyncio
from typing import Optional

import pytest

import cormorant as cm

pytestmark = pytest.mark.database


class Author(cm.Model, table="tq_author"):
    id: int = cm.column(primary_key=True)
    name: str = cm.column(unique=True)
    city: Optional[str] = None
    age: int = 0


class Book(cm.Model, table="tq_book"):
    id: int = cm.column(primary_key=True)
    author_id: int = cm.column(references=Author, on_delete="cascade", index=True)
    title: str
    pages: int = 100


AUTHORS = [("ann", "Oslo", 30), ("bob", "Rome", 40), ("cat", None, 50), ("dan", "Oslo", 60),
           ("Eve_%", "Rome", 70)]


@pytest.fixture
def db(url):
    """A database with the two tables filled, for one test's event loop."""

    async def setup():
        d = await cm.connect(url, min_size=1, max_size=4)
        await d.drop_tables(Author, Book, if_exists=True)
        await d.create_tables(Author, Book)
        authors = await Author.bulk_create([Author(name=n, city=c, age=a) for n, c, a in AUTHORS])
        books = [Book(author_id=a.id, title=f"{a.name}-{k}", pages=10 * (k + 1))
                 for a in authors for k in range(a.age // 20)]
        await Book.bulk_create(books)
        return d

    return setup


def run_with(setup, body):
    async def main():
        d = await setup()
        try:
            await body(d)
        finally:
            await d.drop_tables(Author, Book, if_exists=True)
            await d.close()

    asyncio.run(main())


def test_select_where_order_limit_offset(db):
    async def body(d):
        got = await Author.select().where(Author.age >= 40).order_by(Author.age.desc()).limit(2).offset(1)
        assert [a.name for a in got] == ["dan", "cat"]
        assert all(type(a) is Author for a in got)
        got = await Author.select().where(Author.city == "Oslo", Author.age < 50)
        assert [a.name for a in got] == ["ann"]
        got = await Author.select().where((Author.city == "Rome") | (Author.age == 30)).order_by(Author.id)
        assert [a.name for a in got] == ["ann", "bob", "Eve_%"]
        got = await Author.select().where(~(Author.city == "Oslo")).order_by(Author.name)
        assert [a.name for a in got] == ["Eve_%", "bob"]  # NULL city is neither
        got = await Author.select().where(Author.city == None).order_by(Author.id)  # noqa: E711
        assert [a.name for a in got] == ["cat"]
        got = await Author.select().order_by(Author.city.asc().nulls_first(True), Author.name)
        assert got[0].name == "cat"

    run_with(db, body)


def test_column_subsets_and_shapes(db):
    async def body(d):
        got = await Author.select(Author.id, Author.name).order_by(Author.id).limit(1)
        a = got[0]
        assert a.name == "ann"
        with pytest.raises(AttributeError):
            a.city  # not loaded
        assert a.to_dict() == {"id": a.id, "name": "ann"}
        rows = await Author.select(Author.name, Author.age).order_by(Author.id).limit(2).dicts()
        assert rows == [{"name": "ann", "age": 30}, {"name": "bob", "age": 40}]
        rows = await Author.select(Author.name, (Author.age + 1).label("next")).order_by(Author.id).limit(2).tuples()
        assert rows == [("ann", 31), ("bob", 41)]
        first = await Author.select().order_by(Author.age.desc()).first()
        assert first is not None and first.name == "Eve_%"
        assert await Author.filter(name="nobody").first() is None
        assert await Author.select(Author.age).order_by(Author.age).scalar() == 30
        assert await Author.select().count() == 5
        assert await Author.filter(city="Oslo").count() == 2
        assert await Author.filter(city="Oslo").exists()
        assert not await Author.filter(city="Paris").exists()

    run_with(db, body)


def test_lookups(db):
    async def body(d):
        async def names(**kw):
            return sorted(a.name for a in await Author.filter(**kw))

        assert await names(age__gt=50) == ["Eve_%", "dan"]
        assert await names(age__gte=50) == ["Eve_%", "cat", "dan"]
        assert await names(age__lt=40) == ["ann"]
        assert await names(age__lte=40) == ["ann", "bob"]
        assert await names(age__ne=30, city="Oslo") == ["dan"]
        assert await names(name__in=["ann", "bob", "zed"]) == ["ann", "bob"]
        assert await names(name__in=[]) == []
        assert await names(name__not_in=["ann", "bob"]) == ["Eve_%", "cat", "dan"]
        assert await names(name__contains="_%") == ["Eve_%"]   # matched literally
        assert await names(name__icontains="EVE") == ["Eve_%"]
        assert await names(name__startswith="a") == ["ann"]
        assert await names(name__istartswith="E") == ["Eve_%"]
        assert await names(name__endswith="n") == ["ann", "dan"]
        assert await names(name__like="_a_") == ["cat", "dan"]
        assert await names(name__ilike="e%") == ["Eve_%"]
        assert await names(city__isnull=True) == ["cat"]
        assert await names(city__isnull=False, age__range=(40, 60)) == ["bob", "dan"]
        assert await names(city=None) == ["cat"]
        ann = await Author.get(name="ann")
        assert [a.name for a in await Author.filter(pk=ann.id)] == ["ann"]
        # The expression style for the same.
        got = await Author.select().where(Author.name.in_(["ann", "cat"]), Author.age.between(20, 35))
        assert [a.name for a in got] == ["ann"]
        got = await Author.select().where(Author.name.not_in(["ann"]), Author.city.is_not_null(),
                                          Author.name.startswith("b"))
        assert [a.name for a in got] == ["bob"]
        assert [a.name for a in await Author.select().where(Author.city.is_null())] == ["cat"]
        assert [a.name for a in await Author.select().where(Author.name.ilike("ANN"))] == ["ann"]
        assert [a.name for a in await Author.select().where(Author.name.like("a%"))] == ["ann"]

    run_with(db, body)


def test_aggregates_group_by_having(db):
    async def body(d):
        rows = await (Author.select(Author.city, cm.count().label("n"), cm.sum(Author.age).label("total"),
                                    cm.avg(Author.age).label("mean"), cm.min(Author.age).label("lo"),
                                    cm.max(Author.age).label("hi"))
                      .where(Author.city.is_not_null())
                      .group_by(Author.city)
                      .having(cm.count() > 1)
                      .order_by(Author.city)
                      .dicts())
        assert [(r["city"], r["n"], r["total"], r["lo"], r["hi"]) for r in rows] == \
            [("Oslo", 2, 90, 30, 60), ("Rome", 2, 110, 40, 70)]
        assert float(rows[0]["mean"]) == 45.0
        n = await Author.select(cm.count(Author.city, distinct=True)).scalar()
        assert n == 2

    run_with(db, body)


def test_joins(db):
    async def body(d):
        # The ON condition follows the foreign key.
        books = await Book.select().join(Author).where(Author.city == "Oslo").order_by(Book.id)
        assert all(type(b) is Book for b in books)
        assert {b.title.split("-")[0] for b in books} == {"ann", "dan"}
        rows = await (Book.select(Book.title, Author.name.label("author"))
                      .join(Author).where(Author.name == "bob").order_by(Book.title).tuples())
        assert rows == [("bob-0", "bob"), ("bob-1", "bob")]
        # LEFT JOIN with an explicit condition: authors without books.
        await Author.create(name="zed")
        lonely = await (Author.select(Author.name)
                        .join(Book, Book.author_id == Author.id, left=True)
                        .where(Book.id.is_null()).dicts())
        assert lonely == [{"name": "zed"}]

    run_with(db, body)


def test_update_delete_counts_and_returning(db):
    async def body(d):
        assert await Author.filter(city="Oslo").update(age=1) == 2
        assert sorted(a.age for a in await Author.filter(city="Oslo")) == [1, 1]
        assert await Author.update(city="X") == 5  # every row
        changed = await Author.filter(name="ann").update(age=Author.age + 10).returning()
        assert [(a.name, a.age) for a in changed] == [("ann", 11)]
        gone = await Book.filter(pages__gt=10).delete().returning(Book.title)
        assert sorted(b.title for b in gone)[:2] == ["Eve_%-1", "Eve_%-2"]
        left = await Book.select().count()
        assert left > 0 and await Book.select().delete() == left
        assert await Book.select().count() == 0
        assert await Author.delete_where(name="bob") == 1
        assert await Author.filter(name="nobody").delete() == 0

    run_with(db, body)


def test_insert_upsert_returning(db):
    async def body(d):
        assert await Author.insert(name="fay", age=20) == 1
        assert await Author.insert({"name": "gus"}, {"name": "hal", "city": "Bern"}) == 2
        # ON CONFLICT DO NOTHING.
        assert await Author.insert(name="fay", age=99).on_conflict(Author.name) == 0
        assert (await Author.get(name="fay")).age == 20
        # ON CONFLICT DO UPDATE of every inserted field, RETURNING the row.
        rows = await Author.insert(name="fay", age=21, city="Kyiv").on_conflict(Author.name, update=True).returning()
        assert [(a.name, a.age, a.city) for a in rows] == [("fay", 21, "Kyiv")]
        # DO UPDATE of chosen fields.
        rows = await Author.insert(name="fay", age=22, city="Nowhere").on_conflict(
            Author.name, update=[Author.age]).returning(Author.age, Author.city)
        assert [(a.age, a.city) for a in rows] == [(22, "Kyiv")]
        with pytest.raises(cm.IntegrityError):
            await Author.insert(name="fay")
        assert "ON CONFLICT" in Author.insert(name="x").on_conflict(Author.name).sql()

    run_with(db, body)


def test_cte_subquery_and_window(db):
    async def body(d):
        # IN (subquery)
        old = Author.select(Author.id).where(Author.age >= 60)
        titles = sorted(b.title for b in await Book.select().where(Book.author_id.in_(old)))
        assert titles == ["Eve_%-0", "Eve_%-1", "Eve_%-2", "dan-0", "dan-1", "dan-2"]
        # WITH … AS (…), read through cm.from_cte
        q = (Book.select().with_cte("romans", Author.select(Author.id).where(Author.city == "Rome"))
             .where(Book.author_id.in_(cm.from_cte("romans", "id"))))
        assert sql_has(q.sql(), 'WITH "romans" AS')
        assert sorted(b.title for b in await q)[:2] == ["Eve_%-0", "Eve_%-1"]
        # EXISTS
        with_books = await Author.select().where(cm.exists(Book.select().where(Book.author_id == Author.id))).count()
        assert with_books == 5
        # A window function.
        rows = await (Book.select(Book.title, cm.func.row_number().over(
            partition_by=[Book.author_id], order_by=[Book.pages.desc()]).label("rank"))
            .join(Author).where(Author.name == "dan").order_by(Book.title).tuples())
        assert rows == [("dan-0", 3), ("dan-1", 2), ("dan-2", 1)]
        # Functions by name.
        assert await Author.select(cm.func.upper(Author.name)).where(Author.name == "ann").scalar() == "ANN"

    run_with(db, body)


def sql_has(text, part):
    return part in text


def test_streaming_by_keyset(db):
    async def body(d):
        seen = [a.name async for a in Author.select()]
        assert sorted(seen) == sorted(n for n, _, _ in AUTHORS)
        ids = [b.id async for b in Book.filter(pages__gte=10).iterate(batch_size=2)]
        assert ids == sorted(ids) and len(ids) == await Book.select().count()
        with pytest.raises(cm.ProgrammingError):
            async for _ in Author.select().order_by(Author.name):
                pass

    run_with(db, body)


def test_bulk_create_fills_ids(db):
    async def body(d):
        objs = [Author(name=f"bulk{i}", age=i) for i in range(2500)]
        out = await Author.bulk_create(objs, batch_size=1000)
        assert out is objs
        assert all(o.is_saved and o.changed_fields == () for o in objs)
        ids = [o.id for o in objs]
        assert len(set(ids)) == 2500 and ids == sorted(ids)
        got = await Author.get(id=objs[1234].id)
        assert got.name == "bulk1234" and got.age == 1234

    run_with(db, body)


def test_gather_1000_model_fetches_over_a_pool_of_4(url):
    async def main():
        d = await cm.connect(url, min_size=1, max_size=4)
        try:
            await d.drop_tables(Author, Book, if_exists=True)
            await d.create_tables(Author, Book)
            authors = await Author.bulk_create([Author(name=f"a{i}", age=i) for i in range(1000)])
            got = await asyncio.gather(*(Author.get(id=a.id) for a in authors))
            assert [(g.id, g.name, g.age) for g in got] == [(a.id, a.name, a.age) for a in authors]
            assert d.size <= 4
            lists = await asyncio.gather(*(Author.filter(age__lt=i % 50) for i in range(1000)))
            assert [len(x) for x in lists] == [i % 50 for i in range(1000)]
            await d.drop_tables(Author, Book)
        finally:
            await d.close()

    asyncio.run(main())


def test_timeout_and_cancel_on_model_queries(url):
    async def main():
        d = await cm.connect(url, min_size=1, max_size=2)
        try:
            await d.drop_tables(Author, Book, if_exists=True)
            await d.create_tables(Author, Book)
            await Author.create(name="sleepy")
            slow = Author.select().where(cm.func.pg_sleep(5).cast("text") == "")
            with pytest.raises(cm.Timeout):
                await slow.timeout(0.2)
            task = asyncio.ensure_future(slow.all())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await Author.select().count() == 1
            await d.drop_tables(Author, Book)
        finally:
            await d.close()

    asyncio.run(main())


class Spy(cm.Model, table="tq_spy"):
    id: int = cm.column(primary_key=True)
    a: int
    b: str

    def __init__(self, **fields):
        Spy.inits += 1
        super().__init__(**fields)


Spy.inits = 0  # type: ignore[attr-defined]


def test_rows_become_instances_in_c(url):
    """Fetched rows run no Python code per row (no __init__), carry no
    __dict__, and each result column lands in its field's slot by
    corm_query_column_field (reordered and aliased columns too)."""

    async def main():
        d = await cm.connect(url, min_size=1, max_size=2)
        try:
            await d.drop_tables(Spy, if_exists=True)
            await d.create_tables(Spy)
            await Spy.insert(*({"a": i, "b": f"b{i}"} for i in range(100)))
            Spy.inits = 0
            rows = await Spy.select().order_by(Spy.a)
            assert len(rows) == 100 and Spy.inits == 0
            assert not hasattr(rows[0], "__dict__")
            assert rows[7].is_saved and rows[7].changed_fields == ()
            # Columns in another order than the model's.
            r = await Spy.select(Spy.b, Spy.a).where(Spy.a == 3).first()
            assert r is not None and (r.a, r.b) == (3, "b3")
            # A computed column labelled with a field's name fills that field.
            r = await Spy.select(Spy.id, (Spy.a * 10).label("a")).where(Spy.a == 4).first()
            assert r is not None and r.a == 40
            with pytest.raises(AttributeError):
                r.b
            # Other labels are not fields: .dicts() and .tuples() show them.
            assert await Spy.select((Spy.a + 1).label("next")).where(Spy.a == 1).dicts() == [{"next": 2}]
            await d.drop_tables(Spy)
        finally:
            await d.close()

    asyncio.run(main())
