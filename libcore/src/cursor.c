/*
 * cursor.c - large results in batches through a server-side cursor: the
 * reader asks for each batch, so memory stays bounded and the pace is the
 * reader's.
 */
#include "corm_int.h"

#include <stdio.h>

struct corm_cursor {
    corm__alloc alloc;
    corm_conn *conn;
    char name[40];
    char fetch_sql[80];
    int batch_rows;
    bool began_txn;          /* opening it began the transaction */
    bool closed;
    bool exhausted;
    int inflight;            /* fetches not yet completed */
};

/* Every fetch's callback passes through here to note the end of rows. */
typedef struct fetch_call {
    corm_cursor *cur;
    corm_done_fn *done;
    void *ud;
    size_t size;
} fetch_call;

int corm_cursor_open(corm_cursor **out, corm_conn *c, const corm_query *q, int batch_rows,
                     corm_done_fn *done, void *ud, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(q != NULL, err, "query is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    corm__check(batch_rows >= 1, err, "batch_rows must be >= 1");
    if (c->state == CORM_CONN_BROKEN)
        return corm__err(err, CORM_ECONNECTION, "connection is broken");
    corm_cursor *cur = corm__calloc(&c->alloc, sizeof *cur);
    if (!cur)
        return corm__err_nomem(err);
    cur->alloc = c->alloc;
    cur->conn = c;
    cur->batch_rows = batch_rows;
    snprintf(cur->name, sizeof cur->name, "corm_cursor_%llu",
             (unsigned long long)++c->cursor_counter);
    snprintf(cur->fetch_sql, sizeof cur->fetch_sql, "FETCH FORWARD %d FROM %s", batch_rows,
             cur->name);
    int rc;
    if (!corm__conn_txn_open(c)) {
        rc = corm__conn_submit_internal(c, "BEGIN", err);
        if (rc < 0)
            goto fail;
        cur->began_txn = true;
        c->txn_depth++;
    }
    char prefix[80];
    snprintf(prefix, sizeof prefix, "DECLARE %s NO SCROLL CURSOR FOR ", cur->name);
    /* Unnamed: the text is unique to this cursor, caching it would only
     * push useful statements out. */
    rc = corm__conn_submit_flags(c, q, NULL, prefix, CORM__REQ_UNNAMED, done, ud, NULL, err);
    if (rc < 0) {
        if (cur->began_txn) {
            c->txn_depth--;
            corm__conn_submit_internal(c, "ROLLBACK", NULL);
        }
        goto fail;
    }
    *out = cur;
    return CORM_OK;
fail:
    corm__free(&cur->alloc, cur, sizeof *cur);
    return rc;
}

static void fetched(void *ud, corm_result *res, const corm_error *err)
{
    fetch_call *call = ud;
    corm_cursor *cur = call->cur;
    cur->inflight--;
    if (res && corm_result_nrows(res) < cur->batch_rows)
        cur->exhausted = true;
    corm_done_fn *done = call->done;
    void *user = call->ud;
    corm__free(&cur->alloc, call, call->size);
    done(user, res, err);
}

int corm_cursor_fetch(corm_cursor *cur, corm_done_fn *done, void *ud, corm_request_id *id,
                      corm_error *err)
{
    corm__check(cur != NULL, err, "cursor is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    corm__check(!cur->closed, err, "cursor is closed");
    fetch_call *call = corm__malloc(&cur->alloc, sizeof *call);
    if (!call)
        return corm__err_nomem(err);
    call->cur = cur;
    call->done = done;
    call->ud = ud;
    call->size = sizeof *call;
    int rc = corm__conn_submit_flags(cur->conn, NULL, cur->fetch_sql, NULL, CORM__REQ_UNNAMED,
                                     fetched, call, id, err);
    if (rc < 0) {
        corm__free(&cur->alloc, call, sizeof *call);
        return rc;
    }
    cur->inflight++;
    return CORM_OK;
}

int corm_cursor_exhausted(const corm_cursor *cur)
{
    return cur && cur->exhausted ? 1 : 0;
}

static int close_cursor(corm_cursor *cur, corm_done_fn *done, void *ud, corm_error *err)
{
    corm_conn *c = cur->conn;
    cur->closed = true;
    if (c->state == CORM_CONN_BROKEN)
        return CORM_OK;   /* the server dropped cursor and transaction */
    char sql[64];
    snprintf(sql, sizeof sql, "CLOSE %s", cur->name);
    int rc = done ? corm__conn_submit_flags(c, NULL, sql, NULL, CORM__REQ_UNNAMED, done, ud,
                                            NULL, err)
                  : corm__conn_submit_internal(c, sql, err);
    if (cur->began_txn && c->txn_depth > 0) {
        /* COMMIT of a failed transaction rolls it back, as wanted. */
        c->txn_depth--;
        if (corm__conn_submit_internal(c, "COMMIT", NULL) < 0)
            corm__conn_discard(c, "cannot end the cursor's transaction");
    }
    return rc;
}

int corm_cursor_close(corm_cursor *cur, corm_done_fn *done, void *ud, corm_error *err)
{
    corm__check(cur != NULL, err, "cursor is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    if (cur->closed)
        return CORM_OK;
    return close_cursor(cur, done, ud, err);
}

void corm_cursor_free(corm_cursor *cur)
{
    if (!cur)
        return;
    if (!cur->closed)
        close_cursor(cur, NULL, NULL, NULL);
    /* A fetch still in flight keeps its call record; it points at cur, so
     * wait for none here: the caller must not free with fetches pending. */
    corm__alloc a = cur->alloc;
    corm__free(&a, cur, sizeof *cur);
}

typedef struct fetch_wait {
    bool done;
    corm_result *res;
    corm_error err;
} fetch_wait;

static void fetch_wait_done(void *ud, corm_result *res, const corm_error *err)
{
    fetch_wait *w = ud;
    w->done = true;
    if (err)
        corm_error_copy(&w->err, err);
    else
        w->res = corm_result_take(res);
}

int corm_cursor_fetch_wait(corm_cursor *cur, corm_result **out, corm_error *err)
{
    corm__check(cur != NULL && out != NULL, err, "NULL argument");
    *out = NULL;
    corm__check(cur->conn->in_callback == 0, err, "called from inside a callback");
    fetch_wait w = {false, NULL, CORM_ERROR_INIT};
    int rc = corm_cursor_fetch(cur, fetch_wait_done, &w, NULL, err);
    if (rc < 0)
        return rc;
    while (!w.done)
        corm_conn_wait(cur->conn, -1, NULL);
    if (w.err.code) {
        int code = w.err.code;
        if (err) {
            corm_error_clear(err);
            *err = w.err;
        } else {
            corm_error_clear(&w.err);
        }
        return code;
    }
    *out = w.res;
    return CORM_OK;
}
