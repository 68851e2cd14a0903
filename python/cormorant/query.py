"""The query API over ``_core.Query`` (libcore's built queries).

Queries are immutable descriptions: each chained call returns a new one.
Awaiting a query builds the engine's query (a few C calls), submits it, and
C turns the rows into model instances. No SQL is written here.

    users = await User.select().where(User.name == "x").order_by(User.id).limit(10)
    users = await User.filter(name="x", id__gte=1)
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Generator,
    Generic,
    Iterable,
    Optional,
    Sequence,
    TypeVar,
    Union,
    cast,
)

from . import _core
from ._core import Expr
from .errors import NotFound, ProgrammingError
from .model import Model, Relation, registry, table_of

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "Select", "Insert", "Update", "Delete", "count", "sum", "avg", "min", "max", "func",
    "value", "exists", "from_cte",
]

M = TypeVar("M", bound=Model)

# _core.run modes (model.c's enum shape_mode).
_MODELS, _FIRST, _DICTS, _TUPLES, _SCALAR, _AFFECTED, _INTO, _INTO_LIST, _ROWS = range(9)
_WHOLE = 0x100   # flag: a short list, not worth streaming
_SHORT_LIST = 10_000
# corm_query_kind, corm_agg, corm_setop.
_SELECT, _INSERT, _UPDATE, _DELETE = 1, 2, 3, 4
_COUNT, _SUM, _AVG, _MIN, _MAX = 1, 2, 3, 4, 5
_LOCKS = {"update": 1, "no key update": 2, "share": 3, "key share": 4}

def _target(db: Optional["Database"]) -> Any:
    if db is None:
        from .database import default_database

        db = default_database()
    return db._target()


# ---- expressions ---------------------------------------------------------------


def count(expr: Optional[Expr] = None, *, distinct: bool = False) -> Expr:
    """count(*) or count([DISTINCT] expr)."""
    return _core.agg(registry, _COUNT, expr, distinct)


def sum(expr: Expr, *, distinct: bool = False) -> Expr:  # noqa: A001
    return _core.agg(registry, _SUM, expr, distinct)


def avg(expr: Expr, *, distinct: bool = False) -> Expr:
    return _core.agg(registry, _AVG, expr, distinct)


def min(expr: Expr) -> Expr:  # noqa: A001
    return _core.agg(registry, _MIN, expr, False)


def max(expr: Expr) -> Expr:  # noqa: A001
    return _core.agg(registry, _MAX, expr, False)


def value(v: Any) -> Expr:
    """A bound value as an expression."""
    return _core.value(registry, v)


class _Funcs:
    """``cm.func.lower(User.name)``, ``cm.func.row_number().over(...)``:
    any SQL function by name; arguments are expressions or values."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: _core.func(registry, name, *args)


func = _Funcs()


def exists(query: "Select[Any]") -> Expr:
    """EXISTS (query)."""
    return _core.exists(query._build())


class from_cte:
    """A SELECT of names from a CTE of the enclosing query, for
    ``col.in_(cm.from_cte("name", "id"))``."""

    def __init__(self, name: str, *columns: str) -> None:
        self.name, self.columns = name, columns

    def _build(self) -> Any:
        q = _core.query(0, registry)
        q.from_cte(self.name)
        for c in self.columns:
            q.select(_core.ident(registry, c, self.name))
        return q

    __corm_query__ = _build


_LOOKUPS = {
    "exact", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "icontains",
    "startswith", "istartswith", "endswith", "iendswith", "like", "ilike", "isnull", "range",
}


def get_query(model: type[Model], exprs: tuple[Any, ...], lookups: dict[str, Any]) -> Any:
    """The core query of Model.get(): SELECT the model WHERE … LIMIT 2,
    built straight into libcore's builder (get is the hot path of lookups
    by key: no Select objects copied along the way)."""
    t = table_of(model)
    q = _core.query(_SELECT, t)
    for e in exprs:
        if not isinstance(e, _core.Expr):
            raise TypeError(f"where() takes column expressions, not {type(e).__name__}")
        q.where(e)
    for k, v in lookups.items():
        q.where(lookup(model, k, v))
    q.limit(2)
    return q


def run_models(db: Optional["Database"], q: Any) -> Any:
    """Awaitable list of instances of q, a core query known to return few
    rows (get's LIMIT 2), on db or the default database."""
    return _core.run(_target(db), q, _MODELS | _WHOLE, None, None)


def lookup(model: type[Model], key: str, v: Any) -> Expr:
    """One Django-style lookup (``name__icontains``) as an expression.
    ProgrammingError for an unknown field or lookup."""
    field, _, op = key.partition("__")
    if op and op not in _LOOKUPS:
        raise ProgrammingError(f"unknown lookup {op!r} in {key!r}; known: {sorted(_LOOKUPS)}")
    t = table_of(model)
    if field == "pk" and "pk" not in t.index and len(t.pk) == 1:
        field = t.names[t.pk[0]]
    if field not in t.index:
        raise ProgrammingError(f"{model.__name__} has no field {field!r} (in {key!r})")
    col: Expr = getattr(model, field)
    if op in ("", "exact"):
        return col.is_null() if v is None else col == v
    if op == "ne":
        return col.is_not_null() if v is None else col != v
    if op == "gt":
        return cast(Expr, col > v)
    if op == "gte":
        return cast(Expr, col >= v)
    if op == "lt":
        return cast(Expr, col < v)
    if op == "lte":
        return cast(Expr, col <= v)
    if op == "in":
        return col.in_(v._build() if hasattr(v, "_build") else list(v))
    if op == "not_in":
        return col.not_in(v._build() if hasattr(v, "_build") else list(v))
    if op == "isnull":
        return col.is_null() if v else col.is_not_null()
    if op == "range":
        lo, hi = v
        return col.between(lo, hi)
    return cast(Expr, getattr(col, op)(v))


def _and_all(exprs: Sequence[Expr]) -> Optional[Expr]:
    out: Optional[Expr] = None
    for e in exprs:
        out = e if out is None else out & e
    return out


# ---- SELECT -----------------------------------------------------------------------


class Select(Generic[M]):
    """A SELECT of model M. Await it for ``list[M]``; ``.dicts()``,
    ``.tuples()``, ``.first()``, ``.count()``, ``.exists()`` for other
    shapes; ``async for`` streams it in batches."""

    __slots__ = ("_model", "_cols", "_where", "_order", "_limit", "_offset", "_group",
                 "_having", "_joins", "_distinct", "_db", "_ctes", "_lock", "_timeout",
                 "_prefetch")

    def __init__(self, model: type[M], columns: Iterable[Any] = ()) -> None:
        self._model = model
        self._cols: tuple[Any, ...] = tuple(columns)
        self._where: tuple[Expr, ...] = ()
        self._order: tuple[Expr, ...] = ()
        self._limit: Optional[int] = None
        self._offset: Optional[int] = None
        self._group: tuple[Expr, ...] = ()
        self._having: tuple[Expr, ...] = ()
        self._joins: tuple[tuple[Any, bool, Optional[Expr]], ...] = ()
        self._distinct = False
        self._db: Optional["Database"] = None
        self._ctes: tuple[tuple[str, Any, bool], ...] = ()
        self._lock: Optional[int] = None
        self._timeout: Optional[float] = None
        self._prefetch: tuple[tuple[Relation, Optional[Select[Any]]], ...] = ()

    def _copy(self, **changes: Any) -> "Select[M]":
        new = object.__new__(type(self))
        for k in Select.__slots__:
            object.__setattr__(new, k, changes.get(k, getattr(self, k)))
        return new

    # -- clauses --

    def where(self, *exprs: Union[Expr, bool]) -> "Select[M]":
        """WHERE; several expressions (and calls) are ANDed."""
        for e in exprs:
            if not isinstance(e, _core.Expr):
                raise TypeError(f"where() takes column expressions, not {type(e).__name__}")
        return self._copy(_where=self._where + cast("tuple[Expr, ...]", exprs))

    def filter(self, *exprs: Union[Expr, bool], **lookups: Any) -> "Select[M]":
        """where() with Django-style lookups: field=value, field__gt=...,
        __gte __lt __lte __ne __in __not_in __contains __icontains
        __startswith __istartswith __endswith __iendswith __like __ilike
        __isnull __range."""
        more = [lookup(self._model, k, v) for k, v in lookups.items()]
        return self.where(*exprs, *more)

    def order_by(self, *exprs: Any) -> "Select[M]":
        """ORDER BY; use col.desc() / col.asc()."""
        return self._copy(_order=self._order + exprs)

    def limit(self, n: int) -> "Select[M]":
        return self._copy(_limit=int(n))

    def offset(self, n: int) -> "Select[M]":
        return self._copy(_offset=int(n))

    def group_by(self, *exprs: Any) -> "Select[M]":
        return self._copy(_group=self._group + exprs)

    def having(self, *exprs: Any) -> "Select[M]":
        return self._copy(_having=self._having + exprs)

    def join(self, model: type[Model], on: Optional[Expr] = None, *, left: bool = False) -> "Select[M]":
        """[LEFT] JOIN model ON on; without on, the one foreign key between
        the two models gives the condition."""
        return self._copy(_joins=self._joins + ((table_of(model), left, on),))

    def distinct(self) -> "Select[M]":
        return self._copy(_distinct=True)

    def with_cte(self, name: str, query: "Select[Any]", *, recursive: bool = False) -> "Select[M]":
        """WITH name AS (query); read it with cm.from_cte(name, ...)."""
        return self._copy(_ctes=self._ctes + ((name, query, recursive),))

    def for_update(self, mode: str = "update", *, nowait: bool = False,
                   skip_locked: bool = False) -> "Select[M]":
        """FOR UPDATE (or "no key update", "share", "key share")."""
        m = _LOCKS[mode] | (16 if nowait else 0) | (32 if skip_locked else 0)
        return self._copy(_lock=m)

    def using(self, db: "Database") -> "Select[M]":
        """Runs on db instead of the default database."""
        return self._copy(_db=db)

    def timeout(self, seconds: float) -> "Select[M]":
        return self._copy(_timeout=seconds)

    def prefetch(self, *relations: Any, **queries: "Select[Any]") -> "Select[M]":
        """After the rows, one more query per relation fills it on every
        instance: ``.prefetch(User.posts)`` (or ``"posts"``) runs
        ``SELECT … FROM post WHERE user_id = ANY($1)`` with the users' keys
        and gives each user the list of its posts, in the order of that
        query; a to-one relation gets the instance, or None. A keyword names
        the relation and gives the query to run for it (its where, order_by,
        its own prefetch): ``.prefetch(posts=Post.select().order_by(Post.id))``.
        Checked here, before anything is sent."""
        got = dict(self._prefetch)
        for r in relations:
            got[self._relation(r)] = None
        for name, sub in queries.items():
            rel = self._relation(name)
            child, _, parent, _ = rel.resolve()
            target = child if rel.many else parent
            if not isinstance(sub, Select) or sub._model is not target:
                raise ProgrammingError(f"prefetch({name}=...) takes a {target.__name__}.select() "
                                       f"query, not {sub!r}")
            if sub._limit is not None or sub._offset is not None or sub._group or \
                    sub._distinct or sub._cols or sub._joins or sub._lock is not None:
                raise ProgrammingError(f"prefetch({name}=...): the query of a relation takes "
                                       "where, order_by and prefetch only (a limit would apply "
                                       "to all the rows, not to each instance's)")
            got[rel] = sub
        return self._copy(_prefetch=tuple(got.items()))

    def _relation(self, r: Any) -> Relation:
        """The model's relation named by r (a Relation or its name),
        resolved; ProgrammingError otherwise."""
        m = self._model
        rels = m.__dict__.get("__relations__", {})
        rel = rels.get(r) if isinstance(r, str) else r
        if not isinstance(rel, Relation) or rels.get(rel.name) is not rel:
            known = ", ".join(rels) or "none declared"
            what = f"{r.model.__name__}.{r.name}" if isinstance(r, (Relation, _core.Column)) \
                else repr(r)
            raise ProgrammingError(f"prefetch() takes relations of {m.__name__} (cm.related / "
                                   f"cm.reverse; {known}), not {what}")
        child, fk, parent, pk = rel.resolve()
        need = (rel.model, pk if rel.many else fk)
        if self._cols and not any(isinstance(c, _core.Column) and c.model is need[0] and
                                  c.index == need[1] for c in self._cols):
            key = table_of(need[0]).names[need[1]]
            raise ProgrammingError(f"prefetch({rel.name}) of a column subset needs "
                                   f"{m.__name__}.{key} among the columns")
        return rel

    # -- building --

    def _build(self, *, columns: Optional[Sequence[Any]] = None, order: bool = True,
               page: bool = True) -> Any:
        t = table_of(self._model)
        q = _core.query(_SELECT, t)
        for name, sub, rec in self._ctes:
            q.with_(name, sub._build(), rec)
        for jt, left, on in self._joins:
            q.join(jt, left, on)
        cols = self._cols if columns is None else columns
        for c in cols:
            if isinstance(c, type) and issubclass(c, Model):
                q.select_all(table_of(c))
            else:
                q.select(c)
        if self._distinct:
            q.distinct()
        for e in self._where:
            q.where(e)
        for e in self._group:
            q.group_by(e)
        for e in self._having:
            q.having(e)
        if order:
            for e in self._order:
                q.order_by(e)
        if page:
            if self._limit is not None:
                q.limit(self._limit)
            if self._offset is not None:
                q.offset(self._offset)
        if self._lock is not None:
            q.lock(self._lock)
        return q

    __corm_query__ = _build

    def sql(self) -> str:
        """The SQL text libcore compiles for this query (values as $n)."""
        return cast(str, self._build().sql())

    def _run(self, mode: int, q: Any = None) -> Any:
        # Lists are streamed (built while rows arrive, the raw result never
        # held whole) unless a LIMIT keeps them short: streaming costs a
        # result copy per row, which only a long result pays back.
        if self._limit is not None and self._limit <= _SHORT_LIST:
            mode |= _WHOLE
        return _core.run(_target(self._db), q if q is not None else self._build(), mode,
                         None, self._timeout)

    # -- running --

    def __await__(self) -> Generator[Any, None, list[M]]:
        if self._prefetch:
            return self.all().__await__()
        return cast("Generator[Any, None, list[M]]", self._run(_MODELS).__await__())

    async def all(self) -> list[M]:
        objs = cast("list[M]", await self._run(_MODELS))
        if self._prefetch:
            await self._fill_relations(objs)
        return objs

    async def first(self) -> Optional[M]:
        """The first instance (LIMIT 1), or None."""
        obj = cast("Optional[M]", await self._run(_FIRST, self.limit(1)._build()))
        if obj is not None and self._prefetch:
            await self._fill_relations([obj])
        return obj

    async def _fill_relations(self, objs: list[M]) -> None:
        # One query per relation, one after another: each runs where this
        # query ran (the transaction's connection inside one).
        for rel, sub in self._prefetch:
            await _prefetch(rel, sub, objs, self._db, self._timeout)

    async def get(self) -> M:
        """The one instance; NotFound / MultipleFound otherwise."""
        rows = await self.limit(2)
        if not rows:
            raise NotFound(f"no {self._model.__name__} matches")
        if len(rows) > 1:
            from .errors import MultipleFound

            raise MultipleFound(f"more than one {self._model.__name__} matches")
        return rows[0]

    async def dicts(self) -> list[dict[str, Any]]:
        """Each row as a dict of column name (or label) to value."""
        return cast("list[dict[str, Any]]", await self._run(_DICTS))

    async def tuples(self) -> list[tuple[Any, ...]]:
        return cast("list[tuple[Any, ...]]", await self._run(_TUPLES))

    async def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return await self._run(_SCALAR)

    async def count(self) -> int:
        """count(*) of the rows matching (joins, WHERE, GROUP BY kept;
        ORDER BY, LIMIT and OFFSET left out)."""
        if self._group or self._distinct:
            raise ProgrammingError("count() of a grouped or DISTINCT query is not supported")
        n = await self._run(_SCALAR, self._build(columns=[count()], order=False, page=False))
        return int(n)

    async def exists(self) -> bool:
        """True when a row matches (SELECT 1 … LIMIT 1)."""
        q = self._build(columns=[value(1)], order=False, page=False)
        q.limit(1)
        return (await self._run(_SCALAR, q)) is not None

    def update(self, **values: Any) -> "Update[M]":
        """UPDATE the rows matching WHERE; awaited: the number updated."""
        return Update(self, values)

    def delete(self) -> "Delete[M]":
        """DELETE the rows matching WHERE; awaited: the number deleted."""
        return Delete(self)

    async def iterate(self, batch_size: int = 1000) -> AsyncIterator[M]:
        """Streams the rows in batches by keyset on the primary key:
        WHERE pk > last ORDER BY pk LIMIT batch_size, one query a batch (no
        transaction or server-side cursor needed; rows inserted meanwhile
        with a larger key are seen). Needs a one-column primary key and no
        order_by/limit/offset of its own."""
        t = table_of(self._model)
        if len(t.pk) != 1:
            raise ProgrammingError("streaming needs a one-column primary key")
        if self._order or self._limit is not None or self._offset is not None:
            raise ProgrammingError("streaming orders by the primary key itself: drop "
                                   "order_by/limit/offset")
        pk = getattr(self._model, t.names[t.pk[0]])
        if self._cols and not any(getattr(c, "index", None) == t.pk[0] and
                                  getattr(c, "table", None) is t for c in self._cols):
            raise ProgrammingError("streaming a column subset needs the primary key in it")
        last: Any = None
        while True:
            q = self if last is None else self.where(pk > last)
            batch = await q.order_by(pk).limit(batch_size)
            for obj in batch:
                yield obj
            if len(batch) < batch_size:
                return
            last = batch[-1]._get(t.pk[0], None)

    def __aiter__(self) -> AsyncIterator[M]:
        return self.iterate()

    def __repr__(self) -> str:
        try:
            return f"<Select {self.sql()}>"
        except Exception:  # noqa: BLE001
            return f"<Select of {self._model.__name__}>"


async def _prefetch(rel: Relation, sub: Optional[Select[Any]], objs: list[Any],
                    db: Optional["Database"], timeout: Optional[float]) -> None:
    """Fills rel on objs with one query, `key = ANY($1)` over their keys
    (none when no instance has a key)."""
    child, fk, parent, pk = rel.resolve()
    own, other = (pk, fk) if rel.many else (fk, pk)
    rmodel = child if rel.many else parent
    t = table_of(rel.model)
    keys = t.keys(objs, own)
    rows: list[Model] = []
    if keys:
        q = sub if sub is not None else Select(rmodel)
        if q._db is None and db is not None:
            q = q.using(db)
        if q._timeout is None and timeout is not None:
            q = q.timeout(timeout)
        rt = table_of(rmodel)
        q = q.where(getattr(rmodel, rt.names[other]).in_(keys))
        # Related rows come whole, not streamed: their number is bounded by
        # the parents already in hand, and a copy per row would cost more
        # than the memory saved.
        rows = await q._run(_MODELS | _WHOLE)
        if q._prefetch:
            await q._fill_relations(rows)
    t.attach(rel.slot, objs, own, table_of(rmodel), rows, other, rel.many)


# ---- UPDATE / DELETE -------------------------------------------------------------


class _Write(Generic[M]):
    __slots__ = ("_sel", "_returning")

    def __init__(self, sel: Select[M]) -> None:
        self._sel = sel
        self._returning: Optional[tuple[Any, ...]] = None

    def _kind(self) -> int:
        raise NotImplementedError

    def _fill(self, q: Any) -> None:
        pass

    def _build(self) -> Any:
        s = self._sel
        if s._joins or s._group or s._order or s._limit is not None or s._cols:
            raise ProgrammingError("update()/delete() take WHERE only (no joins, order, limit, "
                                   "columns)")
        q = _core.query(self._kind(), table_of(s._model))
        self._fill(q)
        for e in s._where:
            q.where(e)
        if self._returning is not None:
            if self._returning:
                for c in self._returning:
                    q.returning(c)
            else:
                q.returning_all()
        return q

    def returning(self, *columns: Any) -> "_Write[M]":
        """RETURNING the rows' fields (or `columns`); awaited: list[M]."""
        new = type(self).__new__(type(self))
        _Write.__init__(new, self._sel)
        for k in type(self).__slots__:
            setattr(new, k, getattr(self, k))
        new._returning = columns
        return new

    def __await__(self) -> Generator[Any, None, Any]:
        mode = _AFFECTED if self._returning is None else _MODELS
        return _core.run(_target(self._sel._db), self._build(), mode, None,
                         self._sel._timeout).__await__()

    def sql(self) -> str:
        return cast(str, self._build().sql())


class Update(_Write[M]):
    __slots__ = ("_values",)

    def __init__(self, sel: Select[M], values: dict[str, Any]) -> None:
        super().__init__(sel)
        t = table_of(sel._model)
        for k in values:
            if k not in t.index:
                raise ProgrammingError(f"{sel._model.__name__} has no field {k!r}")
        if not values:
            raise ProgrammingError("update() needs at least one field")
        self._values = values

    def _kind(self) -> int:
        return _UPDATE

    def _fill(self, q: Any) -> None:
        t = table_of(self._sel._model)
        for k, v in self._values.items():
            q.set(t.index[k], v)


class Delete(_Write[M]):
    __slots__ = ()

    def _kind(self) -> int:
        return _DELETE


# ---- INSERT -----------------------------------------------------------------------


class Insert(Generic[M]):
    """INSERT of rows (dicts of field values). Awaited: the number of rows
    inserted; with .returning(): list[M]."""

    __slots__ = ("_model", "_rows", "_conflict", "_update", "_returning", "_db")

    def __init__(self, model: type[M], rows: list[dict[str, Any]]) -> None:
        if not rows:
            raise ProgrammingError("insert() needs values")
        t = table_of(model)
        for r in rows:
            for k in r:
                if k not in t.index:
                    raise ProgrammingError(f"{model.__name__} has no field {k!r}")
        self._model = model
        self._rows = rows
        self._conflict: Optional[tuple[Any, ...]] = None
        self._update: Any = False
        self._returning: Optional[tuple[Any, ...]] = None
        self._db: Optional["Database"] = None

    def _copy(self, **kw: Any) -> "Insert[M]":
        new = object.__new__(Insert)
        for k in Insert.__slots__:
            object.__setattr__(new, k, kw.get(k, getattr(self, k)))
        return new

    def on_conflict(self, *columns: Any, update: Union[bool, Sequence[Any]] = False) -> "Insert[M]":
        """ON CONFLICT (columns) DO NOTHING, or DO UPDATE when update=True
        (every inserted field but the conflict columns, from EXCLUDED) or a
        list of columns to take from EXCLUDED."""
        if update and not columns:
            raise ProgrammingError("on_conflict(update=...) needs the conflict columns")
        return self._copy(_conflict=columns, _update=update)

    def returning(self, *columns: Any) -> "Insert[M]":
        return self._copy(_returning=columns)

    def using(self, db: "Database") -> "Insert[M]":
        return self._copy(_db=db)

    def _build(self) -> Any:
        t = table_of(self._model)
        q = _core.query(_INSERT, t)
        for r in self._rows:
            q.values([t.index[k] for k in r], list(r.values()))
        if self._conflict is not None:
            idx = [c.index for c in self._conflict]
            q.on_conflict(idx, bool(self._update))
            if self._update and self._update is not True:
                for c in self._update:
                    q.set_excluded(c.index)
        if self._returning is not None:
            if self._returning:
                for c in self._returning:
                    q.returning(c)
            else:
                q.returning_all()
        return q

    def sql(self) -> str:
        return cast(str, self._build().sql())

    def __await__(self) -> Generator[Any, None, Any]:
        mode = _AFFECTED if self._returning is None else _MODELS
        return _core.run(_target(self._db), self._build(), mode).__await__()


# ---- instances -----------------------------------------------------------------------


def _pk_where(obj: Model) -> Expr:
    cls = type(obj)
    t = table_of(cls)
    if not t.pk:
        raise ProgrammingError(f"{cls.__name__} has no primary key")
    exprs = []
    for i in t.pk:
        v = obj._get(i, None)
        if v is None:
            raise ProgrammingError(f"{cls.__name__}.{t.names[i]} (primary key) is not set")
        exprs.append(getattr(cls, t.names[i]) == v)
    e = _and_all(exprs)
    assert e is not None
    return e


async def save_instance(obj: Model, db: "Database") -> None:
    t = table_of(type(obj))
    target = db._target()
    if not obj._persisted:
        idx = obj._loaded()
        q = _core.query(_INSERT, t)
        q.values(idx, [obj._get(i, None) for i in idx])
        q.returning_all()
        if await _core.run(target, q, _INTO, obj) is None:
            raise ProgrammingError("INSERT returned no row")
    else:
        changed = obj._changed()
        if not changed:
            return
        q = _core.query(_UPDATE, t)
        for i in changed:
            q.set(i, obj._get(i, None))
        q.where(_pk_where(obj))
        if await _core.run(target, q, _AFFECTED) == 0:
            raise NotFound(f"{type(obj).__name__} row to update is gone")
    obj._saved()


async def delete_instance(obj: Model, db: "Database") -> None:
    q = _core.query(_DELETE, table_of(type(obj)))
    q.where(_pk_where(obj))
    if await _core.run(db._target(), q, _AFFECTED) == 0:
        raise NotFound(f"{type(obj).__name__} row to delete is gone")


async def refresh_instance(obj: Model, db: "Database") -> None:
    q = _core.query(_SELECT, table_of(type(obj)))
    q.where(_pk_where(obj))
    if await _core.run(db._target(), q, _INTO, obj) is None:
        raise NotFound(f"{type(obj).__name__} row is gone")
    obj._saved()


async def bulk_insert(model: type[Model], objs: list[Any], batch_size: int,
                      db: "Database") -> None:
    t = table_of(model)
    for o in objs:
        if type(o) is not model:
            raise TypeError(f"bulk_create() of {model.__name__} got a {type(o).__name__}")
    target = db._target()
    for start in range(0, len(objs), batch_size):
        batch = objs[start:start + batch_size]
        q = _core.query(_INSERT, t)
        for o in batch:
            idx = o._loaded()
            q.values(idx, [o._get(i, None) for i in idx])
        q.returning_all()
        await _core.run(target, q, _INTO_LIST, batch)
        for o in batch:
            o._saved()


async def bulk_insert_rows(model: type[Model], objs: list[Any], copy_threshold: int,
                           chunk_size: int, db: "Database") -> int:
    """Stores objs without reading anything back; the number of rows.
    Large batches of built-in types go through binary COPY on one
    connection, chunk_size rows a COPY so memory stays bounded; the rest
    as multi-row INSERT."""
    t = table_of(model)
    if not objs:
        return 0
    loaded = t.same_loaded(objs)   # also refuses objects of another class
    same = loaded is not None
    idx = loaded if same else objs[0]._loaded()
    use_copy = (len(objs) >= copy_threshold and same and len(idx) > 0
                and all(t.copyable(i) for i in idx))
    target = db._target()
    if not use_copy:
        n = 0
        # 1,000 rows a statement keeps far below the 65,535 parameters a
        # statement may carry.
        for start in range(0, len(objs), 1000):
            q = _core.query(_INSERT, t)
            for o in objs[start:start + 1000]:
                i = o._loaded()
                q.values(i, [o._get(k, None) for k in i])
            n += await _core.run(target, q, _AFFECTED)
        return n
    conn = target if isinstance(target, _core.Conn) else await target.acquire()
    try:
        n = 0
        for start in range(0, len(objs), chunk_size):
            n += await t.copy_in(conn, idx, objs[start:start + chunk_size])
        return n
    finally:
        if conn is not target:
            conn.release()
