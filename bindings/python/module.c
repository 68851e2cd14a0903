/*
 * module.c - cormorant._core: multi-phase init, module state, and the one
 * function that maps a corm_error to a Python exception.
 */
#include "pycorm.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- exceptions, from CORM_ERRNO_MAP ---------------------------------- */

/* The Python name of each engine error class. A class appended to the map
 * without an entry here still gets one: its lowercase name in CamelCase
 * plus "Error" ("not_found" -> "NotFoundError"). */
static const struct {
    const char *lname;
    const char *pyname;
} exc_names[] = {
    {"connection", "ConnectionError"},
    {"timeout", "Timeout"},
    {"cancelled", "QueryCanceled"},
    {"integrity", "IntegrityError"},
    {"data", "DataError"},
    {"programming", "ProgrammingError"},
    {"misuse", "InterfaceError"},
    {"nomem", "OutOfMemory"},
    {"internal", "InternalError"},
    {"operational", "OperationalError"},
    {"transaction", "TransactionError"},
    {"not_found", "NotFound"},
    {"multiple_found", "MultipleFound"},
};

static const struct {
    int code;
    const char *lname;
    const char *desc;
} exc_table[] = {
#define XX(name, value, lname, desc) {value, lname, desc},
    CORM_ERRNO_MAP(XX)
#undef XX
};

static void py_name_for(const char *lname, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof exc_names / sizeof exc_names[0]; i++)
        if (!strcmp(exc_names[i].lname, lname)) {
            snprintf(buf, size, "%s", exc_names[i].pyname);
            return;
        }
    size_t n = 0;
    bool up = true;
    for (const char *p = lname; *p && n + 6 < size; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        buf[n++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
        up = false;
    }
    snprintf(buf + n, size - n, "Error");
}

/* The builtin a class also derives from, so `except TimeoutError` and
 * `except MemoryError` catch ours. NULL for none. */
static PyObject *builtin_base_for(int code)
{
    switch (code) {
    case CORM_ECONNECTION:
        return PyExc_ConnectionError;
    case CORM_ETIMEOUT:
        return PyExc_TimeoutError;
    case CORM_ENOMEM:
        return PyExc_MemoryError;
    default:
        return NULL;
    }
}

static int make_exceptions(PyObject *m, pycorm_state *st)
{
    PyObject *dict = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:s}", "sqlstate", Py_None, "detail",
                                   Py_None, "hint", Py_None, "code", Py_None, "code_name",
                                   Py_None, "__module__", "cormorant");
    if (!dict)
        return -1;
    st->Error = PyErr_NewExceptionWithDoc(
        "cormorant.Error",
        "Root of Cormorant's errors. Attributes: sqlstate (five characters, or None when "
        "the error did not come from the server), detail, hint (the server's, or None), "
        "code_name (the engine's class name, e.g. 'integrity').",
        PyExc_Exception, dict);
    Py_DECREF(dict);
    if (!st->Error || PyModule_AddObjectRef(m, "Error", st->Error) < 0)
        return -1;
    PyObject *errors = PyDict_New();
    if (!errors)
        return -1;
    for (size_t i = 0; i < sizeof exc_table / sizeof exc_table[0]; i++) {
        int code = exc_table[i].code;
        char name[64], qual[80];
        py_name_for(exc_table[i].lname, name, sizeof name);
        snprintf(qual, sizeof qual, "cormorant.%s", name);
        PyObject *extra = builtin_base_for(code);
        PyObject *bases = extra ? PyTuple_Pack(2, st->Error, extra) : PyTuple_Pack(1, st->Error);
        PyObject *cdict = bases ? Py_BuildValue("{s:s,s:s}", "__module__", "cormorant",
                                                "code_name", exc_table[i].lname)
                                : NULL;
        PyObject *cls = cdict ? PyErr_NewExceptionWithDoc(qual, exc_table[i].desc, bases, cdict)
                              : NULL;
        Py_XDECREF(bases);
        Py_XDECREF(cdict);
        if (!cls)
            goto fail;
        st->exc[-code] = cls;
        if (PyModule_AddObjectRef(m, name, cls) < 0 ||
            PyDict_SetItemString(errors, exc_table[i].lname, cls) < 0)
            goto fail;
    }
    if (PyModule_AddObjectRef(m, "ERRORS", errors) < 0)
        goto fail;
    Py_DECREF(errors);
    return 0;
fail:
    Py_DECREF(errors);
    return -1;
}

static PyObject *str_or_none(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

PyObject *pycorm_error_object(pycorm_state *st, const corm_error *err)
{
    int code = err->code;
    PyObject *cls = code < 0 && code >= -PYCORM_NCODES && st->exc[-code] ? st->exc[-code]
                                                                          : st->Error;
    PyObject *msg = str_or_none(err->message ? err->message : corm_strerror(code));
    if (!msg)
        return NULL;
    PyObject *exc = PyObject_CallOneArg(cls, msg);
    Py_DECREF(msg);
    if (!exc)
        return NULL;
    PyObject *v;
    if (!(v = err->sqlstate[0] ? PyUnicode_FromString(err->sqlstate) : Py_NewRef(Py_None)) ||
        PyObject_SetAttr(exc, st->s_sqlstate, v) < 0)
        goto fail;
    Py_DECREF(v);
    if (!(v = str_or_none(err->detail)) || PyObject_SetAttr(exc, st->s_detail, v) < 0)
        goto fail;
    Py_DECREF(v);
    if (!(v = str_or_none(err->hint)) || PyObject_SetAttr(exc, st->s_hint, v) < 0)
        goto fail;
    Py_DECREF(v);
    if (!(v = PyUnicode_FromString(corm_errname(code))) ||
        PyObject_SetAttr(exc, st->s_code_name, v) < 0)
        goto fail;
    Py_DECREF(v);
    if (!(v = PyLong_FromLong(code)) || PyObject_SetAttr(exc, st->s_code, v) < 0)
        goto fail;
    Py_DECREF(v);
    return exc;
fail:
    Py_XDECREF(v);
    Py_DECREF(exc);
    return NULL;
}

PyObject *pycorm_raise(pycorm_state *st, const corm_error *err)
{
    if (err->code == CORM_ENOMEM)
        return PyErr_NoMemory();
    PyObject *exc = pycorm_error_object(st, err);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *pycorm_raise_code(pycorm_state *st, int code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    corm_error e = CORM_ERROR_INIT;
    e.code = code;
    e.message = buf; /* borrowed: e is never cleared */
    return pycorm_raise(st, &e);
}

/* ---- module ------------------------------------------------------------ */

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
    return PyUnicode_FromString(corm_version());
}

static PyObject *mod_error_class_of_sqlstate(PyObject *m, PyObject *arg)
{
    pycorm_state *st = PyModule_GetState(m);
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s)
        return NULL;
    int code = corm_error_class_of_sqlstate(s);
    PyObject *cls = code < 0 && code >= -PYCORM_NCODES && st->exc[-code] ? st->exc[-code]
                                                                          : st->Error;
    return Py_NewRef(cls);
}

static PyMethodDef mod_methods[] = {
    {"version", mod_version, METH_NOARGS, "The version of the linked libcorm."},
    {"error_class_of_sqlstate", mod_error_class_of_sqlstate, METH_O,
     "The exception class the engine gives a server error with this SQLSTATE."},
    {NULL, NULL, 0, NULL},
};

static int intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot ? 0 : -1;
}

static int mod_exec(PyObject *m)
{
    pycorm_state *st = PyModule_GetState(m);
#define I(field, s)                       \
    if (intern(&st->field, s) < 0)        \
        return -1;
    I(s_create_future, "create_future")
    I(s_add_reader, "add_reader")
    I(s_remove_reader, "remove_reader")
    I(s_add_writer, "add_writer")
    I(s_remove_writer, "remove_writer")
    I(s_call_at, "call_at")
    I(s_call_soon, "call_soon")
    I(s_time, "time")
    I(s_cancel, "cancel")
    I(s_set_result, "set_result")
    I(s_set_exception, "set_exception")
    I(s_add_done_callback, "add_done_callback")
    I(s_cancelled, "cancelled")
    I(s_bytes, "bytes")
    I(s_int, "int")
    I(s_utcoffset, "utcoffset")
    I(s_isoformat, "isoformat")
    I(s_sqlstate, "sqlstate")
    I(s_detail, "detail")
    I(s_hint, "hint")
    I(s_code_name, "code_name")
    I(s_code, "code")
    I(s_message, "message")
    I(s_is_safe, "is_safe")
#undef I
    if (make_exceptions(m, st) < 0)
        return -1;
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    if (!asyncio)
        return -1;
    st->get_running_loop = PyObject_GetAttrString(asyncio, "get_running_loop");
    Py_DECREF(asyncio);
    if (!st->get_running_loop)
        return -1;
    if (pycorm_convert_init(m, st) < 0 || pycorm_row_init(m, st) < 0 ||
        pycorm_pool_init(m, st) < 0 || pycorm_model_init(m, st) < 0)
        return -1;
    if (PyModule_AddStringConstant(m, "LIBCORM_VERSION", corm_version()) < 0)
        return -1;
    return 0;
}

static int mod_traverse(PyObject *m, visitproc visit, void *arg)
{
    pycorm_state *st = PyModule_GetState(m);
    if (!st)
        return 0;
    Py_VISIT(st->PoolType);
    Py_VISIT(st->ConnType);
    Py_VISIT(st->RowType);
    Py_VISIT(st->RequestType);
    Py_VISIT(st->FutureType);
    Py_VISIT(st->future_cancel);
    Py_VISIT(st->kw_loop);
    Py_VISIT(st->Error);
    for (int i = 0; i <= PYCORM_NCODES; i++)
        Py_VISIT(st->exc[i]);
    Py_VISIT(st->utc);
    Py_VISIT(st->timezone);
    Py_VISIT(st->date_max);
    Py_VISIT(st->date_min);
    Py_VISIT(st->datetime_max);
    Py_VISIT(st->datetime_min);
    Py_VISIT(st->Decimal);
    Py_VISIT(st->UUID);
    Py_VISIT(st->json_loads);
    for (int i = 0; i < PYCORM_JSON_KEYS; i++)
        Py_VISIT(st->json_keys[i]);
    for (int i = 0; i < PYCORM_ROW_DESCS; i++)
        Py_VISIT(st->row_descs[i]);
    Py_VISIT(st->uuid_int_slot);
    Py_VISIT(st->uuid_safe_slot);
    Py_VISIT(st->uuid_safe_unknown);
    Py_VISIT(st->json_dumps);
    Py_VISIT(st->get_running_loop);
    return pycorm_model_traverse(st, visit, arg);
}

static int mod_clear(PyObject *m)
{
    pycorm_state *st = PyModule_GetState(m);
    if (!st)
        return 0;
    Py_CLEAR(st->PoolType);
    Py_CLEAR(st->ConnType);
    Py_CLEAR(st->RowType);
    Py_CLEAR(st->RequestType);
    Py_CLEAR(st->FutureType);
    Py_CLEAR(st->future_cancel);
    Py_CLEAR(st->kw_loop);
    Py_CLEAR(st->Error);
    for (int i = 0; i <= PYCORM_NCODES; i++)
        Py_CLEAR(st->exc[i]);
    Py_CLEAR(st->utc);
    Py_CLEAR(st->timezone);
    Py_CLEAR(st->date_max);
    Py_CLEAR(st->date_min);
    Py_CLEAR(st->datetime_max);
    Py_CLEAR(st->datetime_min);
    Py_CLEAR(st->Decimal);
    Py_CLEAR(st->UUID);
    Py_CLEAR(st->json_loads);
    for (int i = 0; i < PYCORM_JSON_KEYS; i++)
        Py_CLEAR(st->json_keys[i]);
    for (int i = 0; i < PYCORM_ROW_DESCS; i++)
        Py_CLEAR(st->row_descs[i]);
    Py_CLEAR(st->uuid_int_slot);
    Py_CLEAR(st->uuid_safe_slot);
    Py_CLEAR(st->uuid_safe_unknown);
    Py_CLEAR(st->json_dumps);
    Py_CLEAR(st->get_running_loop);
    pycorm_model_clear(st);
    PyObject **names[] = {
        &st->s_create_future, &st->s_add_reader, &st->s_remove_reader, &st->s_add_writer,
        &st->s_remove_writer, &st->s_call_at,    &st->s_call_soon,     &st->s_time,
        &st->s_cancel,        &st->s_set_result, &st->s_set_exception, &st->s_add_done_callback,
        &st->s_cancelled,     &st->s_bytes,      &st->s_int,           &st->s_utcoffset,
        &st->s_isoformat,     &st->s_sqlstate,   &st->s_detail,        &st->s_hint,
        &st->s_code_name,     &st->s_code,       &st->s_message,       &st->s_is_safe,
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        Py_CLEAR(*names[i]);
    return 0;
}

static void mod_free(void *m)
{
    mod_clear((PyObject *)m);
}

static PyModuleDef_Slot mod_slots[] = {
    {Py_mod_exec, mod_exec},
    {0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cormorant._core",
    .m_doc = "The C engine of Cormorant: libcorm with its asyncio adapter.",
    .m_size = sizeof(pycorm_state),
    .m_methods = mod_methods,
    .m_slots = mod_slots,
    .m_traverse = mod_traverse,
    .m_clear = mod_clear,
    .m_free = mod_free,
};

pycorm_state *pycorm_state_of_type(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *m = PyType_GetModuleByDef(tp, &mod_def);
#else
    /* 3.10: our types are final, so the defining module is tp's own. */
    PyObject *m = PyType_GetModule(tp);
#endif
    return m ? PyModule_GetState(m) : NULL;
}

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&mod_def);
}
