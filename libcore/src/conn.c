/*
 * conn.c - a connection: non-blocking open over PQconnectStart/PQconnectPoll,
 * the socket and events a host loop watches, close.
 */
#include "corm_int.h"

#include <poll.h>
#include <string.h>

static int check_options(const corm_options *opt, corm_error *err)
{
    corm__check(opt->size == 0 || opt->size >= offsetof(corm_options, reserved_), err,
                "options not initialised with corm_options_init");
    corm__check(opt->connect_timeout_ms >= 0, err, "connect_timeout_ms is negative");
    corm__check(opt->statement_cache_size >= 1, err, "statement_cache_size must be >= 1");
    corm__check(opt->pool_min_size >= 0, err, "pool_min_size is negative");
    corm__check(opt->pool_max_size >= 1, err, "pool_max_size must be >= 1");
    corm__check(opt->pool_min_size <= opt->pool_max_size, err,
                "pool_min_size exceeds pool_max_size");
    corm__check(opt->pool_pipeline_depth >= 1, err, "pool_pipeline_depth must be >= 1");
    return CORM_OK;
}

int corm__options_resolve(corm_options *dst, const corm_options *opt, corm_error *err)
{
    if (opt) {
        *dst = *opt;
        if (dst->size == 0) {
            /* A zeroed struct: take every default, keep the allocator. */
            corm_alloc_fn *fn = opt->alloc;
            void *ud = opt->alloc_ud;
            corm_options_init(dst);
            dst->alloc = fn;
            dst->alloc_ud = ud;
        }
    } else {
        corm_options_init(dst);
    }
    return check_options(dst, err);
}

static void on_notice(void *arg, const PGresult *res)
{
    const corm_conn *c = arg;
    if (!c->opt.notice)
        return;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    c->opt.notice(c->opt.notice_ud, sev ? sev : "NOTICE", state ? state : "",
                  msg ? msg : "");
}

int corm__conn_open(corm_conn **out, const char *conninfo, const corm_options *opt,
                    corm_request_id *id_counter, corm_error *err)
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
    corm_conn *c = corm__calloc(&a, sizeof *c);
    if (!c)
        return corm__err_nomem(err);
    c->alloc = a;
    c->opt = o;
    c->next_id = id_counter ? id_counter : &c->own_next_id;
    c->fd = -1;
    c->pg = PQconnectStart(conninfo);
    if (!c->pg) {
        corm__free(&a, c, sizeof *c);
        return corm__err_nomem(err);
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        corm__err_from_conn(err, c->pg, CORM_ECONNECTION, "cannot connect");
        PQfinish(c->pg);
        corm__free(&a, c, sizeof *c);
        return CORM_ECONNECTION;
    }
    /* libpq prints notices to stderr by default; a library must not. */
    PQsetNoticeReceiver(c->pg, on_notice, c);
    c->state = CORM_CONN_CONNECTING;
    c->poll = PGRES_POLLING_WRITING;
    c->fd = PQsocket(c->pg);
    if (o.connect_timeout_ms > 0)
        c->connect_deadline = corm__now_ms() + o.connect_timeout_ms;
    *out = c;
    return CORM_OK;
}

int corm_conn_open(corm_conn **out, const char *conninfo, const corm_options *opt,
                   corm_error *err)
{
    return corm__conn_open(out, conninfo, opt, NULL, err);
}

int corm_conn_fd(const corm_conn *c)
{
    if (!c || c->state == CORM_CONN_BROKEN)
        return -1;
    return c->fd;
}

int corm_conn_events(const corm_conn *c)
{
    if (!c)
        return 0;
    switch (c->state) {
    case CORM_CONN_CONNECTING:
        return c->poll == PGRES_POLLING_READING ? CORM_READ : CORM_WRITE;
    case CORM_CONN_READY:
        return CORM_READ | (c->want_write ? CORM_WRITE : 0);
    default:
        return 0;
    }
}

int corm_conn_timeout(const corm_conn *c)
{
    if (!c)
        return -1;
    int64_t next = 0;
    if (c->state == CORM_CONN_BROKEN)
        return c->head ? 0 : -1;   /* requests still to fail: step now */
    if (c->cancel_due && c->state == CORM_CONN_READY)
        return 0;   /* a cancel waits for the next step */
    /* The cancel's helper thread cannot wake the host loop; poll for it,
     * since requests wait for it (see cancel_in_flight in pipeline.c). */
    if (c->state == CORM_CONN_READY && c->head && c->cancel_job)
        return corm__conn_cancel_pending(c) ? 1 : 0;
    if (c->state == CORM_CONN_CONNECTING && c->connect_deadline)
        next = c->connect_deadline;
    if (c->ndeadlines > 0) {
        for (const corm__req *r = c->head; r; r = r->next)
            if (r->deadline && !(r->flags & CORM__REQ_ABANDONED) &&
                (next == 0 || r->deadline < next))
                next = r->deadline;
    }
    if (next == 0)
        return -1;
    int64_t left = next - corm__now_ms();
    if (left <= 0)
        return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int corm_conn_state(const corm_conn *c)
{
    return c ? c->state : CORM_CONN_BROKEN;
}

int corm_conn_pending(const corm_conn *c)
{
    return c ? c->npending : 0;
}

int corm_conn_backend_pid(const corm_conn *c)
{
    if (!c || !c->pg || c->state != CORM_CONN_READY)
        return 0;
    return PQbackendPID(c->pg);
}

int corm_conn_cached_statements(const corm_conn *c)
{
    return c ? c->nstmts : 0;
}

/* True when the socket is ready for what PQconnectPoll last asked, so
 * PQconnectPoll is called only when it can make progress. */
static bool socket_ready(int fd, PostgresPollingStatusType want)
{
    if (fd < 0)
        return true;  /* let libpq report the failure */
    struct pollfd p = {.fd = fd, .events = want == PGRES_POLLING_READING ? POLLIN : POLLOUT};
    return poll(&p, 1, 0) > 0;
}

void corm__conn_advance_connect(corm_conn *c)
{
    while (c->state == CORM_CONN_CONNECTING) {
        if (c->connect_deadline && corm__now_ms() >= c->connect_deadline) {
            corm_error e = CORM_ERROR_INIT;
            corm__err(&e, CORM_ECONNECTION, "connection timed out after %d ms",
                      c->opt.connect_timeout_ms);
            corm__conn_broken(c, &e);
            corm_error_clear(&e);
            return;
        }
        if (!socket_ready(c->fd, c->poll))
            return;
        c->poll = PQconnectPoll(c->pg);
        int fd = PQsocket(c->pg);
        if (fd != c->fd && c->fd >= 0 && c->fd_gone)
            c->fd_gone(c->fd_gone_ud, c->fd);   /* libpq moved to another socket */
        c->fd = fd;
        if (c->poll == PGRES_POLLING_OK) {
            corm__conn_ready(c);
            return;
        }
        if (c->poll == PGRES_POLLING_FAILED) {
            corm_error e = CORM_ERROR_INIT;
            corm__err_from_conn(&e, c->pg, CORM_ECONNECTION, "cannot connect");
            corm__conn_broken(c, &e);
            corm_error_clear(&e);
            return;
        }
    }
}

void corm__conn_destroy(corm_conn *c)
{
    corm__alloc a = c->alloc;
    corm__stmt_free_all(c);
    if (c->pg)
        PQfinish(c->pg);
    corm__cancel_job_release(c->cancel_job);
    corm_error_clear(&c->broken_error);
    corm__free(&a, c, sizeof *c);
}

void corm_conn_close(corm_conn *c)
{
    if (!c)
        return;
    if (c->in_callback) {
        c->close_requested = true;
        return;
    }
    c->closing = true;
    corm_error e = CORM_ERROR_INIT;
    corm__err(&e, CORM_ECANCELLED, "connection closed");
    corm__conn_fail_all(c, &e);
    corm_error_clear(&e);
    corm__conn_destroy(c);
}
