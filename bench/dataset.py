"""The deterministic dataset of ../shared/BENCHMARKS.md, and the workloads'
shared definitions (SQL, sizes, lookup ids), used by every runner.

No random(): every value is arithmetic on the row's id, so two loads give
the same bytes and every system sees the same rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

COLUMNS = ("id", "name", "email", "age", "score", "active", "created_at", "balance",
           "uuid", "tags")

# The one SQL text per workload. Every system that takes SQL runs these.
W1_SQL = ("SELECT id, name, email, age, score, active, created_at, balance, uuid, tags "
          "FROM bench_rows")
W2_SQL = ("SELECT id, name, email, age, score, active, created_at, balance, uuid, tags "
          "FROM bench_rows WHERE id = $1")
W4_USERS_SQL = "SELECT id, name, email, created_at FROM users ORDER BY id LIMIT $1"
W4_POSTS_SQL = ("SELECT id, user_id, title, body, created_at FROM posts "
                "WHERE user_id = ANY($1::int8[])")
W3_TABLE = "bench_insert"


@dataclass
class Sizes:
    rows: int = 100_000        # bench_rows (W1, W3, W5)
    users: int = 10_000        # users; posts = 10 per user
    lookups: int = 10_000      # W2
    w4_users: int = 1_000      # W4: users fetched with their posts
    runs: int = 5              # timed runs (median reported)
    warmup: int = 1            # untimed runs before them

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, s: str) -> "Sizes":
        return cls(**json.loads(s))


def lookup_ids(sizes: Sizes) -> list[int]:
    """W2's ids: k*7919 % rows + 1 for k in 0..lookups-1."""
    return [k * 7919 % sizes.rows + 1 for k in range(sizes.lookups)]


def schema_sql(sizes: Sizes) -> list[str]:
    """DROP, CREATE and fill every table; ANALYZE; run in this order."""
    n, u = sizes.rows, sizes.users
    row_cols = """
        id int8 PRIMARY KEY,
        name text NOT NULL,
        email varchar(64) NOT NULL,
        age int4 NOT NULL,
        score float8 NOT NULL,
        active bool NOT NULL,
        created_at timestamptz NOT NULL,
        balance numeric(12,2) NOT NULL,
        uuid uuid NOT NULL,
        tags jsonb NOT NULL"""
    return [
        "SET client_min_messages = warning",
        "DROP TABLE IF EXISTS posts, users, bench_insert, bench_rows",
        f"CREATE TABLE bench_rows ({row_cols})",
        f"CREATE TABLE bench_insert ({row_cols})",
        # name: 20 characters; email: 24; created_at with microseconds;
        # balance from -10000.00 to 9999.99; uuid from md5 of the id.
        f"""INSERT INTO bench_rows
            SELECT i,
                   'name-' || lpad(i::text, 15, '0'),
                   'u' || lpad(i::text, 11, '0') || '@example.com',
                   18 + (i % 60)::int4,
                   i * 1.25 / 7.0,
                   i % 3 <> 0,
                   timestamptz '2020-01-01 00:00:00+00' + (i * 37123457) * interval '1 microsecond',
                   ((((i * 7919) % 2000000) - 1000000)::numeric / 100)::numeric(12,2),
                   md5(i::text)::uuid,
                   jsonb_build_object('n', i % 1000, 's', 'tag' || (i % 17), 'b', i % 2 = 0)
            FROM generate_series(1::int8, {n}) AS i""",
        """CREATE TABLE users (
            id int8 PRIMARY KEY,
            name text NOT NULL,
            email varchar(64) NOT NULL,
            created_at timestamptz NOT NULL)""",
        """CREATE TABLE posts (
            id int8 PRIMARY KEY,
            user_id int8 NOT NULL REFERENCES users (id),
            title text NOT NULL,
            body text NOT NULL,
            created_at timestamptz NOT NULL)""",
        f"""INSERT INTO users
            SELECT i, 'user ' || lpad(i::text, 10, '0'),
                   'user' || i || '@example.com',
                   timestamptz '2019-06-01 00:00:00+00' + (i * 86400123) * interval '1 microsecond'
            FROM generate_series(1::int8, {u}) AS i""",
        f"""INSERT INTO posts
            SELECT i, (i - 1) / 10 + 1, 'post number ' || i,
                   rpad('body of post ' || i || ' ', 96, 'abcdefghijklmnopqrstuvwxyz'),
                   timestamptz '2021-01-01 00:00:00+00' + (i * 1234567) * interval '1 microsecond'
            FROM generate_series(1::int8, {u * 10}) AS i""",
        "CREATE INDEX posts_user_id_idx ON posts (user_id)",
        "ANALYZE bench_rows, bench_insert, users, posts",
    ]
