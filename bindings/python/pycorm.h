/*
 * pycorm.h - the Python binding's shared definitions: module state, the
 * error-mapping function, value conversion and the Row type.
 */
#ifndef PYCORM_H
#define PYCORM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>

#include "corm.h"

/* Number of error classes in CORM_ERRNO_MAP (codes -1 .. -PYCORM_NCODES). */
#define PYCORM_NCODES (-(CORM__ELAST) - 1)

/* Everything the module keeps: no static PyObject * anywhere. */
#define PYCORM_JSON_KEYS 64
#define PYCORM_ROW_DESCS 8

typedef struct pycorm_state {
    PyTypeObject *PoolType;
    PyTypeObject *ConnType;
    PyTypeObject *RowType;
    PyTypeObject *RequestType;
    PyTypeObject *FutureType;           /* asyncio.Future + the request to cancel (pool.c) */
    Py_ssize_t future_req_offset;       /* where FutureType keeps that request */
    PyObject *future_cancel;            /* asyncio.Future.cancel */
    PyObject *kw_loop;                  /* ("loop",) */
    /* Models and built queries (model.c). */
    PyTypeObject *RegistryType, *TableType, *ModelBaseType, *ExprType, *ColumnType,
        *QueryType, *ShapeType;
    PyObject *Error;                    /* cormorant.Error */
    PyObject *exc[PYCORM_NCODES + 1];   /* by -code; [0] unused */
    /* Values. */
    void *dt;                           /* PyDateTime_CAPI *, from its capsule (convert.c) */
    PyObject *utc;                      /* datetime.timezone.utc */
    PyObject *timezone;                 /* datetime.timezone */
    PyObject *date_max, *date_min;      /* infinity and -infinity */
    PyObject *datetime_max, *datetime_min;
    PyObject *Decimal;                  /* decimal.Decimal */
    PyObject *UUID;                     /* uuid.UUID */
    /* Making a UUID without running UUID.__init__ (convert.c): its slot
     * descriptors and SafeUUID.unknown; NULL when this Python's uuid module
     * does not look as expected (the constructor is called then). */
    PyObject *uuid_int_slot, *uuid_safe_slot, *uuid_safe_unknown;
    PyObject *json_loads, *json_dumps;
    PyObject *json_keys[PYCORM_JSON_KEYS]; /* recent JSON object keys (convert.c) */
    PyObject *row_descs[PYCORM_ROW_DESCS]; /* recent Row descriptions (row.c) */
    PyObject *get_running_loop;         /* asyncio.get_running_loop */
    /* Interned names. */
    PyObject *s_create_future, *s_add_reader, *s_remove_reader, *s_add_writer,
        *s_remove_writer, *s_call_at, *s_call_soon, *s_time, *s_cancel, *s_set_result,
        *s_set_exception, *s_add_done_callback, *s_cancelled, *s_bytes, *s_int,
        *s_utcoffset, *s_isoformat, *s_sqlstate, *s_detail, *s_hint, *s_code_name,
        *s_code, *s_message, *s_is_safe;
} pycorm_state;

pycorm_state *pycorm_state_of_type(PyTypeObject *tp);

/* The one function that turns a corm_error into a Python exception object
 * (new reference, or NULL with an exception set when even that failed). */
PyObject *pycorm_error_object(pycorm_state *st, const corm_error *err);
/* Raises the exception for err; returns NULL for `return pycorm_raise(...)`. */
PyObject *pycorm_raise(pycorm_state *st, const corm_error *err);
/* Raises class code with a message (binding-side checks: misuse, data). */
PyObject *pycorm_raise_code(pycorm_state *st, int code, const char *fmt, ...);

/* convert.c */
int pycorm_convert_init(PyObject *module, pycorm_state *st);
/* Binds each item of args (a sequence of n objects) to q, in order.
 * Raises cormorant.DataError (or TypeError for unsupported types) and
 * returns -1 before anything is sent. */
int pycorm_bind_args(pycorm_state *st, corm_query *q, PyObject *const *args, Py_ssize_t n);
/* What a corm_value made from a Python object borrows (a str's UTF-8 owner,
 * a buffer view); release it once the value has been bound or encoded. */
typedef struct pycorm_hold {
    PyObject *tmp;
    Py_buffer view;
    bool have_view;
} pycorm_hold;
/* o as a corm_value (parameter number i for messages), as pycorm_bind_args
 * would bind it; a str is untyped (oid 0: the server infers its type; set
 * v->oid to type it like a column). 0, or -1 with DataError/TypeError set
 * and nothing held. */
int pycorm_value_from_py(pycorm_state *st, PyObject *o, Py_ssize_t i, corm_value *v,
                         pycorm_hold *h);
void pycorm_hold_release(pycorm_hold *h);
/* One cell as a Python object (new reference), or NULL with an exception. */
PyObject *pycorm_cell(pycorm_state *st, const corm_result *r, int row, int col);

/* What a COPY feeder says after putting rows. */
enum {
    PYCORM_FEED_MORE = 0,   /* call again once the socket takes more */
    PYCORM_FEED_DONE = 1,   /* every row is in: end the copy */
    PYCORM_FEED_OVER = 2,   /* the server refused the copy: its error comes from done */
};
/* pool.c: COPY ... FROM STDIN (binary) on a lent Conn. feed(ud, cp) puts
 * rows while corm_copy_ready(cp) and returns a PYCORM_FEED_* (or -1 with an
 * exception set, to abandon the copy with that exception); it is called
 * again from the event loop as the server takes the data, so encoding
 * overlaps the server's work and memory stays at a chunk. free_ud(ud) runs
 * once the copy needs ud no more (also when this call fails). A future
 * resolved with the number of rows stored. */
PyObject *pycorm_submit_copy(PyObject *target, const char *schema, const char *table,
                             const char *const *cols, const uint32_t *oids, int n,
                             int (*feed)(void *ud, corm_copy *cp), void *ud,
                             void (*free_ud)(void *ud));
/* How a completed result becomes the future's value. */
enum pycorm_mode {
    PYCORM_FETCH = 0,    /* list of Row */
    PYCORM_FETCHROW = 1, /* first Row or None */
    PYCORM_FETCHVAL = 2, /* first cell of the first row, or None */
    PYCORM_EXECUTE = 3,  /* rows affected (int), or 0 when n/a */
    PYCORM_NONE = 4,     /* None (transaction control) */
};
PyObject *pycorm_result_value(pycorm_state *st, const corm_result *r, int mode);
/* Appends a Row for each row of r to list (a streamed batch, or a whole
 * result); *desc holds the column names, made on first use and kept by the
 * caller for the next batch. 0, or -1 with an exception. */
/* json.dumps(v), written in C for plain values (same text), else by
 * json.dumps itself. New reference to a str, or NULL with its exception. */
PyObject *pycorm_json_dumps(pycorm_state *st, PyObject *v);
int pycorm_result_append(pycorm_state *st, const corm_result *r, PyObject **desc,
                         PyObject *list);

/* row.c */
int pycorm_row_init(PyObject *module, pycorm_state *st);
/* The shared description of a result's columns: (names tuple, name->index dict). */
PyObject *pycorm_row_desc(pycorm_state *st, const corm_result *r);
/* A new Row with n items, all NULL; fill them with PYCORM_ROW_SET. */
PyObject *pycorm_row_new(pycorm_state *st, PyObject *desc, Py_ssize_t n);
void pycorm_row_set(PyObject *row, Py_ssize_t i, PyObject *v); /* steals v */

/* pool.c */
int pycorm_pool_init(PyObject *module, pycorm_state *st);
/* Submits a built query on target (a Pool or a Conn); the future's value is
 * pycorm_shape_value(st, res, shape). timeout_ms 0: none. New reference to
 * the future, or NULL with an exception set (nothing sent). */
PyObject *pycorm_submit_built(PyObject *target, corm_query *q, int timeout_ms, PyObject *shape);

/* model.c: Registry, Table, ModelBase, Column, Expr, Query. */
int pycorm_model_init(PyObject *module, pycorm_state *st);
int pycorm_model_traverse(pycorm_state *st, visitproc visit, void *arg);
void pycorm_model_clear(pycorm_state *st);
/* A completed result as the value its shape asks for (list of models,
 * dicts, ...). New reference, or NULL with an exception. */
PyObject *pycorm_shape_value(pycorm_state *st, const corm_result *r, PyObject *shape);
/* True when shape's value is a list with an item per row: such requests
 * are streamed, their items made while the rest arrive. */
int pycorm_shape_streams(PyObject *shape);
/* Appends shape's item for each row of r to list; *cache is kept by the
 * caller between batches (column names). 0, or -1 with an exception. */
int pycorm_shape_append(pycorm_state *st, const corm_result *r, PyObject *shape,
                        PyObject **cache, PyObject *list);

#endif /* PYCORM_H */
