"""SQLAlchemy 2, asyncio, over asyncpg: the ORM and Core."""

from __future__ import annotations

import decimal
import uuid as uuid_mod
from datetime import datetime

import sqlalchemy
from sqlalchemy import BigInteger, ForeignKey, Numeric, String, Text, func, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload
from sqlalchemy.types import DateTime, Double, Uuid

from dataset import COLUMNS, W3_TABLE
from systems.base import System, group_posts


class Base(DeclarativeBase):
    pass


class _RowCols:
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(String(64))
    age: Mapped[int]
    score: Mapped[float] = mapped_column(Double)
    active: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    balance: Mapped[decimal.Decimal] = mapped_column(Numeric(12, 2))
    uuid: Mapped[uuid_mod.UUID] = mapped_column(Uuid)
    tags: Mapped[dict] = mapped_column(JSONB)


class BenchRow(_RowCols, Base):
    __tablename__ = "bench_rows"


class BenchInsert(_RowCols, Base):
    __tablename__ = W3_TABLE


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    posts: Mapped[list["Post"]] = relationship(back_populates="user")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user: Mapped[User] = relationship(back_populates="posts")


def async_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


class SQLAlchemyORM(System):
    name = "SQLAlchemy ORM"
    w1_variant = "select(Model) → model objects"
    w2_variant = "session.get(Model, id)"
    w3_variant = "session.add_all + commit (insertmanyvalues)"
    w4_variant = "selectinload(User.posts)"
    w1_note = w2_note = w3_note = w4_note = "over asyncpg"

    def version(self):
        return sqlalchemy.__version__

    async def open(self, url):
        self.engine = create_async_engine(async_url(url), pool_size=1, max_overflow=0)

    async def close(self):
        await self.engine.dispose()

    async def w1(self):
        async with AsyncSession(self.engine, expire_on_commit=False) as s:
            objs = (await s.execute(select(BenchRow))).scalars().all()
            s.expunge_all()
            return objs

    def values(self, o):
        return tuple(getattr(o, c) for c in COLUMNS)

    async def w2(self, ids):
        found = 0
        async with AsyncSession(self.engine) as s:
            for i in ids:
                if await s.get(BenchRow, i) is not None:
                    found += 1
        return found

    def w3_objects(self, values):
        return [BenchInsert(**dict(zip(COLUMNS, v))) for v in values]

    async def w3(self, objs):
        async with AsyncSession(self.engine) as s:
            s.add_all(objs)
            await s.commit()

    async def w3_truncate(self):
        async with self.engine.begin() as c:
            await c.execute(sqlalchemy.text(f"TRUNCATE {W3_TABLE}"))

    async def w3_count(self):
        async with self.engine.connect() as c:
            return (await c.execute(select(func.count()).select_from(BenchInsert))).scalar()

    async def w4(self, n):
        async with AsyncSession(self.engine) as s:
            users = (await s.execute(select(User).order_by(User.id).limit(n)
                                     .options(selectinload(User.posts)))).scalars().all()
            for u in users:
                u.posts  # loaded
            s.expunge_all()
            return users


class SQLAlchemyCore(SQLAlchemyORM):
    name = "SQLAlchemy Core"
    w1_variant = "conn.execute(select(table)) → Row"
    w2_variant = "conn.execute(select … where id = :id)"
    w3_variant = "conn.execute(insert(table), [dicts]) (insertmanyvalues)"
    w4_variant = "two queries + objects grouped by hand"

    async def w1(self):
        async with self.engine.connect() as c:
            return (await c.execute(select(BenchRow.__table__))).all()

    def values(self, row):
        return tuple(row)

    async def w2(self, ids):
        t = BenchRow.__table__
        stmt = select(t).where(t.c.id == sqlalchemy.bindparam("id"))
        found = 0
        async with self.engine.connect() as c:
            for i in ids:
                if (await c.execute(stmt, {"id": i})).first() is not None:
                    found += 1
        return found

    def w3_objects(self, values):
        return [dict(zip(COLUMNS, v)) for v in values]

    async def w3(self, dicts):
        async with self.engine.begin() as c:
            await c.execute(insert(BenchInsert.__table__), dicts)

    async def w4(self, n):
        u, p = User.__table__, Post.__table__
        async with self.engine.connect() as c:
            users = (await c.execute(select(u).order_by(u.c.id).limit(n))).all()
            posts = (await c.execute(select(p).where(p.c.user_id.in_([r[0] for r in users]))
                                     )).all()
        return group_posts(users, posts)


SYSTEMS = [SQLAlchemyORM, SQLAlchemyCore]
