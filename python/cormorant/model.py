"""Models: classes declared with annotations, registered once per class with
the engine's registry (libcore's corm_model), instances made by C.

    class User(cm.Model):
        id: int = cm.column(primary_key=True)
        name: str = cm.column(max_length=30)
        email: str | None = None

Relations follow a foreign key; they hold what ``Select.prefetch()`` fetched:

    class Post(cm.Model):
        user_id: int = cm.column(references=User)
        user: User = cm.related("user_id")            # to-one, on the key's side
    # and on User:  posts: list[Post] = cm.reverse("Post.user_id")   (to-many)

This file maps annotations to PostgreSQL type names and hands them to
``_core``; DDL, SQL and value encoding come from libcore.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import re
import sys
import types
import typing
import uuid
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Literal,
    Optional,
    TypeVar,
    Union,
    overload,
)

from . import _core
from ._core import Column
from .errors import MultipleFound, NotFound, ProgrammingError, RelationNotLoaded

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover
    try:
        from typing_extensions import dataclass_transform
    except ImportError:
        def dataclass_transform(**kwargs: Any) -> Callable[[Any], Any]:
            return lambda f: f

if TYPE_CHECKING:
    from .database import Database
    from .query import Delete, Insert, Select, Update

__all__ = ["Model", "Column", "column", "sql", "SQL", "registry", "table_of", "related",
           "reverse", "Relation"]

M = TypeVar("M", bound="Model")
T = TypeVar("T")

# libcore's corm_column_flags and corm_fk_action.
COL_NULL, COL_PRIMARY_KEY, COL_UNIQUE = 1, 2, 4
COL_IDENTITY, COL_HAS_DEFAULT = 1 << 8, 1 << 9
_FK_ACTIONS = {
    None: 0, "no action": 0, "restrict": 1, "cascade": 2, "set null": 3, "set_null": 3,
    "set default": 4, "set_default": 4,
}
# _core field kinds.
_PLAIN, _JSON, _ARRAY, _ENUM = 0, 1, 2, 3

# One registry for the models of the process: foreign keys name other
# models, and DDL orders tables by them.
registry = _core.Registry()

class SQL:
    """A server-side SQL expression used as a column default:
    ``created: datetime = cm.sql("now()")``. The text is the developer's,
    copied into DDL as it is: never put user input in it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"cm.sql({self.text!r})"


def sql(text: str) -> Any:
    """A server default expression, e.g. ``cm.sql("now()")``."""
    return SQL(text)


_MISSING: Any = object()


class ColumnSpec:
    """What ``cm.column(...)`` returns: the options of one field, read when
    the class is created."""

    __slots__ = (
        "default", "default_factory", "primary_key", "unique", "index", "references",
        "on_delete", "on_update", "max_length", "precision", "scale", "timezone",
        "server_default", "type",
    )

    default: Any
    default_factory: Optional[Callable[[], Any]]
    primary_key: bool
    unique: bool
    index: bool
    references: Any
    on_delete: Optional[str]
    on_update: Optional[str]
    max_length: Optional[int]
    precision: Optional[int]
    scale: Optional[int]
    timezone: bool
    server_default: Optional[str]
    type: Optional[str]

    def __init__(self, **kw: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


# For type checkers (PEP 681): a field with default= or default_factory= is
# optional in __init__; a primary key is left out of the checked __init__
# (init=False: the server assigns it; passing one still works at run time).
@overload
def column(
    default: T, *, primary_key: bool = ..., unique: bool = ..., index: bool = ...,
    references: Optional[type["Model"]] = ..., on_delete: Optional[str] = ...,
    on_update: Optional[str] = ..., max_length: Optional[int] = ...,
    precision: Optional[int] = ..., scale: Optional[int] = ..., timezone: bool = ...,
    server_default: Optional[str] = ..., type: Optional[str] = ..., init: bool = ...,
) -> Any: ...
@overload
def column(
    *, default_factory: Callable[[], T], primary_key: bool = ..., unique: bool = ...,
    index: bool = ..., references: Optional[type["Model"]] = ..., on_delete: Optional[str] = ...,
    on_update: Optional[str] = ..., max_length: Optional[int] = ...,
    precision: Optional[int] = ..., scale: Optional[int] = ..., timezone: bool = ...,
    server_default: Optional[str] = ..., type: Optional[str] = ..., init: bool = ...,
) -> Any: ...
@overload
def column(
    *, primary_key: Literal[True], unique: bool = ..., index: bool = ...,
    references: Optional[type["Model"]] = ..., on_delete: Optional[str] = ...,
    on_update: Optional[str] = ..., max_length: Optional[int] = ...,
    precision: Optional[int] = ..., scale: Optional[int] = ..., timezone: bool = ...,
    server_default: Optional[str] = ..., type: Optional[str] = ...,
    init: Literal[False] = False,
) -> Any: ...
@overload
def column(
    *, primary_key: bool = ..., unique: bool = ..., index: bool = ...,
    references: Optional[type["Model"]] = ..., on_delete: Optional[str] = ...,
    on_update: Optional[str] = ..., max_length: Optional[int] = ...,
    precision: Optional[int] = ..., scale: Optional[int] = ..., timezone: bool = ...,
    server_default: Optional[str] = ..., type: Optional[str] = ..., init: bool = ...,
) -> Any: ...
def column(
    default: Any = _MISSING,
    *,
    default_factory: Optional[Callable[[], Any]] = None,
    primary_key: bool = False,
    unique: bool = False,
    index: bool = False,
    references: Optional[type["Model"]] = None,
    on_delete: Optional[str] = None,
    on_update: Optional[str] = None,
    max_length: Optional[int] = None,
    precision: Optional[int] = None,
    scale: Optional[int] = None,
    timezone: bool = True,
    server_default: Optional[str] = None,
    type: Optional[str] = None,
    init: bool = True,
) -> Any:
    """Options of a field.

    default / default_factory: the Python-side default (a value, or a
    callable run per new instance); server_default (or a default of
    ``cm.sql("...")``): an SQL expression the server fills in.
    primary_key, unique, index; references=OtherModel (its primary key)
    with on_delete / on_update ("cascade", "restrict", "set null", ...).
    max_length makes a str a varchar(n); precision/scale a Decimal a
    numeric(p, s); timezone=False makes a datetime a timestamp without time
    zone; type= names the PostgreSQL type outright. init is for type
    checkers only (False: not an __init__ parameter for them).
    """
    if isinstance(default, SQL):
        server_default, default = default.text, _MISSING
    return ColumnSpec(
        default=default, default_factory=default_factory, primary_key=primary_key,
        unique=unique, index=index, references=references, on_delete=on_delete,
        on_update=on_update, max_length=max_length, precision=precision, scale=scale,
        timezone=timezone, server_default=server_default, type=type,
    )


class _RelationSpec:
    """What ``cm.related()`` / ``cm.reverse()`` return: read when the class
    is created, then replaced by a Relation."""

    __slots__ = ("fk", "many")

    def __init__(self, fk: Any, many: bool) -> None:
        self.fk, self.many = fk, many


# init=False keeps a relation out of __init__ for type checkers (PEP 681).
def related(fk: str, *, init: Literal[False] = False) -> Any:
    """A to-one relation through this model's foreign key column ``fk``
    (its name): ``user: User = cm.related("user_id")``. After
    ``.prefetch(Post.user)`` it holds the referenced instance, or None when
    the key is NULL (annotate it ``User | None`` then)."""
    if not isinstance(fk, str):
        raise TypeError("cm.related() takes the name of a foreign key field of this model")
    return _RelationSpec(fk, False)


def reverse(fk: Union[str, Column[Any], Callable[[], Column[Any]]], *,
            init: Literal[False] = False) -> Any:
    """A to-many relation: the rows of another model whose foreign key
    references this one. ``fk`` names that key as ``"Post.user_id"`` (the
    model looked up in this module, when the relation is first used), as
    ``lambda: Post.user_id``, or as the column itself. After
    ``.prefetch(User.posts)`` it holds a list, empty when no row refers."""
    if not (isinstance(fk, (str, Column)) or callable(fk)):
        raise TypeError('cm.reverse() takes "Model.field", a column, or a lambda returning one')
    return _RelationSpec(fk, True)


_NOT_LOADED: Any = object()


class Relation:
    """A relation on a model class (what cm.related()/cm.reverse() become).
    On an instance: what the last prefetch attached; RelationNotLoaded
    (an AttributeError) before any, since following it would be I/O."""

    __slots__ = ("model", "name", "slot", "many", "_fk", "_resolved")

    def __init__(self, model: type["Model"], name: str, slot: int, spec: _RelationSpec) -> None:
        self.model, self.name, self.slot, self.many = model, name, slot, spec.many
        self._fk = spec.fk
        self._resolved: Optional[tuple[type[Model], int, type[Model], int]] = None

    @overload
    def __get__(self, obj: None, owner: Any) -> "Relation": ...
    @overload
    def __get__(self, obj: "Model", owner: Any) -> Any: ...
    def __get__(self, obj: Optional["Model"], owner: Any = None) -> Any:
        if obj is None:
            return self
        v = obj._related(self.slot, _NOT_LOADED)
        if v is _NOT_LOADED:
            raise RelationNotLoaded(
                f"{self.model.__name__}.{self.name} was not prefetched: select with "
                f".prefetch({self.model.__name__}.{self.name}) (relations never load lazily)")
        return v

    def __set__(self, obj: "Model", value: Any) -> None:
        raise AttributeError(f"{self.model.__name__}.{self.name} is a relation, filled by "
                             f"prefetch(); set the foreign key field instead")

    def resolve(self) -> tuple[type["Model"], int, type["Model"], int]:
        """(model holding the key, its field index, referenced model, its
        key's field index). ProgrammingError when the declared column is
        not a foreign key between the two models."""
        if self._resolved is None:
            self._resolved = self._resolve()
        return self._resolved

    def _resolve(self) -> tuple[type["Model"], int, type["Model"], int]:
        where = f"{self.model.__name__}.{self.name}"
        fk = self._fk
        if not self.many:
            child, field = self.model, fk
        elif isinstance(fk, str):
            mname, _, field = fk.rpartition(".")
            found = getattr(sys.modules.get(self.model.__module__), mname, None) if mname else None
            if not (isinstance(found, type) and issubclass(found, Model)):
                raise ProgrammingError(
                    f"{where}: cm.reverse({fk!r}) names no model of module "
                    f"{self.model.__module__} (give 'Model.field', or lambda: Model.field)")
            child = found
        else:
            col = fk if isinstance(fk, Column) else fk()
            if not isinstance(col, Column):
                raise ProgrammingError(f"{where}: cm.reverse()'s lambda returned {col!r}, "
                                       "not a column")
            child, field = col.model, col.name
        refs = child.__dict__.get("__references__", {})
        if field not in refs:
            raise ProgrammingError(f"{where}: {child.__name__}.{field} is not a foreign key "
                                   "(cm.column(references=...))")
        parent = refs[field]
        if self.many and parent is not self.model:
            raise ProgrammingError(f"{where}: {child.__name__}.{field} references "
                                   f"{parent.__name__}, not {self.model.__name__}")
        pt = table_of(parent)
        if len(pt.pk) != 1:
            raise ProgrammingError(f"{where}: {parent.__name__} needs a one-column primary key")
        return child, table_of(child).index[field], parent, pt.pk[0]

    def __repr__(self) -> str:
        return f"<Relation {self.model.__name__}.{self.name}>"


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


_SCALARS: dict[Any, tuple[str, Any]] = {
    bool: ("boolean", bool),
    int: ("bigint", int),
    float: ("double precision", (float, int)),
    str: ("text", str),
    bytes: ("bytea", (bytes, bytearray, memoryview)),
    decimal.Decimal: ("numeric", (decimal.Decimal, int)),
    _dt.datetime: ("timestamptz", _dt.datetime),
    _dt.date: ("date", _dt.date),
    _dt.time: ("time", _dt.time),
    _dt.timedelta: ("interval", _dt.timedelta),
    uuid.UUID: ("uuid", uuid.UUID),
}

_enum_types: dict[type, str] = {}


def _enum_type(cls: type[enum.Enum]) -> str:
    name = _enum_types.get(cls)
    if name is None:
        labels = [m.value for m in cls]
        if not all(isinstance(v, str) for v in labels):
            raise TypeError(f"{cls.__name__}: an enum field needs str values (labels)")
        name = _snake(cls.__name__)
        registry.add_enum(name, labels)
        _enum_types[cls] = name
    return name


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin is Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], nullable
        raise TypeError(f"unsupported union {tp!r}: only X | None")
    return tp, False


class _FieldType(typing.NamedTuple):
    pg: str
    check: Any
    elem_check: Any
    kind: int
    convert: Any


def _scalar_type(tp: Any, spec: ColumnSpec) -> _FieldType:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _FieldType(_enum_type(tp), tp, None, _ENUM, tp)
    if tp is dict or typing.get_origin(tp) is dict or tp is Any or tp is list:
        return _FieldType("jsonb", None, None, _JSON, None)
    if tp in _SCALARS:
        pg, check = _SCALARS[tp]
        if tp is str and spec.max_length:
            pg = f"varchar({int(spec.max_length)})"
        elif tp is decimal.Decimal and spec.precision:
            pg = f"numeric({int(spec.precision)},{int(spec.scale or 0)})"
        elif tp is _dt.datetime and spec.timezone is False:
            pg = "timestamp"
        return _FieldType(pg, check, None, _PLAIN, None)
    raise TypeError(f"no PostgreSQL type for {tp!r}: give cm.column(type=...)")


def field_type(annotation: Any, spec: ColumnSpec) -> tuple[_FieldType, bool]:
    """(type, nullable) of an annotation: the mapping from Python types to
    PostgreSQL type names."""
    tp, nullable = _unwrap_optional(annotation)
    if typing.get_origin(tp) is _core.Column or tp is _core.Column:
        args = typing.get_args(tp)
        tp, nullable = _unwrap_optional(args[0] if args else Any)
    if spec.type:
        return _FieldType(spec.type, None, None, _PLAIN, None), nullable
    if typing.get_origin(tp) is list:
        # list[T] -> T[]; list[list[T]] -> T[][]. Items may be None.
        dims, elem = 0, tp
        while typing.get_origin(elem) is list:
            dims += 1
            (elem,) = typing.get_args(elem) or (Any,)
        elem, _ = _unwrap_optional(elem)
        if isinstance(elem, type) and issubclass(elem, enum.Enum):
            # libcore binds an array of labels as text[], which the server
            # refuses for an enum[] column; store a list of enums as jsonb
            # or text[] meanwhile.
            raise TypeError(f"{tp!r}: arrays of enums are not supported yet")
        inner = _scalar_type(elem, spec)
        return _FieldType(inner.pg + "[]" * dims, list, inner.check, _ARRAY, inner.convert), nullable
    return _scalar_type(tp, spec), nullable


def _is_classvar(tp: Any) -> bool:
    return tp is ClassVar or typing.get_origin(tp) is ClassVar


@dataclass_transform(kw_only_default=True, field_specifiers=(column, related, reverse))
class ModelMeta(type):
    """Creates the model's table in the registry from the annotations and
    puts a _core.Column descriptor on the class for each field."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any],
                table: Optional[str] = None, schema: Optional[str] = None, **kw: Any) -> Any:
        if ns.get("__module__") == __name__ and name == "Model":
            return super().__new__(mcls, name, bases, ns, **kw)
        for b in bases:
            if isinstance(b, ModelMeta) and "__table__" in b.__dict__:
                raise TypeError(f"{name}: subclassing the model {b.__name__} is not supported "
                                "(a model is one table; share fields through a plain "
                                "mixin class of annotations instead)")
        # Fields of plain mixin classes come first, then the class's own.
        own: dict[str, Any] = {}
        specs: dict[str, Any] = {}
        for b in reversed(bases):
            for k in reversed(b.__mro__):
                if k is object or isinstance(k, ModelMeta) or k is _core.ModelBase:
                    continue
                for fname, v in k.__dict__.items():
                    if isinstance(v, _RelationSpec):
                        raise TypeError(f"{name}: relation {fname!r} of mixin {k.__name__}: "
                                        "declare relations on the model itself")
                for fname in k.__dict__.get("__annotations__", {}):
                    own[fname] = True
                    if fname in k.__dict__:
                        specs[fname] = k.__dict__[fname]
        # Relations are not columns, and their annotations may name models
        # defined later: they stay out of the resolved hints.
        relations = {k: ns.pop(k) for k, v in list(ns.items()) if isinstance(v, _RelationSpec)}
        if relations and "__annotations__" in ns:
            ns["__annotations__"] = {k: v for k, v in ns["__annotations__"].items()
                                     if k not in relations}
        for fname in ns.get("__annotations__", {}):
            own[fname] = True
            if fname in ns:
                specs[fname] = ns.pop(fname)
        ns["__slots__"] = ()
        cls = super().__new__(mcls, name, bases, ns, **kw)
        try:
            hints = typing.get_type_hints(cls, include_extras=False)
        except NameError as e:
            raise TypeError(f"{name}: cannot resolve an annotation ({e})") from None
        fields = [f for f in own if not _is_classvar(hints.get(f)) and not f.startswith("_")]
        for fname in [*fields, *relations]:
            if hasattr(Model, fname):
                raise TypeError(f"{name}.{fname}: a field may not shadow Model.{fname}")
        t = registry.model(table or _snake(name), schema)
        deferred: list[tuple[int, ColumnSpec]] = []
        references: dict[str, type[Model]] = {}
        for fname in fields:
            raw = specs.get(fname, _MISSING)
            spec: ColumnSpec = raw if isinstance(raw, ColumnSpec) else column(raw)
            ftype, nullable = field_type(hints[fname], spec)
            flags = (COL_NULL if nullable else 0) | (COL_PRIMARY_KEY if spec.primary_key else 0) \
                | (COL_UNIQUE if spec.unique else 0)
            has_default = spec.default is not _MISSING or spec.default_factory is not None
            auto_pk = spec.primary_key and ftype.pg in ("bigint", "uuid")
            required = not nullable and not has_default and not spec.server_default and not auto_pk
            i = t.add_column(fname, ftype.pg, flags, check=ftype.check, elem_check=ftype.elem_check,
                             kind=ftype.kind, convert=ftype.convert, required=required)
            if spec.default is not _MISSING:
                t.set_default(i, spec.default)
            elif spec.default_factory is not None:
                t.set_default(i, None, spec.default_factory)
            elif nullable and not spec.server_default:
                t.set_default(i, None)
            if spec.server_default:
                t.set_server_default(i, spec.server_default)
            deferred.append((i, spec))
        for i, spec in deferred:
            if spec.references is not None:
                target = table_of(spec.references)
                references[t.names[i]] = spec.references
                try:
                    action = _FK_ACTIONS[spec.on_delete], _FK_ACTIONS[spec.on_update]
                except KeyError:
                    raise ValueError(f"{name}: on_delete/on_update must be one of "
                                     f"{sorted(k for k in _FK_ACTIONS if k)}") from None
                t.add_foreign_key([i], target, *action)
            if spec.index and not spec.unique and not spec.primary_key:
                t.add_index([i])
        for rname, rspec in relations.items():
            if not rspec.many and rspec.fk not in references:
                raise TypeError(f"{name}.{rname}: cm.related({rspec.fk!r}) needs a field of "
                                f"{name} declared with cm.column(references=...)")
        t.set_relations(len(relations))
        t.bind(cls)
        type.__setattr__(cls, "__table__", t)
        type.__setattr__(cls, "__references__", references)
        for i, fname in enumerate(t.names):
            type.__setattr__(cls, fname, t.column(i))
        rels = {}
        for slot, (rname, rspec) in enumerate(relations.items()):
            rels[rname] = Relation(typing.cast("type[Model]", cls), rname, slot, rspec)
            type.__setattr__(cls, rname, rels[rname])
        type.__setattr__(cls, "__relations__", rels)
        return cls

    def __setattr__(cls, name: str, value: Any) -> None:
        t = cls.__dict__.get("__table__")
        if t is not None and name in t.index:
            raise AttributeError(f"{cls.__name__}.{name} is a column; set it on instances")
        super().__setattr__(name, value)


def table_of(model: Any) -> Any:
    t = getattr(model, "__table__", None)
    if not isinstance(t, _core.Table):
        raise TypeError(f"{model!r} is not a model class")
    return t


def _db(db: Optional["Database"]) -> "Database":
    if db is not None:
        return db
    from .database import default_database

    return default_database()


class Model(_core.ModelBase, metaclass=ModelMeta):
    """Base of models. Subclass with annotated fields; keyword arguments
    of the class statement: table="name" (default: the class name in
    snake_case), schema="name".

    Instances hold their values in C slots. Fields assigned since the last
    load or save are tracked, so save() updates only those.
    """

    __slots__ = ()
    __table__: ClassVar[Any]
    # Field name -> the model it references; relation name -> Relation.
    __references__: ClassVar[dict[str, type["Model"]]]
    __relations__: ClassVar[dict[str, Relation]]

    def __init_subclass__(cls, *, table: Optional[str] = None, schema: Optional[str] = None,
                          **kw: Any) -> None:
        # table= and schema= are read by the metaclass.
        super().__init_subclass__(**kw)

    # -- queries -------------------------------------------------------------

    @classmethod
    def select(cls: type[M], *columns: Any) -> "Select[M]":
        """SELECT the model's fields (or only `columns`); await it for a
        list of instances."""
        from .query import Select

        return Select(cls, columns)

    @classmethod
    def filter(cls: type[M], *exprs: Any, **lookups: Any) -> "Select[M]":
        """select().where(*exprs) with Django-style lookups:
        ``User.filter(name="x", id__gte=3)``."""
        return cls.select().filter(*exprs, **lookups)

    @classmethod
    async def get(cls: type[M], *exprs: Any, db: Optional["Database"] = None, **lookups: Any) -> M:
        """The one row matching; cm.NotFound when none, cm.MultipleFound
        when more than one."""
        from .query import get_query, run_models

        rows: list[M] = await run_models(db, get_query(cls, exprs, lookups))
        if not rows:
            raise NotFound(f"{cls.__name__} matching {lookups or exprs} not found")
        if len(rows) > 1:
            raise MultipleFound(f"more than one {cls.__name__} matches {lookups or exprs}")
        return rows[0]

    @classmethod
    async def create(cls: type[M], *, db: Optional["Database"] = None, **fields: Any) -> M:
        """INSERT … RETURNING: a new saved instance with server-filled
        fields (the id, defaults) set."""
        obj = cls(**fields)
        await obj.save(db=db)
        return obj

    @classmethod
    def insert(cls: type[M], *rows: dict[str, Any], **values: Any) -> "Insert[M]":
        """INSERT of one row (keyword arguments) or several (dicts); add
        .on_conflict(...) for an upsert, .returning() for instances. Awaited:
        the number of rows inserted."""
        from .query import Insert

        return Insert(cls, list(rows) + ([values] if values else []))

    @classmethod
    def update(cls: type[M], **values: Any) -> "Update[M]":
        """UPDATE every row (add .where()/.filter() first via
        ``Model.filter(...).update(...)``)."""
        return cls.select().update(**values)

    @classmethod
    def delete_where(cls: type[M], *exprs: Any, **lookups: Any) -> "Delete[M]":
        return cls.select().filter(*exprs, **lookups).delete()

    @classmethod
    async def bulk_create(cls: type[M], objs: "list[M]", *, batch_size: int = 1000,
                          db: Optional["Database"] = None) -> "list[M]":
        """Inserts objs with multi-row INSERT … VALUES … RETURNING, batch_size
        rows a statement, filling each object's server-side fields. For
        large loads that need nothing back, bulk_insert uses binary COPY."""
        from .query import bulk_insert

        await bulk_insert(cls, objs, batch_size, _db(db))
        return objs

    @classmethod
    async def bulk_insert(cls: type[M], objs: "list[M]", *, copy_threshold: int = 1000,
                          chunk_size: int = 100_000, db: Optional["Database"] = None) -> int:
        """Stores objs and returns how many rows were stored, reading nothing
        back (server-side fields such as generated ids stay unset: use
        bulk_create for those). From copy_threshold objects on, when every
        object sets the same fields and their types are built in, the rows
        go through binary COPY, chunk_size rows a COPY; otherwise through
        multi-row INSERT."""
        from .query import bulk_insert_rows

        return await bulk_insert_rows(cls, objs, copy_threshold, chunk_size, _db(db))

    # -- instances -----------------------------------------------------------

    async def save(self, *, db: Optional["Database"] = None) -> None:
        """INSERT a new instance (RETURNING fills server-side fields), or
        UPDATE only the fields changed since it was loaded or saved."""
        from .query import save_instance

        await save_instance(self, _db(db))

    async def delete(self, *, db: Optional["Database"] = None) -> None:
        """DELETE this row (by primary key)."""
        from .query import delete_instance

        await delete_instance(self, _db(db))

    async def refresh(self, *, db: Optional["Database"] = None) -> None:
        """Reloads every field from the database."""
        from .query import refresh_instance

        await refresh_instance(self, _db(db))

    def to_dict(self) -> dict[str, Any]:
        """The loaded fields as a dict."""
        names = type(self).__table__.names
        return {names[i]: self._get(i, None) for i in self._loaded()}

    @property
    def changed_fields(self) -> tuple[str, ...]:
        """Names of the fields changed since the last load or save."""
        names = type(self).__table__.names
        return tuple(names[i] for i in self._changed())

    @property
    def is_saved(self) -> bool:
        return self._persisted
