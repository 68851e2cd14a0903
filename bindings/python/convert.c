/*
 * convert.c - Python objects <-> corm_value: parameters in, cells out, and
 * the one loop that turns a result into rows. All type logic of the Python
 * binding lives here.
 */
#include "pycorm.h"

#include <math.h>

#include <datetime.h>
#include <stdio.h>
#include <string.h>

#define DT(st) ((PyDateTime_CAPI *)(st)->dt)

enum { USEC_PER_SEC = 1000000 };
#define USEC_PER_DAY INT64_C(86400000000)
/* Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define PG_EPOCH_DAYS 10957

/* ---- calendar (Howard Hinnant's days_from_civil / civil_from_days) ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- setup -------------------------------------------------------------- */

static PyObject *import_attr(const char *mod, const char *attr)
{
    PyObject *m = PyImport_ImportModule(mod);
    if (!m)
        return NULL;
    PyObject *a = PyObject_GetAttrString(m, attr);
    Py_DECREF(m);
    return a;
}

/* A slot of `cls` that can be set directly (a member descriptor), or NULL. */
static PyObject *settable_slot(PyObject *cls, const char *name)
{
    PyObject *d = PyDict_GetItemString(((PyTypeObject *)cls)->tp_dict, name);
    if (!d || !Py_TYPE(d)->tp_descr_set || !PyObject_TypeCheck(d, &PyMemberDescr_Type))
        return NULL;
    return Py_NewRef(d);
}

/* UUID(bytes=...) runs UUID.__init__ in Python: about a microsecond a
 * value, the dearest step of a row. A UUID is two slots (int, is_safe),
 * so results fill them directly; where this Python's uuid module is not
 * shaped so, the constructor is kept. */
static int fast_uuid_init(pycorm_state *st)
{
    PyTypeObject *tp = (PyTypeObject *)st->UUID;
    if (!PyType_Check(st->UUID) || tp->tp_new != PyBaseObject_Type.tp_new)
        return 0;
    PyObject *safe = import_attr("uuid", "SafeUUID");
    if (!safe) {
        PyErr_Clear();
        return 0;
    }
    st->uuid_safe_unknown = PyObject_GetAttrString(safe, "unknown");
    Py_DECREF(safe);
    st->uuid_int_slot = settable_slot(st->UUID, "int");
    st->uuid_safe_slot = settable_slot(st->UUID, "is_safe");
    if (!st->uuid_safe_unknown || !st->uuid_int_slot || !st->uuid_safe_slot) {
        PyErr_Clear();
        Py_CLEAR(st->uuid_safe_unknown);
        Py_CLEAR(st->uuid_int_slot);
        Py_CLEAR(st->uuid_safe_slot);
    }
    return 0;
}

int pycorm_convert_init(PyObject *module, pycorm_state *st)
{
    (void)PyDateTimeAPI; /* datetime.h's static; we keep the API in module state */
    st->dt = PyCapsule_Import(PyDateTime_CAPSULE_NAME, 0);
    if (!st->dt)
        return -1;
    PyDateTime_CAPI *api = DT(st);
    st->utc = Py_NewRef(api->TimeZone_UTC);
    st->timezone = import_attr("datetime", "timezone");
    if (!st->timezone)
        return -1;
    st->date_max = PyObject_GetAttrString((PyObject *)api->DateType, "max");
    st->date_min = PyObject_GetAttrString((PyObject *)api->DateType, "min");
    st->datetime_max = api->DateTime_FromDateAndTime(9999, 12, 31, 23, 59, 59, 999999, st->utc,
                                                     api->DateTimeType);
    st->datetime_min =
        api->DateTime_FromDateAndTime(1, 1, 1, 0, 0, 0, 0, st->utc, api->DateTimeType);
    if (!st->date_max || !st->date_min || !st->datetime_max || !st->datetime_min)
        return -1;
    if (!(st->Decimal = import_attr("decimal", "Decimal")) ||
        !(st->UUID = import_attr("uuid", "UUID")) ||
        !(st->json_loads = import_attr("json", "loads")) ||
        !(st->json_dumps = import_attr("json", "dumps")))
        return -1;
    if (fast_uuid_init(st) < 0)
        return -1;
    return 0;
}

/* ---- parameters ---------------------------------------------------------- */

/* A UUID's 16 bytes from its int slot; -1 (nothing raised) when the slot
 * does not hold a 128-bit int, and the caller asks UUID.bytes instead. */
static int uuid_from_slot(pycorm_state *st, PyObject *o, uint8_t out[16])
{
    PyObject *n = Py_TYPE(st->uuid_int_slot)->tp_descr_get(st->uuid_int_slot, o,
                                                           (PyObject *)Py_TYPE(o));
    if (!n || !PyLong_CheckExact(n)) {
        Py_XDECREF(n);
        PyErr_Clear();
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t need = PyLong_AsNativeBytes(n, out, 16,
                                           Py_ASNATIVEBYTES_BIG_ENDIAN |
                                               Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                                               Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    int rc = need < 0 || need > 16 ? -1 : 0;
#else
    int rc = _PyLong_AsByteArray((PyLongObject *)n, out, 16, 0, 0);
#endif
    Py_DECREF(n);
    if (rc < 0)
        PyErr_Clear();
    return rc < 0 ? -1 : 0;
}

static int bad_param(pycorm_state *st, Py_ssize_t i, const char *what, PyObject *o)
{
    pycorm_raise_code(st, CORM_EDATA, "parameter $%zd: %s (got %.100s)", i + 1, what,
                      Py_TYPE(o)->tp_name);
    return -1;
}

/* Microseconds of a time of day. */
static int64_t tod_usec(int h, int m, int s, int us)
{
    return ((int64_t)h * 3600 + m * 60 + s) * USEC_PER_SEC + us;
}

/* utcoffset() of a datetime or time as seconds east of UTC; 1 when aware,
 * 0 when naive, -1 on error. */
static int utc_offset(pycorm_state *st, PyObject *o, PyObject *tzinfo, int64_t *usec)
{
    if (tzinfo == Py_None)
        return 0;
    if (tzinfo == st->utc) {
        /* timezone.utc, the common case: no method call. */
        *usec = 0;
        return 1;
    }
    PyObject *off = PyObject_CallMethodNoArgs(o, st->s_utcoffset);
    if (!off)
        return -1;
    if (off == Py_None) {
        Py_DECREF(off);
        return 0;
    }
    if (!PyObject_TypeCheck(off, DT(st)->DeltaType)) {
        Py_DECREF(off);
        PyErr_SetString(PyExc_TypeError, "utcoffset() did not return a timedelta");
        return -1;
    }
    *usec = (int64_t)PyDateTime_DELTA_GET_DAYS(off) * USEC_PER_DAY +
            (int64_t)PyDateTime_DELTA_GET_SECONDS(off) * USEC_PER_SEC +
            PyDateTime_DELTA_GET_MICROSECONDS(off);
    Py_DECREF(off);
    return 1;
}

void pycorm_hold_release(pycorm_hold *h)
{
    if (h->have_view)
        PyBuffer_Release(&h->view);
    h->have_view = false;
    Py_CLEAR(h->tmp);
}

int pycorm_value_from_py(pycorm_state *st, PyObject *o, Py_ssize_t i, corm_value *out,
                         pycorm_hold *h)
{
    PyDateTime_CAPI *api = DT(st);
    corm_value v;
    memset(&v, 0, sizeof v);
    PyObject *tmp = NULL;
    Py_buffer view = {0};
    bool have_view = false;
    int rc = -1;

    if (o == Py_None) {
        v.kind = CORM_NULL;
    } else if (PyBool_Check(o)) {
        v.kind = CORM_BOOL;
        v.v.b = o == Py_True;
    } else if (PyLong_Check(o)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow)
            return bad_param(st, i, "integer out of range for int8", o);
        if (x == -1 && PyErr_Occurred())
            return -1;
        v.kind = CORM_INT;
        v.v.i = x;
    } else if (PyFloat_Check(o)) {
        v.kind = CORM_FLOAT;
        v.v.f = PyFloat_AS_DOUBLE(o);
    } else if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s)
            return -1;
        /* Untyped, as in the Lua binding: the server infers the type from
         * the statement, so a str can fill an enum, uuid or int column. */
        v.kind = CORM_TEXT;
        v.oid = 0;
        v.v.str.ptr = s;
        v.v.str.len = (size_t)n;
    } else if (PyBytes_Check(o)) {
        v.kind = CORM_BYTES;
        v.v.str.ptr = PyBytes_AS_STRING(o);
        v.v.str.len = (size_t)PyBytes_GET_SIZE(o);
    } else if (PyByteArray_Check(o) || PyMemoryView_Check(o)) {
        if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0)
            return -1;
        have_view = true;
        v.kind = CORM_BYTES;
        v.v.str.ptr = view.buf ? view.buf : "";
        v.v.str.len = (size_t)view.len;
    } else if (PyObject_TypeCheck(o, api->DateTimeType)) {
        int64_t days = days_from_civil(PyDateTime_GET_YEAR(o), PyDateTime_GET_MONTH(o),
                                       PyDateTime_GET_DAY(o)) -
                       PG_EPOCH_DAYS;
        int64_t usec = days * USEC_PER_DAY +
                       tod_usec(PyDateTime_DATE_GET_HOUR(o), PyDateTime_DATE_GET_MINUTE(o),
                                PyDateTime_DATE_GET_SECOND(o),
                                PyDateTime_DATE_GET_MICROSECOND(o));
        int64_t off = 0;
        int aware = utc_offset(st, o, PyDateTime_DATE_GET_TZINFO(o), &off);
        if (aware < 0)
            return -1;
        /* Aware: the instant, in UTC, as timestamptz; naive: timestamp. */
        v.kind = aware ? CORM_TIMESTAMPTZ : CORM_TIMESTAMP;
        v.v.i = usec - off;
    } else if (PyObject_TypeCheck(o, api->DateType)) {
        v.kind = CORM_DATE;
        v.v.i = days_from_civil(PyDateTime_GET_YEAR(o), PyDateTime_GET_MONTH(o),
                                PyDateTime_GET_DAY(o)) -
                PG_EPOCH_DAYS;
    } else if (PyObject_TypeCheck(o, api->TimeType)) {
        int64_t usec = tod_usec(PyDateTime_TIME_GET_HOUR(o), PyDateTime_TIME_GET_MINUTE(o),
                                PyDateTime_TIME_GET_SECOND(o),
                                PyDateTime_TIME_GET_MICROSECOND(o));
        int64_t off = 0;
        int aware = utc_offset(st, o, PyDateTime_TIME_GET_TZINFO(o), &off);
        if (aware < 0)
            return -1;
        if (aware) {
            v.kind = CORM_TIMETZ;
            v.v.tz.usec = usec;
            v.v.tz.zone = (int32_t)(off / USEC_PER_SEC);
        } else {
            v.kind = CORM_TIME;
            v.v.i = usec;
        }
    } else if (PyObject_TypeCheck(o, api->DeltaType)) {
        v.kind = CORM_INTERVAL;
        v.v.interval.days = PyDateTime_DELTA_GET_DAYS(o);
        v.v.interval.months = 0;
        v.v.interval.usec = (int64_t)PyDateTime_DELTA_GET_SECONDS(o) * USEC_PER_SEC +
                            PyDateTime_DELTA_GET_MICROSECONDS(o);
    } else if (PyObject_TypeCheck(o, (PyTypeObject *)st->Decimal)) {
        /* The exact decimal text ("12.50", "1E+3", "NaN"); libcorm parses it. */
        tmp = PyObject_Str(o);
        if (!tmp)
            return -1;
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(tmp, &n);
        if (!s)
            goto done;
        v.kind = CORM_NUMERIC;
        v.v.str.ptr = s;
        v.v.str.len = (size_t)n;
    } else if (Py_IS_TYPE(o, (PyTypeObject *)st->UUID) && st->uuid_int_slot &&
               uuid_from_slot(st, o, v.v.uuid) == 0) {
        /* The int slot, read directly: UUID.bytes is Python code. */
        v.kind = CORM_UUID;
    } else if (PyObject_TypeCheck(o, (PyTypeObject *)st->UUID)) {
        tmp = PyObject_GetAttr(o, st->s_bytes);
        if (!tmp)
            return -1;
        if (!PyBytes_Check(tmp) || PyBytes_GET_SIZE(tmp) != 16) {
            bad_param(st, i, "UUID.bytes is not 16 bytes", o);
            goto done;
        }
        v.kind = CORM_UUID;
        memcpy(v.v.uuid, PyBytes_AS_STRING(tmp), 16);
    } else if (PyDict_Check(o) || PyList_Check(o)) {
        tmp = pycorm_json_dumps(st, o);
        if (!tmp) {
            if (PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                return bad_param(st, i, "cannot be encoded as JSON", o);
            }
            return -1;
        }
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(tmp, &n);
        if (!s)
            goto done;
        v.kind = CORM_JSON;
        v.v.str.ptr = s;
        v.v.str.len = (size_t)n;
    } else {
        return bad_param(st, i, "unsupported parameter type", o);
    }

    /* v borrows from tmp or view: the caller's hold keeps them. */
    *out = v;
    h->tmp = tmp;
    h->view = view;
    h->have_view = have_view;
    return 0;
done:
    if (have_view)
        PyBuffer_Release(&view);
    Py_XDECREF(tmp);
    return rc;
}

static int bind_one(pycorm_state *st, corm_query *q, PyObject *o, Py_ssize_t i)
{
    corm_value v;
    pycorm_hold h = {0};
    if (pycorm_value_from_py(st, o, i, &v, &h) < 0)
        return -1;
    int rc = 0;
    corm_error err = CORM_ERROR_INIT;
    if (corm_query_bind(q, &v, &err) < 0) {
        pycorm_raise(st, &err);
        corm_error_clear(&err);
        rc = -1;
    }
    pycorm_hold_release(&h);
    return rc;
}

int pycorm_bind_args(pycorm_state *st, corm_query *q, PyObject *const *args, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (bind_one(st, q, args[i], i) < 0)
            return -1;
    return 0;
}

/* ---- cells ---------------------------------------------------------------- */

static PyObject *out_of_range(pycorm_state *st, const char *what)
{
    return pycorm_raise_code(st, CORM_EDATA, "%s is out of the range of Python's datetime",
                             what);
}

static PyObject *make_date(pycorm_state *st, int64_t pgdays)
{
    if (pgdays == CORM_DATE_INFINITY)
        return Py_NewRef(st->date_max);
    if (pgdays == CORM_DATE_NEG_INFINITY)
        return Py_NewRef(st->date_min);
    int64_t y;
    int m, d;
    civil_from_days(pgdays + PG_EPOCH_DAYS, &y, &m, &d);
    if (y < 1 || y > 9999)
        return out_of_range(st, "date");
    return DT(st)->Date_FromDate((int)y, m, d, DT(st)->DateType);
}

static PyObject *make_timestamp(pycorm_state *st, int64_t usec, PyObject *tz)
{
    /* The infinities become datetime.max and .min (aware for timestamptz). */
    if (usec == CORM_TIMESTAMP_INFINITY)
        return tz == Py_None ? PyObject_GetAttrString((PyObject *)DT(st)->DateTimeType, "max")
                             : Py_NewRef(st->datetime_max);
    if (usec == CORM_TIMESTAMP_NEG_INFINITY)
        return tz == Py_None ? PyObject_GetAttrString((PyObject *)DT(st)->DateTimeType, "min")
                             : Py_NewRef(st->datetime_min);
    int64_t days = floor_div(usec, USEC_PER_DAY);
    int64_t tod = usec - days * USEC_PER_DAY;
    int64_t y;
    int m, d;
    civil_from_days(days + PG_EPOCH_DAYS, &y, &m, &d);
    if (y < 1 || y > 9999)
        return out_of_range(st, "timestamp");
    return DT(st)->DateTime_FromDateAndTime(
        (int)y, m, d, (int)(tod / 3600000000LL), (int)(tod / 60000000 % 60),
        (int)(tod / 1000000 % 60), (int)(tod % 1000000), tz, DT(st)->DateTimeType);
}

static PyObject *make_time(pycorm_state *st, int64_t usec, PyObject *tz)
{
    if (usec < 0 || usec > USEC_PER_DAY)
        return out_of_range(st, "time");
    if (usec == USEC_PER_DAY) /* 24:00:00 */
        usec -= 1;
    return DT(st)->Time_FromTime((int)(usec / 3600000000LL), (int)(usec / 60000000 % 60),
                                 (int)(usec / 1000000 % 60), (int)(usec % 1000000), tz,
                                 DT(st)->TimeType);
}

static PyObject *value_to_py(pycorm_state *st, const corm_value *v);

#ifdef CORM_ARRAY_MAXDIM
/* The items of dimension `dim` onwards as nested lists, walking a in order. */
static PyObject *array_level(pycorm_state *st, corm_array *a, int dim)
{
    PyObject *list = PyList_New(a->dims[dim]);
    if (!list)
        return NULL;
    for (int32_t i = 0; i < a->dims[dim]; i++) {
        PyObject *item;
        if (dim + 1 < a->ndim) {
            item = array_level(st, a, dim + 1);
        } else {
            corm_value v;
            corm_error err = CORM_ERROR_INIT;
            int rc = corm_array_next(a, &v, &err);
            if (rc < 0) {
                pycorm_raise(st, &err);
                corm_error_clear(&err);
                item = NULL;
            } else if (rc == 0) {
                item = pycorm_raise_code(st, CORM_EDATA, "array has fewer items than its shape");
            } else {
                item = value_to_py(st, &v);
            }
        }
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* An array as a list (nested lists for more dimensions; lower bounds are
 * not kept). */
static PyObject *array_to_py(pycorm_state *st, const corm_value *v)
{
    corm_array a;
    corm_error err = CORM_ERROR_INIT;
    if (corm_array_init(&a, v, &err) < 0) {
        pycorm_raise(st, &err);
        corm_error_clear(&err);
        return NULL;
    }
    if (a.ndim == 0 || a.nitems == 0)
        return PyList_New(0);
    return array_level(st, &a, 0);
}
#endif

static PyObject *make_uuid(pycorm_state *st, const uint8_t bytes[16])
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *n = PyLong_FromUnsignedNativeBytes(
        bytes, 16, Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER);
#else
    PyObject *n = _PyLong_FromByteArray(bytes, 16, 0, 0);
#endif
    if (!n)
        return NULL;
    PyTypeObject *tp = (PyTypeObject *)st->UUID;
    PyObject *u = tp->tp_alloc(tp, 0);
    if (!u || Py_TYPE(st->uuid_int_slot)->tp_descr_set(st->uuid_int_slot, u, n) < 0 ||
        Py_TYPE(st->uuid_safe_slot)->tp_descr_set(st->uuid_safe_slot, u,
                                                   st->uuid_safe_unknown) < 0) {
        Py_XDECREF(u);
        Py_DECREF(n);
        return NULL;
    }
    Py_DECREF(n);
    return u;
}

/* ---- JSON -------------------------------------------------------------- */

/* Builds Python values from the engine's JSON reader (corm_json_parse):
 * one pass, no json.loads call per value. Containers are attached to
 * their parent when opened; the stack holds borrowed pointers. */
typedef struct jbuild {
    pycorm_state *st;
    PyObject *root;
    PyObject **stack;       /* open containers (borrowed) */
    PyObject **keys;        /* the key waiting for its value, per level */
    int depth, cap;
    PyObject *inline_stack[16], *inline_keys[16];
} jbuild;

static int jb_add(jbuild *b, PyObject *v)
{
    if (!v)
        return -1;
    if (b->depth == 0) {
        b->root = v;
        return 0;
    }
    PyObject *top = b->stack[b->depth - 1];
    int rc;
    if (PyList_CheckExact(top)) {
        rc = PyList_Append(top, v);
    } else {
        rc = PyDict_SetItem(top, b->keys[b->depth - 1], v);
        Py_CLEAR(b->keys[b->depth - 1]);
    }
    Py_DECREF(v);
    return rc;
}

static int jb_open(jbuild *b, PyObject *c)
{
    if (!c)
        return -1;
    if (b->depth == b->cap) {
        int cap = b->cap * 2;
        PyObject **s = PyMem_Malloc((size_t)cap * sizeof *s);
        PyObject **k = PyMem_Malloc((size_t)cap * sizeof *k);
        if (!s || !k) {
            PyMem_Free(s);
            PyMem_Free(k);
            Py_DECREF(c);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(s, b->stack, (size_t)b->depth * sizeof *s);
        memcpy(k, b->keys, (size_t)b->depth * sizeof *k);
        if (b->stack != b->inline_stack) {
            PyMem_Free(b->stack);
            PyMem_Free(b->keys);
        }
        b->stack = s;
        b->keys = k;
        b->cap = cap;
    }
    Py_INCREF(c);   /* jb_add gives one reference to the parent */
    if (jb_add(b, c) < 0) {
        Py_DECREF(c);
        return -1;
    }
    b->keys[b->depth] = NULL;
    b->stack[b->depth++] = c;
    Py_DECREF(c);   /* the parent (or root) owns it now */
    return 0;
}

static int jb_close(void *ud)
{
    jbuild *b = ud;
    b->depth--;
    return 0;
}

static int jb_null(void *ud)
{
    return jb_add(ud, Py_NewRef(Py_None));
}

static int jb_bool(void *ud, int v)
{
    return jb_add(ud, PyBool_FromLong(v));
}

static int jb_number(void *ud, const char *text, size_t len, int integer)
{
    jbuild *b = ud;
    if (integer && len <= 18) {
        /* Fits an int64 by its length: no text round trip. */
        const char *p = text;
        bool neg = *p == '-';
        long long n = 0;
        for (p += neg; p < text + len; p++)
            n = n * 10 + (*p - '0');
        return jb_add(b, PyLong_FromLongLong(neg ? -n : n));
    }
    char small[64];
    char *buf = len < sizeof small ? small : PyMem_Malloc(len + 1);
    if (!buf) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    PyObject *v;
    if (integer) {
        v = PyLong_FromString(buf, NULL, 10);
    } else {
        double d = PyOS_string_to_double(buf, NULL, NULL);
        v = d == -1.0 && PyErr_Occurred() ? NULL : PyFloat_FromDouble(d);
    }
    if (buf != small)
        PyMem_Free(buf);
    return jb_add(b, v);
}

static int jb_string(void *ud, const char *s, size_t n)
{
    return jb_add(ud, PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL));
}

/* Object keys repeat from row to row ("id", "name", ...): short ASCII keys
 * come from a small cache in the module state instead of a new str each. */
static PyObject *key_object(pycorm_state *st, const char *s, size_t n)
{
    if (n == 0 || n > 32)
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL);
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    PyObject **slot = &st->json_keys[h % PYCORM_JSON_KEYS];
    PyObject *k = *slot;
    if (k && PyUnicode_GET_LENGTH(k) == (Py_ssize_t)n && !memcmp(PyUnicode_DATA(k), s, n))
        return Py_NewRef(k);
    k = PyUnicode_FromStringAndSize(s, (Py_ssize_t)n);
    if (!k)
        return NULL;
    Py_XSETREF(*slot, Py_NewRef(k));
    return k;
}

static int jb_key(void *ud, const char *s, size_t n)
{
    jbuild *b = ud;
    PyObject *k = key_object(b->st, s, n);
    if (!k)
        return -1;
    Py_XSETREF(b->keys[b->depth - 1], k);
    return 0;
}

static int jb_begin_array(void *ud)
{
    return jb_open(ud, PyList_New(0));
}

static int jb_begin_object(void *ud)
{
    return jb_open(ud, PyDict_New());
}

static const corm_json_sink json_builder = {
    jb_null, jb_bool, jb_number, jb_string, jb_begin_array, jb_close, jb_begin_object,
    jb_key, jb_close,
};

/* ---- JSON out ------------------------------------------------------------ */

/* json.dumps is Python code that sets up an encoder per call: the dearest
 * step of inserting a row with a small JSON field. Plain values (exact
 * dict with str keys, list, tuple, str, int, finite float, bool, None) are
 * written here with json.dumps's defaults (", " and ": ", ASCII only);
 * anything else goes to json.dumps itself, so its output and errors stay
 * the reference. */
typedef struct jout {
    char *buf;
    size_t len, cap;
    char small[512];
} jout;

static int jo_reserve(jout *o, size_t n)
{
    if (o->len + n <= o->cap)
        return 0;
    size_t cap = o->cap * 2;
    while (cap < o->len + n)
        cap *= 2;
    char *nb = o->buf == o->small ? PyMem_Malloc(cap) : PyMem_Realloc(o->buf, cap);
    if (!nb) {
        PyErr_NoMemory();
        return -1;
    }
    if (o->buf == o->small)
        memcpy(nb, o->small, o->len);
    o->buf = nb;
    o->cap = cap;
    return 0;
}

static int jo_put(jout *o, const char *s, size_t n)
{
    if (jo_reserve(o, n) < 0)
        return -1;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return 0;
}

static int jo_str(jout *o, PyObject *str)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(str);
    int kind = PyUnicode_KIND(str);
    const void *data = PyUnicode_DATA(str);
    /* At most 12 bytes a code point (a surrogate pair), plus quotes. */
    if (jo_reserve(o, (size_t)n * 12 + 2) < 0)
        return -1;
    static const char hex[] = "0123456789abcdef";
    char *w = o->buf + o->len;
    *w++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *w++ = (char)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; continue;
        case '\\': *w++ = '\\'; continue;
        case '\n': *w++ = 'n'; continue;
        case '\r': *w++ = 'r'; continue;
        case '\t': *w++ = 't'; continue;
        case '\b': *w++ = 'b'; continue;
        case '\f': *w++ = 'f'; continue;
        default: break;
        }
        if (c >= 0x10000) {
            Py_UCS4 v = c - 0x10000;
            Py_UCS4 hi = 0xD800 | (v >> 10), lo = 0xDC00 | (v & 0x3FF);
            *w++ = 'u';
            for (int sh = 12; sh >= 0; sh -= 4)
                *w++ = hex[(hi >> sh) & 0xF];
            *w++ = '\\';
            c = lo;
        }
        *w++ = 'u';
        for (int sh = 12; sh >= 0; sh -= 4)
            *w++ = hex[(c >> sh) & 0xF];
    }
    *w++ = '"';
    o->len = (size_t)(w - o->buf);
    return 0;
}

/* 1 written, 0 not a plain value (use json.dumps), -1 error. */
static int jo_value(jout *o, PyObject *v, int depth)
{
    if (depth > 200)
        return 0;   /* deep or circular: json.dumps decides */
    if (v == Py_None)
        return jo_put(o, "null", 4) < 0 ? -1 : 1;
    if (v == Py_True)
        return jo_put(o, "true", 4) < 0 ? -1 : 1;
    if (v == Py_False)
        return jo_put(o, "false", 5) < 0 ? -1 : 1;
    if (PyUnicode_CheckExact(v))
        return jo_str(o, v) < 0 ? -1 : 1;
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow)
            return 0;
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%lld", n);
        return jo_put(o, buf, (size_t)len) < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d))
            return 0;
        char *r = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!r)
            return -1;
        int rc = jo_put(o, r, strlen(r));
        PyMem_Free(r);
        return rc < 0 ? -1 : 1;
    }
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        if (jo_put(o, "[", 1) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(v); i++) {
            if (i && jo_put(o, ", ", 2) < 0)
                return -1;
            /* A list may change under a callback; there is none here. */
            int rc = jo_value(o, PySequence_Fast_GET_ITEM(v, i), depth + 1);
            if (rc <= 0)
                return rc;
        }
        return jo_put(o, "]", 1) < 0 ? -1 : 1;
    }
    if (PyDict_CheckExact(v)) {
        if (jo_put(o, "{", 1) < 0)
            return -1;
        Py_ssize_t pos = 0, i = 0;
        PyObject *k, *item;
        while (PyDict_Next(v, &pos, &k, &item)) {
            if (!PyUnicode_CheckExact(k))
                return 0;   /* json.dumps turns int, float, bool keys into text */
            if ((i++ && jo_put(o, ", ", 2) < 0) || jo_str(o, k) < 0 || jo_put(o, ": ", 2) < 0)
                return -1;
            int rc = jo_value(o, item, depth + 1);
            if (rc <= 0)
                return rc;
        }
        return jo_put(o, "}", 1) < 0 ? -1 : 1;
    }
    return 0;
}

PyObject *pycorm_json_dumps(pycorm_state *st, PyObject *v)
{
    jout o;
    o.buf = o.small;
    o.len = 0;
    o.cap = sizeof o.small;
    int rc = jo_value(&o, v, 0);
    PyObject *s = rc > 0 ? PyUnicode_FromStringAndSize(o.buf, (Py_ssize_t)o.len) : NULL;
    if (o.buf != o.small)
        PyMem_Free(o.buf);
    if (rc == 0)
        return PyObject_CallOneArg(st->json_dumps, v);
    return s;
}

/* JSON text to Python values. What the engine's strict reader refuses
 * (a lone surrogate escape in json, say) goes to json.loads, so values and
 * error messages stay exactly json.loads's. */
static PyObject *json_to_py(pycorm_state *st, const char *text, size_t len)
{
    jbuild b;
    b.st = st;
    b.root = NULL;
    b.depth = 0;
    b.cap = (int)(sizeof b.inline_stack / sizeof b.inline_stack[0]);
    b.stack = b.inline_stack;
    b.keys = b.inline_keys;
    int rc = corm_json_parse(text, len, &json_builder, &b, NULL);
    for (int i = 0; i < b.depth; i++)
        Py_XDECREF(b.keys[i]);
    if (b.stack != b.inline_stack) {
        PyMem_Free(b.stack);
        PyMem_Free(b.keys);
    }
    if (rc == CORM_OK)
        return b.root;
    Py_XDECREF(b.root);
    PyErr_Clear();
    PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, NULL);
    if (!s)
        return NULL;
    PyObject *v = PyObject_CallOneArg(st->json_loads, s);
    Py_DECREF(s);
    return v;
}

static PyObject *value_to_py(pycorm_state *st, const corm_value *v)
{
    PyDateTime_CAPI *api = DT(st);
    switch (v->kind) {
    case CORM_NULL:
        Py_RETURN_NONE;
    case CORM_BOOL:
        return PyBool_FromLong(v->v.b);
    case CORM_INT:
        return PyLong_FromLongLong(v->v.i);
    case CORM_FLOAT:
        return PyFloat_FromDouble(v->v.f);
    case CORM_TEXT:
        return PyUnicode_DecodeUTF8(v->v.str.ptr, (Py_ssize_t)v->v.str.len, NULL);
    case CORM_NUMERIC: {
        PyObject *s = PyUnicode_DecodeUTF8(v->v.str.ptr, (Py_ssize_t)v->v.str.len, NULL);
        if (!s)
            return NULL;
        PyObject *d = PyObject_CallOneArg(st->Decimal, s);
        Py_DECREF(s);
        return d;
    }
    case CORM_DATE:
        return make_date(st, v->v.i);
    case CORM_TIME:
        return make_time(st, v->v.i, Py_None);
    case CORM_TIMETZ: {
        PyObject *delta = api->Delta_FromDelta(0, v->v.tz.zone, 0, 1, api->DeltaType);
        if (!delta)
            return NULL;
        PyObject *tz = api->TimeZone_FromTimeZone(delta, NULL);
        Py_DECREF(delta);
        if (!tz)
            return NULL;
        PyObject *t = make_time(st, v->v.tz.usec, tz);
        Py_DECREF(tz);
        return t;
    }
    case CORM_TIMESTAMP:
        return make_timestamp(st, v->v.i, Py_None);
    case CORM_TIMESTAMPTZ:
        return make_timestamp(st, v->v.i, st->utc);
    case CORM_INTERVAL: {
        /* A month is 30 days here, as in PostgreSQL's own interval
         * comparisons (and asyncpg): timedelta has no months. */
        int64_t days = (int64_t)v->v.interval.days + (int64_t)v->v.interval.months * 30;
        int64_t usec = v->v.interval.usec;
        days += floor_div(usec, USEC_PER_DAY);
        usec -= floor_div(usec, USEC_PER_DAY) * USEC_PER_DAY;
        if (days > 999999999 || days < -999999999)
            return out_of_range(st, "interval");
        return api->Delta_FromDelta((int)days, (int)(usec / USEC_PER_SEC),
                                    (int)(usec % USEC_PER_SEC), 1, api->DeltaType);
    }
    case CORM_UUID: {
        if (st->uuid_int_slot)
            return make_uuid(st, v->v.uuid);
        PyObject *b = PyBytes_FromStringAndSize((const char *)v->v.uuid, 16);
        if (!b)
            return NULL;
        PyObject *kw = PyTuple_Pack(1, st->s_bytes);
        if (!kw) {
            Py_DECREF(b);
            return NULL;
        }
        PyObject *args[1] = {b};
        PyObject *u = PyObject_Vectorcall(st->UUID, args, 0, kw);
        Py_DECREF(kw);
        Py_DECREF(b);
        return u;
    }
    case CORM_JSON:
        return json_to_py(st, v->v.str.ptr, v->v.str.len);
    case CORM_ARRAY:
#ifdef CORM_ARRAY_MAXDIM
        return array_to_py(st, v);
#else
        /* No element decoder in this libcorm: the wire bytes. */
        return PyBytes_FromStringAndSize(v->v.array.ptr, (Py_ssize_t)v->v.array.len);
#endif
    case CORM_BYTES:
    case CORM_RAW:
    default:
        return PyBytes_FromStringAndSize(v->v.str.ptr, (Py_ssize_t)v->v.str.len);
    }
}

PyObject *pycorm_cell(pycorm_state *st, const corm_result *r, int row, int col)
{
    corm_error err = CORM_ERROR_INIT;
    corm_value v;
    /* A NULL cell decodes to CORM_NULL (value_to_py gives None). */
    if (corm_result_get(r, row, col, &v, &err) < 0) {
        if (!err.code)
            err.code = CORM_EINTERNAL;
        pycorm_raise(st, &err);
        corm_error_clear(&err);
        return NULL;
    }
    return value_to_py(st, &v);
}

/* ---- results -------------------------------------------------------------- */

static PyObject *make_row(pycorm_state *st, const corm_result *r, PyObject *desc, int row,
                          int ncols)
{
    PyObject *obj = pycorm_row_new(st, desc, ncols);
    if (!obj)
        return NULL;
    for (int c = 0; c < ncols; c++) {
        PyObject *cell = pycorm_cell(st, r, row, c);
        if (!cell) {
            Py_DECREF(obj);
            return NULL;
        }
        pycorm_row_set(obj, c, cell);
    }
    return obj;
}

PyObject *pycorm_result_value(pycorm_state *st, const corm_result *r, int mode)
{
    int nrows = corm_result_nrows(r), ncols = corm_result_ncols(r);
    switch (mode) {
    case PYCORM_FETCHVAL:
        if (nrows < 1 || ncols < 1)
            Py_RETURN_NONE;
        return pycorm_cell(st, r, 0, 0);
    case PYCORM_EXECUTE: {
        int64_t n = corm_result_affected(r);
        return PyLong_FromLongLong(n < 0 ? 0 : n);
    }
    case PYCORM_NONE:
        Py_RETURN_NONE;
    case PYCORM_FETCHROW: {
        if (nrows < 1)
            Py_RETURN_NONE;
        PyObject *desc = pycorm_row_desc(st, r);
        if (!desc)
            return NULL;
        PyObject *row = make_row(st, r, desc, 0, ncols);
        Py_DECREF(desc);
        return row;
    }
    case PYCORM_FETCH:
    default: {
        PyObject *list = PyList_New(0), *desc = NULL;
        if (list && pycorm_result_append(st, r, &desc, list) < 0)
            Py_CLEAR(list);
        Py_XDECREF(desc);
        return list;
    }
    }
}

int pycorm_result_append(pycorm_state *st, const corm_result *r, PyObject **desc,
                         PyObject *list)
{
    int nrows = corm_result_nrows(r), ncols = corm_result_ncols(r);
    if (nrows == 0)
        return 0;
    if (!*desc && !(*desc = pycorm_row_desc(st, r)))
        return -1;
    for (int i = 0; i < nrows; i++) {
        PyObject *row = make_row(st, r, *desc, i, ncols);
        if (!row)
            return -1;
        int rc = PyList_Append(list, row);
        Py_DECREF(row);
        if (rc < 0)
            return -1;
    }
    return 0;
}
