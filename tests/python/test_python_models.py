"""Models: declaration from annotations, DDL from libcore, every type through
a round trip, defaults, changed-field tracking, bad input caught before
anything is sent, get(), transactions with models, the issue's example."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Optional

import pytest

import cormorant as cm
from cormorant import _core

pytestmark = pytest.mark.database


# ---- the issue's example, unchanged --------------------------------------------


class User(cm.Model):
    id: int = cm.column(primary_key=True)
    name: str = cm.column(max_length=30)
    email: str | None = None


class Post(cm.Model):
    id: int = cm.column(primary_key=True)
    user_id: int = cm.column(references=User, on_delete="cascade")
    title: str


def test_issue_example(url, run):
    async def main():
        db = await cm.connect(url, min_size=1, max_size=10)  # the first connect() is the models' default database
        try:
            await db.drop_tables(User, Post, if_exists=True)
            await db.create_tables(User, Post)
            u = await User.create(name="Gemini")                 # INSERT … RETURNING, fills u.id
            assert isinstance(u.id, int) and u.email is None
            u2 = User(name="Ada"); await u2.save()
            assert u2.id == u.id + 1
            users = await User.select().where(User.name == "Gemini").order_by(User.id).limit(10)  # list[User]
            assert users == [u] and type(users[0]) is User
            users = await User.filter(name="Gemini", id__gte=1)  # Django-style lookups
            assert [x.id for x in users] == [u.id]
            one = await User.get(id=u.id)                        # cm.NotFound when absent
            assert one.name == "Gemini"
            with pytest.raises(cm.NotFound):
                await User.get(id=-1)
            async with db.transaction():                         # nested blocks are savepoints
                await Post.create(user_id=u.id, title="hello")
            posts = await Post.select()
            assert [(p.user_id, p.title) for p in posts] == [(u.id, "hello")]
            # ON DELETE CASCADE from the foreign key.
            await u.delete()
            assert await Post.select().count() == 0
            await db.drop_tables(User, Post)
        finally:
            await db.close()

    run(main())


# ---- declaration ----------------------------------------------------------------


class BlogPost(cm.Model):
    id: int = cm.column(primary_key=True)
    title: str


class Account(cm.Model, table="tm_accounts"):
    id: uuid.UUID = cm.column(primary_key=True)
    owner: str = cm.column(unique=True, index=True)
    created: dt.datetime = cm.sql("now()")
    score: int = 0
    tags: list[str] = cm.column(default_factory=list)
    note: Optional[str] = cm.column(server_default="'none'")


def test_table_names_and_ddl():
    assert BlogPost.__table__.name == "blog_post"
    assert User.__table__.name == "user"
    assert Account.__table__.name == "tm_accounts"
    ddl = cm.model.registry.ddl([Account.__table__])
    text = " ".join(ddl)
    assert 'CREATE TABLE "tm_accounts"' in text
    assert '"id" uuid' in text and "gen_random_uuid()" in text
    assert '"created" timestamptz' in text and "now()" in text
    assert '"tags" text[]' in text and "UNIQUE" in text
    # The SQL comes from libcore: the binding only names types.
    assert User.select().where(User.name == "x").sql() == \
        'SELECT "id", "name", "email" FROM "user" WHERE "name" = $1'


def test_columns_and_instances():
    assert isinstance(User.name, cm.Column) and isinstance(User.name, cm.Expr)
    assert User.name.name == "name" and User.name.index == 1 and User.name.model is User
    u = User(name="x")
    assert u.name == "x" and u.email is None
    with pytest.raises(AttributeError):
        u.id  # not set: the server fills it
    assert not hasattr(u, "__dict__")  # values live in C slots, no per-instance dict
    assert u.changed_fields == ("name", "email")
    assert repr(u) == "User(name='x', email=None)"
    with pytest.raises(AttributeError):
        User.name = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        User("positional")  # type: ignore[misc]


class Stamped:
    """A plain mixin: its annotated fields join each model that uses it."""
    created: dt.datetime = cm.sql("now()")
    revision: int = 1


class Page(Stamped, cm.Model, table="tm_page"):
    id: int = cm.column(primary_key=True)
    body: str


def test_mixin_fields(url, run):
    assert Page.__table__.names == ("created", "revision", "id", "body")

    async def main():
        db = await cm.connect(url, min_size=1, max_size=2)
        try:
            await db.drop_tables(Page, if_exists=True)
            await db.create_tables(Page)
            p = await Page.create(body="b")
            assert p.revision == 1 and isinstance(p.created, dt.datetime)
            await db.drop_tables(Page)
        finally:
            await db.close()

    run(main())


def test_unsupported_annotations_fail_at_definition():
    with pytest.raises(TypeError, match="arrays of enums"):
        class Palette(cm.Model, table="tm_palette"):
            id: int = cm.column(primary_key=True)
            moods: list[Mood]
    with pytest.raises(TypeError, match="no PostgreSQL type"):
        class Odd(cm.Model, table="tm_odd"):
            id: int = cm.column(primary_key=True)
            x: complex
    with pytest.raises(TypeError, match="only X | None"):
        class Odd2(cm.Model, table="tm_odd2"):
            id: int = cm.column(primary_key=True)
            x: int | str
    with pytest.raises(TypeError, match="may not shadow Model.save"):
        class Shadow(cm.Model, table="tm_shadow"):
            id: int = cm.column(primary_key=True)
            save: bool
    with pytest.raises(TypeError, match="subclassing the model"):
        class Admin(User):
            level: int
    with pytest.raises(TypeError):
        User.name.__get__(BlogPost(title="x"), BlogPost)
    # A model of a table name in use is refused by libcore's registry.
    with pytest.raises(cm.ProgrammingError):
        class UserAgain(cm.Model, table="user"):
            id: int = cm.column(primary_key=True)


def test_defaults():
    a = Account(owner="o")
    assert a.score == 0 and a.tags == [] and a.tags is not Account(owner="p").tags
    with pytest.raises(AttributeError):
        a.created  # server default: filled on insert
    with pytest.raises(TypeError, match="missing required field 'title'"):
        BlogPost()


def test_defaults_round_trip(url, run):
    async def main():
        db = await cm.connect(url, min_size=1, max_size=2)
        try:
            await db.drop_tables(Account, if_exists=True)
            await db.create_tables(Account)
            a = await Account.create(owner="o")
            assert isinstance(a.id, uuid.UUID)
            assert isinstance(a.created, dt.datetime) and a.created.tzinfo is not None
            assert a.note == "none" and a.tags == [] and a.score == 0
            with pytest.raises(cm.IntegrityError):
                await Account.create(owner="o")
            await db.drop_tables(Account)
        finally:
            await db.close()

    run(main())


# ---- every type -------------------------------------------------------------------


class Mood(enum.Enum):
    SAD = "sad"
    OK = "ok"
    HAPPY = "happy"


class Everything(cm.Model, table="tm_everything"):
    id: int = cm.column(primary_key=True)
    i: int
    s: str
    vc: str = cm.column(max_length=5)
    f: float
    b: bool
    d: Decimal
    d2: Decimal = cm.column(precision=10, scale=2)
    ts: dt.datetime
    naive: dt.datetime = cm.column(timezone=False)
    day: dt.date
    t: dt.time
    td: dt.timedelta
    u: uuid.UUID
    raw: bytes
    j: dict
    jl: list
    ints: list[int]
    strs: list[Optional[str]]
    grid: list[list[int]]
    mood: Mood
    maybe: Optional[int] = None
    maybe_mood: Optional[Mood] = None


VALUES = dict(
    i=-(2**63),
    s="héllo\n'\"",
    vc="abcde",
    f=1.5e300,
    b=True,
    d=Decimal("-12345678901234567890.000000001"),
    d2=Decimal("12.50"),
    ts=dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.timezone.utc),
    naive=dt.datetime(1999, 12, 31, 1, 2, 3),
    day=dt.date(1, 1, 1),
    t=dt.time(13, 14, 15, 16),
    td=dt.timedelta(days=-3, seconds=5, microseconds=7),
    u=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    raw=b"\x00\xff\x01",
    j={"a": [1, 2, {"b": None}], "c": "d"},
    jl=[1, "two", 3.0],
    ints=[1, -2, 2**62],
    strs=["a", None, "c"],
    grid=[[1, 2], [3, 4]],
    mood=Mood.HAPPY,
)


def test_every_type_round_trip(url, run):
    async def main():
        db = await cm.connect(url, min_size=1, max_size=2)
        try:
            await db.drop_tables(Everything, if_exists=True)
            await db.create_tables(Everything)
            e = await Everything.create(**VALUES)
            got = await Everything.get(id=e.id)
            for k, v in VALUES.items():
                assert getattr(got, k) == v, k
                assert type(getattr(got, k)) is type(v), k
            assert got.maybe is None and got.maybe_mood is None
            # The server's types are those the annotations name.
            types = dict(await db.fetch(
                "SELECT column_name::text, format_type(atttypid, atttypmod) FROM "
                "information_schema.columns c JOIN pg_attribute a ON a.attname = c.column_name "
                "AND a.attrelid = 'tm_everything'::regclass WHERE c.table_name = 'tm_everything'"))
            assert types["i"] == "bigint" and types["s"] == "text"
            assert types["vc"] == "character varying(5)" and types["f"] == "double precision"
            assert types["d"] == "numeric" and types["d2"] == "numeric(10,2)"
            assert types["ts"] == "timestamp with time zone"
            assert types["naive"] == "timestamp without time zone"
            assert types["td"] == "interval" and types["u"] == "uuid" and types["raw"] == "bytea"
            assert types["j"] == "jsonb" and types["jl"] == "jsonb"
            assert types["ints"] == "bigint[]" and types["grid"] == "bigint[]"
            assert types["mood"] == "mood"
            # Values in WHERE are typed by their column, enums and arrays too.
            assert (await Everything.filter(mood=Mood.HAPPY, d2=Decimal("12.5"), u=VALUES["u"],
                                            ints=VALUES["ints"], ts=VALUES["ts"]).count()) == 1
            assert await Everything.filter(mood__in=[Mood.SAD, Mood.OK]).count() == 0
            # Update every field to another value, then NULLs.
            got.maybe, got.maybe_mood, got.mood, got.ints = 7, Mood.SAD, Mood.OK, []
            await got.save()
            again = await Everything.get(id=e.id)
            assert (again.maybe, again.maybe_mood, again.mood, again.ints) == (7, Mood.SAD, Mood.OK, [])
            await db.drop_tables(Everything)
        finally:
            await db.close()

    run(main())


# ---- bad input, before anything is sent -------------------------------------------


def test_bad_input_raises_before_sending():
    # No database is involved: each of these fails while building.
    with pytest.raises(TypeError, match="user.name: expected"):
        User(name=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected field 'nope'"):
        User(name="x", nope=1)  # type: ignore[call-arg]
    with pytest.raises(cm.DataError, match="None for a NOT NULL column"):
        User(name=None)  # type: ignore[arg-type]
    u = User(name="x")
    with pytest.raises(TypeError):
        u.name = 5  # type: ignore[assignment]
    with pytest.raises(cm.DataError):
        u.name = None  # type: ignore[assignment]
    assert u.name == "x"
    with pytest.raises(TypeError):
        Everything.i == "1"  # noqa: B015
    with pytest.raises(TypeError):
        Everything.b == 1  # noqa: B015
    with pytest.raises(TypeError):
        Everything.i == True  # noqa: B015,E712
    with pytest.raises(TypeError, match="item 1"):
        Everything.ints == [1, "2"]  # noqa: B015
    with pytest.raises(TypeError):
        Everything.mood == "happy!"  # noqa: B015
    with pytest.raises(cm.ProgrammingError, match="no field 'nope'"):
        User.filter(nope=1)
    with pytest.raises(cm.ProgrammingError, match="unknown lookup 'near'"):
        User.filter(name__near="x")
    with pytest.raises(TypeError):
        User.filter(id__in=["a"])
    with pytest.raises(cm.ProgrammingError):
        User.select().update(nope=1)
    with pytest.raises(TypeError):
        User.select().update(name=3).sql()
    with pytest.raises(cm.ProgrammingError):
        User.insert(nope=1)
    with pytest.raises(TypeError, match="truth value"):
        User.select().where(User.id == 1 and User.id == 2)
    with pytest.raises(TypeError):
        User.select().where(True)  # type: ignore[arg-type]


def test_bad_input_in_coroutines_fails_without_a_database(run):
    # create() and save() check fields before asking for a connection: no
    # database exists in this test, so reaching the pool would raise
    # InterfaceError instead.
    async def main():
        with pytest.raises(TypeError):
            await User.create(name=b"x")
        with pytest.raises(cm.DataError):
            await Post.create(user_id=None, title="t")

    run(main())


# ---- changed-field tracking ---------------------------------------------------------


def test_save_updates_only_changed_fields(url, run):
    async def main():
        db = await cm.connect(url, min_size=1, max_size=2)
        try:
            await db.drop_tables(User, Post, if_exists=True)
            await db.create_tables(User, Post)
            u = await User.create(name="a", email="a@x")
            assert u.changed_fields == () and u.is_saved
            # Two copies of the row; each changes a different field.
            one, two = await User.get(id=u.id), await User.get(id=u.id)
            assert one.changed_fields == ()
            one.name = "b"
            assert one.changed_fields == ("name",)
            two.email = "b@x"
            await one.save()
            await two.save()  # writes email only, so one's name stays
            got = await User.get(id=u.id)
            assert (got.name, got.email) == ("b", "b@x")
            # The UPDATE names only the changed column.
            log = []
            await db.execute("CREATE TABLE tm_log (col text)")
            await db.execute(
                "CREATE FUNCTION tm_log_update() RETURNS trigger AS $$ BEGIN "
                "IF NEW.name IS DISTINCT FROM OLD.name THEN INSERT INTO tm_log VALUES ('name'); END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql")
            await db.execute('CREATE TRIGGER tm_t BEFORE UPDATE OF name ON "user" '
                             "FOR EACH ROW EXECUTE FUNCTION tm_log_update()")
            got.email = "c@x"
            await got.save()
            log = await db.fetch("SELECT col FROM tm_log")
            assert log == []  # UPDATE OF name did not fire: name was not in the SET list
            got.name = "c"
            await got.save()
            assert [r[0] for r in await db.fetch("SELECT col FROM tm_log")] == ["name"]
            # Nothing changed: no statement at all.
            await got.save()
            await got.refresh()
            assert got.name == "c"
            await db.execute("DROP TABLE tm_log")
            await db.execute("DROP FUNCTION tm_log_update() CASCADE")
            await db.drop_tables(User, Post)
        finally:
            await db.close()

    run(main())


# ---- get, transactions, using ---------------------------------------------------------


def test_get_not_found_and_multiple(url, run):
    async def main():
        db = await cm.connect(url, min_size=1, max_size=2)
        try:
            await db.drop_tables(User, Post, if_exists=True)
            await db.create_tables(User, Post)
            await User.create(name="twin")
            await User.create(name="twin")
            with pytest.raises(cm.MultipleFound):
                await User.get(name="twin")
            with pytest.raises(cm.NotFound):
                await User.get(name="nobody")
            with pytest.raises(cm.NotFound):
                await User.filter(name="nobody").get()
            assert isinstance(cm.NotFound("x"), cm.Error)
            await db.drop_tables(User, Post)
        finally:
            await db.close()

    run(main())


def test_transactions_with_models(url, run):
    async def main():
        db = await cm.connect(url, min_size=1, max_size=3)
        try:
            await db.drop_tables(User, Post, if_exists=True)
            await db.create_tables(User, Post)
            with pytest.raises(RuntimeError):
                async with db.transaction():
                    await User.create(name="gone")
                    # Inside, the transaction's connection sees its own rows.
                    assert await User.filter(name="gone").exists()
                    raise RuntimeError
            assert not await User.filter(name="gone").exists()
            async with db.transaction():
                u = await User.create(name="kept")
                try:
                    async with db.transaction():  # a savepoint
                        await Post.create(user_id=u.id, title="p1")
                        await Post.create(user_id=-5, title="bad")  # foreign key fails
                except cm.IntegrityError:
                    pass
                await Post.create(user_id=u.id, title="p2")
            assert [p.title for p in await Post.select()] == ["p2"]
            async with db.transaction(isolation="serializable", read_only=True):
                assert await db.fetchval("SHOW transaction_isolation") == "serializable"
                assert [x.name for x in await User.select()] == ["kept"]
                with pytest.raises(cm.Error):
                    await User.create(name="nope")  # read-only transaction
            assert await User.filter(name="kept").count() == 1
            await db.drop_tables(User, Post)
        finally:
            await db.close()

    run(main())


def test_using_another_database(url, run):
    async def main():
        first = await cm.connect(url, min_size=1, max_size=2)
        second = await cm.connect(url, min_size=1, max_size=2)
        try:
            assert cm.default_database() is first
            await first.drop_tables(BlogPost, if_exists=True)
            await second.create_tables(BlogPost)
            p = await BlogPost.create(title="t", db=second)
            assert [x.id for x in await BlogPost.select().using(second)] == [p.id]
            await first.close()
            with pytest.raises(cm.InterfaceError):
                await BlogPost.select()  # the default database is closed
            assert await BlogPost.select().using(second).count() == 1
            await second.drop_tables(BlogPost)
        finally:
            await first.close()
            await second.close()

    run(main())


def test_readme_models_quick_start(database_url, tmp_path):
    """README's "### Models" example runs unchanged (but for the URL)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("\n### Models\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("postgresql://postgres@127.0.0.1:5432/postgres", database_url)
    script = tmp_path / "models_quick_start.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_blog_example(database_url):
    import os
    import subprocess
    import sys
    from pathlib import Path

    blog = Path(__file__).resolve().parents[2] / "examples" / "python" / "blog.py"
    proc = subprocess.run([sys.executable, str(blog)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DATABASE_URL": database_url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ada: 2 posts, 42 likes" in proc.stdout
