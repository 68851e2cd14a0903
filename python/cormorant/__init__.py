"""Cormorant: an async ORM for PostgreSQL whose engine is C (libcorm).

    import cormorant as cm
    db = await cm.connect("postgresql://user@localhost/app", min_size=1, max_size=10)
    rows = await db.fetch("SELECT $1::int8 + 1 AS n", 41)    # [<Row n=42>]
    async with db.transaction():
        await db.execute("UPDATE t SET x = $1", 1)
"""

from ._core import LIBCORM_VERSION, Row
from .database import Database, Transaction, connect, default_database
from .model import SQL, Column, Model, Relation, column, related, reverse, sql
from .query import (
    Delete, Insert, Select, Update, avg, count, exists, from_cte, func, max, min, sum, value,
)
from ._core import Expr
from .errors import (
    ConnectionError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    MultipleFound,
    NotFound,
    OperationalError,
    OutOfMemory,
    ProgrammingError,
    QueryCanceled,
    RelationNotLoaded,
    Timeout,
    TransactionError,
)

__version__ = "0.1.0"

__all__ = [
    "LIBCORM_VERSION",
    "Database",
    "Model",
    "Column",
    "Expr",
    "column",
    "related",
    "reverse",
    "Relation",
    "sql",
    "SQL",
    "Select",
    "Insert",
    "Update",
    "Delete",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "func",
    "value",
    "exists",
    "from_cte",
    "Row",
    "Transaction",
    "connect",
    "default_database",
    "Error",
    "ConnectionError",
    "Timeout",
    "QueryCanceled",
    "IntegrityError",
    "DataError",
    "ProgrammingError",
    "RelationNotLoaded",
    "InterfaceError",
    "OutOfMemory",
    "InternalError",
    "OperationalError",
    "TransactionError",
    "NotFound",
    "MultipleFound",
]
