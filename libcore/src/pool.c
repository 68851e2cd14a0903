/*
 * pool.c - connections shared by pipelined requests, lent out one at a
 * time for transactions, replaced when they break, returned clean.
 */
#include "corm_int.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

enum { BACKOFF_MIN_MS = 50, BACKOFF_MAX_MS = 1000 };

typedef struct member {
    struct member *next;
    struct corm_pool *pool;
    corm_conn *c;
    bool lent;
    bool releasing;          /* back from a borrower; not yet known clean */
    int fd_reported;         /* what the watch callback was last told */
    int ev_reported;
} member;

typedef struct waiter {
    struct waiter *next;
    corm_request_id id;
    corm_acquire_fn *cb;
    void *ud;
    int64_t deadline;        /* 0: none */
    int timeout_ms;
} waiter;

struct corm_pool {
    corm__alloc alloc;
    corm_options opt;
    char *conninfo;
    size_t conninfo_size;
    member *members;
    int nmembers;
    waiter *waiters;
    corm__req *queue_head, *queue_tail;   /* requests with no connection yet */
    corm_request_id next_id;
    corm_watch_fn *watch;
    void *watch_ud;
    int depth;               /* pool calls under way (for deferred close) */
    bool close_requested, closing;
    bool work;               /* maintenance is due: corm_pool_timeout() says 0 */
    int64_t retry_at;        /* no new connection before this (backoff) */
    int backoff_ms;
    corm_error last_error;   /* why the last connection failed */
};

static bool usable(const member *m)
{
    return !m->lent && !m->releasing && m->c->state != CORM_CONN_BROKEN;
}

static void member_fd_gone(void *ud, int fd)
{
    member *m = ud;
    corm_pool *p = m->pool;
    if (m->fd_reported == fd && p->watch)
        p->watch(p->watch_ud, fd, 0);
    if (m->fd_reported == fd) {
        m->fd_reported = -1;
        m->ev_reported = 0;
    }
}

static int open_member(corm_pool *p, member **out, corm_error *err)
{
    *out = NULL;
    member *m = corm__calloc(&p->alloc, sizeof *m);
    if (!m)
        return corm__err_nomem(err);
    int rc = corm__conn_open(&m->c, p->conninfo, &p->opt, &p->next_id, err);
    if (rc < 0) {
        corm__free(&p->alloc, m, sizeof *m);
        return rc;
    }
    m->fd_reported = -1;
    m->pool = p;
    m->c->fd_gone = member_fd_gone;
    m->c->fd_gone_ud = m;
    member **pp = &p->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    p->nmembers++;
    p->work = true;
    *out = m;
    return CORM_OK;
}

static bool backing_off(const corm_pool *p)
{
    return p->retry_at && corm__now_ms() < p->retry_at;
}

static int live_members(const corm_pool *p)
{
    int n = 0;
    for (member *m = p->members; m; m = m->next)
        if (m->c->state != CORM_CONN_BROKEN)
            n++;
    return n;
}

/* The connection a shared request should go to, opening one when all are
 * busy and there is room. NULL when every connection is lent out at max. */
static member *choose(corm_pool *p, corm_error *err)
{
    member *best = NULL;
    for (member *m = p->members; m; m = m->next) {
        if (!usable(m))
            continue;
        /* One waiting for a cancel to land sends nothing until then. */
        bool held = corm__conn_held_back(m->c);
        if (!best)
            best = m;
        else if (held != corm__conn_held_back(best->c))
            best = held ? best : m;
        else if (m->c->state == CORM_CONN_READY && best->c->state != CORM_CONN_READY)
            best = m;
        else if (m->c->state == best->c->state && m->c->nreqs < best->c->nreqs)
            best = m;
    }
    if (best && best->c->nreqs < p->opt.pool_pipeline_depth && !corm__conn_held_back(best->c))
        return best;
    if (p->nmembers < p->opt.pool_max_size && !(backing_off(p) && best)) {
        if (backing_off(p) && live_members(p) == 0) {
            if (p->last_error.code)
                corm__err(err, CORM_ECONNECTION, "server unreachable: %s",
                          p->last_error.message);
            else
                corm__err(err, CORM_ECONNECTION, "server unreachable");
            return NULL;
        }
        member *m;
        if (open_member(p, &m, err) == CORM_OK)
            return m;
        return NULL;
    }
    return best;
}

static void sync_watch(corm_pool *p)
{
    if (!p->watch)
        return;
    for (member *m = p->members; m; m = m->next) {
        int fd = corm_conn_fd(m->c), ev = corm_conn_events(m->c);
        if (fd < 0)
            ev = 0;
        if (fd != m->fd_reported || ev != m->ev_reported) {
            if (m->fd_reported >= 0 && fd != m->fd_reported)
                p->watch(p->watch_ud, m->fd_reported, 0);
            if (fd >= 0 && (ev || m->fd_reported == fd))
                p->watch(p->watch_ud, fd, ev);
            m->fd_reported = ev ? fd : -1;
            m->ev_reported = ev;
        }
    }
}

static void free_member(corm_pool *p, member *m)
{
    if (m->fd_reported >= 0 && p->watch)
        p->watch(p->watch_ud, m->fd_reported, 0);
    corm_conn_close(m->c);
    corm__free(&p->alloc, m, sizeof *m);
}

int corm_pool_open(corm_pool **out, const char *conninfo, const corm_options *opt,
                   corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(conninfo != NULL, err, "conninfo is NULL");
    corm_options o;
    int rc = corm__options_resolve(&o, opt, err);
    if (rc < 0)
        return rc;
    corm__alloc a;
    corm__alloc_init(&a, &o);
    corm_pool *p = corm__calloc(&a, sizeof *p);
    if (!p)
        return corm__err_nomem(err);
    p->alloc = a;
    p->opt = o;
    p->backoff_ms = BACKOFF_MIN_MS;
    p->conninfo = corm__strdup(&a, conninfo, &p->conninfo_size);
    if (!p->conninfo) {
        corm__free(&a, p, sizeof *p);
        return corm__err_nomem(err);
    }
    /* Open the first connection now so a bad conninfo fails here. */
    for (int i = 0; i < (o.pool_min_size > 0 ? o.pool_min_size : 0); i++) {
        member *m;
        rc = open_member(p, &m, err);
        if (rc < 0) {
            corm_pool_close(p);
            return rc;
        }
    }
    *out = p;
    return CORM_OK;
}

void corm_pool_set_watch(corm_pool *p, corm_watch_fn *fn, void *ud)
{
    if (!p)
        return;
    p->watch = fn;
    p->watch_ud = ud;
    for (member *m = p->members; m; m = m->next)
        m->fd_reported = -1, m->ev_reported = 0;
    sync_watch(p);
}

/* Fails every waiter and queued request with err. */
static void fail_waiting(corm_pool *p, const corm_error *err)
{
    /* Detach first: a callback may acquire or submit again, and those new
     * requests belong to the next round, not to this loop. */
    waiter *w = p->waiters;
    corm__req *r = p->queue_head;
    p->waiters = NULL;
    p->queue_head = p->queue_tail = NULL;
    while (w) {
        waiter *next = w->next;
        w->cb(w->ud, NULL, err);
        corm__free(&p->alloc, w, sizeof *w);
        w = next;
    }
    while (r) {
        corm__req *next = r->next;
        if (r->done)
            r->done(r->ud, NULL, err);
        corm__req_free(&p->alloc, r);
        r = next;
    }
}

void corm_pool_close(corm_pool *p)
{
    if (!p)
        return;
    if (p->depth > 0) {
        p->close_requested = true;
        return;
    }
    p->closing = true;
    p->depth++;
    corm_error e = CORM_ERROR_INIT;
    corm__err(&e, CORM_ECANCELLED, "pool closed");
    fail_waiting(p, &e);
    corm_error_clear(&e);
    while (p->members) {
        member *m = p->members;
        p->members = m->next;
        free_member(p, m);
    }
    corm_error_clear(&p->last_error);
    corm__alloc a = p->alloc;
    corm__free(&a, p->conninfo, p->conninfo_size);
    corm__free(&a, p, sizeof *p);
}

/* Ends a pool call: a close asked for from a callback happens now. */
static bool leave(corm_pool *p)
{
    if (--p->depth == 0 && p->close_requested) {
        p->close_requested = false;
        corm_pool_close(p);
        return true;
    }
    return false;
}

static void queue_request(corm_pool *p, corm__req *r)
{
    r->next = NULL;
    if (p->queue_tail)
        p->queue_tail->next = r;
    else
        p->queue_head = r;
    p->queue_tail = r;
}

static int pool_submit(corm_pool *p, const corm_query *q, corm_rows_fn *rows,
                       corm_done_fn *done, void *ud, corm_request_id *id, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    corm__check(q != NULL, err, "query is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    corm__check(!p->closing && !p->close_requested, err, "pool is closing");
    corm__req *r;
    int rc = corm__req_new(&r, &p->alloc, q, NULL, done, ud, err);
    if (rc < 0)
        return rc;
    r->rows = rows;
    corm_error cerr = CORM_ERROR_INIT;
    member *m = choose(p, &cerr);
    if (!m && cerr.code) {
        corm__req_free(&p->alloc, r);
        int code = cerr.code;
        if (err) {
            corm_error_clear(err);
            *err = cerr;
        } else {
            corm_error_clear(&cerr);
        }
        return code;
    }
    corm_error_clear(&cerr);
    r->id = ++p->next_id;
    if (q->timeout_ms > 0)
        r->deadline = corm__now_ms() + q->timeout_ms;
    if (id)
        *id = r->id;
    if (m) {
        corm__conn_push(m->c, r);
    } else {
        /* Served from the next step, once a connection is free. */
        queue_request(p, r);
        p->work = true;
    }
    sync_watch(p);
    return CORM_OK;
}

int corm_pool_submit(corm_pool *p, const corm_query *q, corm_done_fn *done, void *ud,
                     corm_request_id *id, corm_error *err)
{
    return pool_submit(p, q, NULL, done, ud, id, err);
}

int corm_pool_submit_stream(corm_pool *p, const corm_query *q, corm_rows_fn *rows,
                            corm_done_fn *done, void *ud, corm_request_id *id, corm_error *err)
{
    corm__check(rows != NULL, err, "rows callback is NULL");
    return pool_submit(p, q, rows, done, ud, id, err);
}

int corm_pool_cancel(corm_pool *p, corm_request_id id, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    for (member *m = p->members; m; m = m->next)
        if (corm__conn_find(m->c, id)) {
            p->depth++;
            int rc = corm_conn_cancel(m->c, id, err);
            sync_watch(p);
            leave(p);
            return rc;
        }
    corm__req *prev = NULL;
    for (corm__req *r = p->queue_head; r; prev = r, r = r->next) {
        if (r->id != id)
            continue;
        if (prev)
            prev->next = r->next;
        else
            p->queue_head = r->next;
        if (p->queue_tail == r)
            p->queue_tail = prev;
        corm_error e = CORM_ERROR_INIT;
        corm__err(&e, CORM_ECANCELLED, "request cancelled");
        p->depth++;
        r->done(r->ud, NULL, &e);
        corm_error_clear(&e);
        corm__req_free(&p->alloc, r);
        leave(p);
        return 1;
    }
    return 0;
}

int corm_pool_acquire(corm_pool *p, int timeout_ms, corm_acquire_fn *cb, void *ud,
                      corm_request_id *id, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    corm__check(cb != NULL, err, "callback is NULL");
    corm__check(!p->closing && !p->close_requested, err, "pool is closing");
    waiter *w = corm__calloc(&p->alloc, sizeof *w);
    if (!w)
        return corm__err_nomem(err);
    w->id = ++p->next_id;
    w->cb = cb;
    w->ud = ud;
    w->timeout_ms = timeout_ms;
    if (timeout_ms > 0)
        w->deadline = corm__now_ms() + timeout_ms;
    waiter **pp = &p->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    if (id)
        *id = w->id;
    p->work = true;   /* served first come, first served, from the next step */
    return CORM_OK;
}

int corm_pool_cancel_acquire(corm_pool *p, corm_request_id id, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    for (waiter **pp = &p->waiters; *pp; pp = &(*pp)->next) {
        waiter *w = *pp;
        if (w->id != id)
            continue;
        *pp = w->next;
        corm_error e = CORM_ERROR_INIT;
        corm__err(&e, CORM_ECANCELLED, "acquire cancelled");
        p->depth++;
        w->cb(w->ud, NULL, &e);
        corm_error_clear(&e);
        corm__free(&p->alloc, w, sizeof *w);
        leave(p);
        return 1;
    }
    return 0;
}

int corm_pool_release(corm_pool *p, corm_conn *conn, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    corm__check(conn != NULL, err, "connection is NULL");
    member *m = p->members;
    while (m && m->c != conn)
        m = m->next;
    corm__check(m != NULL && m->lent, err, "connection was not lent by this pool");
    m->lent = false;
    m->releasing = true;
    if (conn->state != CORM_CONN_BROKEN && conn->txn_depth > 0) {
        /* Opened through corm_conn_begin: roll back at once, behind
         * whatever the borrower left in flight. */
        conn->txn_depth = 0;
        if (corm__conn_submit_internal(conn, "ROLLBACK", NULL) < 0)
            corm__conn_discard(conn, "cannot roll back the borrower's transaction");
    }
    p->work = true;
    sync_watch(p);
    return CORM_OK;
}

/* Deadlines, reaping, returning connections clean, serving the waiting. */
static void maintain(corm_pool *p)
{
    int64_t now = corm__now_ms();
    p->work = false;
    /* Reap broken connections nobody holds. */
    for (member **pp = &p->members; *pp && !p->close_requested;) {
        member *m = *pp;
        if (m->c->state == CORM_CONN_BROKEN && !m->lent && m->c->nreqs == 0) {
            /* Only a failed attempt to connect says the server is out of
             * reach; an established connection that broke (a killed
             * backend) is simply replaced, at once. */
            if (m->c->broken_error.code && !m->c->was_ready) {
                corm_error_copy(&p->last_error, &m->c->broken_error);
                p->retry_at = now + p->backoff_ms;
                p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                                   : p->backoff_ms * 2;
            }
            *pp = m->next;
            p->nmembers--;
            free_member(p, m);
            continue;
        }
        if (m->c->state == CORM_CONN_READY) {
            p->backoff_ms = BACKOFF_MIN_MS;
            p->retry_at = 0;
        }
        pp = &m->next;
    }
    /* Returned connections: clean once the borrower's requests are done. */
    for (member *m = p->members; m; m = m->next) {
        if (!m->releasing || m->c->state == CORM_CONN_BROKEN || m->c->nreqs > 0)
            continue;
        if (m->c->server_in_txn) {
            /* A transaction begun with SQL text: end it before anyone else
             * can see it. */
            if (corm__conn_submit_internal(m->c, "ROLLBACK", NULL) < 0)
                corm__conn_discard(m->c, "cannot roll back the borrower's transaction");
            else
                m->c->server_in_txn = false;
            continue;
        }
        m->releasing = false;
    }
    /* Requests that found no connection. */
    while (p->queue_head && !p->close_requested) {
        corm_error e = CORM_ERROR_INIT;
        member *m = choose(p, &e);
        corm__req *r = p->queue_head;
        if (!m && !e.code)
            break;
        p->queue_head = r->next;
        if (!p->queue_head)
            p->queue_tail = NULL;
        if (m) {
            corm__conn_push(m->c, r);
        } else {
            r->done(r->ud, NULL, &e);
            corm__req_free(&p->alloc, r);
        }
        corm_error_clear(&e);
    }
    /* Waiters past their deadline. */
    for (waiter **pp = &p->waiters; *pp && !p->close_requested;) {
        waiter *w = *pp;
        if (w->deadline && w->deadline <= now) {
            *pp = w->next;
            corm_error e = CORM_ERROR_INIT;
            corm__err(&e, CORM_ETIMEOUT, "no connection became free within %d ms",
                      w->timeout_ms);
            w->cb(w->ud, NULL, &e);
            corm_error_clear(&e);
            corm__free(&p->alloc, w, sizeof *w);
            continue;
        }
        pp = &w->next;
    }
    /* Serve waiters in order, from ready connections, idle ones first. */
    while (p->waiters && !p->close_requested) {
        member *best = NULL;
        for (member *m = p->members; m; m = m->next)
            if (usable(m) && m->c->state == CORM_CONN_READY &&
                (!best || m->c->nreqs < best->c->nreqs))
                best = m;
        if (!best)
            break;
        waiter *w = p->waiters;
        p->waiters = w->next;
        best->lent = true;
        w->cb(w->ud, best->c, NULL);
        corm__free(&p->alloc, w, sizeof *w);
    }
    if (p->close_requested)
        return;
    /* Open connections for the rest, and up to the minimum size. */
    int connecting = 0, nwaiters = 0;
    for (member *m = p->members; m; m = m->next)
        if (usable(m) && m->c->state == CORM_CONN_CONNECTING)
            connecting++;
    for (waiter *w = p->waiters; w; w = w->next)
        nwaiters++;
    while (!backing_off(p) && p->nmembers < p->opt.pool_max_size &&
           (connecting < nwaiters || p->nmembers < p->opt.pool_min_size)) {
        member *m;
        corm_error e = CORM_ERROR_INIT;
        if (open_member(p, &m, &e) < 0) {
            corm_error_copy(&p->last_error, &e);
            corm_error_clear(&e);
            break;
        }
        connecting++;
    }
    /* Nothing alive and no new attempt allowed yet: fail the waiting now
     * rather than leave them hanging on a server that is gone. */
    if (live_members(p) == 0 && p->last_error.code && (p->waiters || p->queue_head)) {
        corm_error e = CORM_ERROR_INIT;
        corm__err(&e, CORM_ECONNECTION, "server unreachable: %s",
                  p->last_error.message ? p->last_error.message : "connection failed");
        fail_waiting(p, &e);
        corm_error_clear(&e);
    }
}

int corm_pool_step(corm_pool *p, int fd, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    corm__check(p->depth == 0, err, "called from inside a callback");
    p->depth++;
    for (member *m = p->members; m && !p->close_requested; m = m->next) {
        bool ready = fd >= 0 && corm_conn_fd(m->c) == fd;
        if (ready || corm_conn_timeout(m->c) == 0 || m->c->state == CORM_CONN_CONNECTING)
            corm_conn_step(m->c, NULL);
    }
    if (!p->close_requested)
        maintain(p);
    if (!p->close_requested)
        sync_watch(p);
    leave(p);
    return CORM_OK;
}

int corm_pool_timeout(const corm_pool *p)
{
    if (!p)
        return -1;
    if (p->work)
        return 0;
    int64_t now = corm__now_ms();
    int best = -1;
    for (const member *m = p->members; m; m = m->next) {
        int t = corm_conn_timeout(m->c);
        if (t >= 0 && (best < 0 || t < best))
            best = t;
    }
    for (const waiter *w = p->waiters; w; w = w->next)
        if (w->deadline) {
            int64_t left = w->deadline - now;
            int t = left < 0 ? 0 : (int)(left > INT32_MAX ? INT32_MAX : left);
            if (best < 0 || t < best)
                best = t;
        }
    if (p->retry_at && (p->nmembers < p->opt.pool_min_size || p->waiters)) {
        int64_t left = p->retry_at - now;
        int t = left < 0 ? 0 : (int)left;
        if (best < 0 || t < best)
            best = t;
    }
    return best;
}

int corm_pool_size(const corm_pool *p)
{
    return p ? p->nmembers : 0;
}

int corm_pool_idle(const corm_pool *p)
{
    int n = 0;
    if (p)
        for (const member *m = p->members; m; m = m->next)
            if (usable(m) && m->c->state == CORM_CONN_READY && m->c->nreqs == 0)
                n++;
    return n;
}

/* ---- blocking helpers ------------------------------------------------ */

int corm_pool_wait(corm_pool *p, int timeout_ms, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    corm__check(p->depth == 0, err, "called from inside a callback");
    struct pollfd fds[64];
    int n = 0;
    for (member *m = p->members; m && n < 64; m = m->next) {
        int fd = corm_conn_fd(m->c), ev = corm_conn_events(m->c);
        if (fd < 0 || !ev)
            continue;
        fds[n].fd = fd;
        fds[n].events = (short)((ev & CORM_READ ? POLLIN : 0) | (ev & CORM_WRITE ? POLLOUT : 0));
        fds[n].revents = 0;
        n++;
    }
    int t = corm_pool_timeout(p);
    if (timeout_ms >= 0 && (t < 0 || timeout_ms < t))
        t = timeout_ms;
    int ready = poll(fds, (nfds_t)n, t);
    if (ready < 0 && errno != EINTR)
        return corm__err(err, CORM_EINTERNAL, "poll failed");
    /* One step serves every ready member: the pool steps each connection
     * whose socket matches, and the rest are cheap no-ops. */
    int first = -1;
    for (int i = 0; i < n && ready > 0; i++)
        if (fds[i].revents) {
            if (first < 0)
                first = fds[i].fd;
            else
                corm_pool_step(p, fds[i].fd, NULL);
        }
    return corm_pool_step(p, first, err);
}

typedef struct pool_exec_state {
    bool done;
    corm_result *res;
    corm_error err;
    corm_conn *conn;
} pool_exec_state;

static void pool_exec_done(void *ud, corm_result *res, const corm_error *err)
{
    pool_exec_state *st = ud;
    st->done = true;
    if (err)
        corm_error_copy(&st->err, err);
    else
        st->res = corm_result_take(res);
}

static int pool_finish(pool_exec_state *st, corm_error *err)
{
    int code = st->err.code;
    if (err) {
        corm_error_clear(err);
        *err = st->err;
    } else {
        corm_error_clear(&st->err);
    }
    return code;
}

int corm_pool_exec(corm_pool *p, const corm_query *q, corm_result **out, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    corm__check(p->depth == 0, err, "called from inside a callback");
    if (out)
        *out = NULL;
    pool_exec_state st = {false, NULL, CORM_ERROR_INIT, NULL};
    int rc = corm_pool_submit(p, q, pool_exec_done, &st, NULL, err);
    if (rc < 0)
        return rc;
    while (!st.done)
        corm_pool_wait(p, -1, NULL);
    if (st.err.code)
        return pool_finish(&st, err);
    if (out)
        *out = st.res;
    else
        corm_result_free(st.res);
    return CORM_OK;
}

static void acquire_done(void *ud, corm_conn *conn, const corm_error *err)
{
    pool_exec_state *st = ud;
    st->done = true;
    st->conn = conn;
    if (err)
        corm_error_copy(&st->err, err);
}

int corm_pool_acquire_wait(corm_pool *p, int timeout_ms, corm_conn **out, corm_error *err)
{
    corm__check(p != NULL, err, "pool is NULL");
    corm__check(out != NULL, err, "out is NULL");
    corm__check(p->depth == 0, err, "called from inside a callback");
    *out = NULL;
    pool_exec_state st = {false, NULL, CORM_ERROR_INIT, NULL};
    int rc = corm_pool_acquire(p, timeout_ms, acquire_done, &st, NULL, err);
    if (rc < 0)
        return rc;
    while (!st.done)
        corm_pool_wait(p, -1, NULL);
    if (st.err.code)
        return pool_finish(&st, err);
    *out = st.conn;
    return CORM_OK;
}
