/*
 * model.c - models and built queries: _core.Registry and _core.Table over
 * corm_registry / corm_model, _core.ModelBase (field values in an inline
 * slot array, a changed-field bitset), _core.Column descriptors, _core.Expr
 * over corm_expr, _core.Query over built corm_query, and the one loop that
 * turns a result into model instances (_core._Shape).
 */
#include "pycorm.h"

#include <stddef.h>
#include <string.h>

/* ---- objects ------------------------------------------------------------ */

typedef struct RegistryObject {
    PyObject_HEAD
    pycorm_state *st;
    PyObject *module;       /* keeps st alive */
    corm_registry *reg;
} RegistryObject;

enum field_kind { FK_PLAIN = 0, FK_JSON = 1, FK_ARRAY = 2, FK_ENUM = 3 };

typedef struct field {
    PyObject *name;
    PyObject *check;        /* type or tuple of types for isinstance, or NULL */
    PyObject *elem_check;   /* arrays: the items' check, or NULL */
    PyObject *convert;      /* enums: the Enum class (label -> member), or NULL */
    PyObject *dflt;         /* Python default value, or NULL */
    PyObject *factory;      /* default_factory, or NULL */
    int kind;               /* enum field_kind */
    bool nullable, required, bool_ok;
} field;

typedef struct TableObject {
    PyObject_HEAD
    pycorm_state *st;
    RegistryObject *reg;
    corm_model *m;          /* borrowed from reg */
    field *fields;
    int nfields, cap;
    PyObject *index;        /* {name: int} */
    PyObject *cls;          /* the model class once bound, or NULL */
    int nrel;               /* relation slots per instance (set_relations) */
} TableObject;

typedef struct ModelObject {
    PyObject_VAR_HEAD
    TableObject *table;
    uint32_t nfields;
    uint32_t persisted;     /* loaded from or saved to the database */
    /* nfields values (NULL: not loaded), then the changed-field bitset. */
    PyObject *items[1];
} ModelObject;

#define WORD_BITS (8 * sizeof(PyObject *))
#define NWORDS(n) (((size_t)(n) + WORD_BITS - 1) / WORD_BITS)
#define CHANGED(o) ((uintptr_t *)&(o)->items[(o)->nfields])
/* Relations a prefetch attached (NULL: not fetched) follow the bitset; only
 * models that declare relations have these slots. */
#define RELATED(o) ((PyObject **)&CHANGED(o)[NWORDS((o)->nfields)])
#define NRELATED(o) ((size_t)Py_SIZE(o) - (o)->nfields - NWORDS((o)->nfields))

typedef struct ExprObject {
    PyObject_HEAD
    RegistryObject *reg;
    corm_expr *e;           /* NULL for a Column until first used */
    PyObject *alias;        /* label(), or NULL */
    unsigned order;         /* asc()/desc() flags */
    /* Column only. */
    TableObject *table;
    int col;
} ExprObject;

typedef struct QueryObject {
    PyObject_HEAD
    RegistryObject *reg;
    TableObject *table;     /* the target/first model, or NULL */
    corm_query *q;
} QueryObject;

enum shape_mode {
    SH_MODELS = 0,     /* list of model instances */
    SH_FIRST = 1,      /* the first instance, or None */
    SH_DICTS = 2,      /* list of dicts */
    SH_TUPLES = 3,     /* list of tuples */
    SH_SCALAR = 4,     /* first cell of the first row, or None */
    SH_AFFECTED = 5,   /* rows affected */
    SH_INTO = 6,       /* row 0 fills `into` (an instance); returns it (None if no row) */
    SH_INTO_LIST = 7,  /* row i fills into[i]; returns the number of rows */
    SH_ROWS = 8,       /* list of Row */
    /* Flag: a list known to be short (get()'s LIMIT 2): made from the whole
     * result, since streaming costs a result copy per row. */
    SH_WHOLE = 0x100,
};

typedef struct ShapeObject {
    PyObject_HEAD
    TableObject *table;
    PyObject *into;
    int mode;
    bool whole;        /* SH_WHOLE was given */
    int ncols;
    int *map;          /* result column -> field index, or -1 */
} ShapeObject;

static corm_expr *expr_get(ExprObject *self);
typedef struct valbuf valbuf;
/* Storage for the values of one call: holds, array items, dims. */
struct valbuf {
    pycorm_hold *holds;
    int nholds, capholds;
    void **blocks;
    int nblocks, capblocks;
};
static int field_value(TableObject *t, int idx, PyObject *o, corm_value *v, valbuf *b);
static void valbuf_free(valbuf *b);

static PyObject *raise_err(pycorm_state *st, corm_error *err)
{
    if (!err->code)
        err->code = CORM_EINTERNAL;
    pycorm_raise(st, err);
    corm_error_clear(err);
    return NULL;
}

static Py_hash_t ptr_hash(PyObject *o)
{
    Py_hash_t h = (Py_hash_t)((uintptr_t)o >> 4);
    return h == -1 ? -2 : h;
}

/* ---- Registry ------------------------------------------------------------- */

static PyObject *registry_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if ((kw && PyDict_GET_SIZE(kw)) || PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "Registry() takes no arguments");
        return NULL;
    }
    pycorm_state *st = pycorm_state_of_type(type);
    if (!st)
        return NULL;
    RegistryObject *self = (RegistryObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->st = st;
    self->module = PyType_GetModule(type);
    Py_XINCREF(self->module);
    corm_error err = CORM_ERROR_INIT;
    if (corm_registry_new(&self->reg, NULL, &err) < 0) {
        Py_DECREF(self);
        return raise_err(st, &err);
    }
    return (PyObject *)self;
}

static int registry_traverse(RegistryObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->module);
    return 0;
}

static void registry_dealloc(RegistryObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    corm_registry_free(self->reg);
    Py_CLEAR(self->module);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* model(table, schema=None) -> Table */
static PyObject *registry_model(RegistryObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"table", "schema", NULL};
    const char *table, *schema = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|z:model", kwlist, &table, &schema))
        return NULL;
    pycorm_state *st = self->st;
    TableObject *t = PyObject_GC_New(TableObject, st->TableType);
    if (!t)
        return NULL;
    t->st = st;
    t->reg = (RegistryObject *)Py_NewRef(self);
    t->m = NULL;
    t->fields = NULL;
    t->nfields = t->cap = 0;
    t->nrel = 0;
    t->cls = NULL;
    t->index = PyDict_New();
    PyObject_GC_Track(t);
    if (!t->index) {
        Py_DECREF(t);
        return NULL;
    }
    corm_error err = CORM_ERROR_INIT;
    if (corm_model_new(&t->m, self->reg, schema, table, &err) < 0) {
        Py_DECREF(t);
        return raise_err(st, &err);
    }
    return (PyObject *)t;
}

/* add_enum(name, labels, schema=None) */
static PyObject *registry_add_enum(RegistryObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "labels", "schema", NULL};
    const char *name, *schema = NULL;
    PyObject *labels;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|z:add_enum", kwlist, &name, &labels, &schema))
        return NULL;
    PyObject *seq = PySequence_Fast(labels, "labels must be a sequence of str");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **ls = PyMem_Calloc(n ? (size_t)n : 1, sizeof *ls);
    if (!ls) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(ls[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i)))) {
            PyMem_Free(ls);
            Py_DECREF(seq);
            return NULL;
        }
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_registry_add_enum(self->reg, schema, name, (int)n, ls, &err);
    PyMem_Free(ls);
    Py_DECREF(seq);
    if (rc < 0)
        return raise_err(self->st, &err);
    Py_RETURN_NONE;
}

/* The corm_models of a sequence of Tables into *out (PyMem; caller frees). */
static int tables_of(RegistryObject *self, PyObject *tables, const corm_model ***out, int *n)
{
    PyObject *seq = PySequence_Fast(tables, "expected a sequence of tables");
    if (!seq)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    const corm_model **ms = PyMem_Calloc(len ? (size_t)len : 1, sizeof *ms);
    if (!ms) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyObject_TypeCheck(t, self->st->TableType) || ((TableObject *)t)->reg != self) {
            PyErr_SetString(PyExc_TypeError, "expected tables of this registry");
            PyMem_Free(ms);
            Py_DECREF(seq);
            return -1;
        }
        ms[i] = ((TableObject *)t)->m;
    }
    Py_DECREF(seq);
    *out = ms;
    *n = (int)len;
    return 0;
}

static PyObject *ddl_list(corm_ddl *d)
{
    int n = corm_ddl_count(d);
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) {
        PyObject *s = PyUnicode_FromString(corm_ddl_statement(d, i));
        if (!s) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, s);
    }
    corm_ddl_free(d);
    return list;
}

/* ddl(tables, drop=False, if_not_exists=False, if_exists=False, cascade=False)
 * -> list of SQL statements (libcore's), in order. */
static PyObject *registry_ddl(RegistryObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tables", "drop", "if_not_exists", "if_exists", "cascade", NULL};
    PyObject *tables;
    int drop = 0, ine = 0, ie = 0, cascade = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pppp:ddl", kwlist, &tables, &drop, &ine, &ie,
                                     &cascade))
        return NULL;
    const corm_model **ms;
    int n;
    if (tables_of(self, tables, &ms, &n) < 0)
        return NULL;
    unsigned flags = (ine ? CORM_DDL_IF_NOT_EXISTS : 0) | (ie ? CORM_DDL_IF_EXISTS : 0) |
                     (cascade ? CORM_DDL_CASCADE : 0);
    corm_ddl *d = NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc = drop ? corm_ddl_drop(&d, self->reg, n, ms, flags, &err)
                  : corm_ddl_create(&d, self->reg, n, ms, flags, &err);
    PyMem_Free(ms);
    if (rc < 0)
        return raise_err(self->st, &err);
    return ddl_list(d);
}

static PyMethodDef registry_methods[] = {
    {"model", (PyCFunction)(void (*)(void))registry_model, METH_VARARGS | METH_KEYWORDS,
     "model(table, schema=None) -> Table"},
    {"add_enum", (PyCFunction)(void (*)(void))registry_add_enum, METH_VARARGS | METH_KEYWORDS,
     "add_enum(name, labels, schema=None)"},
    {"ddl", (PyCFunction)(void (*)(void))registry_ddl, METH_VARARGS | METH_KEYWORDS,
     "ddl(tables, drop=False, if_not_exists=False, if_exists=False, cascade=False) -> [sql]"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot registry_slots[] = {
    {Py_tp_new, registry_new},
    {Py_tp_dealloc, registry_dealloc},
    {Py_tp_traverse, registry_traverse},
    {Py_tp_methods, registry_methods},
    {Py_tp_doc, "Registry(): the models of an application (a corm_registry)."},
    {0, NULL},
};

static PyType_Spec registry_spec = {
    .name = "cormorant._core.Registry",
    .basicsize = sizeof(RegistryObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = registry_slots,
};

/* ---- Table ------------------------------------------------------------------ */

static int table_traverse(TableObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->reg);
    Py_VISIT(self->index);
    Py_VISIT(self->cls);
    for (int i = 0; i < self->nfields; i++) {
        field *f = &self->fields[i];
        Py_VISIT(f->name);
        Py_VISIT(f->check);
        Py_VISIT(f->elem_check);
        Py_VISIT(f->convert);
        Py_VISIT(f->dflt);
        Py_VISIT(f->factory);
    }
    return 0;
}

static int table_clear(TableObject *self)
{
    Py_CLEAR(self->index);
    Py_CLEAR(self->cls);
    for (int i = 0; i < self->nfields; i++) {
        field *f = &self->fields[i];
        Py_CLEAR(f->name);
        Py_CLEAR(f->check);
        Py_CLEAR(f->elem_check);
        Py_CLEAR(f->convert);
        Py_CLEAR(f->dflt);
        Py_CLEAR(f->factory);
    }
    return 0;
}

static void table_dealloc(TableObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    table_clear(self);
    PyMem_Free(self->fields);
    Py_CLEAR(self->reg);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *none_to_null(PyObject *o)
{
    return o == Py_None ? NULL : Py_NewRef(o);
}

/* add_column(name, type, flags=0, *, check=None, elem_check=None, kind=0,
 *            convert=None, required=False) -> index */
static PyObject *table_add_column(TableObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name",  "type",    "flags",    "check", "elem_check",
                             "kind",  "convert", "required", NULL};
    PyObject *name;
    const char *type;
    unsigned int flags = 0;
    PyObject *check = Py_None, *elem_check = Py_None, *convert = Py_None;
    int kind = 0, required = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Us|I$OOiOp:add_column", kwlist, &name, &type,
                                     &flags, &check, &elem_check, &kind, &convert, &required))
        return NULL;
    const char *cname = PyUnicode_AsUTF8(name);
    if (!cname)
        return NULL;
    if (self->nfields == self->cap) {
        int cap = self->cap ? self->cap * 2 : 8;
        field *fs = PyMem_Realloc(self->fields, (size_t)cap * sizeof *fs);
        if (!fs)
            return PyErr_NoMemory();
        self->fields = fs;
        self->cap = cap;
    }
    corm_error err = CORM_ERROR_INIT;
    int idx = corm_model_add_column(self->m, cname, type, flags, &err);
    if (idx < 0)
        return raise_err(self->st, &err);
    if (idx != self->nfields) {
        PyErr_SetString(PyExc_RuntimeError, "column index out of step");
        return NULL;
    }
    PyObject *i = PyLong_FromLong(idx);
    if (!i || PyDict_SetItem(self->index, name, i) < 0) {
        Py_XDECREF(i);
        return NULL;
    }
    field *f = &self->fields[self->nfields++];
    memset(f, 0, sizeof *f);
    f->name = Py_NewRef(name);
    f->check = none_to_null(check);
    f->elem_check = none_to_null(elem_check);
    f->convert = none_to_null(convert);
    f->kind = kind;
    f->nullable = (flags & CORM_COL_NULL) != 0;
    f->required = required != 0;
    f->bool_ok = true;
    if (f->check) {
        int r = PyObject_IsSubclass((PyObject *)&PyBool_Type, f->check);
        if (r < 0)
            return NULL;
        /* bool is an int, but True is no id: only a check naming bool takes it. */
        f->bool_ok = false;
        PyObject *seq = PyTuple_Check(f->check) ? f->check : NULL;
        if (f->check == (PyObject *)&PyBool_Type)
            f->bool_ok = true;
        for (Py_ssize_t k = 0; seq && k < PyTuple_GET_SIZE(seq); k++)
            if (PyTuple_GET_ITEM(seq, k) == (PyObject *)&PyBool_Type)
                f->bool_ok = true;
    }
    return i;
}

/* set_default(index, value=None, factory=None): the Python-side default. */
static PyObject *table_set_default(TableObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"index", "value", "factory", NULL};
    int idx;
    PyObject *value = NULL, *factory = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|OO:set_default", kwlist, &idx, &value,
                                     &factory))
        return NULL;
    if (idx < 0 || idx >= self->nfields) {
        PyErr_SetString(PyExc_IndexError, "no such field");
        return NULL;
    }
    field *f = &self->fields[idx];
    /* A constant of a kind libcore writes as a literal also goes into the
     * DDL, so INSERTs that leave the field out (and raw SQL) get it too. */
    if (value && value != Py_None && f->kind != FK_ARRAY &&
        (f->kind == FK_ENUM || PyBool_Check(value) || PyLong_Check(value) || PyFloat_Check(value) ||
         PyUnicode_Check(value) || PyBytes_Check(value) ||
         PyObject_TypeCheck(value, (PyTypeObject *)self->st->Decimal) ||
         PyObject_TypeCheck(value, (PyTypeObject *)self->st->UUID) ||
         (f->kind == FK_JSON && (PyDict_Check(value) || PyList_Check(value))))) {
        valbuf b = {0};
        corm_value v;
        if (field_value(self, idx, value, &v, &b) < 0) {
            valbuf_free(&b);
            return NULL;
        }
        corm_error err = CORM_ERROR_INIT;
        int rc = corm_model_set_default(self->m, idx, &v, &err);
        valbuf_free(&b);
        if (rc < 0)
            return raise_err(self->st, &err);
    }
    Py_XSETREF(f->dflt, value ? Py_NewRef(value) : NULL);
    Py_XSETREF(f->factory, none_to_null(factory));
    Py_RETURN_NONE;
}

/* set_server_default(index, sql): a server-side default expression. */
static PyObject *table_set_server_default(TableObject *self, PyObject *args)
{
    int idx;
    const char *sql;
    if (!PyArg_ParseTuple(args, "is:set_server_default", &idx, &sql))
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    if (corm_model_set_default_sql(self->m, idx, sql, &err) < 0)
        return raise_err(self->st, &err);
    Py_RETURN_NONE;
}

static int int_list(PyObject *o, int **out, int *n)
{
    PyObject *seq = PySequence_Fast(o, "expected a sequence of column indexes");
    if (!seq)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    int *a = PyMem_Calloc(len ? (size_t)len : 1, sizeof *a);
    if (!a) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(a);
            Py_DECREF(seq);
            return -1;
        }
        a[i] = (int)v;
    }
    Py_DECREF(seq);
    *out = a;
    *n = (int)len;
    return 0;
}

/* add_foreign_key(cols, target, on_delete=0, on_update=0) */
static PyObject *table_add_foreign_key(TableObject *self, PyObject *args)
{
    PyObject *cols;
    TableObject *target;
    int on_delete = 0, on_update = 0;
    if (!PyArg_ParseTuple(args, "OO!|ii:add_foreign_key", &cols, self->st->TableType, &target,
                          &on_delete, &on_update))
        return NULL;
    int *cs, n;
    if (int_list(cols, &cs, &n) < 0)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_model_add_foreign_key(self->m, NULL, n, cs, target->m, NULL, on_delete,
                                        on_update, &err);
    PyMem_Free(cs);
    if (rc < 0)
        return raise_err(self->st, &err);
    Py_RETURN_NONE;
}

/* add_index(cols, unique=False) / add_unique(cols) */
static PyObject *table_add_index(TableObject *self, PyObject *args)
{
    PyObject *cols;
    int unique = 0;
    if (!PyArg_ParseTuple(args, "O|p:add_index", &cols, &unique))
        return NULL;
    int *cs, n;
    if (int_list(cols, &cs, &n) < 0)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_model_add_index(self->m, NULL, n, cs, unique ? CORM_INDEX_UNIQUE : 0, NULL,
                                  NULL, &err);
    PyMem_Free(cs);
    if (rc < 0)
        return raise_err(self->st, &err);
    Py_RETURN_NONE;
}

static PyObject *table_add_unique(TableObject *self, PyObject *cols)
{
    int *cs, n;
    if (int_list(cols, &cs, &n) < 0)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_model_add_unique(self->m, NULL, n, cs, &err);
    PyMem_Free(cs);
    if (rc < 0)
        return raise_err(self->st, &err);
    Py_RETURN_NONE;
}

/* set_relations(n): instances carry n relation slots after their fields.
 * Only before bind(), so every instance of the class has the same layout. */
static PyObject *table_set_relations(TableObject *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (self->cls) {
        PyErr_SetString(PyExc_RuntimeError, "set_relations() after bind()");
        return NULL;
    }
    if (n < 0 || n > 0xffff) {
        PyErr_SetString(PyExc_ValueError, "set_relations(n): n out of range");
        return NULL;
    }
    self->nrel = (int)n;
    Py_RETURN_NONE;
}

/* objs[i] as an instance of t (objs is a list), or NULL with a TypeError. */
static ModelObject *instance_at(TableObject *t, PyObject *objs, Py_ssize_t i)
{
    PyObject *o = PyList_GET_ITEM(objs, i);
    if (!PyObject_TypeCheck(o, t->st->ModelBaseType) || ((ModelObject *)o)->table != t) {
        PyErr_Format(PyExc_TypeError, "a %.100s among the instances of another model",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    return (ModelObject *)o;
}

/* keys(objs, field) -> the distinct values of field in objs (instances of
 * this table), in order of first appearance; None and unloaded left out.
 * What prefetch() binds as `= ANY($1)`. */
static PyObject *table_keys(TableObject *self, PyObject *args)
{
    PyObject *objs;
    int field;
    if (!PyArg_ParseTuple(args, "O!i:keys", &PyList_Type, &objs, &field))
        return NULL;
    if (field < 0 || field >= self->nfields)
        return PyErr_Format(PyExc_IndexError, "no such field");
    PyObject *seen = PySet_New(NULL), *out = PyList_New(0);
    if (!seen || !out)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objs); i++) {
        ModelObject *o = instance_at(self, objs, i);
        if (!o)
            goto fail;
        PyObject *k = o->items[field];
        if (!k || k == Py_None)
            continue;
        int had = PySet_Contains(seen, k);
        if (had < 0 || (!had && (PySet_Add(seen, k) < 0 || PyList_Append(out, k) < 0)))
            goto fail;
    }
    Py_DECREF(seen);
    return out;
fail:
    Py_XDECREF(seen);
    Py_XDECREF(out);
    return NULL;
}

/* attach(slot, objs, key, rtable, rows, rkey, many): fills relation slot
 * `slot` of objs (instances of this table) with the rows (instances of
 * rtable) whose field rkey equals the obj's field key. many: a new list of
 * them in the rows' order, [] when none; else the row, or None. The one
 * loop of prefetch() that touches every related row, hence C. */
static PyObject *table_attach(TableObject *self, PyObject *args)
{
    Py_ssize_t slot;
    PyObject *objs, *rows;
    TableObject *rt;
    int key, rkey, many;
    if (!PyArg_ParseTuple(args, "nO!iO!O!ip:attach", &slot, &PyList_Type, &objs, &key,
                          self->st->TableType, &rt, &PyList_Type, &rows, &rkey, &many))
        return NULL;
    if (slot < 0 || slot >= self->nrel || key < 0 || key >= self->nfields || rkey < 0 ||
        rkey >= rt->nfields)
        return PyErr_Format(PyExc_IndexError, "attach(): no such slot or field");
    Py_ssize_t nobjs = PyList_GET_SIZE(objs), nrows = PyList_GET_SIZE(rows);
    PyObject *map = PyDict_New();
    if (!map)
        return NULL;
    for (Py_ssize_t i = 0; many && i < nobjs; i++) {
        ModelObject *o = instance_at(self, objs, i);
        if (!o)
            goto fail;
        PyObject *k = o->items[key];
        if (!k || k == Py_None)
            continue;
        PyObject *list = PyList_New(0);
        if (!list || PyDict_SetDefault(map, k, list) == NULL) {
            Py_XDECREF(list);
            goto fail;
        }
        Py_DECREF(list);
    }
    for (Py_ssize_t i = 0; i < nrows; i++) {
        ModelObject *r = instance_at(rt, rows, i);
        if (!r)
            goto fail;
        PyObject *k = r->items[rkey];
        if (!k || k == Py_None)
            continue;
        if (!many) {
            if (PyDict_SetItem(map, k, (PyObject *)r) < 0)
                goto fail;
            continue;
        }
        PyObject *list = PyDict_GetItemWithError(map, k);
        if (list ? PyList_Append(list, (PyObject *)r) < 0 : PyErr_Occurred() != NULL)
            goto fail;
    }
    for (Py_ssize_t i = 0; i < nobjs; i++) {
        ModelObject *o = instance_at(self, objs, i);
        if (!o)
            goto fail;
        PyObject *k = o->items[key], *v = NULL;
        if (k && k != Py_None && !(v = PyDict_GetItemWithError(map, k)) && PyErr_Occurred())
            goto fail;
        if (v)
            Py_INCREF(v);
        else if (!(v = many ? PyList_New(0) : Py_NewRef(Py_None)))
            goto fail;
        Py_XSETREF(RELATED(o)[slot], v);
    }
    Py_DECREF(map);
    Py_RETURN_NONE;
fail:
    Py_DECREF(map);
    return NULL;
}

/* bind(cls): the model class whose instances this table's queries make. */
static PyObject *table_bind(TableObject *self, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, self->st->ModelBaseType)) {
        PyErr_SetString(PyExc_TypeError, "bind() needs a subclass of ModelBase");
        return NULL;
    }
    Py_XSETREF(self->cls, Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyObject *table_column(TableObject *self, PyObject *arg)
{
    long idx = PyLong_AsLong(arg);
    if (idx == -1 && PyErr_Occurred())
        return NULL;
    if (idx < 0 || idx >= self->nfields) {
        PyErr_SetString(PyExc_IndexError, "no such field");
        return NULL;
    }
    ExprObject *c = PyObject_GC_New(ExprObject, self->st->ColumnType);
    if (!c)
        return NULL;
    c->reg = (RegistryObject *)Py_NewRef(self->reg);
    c->e = NULL;
    c->alias = NULL;
    c->order = 0;
    c->table = (TableObject *)Py_NewRef(self);
    c->col = (int)idx;
    PyObject_GC_Track(c);
    return (PyObject *)c;
}

/* info(index) -> (name, canonical type, flags) */
static PyObject *table_info(TableObject *self, PyObject *arg)
{
    long idx = PyLong_AsLong(arg);
    if (idx == -1 && PyErr_Occurred())
        return NULL;
    if (idx < 0 || idx >= self->nfields) {
        PyErr_SetString(PyExc_IndexError, "no such field");
        return NULL;
    }
    return Py_BuildValue("(Osk)", self->fields[idx].name, corm_model_column_type(self->m, (int)idx),
                         (unsigned long)corm_model_column_flags(self->m, (int)idx));
}

/* copyable(index) -> whether binary COPY can carry the field (its type
 * is built in, so its exact wire type is known) */
static PyObject *table_copyable(TableObject *self, PyObject *arg)
{
    long idx = PyLong_AsLong(arg);
    if (idx == -1 && PyErr_Occurred())
        return NULL;
    if (idx < 0 || idx >= self->nfields) {
        PyErr_SetString(PyExc_IndexError, "no such field");
        return NULL;
    }
    return PyBool_FromLong(corm_model_column_oid(self->m, (int)idx) != 0);
}

static PyObject *table_get_name(TableObject *self, void *c)
{
    return PyUnicode_FromString(corm_model_table(self->m));
}

static PyObject *table_get_names(TableObject *self, void *c)
{
    PyObject *t = PyTuple_New(self->nfields);
    for (int i = 0; t && i < self->nfields; i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(self->fields[i].name));
    return t;
}

static PyObject *table_get_index(TableObject *self, void *c)
{
    return Py_NewRef(self->index);
}

static PyObject *table_get_pk(TableObject *self, void *c)
{
    const int *cols = NULL;
    int n = corm_model_primary_key(self->m, &cols);
    PyObject *t = PyTuple_New(n > 0 ? n : 0);
    for (int i = 0; t && i < n; i++)
        PyTuple_SET_ITEM(t, i, PyLong_FromLong(cols[i]));
    return t;
}

static PyObject *table_get_registry(TableObject *self, void *c)
{
    return Py_NewRef((PyObject *)self->reg);
}

static PyObject *table_get_cls(TableObject *self, void *c)
{
    return Py_NewRef(self->cls ? self->cls : Py_None);
}

/* The rows of one COPY, put a part at a time (pycorm_submit_copy calls
 * copy_feed again from the loop as the server takes data). */
typedef struct copy_fill {
    TableObject *t;
    int *cols;
    int n;
    PyObject *rows;   /* a fast sequence: instances or value sequences */
    Py_ssize_t next;  /* the first row not put yet */
    corm_value *vs;
} copy_fill;

static void copy_fill_free(void *ud)
{
    copy_fill *f = ud;
    Py_XDECREF(f->t);
    Py_XDECREF(f->rows);
    PyMem_Free(f->cols);
    PyMem_Free(f->vs);
    PyMem_Free(f);
}

/* Row r's values into f->vs (borrowed from the row's objects, or held by
 * b); 0, or -1 with an exception. */
static int copy_row_values(copy_fill *f, Py_ssize_t r, valbuf *b, PyObject **seq)
{
    PyObject *item = PySequence_Fast_GET_ITEM(f->rows, r);
    *seq = NULL;
    if (PyObject_TypeCheck(item, f->t->st->ModelBaseType)) {
        /* An instance: its values straight from the slots, no list of
         * values made per row in Python. */
        ModelObject *o = (ModelObject *)item;
        for (int i = 0; i < f->n; i++) {
            PyObject *v = (uint32_t)f->cols[i] < o->nfields ? o->items[f->cols[i]] : NULL;
            if (!v) {
                PyErr_Format(PyExc_ValueError, "row %zd: field %U is not set", r,
                             f->t->fields[f->cols[i]].name);
                return -1;
            }
            if (field_value(f->t, f->cols[i], v, &f->vs[i], b) < 0)
                return -1;
        }
        return 0;
    }
    PyObject *row = PySequence_Fast(item, "each row must be a sequence");
    if (!row)
        return -1;
    *seq = row;
    if (PySequence_Fast_GET_SIZE(row) != f->n) {
        PyErr_Format(PyExc_ValueError, "row %zd has %zd values, expected %d", r,
                     PySequence_Fast_GET_SIZE(row), f->n);
        return -1;
    }
    for (int i = 0; i < f->n; i++)
        if (field_value(f->t, f->cols[i], PySequence_Fast_GET_ITEM(row, i), &f->vs[i], b) < 0)
            return -1;
    return 0;
}

static int copy_feed(void *ud, corm_copy *cp)
{
    copy_fill *f = ud;
    Py_ssize_t nrows = PySequence_Fast_GET_SIZE(f->rows);
    while (f->next < nrows) {
        if (!corm_copy_ready(cp))
            return PYCORM_FEED_MORE;
        valbuf b = {0};
        PyObject *seq;
        int rc = copy_row_values(f, f->next, &b, &seq);
        corm_error err = CORM_ERROR_INIT;
        if (rc == 0 && (rc = corm_copy_put(cp, f->vs, &err)) < 0) {
            if (rc == CORM_ECANCELLED) {
                /* The server refused the copy; its error reaches done. */
                corm_error_clear(&err);
                valbuf_free(&b);
                Py_XDECREF(seq);
                return PYCORM_FEED_OVER;
            }
            raise_err(f->t->st, &err);
        }
        valbuf_free(&b);
        Py_XDECREF(seq);
        if (rc < 0)
            return -1;
        f->next++;
    }
    return PYCORM_FEED_DONE;
}

/* same_loaded(objs) -> the field indexes every object has set when they
 * all set the same ones, else None; TypeError for an object that is not
 * exactly this table's class. One pass in C for bulk inserts. */
static PyObject *model_loaded(ModelObject *self, PyObject *unused);

static PyObject *table_same_loaded(TableObject *self, PyObject *objs)
{
    if (!self->cls)
        return PyErr_Format(PyExc_TypeError, "this table has no model class");
    PyObject *seq = PySequence_Fast(objs, "objs must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = NULL;
    ModelObject *first = NULL;
    bool same = true;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k);
        if ((PyObject *)Py_TYPE(item) != self->cls) {
            PyErr_Format(PyExc_TypeError, "bulk_insert() of %s got a %s",
                         ((PyTypeObject *)self->cls)->tp_name, Py_TYPE(item)->tp_name);
            goto done;
        }
        ModelObject *o = (ModelObject *)item;
        if (!first) {
            first = o;
            continue;
        }
        for (uint32_t i = 0; same && i < o->nfields; i++)
            if ((o->items[i] == NULL) != (first->items[i] == NULL))
                same = false;
    }
    result = same && first ? model_loaded(first, NULL) : Py_NewRef(Py_None);
done:
    Py_DECREF(seq);
    return result;
}

/* copy_in(conn, fields, rows) -> future of the row count: rows (sequences
 * of values for fields, in order, or instances of this table's model)
 * through binary COPY on a lent Conn. */
static PyObject *table_copy_in(TableObject *self, PyObject *args)
{
    PyObject *conn, *fo, *ro;
    if (!PyArg_ParseTuple(args, "OOO:copy_in", &conn, &fo, &ro))
        return NULL;
    copy_fill *f = PyMem_Calloc(1, sizeof *f);
    if (!f)
        return PyErr_NoMemory();
    f->t = (TableObject *)Py_NewRef(self);
    const char **names = NULL;
    uint32_t *oids = NULL;
    PyObject *result = NULL;
    if (int_list(fo, &f->cols, &f->n) < 0)
        goto fail;
    if (f->n < 1) {
        PyErr_SetString(PyExc_ValueError, "copy_in needs at least one field");
        goto fail;
    }
    f->rows = PySequence_Fast(ro, "rows must be a sequence");
    names = PyMem_Calloc((size_t)f->n, sizeof *names);
    oids = PyMem_Calloc((size_t)f->n, sizeof *oids);
    f->vs = PyMem_Calloc((size_t)f->n, sizeof *f->vs);
    if (!f->rows || !names || !oids || !f->vs) {
        if (f->rows)
            PyErr_NoMemory();
        goto fail;
    }
    for (int i = 0; i < f->n; i++) {
        if (f->cols[i] < 0 || f->cols[i] >= self->nfields) {
            PyErr_SetString(PyExc_IndexError, "no such field");
            goto fail;
        }
        names[i] = corm_model_column_name(self->m, f->cols[i]);
        oids[i] = corm_model_column_oid(self->m, f->cols[i]);
        if (oids[i] == 0) {
            /* Binary COPY sends each value in its column's exact type;
             * types known only by name on the server (enums) need insert. */
            PyErr_Format(PyExc_TypeError, "field %s has no built-in type for COPY", names[i]);
            goto fail;
        }
    }
    /* f belongs to the copy from here on, failure included. */
    result = pycorm_submit_copy(conn, corm_model_schema(self->m), corm_model_table(self->m),
                                names, oids, f->n, copy_feed, f, copy_fill_free);
    PyMem_Free(names);
    PyMem_Free(oids);
    return result;
fail:
    copy_fill_free(f);
    PyMem_Free(names);
    PyMem_Free(oids);
    return NULL;
}

static PyMethodDef table_methods[] = {
    {"add_column", (PyCFunction)(void (*)(void))table_add_column, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"set_default", (PyCFunction)(void (*)(void))table_set_default, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"set_server_default", (PyCFunction)table_set_server_default, METH_VARARGS, NULL},
    {"add_foreign_key", (PyCFunction)table_add_foreign_key, METH_VARARGS, NULL},
    {"add_index", (PyCFunction)table_add_index, METH_VARARGS, NULL},
    {"add_unique", (PyCFunction)table_add_unique, METH_O, NULL},
    {"copyable", (PyCFunction)table_copyable, METH_O, NULL},
    {"copy_in", (PyCFunction)table_copy_in, METH_VARARGS,
     "copy_in(conn, fields, rows) -> future of the row count (binary COPY)"},
    {"same_loaded", (PyCFunction)table_same_loaded, METH_O,
     "The fields every object sets, when all set the same ones; else None."},
    {"bind", (PyCFunction)table_bind, METH_O, NULL},
    {"set_relations", (PyCFunction)table_set_relations, METH_O,
     "set_relations(n): n relation slots per instance; before bind()"},
    {"keys", (PyCFunction)table_keys, METH_VARARGS,
     "keys(objs, field) -> distinct non-None values of field"},
    {"attach", (PyCFunction)table_attach, METH_VARARGS,
     "attach(slot, objs, key, rtable, rows, rkey, many): fill a relation slot"},
    {"column", (PyCFunction)table_column, METH_O, "column(index) -> a new Column"},
    {"info", (PyCFunction)table_info, METH_O, "info(index) -> (name, type, flags)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef table_getset[] = {
    {"name", (getter)table_get_name, NULL, NULL, NULL},
    {"names", (getter)table_get_names, NULL, NULL, NULL},
    {"index", (getter)table_get_index, NULL, NULL, NULL},
    {"pk", (getter)table_get_pk, NULL, NULL, NULL},
    {"registry", (getter)table_get_registry, NULL, NULL, NULL},
    {"cls", (getter)table_get_cls, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot table_slots[] = {
    {Py_tp_dealloc, table_dealloc},
    {Py_tp_traverse, table_traverse},
    {Py_tp_clear, table_clear},
    {Py_tp_methods, table_methods},
    {Py_tp_getset, table_getset},
    {Py_tp_doc, "A model's table (a corm_model) and its fields' Python-side rules."},
    {0, NULL},
};

static PyType_Spec table_spec = {
    .name = "cormorant._core.Table",
    .basicsize = sizeof(TableObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = table_slots,
};

/* ---- values for fields ------------------------------------------------------ */

/* Checks v for field f before anything is sent: TypeError for a wrong type,
 * DataError for None in a NOT NULL field. */
static int check_value(TableObject *t, int idx, PyObject *v)
{
    field *f = &t->fields[idx];
    if (v == Py_None) {
        if (f->nullable)
            return 0;
        pycorm_raise_code(t->st, CORM_EDATA, "%s.%U: None for a NOT NULL column",
                          corm_model_table(t->m), f->name);
        return -1;
    }
    if (!f->check)
        return 0;
    if (PyBool_Check(v) && !f->bool_ok)
        goto bad;
    int r = PyObject_IsInstance(v, f->check);
    if (r < 0)
        return -1;
    if (!r)
        goto bad;
    if (f->kind == FK_ARRAY && f->elem_check) {
        /* One level of items is checked (nested lists: their leaves are
         * checked by libcore's encoder). */
        PyObject *seq = PySequence_Fast(v, "an array field needs a list");
        if (!seq)
            return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
            if (it == Py_None || PyList_Check(it))
                continue;
            int ok = PyObject_IsInstance(it, f->elem_check);
            if (ok > 0 && PyBool_Check(it) && f->elem_check != (PyObject *)&PyBool_Type)
                ok = 0;
            if (ok <= 0) {
                Py_DECREF(seq);
                if (ok == 0)
                    PyErr_Format(PyExc_TypeError, "%s.%U: item %zd has the wrong type (%.100s)",
                                 corm_model_table(t->m), f->name, i, Py_TYPE(it)->tp_name);
                return -1;
            }
        }
        Py_DECREF(seq);
    }
    return 0;
bad:
    PyErr_Format(PyExc_TypeError, "%s.%U: expected %R, got %.100s", corm_model_table(t->m),
                 f->name, f->check, Py_TYPE(v)->tp_name);
    return -1;
}



static void valbuf_free(valbuf *b)
{
    for (int i = 0; i < b->nholds; i++)
        pycorm_hold_release(&b->holds[i]);
    for (int i = 0; i < b->nblocks; i++)
        PyMem_Free(b->blocks[i]);
    PyMem_Free(b->holds);
    PyMem_Free(b->blocks);
    memset(b, 0, sizeof *b);
}

static pycorm_hold *valbuf_hold(valbuf *b)
{
    if (b->nholds == b->capholds) {
        int cap = b->capholds ? b->capholds * 2 : 8;
        pycorm_hold *h = PyMem_Realloc(b->holds, (size_t)cap * sizeof *h);
        if (!h) {
            PyErr_NoMemory();
            return NULL;
        }
        b->holds = h;
        b->capholds = cap;
    }
    pycorm_hold *h = &b->holds[b->nholds++];
    memset(h, 0, sizeof *h);
    return h;
}

static void *valbuf_alloc(valbuf *b, size_t size)
{
    if (b->nblocks == b->capblocks) {
        int cap = b->capblocks ? b->capblocks * 2 : 4;
        void **bl = PyMem_Realloc(b->blocks, (size_t)cap * sizeof *bl);
        if (!bl) {
            PyErr_NoMemory();
            return NULL;
        }
        b->blocks = bl;
        b->capblocks = cap;
    }
    void *p = PyMem_Calloc(1, size ? size : 1);
    if (!p) {
        PyErr_NoMemory();
        return NULL;
    }
    b->blocks[b->nblocks++] = p;
    return p;
}

static int plain_value(pycorm_state *st, PyObject *o, int kind, corm_value *v, valbuf *b);

/* An enum member as its label (str value); a str is taken as a label. */
static int enum_value(pycorm_state *st, PyObject *o, corm_value *v, valbuf *b)
{
    PyObject *label = PyUnicode_Check(o) ? Py_NewRef(o) : PyObject_GetAttrString(o, "value");
    if (!label)
        return -1;
    if (!PyUnicode_Check(label)) {
        Py_DECREF(label);
        PyErr_SetString(PyExc_TypeError, "an enum field's members need str values");
        return -1;
    }
    pycorm_hold *h = valbuf_hold(b);
    if (!h) {
        Py_DECREF(label);
        return -1;
    }
    int rc = pycorm_value_from_py(st, label, 0, v, h);
    Py_DECREF(label);
    v->oid = 0;
    return rc;
}

/* Shape of nested lists: dims; returns ndim or -1. */
static int list_shape(PyObject *o, int32_t *dims, int ndim)
{
    if (!PyList_Check(o))
        return ndim;
    if (ndim >= CORM_ARRAY_MAXDIM) {
        PyErr_SetString(PyExc_ValueError, "array has too many dimensions");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(o);
    dims[ndim] = (int32_t)n;
    if (n == 0)
        return ndim + 1;
    return list_shape(PyList_GET_ITEM(o, 0), dims, ndim + 1);
}

static int flatten(pycorm_state *st, PyObject *o, int depth, int ndim, const int32_t *dims,
                   int elem_kind, corm_value *items, size_t *pos, valbuf *b)
{
    if (depth == ndim) {
        if (elem_kind == FK_ENUM && o != Py_None)
            return enum_value(st, o, &items[(*pos)++], b);
        return plain_value(st, o, elem_kind, &items[(*pos)++], b);
    }
    if (!PyList_Check(o) || PyList_GET_SIZE(o) != dims[depth]) {
        pycorm_raise_code(st, CORM_EDATA, "a multi-dimensional array must be rectangular");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(o); i++)
        if (flatten(st, PyList_GET_ITEM(o, i), depth + 1, ndim, dims, elem_kind, items, pos, b) <
            0)
            return -1;
    return 0;
}

static int array_value(pycorm_state *st, PyObject *o, int elem_kind, corm_value *v, valbuf *b)
{
    int32_t shape[CORM_ARRAY_MAXDIM] = {0};
    int ndim = list_shape(o, shape, 0);
    if (ndim < 0)
        return -1;
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    if (ndim == 1 && shape[0] == 0)
        ndim = 0;
    corm_value *items = valbuf_alloc(b, (n ? n : 1) * sizeof *items);
    int32_t *dims = valbuf_alloc(b, sizeof(int32_t) * CORM_ARRAY_MAXDIM);
    if (!items || !dims)
        return -1;
    memcpy(dims, shape, sizeof shape);
    size_t pos = 0;
    if (ndim > 0 && flatten(st, o, 0, ndim, dims, elem_kind, items, &pos, b) < 0)
        return -1;
    memset(v, 0, sizeof *v);
    v->kind = CORM_ARRAY_ITEMS;
    v->v.items.items = items;
    v->v.items.dims = dims;
    v->v.items.lbounds = NULL;
    v->v.items.ndim = ndim;
    v->v.items.elem_oid = 0;
    return 0;
}

/* o as a value: JSON fields take any JSON value; others as convert.c does. */
static int plain_value(pycorm_state *st, PyObject *o, int kind, corm_value *v, valbuf *b)
{
    if (kind == FK_JSON && o != Py_None && !PyDict_Check(o) && !PyList_Check(o)) {
        PyObject *s = pycorm_json_dumps(st, o);
        if (!s)
            return -1;
        pycorm_hold *h = valbuf_hold(b);
        if (!h) {
            Py_DECREF(s);
            return -1;
        }
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(s, &n);
        if (!p) {
            Py_DECREF(s);
            return -1;
        }
        h->tmp = s;
        memset(v, 0, sizeof *v);
        v->kind = CORM_JSON;
        v->v.str.ptr = p;
        v->v.str.len = (size_t)n;
        return 0;
    }
    pycorm_hold *h = valbuf_hold(b);
    if (!h || pycorm_value_from_py(st, o, 0, v, h) < 0)
        return -1;
    v->oid = 0;
    return 0;
}

/* Field idx's value o as a corm_value typed by the column (libcore encodes
 * it for the column's type). Checked first. */
static int field_value(TableObject *t, int idx, PyObject *o, corm_value *v, valbuf *b)
{
    if (check_value(t, idx, o) < 0)
        return -1;
    field *f = &t->fields[idx];
    if (o == Py_None) {
        memset(v, 0, sizeof *v);
        v->kind = CORM_NULL;
        return 0;
    }
    switch (f->kind) {
    case FK_ENUM:
        return enum_value(t->st, o, v, b);
    case FK_ARRAY:
        return array_value(t->st, o, f->convert ? FK_ENUM : FK_PLAIN, v, b);
    default:
        return plain_value(t->st, o, f->kind, v, b);
    }
}

/* ---- ModelBase -------------------------------------------------------------- */

static TableObject *table_of_class(PyTypeObject *cls)
{
    PyObject *t = PyObject_GetAttrString((PyObject *)cls, "__table__");
    if (!t)
        return NULL;
    if (Py_TYPE(t)->tp_dealloc != (destructor)table_dealloc ||
        ((TableObject *)t)->cls != (PyObject *)cls) {
        Py_DECREF(t);
        PyErr_Format(PyExc_TypeError, "%.100s is not a bound model class", cls->tp_name);
        return NULL;
    }
    return (TableObject *)t;
}

static ModelObject *model_alloc(PyTypeObject *tp, TableObject *t)
{
    size_t n = (size_t)t->nfields + NWORDS(t->nfields) + (size_t)t->nrel;
    ModelObject *o = (ModelObject *)tp->tp_alloc(tp, (Py_ssize_t)n);
    if (!o)
        return NULL;
    o->table = (TableObject *)Py_NewRef(t);
    o->nfields = (uint32_t)t->nfields;
    o->persisted = 0;
    return o;
}

static PyObject *model_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    TableObject *t = table_of_class(type);
    if (!t)
        return NULL;
    ModelObject *o = model_alloc(type, t);
    Py_DECREF(t);
    return (PyObject *)o;
}

static inline void mark(ModelObject *o, int idx)
{
    CHANGED(o)[idx / WORD_BITS] |= (uintptr_t)1 << (idx % WORD_BITS);
}

/* __init__(**fields): given fields, then Python defaults; a required field
 * left out is a TypeError. Every field set is marked changed. */
static int model_init(ModelObject *self, PyObject *args, PyObject *kw)
{
    TableObject *t = self->table;
    if (PyTuple_GET_SIZE(args)) {
        PyErr_Format(PyExc_TypeError, "%.100s() takes keyword arguments only",
                     Py_TYPE(self)->tp_name);
        return -1;
    }
    if (kw) {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kw, &pos, &k, &v)) {
            PyObject *i = PyDict_GetItemWithError(t->index, k);
            if (!i) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_TypeError, "%.100s() got an unexpected field %R",
                                 Py_TYPE(self)->tp_name, k);
                return -1;
            }
            int idx = (int)PyLong_AsLong(i);
            if (check_value(t, idx, v) < 0)
                return -1;
            Py_XSETREF(self->items[idx], Py_NewRef(v));
            mark(self, idx);
        }
    }
    for (int idx = 0; idx < t->nfields; idx++) {
        if (self->items[idx])
            continue;
        field *f = &t->fields[idx];
        PyObject *v = NULL;
        if (f->factory) {
            if (!(v = PyObject_CallNoArgs(f->factory)))
                return -1;
        } else if (f->dflt) {
            v = Py_NewRef(f->dflt);
        } else if (f->required) {
            PyErr_Format(PyExc_TypeError, "%.100s() missing required field %R",
                         Py_TYPE(self)->tp_name, f->name);
            return -1;
        } else {
            continue; /* the server fills it */
        }
        self->items[idx] = v;
        mark(self, idx);
    }
    return 0;
}

static int model_traverse(ModelObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->table);
    for (uint32_t i = 0; i < self->nfields; i++)
        Py_VISIT(self->items[i]);
    for (size_t i = 0; i < NRELATED(self); i++)
        Py_VISIT(RELATED(self)[i]);
    return 0;
}

static int model_clear(ModelObject *self)
{
    for (uint32_t i = 0; i < self->nfields; i++)
        Py_CLEAR(self->items[i]);
    for (size_t i = 0; i < NRELATED(self); i++)
        Py_CLEAR(RELATED(self)[i]);
    return 0;
}

static void model_dealloc(ModelObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, model_dealloc)
    model_clear(self);
    Py_CLEAR(self->table);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static PyObject *model_repr(ModelObject *self)
{
    PyObject *parts = PyList_New(0);
    if (!parts)
        return NULL;
    for (uint32_t i = 0; i < self->nfields && self->table; i++) {
        if (!self->items[i])
            continue;
        PyObject *s = PyUnicode_FromFormat("%U=%R", self->table->fields[i].name, self->items[i]);
        if (!s || PyList_Append(parts, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(parts);
            return NULL;
        }
        Py_DECREF(s);
    }
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *body = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(parts);
    if (!body)
        return NULL;
    /* A heap type's tp_name is its __name__. */
    PyObject *r = PyUnicode_FromFormat("%s(%U)", Py_TYPE(self)->tp_name, body);
    Py_DECREF(body);
    return r;
}

/* Equal when of the same class with the same loaded values. */
static PyObject *model_richcompare(ModelObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(b) != Py_TYPE(a))
        Py_RETURN_NOTIMPLEMENTED;
    ModelObject *o = (ModelObject *)b;
    bool eq = true;
    for (uint32_t i = 0; eq && i < a->nfields; i++) {
        PyObject *x = a->items[i], *y = o->items[i];
        if (!x || !y) {
            eq = x == y;
            continue;
        }
        int r = PyObject_RichCompareBool(x, y, Py_EQ);
        if (r < 0)
            return NULL;
        eq = r;
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

/* _changed() -> tuple of the changed fields' indexes */
static PyObject *model_changed(ModelObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (uint32_t i = 0; i < self->nfields; i++)
        if (CHANGED(self)[i / WORD_BITS] & ((uintptr_t)1 << (i % WORD_BITS))) {
            PyObject *n = PyLong_FromLong((long)i);
            if (!n || PyList_Append(list, n) < 0) {
                Py_XDECREF(n);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(n);
        }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

/* _loaded() -> tuple of the indexes of fields that hold a value */
static PyObject *model_loaded(ModelObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    for (uint32_t i = 0; list && i < self->nfields; i++)
        if (self->items[i]) {
            PyObject *n = PyLong_FromLong((long)i);
            if (!n || PyList_Append(list, n) < 0) {
                Py_XDECREF(n);
                Py_CLEAR(list);
            }
            Py_XDECREF(n);
        }
    if (!list)
        return NULL;
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

static PyObject *model_saved(ModelObject *self, PyObject *unused)
{
    memset(CHANGED(self), 0, NWORDS(self->nfields) * sizeof(uintptr_t));
    self->persisted = 1;
    Py_RETURN_NONE;
}

/* _get(index, default) -> the value, or default when not loaded */
static PyObject *model_get(ModelObject *self, PyObject *const *args, Py_ssize_t n)
{
    if (n != 2)
        return PyErr_Format(PyExc_TypeError, "_get(index, default)");
    long i = PyLong_AsLong(args[0]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || (uint32_t)i >= self->nfields)
        return PyErr_Format(PyExc_IndexError, "no such field");
    return Py_NewRef(self->items[i] ? self->items[i] : args[1]);
}

static int related_index(ModelObject *self, PyObject *arg, size_t *out)
{
    Py_ssize_t k = PyLong_AsSsize_t(arg);
    if (k == -1 && PyErr_Occurred())
        return -1;
    if (k < 0 || (size_t)k >= NRELATED(self)) {
        PyErr_SetString(PyExc_IndexError, "no such relation slot");
        return -1;
    }
    *out = (size_t)k;
    return 0;
}

/* _related(slot, default) -> what a prefetch attached, or default */
static PyObject *model_related(ModelObject *self, PyObject *const *args, Py_ssize_t n)
{
    size_t k;
    if (n != 2)
        return PyErr_Format(PyExc_TypeError, "_related(slot, default)");
    if (related_index(self, args[0], &k) < 0)
        return NULL;
    PyObject *v = RELATED(self)[k];
    return Py_NewRef(v ? v : args[1]);
}

/* _set_related(slot, value). None is a value like any other (a forward
 * relation whose key is NULL), so a slot once set stays set. */
static PyObject *model_set_related(ModelObject *self, PyObject *const *args, Py_ssize_t n)
{
    size_t k;
    if (n != 2)
        return PyErr_Format(PyExc_TypeError, "_set_related(slot, value)");
    if (related_index(self, args[0], &k) < 0)
        return NULL;
    Py_XSETREF(RELATED(self)[k], Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyObject *model_get_persisted(ModelObject *self, void *c)
{
    return PyBool_FromLong(self->persisted);
}

static PyMethodDef model_methods[] = {
    {"_changed", (PyCFunction)model_changed, METH_NOARGS, NULL},
    {"_loaded", (PyCFunction)model_loaded, METH_NOARGS, NULL},
    {"_saved", (PyCFunction)model_saved, METH_NOARGS, NULL},
    {"_get", (PyCFunction)(void (*)(void))model_get, METH_FASTCALL, NULL},
    {"_related", (PyCFunction)(void (*)(void))model_related, METH_FASTCALL, NULL},
    {"_set_related", (PyCFunction)(void (*)(void))model_set_related, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef model_getset[] = {
    {"_persisted", (getter)model_get_persisted, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot model_slots[] = {
    {Py_tp_new, model_new},
    {Py_tp_init, model_init},
    {Py_tp_dealloc, model_dealloc},
    {Py_tp_traverse, model_traverse},
    {Py_tp_clear, model_clear},
    {Py_tp_repr, model_repr},
    {Py_tp_richcompare, model_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_methods, model_methods},
    {Py_tp_getset, model_getset},
    {Py_tp_doc, "Base of model classes: field values in an inline slot array."},
    {0, NULL},
};

static PyType_Spec model_spec = {
    .name = "cormorant._core.ModelBase",
    .basicsize = offsetof(ModelObject, items),
    .itemsize = sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = model_slots,
};

/* ---- Expr ---------------------------------------------------------------------- */

static ExprObject *expr_wrap(pycorm_state *st, RegistryObject *reg, corm_expr *e)
{
    ExprObject *x = PyObject_GC_New(ExprObject, st->ExprType);
    if (!x) {
        corm_expr_free(e);
        return NULL;
    }
    x->reg = (RegistryObject *)Py_NewRef(reg);
    x->e = e;
    x->alias = NULL;
    x->order = 0;
    x->table = NULL;
    x->col = -1;
    PyObject_GC_Track(x);
    return x;
}

static corm_expr *expr_get(ExprObject *self)
{
    if (self->e)
        return self->e;
    if (!self->table) {
        PyErr_SetString(PyExc_RuntimeError, "empty expression");
        return NULL;
    }
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_column(&self->e, self->table->m, self->col, NULL, &err) < 0) {
        raise_err(self->reg->st, &err);
        return NULL;
    }
    return self->e;
}

static int expr_traverse(ExprObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->reg);
    Py_VISIT(self->alias);
    Py_VISIT(self->table);
    return 0;
}

static int expr_clear(ExprObject *self)
{
    Py_CLEAR(self->alias);
    Py_CLEAR(self->table);
    return 0;
}

static void expr_dealloc(ExprObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    corm_expr_free(self->e);
    expr_clear(self);
    Py_CLEAR(self->reg);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static bool is_expr(pycorm_state *st, PyObject *o)
{
    return PyObject_TypeCheck(o, st->ExprType);
}

static pycorm_state *expr_st(ExprObject *self)
{
    return self->reg->st;
}

/* A value for comparison with self: typed by self's column when self is one. */
static int value_for(ExprObject *self, PyObject *o, corm_value *v, valbuf *b)
{
    if (self->table)
        return field_value(self->table, self->col, o, v, b);
    return plain_value(expr_st(self), o, FK_PLAIN, v, b);
}

/* self op other (a value or an expression). */
static PyObject *expr_binop(ExprObject *self, int op, PyObject *other)
{
    pycorm_state *st = expr_st(self);
    corm_expr *lhs = expr_get(self);
    if (!lhs)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    corm_expr *out = NULL;
    int rc;
    if (is_expr(st, other)) {
        corm_expr *rhs = expr_get((ExprObject *)other);
        if (!rhs)
            return NULL;
        rc = corm_expr_op(&out, op, lhs, rhs, &err);
    } else {
        valbuf b = {0};
        corm_value v;
        /* Arithmetic values are not checked against the column's type. */
        int vr = (op >= CORM_ADD && op <= CORM_CONCAT)
                     ? plain_value(st, other, FK_PLAIN, &v, &b)
                     : value_for(self, other, &v, &b);
        if (vr < 0) {
            valbuf_free(&b);
            return NULL;
        }
        if (op >= CORM_ADD && op <= CORM_CONCAT) {
            corm_expr *val = NULL;
            rc = corm_expr_value_for(&val, lhs, &v, &err);
            if (rc >= 0) {
                rc = corm_expr_op(&out, op, lhs, val, &err);
                corm_expr_free(val);
            }
        } else {
            rc = corm_expr_cmp(&out, lhs, op, &v, &err);
        }
        valbuf_free(&b);
    }
    if (rc < 0)
        return raise_err(st, &err);
    return (PyObject *)expr_wrap(st, self->reg, out);
}

static PyObject *expr_is_null_impl(ExprObject *self, bool negate)
{
    corm_expr *e = expr_get(self);
    if (!e)
        return NULL;
    corm_expr *out;
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_is_null(&out, e, negate, &err) < 0)
        return raise_err(expr_st(self), &err);
    return (PyObject *)expr_wrap(expr_st(self), self->reg, out);
}

static PyObject *expr_richcompare(ExprObject *self, PyObject *other, int op)
{
    static const int ops[] = {CORM_LT, CORM_LE, CORM_EQ, CORM_NE, CORM_GT, CORM_GE};
    if (other == Py_None && (op == Py_EQ || op == Py_NE))
        return expr_is_null_impl(self, op == Py_NE);
    return expr_binop(self, ops[op], other);
}

#define BINOP(fname, OP)                                                       \
    static PyObject *fname(PyObject *a, PyObject *b)                           \
    {                                                                          \
        if (Py_TYPE(a)->tp_dealloc != (destructor)expr_dealloc)                \
            Py_RETURN_NOTIMPLEMENTED;                                          \
        return expr_binop((ExprObject *)a, OP, b);                             \
    }
BINOP(expr_add, CORM_ADD)
BINOP(expr_sub, CORM_SUB)
BINOP(expr_mul, CORM_MUL)
BINOP(expr_div, CORM_DIV)
BINOP(expr_mod, CORM_MOD)

static PyObject *expr_logic(PyObject *a, PyObject *b, bool and)
{
    if (Py_TYPE(a)->tp_dealloc != (destructor)expr_dealloc ||
        Py_TYPE(b)->tp_dealloc != (destructor)expr_dealloc)
        Py_RETURN_NOTIMPLEMENTED;
    ExprObject *x = (ExprObject *)a;
    corm_expr *ea = expr_get(x), *eb = ea ? expr_get((ExprObject *)b) : NULL;
    if (!eb)
        return NULL;
    corm_expr *out;
    corm_error err = CORM_ERROR_INIT;
    int rc = and ? corm_expr_and(&out, ea, eb, &err) : corm_expr_or(&out, ea, eb, &err);
    if (rc < 0)
        return raise_err(expr_st(x), &err);
    return (PyObject *)expr_wrap(expr_st(x), x->reg, out);
}

static PyObject *expr_and(PyObject *a, PyObject *b)
{
    return expr_logic(a, b, true);
}

static PyObject *expr_or(PyObject *a, PyObject *b)
{
    return expr_logic(a, b, false);
}

static PyObject *expr_invert(ExprObject *self)
{
    corm_expr *e = expr_get(self), *out;
    if (!e)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_not(&out, e, &err) < 0)
        return raise_err(expr_st(self), &err);
    return (PyObject *)expr_wrap(expr_st(self), self->reg, out);
}

static int expr_bool(PyObject *self)
{
    PyErr_SetString(PyExc_TypeError,
                    "a column expression has no truth value: use & | ~ instead of and/or/not");
    return -1;
}

static PyObject *expr_in_impl(ExprObject *self, PyObject *arg, bool negate)
{
    pycorm_state *st = expr_st(self);
    corm_expr *lhs = expr_get(self), *out = NULL;
    if (!lhs)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    /* A query of the Python layer builds its _core.Query. */
    PyObject *built = NULL;
    if (!PyObject_TypeCheck(arg, st->QueryType) && !PyList_Check(arg) && !PyTuple_Check(arg)) {
        PyObject *fn = PyObject_GetAttrString(arg, "__corm_query__");
        if (!fn)
            PyErr_Clear();
        else {
            built = PyObject_CallNoArgs(fn);
            Py_DECREF(fn);
            if (!built)
                return NULL;
            arg = built;
        }
    }
    if (PyObject_TypeCheck(arg, st->QueryType)) {
        int rc = corm_expr_in_query(&out, lhs, ((QueryObject *)arg)->q, negate, &err);
        Py_XDECREF(built);
        if (rc < 0)
            return raise_err(st, &err);
        return (PyObject *)expr_wrap(st, self->reg, out);
    }
    Py_XDECREF(built);
    PyObject *seq = PySequence_Fast(arg, "in_() takes a sequence of values or a query");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    valbuf b = {0};
    corm_value *vs = valbuf_alloc(&b, (size_t)(n ? n : 1) * sizeof *vs);
    int rc = vs ? 0 : -1;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
        rc = value_for(self, PySequence_Fast_GET_ITEM(seq, i), &vs[i], &b);
    if (rc == 0 && corm_expr_in(&out, lhs, (size_t)n, vs, negate, &err) < 0) {
        raise_err(st, &err);
        rc = -1;
    }
    valbuf_free(&b);
    Py_DECREF(seq);
    if (rc < 0)
        return NULL;
    return (PyObject *)expr_wrap(st, self->reg, out);
}

static PyObject *expr_in(ExprObject *self, PyObject *arg)
{
    return expr_in_impl(self, arg, false);
}

static PyObject *expr_not_in(ExprObject *self, PyObject *arg)
{
    return expr_in_impl(self, arg, true);
}

/* A text-pattern comparison: the value must be a str. */
static PyObject *expr_text_op(ExprObject *self, PyObject *arg, int op)
{
    if (!PyUnicode_Check(arg))
        return PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(arg)->tp_name);
    pycorm_state *st = expr_st(self);
    corm_expr *lhs = expr_get(self), *out;
    if (!lhs)
        return NULL;
    valbuf b = {0};
    corm_value v;
    if (plain_value(st, arg, FK_PLAIN, &v, &b) < 0) {
        valbuf_free(&b);
        return NULL;
    }
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_cmp(&out, lhs, op, &v, &err);
    valbuf_free(&b);
    if (rc < 0)
        return raise_err(st, &err);
    return (PyObject *)expr_wrap(st, self->reg, out);
}

#define TEXTOP(fname, OP)                                  \
    static PyObject *fname(ExprObject *self, PyObject *a)  \
    {                                                      \
        return expr_text_op(self, a, OP);                  \
    }
TEXTOP(expr_like, CORM_LIKE)
TEXTOP(expr_ilike, CORM_ILIKE)
TEXTOP(expr_contains, CORM_CONTAINS)
TEXTOP(expr_icontains, CORM_ICONTAINS)
TEXTOP(expr_startswith, CORM_STARTSWITH)
TEXTOP(expr_istartswith, CORM_ISTARTSWITH)
TEXTOP(expr_endswith, CORM_ENDSWITH)
TEXTOP(expr_iendswith, CORM_IENDSWITH)

/* An operand expression: an Expr, or a value bound like self. */
static corm_expr *operand(ExprObject *self, PyObject *o)
{
    pycorm_state *st = expr_st(self);
    if (is_expr(st, o)) {
        corm_expr *e = expr_get((ExprObject *)o);
        return e ? corm_expr_ref(e) : NULL;
    }
    corm_expr *lhs = expr_get(self), *out = NULL;
    if (!lhs)
        return NULL;
    valbuf b = {0};
    corm_value v;
    if (value_for(self, o, &v, &b) < 0) {
        valbuf_free(&b);
        return NULL;
    }
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_value_for(&out, lhs, &v, &err);
    valbuf_free(&b);
    if (rc < 0) {
        raise_err(st, &err);
        return NULL;
    }
    return out;
}

static PyObject *expr_between(ExprObject *self, PyObject *args)
{
    PyObject *lo, *hi;
    int negate = 0;
    if (!PyArg_ParseTuple(args, "OO|p:between", &lo, &hi, &negate))
        return NULL;
    corm_expr *x = expr_get(self);
    if (!x)
        return NULL;
    corm_expr *a = operand(self, lo);
    corm_expr *b = a ? operand(self, hi) : NULL;
    PyObject *r = NULL;
    if (b) {
        corm_expr *out;
        corm_error err = CORM_ERROR_INIT;
        if (corm_expr_between(&out, x, a, b, negate != 0, &err) < 0)
            raise_err(expr_st(self), &err);
        else
            r = (PyObject *)expr_wrap(expr_st(self), self->reg, out);
    }
    corm_expr_free(a);
    corm_expr_free(b);
    return r;
}

static PyObject *expr_is_null(ExprObject *self, PyObject *unused)
{
    return expr_is_null_impl(self, false);
}

static PyObject *expr_is_not_null(ExprObject *self, PyObject *unused)
{
    return expr_is_null_impl(self, true);
}

/* A copy of self sharing its corm_expr, with another alias or order. */
static PyObject *expr_copy(ExprObject *self, PyObject *alias, unsigned order)
{
    corm_expr *e = expr_get(self);
    if (!e)
        return NULL;
    ExprObject *x = expr_wrap(expr_st(self), self->reg, corm_expr_ref(e));
    if (!x)
        return NULL;
    x->alias = alias ? Py_NewRef(alias) : (self->alias ? Py_NewRef(self->alias) : NULL);
    x->order = order;
    return (PyObject *)x;
}

static PyObject *expr_label(ExprObject *self, PyObject *name)
{
    if (!PyUnicode_Check(name))
        return PyErr_Format(PyExc_TypeError, "label() takes a str");
    return expr_copy(self, name, self->order);
}

static PyObject *expr_asc(ExprObject *self, PyObject *unused)
{
    return expr_copy(self, NULL, CORM_ASC);
}

static PyObject *expr_desc(ExprObject *self, PyObject *unused)
{
    return expr_copy(self, NULL, CORM_DESC);
}

static PyObject *expr_nulls(ExprObject *self, PyObject *first)
{
    int f = PyObject_IsTrue(first);
    if (f < 0)
        return NULL;
    return expr_copy(self, NULL,
                     (self->order & CORM_DESC) | (f ? CORM_NULLS_FIRST : CORM_NULLS_LAST));
}

/* Fills a C array of the corm_exprs of a sequence of Exprs (ordering
 * applied: an asc()/desc() item becomes a corm_expr_order). New refs. */
static int expr_array(pycorm_state *st, PyObject *o, corm_expr ***out, int *n, bool ordered)
{
    PyObject *seq = PySequence_Fast(o, "expected a sequence of expressions");
    if (!seq)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    corm_expr **a = PyMem_Calloc(len ? (size_t)len : 1, sizeof *a);
    if (!a) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        corm_expr *e = is_expr(st, it) ? expr_get((ExprObject *)it) : NULL;
        if (!e) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "expected expressions");
            goto fail;
        }
        unsigned order = ((ExprObject *)it)->order;
        if (ordered && order) {
            corm_error err = CORM_ERROR_INIT;
            if (corm_expr_order(&a[i], e, order, &err) < 0) {
                raise_err(st, &err);
                goto fail;
            }
        } else {
            a[i] = corm_expr_ref(e);
        }
    }
    Py_DECREF(seq);
    *out = a;
    *n = (int)len;
    return 0;
fail:
    for (Py_ssize_t i = 0; i < len; i++)
        corm_expr_free(a[i]);
    PyMem_Free(a);
    Py_DECREF(seq);
    return -1;
}

static void expr_array_free(corm_expr **a, int n)
{
    for (int i = 0; i < n; i++)
        corm_expr_free(a[i]);
    PyMem_Free(a);
}

/* over(partition_by=(), order_by=()) -> a window function expression */
static PyObject *expr_over(ExprObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"partition_by", "order_by", NULL};
    PyObject *part = NULL, *order = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:over", kwlist, &part, &order))
        return NULL;
    pycorm_state *st = expr_st(self);
    corm_expr *fn = expr_get(self);
    if (!fn)
        return NULL;
    corm_expr **pa = NULL, **oa = NULL;
    int np = 0, no = 0;
    PyObject *r = NULL;
    if (part && expr_array(st, part, &pa, &np, false) < 0)
        return NULL;
    if (order && expr_array(st, order, &oa, &no, true) < 0)
        goto done;
    corm_expr *out;
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_over(&out, fn, np, (const corm_expr *const *)pa, no,
                       (const corm_expr *const *)oa, &err) < 0)
        raise_err(st, &err);
    else
        r = (PyObject *)expr_wrap(st, self->reg, out);
done:
    expr_array_free(pa, np);
    expr_array_free(oa, no);
    return r;
}

/* cast(type) */
static PyObject *expr_cast(ExprObject *self, PyObject *type)
{
    const char *t = PyUnicode_AsUTF8(type);
    corm_expr *e = t ? expr_get(self) : NULL, *out;
    if (!e)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_cast(&out, e, t, &err) < 0)
        return raise_err(expr_st(self), &err);
    return (PyObject *)expr_wrap(expr_st(self), self->reg, out);
}

static PyObject *expr_get_alias(ExprObject *self, void *c)
{
    return Py_NewRef(self->alias ? self->alias : Py_None);
}

static PyObject *expr_get_order(ExprObject *self, void *c)
{
    return PyLong_FromUnsignedLong(self->order);
}

static PyMethodDef expr_methods[] = {
    {"in_", (PyCFunction)expr_in, METH_O, "self IN (values...) or IN (query)"},
    {"not_in", (PyCFunction)expr_not_in, METH_O, NULL},
    {"like", (PyCFunction)expr_like, METH_O, NULL},
    {"ilike", (PyCFunction)expr_ilike, METH_O, NULL},
    {"contains", (PyCFunction)expr_contains, METH_O, "a literal substring (LIKE, escaped)"},
    {"icontains", (PyCFunction)expr_icontains, METH_O, NULL},
    {"startswith", (PyCFunction)expr_startswith, METH_O, NULL},
    {"istartswith", (PyCFunction)expr_istartswith, METH_O, NULL},
    {"endswith", (PyCFunction)expr_endswith, METH_O, NULL},
    {"iendswith", (PyCFunction)expr_iendswith, METH_O, NULL},
    {"between", (PyCFunction)expr_between, METH_VARARGS, "between(lo, hi, negate=False)"},
    {"is_null", (PyCFunction)expr_is_null, METH_NOARGS, NULL},
    {"is_not_null", (PyCFunction)expr_is_not_null, METH_NOARGS, NULL},
    {"label", (PyCFunction)expr_label, METH_O, "the same expression, selected AS name"},
    {"asc", (PyCFunction)expr_asc, METH_NOARGS, NULL},
    {"desc", (PyCFunction)expr_desc, METH_NOARGS, NULL},
    {"nulls_first", (PyCFunction)expr_nulls, METH_O, "nulls_first(True|False)"},
    {"over", (PyCFunction)(void (*)(void))expr_over, METH_VARARGS | METH_KEYWORDS, NULL},
    {"cast", (PyCFunction)expr_cast, METH_O, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef expr_getset[] = {
    {"alias", (getter)expr_get_alias, NULL, NULL, NULL},
    {"order", (getter)expr_get_order, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot expr_slots[] = {
    {Py_tp_dealloc, expr_dealloc},
    {Py_tp_traverse, expr_traverse},
    {Py_tp_clear, expr_clear},
    {Py_tp_richcompare, expr_richcompare},
    {Py_tp_hash, ptr_hash},
    {Py_tp_methods, expr_methods},
    {Py_tp_getset, expr_getset},
    {Py_nb_add, expr_add},
    {Py_nb_subtract, expr_sub},
    {Py_nb_multiply, expr_mul},
    {Py_nb_true_divide, expr_div},
    {Py_nb_remainder, expr_mod},
    {Py_nb_and, expr_and},
    {Py_nb_or, expr_or},
    {Py_nb_invert, expr_invert},
    {Py_nb_bool, expr_bool},
    {Py_tp_doc, "An SQL expression (a corm_expr): compare, combine with & | ~, order."},
    {0, NULL},
};

static PyType_Spec expr_spec = {
    .name = "cormorant._core.Expr",
    .basicsize = sizeof(ExprObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = expr_slots,
};

/* ---- Column: an Expr that is also the field's descriptor ------------------------- */

static PyObject *column_descr_get(ExprObject *self, PyObject *obj, PyObject *type)
{
    if (!obj || obj == Py_None)
        return Py_NewRef(self);
    ModelObject *o = (ModelObject *)obj;
    if (!PyObject_TypeCheck(obj, self->reg->st->ModelBaseType) || o->table != self->table)
        return PyErr_Format(PyExc_TypeError, "not an instance of the column's model");
    PyObject *v = o->items[self->col];
    if (!v)
        return PyErr_Format(PyExc_AttributeError, "field %R was not loaded (or not set)",
                            self->table->fields[self->col].name);
    return Py_NewRef(v);
}

static int column_descr_set(ExprObject *self, PyObject *obj, PyObject *value)
{
    ModelObject *o = (ModelObject *)obj;
    if (!PyObject_TypeCheck(obj, self->reg->st->ModelBaseType) || o->table != self->table) {
        PyErr_SetString(PyExc_TypeError, "not an instance of the column's model");
        return -1;
    }
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "fields cannot be deleted");
        return -1;
    }
    if (check_value(self->table, self->col, value) < 0)
        return -1;
    Py_XSETREF(o->items[self->col], Py_NewRef(value));
    mark(o, self->col);
    return 0;
}

static PyObject *column_get_name(ExprObject *self, void *c)
{
    return Py_NewRef(self->table->fields[self->col].name);
}

static PyObject *column_get_index(ExprObject *self, void *c)
{
    return PyLong_FromLong(self->col);
}

static PyObject *column_get_table(ExprObject *self, void *c)
{
    return Py_NewRef((PyObject *)self->table);
}

static PyObject *column_get_model(ExprObject *self, void *c)
{
    return Py_NewRef(self->table->cls ? self->table->cls : Py_None);
}

static PyObject *column_repr(ExprObject *self)
{
    return PyUnicode_FromFormat("<Column %s.%U>", corm_model_table(self->table->m),
                                self->table->fields[self->col].name);
}

static PyGetSetDef column_getset[] = {
    {"name", (getter)column_get_name, NULL, NULL, NULL},
    {"index", (getter)column_get_index, NULL, NULL, NULL},
    {"table", (getter)column_get_table, NULL, NULL, NULL},
    {"model", (getter)column_get_model, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot column_slots[] = {
    {Py_tp_dealloc, expr_dealloc},
    {Py_tp_traverse, expr_traverse},
    {Py_tp_clear, expr_clear},
    {Py_tp_descr_get, column_descr_get},
    {Py_tp_descr_set, column_descr_set},
    {Py_tp_getset, column_getset},
    {Py_tp_repr, column_repr},
    {Py_tp_doc, "A model field: on the class, a column expression; on an instance, its value."},
    {0, NULL},
};

static PyType_Spec column_spec = {
    .name = "cormorant._core.Column",
    .basicsize = sizeof(ExprObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = column_slots,
};

/* ---- expression constructors ------------------------------------------------------ */

static RegistryObject *check_reg(pycorm_state *st, PyObject *o)
{
    if (!PyObject_TypeCheck(o, st->RegistryType)) {
        PyErr_SetString(PyExc_TypeError, "expected a Registry");
        return NULL;
    }
    return (RegistryObject *)o;
}

/* agg(registry, kind, arg=None, distinct=False) */
static PyObject *mod_agg(PyObject *m, PyObject *args)
{
    pycorm_state *st = PyModule_GetState(m);
    PyObject *rego, *arg = Py_None;
    int kind, distinct = 0;
    if (!PyArg_ParseTuple(args, "Oi|Op:agg", &rego, &kind, &arg, &distinct))
        return NULL;
    RegistryObject *reg = check_reg(st, rego);
    if (!reg)
        return NULL;
    corm_expr *a = NULL, *out;
    if (arg != Py_None) {
        if (!is_expr(st, arg))
            return PyErr_Format(PyExc_TypeError, "an aggregate takes a column or expression");
        if (!(a = expr_get((ExprObject *)arg)))
            return NULL;
    }
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_agg(&out, reg->reg, kind, a, distinct ? CORM_AGG_DISTINCT : 0, &err) < 0)
        return raise_err(st, &err);
    return (PyObject *)expr_wrap(st, reg, out);
}

/* func(registry, name, *args): args are expressions or values. */
static PyObject *mod_func(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    pycorm_state *st = PyModule_GetState(m);
    if (nargs < 2 || !PyUnicode_Check(args[1]))
        return PyErr_Format(PyExc_TypeError, "func(registry, name, *args)");
    RegistryObject *reg = check_reg(st, args[0]);
    const char *name = reg ? PyUnicode_AsUTF8(args[1]) : NULL;
    if (!name)
        return NULL;
    int n = (int)(nargs - 2);
    corm_expr **es = PyMem_Calloc(n ? (size_t)n : 1, sizeof *es);
    if (!es)
        return PyErr_NoMemory();
    PyObject *r = NULL;
    corm_error err = CORM_ERROR_INIT;
    int i;
    for (i = 0; i < n; i++) {
        PyObject *a = args[i + 2];
        if (is_expr(st, a)) {
            if (!(es[i] = expr_get((ExprObject *)a)))
                goto done;
            corm_expr_ref(es[i]);
        } else {
            valbuf b = {0};
            corm_value v;
            int rc = plain_value(st, a, FK_PLAIN, &v, &b);
            if (rc == 0 && corm_expr_value(&es[i], reg->reg, &v, &err) < 0) {
                raise_err(st, &err);
                rc = -1;
            }
            valbuf_free(&b);
            if (rc < 0)
                goto done;
        }
    }
    corm_expr *out;
    if (corm_expr_func(&out, reg->reg, name, n, (const corm_expr *const *)es, &err) < 0)
        raise_err(st, &err);
    else
        r = (PyObject *)expr_wrap(st, reg, out);
done:
    expr_array_free(es, n);
    return r;
}

/* value(registry, v): a bound parameter as an expression. */
static PyObject *mod_value(PyObject *m, PyObject *args)
{
    pycorm_state *st = PyModule_GetState(m);
    PyObject *rego, *o;
    if (!PyArg_ParseTuple(args, "OO:value", &rego, &o))
        return NULL;
    RegistryObject *reg = check_reg(st, rego);
    if (!reg)
        return NULL;
    valbuf b = {0};
    corm_value v;
    corm_expr *out = NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc = plain_value(st, o, FK_PLAIN, &v, &b);
    if (rc == 0 && corm_expr_value(&out, reg->reg, &v, &err) < 0) {
        raise_err(st, &err);
        rc = -1;
    }
    valbuf_free(&b);
    return rc < 0 ? NULL : (PyObject *)expr_wrap(st, reg, out);
}

/* ident(registry, name, qualifier=None): a CTE column or an output alias. */
static PyObject *mod_ident(PyObject *m, PyObject *args)
{
    pycorm_state *st = PyModule_GetState(m);
    PyObject *rego;
    const char *name, *qual = NULL;
    if (!PyArg_ParseTuple(args, "Os|z:ident", &rego, &name, &qual))
        return NULL;
    RegistryObject *reg = check_reg(st, rego);
    if (!reg)
        return NULL;
    corm_expr *out;
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_ident(&out, reg->reg, qual, name, &err) < 0)
        return raise_err(st, &err);
    return (PyObject *)expr_wrap(st, reg, out);
}

/* exists(query) */
static PyObject *mod_exists(PyObject *m, PyObject *arg)
{
    pycorm_state *st = PyModule_GetState(m);
    if (!PyObject_TypeCheck(arg, st->QueryType))
        return PyErr_Format(PyExc_TypeError, "exists() takes a query");
    QueryObject *q = (QueryObject *)arg;
    corm_expr *out;
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_exists(&out, q->q, &err) < 0)
        return raise_err(st, &err);
    return (PyObject *)expr_wrap(st, q->reg, out);
}

/* ---- Query ------------------------------------------------------------------------- */

static int query_traverse(QueryObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->reg);
    Py_VISIT(self->table);
    return 0;
}

static void query_dealloc(QueryObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    corm_query_free(self->q);
    Py_CLEAR(self->table);
    Py_CLEAR(self->reg);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static QueryObject *query_wrap(pycorm_state *st, RegistryObject *reg, TableObject *t,
                               corm_query *q)
{
    QueryObject *self = PyObject_GC_New(QueryObject, st->QueryType);
    if (!self) {
        corm_query_free(q);
        return NULL;
    }
    self->reg = (RegistryObject *)Py_NewRef(reg);
    self->table = t ? (TableObject *)Py_NewRef(t) : NULL;
    self->q = q;
    PyObject_GC_Track(self);
    return self;
}

/* query(kind, table_or_registry, alias=None): kind 1 select, 2 insert,
 * 3 update, 4 delete; kind 0 with a registry: a SELECT with no FROM. */
static PyObject *mod_query(PyObject *m, PyObject *args)
{
    pycorm_state *st = PyModule_GetState(m);
    int kind;
    PyObject *target;
    const char *alias = NULL;
    if (!PyArg_ParseTuple(args, "iO|z:query", &kind, &target, &alias))
        return NULL;
    corm_query *q = NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc;
    if (kind == 0) {
        RegistryObject *reg = check_reg(st, target);
        if (!reg)
            return NULL;
        if (corm_query_new(&q, reg->reg, &err) < 0)
            return raise_err(st, &err);
        return (PyObject *)query_wrap(st, reg, NULL, q);
    }
    if (!PyObject_TypeCheck(target, st->TableType))
        return PyErr_Format(PyExc_TypeError, "expected a Table");
    TableObject *t = (TableObject *)target;
    switch (kind) {
    case CORM_QUERY_SELECT:
        rc = corm_query_select(&q, t->m, alias, &err);
        break;
    case CORM_QUERY_INSERT:
        rc = corm_query_insert(&q, t->m, &err);
        break;
    case CORM_QUERY_UPDATE:
        rc = corm_query_update(&q, t->m, &err);
        break;
    case CORM_QUERY_DELETE:
        rc = corm_query_delete(&q, t->m, &err);
        break;
    default:
        return PyErr_Format(PyExc_ValueError, "bad query kind %d", kind);
    }
    if (rc < 0)
        return raise_err(st, &err);
    return (PyObject *)query_wrap(st, t->reg, t, q);
}

static pycorm_state *query_st(QueryObject *self)
{
    return self->reg->st;
}

static corm_expr *arg_expr(QueryObject *self, PyObject *o)
{
    if (!is_expr(query_st(self), o)) {
        PyErr_Format(PyExc_TypeError, "expected a column or expression, got %.100s",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    return expr_get((ExprObject *)o);
}

static PyObject *q_done(QueryObject *self, int rc, corm_error *err)
{
    if (rc < 0)
        return raise_err(query_st(self), err);
    Py_RETURN_NONE;
}

typedef int expr_clause(corm_query *q, const corm_expr *e, corm_error *err);

static PyObject *q_expr_clause(QueryObject *self, PyObject *o, expr_clause *fn)
{
    corm_expr *e = arg_expr(self, o);
    if (!e)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, fn(self->q, e, &err), &err);
}

static PyObject *q_where(QueryObject *self, PyObject *o)
{
    return q_expr_clause(self, o, corm_query_where);
}

static PyObject *q_group_by(QueryObject *self, PyObject *o)
{
    return q_expr_clause(self, o, corm_query_group_by);
}

static PyObject *q_having(QueryObject *self, PyObject *o)
{
    return q_expr_clause(self, o, corm_query_having);
}

static PyObject *q_distinct_on(QueryObject *self, PyObject *o)
{
    return q_expr_clause(self, o, corm_query_distinct_on);
}

/* select(expr): adds expr [AS its label] to the SELECT list. */
static PyObject *q_select(QueryObject *self, PyObject *o)
{
    corm_expr *e = arg_expr(self, o);
    if (!e)
        return NULL;
    PyObject *alias = ((ExprObject *)o)->alias;
    const char *a = alias ? PyUnicode_AsUTF8(alias) : NULL;
    if (alias && !a)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_select_expr(self->q, e, a, &err), &err);
}

static PyObject *q_select_all(QueryObject *self, PyObject *t)
{
    if (!PyObject_TypeCheck(t, query_st(self)->TableType))
        return PyErr_Format(PyExc_TypeError, "expected a Table");
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_select_all(self->q, ((TableObject *)t)->m, NULL, &err), &err);
}

static PyObject *q_distinct(QueryObject *self, PyObject *unused)
{
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_distinct(self->q, &err), &err);
}

/* order_by(expr): its asc()/desc()/nulls flags apply. */
static PyObject *q_order_by(QueryObject *self, PyObject *o)
{
    corm_expr *e = arg_expr(self, o);
    if (!e)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_order_by(self->q, e, ((ExprObject *)o)->order, &err), &err);
}

static PyObject *q_limit(QueryObject *self, PyObject *n)
{
    long long v = PyLong_AsLongLong(n);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_limit(self->q, v, &err), &err);
}

static PyObject *q_offset(QueryObject *self, PyObject *n)
{
    long long v = PyLong_AsLongLong(n);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_offset(self->q, v, &err), &err);
}

static PyObject *q_lock(QueryObject *self, PyObject *n)
{
    long v = PyLong_AsLong(n);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_lock(self->q, (unsigned)v, &err), &err);
}

/* join(table, left=False, on=None) */
static PyObject *q_join(QueryObject *self, PyObject *args)
{
    PyObject *t, *on = Py_None;
    int left = 0;
    if (!PyArg_ParseTuple(args, "O!|pO:join", query_st(self)->TableType, &t, &left, &on))
        return NULL;
    corm_expr *e = NULL;
    if (on != Py_None && !(e = arg_expr(self, on)))
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self,
                  corm_query_join(self->q, left ? CORM_JOIN_LEFT : CORM_JOIN_INNER,
                                  ((TableObject *)t)->m, NULL, e, &err),
                  &err);
}

/* with_(name, query, recursive=False) */
static PyObject *q_with(QueryObject *self, PyObject *args)
{
    const char *name;
    PyObject *sub;
    int recursive = 0;
    if (!PyArg_ParseTuple(args, "sO!|p:with_", &name, query_st(self)->QueryType, &sub, &recursive))
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self,
                  corm_query_with(self->q, name, 0, NULL, ((QueryObject *)sub)->q,
                                  recursive ? CORM_CTE_RECURSIVE : 0, &err),
                  &err);
}

/* from_cte(name, alias=None) */
static PyObject *q_from_cte(QueryObject *self, PyObject *args)
{
    const char *name, *alias = NULL;
    if (!PyArg_ParseTuple(args, "s|z:from_cte", &name, &alias))
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_from_cte(self->q, name, alias, &err), &err);
}

/* combine(op, other) */
static PyObject *q_combine(QueryObject *self, PyObject *args)
{
    int op;
    PyObject *other;
    if (!PyArg_ParseTuple(args, "iO!:combine", &op, query_st(self)->QueryType, &other))
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_combine(self->q, op, ((QueryObject *)other)->q, &err), &err);
}

static TableObject *q_table(QueryObject *self)
{
    if (!self->table)
        PyErr_SetString(PyExc_TypeError, "this query has no model");
    return self->table;
}

/* values(fields, values): one INSERT row; fields are indexes. */
static PyObject *q_values(QueryObject *self, PyObject *args)
{
    PyObject *fo, *vo;
    if (!PyArg_ParseTuple(args, "OO:values", &fo, &vo))
        return NULL;
    TableObject *t = q_table(self);
    if (!t)
        return NULL;
    int *cols, n;
    if (int_list(fo, &cols, &n) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(vo, "values must be a sequence");
    if (!seq) {
        PyMem_Free(cols);
        return NULL;
    }
    if (PySequence_Fast_GET_SIZE(seq) != n) {
        PyMem_Free(cols);
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "as many values as fields");
    }
    valbuf b = {0};
    corm_value *vs = valbuf_alloc(&b, (size_t)(n ? n : 1) * sizeof *vs);
    int rc = vs ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (cols[i] < 0 || cols[i] >= t->nfields) {
            PyErr_SetString(PyExc_IndexError, "no such field");
            rc = -1;
            break;
        }
        rc = field_value(t, cols[i], PySequence_Fast_GET_ITEM(seq, i), &vs[i], &b);
    }
    corm_error err = CORM_ERROR_INIT;
    PyObject *r = NULL;
    if (rc == 0)
        r = q_done(self, corm_query_values(self->q, n, cols, vs, &err), &err);
    valbuf_free(&b);
    PyMem_Free(cols);
    Py_DECREF(seq);
    return r;
}

/* set(field, value_or_expr): SET "col" = ... */
static PyObject *q_set(QueryObject *self, PyObject *args)
{
    int col;
    PyObject *o;
    if (!PyArg_ParseTuple(args, "iO:set", &col, &o))
        return NULL;
    TableObject *t = q_table(self);
    if (!t)
        return NULL;
    if (col < 0 || col >= t->nfields)
        return PyErr_Format(PyExc_IndexError, "no such field");
    corm_error err = CORM_ERROR_INIT;
    if (is_expr(query_st(self), o)) {
        corm_expr *e = expr_get((ExprObject *)o);
        if (!e)
            return NULL;
        return q_done(self, corm_query_set(self->q, col, e, &err), &err);
    }
    valbuf b = {0};
    corm_value v;
    PyObject *r = NULL;
    if (field_value(t, col, o, &v, &b) == 0)
        r = q_done(self, corm_query_set_value(self->q, col, &v, &err), &err);
    valbuf_free(&b);
    return r;
}

/* set_excluded(field): SET "col" = EXCLUDED."col" (an upsert's DO UPDATE) */
static PyObject *q_set_excluded(QueryObject *self, PyObject *n)
{
    TableObject *t = q_table(self);
    long col = t ? PyLong_AsLong(n) : -1;
    if (col == -1 && PyErr_Occurred())
        return NULL;
    if (!t)
        return NULL;
    corm_expr *e;
    corm_error err = CORM_ERROR_INIT;
    if (corm_expr_excluded(&e, t->m, (int)col, &err) < 0)
        return raise_err(query_st(self), &err);
    int rc = corm_query_set(self->q, (int)col, e, &err);
    corm_expr_free(e);
    return q_done(self, rc, &err);
}

/* on_conflict(fields, update) */
static PyObject *q_on_conflict(QueryObject *self, PyObject *args)
{
    PyObject *fo;
    int update;
    if (!PyArg_ParseTuple(args, "Op:on_conflict", &fo, &update))
        return NULL;
    int *cols, n;
    if (int_list(fo, &cols, &n) < 0)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_query_on_conflict(self->q, n, cols,
                                    update ? CORM_CONFLICT_UPDATE : CORM_CONFLICT_NOTHING, &err);
    PyMem_Free(cols);
    return q_done(self, rc, &err);
}

static PyObject *q_returning(QueryObject *self, PyObject *o)
{
    corm_expr *e = arg_expr(self, o);
    if (!e)
        return NULL;
    PyObject *alias = ((ExprObject *)o)->alias;
    const char *a = alias ? PyUnicode_AsUTF8(alias) : NULL;
    if (alias && !a)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_returning(self->q, e, a, &err), &err);
}

static PyObject *q_returning_all(QueryObject *self, PyObject *unused)
{
    corm_error err = CORM_ERROR_INIT;
    return q_done(self, corm_query_returning_all(self->q, &err), &err);
}

/* sql() -> the compiled SQL text (libcore's) */
static PyObject *q_sql(QueryObject *self, PyObject *unused)
{
    corm_error err = CORM_ERROR_INIT;
    if (corm_query_compile(self->q, &err) < 0)
        return raise_err(query_st(self), &err);
    return PyUnicode_FromString(corm_query_text(self->q));
}

static PyObject *q_nparams(QueryObject *self, PyObject *unused)
{
    return PyLong_FromLong(corm_query_nparams(self->q));
}

static PyMethodDef query_methods[] = {
    {"where", (PyCFunction)q_where, METH_O, NULL},
    {"group_by", (PyCFunction)q_group_by, METH_O, NULL},
    {"having", (PyCFunction)q_having, METH_O, NULL},
    {"distinct", (PyCFunction)q_distinct, METH_NOARGS, NULL},
    {"distinct_on", (PyCFunction)q_distinct_on, METH_O, NULL},
    {"select", (PyCFunction)q_select, METH_O, NULL},
    {"select_all", (PyCFunction)q_select_all, METH_O, NULL},
    {"order_by", (PyCFunction)q_order_by, METH_O, NULL},
    {"limit", (PyCFunction)q_limit, METH_O, NULL},
    {"offset", (PyCFunction)q_offset, METH_O, NULL},
    {"lock", (PyCFunction)q_lock, METH_O, NULL},
    {"join", (PyCFunction)q_join, METH_VARARGS, "join(table, left=False, on=None)"},
    {"with_", (PyCFunction)q_with, METH_VARARGS, "with_(name, query, recursive=False)"},
    {"from_cte", (PyCFunction)q_from_cte, METH_VARARGS, NULL},
    {"combine", (PyCFunction)q_combine, METH_VARARGS, NULL},
    {"values", (PyCFunction)q_values, METH_VARARGS, "values(fields, values): one row"},
    {"set", (PyCFunction)q_set, METH_VARARGS, NULL},
    {"set_excluded", (PyCFunction)q_set_excluded, METH_O, NULL},
    {"on_conflict", (PyCFunction)q_on_conflict, METH_VARARGS, NULL},
    {"returning", (PyCFunction)q_returning, METH_O, NULL},
    {"returning_all", (PyCFunction)q_returning_all, METH_NOARGS, NULL},
    {"sql", (PyCFunction)q_sql, METH_NOARGS, "the compiled SQL text"},
    {"nparams", (PyCFunction)q_nparams, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot query_slots[] = {
    {Py_tp_dealloc, query_dealloc},
    {Py_tp_traverse, query_traverse},
    {Py_tp_methods, query_methods},
    {Py_tp_doc, "A built query (a corm_query AST); see _core.query()."},
    {0, NULL},
};

static PyType_Spec query_spec = {
    .name = "cormorant._core.Query",
    .basicsize = sizeof(QueryObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = query_slots,
};

/* ---- Shape: a result into model instances ------------------------------------------ */

static int shape_traverse(ShapeObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->table);
    Py_VISIT(self->into);
    return 0;
}

static int shape_clear(ShapeObject *self)
{
    Py_CLEAR(self->table);
    Py_CLEAR(self->into);
    return 0;
}

static void shape_dealloc(ShapeObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    shape_clear(self);
    PyMem_Free(self->map);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyType_Slot shape_slots[] = {
    {Py_tp_dealloc, shape_dealloc},
    {Py_tp_traverse, shape_traverse},
    {Py_tp_clear, shape_clear},
    {0, NULL},
};

static PyType_Spec shape_spec = {
    .name = "cormorant._core._Shape",
    .basicsize = sizeof(ShapeObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = shape_slots,
};

/* A cell for field f: an enum's label becomes its member. */
static PyObject *field_cell(pycorm_state *st, const corm_result *r, int row, int col,
                            const field *f)
{
    PyObject *v = pycorm_cell(st, r, row, col);
    if (!v || !f || !f->convert || f->kind != FK_ENUM || v == Py_None)
        return v;
    PyObject *label = PyBytes_Check(v) ? PyUnicode_DecodeUTF8(PyBytes_AS_STRING(v),
                                                              PyBytes_GET_SIZE(v), NULL)
                                       : Py_NewRef(v);
    Py_DECREF(v);
    if (!label)
        return NULL;
    PyObject *m = PyObject_CallOneArg(f->convert, label);
    Py_DECREF(label);
    return m;
}

/* Row `row` into instance o, through the shape's column map. */
static int fill(pycorm_state *st, ShapeObject *sh, const corm_result *r, int row, ModelObject *o)
{
    TableObject *t = sh->table;
    for (int c = 0; c < sh->ncols; c++) {
        int idx = sh->map[c];
        if (idx < 0 || (uint32_t)idx >= o->nfields)
            continue;
        PyObject *v = field_cell(st, r, row, c, &t->fields[idx]);
        if (!v)
            return -1;
        Py_XSETREF(o->items[idx], v);
    }
    return 0;
}

static PyObject *make_instance(pycorm_state *st, ShapeObject *sh, const corm_result *r, int row)
{
    PyTypeObject *tp = (PyTypeObject *)sh->table->cls;
    ModelObject *o = model_alloc(tp, sh->table);
    if (!o)
        return NULL;
    o->persisted = 1;
    if (fill(st, sh, r, row, o) < 0) {
        Py_DECREF(o);
        return NULL;
    }
    return (PyObject *)o;
}

static PyObject *colname(const corm_result *r, int c)
{
    const char *n = corm_result_colname(r, c);
    PyObject *s = PyUnicode_FromString(n ? n : "?");
    if (s)
        PyUnicode_InternInPlace(&s);
    return s;
}

int pycorm_shape_streams(PyObject *shape)
{
    int mode = ((ShapeObject *)shape)->mode;
    if (((ShapeObject *)shape)->whole)
        return 0;
    return mode == SH_MODELS || mode == SH_DICTS || mode == SH_TUPLES || mode == SH_ROWS;
}

/* The names of a list of dicts: made once per request. */
static PyObject *dict_names(const corm_result *r)
{
    int ncols = corm_result_ncols(r);
    PyObject *names = PyTuple_New(ncols);
    for (int c = 0; names && c < ncols; c++) {
        PyObject *s = colname(r, c);
        if (!s)
            Py_CLEAR(names);
        else
            PyTuple_SET_ITEM(names, c, s);
    }
    return names;
}

/* Row i as a dict (names given) or a tuple. */
static PyObject *plain_item(pycorm_state *st, ShapeObject *sh, const corm_result *r, int i,
                            PyObject *names)
{
    const field *fields = sh->table ? sh->table->fields : NULL;
    int ncols = corm_result_ncols(r);
    PyObject *item = names ? PyDict_New() : PyTuple_New(ncols);
    for (int c = 0; item && c < ncols; c++) {
        int idx = c < sh->ncols ? sh->map[c] : -1;
        PyObject *v = field_cell(st, r, i, c, fields && idx >= 0 ? &fields[idx] : NULL);
        if (!v) {
            Py_CLEAR(item);
        } else if (names) {
            if (PyDict_SetItem(item, PyTuple_GET_ITEM(names, c), v) < 0)
                Py_CLEAR(item);
            Py_DECREF(v);
        } else {
            PyTuple_SET_ITEM(item, c, v);
        }
    }
    return item;
}

int pycorm_shape_append(pycorm_state *st, const corm_result *r, PyObject *shape,
                        PyObject **cache, PyObject *list)
{
    ShapeObject *sh = (ShapeObject *)shape;
    int nrows = corm_result_nrows(r);
    if (sh->mode == SH_ROWS)
        return pycorm_result_append(st, r, cache, list);
    if (sh->mode == SH_MODELS && corm_result_ncols(r) != sh->ncols) {
        pycorm_raise_code(st, CORM_EINTERNAL, "result has %d columns, expected %d",
                          corm_result_ncols(r), sh->ncols);
        return -1;
    }
    if (sh->mode == SH_DICTS && nrows > 0 && !*cache && !(*cache = dict_names(r)))
        return -1;
    for (int i = 0; i < nrows; i++) {
        PyObject *item = sh->mode == SH_MODELS
                             ? make_instance(st, sh, r, i)
                             : plain_item(st, sh, r, i, sh->mode == SH_DICTS ? *cache : NULL);
        if (!item)
            return -1;
        int rc = PyList_Append(list, item);
        Py_DECREF(item);
        if (rc < 0)
            return -1;
    }
    return 0;
}

PyObject *pycorm_shape_value(pycorm_state *st, const corm_result *r, PyObject *shape)
{
    ShapeObject *sh = (ShapeObject *)shape;
    int nrows = corm_result_nrows(r), ncols = corm_result_ncols(r);
    const field *fields = sh->table ? sh->table->fields : NULL;
    if ((sh->mode == SH_FIRST || sh->mode == SH_INTO || sh->mode == SH_INTO_LIST) &&
        ncols != sh->ncols)
        return pycorm_raise_code(st, CORM_EINTERNAL, "result has %d columns, expected %d",
                                 ncols, sh->ncols);
    switch (sh->mode) {
    case SH_AFFECTED: {
        int64_t n = corm_result_affected(r);
        return PyLong_FromLongLong(n < 0 ? 0 : n);
    }
    case SH_SCALAR:
        if (nrows < 1 || ncols < 1)
            Py_RETURN_NONE;
        return field_cell(st, r, 0, 0,
                          fields && sh->ncols > 0 && sh->map[0] >= 0 ? &fields[sh->map[0]]
                                                                     : NULL);
    case SH_FIRST:
        if (nrows < 1)
            Py_RETURN_NONE;
        return make_instance(st, sh, r, 0);
    case SH_INTO:
        if (nrows < 1)
            Py_RETURN_NONE;
        if (fill(st, sh, r, 0, (ModelObject *)sh->into) < 0)
            return NULL;
        return Py_NewRef(sh->into);
    case SH_INTO_LIST: {
        Py_ssize_t n = PyList_GET_SIZE(sh->into);
        for (int i = 0; i < nrows && i < n; i++)
            if (fill(st, sh, r, i, (ModelObject *)PyList_GET_ITEM(sh->into, i)) < 0)
                return NULL;
        return PyLong_FromLong(nrows);
    }
    default: {
        PyObject *list = PyList_New(0), *cache = NULL;
        if (list && pycorm_shape_append(st, r, shape, &cache, list) < 0)
            Py_CLEAR(list);
        Py_XDECREF(cache);
        return list;
    }
    }
}

/* run(target, query, mode, into=None, timeout=None) -> future
 * target: a Pool or Conn. The query is compiled here (its shape cached by
 * libcore) and its result columns mapped to the model's fields once. */
static PyObject *mod_run(PyObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"target", "query", "mode", "into", "timeout", NULL};
    pycorm_state *st = PyModule_GetState(m);
    PyObject *target, *qo, *into = Py_None, *timeout = Py_None;
    int mode;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO!i|OO:run", kwlist, &target, st->QueryType, &qo,
                                     &mode, &into, &timeout))
        return NULL;
    bool whole = (mode & SH_WHOLE) != 0;
    mode &= ~SH_WHOLE;
    QueryObject *q = (QueryObject *)qo;
    int tms = 0;
    if (timeout != Py_None) {
        double s = PyFloat_AsDouble(timeout);
        if (s == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(s > 0))
            return PyErr_Format(PyExc_ValueError, "timeout must be a positive number of seconds");
        tms = s * 1000.0 > 2147483647.0 ? 2147483647 : (int)(s * 1000.0 + 0.999);
    }
    if ((mode == SH_MODELS || mode == SH_FIRST || mode == SH_INTO || mode == SH_INTO_LIST) &&
        (!q->table || !q->table->cls))
        return PyErr_Format(PyExc_TypeError, "this query has no model class to make");
    if (mode == SH_INTO && !PyObject_TypeCheck(into, st->ModelBaseType))
        return PyErr_Format(PyExc_TypeError, "into must be a model instance");
    if (mode == SH_INTO_LIST && !PyList_Check(into))
        return PyErr_Format(PyExc_TypeError, "into must be a list of model instances");
    if (mode == SH_INTO_LIST)
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(into); i++)
            if (!PyObject_TypeCheck(PyList_GET_ITEM(into, i), st->ModelBaseType))
                return PyErr_Format(PyExc_TypeError, "into must be a list of model instances");
    corm_error err = CORM_ERROR_INIT;
    if (corm_query_compile(q->q, &err) < 0)
        return raise_err(st, &err);
    ShapeObject *sh = PyObject_GC_New(ShapeObject, st->ShapeType);
    if (!sh)
        return NULL;
    sh->table = q->table ? (TableObject *)Py_NewRef(q->table) : NULL;
    sh->into = into == Py_None ? NULL : Py_NewRef(into);
    sh->mode = mode;
    sh->whole = whole;
    int n = corm_query_ncolumns(q->q);
    sh->ncols = n < 0 ? 0 : n;
    sh->map = PyMem_Calloc(sh->ncols ? (size_t)sh->ncols : 1, sizeof(int));
    PyObject_GC_Track(sh);
    if (!sh->map) {
        Py_DECREF(sh);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < sh->ncols; i++) {
        const corm_model *cm = NULL;
        int f = corm_query_column_field(q->q, i, &cm);
        sh->map[i] = (q->table && cm == q->table->m) ? f : -1;
    }
    PyObject *fut = pycorm_submit_built(target, q->q, tms, (PyObject *)sh);
    Py_DECREF(sh);
    return fut;
}

/* ---- module ------------------------------------------------------------------------ */

static PyMethodDef model_mod_methods[] = {
    {"query", (PyCFunction)mod_query, METH_VARARGS,
     "query(kind, table_or_registry, alias=None) -> Query"},
    {"agg", (PyCFunction)mod_agg, METH_VARARGS, "agg(registry, kind, arg=None, distinct=False)"},
    {"func", (PyCFunction)(void (*)(void))mod_func, METH_FASTCALL,
     "func(registry, name, *args)"},
    {"value", (PyCFunction)mod_value, METH_VARARGS, "value(registry, v)"},
    {"ident", (PyCFunction)mod_ident, METH_VARARGS, "ident(registry, name, qualifier=None)"},
    {"exists", (PyCFunction)mod_exists, METH_O, "exists(query)"},
    {"run", (PyCFunction)(void (*)(void))mod_run, METH_VARARGS | METH_KEYWORDS,
     "run(target, query, mode, into=None, timeout=None) -> future"},
    {NULL, NULL, 0, NULL},
};

int pycorm_model_init(PyObject *module, pycorm_state *st)
{
    if (!(st->RegistryType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &registry_spec,
                                                                      NULL)) ||
        !(st->TableType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &table_spec, NULL)) ||
        !(st->ModelBaseType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &model_spec,
                                                                       NULL)) ||
        !(st->ExprType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &expr_spec, NULL)) ||
        !(st->ColumnType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &column_spec,
                                                                    (PyObject *)st->ExprType)) ||
        !(st->QueryType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &query_spec, NULL)) ||
        !(st->ShapeType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &shape_spec, NULL)))
        return -1;
    if (PyModule_AddObjectRef(module, "Registry", (PyObject *)st->RegistryType) < 0 ||
        PyModule_AddObjectRef(module, "Table", (PyObject *)st->TableType) < 0 ||
        PyModule_AddObjectRef(module, "ModelBase", (PyObject *)st->ModelBaseType) < 0 ||
        PyModule_AddObjectRef(module, "Expr", (PyObject *)st->ExprType) < 0 ||
        PyModule_AddObjectRef(module, "Column", (PyObject *)st->ColumnType) < 0 ||
        PyModule_AddObjectRef(module, "Query", (PyObject *)st->QueryType) < 0)
        return -1;
    return PyModule_AddFunctions(module, model_mod_methods);
}

int pycorm_model_traverse(pycorm_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->RegistryType);
    Py_VISIT(st->TableType);
    Py_VISIT(st->ModelBaseType);
    Py_VISIT(st->ExprType);
    Py_VISIT(st->ColumnType);
    Py_VISIT(st->QueryType);
    Py_VISIT(st->ShapeType);
    return 0;
}

void pycorm_model_clear(pycorm_state *st)
{
    Py_CLEAR(st->RegistryType);
    Py_CLEAR(st->TableType);
    Py_CLEAR(st->ModelBaseType);
    Py_CLEAR(st->ExprType);
    Py_CLEAR(st->ColumnType);
    Py_CLEAR(st->QueryType);
    Py_CLEAR(st->ShapeType);
}
