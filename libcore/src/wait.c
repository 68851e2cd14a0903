/*
 * wait.c - blocking helpers, built only from fd/events/timeout/step, as
 * libpq builds PQexec from PQsendQuery and PQgetResult.
 */
#include "corm_int.h"

#include <errno.h>
#include <poll.h>

static int min_timeout(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

int corm_conn_wait(corm_conn *c, int timeout_ms, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(c->in_callback == 0, err, "called from inside a callback");
    int fd = corm_conn_fd(c);
    int ev = corm_conn_events(c);
    int t = min_timeout(timeout_ms, corm_conn_timeout(c));
    if (fd >= 0 && ev) {
        struct pollfd p = {.fd = fd, .events = (short)((ev & CORM_READ ? POLLIN : 0) |
                                                       (ev & CORM_WRITE ? POLLOUT : 0))};
        int n = poll(&p, 1, t);
        if (n < 0 && errno != EINTR)
            return corm__err(err, CORM_EINTERNAL, "poll failed");
    }
    return corm_conn_step(c, err);
}

int corm_conn_connect(corm_conn **out, const char *conninfo, const corm_options *opt,
                      corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm_conn *c;
    int rc = corm_conn_open(&c, conninfo, opt, err);
    if (rc < 0)
        return rc;
    while (c->state == CORM_CONN_CONNECTING) {
        rc = corm_conn_wait(c, -1, err);
        if (rc < 0 && rc != CORM_ECONNECTION)
            break;
    }
    if (c->state != CORM_CONN_READY) {
        if (c->broken_error.code)
            corm_error_copy(err, &c->broken_error);
        rc = c->broken_error.code ? c->broken_error.code : CORM_ECONNECTION;
        corm_conn_close(c);
        *out = NULL;
        return rc;
    }
    *out = c;
    return CORM_OK;
}

typedef struct exec_state {
    bool done;
    corm_result *res;
    corm_error err;
} exec_state;

static void exec_done(void *ud, corm_result *res, const corm_error *err)
{
    exec_state *st = ud;
    st->done = true;
    if (err)
        corm_error_copy(&st->err, err);
    else
        st->res = corm_result_take(res);
}

static int finish_exec(exec_state *st, corm_result **out, corm_error *err)
{
    if (st->err.code) {
        int code = st->err.code;
        if (err) {
            corm_error_clear(err);
            *err = st->err;
        } else {
            corm_error_clear(&st->err);
        }
        return code;
    }
    if (out)
        *out = st->res;
    else
        corm_result_free(st->res);
    return CORM_OK;
}

int corm_conn_exec(corm_conn *c, const corm_query *q, corm_result **out, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(c->in_callback == 0, err, "called from inside a callback");
    if (out)
        *out = NULL;
    exec_state st = {false, NULL, CORM_ERROR_INIT};
    int rc = corm_conn_submit(c, q, exec_done, &st, NULL, err);
    if (rc < 0)
        return rc;
    while (!st.done) {
        rc = corm_conn_wait(c, -1, NULL);
        if (rc == CORM_EMISUSE || rc == CORM_EINTERNAL)
            break;
    }
    if (!st.done)
        return corm__err(err, CORM_EINTERNAL, "request did not complete");
    return finish_exec(&st, out, err);
}

int corm_conn_exec_sql(corm_conn *c, const char *sql, corm_result **out, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(c->in_callback == 0, err, "called from inside a callback");
    if (out)
        *out = NULL;
    exec_state st = {false, NULL, CORM_ERROR_INIT};
    int rc = corm_conn_submit_sql(c, sql, exec_done, &st, NULL, err);
    if (rc < 0)
        return rc;
    while (!st.done) {
        rc = corm_conn_wait(c, -1, NULL);
        if (rc == CORM_EMISUSE || rc == CORM_EINTERNAL)
            break;
    }
    if (!st.done)
        return corm__err(err, CORM_EINTERNAL, "request did not complete");
    return finish_exec(&st, out, err);
}

int corm_conn_drain(corm_conn *c, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(c->in_callback == 0, err, "called from inside a callback");
    /* The engine's own requests too (a cursor's COMMIT, a DEALLOCATE), so
     * the connection's state is settled on return. */
    while (c->nreqs > 0 || c->npending > 0) {
        int rc = corm_conn_wait(c, -1, NULL);
        if (rc == CORM_EMISUSE || rc == CORM_EINTERNAL)
            return corm__err(err, rc, "cannot wait on the connection");
    }
    return CORM_OK;
}
