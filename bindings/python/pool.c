/*
 * pool.c - the asyncio adapter: _core.Pool drives a corm_pool from the
 * running loop (one persistent reader per member socket, a writer only while
 * the engine wants to write, one timer following corm_pool_timeout), and
 * _core.Conn is a connection lent by the pool for a transaction. Requests
 * complete futures from C; a cancelled future cancels its request.
 */
#include "pycorm.h"

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

#include <math.h>
#include <stddef.h>
#include <structmember.h>
#include <string.h>

typedef struct watch {
    int fd;
    bool reading, writing;
} watch;

typedef struct PoolObject {
    PyObject_HEAD
    pycorm_state *st;
    PyObject *module;          /* keeps st alive */
    corm_pool *pool;           /* NULL once closed */
    PyObject *loop;
    PyObject *create_future;   /* the loop's bound methods, looked up once */
    PyObject *add_reader, *remove_reader, *add_writer, *remove_writer;
    PyObject *call_at, *call_soon, *time;
    PyObject *on_io;           /* self._on_io, handed to add_reader/add_writer */
    PyObject *on_timer;        /* self._on_timer */
    PyObject *timer;           /* the pending TimerHandle/Handle, or NULL */
    double timer_when;         /* its loop time; -1 for call_soon */
    watch *watches;
    int nwatches, capwatches;
    int stepping;              /* inside corm_pool_step or another pool call */
    corm_conn **deferred;      /* lent connections to release after the step */
    struct RequestObject *feeders;  /* COPYs with rows still to put */
    int ndeferred, capdeferred;
    PyObject *weakreflist;
} PoolObject;

typedef struct ConnObject {
    PyObject_HEAD
    PoolObject *pool;
    corm_conn *conn;           /* lent by pool; NULL once released */
} ConnObject;

enum { REQ_QUERY = 0, REQ_ACQUIRE = 1 };

/* One request in flight: the engine's callback data and the future's done
 * callback (tp_call), so a cancelled future can cancel the request. */
typedef struct RequestObject {
    PyObject_HEAD
    PoolObject *pool;
    PyObject *fut;
    corm_request_id id;
    int kind;
    int mode;
    bool done;                 /* the engine has called back */
    bool streamed;             /* submitted with on_rows: the value is `items` */
    PyObject *shape;           /* built queries: makes the value (model.c), or NULL */
    /* Streamed requests: the list being filled while rows arrive, what its
     * items need once per request (column names), and the first failure
     * to make an item (later batches are then skipped). */
    PyObject *items, *items_cache, *items_error;
    /* A COPY being fed from the loop (pycorm_submit_copy). */
    corm_copy *copy;
    int (*feed)(void *ud, corm_copy *cp);
    void *feed_ud;
    void (*feed_free)(void *ud);
    struct RequestObject *next_feeder;   /* the pool's list; holds a reference */
} RequestObject;

#define POOL_ST(p) ((p)->st)

/* ---- timer and watches ------------------------------------------------- */

static void unraisable(void)
{
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(NULL);
}

static void cancel_timer(PoolObject *self)
{
    if (!self->timer)
        return;
    PyObject *r = PyObject_CallMethodNoArgs(self->timer, self->st->s_cancel);
    if (!r)
        unraisable();
    Py_XDECREF(r);
    Py_CLEAR(self->timer);
}

/* Re-arms the timer for corm_pool_timeout(); soon: step on the next loop
 * iteration whatever the engine says (after calls that bypass the pool's
 * own bookkeeping, such as submitting on a lent connection). */
static void release_deferred(PoolObject *self);

static void update_timer(PoolObject *self, bool soon)
{
    if (!self->stepping)
        release_deferred(self);
    if (!self->pool) {
        cancel_timer(self);
        return;
    }
    int t = soon ? 0 : corm_pool_timeout(self->pool);
    if (t < 0) {
        cancel_timer(self);
        return;
    }
    if (t == 0) {
        if (self->timer && self->timer_when < 0)
            return;
        cancel_timer(self);
        self->timer = PyObject_CallOneArg(self->call_soon, self->on_timer);
        self->timer_when = -1;
        if (!self->timer)
            unraisable();
        return;
    }
    PyObject *now = PyObject_CallNoArgs(self->time);
    if (!now) {
        unraisable();
        return;
    }
    double when = PyFloat_AsDouble(now) + t / 1000.0;
    Py_DECREF(now);
    /* An earlier timer is fine: it steps and re-arms. */
    if (self->timer && self->timer_when <= when)
        return;
    cancel_timer(self);
    PyObject *w = PyFloat_FromDouble(when);
    if (!w) {
        unraisable();
        return;
    }
    PyObject *args[2] = {w, self->on_timer};
    self->timer = PyObject_Vectorcall(self->call_at, args, 2, NULL);
    Py_DECREF(w);
    self->timer_when = when;
    if (!self->timer)
        unraisable();
}

static watch *find_watch(PoolObject *self, int fd, bool create)
{
    for (int i = 0; i < self->nwatches; i++)
        if (self->watches[i].fd == fd)
            return &self->watches[i];
    if (!create)
        return NULL;
    if (self->nwatches == self->capwatches) {
        int cap = self->capwatches ? self->capwatches * 2 : 8;
        watch *w = PyMem_Realloc(self->watches, (size_t)cap * sizeof *w);
        if (!w)
            return NULL;
        self->watches = w;
        self->capwatches = cap;
    }
    watch *w = &self->watches[self->nwatches++];
    w->fd = fd;
    w->reading = w->writing = false;
    return w;
}

/* Calls loop.add_*(fd, cb, fd) or loop.remove_*(fd); 0, or -1 when it
 * raised OSError (reported), -2 for other failures (reported). */
static int loop_call(PyObject *method, int fd, PyObject *cb)
{
    PyObject *pyfd = PyLong_FromLong(fd);
    if (!pyfd) {
        unraisable();
        return -2;
    }
    PyObject *args[3] = {pyfd, cb, pyfd};
    PyObject *r = PyObject_Vectorcall(method, args, cb ? 3 : 1, NULL);
    Py_DECREF(pyfd);
    if (r) {
        Py_DECREF(r);
        return 0;
    }
    if (!cb && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
        return -1;
    }
    unraisable();
    return -2;
}

/* The engine may report a socket gone after libpq closed it. A selector
 * loop then fails to drop the reader or writer alone (epoll_ctl on a closed
 * fd), and would keep a stale key that a new socket of the same number
 * inherits. Unregister the fd from the loop's selector directly: selector
 * loops expose it as loop._selector; other loops never got here. */
static void forget_closed_fd(PoolObject *self, int fd)
{
    PyObject *sel = PyObject_GetAttrString(self->loop, "_selector");
    if (!sel) {
        PyErr_Clear();
        return;
    }
    PyObject *r = PyObject_CallMethod(sel, "unregister", "i", fd);
    Py_DECREF(sel);
    if (!r)
        PyErr_Clear(); /* KeyError: not registered any more */
    Py_XDECREF(r);
}

/* corm_watch_fn: the pool reports a member socket's wanted events. The
 * reader stays for as long as the socket is watched; the writer comes and
 * goes with CORM_WRITE. */
static void on_watch(void *ud, int fd, int events)
{
    PoolObject *self = ud;
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    watch *w = find_watch(self, fd, events != 0);
    if (w) {
        bool want_read = events != 0, want_write = (events & CORM_WRITE) != 0;
        bool failed = false;
        if (!want_write && w->writing)
            failed |= loop_call(self->remove_writer, fd, NULL) == -1;
        if (!want_read && w->reading)
            failed |= loop_call(self->remove_reader, fd, NULL) == -1;
        if (failed)
            forget_closed_fd(self, fd);
        if (want_read && !w->reading)
            loop_call(self->add_reader, fd, self->on_io);
        if (want_write && !w->writing)
            loop_call(self->add_writer, fd, self->on_io);
        w->reading = want_read;
        w->writing = want_write;
        if (!events)
            *w = self->watches[--self->nwatches];
    } else if (events) {
        PyErr_NoMemory();
        unraisable();
    }
    PyErr_Restore(exc_type, exc, tb);
}

static void release_deferred(PoolObject *self)
{
    while (self->ndeferred > 0 && self->pool) {
        corm_conn *c = self->deferred[--self->ndeferred];
        corm_pool_release(self->pool, c, NULL);
    }
}

/* ---- COPY feeders -------------------------------------------------------- */

static void settle_current_error(struct RequestObject *req);

/* The copy needs its rows no more: end or abandon it, release the rows. */
static void feeder_stop(struct RequestObject *req)
{
    corm_copy_free(req->copy);   /* an unfinished copy is abandoned */
    req->copy = NULL;
    if (req->feed_free)
        req->feed_free(req->feed_ud);
    req->feed = NULL;
    req->feed_ud = NULL;
    req->feed_free = NULL;
}

/* Puts what the socket takes; true when the feeder is finished. */
static bool feed_more(struct RequestObject *req)
{
    if (req->done) {
        feeder_stop(req);   /* cancelled, or over: nobody wants the rest */
        return true;
    }
    int rc = req->feed(req->feed_ud, req->copy);
    if (rc == PYCORM_FEED_MORE)
        return false;
    if (rc < 0) {
        /* A row that cannot be encoded: nothing is stored, and the caller
         * gets this error, not the aborted copy's. */
        corm_copy_abort(req->copy, "a row could not be encoded", NULL);
        settle_current_error(req);
    } else if (rc == PYCORM_FEED_DONE) {
        corm_copy_end(req->copy, NULL);
    }
    feeder_stop(req);
    return true;
}

static void run_feeders(PoolObject *self)
{
    struct RequestObject **pp = &self->feeders;
    while (*pp) {
        struct RequestObject *req = *pp;
        if (feed_more(req)) {
            *pp = req->next_feeder;
            req->next_feeder = NULL;
            Py_DECREF(req);
        } else {
            pp = &req->next_feeder;
        }
    }
}

static void stop_feeders(PoolObject *self)
{
    while (self->feeders) {
        struct RequestObject *req = self->feeders;
        self->feeders = req->next_feeder;
        req->next_feeder = NULL;
        feeder_stop(req);
        Py_DECREF(req);
    }
}

/* Steps the pool for fd (-1: deadlines and upkeep only). */
static void pool_step(PoolObject *self, int fd)
{
    if (!self->pool || self->stepping)
        return;
    Py_INCREF(self);
    self->stepping++;
    corm_pool_step(self->pool, fd, NULL);
    self->stepping--;
    release_deferred(self);
    if (self->feeders) {
        PyObject *saved_type, *saved, *saved_tb;
        PyErr_Fetch(&saved_type, &saved, &saved_tb);
        run_feeders(self);
        PyErr_Restore(saved_type, saved, saved_tb);
        if (self->feeders && self->pool) {
            /* Rows were put after the step reported its sockets: report
             * them again, so a full socket gets its writer. */
            self->stepping++;
            corm_pool_step(self->pool, -1, NULL);
            self->stepping--;
            release_deferred(self);
        }
    }
    update_timer(self, false);
    Py_DECREF(self);
}

/* ---- requests ---------------------------------------------------------- */

/* ---- futures --------------------------------------------------------------- */

/* Our futures are asyncio.Future with one slot more: the request that a
 * cancel() must stop. An add_done_callback would do the same at the price
 * of a loop callback on every completion. */
#define FUTURE_REQ(st, fut) ((PyObject **)((char *)(fut) + (st)->future_req_offset))

static PyObject *new_future(PoolObject *self)
{
    pycorm_state *st = self->st;
    PyObject *args[1] = {self->loop};
    return PyObject_Vectorcall((PyObject *)st->FutureType, args, 0, st->kw_loop);
}

static void future_watch(PyObject *fut, RequestObject *req)
{
    PyObject **slot = FUTURE_REQ(req->pool->st, fut);
    Py_XSETREF(*slot, Py_NewRef((PyObject *)req));
}

static void future_unwatch(pycorm_state *st, PyObject *fut)
{
    if (fut && PyObject_TypeCheck(fut, st->FutureType))
        Py_CLEAR(*FUTURE_REQ(st, fut));
}

static PyObject *request_call(RequestObject *self, PyObject *args, PyObject *kw);

/* Future.cancel(msg=None), then the request is stopped. */
static PyObject *future_cancel(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    pycorm_state *st = pycorm_state_of_type(Py_TYPE(self));
    if (!st)
        return NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *stack[4];
    if (nargs + nkw > 3) {
        PyErr_SetString(PyExc_TypeError, "cancel() takes at most one argument");
        return NULL;
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++)
        stack[i + 1] = args[i];
    PyObject *r = PyObject_Vectorcall(st->future_cancel, stack, (size_t)nargs + 1, kwnames);
    PyObject *req = *FUTURE_REQ(st, self);
    if (r == Py_True && req) {
        RequestObject *rq = (RequestObject *)Py_NewRef(req);
        Py_CLEAR(*FUTURE_REQ(st, self));
        PyObject *done;
        if (rq->pool && rq->pool->stepping) {
            /* Inside the engine's step (a conversion ran Python code that
             * cancelled): stop the request from the loop, after the step. */
            PyObject *cargs[2] = {(PyObject *)rq, self};
            done = PyObject_Vectorcall(rq->pool->call_soon, cargs, 2, NULL);
        } else {
            done = request_call(rq, NULL, NULL);
        }
        if (!done)
            Py_CLEAR(r);
        Py_XDECREF(done);
        Py_DECREF(rq);
    }
    return r;
}

static int future_traverse(PyObject *self, visitproc visit, void *arg)
{
    PyTypeObject *tp = Py_TYPE(self);
    pycorm_state *st = PyType_GetModuleState(tp);
    Py_VISIT(tp);
    if (st)
        Py_VISIT(*FUTURE_REQ(st, self));
    return tp->tp_base->tp_traverse(self, visit, arg);
}

static int future_clear(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    pycorm_state *st = PyType_GetModuleState(tp);
    if (st)
        Py_CLEAR(*FUTURE_REQ(st, self));
    return tp->tp_base->tp_clear(self);
}

static void future_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* The base runs its finalizer (the "exception never retrieved" log)
     * only for exact futures: run it here for ours. */
    if (tp->tp_finalize && PyObject_CallFinalizerFromDealloc(self) < 0)
        return;   /* resurrected */
    pycorm_state *st = PyType_GetModuleState(tp);
    if (st)
        Py_CLEAR(*FUTURE_REQ(st, self));
    tp->tp_base->tp_dealloc(self);
    Py_DECREF(tp);
}

static PyMethodDef future_methods[] = {
    {"cancel", (PyCFunction)(void (*)(void))future_cancel, METH_FASTCALL | METH_KEYWORDS,
     "Cancels the future and the query (or connection request) behind it."},
    {NULL, NULL, 0, NULL},
};

static int future_type_init(PyObject *module, pycorm_state *st)
{
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    if (!asyncio)
        return -1;
    PyObject *base = PyObject_GetAttrString(asyncio, "Future");
    Py_DECREF(asyncio);
    if (!base)
        return -1;
    if (!PyType_Check(base)) {
        Py_DECREF(base);
        PyErr_SetString(PyExc_TypeError, "asyncio.Future is not a type");
        return -1;
    }
    st->future_cancel = PyObject_GetAttrString(base, "cancel");
    PyTypeObject *bt = (PyTypeObject *)base;
    /* The slot goes after the base's fields; its offset is known only now,
     * so the member table is built here (the type copies it). */
    st->future_req_offset = bt->tp_basicsize;
    PyMemberDef members[] = {
        {"_corm_request", Py_T_OBJECT_EX, bt->tp_basicsize, Py_READONLY, NULL},
        {NULL, 0, 0, 0, NULL},
    };
    PyType_Slot slots[] = {
        {Py_tp_methods, future_methods},
        {Py_tp_members, members},
        {Py_tp_traverse, future_traverse},
        {Py_tp_clear, future_clear},
        {Py_tp_dealloc, future_dealloc},
        {0, NULL},
    };
    PyType_Spec spec = {
        .name = "cormorant._core.Future",
        .basicsize = (int)(bt->tp_basicsize + (Py_ssize_t)sizeof(PyObject *)),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
        .slots = slots,
    };
    st->FutureType = st->future_cancel
                         ? (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, base)
                         : NULL;
    Py_DECREF(base);
    if (!st->FutureType)
        return -1;
    st->kw_loop = Py_BuildValue("(s)", "loop");
    return st->kw_loop ? 0 : -1;
}

static RequestObject *request_new(PoolObject *pool, PyObject *fut, int kind, int mode)
{
    RequestObject *r = PyObject_GC_New(RequestObject, pool->st->RequestType);
    if (!r)
        return NULL;
    r->pool = (PoolObject *)Py_NewRef(pool);
    r->fut = Py_NewRef(fut);
    r->id = 0;
    r->kind = kind;
    r->mode = mode;
    r->done = false;
    r->streamed = false;
    r->shape = NULL;
    r->items = r->items_cache = r->items_error = NULL;
    r->copy = NULL;
    r->feed = NULL;
    r->feed_ud = NULL;
    r->feed_free = NULL;
    r->next_feeder = NULL;
    PyObject_GC_Track(r);
    return r;
}

static int request_traverse(RequestObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->pool);
    Py_VISIT(self->fut);
    Py_VISIT(self->shape);
    Py_VISIT(self->items);
    Py_VISIT(self->items_cache);
    Py_VISIT(self->items_error);
    return 0;
}

static int request_clear(RequestObject *self)
{
    Py_CLEAR(self->pool);
    Py_CLEAR(self->fut);
    Py_CLEAR(self->shape);
    Py_CLEAR(self->items);
    Py_CLEAR(self->items_cache);
    Py_CLEAR(self->items_error);
    return 0;
}

static void request_dealloc(RequestObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    request_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* Completes the future; a future already cancelled is left alone. */
static void settle(RequestObject *req, PyObject *value, PyObject *exc)
{
    pycorm_state *st = req->pool->st;
    PyObject *r = value ? PyObject_CallMethodOneArg(req->fut, st->s_set_result, value)
                        : PyObject_CallMethodOneArg(req->fut, st->s_set_exception, exc);
    if (!r)
        PyErr_Clear(); /* InvalidStateError: cancelled meanwhile */
    Py_XDECREF(r);
}

/* The exception being raised, taken as an object with its traceback (None
 * when there is none); the error indicator is cleared. */
static PyObject *take_exception(void)
{
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb && exc)
        PyException_SetTraceback(exc, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return exc ? exc : Py_NewRef(Py_None);
}

static void settle_current_error(RequestObject *req)
{
    PyObject *exc = take_exception();
    settle(req, NULL, exc);
    Py_DECREF(exc);
}

/* corm_rows_fn of streamed requests: each batch becomes items of the
 * list while the next rows are still on the way. */
static void on_rows(void *ud, const corm_result *res)
{
    RequestObject *req = ud;
    if (req->items_error)
        return;
    PyObject *saved_type, *saved, *saved_tb;
    PyErr_Fetch(&saved_type, &saved, &saved_tb);
    pycorm_state *st = req->pool->st;
    if (!req->items)
        req->items = PyList_New(0);
    int rc = !req->items ? -1
             : req->shape ? pycorm_shape_append(st, res, req->shape, &req->items_cache,
                                                req->items)
                          : pycorm_result_append(st, res, &req->items_cache, req->items);
    if (rc < 0) {
        req->items_error = take_exception();
        Py_CLEAR(req->items);
    }
    PyErr_Restore(saved_type, saved, saved_tb);
}

/* corm_done_fn: the result is decoded here, while it is borrowed. Runs
 * inside corm_pool_step (or a cancel), never inside Python code of ours. */
static void on_done(void *ud, corm_result *res, const corm_error *err)
{
    RequestObject *req = ud;
    PyObject *saved_type, *saved, *saved_tb;
    PyErr_Fetch(&saved_type, &saved, &saved_tb);
    req->done = true;
    if (!err && req->items_error) {
        settle(req, NULL, req->items_error);
    } else if (!err && req->streamed) {
        PyObject *v = req->items ? Py_NewRef(req->items) : PyList_New(0);
        if (v) {
            settle(req, v, NULL);
            Py_DECREF(v);
        } else {
            settle_current_error(req);
        }
    } else if (err) {
        PyObject *e = pycorm_error_object(req->pool->st, err);
        if (e) {
            settle(req, NULL, e);
            Py_DECREF(e);
        } else {
            settle_current_error(req);
        }
    } else {
        PyObject *v = req->shape ? pycorm_shape_value(req->pool->st, res, req->shape)
                                 : pycorm_result_value(req->pool->st, res, req->mode);
        if (v) {
            settle(req, v, NULL);
            Py_DECREF(v);
        } else {
            settle_current_error(req);
        }
    }
    Py_CLEAR(req->items);
    Py_CLEAR(req->items_cache);
    Py_CLEAR(req->items_error);
    future_unwatch(req->pool->st, req->fut);
    PyErr_Restore(saved_type, saved, saved_tb);
    Py_DECREF(req); /* the engine's reference */
}

static ConnObject *conn_new(PoolObject *pool, corm_conn *c);

/* corm_acquire_fn: a connection is lent, or the wait failed. */
static void on_acquired(void *ud, corm_conn *conn, const corm_error *err)
{
    RequestObject *req = ud;
    PoolObject *pool = req->pool;
    PyObject *saved_type, *saved, *saved_tb;
    PyErr_Fetch(&saved_type, &saved, &saved_tb);
    req->done = true;
    if (err) {
        PyObject *e = pycorm_error_object(pool->st, err);
        if (e) {
            settle(req, NULL, e);
            Py_DECREF(e);
        } else {
            settle_current_error(req);
        }
    } else {
        ConnObject *c = conn_new(pool, conn);
        PyObject *cancelled = PyObject_CallMethodNoArgs(req->fut, pool->st->s_cancelled);
        if (!c || !cancelled || cancelled == Py_True) {
            /* Nobody will use it: give it back after this step (the pool
             * is mid-call now). */
            if (c)
                c->conn = NULL;
            PyErr_Clear();
            if (pool->ndeferred == pool->capdeferred) {
                int cap = pool->capdeferred ? pool->capdeferred * 2 : 4;
                corm_conn **d = PyMem_Realloc(pool->deferred, (size_t)cap * sizeof *d);
                if (d) {
                    pool->deferred = d;
                    pool->capdeferred = cap;
                }
            }
            if (pool->ndeferred < pool->capdeferred)
                pool->deferred[pool->ndeferred++] = conn;
            if (!pool->stepping)
                release_deferred(pool);
        } else {
            settle(req, (PyObject *)c, NULL);
        }
        Py_XDECREF(cancelled);
        Py_XDECREF(c);
    }
    future_unwatch(pool->st, req->fut);
    PyErr_Restore(saved_type, saved, saved_tb);
    Py_DECREF(req);
}

/* The future's done callback: a cancelled future cancels its request, so
 * the server stops the statement and the connection stays usable. */
static PyObject *request_call(RequestObject *self, PyObject *args, PyObject *kw)
{
    if (self->done || !self->pool || !self->pool->pool)
        Py_RETURN_NONE;
    PyObject *c = PyObject_CallMethodNoArgs(self->fut, self->pool->st->s_cancelled);
    if (!c)
        return NULL;
    bool cancelled = c == Py_True;
    Py_DECREF(c);
    if (!cancelled || self->pool->stepping)
        Py_RETURN_NONE;
    PoolObject *pool = (PoolObject *)Py_NewRef(self->pool);
    Py_INCREF(self);
    pool->stepping++;
    if (self->kind == REQ_QUERY)
        corm_pool_cancel(pool->pool, self->id, NULL);
    else
        corm_pool_cancel_acquire(pool->pool, self->id, NULL);
    pool->stepping--;
    release_deferred(pool);
    update_timer(pool, true);
    Py_DECREF(self);
    Py_DECREF(pool);
    Py_RETURN_NONE;
}

static PyType_Slot request_slots[] = {
    {Py_tp_dealloc, request_dealloc},
    {Py_tp_traverse, request_traverse},
    {Py_tp_clear, request_clear},
    {Py_tp_call, request_call},
    {0, NULL},
};

static PyType_Spec request_spec = {
    .name = "cormorant._core._Request",
    .basicsize = sizeof(RequestObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = request_slots,
};

/* ---- submitting ----------------------------------------------------------- */

/* The pool is open and driven by the loop running now: its futures and
 * readers belong to the loop that made it. */
static int check_open(PoolObject *self)
{
    if (!self->pool) {
        pycorm_raise_code(self->st, CORM_EMISUSE, "the pool is closed");
        return -1;
    }
    PyObject *loop = PyObject_CallNoArgs(self->st->get_running_loop);
    if (!loop)
        return -1;
    Py_DECREF(loop);
    if (loop != self->loop) {
        pycorm_raise_code(self->st, CORM_EMISUSE,
                          "the pool belongs to another event loop: connect() in the loop "
                          "that uses it");
        return -1;
    }
    return 0;
}

/* timeout= in seconds (None: none) to milliseconds (0: none). */
static int timeout_ms(pycorm_state *st, PyObject *t, int *out)
{
    *out = 0;
    if (!t || t == Py_None)
        return 0;
    double s = PyFloat_AsDouble(t);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (!(s > 0) || !isfinite(s)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a positive number of seconds");
        return -1;
    }
    double ms = ceil(s * 1000.0);
    *out = ms > 2147483647.0 ? 2147483647 : (int)ms;
    return 0;
}

/* Lists are streamed: their items are made while the rest of the rows
 * arrive, so the conversion overlaps the server's work. */
static int submit_request(PoolObject *self, corm_conn *conn, const corm_query *q,
                          RequestObject *req, corm_error *err)
{
    if (req->streamed)
        return conn ? corm_conn_submit_stream(conn, q, on_rows, on_done, req, &req->id, err)
                    : corm_pool_submit_stream(self->pool, q, on_rows, on_done, req, &req->id,
                                              err);
    return conn ? corm_conn_submit(conn, q, on_done, req, &req->id, err)
                : corm_pool_submit(self->pool, q, on_done, req, &req->id, err);
}

/* Submits q (on conn when given, else on the pool's shared connections)
 * and returns the future of its value: made by shape when given, else by
 * mode. NULL with an exception when the engine refused it. */
static PyObject *submit_query(PoolObject *self, corm_conn *conn, const corm_query *q, int mode,
                              PyObject *shape)
{
    PyObject *fut = new_future(self);
    RequestObject *req = fut ? request_new(self, fut, REQ_QUERY, mode) : NULL;
    if (!req) {
        Py_XDECREF(fut);
        return NULL;
    }
    req->shape = Py_XNewRef(shape);
    req->streamed = shape ? pycorm_shape_streams(shape) : mode == PYCORM_FETCH;
    Py_INCREF(req); /* the engine's, dropped in on_done */
    corm_error err = CORM_ERROR_INIT;
    self->stepping++;
    int rc = submit_request(self, conn, q, req, &err);
    self->stepping--;
    if (rc < 0) {
        Py_DECREF(req);
        Py_DECREF(req);
        Py_DECREF(fut);
        pycorm_raise(self->st, &err);
        corm_error_clear(&err);
        return NULL;
    }
    future_watch(fut, req);
    Py_DECREF(req);
    update_timer(self, conn != NULL);
    return fut;
}

/* The fetch/fetchrow/fetchval/execute methods of Pool and Conn:
 * (sql, *args, timeout=None) -> a future of the loop. On conn (a lent
 * connection) when given, else on the pool's shared connections. */
static PyObject *submit(PoolObject *self, corm_conn *conn, int mode, PyObject *const *args,
                        size_t nargsf, PyObject *kwnames)
{
    pycorm_state *st = self->st;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *timeout = NULL;
    if (kwnames) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (PyUnicode_Check(k) && !PyUnicode_CompareWithASCIIString(k, "timeout")) {
                timeout = args[nargs + i];
            } else {
                PyErr_Format(PyExc_TypeError, "unexpected keyword argument %R", k);
                return NULL;
            }
        }
    }
    if (nargs < 1 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "the first argument must be the SQL text (str)");
        return NULL;
    }
    if (check_open(self) < 0)
        return NULL;
    int tms;
    if (timeout_ms(st, timeout, &tms) < 0)
        return NULL;
    Py_ssize_t len;
    const char *sql = PyUnicode_AsUTF8AndSize(args[0], &len);
    if (!sql)
        return NULL;
    if ((Py_ssize_t)strlen(sql) != len)
        return pycorm_raise_code(st, CORM_EDATA, "the SQL text contains a NUL character");

    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    PyObject *fut;
    if (corm_query_sql(&q, sql, &err) < 0)
        goto engine_error;
    if (pycorm_bind_args(st, q, args + 1, nargs - 1) < 0)
        goto fail;
    if (tms && corm_query_set_timeout(q, tms, &err) < 0)
        goto engine_error;
    fut = submit_query(self, conn, q, mode, NULL);
    corm_query_free(q);
    return fut;
engine_error:
    pycorm_raise(st, &err);
    corm_error_clear(&err);
fail:
    corm_query_free(q);
    return NULL;
}

static corm_conn *conn_handle(ConnObject *self);

PyObject *pycorm_submit_built(PyObject *target, corm_query *q, int tms, PyObject *shape)
{
    PoolObject *self;
    corm_conn *conn = NULL;
    pycorm_state *st = pycorm_state_of_type(Py_TYPE(target));
    if (!st)
        return NULL;
    if (Py_IS_TYPE(target, st->PoolType)) {
        self = (PoolObject *)target;
    } else if (Py_IS_TYPE(target, st->ConnType)) {
        self = ((ConnObject *)target)->pool;
        if (!(conn = conn_handle((ConnObject *)target)))
            return NULL;
    } else {
        PyErr_SetString(PyExc_TypeError, "expected a Pool or a Conn");
        return NULL;
    }
    if (check_open(self) < 0)
        return NULL;
    corm_error err = CORM_ERROR_INIT;
    if (corm_query_set_timeout(q, tms, &err) < 0) {
        pycorm_raise(st, &err);
        corm_error_clear(&err);
        return NULL;
    }
    return submit_query(self, conn, q, PYCORM_FETCH, shape);
}

PyObject *pycorm_submit_copy(PyObject *target, const char *schema, const char *table,
                             const char *const *cols, const uint32_t *oids, int n,
                             int (*feed)(void *ud, corm_copy *cp), void *ud,
                             void (*free_ud)(void *ud))
{
    pycorm_state *st = pycorm_state_of_type(Py_TYPE(target));
    if (!st) {
        free_ud(ud);
        return NULL;
    }
    if (!Py_IS_TYPE(target, st->ConnType)) {
        /* COPY suspends pipelining on its connection, so it runs on a lent
         * one, never on a pool's shared connections. */
        free_ud(ud);
        PyErr_SetString(PyExc_TypeError, "COPY needs a Conn (acquire one from the pool)");
        return NULL;
    }
    PoolObject *self = ((ConnObject *)target)->pool;
    corm_conn *conn = conn_handle((ConnObject *)target);
    PyObject *fut = conn && check_open(self) == 0 ? new_future(self) : NULL;
    RequestObject *req = fut ? request_new(self, fut, REQ_QUERY, PYCORM_EXECUTE) : NULL;
    if (!req) {
        Py_XDECREF(fut);
        free_ud(ud);
        return NULL;
    }
    Py_INCREF(req); /* the engine's, dropped in on_done */
    corm_error err = CORM_ERROR_INIT;
    corm_copy *cp = NULL;
    self->stepping++;
    int rc = corm_copy_open(&cp, conn, schema, table, cols, oids, n, on_done, req, &err);
    self->stepping--;
    if (rc < 0) {
        Py_DECREF(req);
        Py_DECREF(req);
        Py_DECREF(fut);
        free_ud(ud);
        pycorm_raise(st, &err);
        corm_error_clear(&err);
        return NULL;
    }
    req->copy = cp;
    req->feed = feed;
    req->feed_ud = ud;
    req->feed_free = free_ud;
    future_watch(fut, req);
    /* The first rows now (buffered until the server takes data); the rest
     * from the loop, as the socket takes them. */
    if (!feed_more(req)) {
        req->next_feeder = self->feeders;
        self->feeders = (RequestObject *)Py_NewRef(req);
    }
    Py_DECREF(req);
    update_timer(self, 1);
    return fut;
}

/* ---- Pool ------------------------------------------------------------------ */

static int get_int(PyObject *kw, const char *name, int dflt, int *out)
{
    *out = dflt;
    if (!kw)
        return 0;
    PyObject *v = PyDict_GetItemString(kw, name);
    if (!v || v == Py_None)
        return 0;
    long x = PyLong_AsLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (x < 0 || x > 1000000) {
        PyErr_Format(PyExc_ValueError, "%s out of range", name);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static PyObject *loop_method(PyObject *loop, PyObject *name)
{
    return PyObject_GetAttr(loop, name);
}

/* Pool(url, *, min_size=1, max_size=10, connect_timeout=10.0,
 *      statement_cache_size=256, prepared_statements=True, pipeline_depth=16)
 * Must be made inside a running event loop, which then drives it. */
static PyObject *pool_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    pycorm_state *st = pycorm_state_of_type(type);
    if (!st)
        return NULL;
    const char *url;
    if (!PyArg_ParseTuple(args, "s:Pool", &url))
        return NULL;
    static const char *const known[] = {"min_size", "max_size", "connect_timeout",
                                        "statement_cache_size", "prepared_statements",
                                        "pipeline_depth", NULL};
    if (kw) {
        PyObject *k;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kw, &pos, &k, NULL)) {
            bool ok = false;
            for (int i = 0; known[i]; i++)
                if (PyUnicode_Check(k) && !PyUnicode_CompareWithASCIIString(k, known[i]))
                    ok = true;
            if (!ok) {
                PyErr_Format(PyExc_TypeError, "Pool() got an unexpected keyword argument %R",
                             k);
                return NULL;
            }
        }
    }
    corm_options opt;
    corm_options_init(&opt);
    int min_size, max_size, cache, depth;
    if (get_int(kw, "min_size", 1, &min_size) < 0 || get_int(kw, "max_size", 10, &max_size) < 0 ||
        get_int(kw, "statement_cache_size", opt.statement_cache_size, &cache) < 0 ||
        get_int(kw, "pipeline_depth", opt.pool_pipeline_depth, &depth) < 0)
        return NULL;
    if (max_size < 1 || min_size > max_size) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= min_size <= max_size and max_size >= 1");
        return NULL;
    }
    opt.pool_min_size = min_size;
    opt.pool_max_size = max_size;
    opt.statement_cache_size = cache;
    if (depth > 0)
        opt.pool_pipeline_depth = depth;
    PyObject *v = kw ? PyDict_GetItemString(kw, "connect_timeout") : NULL;
    if (v && v != Py_None) {
        int ms;
        if (timeout_ms(st, v, &ms) < 0)
            return NULL;
        opt.connect_timeout_ms = ms;
    }
    v = kw ? PyDict_GetItemString(kw, "prepared_statements") : NULL;
    if (v) {
        int b = PyObject_IsTrue(v);
        if (b < 0)
            return NULL;
        opt.prepared_statements = b;
    }

    PyObject *loop = PyObject_CallNoArgs(st->get_running_loop);
    if (!loop)
        return NULL;
    PoolObject *self = (PoolObject *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(loop);
        return NULL;
    }
    /* Built closed, then the handle is acquired: a failure on the way
     * leaves an object that deallocates cleanly. */
    self->st = st;
    self->module = PyType_GetModule(type);
    Py_XINCREF(self->module);
    self->loop = loop;
    self->timer_when = -1;
    if (!(self->create_future = loop_method(loop, st->s_create_future)) ||
        !(self->add_reader = loop_method(loop, st->s_add_reader)) ||
        !(self->remove_reader = loop_method(loop, st->s_remove_reader)) ||
        !(self->add_writer = loop_method(loop, st->s_add_writer)) ||
        !(self->remove_writer = loop_method(loop, st->s_remove_writer)) ||
        !(self->call_at = loop_method(loop, st->s_call_at)) ||
        !(self->call_soon = loop_method(loop, st->s_call_soon)) ||
        !(self->time = loop_method(loop, st->s_time)) ||
        !(self->on_io = PyObject_GetAttrString((PyObject *)self, "_on_io")) ||
        !(self->on_timer = PyObject_GetAttrString((PyObject *)self, "_on_timer")))
        goto fail;
    corm_error err = CORM_ERROR_INIT;
    if (corm_pool_open(&self->pool, url, &opt, &err) < 0) {
        pycorm_raise(st, &err);
        corm_error_clear(&err);
        goto fail;
    }
    self->stepping++;
    corm_pool_set_watch(self->pool, on_watch, self);
    self->stepping--;
    update_timer(self, true);
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static void pool_close_handle(PoolObject *self)
{
    if (!self->pool)
        return;
    corm_pool *p = self->pool;
    stop_feeders(self);
    self->stepping++;
    corm_pool_close(p); /* pending requests complete with CORM_ECANCELLED */
    self->stepping--;
    self->pool = NULL;
    self->ndeferred = 0;
    /* Every member reported fd, 0 on its way out; drop any left. */
    while (self->nwatches > 0)
        on_watch(self, self->watches[0].fd, 0);
    cancel_timer(self);
}

static int pool_traverse(PoolObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->module);
    Py_VISIT(self->loop);
    Py_VISIT(self->create_future);
    Py_VISIT(self->add_reader);
    Py_VISIT(self->remove_reader);
    Py_VISIT(self->add_writer);
    Py_VISIT(self->remove_writer);
    Py_VISIT(self->call_at);
    Py_VISIT(self->call_soon);
    Py_VISIT(self->time);
    for (RequestObject *r = self->feeders; r; r = r->next_feeder)
        Py_VISIT((PyObject *)r);
    Py_VISIT(self->on_io);
    Py_VISIT(self->on_timer);
    Py_VISIT(self->timer);
    return 0;
}

static int pool_clear(PoolObject *self)
{
    stop_feeders(self);
    Py_CLEAR(self->on_io);
    Py_CLEAR(self->on_timer);
    Py_CLEAR(self->timer);
    return 0;
}

static void pool_dealloc(PoolObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->pool) {
        /* Unreachable: no reader refers to us any more, so only the
         * engine's state is left to free; the loop is not touched. */
        corm_pool_set_watch(self->pool, NULL, NULL);
        self->stepping++;
        corm_pool_close(self->pool);
        self->pool = NULL;
    }
    pool_clear(self);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->create_future);
    Py_CLEAR(self->add_reader);
    Py_CLEAR(self->remove_reader);
    Py_CLEAR(self->add_writer);
    Py_CLEAR(self->remove_writer);
    Py_CLEAR(self->call_at);
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->time);
    Py_CLEAR(self->module);
    PyMem_Free(self->watches);
    PyMem_Free(self->deferred);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *pool_on_io(PoolObject *self, PyObject *fd)
{
    int f = PyLong_AsLong(fd);
    if (f == -1 && PyErr_Occurred())
        return NULL;
    pool_step(self, f);
    Py_RETURN_NONE;
}

static PyObject *pool_on_timer(PoolObject *self, PyObject *unused)
{
    Py_CLEAR(self->timer);
    pool_step(self, -1);
    Py_RETURN_NONE;
}

#define QUERY_METHOD(name, mode)                                                            \
    static PyObject *pool_##name(PoolObject *self, PyObject *const *args, size_t nargsf,  \
                                 PyObject *kwnames)                                         \
    {                                                                                       \
        return submit(self, NULL, mode, args, nargsf, kwnames);                             \
    }
QUERY_METHOD(fetch, PYCORM_FETCH)
QUERY_METHOD(fetchrow, PYCORM_FETCHROW)
QUERY_METHOD(fetchval, PYCORM_FETCHVAL)
QUERY_METHOD(execute, PYCORM_EXECUTE)

/* acquire(timeout=None) -> future of a Conn lent for exclusive use. */
static PyObject *pool_acquire(PoolObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    PyObject *timeout = nargs > 0 ? args[0] : NULL;
    if (kwnames && PyTuple_GET_SIZE(kwnames) == 1 &&
        !PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout"))
        timeout = args[nargs];
    else if (kwnames || nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "acquire(timeout=None)");
        return NULL;
    }
    if (check_open(self) < 0)
        return NULL;
    int tms;
    if (timeout_ms(self->st, timeout, &tms) < 0)
        return NULL;
    PyObject *fut = new_future(self);
    if (!fut)
        return NULL;
    RequestObject *req = request_new(self, fut, REQ_ACQUIRE, 0);
    if (!req) {
        Py_DECREF(fut);
        return NULL;
    }
    corm_error err = CORM_ERROR_INIT;
    Py_INCREF(req);
    self->stepping++;
    int rc = corm_pool_acquire(self->pool, tms, on_acquired, req, &req->id, &err);
    self->stepping--;
    if (rc < 0) {
        Py_DECREF(req);
        Py_DECREF(req);
        Py_DECREF(fut);
        pycorm_raise(self->st, &err);
        corm_error_clear(&err);
        return NULL;
    }
    release_deferred(self);
    future_watch(fut, req);
    Py_DECREF(req);
    update_timer(self, true);
    return fut;
}

static PyObject *pool_close(PoolObject *self, PyObject *unused)
{
    if (self->stepping) {
        PyErr_SetString(PyExc_RuntimeError, "cannot close the pool from inside its callbacks");
        return NULL;
    }
    Py_INCREF(self);
    pool_close_handle(self);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *pool_get_size(PoolObject *self, void *c)
{
    return PyLong_FromLong(self->pool ? corm_pool_size(self->pool) : 0);
}

static PyObject *pool_get_idle(PoolObject *self, void *c)
{
    return PyLong_FromLong(self->pool ? corm_pool_idle(self->pool) : 0);
}

static PyObject *pool_get_closed(PoolObject *self, void *c)
{
    return PyBool_FromLong(self->pool == NULL);
}

static PyObject *pool_get_loop(PoolObject *self, void *c)
{
    return Py_NewRef(self->loop);
}

static PyObject *pool_get_nwatched(PoolObject *self, void *c)
{
    int writers = 0;
    for (int i = 0; i < self->nwatches; i++)
        writers += self->watches[i].writing;
    return Py_BuildValue("(ii)", self->nwatches, writers);
}

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef pool_methods[] = {
    {"fetch", (PyCFunction)(void (*)(void))pool_fetch, FASTKW,
     "fetch(sql, *args, timeout=None) -> future of list[Row]"},
    {"fetchrow", (PyCFunction)(void (*)(void))pool_fetchrow, FASTKW,
     "fetchrow(sql, *args, timeout=None) -> future of Row | None"},
    {"fetchval", (PyCFunction)(void (*)(void))pool_fetchval, FASTKW,
     "fetchval(sql, *args, timeout=None) -> future of the first cell, or None"},
    {"execute", (PyCFunction)(void (*)(void))pool_execute, FASTKW,
     "execute(sql, *args, timeout=None) -> future of the number of rows affected"},
    {"acquire", (PyCFunction)(void (*)(void))pool_acquire, FASTKW,
     "acquire(timeout=None) -> future of a Conn lent for exclusive use"},
    {"close", (PyCFunction)pool_close, METH_NOARGS,
     "Closes every connection; requests in flight fail with QueryCanceled."},
    {"_on_io", (PyCFunction)pool_on_io, METH_O, NULL},
    {"_on_timer", (PyCFunction)pool_on_timer, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pool_getset[] = {
    {"size", (getter)pool_get_size, NULL, "connections open or opening", NULL},
    {"idle", (getter)pool_get_idle, NULL, "idle connections", NULL},
    {"closed", (getter)pool_get_closed, NULL, "True once closed", NULL},
    {"loop", (getter)pool_get_loop, NULL, "the event loop that drives the pool", NULL},
    {"_watched", (getter)pool_get_nwatched, NULL, "(sockets watched, writers)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef pool_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PoolObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot pool_slots[] = {
    {Py_tp_new, pool_new},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_clear, pool_clear},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_members, pool_members},
    {Py_tp_doc, "Pool(url, *, min_size=1, max_size=10, connect_timeout=10.0, "
                "statement_cache_size=256, prepared_statements=True, pipeline_depth=16): "
                "a libcorm pool driven by the running asyncio loop."},
    {0, NULL},
};

static PyType_Spec pool_spec = {
    .name = "cormorant._core.Pool",
    .basicsize = sizeof(PoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pool_slots,
};

/* ---- Conn: a connection lent by the pool ------------------------------------ */

static ConnObject *conn_new(PoolObject *pool, corm_conn *c)
{
    ConnObject *self = PyObject_GC_New(ConnObject, pool->st->ConnType);
    if (!self)
        return NULL;
    self->pool = (PoolObject *)Py_NewRef(pool);
    self->conn = c;
    PyObject_GC_Track(self);
    return self;
}

/* The lent handle, or NULL with InterfaceError when released or closed. */
static corm_conn *conn_handle(ConnObject *self)
{
    if (!self->conn || !self->pool->pool) {
        pycorm_raise_code(self->pool->st, CORM_EMISUSE,
                          self->conn ? "the pool is closed" : "the connection was released");
        return NULL;
    }
    return self->conn;
}

static void conn_release_handle(ConnObject *self)
{
    corm_conn *c = self->conn;
    PoolObject *pool = self->pool;
    self->conn = NULL;
    if (!c || !pool->pool)
        return;
    if (pool->stepping) {
        if (pool->ndeferred == pool->capdeferred) {
            int cap = pool->capdeferred ? pool->capdeferred * 2 : 4;
            corm_conn **d = PyMem_Realloc(pool->deferred, (size_t)cap * sizeof *d);
            if (!d)
                return; /* leaks one lent connection until the pool closes */
            pool->deferred = d;
            pool->capdeferred = cap;
        }
        pool->deferred[pool->ndeferred++] = c;
        return;
    }
    pool->stepping++;
    corm_pool_release(pool->pool, c, NULL);
    pool->stepping--;
    update_timer(pool, true);
}

static int conn_traverse(ConnObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->pool);
    return 0;
}

static void conn_dealloc(ConnObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->pool) {
        conn_release_handle(self);
        Py_CLEAR(self->pool);
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define CONN_QUERY_METHOD(name, mode)                                                        \
    static PyObject *conn_##name(ConnObject *self, PyObject *const *args, size_t nargsf,   \
                                 PyObject *kwnames)                                          \
    {                                                                                        \
        corm_conn *c = conn_handle(self);                                                    \
        return c ? submit(self->pool, c, mode, args, nargsf, kwnames) : NULL;                \
    }
CONN_QUERY_METHOD(fetch, PYCORM_FETCH)
CONN_QUERY_METHOD(fetchrow, PYCORM_FETCHROW)
CONN_QUERY_METHOD(fetchval, PYCORM_FETCHVAL)
CONN_QUERY_METHOD(execute, PYCORM_EXECUTE)

typedef int txn_call(corm_conn *c, corm_done_fn *done, void *ud, corm_error *err);

/* Runs a transaction-control call and returns the future of its completion. */
static PyObject *conn_txn(ConnObject *self, const corm_txn_options *opt, txn_call *call)
{
    corm_conn *c = conn_handle(self);
    if (!c)
        return NULL;
    PoolObject *pool = self->pool;
    PyObject *fut = new_future(pool);
    if (!fut)
        return NULL;
    RequestObject *req = request_new(pool, fut, REQ_QUERY, PYCORM_NONE);
    if (!req) {
        Py_DECREF(fut);
        return NULL;
    }
    corm_error err = CORM_ERROR_INIT;
    Py_INCREF(req);
    pool->stepping++;
    int rc = call ? call(c, on_done, req, &err) : corm_conn_begin(c, opt, on_done, req, &err);
    pool->stepping--;
    Py_DECREF(req); /* transaction control is not cancelled: no done callback */
    if (rc < 0) {
        Py_DECREF(req);
        Py_DECREF(fut);
        pycorm_raise(pool->st, &err);
        corm_error_clear(&err);
        return NULL;
    }
    update_timer(pool, true);
    return fut;
}

static const struct {
    const char *name;
    int level;
} isolation_names[] = {
    {"read_committed", CORM_READ_COMMITTED},   {"read committed", CORM_READ_COMMITTED},
    {"repeatable_read", CORM_REPEATABLE_READ}, {"repeatable read", CORM_REPEATABLE_READ},
    {"serializable", CORM_SERIALIZABLE},
};

/* begin(isolation=None, read_only=False, deferrable=False) -> future: a
 * transaction, or a savepoint when one is open. */
static PyObject *conn_begin(ConnObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"isolation", "read_only", "deferrable", NULL};
    PyObject *iso = Py_None;
    int read_only = 0, deferrable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Opp:begin", kwlist, &iso, &read_only,
                                     &deferrable))
        return NULL;
    corm_txn_options opt = {CORM_ISOLATION_DEFAULT, read_only != 0, deferrable != 0};
    if (iso != Py_None) {
        const char *s = PyUnicode_Check(iso) ? PyUnicode_AsUTF8(iso) : NULL;
        bool found = false;
        for (size_t i = 0; s && i < sizeof isolation_names / sizeof isolation_names[0]; i++)
            if (!strcmp(s, isolation_names[i].name)) {
                opt.isolation = isolation_names[i].level;
                found = true;
            }
        if (!found) {
            PyErr_Format(PyExc_ValueError,
                         "isolation must be 'read_committed', 'repeatable_read' or "
                         "'serializable', not %R",
                         iso);
            return NULL;
        }
    }
    bool defaults = opt.isolation == CORM_ISOLATION_DEFAULT && !read_only && !deferrable;
    return conn_txn(self, defaults ? NULL : &opt, NULL);
}

static PyObject *conn_commit(ConnObject *self, PyObject *unused)
{
    return conn_txn(self, NULL, corm_conn_commit);
}

static PyObject *conn_rollback(ConnObject *self, PyObject *unused)
{
    return conn_txn(self, NULL, corm_conn_rollback);
}

static PyObject *conn_release(ConnObject *self, PyObject *unused)
{
    conn_release_handle(self);
    Py_RETURN_NONE;
}

static PyObject *conn_get_depth(ConnObject *self, void *c)
{
    return PyLong_FromLong(self->conn && self->pool->pool ? corm_conn_txn_depth(self->conn) : 0);
}

static PyObject *conn_get_pid(ConnObject *self, void *c)
{
    return PyLong_FromLong(self->conn && self->pool->pool ? corm_conn_backend_pid(self->conn)
                                                          : 0);
}

static PyObject *conn_get_pool(ConnObject *self, void *c)
{
    return Py_NewRef((PyObject *)self->pool);
}

static PyObject *conn_get_released(ConnObject *self, void *c)
{
    return PyBool_FromLong(!self->conn || !self->pool->pool);
}

static PyMethodDef conn_methods[] = {
    {"fetch", (PyCFunction)(void (*)(void))conn_fetch, FASTKW, NULL},
    {"fetchrow", (PyCFunction)(void (*)(void))conn_fetchrow, FASTKW, NULL},
    {"fetchval", (PyCFunction)(void (*)(void))conn_fetchval, FASTKW, NULL},
    {"execute", (PyCFunction)(void (*)(void))conn_execute, FASTKW, NULL},
    {"begin", (PyCFunction)(void (*)(void))conn_begin, METH_VARARGS | METH_KEYWORDS,
     "begin(isolation=None, read_only=False, deferrable=False) -> future"},
    {"commit", (PyCFunction)conn_commit, METH_NOARGS, "commit() -> future"},
    {"rollback", (PyCFunction)conn_rollback, METH_NOARGS, "rollback() -> future"},
    {"release", (PyCFunction)conn_release, METH_NOARGS,
     "Gives the connection back to the pool (an open transaction is rolled back)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef conn_getset[] = {
    {"txn_depth", (getter)conn_get_depth, NULL, "0 outside a transaction, 2+ in savepoints",
     NULL},
    {"backend_pid", (getter)conn_get_pid, NULL, "the server process id", NULL},
    {"pool", (getter)conn_get_pool, NULL, "the pool that lent it", NULL},
    {"released", (getter)conn_get_released, NULL, "True once given back", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot conn_slots[] = {
    {Py_tp_dealloc, conn_dealloc},
    {Py_tp_traverse, conn_traverse},
    {Py_tp_methods, conn_methods},
    {Py_tp_getset, conn_getset},
    {Py_tp_doc, "A connection lent by a Pool (see Pool.acquire)."},
    {0, NULL},
};

static PyType_Spec conn_spec = {
    .name = "cormorant._core.Conn",
    .basicsize = sizeof(ConnObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = conn_slots,
};

int pycorm_pool_init(PyObject *module, pycorm_state *st)
{
    if (future_type_init(module, st) < 0)
        return -1;
    st->RequestType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &request_spec, NULL);
    st->PoolType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &pool_spec, NULL);
    st->ConnType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &conn_spec, NULL);
    if (!st->RequestType || !st->PoolType || !st->ConnType)
        return -1;
    if (PyModule_AddObjectRef(module, "Pool", (PyObject *)st->PoolType) < 0 ||
        PyModule_AddObjectRef(module, "Conn", (PyObject *)st->ConnType) < 0)
        return -1;
    return 0;
}
