"""What every Python system implements, and the shared checks.

A system class has:
  name, version()                 label in the table, library version
  open(url), close()              async
  w1() -> rows                    W1: every row of bench_rows as host objects
  values(row) -> tuple            the 10 column values of one row, in
                                  dataset.COLUMNS order (types checked once)
  w2(ids) -> found                W2: sequential lookups on one connection
  w2_tasks, w2_concurrent(ids, n) W2 with n concurrent tasks (optional)
  w3_objects(values) -> objs      W3: host objects built from W1's values
                                  (outside the clock); w3(objs) inserts them
  w3_truncate(), w3_count()       outside the clock
  w4(n) -> users; w4_posts(users) W4: n users with their posts
  *_variant, *_note               what the table says about each

Adding a variant (e.g. Cormorant models once they exist) is one subclass
that overrides the methods that differ, added to its module's SYSTEMS.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

from dataset import COLUMNS, W3_TABLE


class NotSupported(Exception):
    """The system cannot do this workload (yet); the message says why."""


EXPECTED = (int, str, str, int, float, bool, datetime.datetime, decimal.Decimal, uuid.UUID, dict)


def check_w1_types(values: tuple) -> str:
    """'' when every value has its native type, else a note naming the
    columns that are not converted (the table shows it)."""
    bad = []
    for col, want, v in zip(COLUMNS, EXPECTED, values):
        if want is int and isinstance(v, bool):
            bad.append(f"{col}: bool")
        elif not isinstance(v, want):
            bad.append(f"{col} as {type(v).__name__}")
        elif want is datetime.datetime and v.tzinfo is None:
            bad.append(f"{col}: naive datetime")
    if len(values) != len(COLUMNS):
        bad.append(f"{len(values)} columns")
    return ("not converted: " + ", ".join(bad)) if bad else ""


def expect_rows(rows, n: int, what: str) -> None:
    if rows is None or len(rows) != n:
        raise AssertionError(f"{what}: {None if rows is None else len(rows)} rows, want {n}")


def insert_values_sql(nrows: int) -> str:
    """INSERT INTO bench_insert (...) VALUES ($1..$10), (...), ... for nrows rows."""
    ph = []
    k = 1
    for _ in range(nrows):
        ph.append("(" + ", ".join(f"${k + j}" for j in range(len(COLUMNS))) + ")")
        k += len(COLUMNS)
    return f"INSERT INTO {W3_TABLE} ({', '.join(COLUMNS)}) VALUES " + ", ".join(ph)


class System:
    name = "?"
    w1_variant = w2_variant = w3_variant = w4_variant = ""
    w1_note = w2_note = w3_note = w4_note = w2_concurrent_note = ""
    w2_tasks: tuple = ()
    workloads: tuple = ("W1", "W2", "W3", "W4", "W5")

    def version(self) -> str:
        return ""

    def w2_concurrent_variant(self, n: int) -> str:
        return f"{n} tasks"

    async def w2_concurrent(self, ids, n):
        raise NotSupported("no concurrent variant")

    def w3_objects(self, values):
        return values

    async def w3(self, objs):
        raise NotSupported("not implemented")

    async def w4(self, n):
        raise NotSupported("not implemented")

    def w4_posts(self, users):
        return [u.posts for u in users]


class User:
    """W4's host objects for the systems without models (built by hand)."""
    __slots__ = ("id", "name", "email", "created_at", "posts")

    def __init__(self, id, name, email, created_at):
        self.id, self.name, self.email, self.created_at = id, name, email, created_at
        self.posts = []


class Post:
    __slots__ = ("id", "user_id", "title", "body", "created_at")

    def __init__(self, id, user_id, title, body, created_at):
        self.id, self.user_id, self.title, self.body, self.created_at = (
            id, user_id, title, body, created_at)


def group_posts(user_rows, post_rows) -> list:
    """W4 by hand: users and posts as objects, posts attached to their user."""
    users = [User(*r) for r in user_rows]
    by_id = {u.id: u for u in users}
    for r in post_rows:
        by_id[r[1]].posts.append(Post(*r))
    return users
