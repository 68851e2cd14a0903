"""Cormorant's exceptions.

The classes are made by the C extension from the engine's error table
(``CORM_ERRNO_MAP`` in corm.h), so this list and the engine cannot drift:

    Error                      root; .sqlstate .detail .hint .code_name
    ├── ConnectionError        also builtins.ConnectionError
    ├── Timeout                also builtins.TimeoutError (a query's timeout=)
    ├── QueryCanceled          the request was cancelled
    ├── IntegrityError         23xxx: unique, foreign key, not null, check
    ├── DataError              22xxx, and bad parameters caught before sending
    ├── ProgrammingError       42xxx: syntax, undefined table or column
    │   └── RelationNotLoaded  a relation read before prefetch() (also AttributeError)
    ├── InterfaceError         misuse of the API (closed pool, released connection)
    ├── OutOfMemory            also builtins.MemoryError
    ├── InternalError
    ├── OperationalError       server-side operational errors (53xxx, 57xxx...)
    ├── TransactionError       40xxx: serialization failure, deadlock; retry
    ├── NotFound               get() found no row
    └── MultipleFound          get() found more than one
"""

from ._core import (  # noqa: F401
    ERRORS,
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
    Timeout,
    TransactionError,
)



class RelationNotLoaded(ProgrammingError, AttributeError):
    """A relation (cm.related / cm.reverse) read on an instance whose query
    did not prefetch it. Models never load lazily, since that would be I/O
    hidden in an attribute read; an AttributeError too, as an unloaded
    field is."""


__all__ = [
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
