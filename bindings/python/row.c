/*
 * row.c - cormorant.Row: one result row, its items inline (asyncpg's
 * Record shape), with a column description shared by every row of a result.
 * Index, name and attribute access; len, iteration, comparison as a tuple.
 */
#include "pycorm.h"

#include <stddef.h>
#include <string.h>

typedef struct {
    PyObject_VAR_HEAD
    PyObject *desc;     /* (names tuple, {name: index}), shared per result */
    PyObject *items[1];
} RowObject;

static PyObject *make_desc(const corm_result *r)
{
    int ncols = corm_result_ncols(r);
    PyObject *names = PyTuple_New(ncols);
    PyObject *index = PyDict_New();
    if (!names || !index)
        goto fail;
    for (int c = 0; c < ncols; c++) {
        const char *n = corm_result_colname(r, c);
        PyObject *name = PyUnicode_DecodeUTF8(n ? n : "?", (Py_ssize_t)strlen(n ? n : "?"),
                                              "replace");
        if (!name)
            goto fail;
        PyUnicode_InternInPlace(&name);
        PyTuple_SET_ITEM(names, c, name);
        /* Duplicate names: the first column wins, as in SQL's ORDER BY. */
        int has = PyDict_Contains(index, name);
        if (has < 0)
            goto fail;
        if (!has) {
            PyObject *i = PyLong_FromLong(c);
            if (!i || PyDict_SetItem(index, name, i) < 0) {
                Py_XDECREF(i);
                goto fail;
            }
            Py_DECREF(i);
        }
    }
    PyObject *desc = PyTuple_Pack(2, names, index);
    Py_DECREF(names);
    Py_DECREF(index);
    return desc;
fail:
    Py_XDECREF(names);
    Py_XDECREF(index);
    return NULL;
}

/* Whether desc names exactly r's columns, in order. */
static bool desc_matches(PyObject *desc, const corm_result *r)
{
    PyObject *names = PyTuple_GET_ITEM(desc, 0);
    int ncols = corm_result_ncols(r);
    if (PyTuple_GET_SIZE(names) != ncols)
        return false;
    for (int c = 0; c < ncols; c++) {
        const char *n = corm_result_colname(r, c);
        const char *have = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, c));
        if (!n || !have || strcmp(n, have) != 0) {
            PyErr_Clear();
            return false;
        }
    }
    return true;
}

/* Descriptions are shared across results with the same columns (the same
 * statement, run again): building one costs more than decoding a short
 * row. A few recent ones are kept, by a hash of the names. */
PyObject *pycorm_row_desc(pycorm_state *st, const corm_result *r)
{
    uint32_t h = 2166136261u;
    int ncols = corm_result_ncols(r);
    for (int c = 0; c < ncols; c++) {
        const char *n = corm_result_colname(r, c);
        for (const char *p = n ? n : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ 0xff) * 16777619u;
    }
    PyObject **slot = &st->row_descs[h % PYCORM_ROW_DESCS];
    if (*slot && desc_matches(*slot, r))
        return Py_NewRef(*slot);
    PyObject *desc = make_desc(r);
    if (desc)
        Py_XSETREF(*slot, Py_NewRef(desc));
    return desc;
}

PyObject *pycorm_row_new(pycorm_state *st, PyObject *desc, Py_ssize_t n)
{
    RowObject *row = (RowObject *)st->RowType->tp_alloc(st->RowType, n);
    if (!row)
        return NULL;
    row->desc = Py_NewRef(desc);
    return (PyObject *)row;
}

void pycorm_row_set(PyObject *row, Py_ssize_t i, PyObject *v)
{
    ((RowObject *)row)->items[i] = v;
}

static PyObject *row_names(RowObject *self)
{
    return PyTuple_GET_ITEM(self->desc, 0);
}

static PyObject *row_index(RowObject *self)
{
    return PyTuple_GET_ITEM(self->desc, 1);
}

static int row_traverse(RowObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->desc);
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++)
        Py_VISIT(self->items[i]);
    return 0;
}

static int row_clear(RowObject *self)
{
    Py_CLEAR(self->desc);
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++)
        Py_CLEAR(self->items[i]);
    return 0;
}

static void row_dealloc(RowObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, row_dealloc)
    row_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

static Py_ssize_t row_len(RowObject *self)
{
    return Py_SIZE(self);
}

static PyObject *row_item(RowObject *self, Py_ssize_t i)
{
    if (i < 0 || i >= Py_SIZE(self)) {
        PyErr_SetString(PyExc_IndexError, "row index out of range");
        return NULL;
    }
    return Py_NewRef(self->items[i] ? self->items[i] : Py_None);
}

static PyObject *row_as_tuple(RowObject *self)
{
    PyObject *t = PyTuple_New(Py_SIZE(self));
    if (!t)
        return NULL;
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(self->items[i] ? self->items[i] : Py_None));
    return t;
}

/* Column by name: new reference, or NULL without an exception when absent. */
static PyObject *row_lookup(RowObject *self, PyObject *name)
{
    PyObject *i = PyDict_GetItemWithError(row_index(self), name);
    if (!i)
        return NULL;
    return row_item(self, PyLong_AsSsize_t(i));
}

static PyObject *row_subscript(RowObject *self, PyObject *key)
{
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred())
            return NULL;
        if (i < 0)
            i += Py_SIZE(self);
        return row_item(self, i);
    }
    if (PyUnicode_Check(key)) {
        PyObject *v = row_lookup(self, key);
        if (!v && !PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return v;
    }
    if (PySlice_Check(key)) {
        PyObject *t = row_as_tuple(self);
        if (!t)
            return NULL;
        PyObject *s = PyObject_GetItem(t, key);
        Py_DECREF(t);
        return s;
    }
    PyErr_Format(PyExc_TypeError, "row indices must be integers, slices or column names, not %.100s",
                 Py_TYPE(key)->tp_name);
    return NULL;
}

static int row_contains(RowObject *self, PyObject *v)
{
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        int eq = PyObject_RichCompareBool(self->items[i], v, Py_EQ);
        if (eq != 0)
            return eq;
    }
    return 0;
}

static PyObject *row_getattro(RowObject *self, PyObject *name)
{
    /* Columns first, so row.count works; then methods and dunders. */
    if (PyUnicode_Check(name)) {
        PyObject *v = row_lookup(self, name);
        if (v || PyErr_Occurred())
            return v;
    }
    return PyObject_GenericGetAttr((PyObject *)self, name);
}

static PyObject *row_iter(RowObject *self)
{
    PyObject *t = row_as_tuple(self);
    if (!t)
        return NULL;
    PyObject *it = PyObject_GetIter(t);
    Py_DECREF(t);
    return it;
}

static PyObject *row_richcompare(RowObject *self, PyObject *other, int op)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject *b;
    if (Py_TYPE(other) == tp)
        b = row_as_tuple((RowObject *)other);
    else if (PyTuple_Check(other))
        b = Py_NewRef(other);
    else
        Py_RETURN_NOTIMPLEMENTED;
    if (!b)
        return NULL;
    PyObject *a = row_as_tuple(self);
    if (!a) {
        Py_DECREF(b);
        return NULL;
    }
    PyObject *res = PyObject_RichCompare(a, b, op);
    Py_DECREF(a);
    Py_DECREF(b);
    return res;
}

static Py_hash_t row_hash(RowObject *self)
{
    PyObject *t = row_as_tuple(self);
    if (!t)
        return -1;
    Py_hash_t h = PyObject_Hash(t);
    Py_DECREF(t);
    return h;
}

static PyObject *row_repr(RowObject *self)
{
    int rc = Py_ReprEnter((PyObject *)self);
    if (rc != 0)
        return rc > 0 ? PyUnicode_FromString("<Row ...>") : NULL;
    PyObject *parts = PyList_New(0), *res = NULL;
    if (!parts)
        goto done;
    PyObject *names = row_names(self);
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        PyObject *s = PyUnicode_FromFormat("%U=%R", PyTuple_GET_ITEM(names, i),
                                           self->items[i] ? self->items[i] : Py_None);
        if (!s || PyList_Append(parts, s) < 0) {
            Py_XDECREF(s);
            goto done;
        }
        Py_DECREF(s);
    }
    PyObject *sep = PyUnicode_FromString(" ");
    PyObject *body = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    if (body) {
        res = PyUnicode_GET_LENGTH(body) ? PyUnicode_FromFormat("<Row %U>", body)
                                         : PyUnicode_FromString("<Row>");
        Py_DECREF(body);
    }
done:
    Py_XDECREF(parts);
    Py_ReprLeave((PyObject *)self);
    return res;
}

static PyObject *row_keys(RowObject *self, PyObject *unused)
{
    return Py_NewRef(row_names(self));
}

static PyObject *row_values(RowObject *self, PyObject *unused)
{
    return row_as_tuple(self);
}

static PyObject *row_items(RowObject *self, PyObject *unused)
{
    PyObject *names = row_names(self);
    PyObject *list = PyList_New(Py_SIZE(self));
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(names, i),
                                      self->items[i] ? self->items[i] : Py_None);
        if (!pair) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
}

static PyObject *row_get(RowObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(name, default=None)");
        return NULL;
    }
    PyObject *v = row_lookup(self, args[0]);
    if (v || PyErr_Occurred())
        return v;
    return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

static PyObject *row_as_dict(RowObject *self, PyObject *unused)
{
    PyObject *names = row_names(self);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    for (Py_ssize_t i = Py_SIZE(self) - 1; i >= 0; i--) /* first duplicate wins */
        if (PyDict_SetItem(d, PyTuple_GET_ITEM(names, i),
                           self->items[i] ? self->items[i] : Py_None) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    return d;
}

static PyObject *row_reduce(RowObject *self, PyObject *unused)
{
    /* Pickles as a plain tuple: a Row needs its result to exist. */
    PyObject *t = row_as_tuple(self);
    if (!t)
        return NULL;
    PyObject *r = Py_BuildValue("(O(N))", (PyObject *)&PyTuple_Type, t);
    return r;
}

static PyMethodDef row_methods[] = {
    {"keys", (PyCFunction)row_keys, METH_NOARGS, "The column names, in order."},
    {"values", (PyCFunction)row_values, METH_NOARGS, "The values as a tuple."},
    {"items", (PyCFunction)row_items, METH_NOARGS, "(name, value) pairs, in order."},
    {"get", (PyCFunction)(void (*)(void))row_get, METH_FASTCALL,
     "get(name, default=None): the value of column name, or default."},
    {"as_dict", (PyCFunction)row_as_dict, METH_NOARGS, "{name: value}."},
    {"__reduce__", (PyCFunction)row_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot row_slots[] = {
    {Py_tp_dealloc, row_dealloc},
    {Py_tp_traverse, row_traverse},
    {Py_tp_clear, row_clear},
    {Py_tp_getattro, row_getattro},
    {Py_tp_iter, row_iter},
    {Py_tp_richcompare, row_richcompare},
    {Py_tp_hash, row_hash},
    {Py_tp_repr, row_repr},
    {Py_tp_methods, row_methods},
    {Py_tp_doc, "A result row: row[0], row['name'], row.name, len(row), iteration; "
                "compares equal to the tuple of its values."},
    {Py_sq_length, row_len},
    {Py_sq_item, row_item},
    {Py_sq_contains, row_contains},
    {Py_mp_length, row_len},
    {Py_mp_subscript, row_subscript},
    {0, NULL},
};

static PyType_Spec row_spec = {
    .name = "cormorant.Row",
    .basicsize = offsetof(RowObject, items),
    .itemsize = sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = row_slots,
};

int pycorm_row_init(PyObject *module, pycorm_state *st)
{
    st->RowType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &row_spec, NULL);
    if (!st->RowType)
        return -1;
    return PyModule_AddObjectRef(module, "Row", (PyObject *)st->RowType);
}
