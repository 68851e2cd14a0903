"""Relations: cm.related (to-one) and cm.reverse (to-many) declared on
models, filled by Select.prefetch() with one `key = ANY($1)` query per
relation; order of the related query kept, parents without rows get [],
nullable, uuid and composite-keyed models, bad input refused before
anything is sent, prefetch inside a transaction, and the number of
statements counted by the server itself."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import uuid
from typing import AsyncIterator, Optional

import pytest

import cormorant as cm

pytestmark = pytest.mark.database


class Author(cm.Model, table="rel_author"):
    id: int = cm.column(primary_key=True)
    name: str
    posts: list[Article] = cm.reverse("Article.author_id")
    edited: list[Article] = cm.reverse(lambda: Article.editor_id)
    memberships: list[Membership] = cm.reverse("Membership.author_id")


class Article(cm.Model, table="rel_article"):
    id: int = cm.column(primary_key=True)
    author_id: int = cm.column(references=Author, on_delete="cascade")
    editor_id: Optional[int] = cm.column(default=None, references=Author)
    title: str
    author: Author = cm.related("author_id")
    editor: Optional[Author] = cm.related("editor_id")
    notes: list[Note] = cm.reverse("Note.article_id")


class Note(cm.Model, table="rel_note"):
    id: int = cm.column(primary_key=True)
    article_id: int = cm.column(references=Article, on_delete="cascade")
    text: str
    article: Article = cm.related("article_id")


# A composite primary key on the side that holds the foreign key.
class Membership(cm.Model, table="rel_membership"):
    author_id: int = cm.column(primary_key=True, references=Author, on_delete="cascade")
    club: str = cm.column(primary_key=True)
    author: Author = cm.related("author_id")


# uuid keys on both sides.
class Folder(cm.Model, table="rel_folder"):
    id: uuid.UUID = cm.column(primary_key=True)
    name: str
    files: list[File] = cm.reverse("File.folder_id")


class File(cm.Model, table="rel_file"):
    id: uuid.UUID = cm.column(primary_key=True)
    folder_id: Optional[uuid.UUID] = cm.column(default=None, references=Folder)
    name: str
    folder: Optional[Folder] = cm.related("folder_id")


MODELS = (Author, Article, Note, Membership, Folder, File)


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[cm.Database]:
    """A database with the tables, empty (a pool belongs to one event loop,
    and `run` starts a new loop for each test)."""
    d = await cm.connect(url, min_size=1, max_size=2)
    try:
        await d.drop_tables(*MODELS, if_exists=True, cascade=True)
        await d.create_tables(*MODELS)
        yield d
        await d.drop_tables(*MODELS, cascade=True)
    finally:
        await d.close()


async def blog(db: cm.Database) -> tuple[Author, Author, Author, list[Article]]:
    """ann wrote 3 articles (bob edited one), bob wrote 1, cy wrote none."""
    ann, bob, cy = [await Author.create(name=n, db=db) for n in ("ann", "bob", "cy")]
    arts = [Article(author_id=a.id, title=t, editor_id=e) for a, t, e in (
        (ann, "a1", None), (bob, "b1", ann.id), (ann, "a2", bob.id), (ann, "a3", None))]
    await Article.bulk_create(arts, db=db)
    return ann, bob, cy, arts


async def scans(db: cm.Database) -> dict[str, int]:
    """Sequential scans of the tables so far in this transaction, as the
    server counts them (pg_stat_xact_user_tables: this backend, not yet
    flushed, so exact). With index scans off each SELECT of a table is
    one scan: the count of statements that read it."""
    rows = await db.fetch("SELECT relname, seq_scan FROM pg_stat_xact_user_tables "
                          "WHERE relname LIKE 'rel\\_%'")
    return {r[0]: r[1] for r in rows}


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


# ---- declaration ----------------------------------------------------------------


def test_declaration():
    assert isinstance(Author.posts, cm.Relation) and Author.posts.many
    assert isinstance(Article.author, cm.Relation) and not Article.author.many
    assert set(Author.__relations__) == {"posts", "edited", "memberships"}
    # Relations are not columns: not in the table, the SQL or __init__.
    assert "posts" not in Author.__table__.index
    assert Author.select().sql() == 'SELECT "id", "name" FROM "rel_author"'
    with pytest.raises(TypeError, match="unexpected field"):
        Author(name="x", posts=[])  # type: ignore[call-arg]
    a = Author(name="x")
    assert not hasattr(a, "__dict__")  # relations live in C slots too
    # Never fetched: a clear error, never a silent empty list or lazy I/O.
    with pytest.raises(cm.RelationNotLoaded, match=r"Author.posts was not prefetched"):
        a.posts
    assert not hasattr(a, "posts")  # an AttributeError, as an unloaded field is
    assert issubclass(cm.RelationNotLoaded, cm.ProgrammingError)
    with pytest.raises(AttributeError, match="is a relation"):
        a.posts = []


def test_bad_declarations():
    with pytest.raises(TypeError, match="references"):
        class Bad1(cm.Model, table="rel_bad1"):
            id: int = cm.column(primary_key=True)
            other: int
            rel: Author = cm.related("other")
    with pytest.raises(TypeError, match="name of a foreign key"):
        cm.related(Article.author_id)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Model.field"):
        cm.reverse(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="shadow"):
        class Bad2(cm.Model, table="rel_bad2"):
            id: int = cm.column(primary_key=True)
            save: list[Article] = cm.reverse("Article.author_id")  # type: ignore[assignment]


def test_bad_prefetch_refused_before_sending():
    """Everything is checked by prefetch() itself: no database is needed."""
    sel = Author.select()
    with pytest.raises(cm.ProgrammingError, match="not Article.author_id"):
        sel.prefetch(Article.author_id)       # a column, not a relation
    with pytest.raises(cm.ProgrammingError, match="relations of Author"):
        sel.prefetch(Article.author)          # another model's relation
    with pytest.raises(cm.ProgrammingError, match="'nope'"):
        sel.prefetch("nope")
    with pytest.raises(cm.ProgrammingError, match="takes a Article.select"):
        sel.prefetch(posts=Author.select())   # type: ignore[arg-type]
    with pytest.raises(cm.ProgrammingError, match="a limit would apply"):
        sel.prefetch(posts=Article.select().limit(2))
    with pytest.raises(cm.ProgrammingError, match="needs Author.id among the columns"):
        Author.select(Author.name).prefetch(Author.posts)
    with pytest.raises(cm.ProgrammingError, match="needs Article.author_id"):
        Article.select(Article.id).prefetch(Article.author)
    Author.select(Author.id).prefetch(Author.posts)  # the key is there: fine

    # A relation whose column is not a foreign key to the model: found on
    # first use (the other model may be declared later in the module).
    class Loose(cm.Model, table="rel_loose"):
        id: int = cm.column(primary_key=True)
        by_title: list[Article] = cm.reverse("Article.title")
        by_editor: list[Note] = cm.reverse(lambda: Note.article_id)
        by_ghost: list[Article] = cm.reverse("Ghost.author_id")
        by_value: list[Article] = cm.reverse(lambda: 3)  # type: ignore[arg-type,return-value]
    q = Loose.select()
    with pytest.raises(cm.ProgrammingError, match="Article.title is not a foreign key"):
        q.prefetch(Loose.by_title)
    with pytest.raises(cm.ProgrammingError, match="references Article, not Loose"):
        q.prefetch("by_editor")
    with pytest.raises(cm.ProgrammingError, match="names no model"):
        q.prefetch(Loose.by_ghost)
    with pytest.raises(cm.ProgrammingError, match="not a column"):
        q.prefetch(Loose.by_value)


# ---- prefetch --------------------------------------------------------------------


def test_reverse_and_forward(url, run):
    async def main():
        async with database(url) as db:
            ann, bob, cy, arts = await blog(db)
            authors = await Author.select().order_by(Author.id).prefetch(Author.posts).using(db)
            assert [a.name for a in authors] == ["ann", "bob", "cy"]
            assert [[p.title for p in a.posts] for a in authors] == [["a1", "a2", "a3"], ["b1"], []]
            assert all(type(p) is Article and p.is_saved for a in authors for p in a.posts)
            # Only what was asked for is filled.
            with pytest.raises(cm.RelationNotLoaded):
                authors[0].edited

            # The related query's order is kept; where filters it.
            q = Author.select().order_by(Author.id).using(db).prefetch(
                posts=Article.select().order_by(Article.title.desc()),
                edited=Article.select().where(Article.title != "b1"))
            authors = await q
            assert [[p.title for p in a.posts] for a in authors] == [["a3", "a2", "a1"], ["b1"], []]
            assert [[p.title for p in a.edited] for a in authors] == [[], ["a2"], []]

            # Forward: each article gets its author; one instance per key.
            arts = await Article.select().order_by(Article.id).prefetch(Article.author, "editor") \
                .using(db)
            assert [(p.title, p.author.name) for p in arts] == \
                [("a1", "ann"), ("b1", "bob"), ("a2", "ann"), ("a3", "ann")]
            assert arts[0].author is arts[2].author
            # A NULL key gives None.
            assert [p.editor.name if p.editor else None for p in arts] == [None, "ann", "bob", None]

            # first(), get() and prefetch nested through a relation's query.
            a = await Author.select().where(Author.id == bob.id).using(db).prefetch(
                posts=Article.select().prefetch(Article.notes, Article.editor)).first()
            assert a is not None and [p.title for p in a.posts] == ["b1"]
            assert a.posts[0].notes == [] and a.posts[0].editor is not None
            assert a.posts[0].editor.name == "ann"
            g = await Author.select().where(Author.name == "cy").prefetch("posts").using(db).get()
            assert g.posts == []

            # Streaming prefetches each batch.
            got = [(x.name, len(x.posts)) async for x in
                   Author.select().prefetch(Author.posts).using(db).iterate(batch_size=2)]
            assert got == [("ann", 3), ("bob", 1), ("cy", 0)]

            # A refetch replaces the lists: what the database holds now.
            await Article.filter(title="b1").using(db).delete()
            authors = await Author.select().order_by(Author.id).prefetch(Author.posts).using(db)
            assert [len(a.posts) for a in authors] == [3, 0, 0]

    run(main())


def test_empty_results(url, run):
    async def main():
        async with database(url) as db:
            assert await Author.select().prefetch(Author.posts).using(db) == []
            assert await Article.select().prefetch(Article.author).using(db) == []
            assert await Author.select().prefetch(Author.posts).using(db).first() is None
            ann = await Author.create(name="ann", db=db)
            # Parents, but no children at all.
            (a,) = await Author.select().prefetch(Author.posts, "edited").using(db)
            assert a.posts == [] and a.edited == [] and a.posts is not a.edited
            # Children whose nullable key is NULL everywhere: nothing to look up.
            await Article.create(author_id=ann.id, title="x", db=db)
            (p,) = await Article.select().prefetch(Article.editor).using(db)
            assert p.editor is None

    run(main())


def test_uuid_and_composite_keys(url, run):
    async def main():
        async with database(url) as db:
            docs = await Folder.create(name="docs", db=db)
            pics = await Folder.create(name="pics", db=db)
            assert isinstance(docs.id, uuid.UUID)
            for n, f in (("a.txt", docs), ("b.txt", docs), ("c.png", pics), ("loose", None)):
                await File.create(name=n, folder_id=f.id if f else None, db=db)
            folders = await Folder.select().order_by(Folder.name).using(db).prefetch(
                files=File.select().order_by(File.name))
            assert [(f.name, [x.name for x in f.files]) for f in folders] == \
                [("docs", ["a.txt", "b.txt"]), ("pics", ["c.png"])]
            files = await File.select().order_by(File.name).prefetch(File.folder).using(db)
            assert [(x.name, x.folder.name if x.folder else None) for x in files] == \
                [("a.txt", "docs"), ("b.txt", "docs"), ("c.png", "pics"), ("loose", None)]
            assert files[0].folder == docs

            ann = await Author.create(name="ann", db=db)
            bob = await Author.create(name="bob", db=db)
            await Membership.insert({"author_id": ann.id, "club": "chess"},
                                    {"author_id": ann.id, "club": "go"},
                                    {"author_id": bob.id, "club": "go"}).using(db)
            authors = await Author.select().order_by(Author.id).using(db).prefetch(
                memberships=Membership.select().order_by(Membership.club))
            assert [[m.club for m in a.memberships] for a in authors] == [["chess", "go"], ["go"]]
            ms = await Membership.select().order_by(Membership.club, Membership.author_id) \
                .prefetch(Membership.author).using(db)
            assert [(m.club, m.author.name) for m in ms] == \
                [("chess", "ann"), ("go", "ann"), ("go", "bob")]

    run(main())


def test_one_query_per_relation_in_a_transaction(url, run):
    """Counted by the server: inside a transaction, with index scans off,
    each statement that reads a table adds one to its seq_scan in
    pg_stat_xact_user_tables."""

    async def main():
        async with database(url) as db:
            async with db.transaction():
                await db.execute("SET LOCAL enable_indexscan = off")
                await db.execute("SET LOCAL enable_bitmapscan = off")
                ann, bob, cy, arts = await blog(db)
                await Note.create(article_id=arts[0].id, text="n1", db=db)
                # Uncommitted rows are seen: the prefetch runs on the
                # transaction's connection, as the main query does.
                before = await scans(db)
                authors = await Author.select().order_by(Author.id).prefetch(
                    Author.posts, Author.edited).using(db)
                assert [len(a.posts) for a in authors] == [3, 1, 0]
                assert diff(await scans(db), before) == {"rel_author": 1, "rel_article": 2}

                before = await scans(db)
                authors = await Author.select().prefetch(
                    posts=Article.select().prefetch(Article.notes, Article.author)).using(db)
                assert sorted(len(n) for a in authors for n in (p.notes for p in a.posts)) == \
                    [0, 0, 0, 1]
                assert diff(await scans(db), before) == \
                    {"rel_author": 2, "rel_article": 1, "rel_note": 1}

                # No parents: no second statement.
                before = await scans(db)
                assert await Author.select().where(Author.id < 0).prefetch(Author.posts) \
                    .using(db) == []
                assert diff(await scans(db), before) == {"rel_author": 1}
            # After the transaction the instances keep what was attached.
            assert authors[0].posts[0].author.name in ("ann", "bob")

    run(main())


def test_relation_slots_are_traversed(url, run):
    """Prefetched objects refer to each other (post.author.posts holds the
    post): the slots are visited by the garbage collector, so such cycles
    are found."""

    async def main():
        async with database(url) as db:
            await blog(db)
            arts = await Article.select().prefetch(Article.author).using(db)
            authors = await Author.select().prefetch(Author.posts).using(db)
            return arts, authors

    arts, authors = run(main())
    assert arts[0].author in gc.get_referents(arts[0])
    assert authors[0].posts in gc.get_referents(authors[0])


def test_attach_refuses_other_models():
    """The C loop behind prefetch() checks what it is given."""
    t = Author.__table__
    slot = Author.posts.slot
    with pytest.raises(TypeError, match="another model"):
        t.attach(slot, [Article(author_id=1, title="x")], 0, Article.__table__, [], 1, True)
    with pytest.raises(TypeError, match="another model"):
        t.attach(slot, [Author(id=1, name="x")], 0, Article.__table__, [Author(name="y")], 1, True)
    with pytest.raises(IndexError):
        t.attach(99, [], 0, Article.__table__, [], 1, True)
    with pytest.raises(TypeError, match="another model"):
        t.keys([Author(name="x"), 3], 0)
    assert t.keys([Author(id=2, name="x"), Author(name="y"), Author(id=2, name="z"),
                   Author(id=1, name="w")], 0) == [2, 1]


def test_no_leaks_over_many_prefetches(url):
    """Relation slots and the lists and instances attached to them are all
    freed: Python's block count stays flat over 200 rounds of prefetches
    (60,000 attached instances) and refused calls."""

    async def round_(db: cm.Database) -> None:
        authors = await Author.select().using(db).prefetch(
            posts=Article.select().prefetch(Article.author, Article.editor), edited=Article.select())
        assert len(authors) == 30 and sum(len(a.posts) for a in authors) == 150
        arts = await Article.select().prefetch(Article.author).using(db).limit(50)
        assert all(p.author.id == p.author_id for p in arts)
        await Author.select().where(Author.id < 0).prefetch(Author.posts).using(db)
        try:
            Author.__table__.attach(0, [authors[0]], 0, Article.__table__, [authors[1]], 1, True)
        except TypeError:
            pass
        try:
            Author.select().prefetch(Article.author_id)
        except cm.ProgrammingError:
            pass

    async def main() -> tuple[int, list[int], list[int]]:
        async with database(url) as db:
            authors = [Author(name=f"a{i}") for i in range(30)]
            await Author.bulk_create(authors, db=db)
            await Article.bulk_create([Article(author_id=a.id, title=f"t{k}", editor_id=a.id)
                                       for a in authors for k in range(5)], db=db)
            for _ in range(10):
                await round_(db)
            lived = (Author, Article, Author.__table__, Article.__table__, Author.posts)
            refs0 = [sys.getrefcount(o) for o in lived]
            gc.collect()
            blocks0 = sys.getallocatedblocks()
            for _ in range(200):
                await round_(db)
            gc.collect()
            return sys.getallocatedblocks() - blocks0, refs0, \
                [sys.getrefcount(o) for o in lived]

    dblocks, refs0, refs1 = asyncio.run(main())
    assert refs1 == refs0, f"references leaked: {refs0} -> {refs1}"
    assert dblocks < 2000, f"{dblocks} Python memory blocks not freed"
