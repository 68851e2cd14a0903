"""A database: a pool of connections driven by the running asyncio loop,
raw SQL on it, and transactions whose queries follow the task (contextvar).

Everything here is sugar over ``cormorant._core`` (C): queries, values and
transaction statements never pass through Python code of ours.
"""

from __future__ import annotations

from contextvars import ContextVar
from types import TracebackType
from typing import Any, Literal, Optional, Union

from . import _core
from ._core import Row

__all__ = ["Database", "Transaction", "connect", "default_database"]

Isolation = Literal["read_committed", "repeatable_read", "serializable"]

# The connections of the transactions open in this context (task), innermost
# last. One module-level variable for every database: a tuple is cheap to
# copy and is usually empty.
_current: ContextVar[tuple[_core.Conn, ...]] = ContextVar("cormorant_transaction", default=())

_default: Optional["Database"] = None


def default_database() -> "Database":
    """The database of the first connect(): the one models use by default."""
    if _default is None or _default.closed:
        raise _core.InterfaceError("no database: call `await cormorant.connect(url)` first")
    return _default


async def connect(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: Optional[float] = 10.0,
    statement_cache_size: int = 256,
    prepared_statements: bool = True,
) -> "Database":
    """Opens a pool of connections to `url` (a postgresql:// URL or a
    key=value string) and waits until one connection works, so a wrong
    address or password raises cormorant.ConnectionError here.

    prepared_statements=False uses unnamed statements only, as PgBouncer in
    transaction mode requires. The first database opened becomes the models'
    default (see default_database()).
    """
    global _default
    pool = _core.Pool(
        url,
        min_size=min_size,
        max_size=max_size,
        connect_timeout=connect_timeout,
        statement_cache_size=statement_cache_size,
        prepared_statements=prepared_statements,
    )
    try:
        conn = await pool.acquire(connect_timeout)
        conn.release()
    except BaseException:
        pool.close()
        raise
    db = Database(pool, url)
    if _default is None or _default.closed:
        _default = db
    return db


class Database:
    """A pool of connections. Queries run on any of its connections,
    pipelined, unless the calling task is inside `db.transaction()`: then
    they run on the transaction's connection."""

    __slots__ = ("_pool", "url")

    def __init__(self, pool: _core.Pool, url: str = "") -> None:
        self._pool = pool
        self.url = url

    def _target(self) -> Union[_core.Pool, _core.Conn]:
        for conn in reversed(_current.get()):
            if conn.pool is self._pool:
                return conn
        return self._pool

    async def fetch(self, sql: str, *args: Any, timeout: Optional[float] = None) -> list[Row]:
        """Runs sql with $1.. bound to args; every row as a cormorant.Row."""
        return await self._target().fetch(sql, *args, timeout=timeout)

    async def fetchrow(self, sql: str, *args: Any, timeout: Optional[float] = None) -> Optional[Row]:
        """The first row, or None."""
        return await self._target().fetchrow(sql, *args, timeout=timeout)

    async def fetchval(self, sql: str, *args: Any, timeout: Optional[float] = None) -> Any:
        """The first column of the first row, or None."""
        return await self._target().fetchval(sql, *args, timeout=timeout)

    async def execute(self, sql: str, *args: Any, timeout: Optional[float] = None) -> int:
        """Runs sql; the number of rows affected (0 when not applicable)."""
        return await self._target().execute(sql, *args, timeout=timeout)

    def transaction(
        self,
        isolation: Optional[Isolation] = None,
        *,
        read_only: bool = False,
        deferrable: bool = False,
    ) -> "Transaction":
        """`async with db.transaction():` commits on success and rolls back on
        an exception. Nested blocks are savepoints (which take no options)."""
        return Transaction(self, isolation, read_only, deferrable)

    async def create_tables(self, *models: Any, if_not_exists: bool = False) -> None:
        """CREATE TYPE/TABLE/INDEX for the models (libcore's DDL, in
        dependency order), in one transaction."""
        from .model import registry, table_of

        stmts = registry.ddl([table_of(m) for m in models], if_not_exists=if_not_exists)
        async with self.transaction():
            for s in stmts:
                await self.execute(s)

    async def drop_tables(self, *models: Any, if_exists: bool = False, cascade: bool = False) -> None:
        """DROP TABLE for the models (and their enum types), in one transaction."""
        from .model import registry, table_of

        stmts = registry.ddl([table_of(m) for m in models], drop=True, if_exists=if_exists,
                             cascade=cascade)
        async with self.transaction():
            for s in stmts:
                await self.execute(s)

    @property
    def closed(self) -> bool:
        return self._pool.closed

    @property
    def size(self) -> int:
        """Connections open or opening."""
        return self._pool.size

    async def close(self) -> None:
        """Closes every connection; queries still running fail with
        QueryCanceled."""
        global _default
        self._pool.close()
        if _default is self:
            _default = None

    async def __aenter__(self) -> "Database":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"size={self.size}"
        return f"<cormorant.Database {state}>"


class Transaction:
    """A transaction block; see Database.transaction()."""

    __slots__ = ("_db", "_isolation", "_read_only", "_deferrable", "_conn", "_token")

    def __init__(self, db: Database, isolation: Optional[Isolation], read_only: bool,
                 deferrable: bool) -> None:
        self._db = db
        self._isolation = isolation
        self._read_only = read_only
        self._deferrable = deferrable
        self._conn: Optional[_core.Conn] = None
        self._token: Any = None

    async def __aenter__(self) -> "Transaction":
        if self._conn is not None:
            raise _core.InterfaceError("this transaction block is already in use")
        target = self._db._target()
        if isinstance(target, _core.Conn):
            conn = target
        else:
            conn = await target.acquire()
            self._token = _current.set(_current.get() + (conn,))
        self._conn = conn
        try:
            # Inside a transaction this is a savepoint, which takes no
            # options: the engine refuses them (InterfaceError).
            await conn.begin(self._isolation, self._read_only, self._deferrable)
        except BaseException:
            self._finish()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        conn = self._conn
        assert conn is not None, "__aexit__ without __aenter__"
        try:
            if exc_type is None:
                await conn.commit()
            else:
                try:
                    await conn.rollback()
                except _core.Error:
                    pass  # the original exception matters; release rolls back anyway
        finally:
            self._finish()

    def _finish(self) -> None:
        conn, token = self._conn, self._token
        self._conn = self._token = None
        if token is not None:
            _current.reset(token)
            if conn is not None:
                conn.release()

    @property
    def connection(self) -> Optional[_core.Conn]:
        """The lent connection (a cormorant._core.Conn) while the block runs."""
        return self._conn
