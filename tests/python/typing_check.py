"""Checked by pyright and mypy (tests/python/test_python_typing.py), never
run. `assert_type` fails the check when a type differs; a `type: ignore`
that is not needed fails it too (warn_unused_ignores /
reportUnnecessaryTypeIgnoreComment), which is how the expected errors are
asserted."""

from __future__ import annotations

from typing import Any, Optional

from typing_extensions import assert_type, reveal_type

import cormorant as cm


class User(cm.Model):
    id: int = cm.column(primary_key=True)
    name: str = cm.column(max_length=30)
    email: str | None = None


class Post(cm.Model):
    id: int = cm.column(primary_key=True)
    user_id: int = cm.column(references=User, on_delete="cascade")
    title: str


# Annotated with cm.Column[T], a field is a Column on the class for the
# checker too, and still T on instances and in __init__.
class Account(cm.Model, table="accounts"):
    id: cm.Column[int] = cm.column(primary_key=True)
    name: cm.Column[str] = cm.column(max_length=30)
    note: cm.Column[Optional[str]] = cm.column(default=None)


# Relations: annotated with what they hold, left out of __init__.
class Writer(cm.Model):
    id: int = cm.column(primary_key=True)
    name: str
    notes: list[Jot] = cm.reverse("Jot.writer_id")


class Jot(cm.Model):
    id: int = cm.column(primary_key=True)
    writer_id: int = cm.column(references=Writer)
    reviewer_id: Optional[int] = cm.column(default=None, references=Writer)
    writer: Writer = cm.related("writer_id")
    reviewer: Optional[Writer] = cm.related("reviewer_id")


async def relations() -> None:
    ws = await Writer.select().prefetch(Writer.notes, notes=Jot.select().order_by(Jot.id))
    assert_type(ws, list[Writer])
    assert_type(ws[0].notes, list[Jot])
    j = await Jot.select().prefetch(Jot.writer, "reviewer").first()
    assert j is not None
    assert_type(j.writer, Writer)
    assert_type(j.reviewer, Optional[Writer])
    Writer(name="x")
    Jot(writer_id=1)
    Writer(name="x", notes=[])  # type: ignore[call-arg]


async def queries(db: cm.Database) -> None:
    users = await User.select()
    reveal_type(users)
    assert_type(users, list[User])
    assert_type(await User.select().where(User.id == 1).order_by(User.id).limit(10), list[User])
    assert_type(await User.filter(name="Gemini", id__gte=1), list[User])
    assert_type(await User.get(id=1), User)
    assert_type(await User.create(name="x"), User)
    assert_type(await User.select().first(), Optional[User])
    assert_type(await User.select().count(), int)
    assert_type(await User.select().exists(), bool)
    assert_type(await User.select().dicts(), list[dict[str, Any]])
    assert_type(await User.filter(id=1).update(name="y"), Any)
    assert_type(User.select(), cm.Select[User])

    u = users[0]
    assert_type(u.name, str)
    assert_type(u.id, int)
    assert_type(u.email, Optional[str])
    u.name = "new"
    await u.save()

    assert_type(Account.name, cm.Column[str])
    reveal_type(Account.name)
    a = await Account.get(id=1)
    assert_type(a.name, str)
    assert_type(a.note, Optional[str])
    assert_type(Account.name == "x", cm.Expr)
    assert_type(await Account.select().where(Account.name.startswith("x")), list[Account])

    async with db.transaction():
        await Post.create(user_id=u.id, title="hello")


def errors() -> None:
    User(name=1)  # type: ignore[arg-type]
    User(name="x", nope=1)  # type: ignore[call-arg]
    Post(user_id=1)  # type: ignore[call-arg]
    Account(name=1)  # type: ignore[arg-type]
    u = User(name="x")
    u.name = 3  # type: ignore[assignment]
