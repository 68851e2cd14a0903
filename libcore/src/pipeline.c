/*
 * pipeline.c - requests on one connection in libpq's pipeline mode: submit,
 * step, in-order completion, retries, cancellation, deadlines, breakage.
 *
 * Every request is sent as [Parse] Bind/Execute Sync: its own sync point,
 * so an error aborts only that request's segment, and its results arrive
 * as: query result(s), each followed by NULL, then PIPELINE_SYNC.
 */
#include "corm_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- requests -------------------------------------------------------- */

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

int corm__req_new(corm__req **out, const corm__alloc *a, const corm_query *q, const char *sql,
                  corm_done_fn *done, void *ud, corm_error *err)
{
    return corm__req_new_ex(out, a, q, sql, NULL, done, ud, err);
}

int corm__req_new_ex(corm__req **out, const corm__alloc *a, const corm_query *q,
                     const char *sql, const char *prefix, corm_done_fn *done, void *ud,
                     corm_error *err)
{
    *out = NULL;
    int n = q ? q->nparams : 0;
    const char *text = sql;
    if (q) {
        int rc = corm__query_finalize(q, &text, err);
        if (rc < 0)
            return rc;
    } else {
        /* SQL text with nothing bound: refuse a $n it would need. */
        int rc = corm__check_param_count(sql, -1, 0, err);
        if (rc < 0)
            return rc;
    }
    size_t prefixlen = prefix ? strlen(prefix) : 0;
    size_t sqllen = prefixlen + strlen(text);
    size_t datalen = q ? q->data.len : 0;
    /* One block: struct, values[], oids[], lens[], formats[], data, key.
     * The key (the statement cache's) is the SQL, a NUL, the oids' bytes. */
    size_t off_values = align8(sizeof(corm__req));
    size_t off_oids = off_values + align8((size_t)n * sizeof(char *));
    size_t off_lens = off_oids + (size_t)n * sizeof(uint32_t);
    size_t off_formats = off_lens + (size_t)n * sizeof(int32_t);
    size_t off_data = off_formats + (size_t)n * sizeof(int32_t);
    size_t off_key = off_data + datalen;
    size_t keylen = sqllen + 1 + (size_t)n * sizeof(uint32_t);
    size_t size = off_key + keylen + 1;
    char *block = corm__malloc(a, size);
    if (!block)
        return corm__err_nomem(err);
    corm__req *r = (corm__req *)block;
    memset(r, 0, sizeof *r);
    r->done = done;
    r->ud = ud;
    r->size = size;
    r->nparams = n;
    r->values = (const char **)(void *)(block + off_values);
    r->oids = (uint32_t *)(void *)(block + off_oids);
    r->lens = (int32_t *)(void *)(block + off_lens);
    r->formats = (int32_t *)(void *)(block + off_formats);
    char *data = block + off_data;
    r->sql = block + off_key;
    r->keylen = keylen;
    if (prefixlen)
        memcpy(r->sql, prefix, prefixlen);
    memcpy(r->sql + prefixlen, text, sqllen - prefixlen + 1);
    if (n) {
        memcpy(r->oids, q->oids, (size_t)n * sizeof(uint32_t));
        memcpy(r->lens, q->lens, (size_t)n * sizeof(int32_t));
        memcpy(r->formats, q->formats, (size_t)n * sizeof(int32_t));
        memcpy(r->sql + sqllen + 1, q->oids, (size_t)n * sizeof(uint32_t));
        if (datalen)
            memcpy(data, q->data.data, datalen);
        for (int i = 0; i < n; i++)
            r->values[i] = r->lens[i] < 0 ? NULL : data + q->offsets[i];
    }
    r->sql[keylen] = 0;
    *out = r;
    return CORM_OK;
}

void corm__req_free(const corm__alloc *a, corm__req *r)
{
    if (!r)
        return;
    if (r->result && !r->result->taken)
        corm_result_free(r->result);
    corm_result_free(r->view);
    if (r->copy)
        corm__copy_detach(r);
    corm_error_clear(&r->error);
    corm__free(a, r, r->size);
}

static void list_append(corm_conn *c, corm__req *r)
{
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nreqs++;
    /* Invariant: the requests before c->unsent were sent, those from it on
     * were not; libpq receives them in list order. */
    if (!c->unsent && !(r->flags & CORM__REQ_SENT))
        c->unsent = r;
}

static corm__req *list_pop(corm_conn *c)
{
    corm__req *r = c->head;
    if (r) {
        if (c->unsent == r)
            c->unsent = r->next;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        r->next = NULL;
        c->nreqs--;
    }
    return r;
}

static void list_remove(corm_conn *c, corm__req *r)
{
    corm__req *prev = NULL;
    for (corm__req *p = c->head; p; prev = p, p = p->next) {
        if (p != r)
            continue;
        if (c->unsent == p)
            c->unsent = p->next;
        if (prev)
            prev->next = p->next;
        else
            c->head = p->next;
        if (c->tail == p)
            c->tail = prev;
        p->next = NULL;
        c->nreqs--;
        return;
    }
}

/* Runs r's callback, once, and forgets it; the request stays in the list
 * when the server still owes results for it. */
static void complete(corm_conn *c, corm__req *r, corm_result *res, const corm_error *err)
{
    if (r->flags & (CORM__REQ_ABANDONED | CORM__REQ_INTERNAL))
        return;
    r->flags |= CORM__REQ_ABANDONED;
    c->npending--;
    if (r->deadline)
        c->ndeadlines--;
    corm_done_fn *done = r->done;
    r->done = NULL;
    if (done) {
        c->in_callback++;
        done(r->ud, err ? NULL : res, err);
        c->in_callback--;
    }
}

corm__req *corm__conn_find(corm_conn *c, corm_request_id id)
{
    for (corm__req *r = c->head; r; r = r->next)
        if (r->id == id && !(r->flags & (CORM__REQ_ABANDONED | CORM__REQ_INTERNAL)))
            return r;
    for (corm__req *r = c->held; r; r = r->next)
        if (r->id == id && !(r->flags & CORM__REQ_ABANDONED))
            return r;
    return NULL;
}

static void deliver(corm_conn *c, corm__req *r);

void corm__conn_fail_all(corm_conn *c, const corm_error *err)
{
    corm__req *r;
    while ((r = list_pop(c)) != NULL) {
        complete(c, r, NULL, err);
        corm__req_free(&c->alloc, r);
    }
    c->awaiting_null = false;
    c->fail_pending = false;
    c->nretrying = 0;
    /* Held requests have their results: hand them over. */
    while ((r = c->held) != NULL) {
        c->held = r->next;
        r->next = NULL;
        deliver(c, r);
    }
}

/* ---- breakage -------------------------------------------------------- */

static void mark_broken(corm_conn *c, const corm_error *why)
{
    if (c->state == CORM_CONN_BROKEN)
        return;
    c->state = CORM_CONN_BROKEN;
    c->copy = NULL;
    c->cancel_target_open = false;
    if (c->fd >= 0 && c->fd_gone)
        c->fd_gone(c->fd_gone_ud, c->fd);
    corm_error_copy(&c->broken_error, why);
    if (c->broken_error.code != CORM_ETIMEOUT)
        c->broken_error.code = CORM_ECONNECTION;
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->fd = -1;
    c->want_write = false;
}

void corm__conn_broken(corm_conn *c, const corm_error *why)
{
    mark_broken(c, why);
    corm__conn_fail_all(c, &c->broken_error);
}

/* Breakage found inside a call that must not run callbacks (submit):
 * requests fail at the next step, which corm_conn_timeout() makes due. */
static void broken_later(corm_conn *c, const char *context)
{
    corm_error e = CORM_ERROR_INIT;
    corm__err_from_conn(&e, c->pg, CORM_ECONNECTION, context);
    mark_broken(c, &e);
    corm_error_clear(&e);
    c->fail_pending = true;
}

void corm__conn_discard(corm_conn *c, const char *why)
{
    corm_error e = CORM_ERROR_INIT;
    corm__err(&e, CORM_ECONNECTION, "connection discarded: %s", why);
    mark_broken(c, &e);
    corm_error_clear(&e);
    c->fail_pending = c->head != NULL;
}

/* ---- sending --------------------------------------------------------- */

/* Queues r's messages in libpq. false when libpq refused (the connection is
 * then unusable: a half-sent segment cannot be taken back). */
static bool send_req(corm_conn *c, corm__req *r)
{
    PGconn *pg = c->pg;
    r->ops = 0;
    r->prepares = false;
    r->stmt_id = 0;
    char evicted[32] = "";
    corm__stmt *s = NULL;
    /* The engine's own statements (DEALLOCATE, ROLLBACK) run unnamed: caching
     * them would evict entries and queue more DEALLOCATEs without end. */
    if (c->opt.prepared_statements && !(r->flags & (CORM__REQ_INTERNAL | CORM__REQ_UNNAMED))) {
        s = corm__stmt_lookup(c, r->sql, r->keylen);
        if (!s) {
            s = corm__stmt_add(c, r->sql, r->keylen, evicted);
            /* Out of memory for the cache: run unnamed rather than fail. */
            if (s) {
                if (!PQsendPrepare(pg, corm__stmt_name(s), r->sql, r->nparams, r->oids))
                    return false;
                r->ops++;
                r->prepares = true;
            }
        }
    }
    int ok;
    if (s) {
        r->stmt_id = corm__stmt_id(s);
        ok = PQsendQueryPrepared(pg, corm__stmt_name(s), r->nparams, r->values, r->lens,
                                 r->formats, 1);
    } else {
        ok = PQsendQueryParams(pg, r->sql, r->nparams, r->oids, r->values, r->lens, r->formats,
                               1);
    }
    if (!ok)
        return false;
    r->ops++;
    if (!PQpipelineSync(pg))
        return false;
    r->flags |= CORM__REQ_SENT;
    if (evicted[0]) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", evicted);
        corm__conn_submit_internal(c, sql, NULL);
    }
    return true;
}

static void flush(corm_conn *c)
{
    if (c->state != CORM_CONN_READY)
        return;
    int f = PQflush(c->pg);
    if (f < 0)
        broken_later(c, "cannot send to the server");
    else
        c->want_write = f == 1;
}

static bool cancel_in_flight(corm_conn *c);

/* Hands every unsent request to libpq, in list order. */
static void send_pending(corm_conn *c)
{
    /* send_req may queue a DEALLOCATE behind the request it sends; that
     * push must not start sending from inside this loop. */
    if (c->sending)
        return;
    c->sending = true;
    while (c->unsent && c->state == CORM_CONN_READY && !c->fail_pending && !c->copy &&
           !cancel_in_flight(c)) {
        corm__req *r = c->unsent;
        if (r->flags & CORM__REQ_COPY) {
            /* A barrier: it starts once everything before it is done, and
             * what comes after waits for it to end. */
            if (r != c->head)
                break;
            if (!corm__copy_start(c, r)) {
                broken_later(c, "cannot start COPY");
                break;
            }
            r->flags |= CORM__REQ_SENT;
            c->unsent = r->next;
            break;
        }
        if (!send_req(c, r)) {
            broken_later(c, "cannot send the request");
            break;
        }
        c->unsent = r->next;
    }
    c->sending = false;
    flush(c);
}

void corm__conn_push(corm_conn *c, corm__req *r)
{
    r->flags &= ~(unsigned)CORM__REQ_SENT;
    r->seq = ++c->push_seq;
    list_append(c, r);
    if (!(r->flags & CORM__REQ_INTERNAL)) {
        c->npending++;
        if (r->deadline)
            c->ndeadlines++;
    }
    send_pending(c);
}

void corm__conn_ready(corm_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        corm_error e = CORM_ERROR_INIT;
        corm__err_from_conn(&e, c->pg, CORM_ECONNECTION, "cannot enter pipeline mode");
        corm__conn_broken(c, &e);
        corm_error_clear(&e);
        return;
    }
    c->state = CORM_CONN_READY;
    c->was_ready = true;
    c->connect_deadline = 0;
    send_pending(c);
}

static int check_submittable(corm_conn *c, corm_error *err)
{
    if (c->closing || c->close_requested)
        return corm__err(err, CORM_EMISUSE, "connection is closing");
    if (c->state == CORM_CONN_BROKEN) {
        if (c->broken_error.message)
            return corm__err(err, CORM_ECONNECTION, "connection is broken: %s",
                             c->broken_error.message);
        return corm__err(err, CORM_ECONNECTION, "connection is broken");
    }
    return CORM_OK;
}

int corm__conn_submit_flags(corm_conn *c, const corm_query *q, const char *sql,
                            const char *prefix, unsigned flags, corm_done_fn *done, void *ud,
                            corm_request_id *id, corm_error *err)
{
    int rc = check_submittable(c, err);
    if (rc < 0)
        return rc;
    corm__req *r;
    rc = corm__req_new_ex(&r, &c->alloc, q, sql, prefix, done, ud, err);
    if (rc < 0)
        return rc;
    r->flags |= flags;
    r->id = ++*c->next_id;
    if (q && q->timeout_ms > 0)
        r->deadline = corm__now_ms() + q->timeout_ms;
    if (id)
        *id = r->id;
    corm__conn_push(c, r);
    return CORM_OK;
}

int corm__conn_submit_internal(corm_conn *c, const char *sql, corm_error *err)
{
    if (c->state == CORM_CONN_BROKEN || c->closing)
        return corm__err(err, CORM_ECONNECTION, "connection is closed");
    corm__req *r;
    int rc = corm__req_new(&r, &c->alloc, NULL, sql, NULL, NULL, err);
    if (rc < 0)
        return rc;
    r->flags |= CORM__REQ_INTERNAL;
    r->id = ++*c->next_id;
    corm__conn_push(c, r);
    return CORM_OK;
}

static int submit_req(corm_conn *c, const corm_query *q, const char *sql, corm_rows_fn *rows,
                      corm_done_fn *done, void *ud, corm_request_id *id, corm_error *err)
{
    int rc = check_submittable(c, err);
    if (rc < 0)
        return rc;
    corm__req *r;
    rc = corm__req_new(&r, &c->alloc, q, sql, done, ud, err);
    if (rc < 0)
        return rc;
    r->rows = rows;
    r->id = ++*c->next_id;
    if (q && q->timeout_ms > 0)
        r->deadline = corm__now_ms() + q->timeout_ms;
    if (id)
        *id = r->id;
    corm__conn_push(c, r);
    return CORM_OK;
}

int corm__conn_submit_req(corm_conn *c, const corm_query *q, const char *sql,
                          corm_done_fn *done, void *ud, corm_request_id *id, corm_error *err)
{
    return submit_req(c, q, sql, NULL, done, ud, id, err);
}

int corm_conn_submit_stream(corm_conn *c, const corm_query *q, corm_rows_fn *rows,
                            corm_done_fn *done, void *ud, corm_request_id *id, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(q != NULL, err, "query is NULL");
    corm__check(rows != NULL, err, "rows callback is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    return submit_req(c, q, NULL, rows, done, ud, id, err);
}

int corm_conn_submit(corm_conn *c, const corm_query *q, corm_done_fn *done, void *ud,
                     corm_request_id *id, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(q != NULL, err, "query is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    return corm__conn_submit_req(c, q, NULL, done, ud, id, err);
}

int corm_conn_submit_sql(corm_conn *c, const char *sql, corm_done_fn *done, void *ud,
                         corm_request_id *id, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(sql != NULL && *sql, err, "sql is NULL or empty");
    corm__check(done != NULL, err, "callback is NULL");
    return corm__conn_submit_req(c, NULL, sql, done, ud, id, err);
}

/* ---- cancellation ---------------------------------------------------- */

struct corm__cancel_job {
    atomic_int refs;
    atomic_bool finished;
    PGcancel *cancel;
};

void corm__cancel_job_release(corm__cancel_job *job)
{
    if (job && atomic_fetch_sub(&job->refs, 1) == 1) {
        if (job->cancel)
            PQfreeCancel(job->cancel);
        free(job);
    }
}

static void *cancel_thread(void *arg)
{
    corm__cancel_job *job = arg;
    char buf[256];
    /* PQcancel blocks on its own short connection; that is why it runs
     * here and not on the host's loop. Its failure needs no report: the
     * request was already completed for its caller. */
    PQcancel(job->cancel, buf, (int)sizeof buf);
    atomic_store(&job->finished, true);
    corm__cancel_job_release(job);
    return NULL;
}

int corm__conn_send_cancel(corm_conn *c, corm_error *err)
{
    if (c->state != CORM_CONN_READY)
        return CORM_OK;
    corm__cancel_job *job = malloc(sizeof *job);
    if (!job)
        return corm__err_nomem(err);
    atomic_init(&job->refs, 2);
    atomic_init(&job->finished, false);
    job->cancel = PQgetCancel(c->pg);
    if (!job->cancel) {
        free(job);
        return corm__err_nomem(err);
    }
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, cancel_thread, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        PQfreeCancel(job->cancel);
        free(job);
        return corm__err(err, CORM_EINTERNAL, "cannot start the cancel thread");
    }
    corm__cancel_job_release(c->cancel_job);
    c->cancel_job = job;
    return CORM_OK;
}

/* True while a cancel sent for c may still reach its backend: its target
 * has not finished, or the helper thread has not yet had the postmaster
 * signal the backend. Sending nothing meanwhile is what makes a cancel
 * unable to stop a statement sent after it. */
static bool cancel_in_flight(corm_conn *c)
{
    if (c->cancel_job && atomic_load(&c->cancel_job->finished)) {
        corm__cancel_job_release(c->cancel_job);
        c->cancel_job = NULL;
    }
    return c->cancel_target_open || c->cancel_job != NULL;
}

bool corm__conn_cancel_pending(const corm_conn *c)
{
    return c->cancel_job && !atomic_load(&c->cancel_job->finished);
}

bool corm__conn_held_back(const corm_conn *c)
{
    return c->cancel_target_open || corm__conn_cancel_pending(c);
}

void corm__conn_abandon(corm_conn *c, corm__req *r, const corm_error *err)
{
    complete(c, r, NULL, err);
    c->cancel_due = true;
    if (!(r->flags & CORM__REQ_SENT)) {
        /* Never reached the server: nothing to stop. */
        list_remove(c, r);
        corm__req_free(&c->alloc, r);
    }
    /* Otherwise the server is stopped when the request is at the head:
     * see cancel_abandoned_head(). */
}

static bool first_word_is(const char *sql, const char *word);

static bool begins_transaction(const corm__req *r)
{
    return first_word_is(r->sql, "begin") || first_word_is(r->sql, "start");
}

/* The head is running on the server (or about to); if its caller has gone,
 * ask the server to stop it.
 *
 * The cancel stops whatever the backend runs when it lands, which may be
 * a request pipelined behind the head. Such a request is marked exposed
 * and run again if it was stopped; that is only possible outside a
 * transaction block, so inside one (or when a request behind would open
 * one) the head is left to finish instead. Nothing else is sent until the
 * cancel is through (cancel_in_flight). */
static void cancel_abandoned_head(corm_conn *c)
{
    corm__req *h = c->head;
    if (!h || c->state != CORM_CONN_READY)
        return;
    if ((h->flags & (CORM__REQ_ABANDONED | CORM__REQ_SENT | CORM__REQ_CANCEL_SENT |
                     CORM__REQ_INTERNAL | CORM__REQ_NO_CANCEL)) !=
        (CORM__REQ_ABANDONED | CORM__REQ_SENT))
        return;
    /* The previous cancel lands on h or on an idle backend; send this one
     * when that is through. corm_conn_timeout() polls for it. */
    if (cancel_in_flight(c))
        return;
    bool in_txn = corm__conn_txn_open(c) || begins_transaction(h);
    for (corm__req *r = h->next; r && (r->flags & CORM__REQ_SENT); r = r->next) {
        if (in_txn || begins_transaction(r)) {
            h->flags |= CORM__REQ_NO_CANCEL;
            return;
        }
    }
    if (corm__conn_send_cancel(c, NULL) < 0) {
        h->flags |= CORM__REQ_NO_CANCEL;   /* no memory or thread: let it finish */
        return;
    }
    h->flags |= CORM__REQ_CANCEL_SENT;
    c->cancel_target_open = true;
    for (corm__req *r = h->next; r && (r->flags & CORM__REQ_SENT); r = r->next)
        r->flags |= CORM__REQ_EXPOSED;
}

int corm_conn_cancel(corm_conn *c, corm_request_id id, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__req *r = corm__conn_find(c, id);
    if (!r)
        return 0;
    corm_error e = CORM_ERROR_INIT;
    corm__err(&e, CORM_ECANCELLED, "request cancelled");
    corm__conn_abandon(c, r, &e);
    corm_error_clear(&e);
    /* The server is asked to stop the request only from the next step,
     * after reading what has arrived: a request whose result already sits
     * in the socket needs no cancel, and one sent anyway would land on the
     * statement after it. corm_conn_timeout() says 0 until then. */
    c->cancel_due = true;
    if (c->in_callback == 0) {
        if (c->close_requested) {
            c->close_requested = false;
            corm_conn_close(c);
        }
    }
    return 1;
}

static void check_deadlines(corm_conn *c)
{
    if (c->ndeadlines <= 0)
        return;
    int64_t now = corm__now_ms();
    /* Rescan after each expiry: its callback may cancel or submit, which
     * changes the list under us. */
    while (!c->close_requested) {
        corm__req *r = c->head;
        while (r && !(r->deadline && r->deadline <= now &&
                      !(r->flags & (CORM__REQ_ABANDONED | CORM__REQ_INTERNAL))))
            r = r->next;
        if (!r)
            return;
        corm_error e = CORM_ERROR_INIT;
        corm__err(&e, CORM_ETIMEOUT, "request timed out");
        corm__conn_abandon(c, r, &e);
        corm_error_clear(&e);
    }
}

/* ---- receiving ------------------------------------------------------- */

/* Tracks BEGIN/COMMIT/ROLLBACK that callers send as SQL text, from the
 * command tags: in pipeline mode PQtransactionStatus() only says "active". */
static void track_transaction(corm_conn *c, const corm__req *r, const PGresult *res)
{
    const char *tag = PQcmdStatus((PGresult *)res);
    if (!strcmp(tag, "BEGIN") || !strcmp(tag, "START TRANSACTION")) {
        c->server_in_txn = true;
    } else if (!strcmp(tag, "COMMIT") || !strcmp(tag, "PREPARE TRANSACTION")) {
        c->server_in_txn = false;
    } else if (!strcmp(tag, "ROLLBACK")) {
        /* ROLLBACK TO SAVEPOINT has the same tag but stays in the block. */
        const char *s = r->sql;
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        bool to_savepoint = false;
        for (const char *p = s; *p; p++)
            if ((*p == 't' || *p == 'T') && !strncasecmp(p, "to ", 3) && p > s &&
                (p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t')) {
                to_savepoint = true;
                break;
            }
        if (!to_savepoint)
            c->server_in_txn = false;
    }
}

static bool is_stale_statement(const corm__req *r)
{
    if (!r->stmt_id || !r->error.code)
        return false;
    /* After ALTER TABLE or a type change, a cached plan whose result type
     * changed cannot run again: the server says so with 0A000. */
    if (!strcmp(r->error.sqlstate, "0A000") && r->error.message &&
        strstr(r->error.message, "cached plan must not change result type"))
        return true;
    /* The statement vanished: DEALLOCATE ALL or DISCARD by the caller. */
    return !strcmp(r->error.sqlstate, "26000");
}

/* Sends r again at the end of the pipeline. */
static void resend(corm_conn *c, corm__req *r)
{
    corm_error_clear(&r->error);
    if (r->result) {
        corm_result_free(r->result);
        r->result = NULL;
    }
    corm_result_free(r->view);
    r->view = NULL;
    r->ops_seen = 0;
    r->flags = (r->flags & ~(unsigned)(CORM__REQ_SENT | CORM__REQ_CANCEL_SENT |
                                       CORM__REQ_PREPARE_FAILED | CORM__REQ_SINGLE_ROW |
                                       CORM__REQ_EXPOSED)) |
               CORM__REQ_RETRIED;
    list_append(c, r);
    send_pending(c);
}

/* True when sql's first word is word (case-insensitive). */
static bool first_word_is(const char *sql, const char *word)
{
    while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
        sql++;
    size_t n = strlen(word);
    return !strncasecmp(sql, word, n) &&
           (sql[n] == 0 || sql[n] == ' ' || sql[n] == ';' || sql[n] == '\n' || sql[n] == '\t');
}

/* Runs r's callback with its outcome and frees it. */
static void deliver(corm_conn *c, corm__req *r)
{
    if (r->error.code)
        complete(c, r, NULL, &r->error);
    else if (r->result)
        complete(c, r, r->result, NULL);
    else if (!(r->flags & (CORM__REQ_ABANDONED | CORM__REQ_INTERNAL))) {
        corm_error e = CORM_ERROR_INIT;
        corm__err(&e, CORM_EINTERNAL, "no result received for the request");
        complete(c, r, NULL, &e);
        corm_error_clear(&e);
    }
    corm__req_free(&c->alloc, r);
}

/* The lowest submission number among requests being retried, 0 if none. */
static uint64_t first_retrying(const corm_conn *c)
{
    uint64_t min = 0;
    if (c->nretrying > 0)
        for (const corm__req *r = c->head; r; r = r->next)
            if ((r->flags & CORM__REQ_RETRIED) && (min == 0 || r->seq < min))
                min = r->seq;
    return min;
}

/* Delivers held requests that no retry precedes any more, in order. */
static void release_held(corm_conn *c)
{
    uint64_t limit = first_retrying(c);
    while (c->held && (limit == 0 || c->held->seq < limit) && !c->close_requested) {
        corm__req *r = c->held;
        c->held = r->next;
        r->next = NULL;
        deliver(c, r);
    }
}

/* Callbacks run in submission order even when a retry runs late: a result
 * that a retried earlier request has not caught up with waits here. */
static void deliver_in_order(corm_conn *c, corm__req *r)
{
    uint64_t limit = first_retrying(c);
    if (limit && r->seq > limit && !(r->flags & (CORM__REQ_ABANDONED | CORM__REQ_INTERNAL))) {
        corm__req **pp = &c->held;
        while (*pp && (*pp)->seq < r->seq)
            pp = &(*pp)->next;
        r->next = *pp;
        *pp = r;
        return;
    }
    deliver(c, r);
    release_held(c);
}

/* The head's sync arrived: all its results are in. */
static void finish_head(corm_conn *c)
{
    corm__req *r = list_pop(c);
    bool was_in_txn = c->server_in_txn || c->txn_depth > 0;
    if (r->flags & CORM__REQ_RETRIED)
        c->nretrying--;
    if (!r->error.code && r->result)
        track_transaction(c, r, r->result->pg);
    else if (r->error.code && (first_word_is(r->sql, "commit") || first_word_is(r->sql, "end")))
        c->server_in_txn = false;   /* a COMMIT that fails rolls back */
    if (r->flags & CORM__REQ_CANCEL_SENT)
        c->cancel_target_open = false;
    if (r->error.code && r->stmt_id) {
        char name[32];
        if (is_stale_statement(r) || (r->flags & CORM__REQ_PREPARE_FAILED)) {
            /* A failed Parse leaves no statement; a stale one is dropped. */
            corm__stmt_forget_id(c, r->sql, r->keylen, r->stmt_id, name);
            if (!(r->flags & CORM__REQ_PREPARE_FAILED) && name[0] &&
                strcmp(r->error.sqlstate, "26000") != 0) {
                char sql[64];
                snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
                corm__conn_submit_internal(c, sql, NULL);
            }
        }
    }
    /* Rows already handed over cannot be taken back: no second run then. */
    bool retryable = !(r->flags & (CORM__REQ_ABANDONED | CORM__REQ_INTERNAL |
                                   CORM__REQ_RETRIED)) &&
                     !was_in_txn && r->nstreamed == 0;
    if (retryable && is_stale_statement(r)) {
        c->nretrying++;
        resend(c, r);
        return;
    }
    if ((r->flags & CORM__REQ_EXPOSED) && !(r->flags & CORM__REQ_ABANDONED) && !was_in_txn &&
        r->nstreamed == 0 && !strcmp(r->error.sqlstate, "57014")) {
        /* Stopped by a cancel meant for an earlier request; outside a
         * transaction block its effects were rolled back, so run it again
         * (the engine's own statements too). */
        c->nretrying++;
        resend(c, r);
        return;
    }
    deliver_in_order(c, r);
}

/* A streamed request's batch: to its rows callback, unless its caller has
 * been answered already (cancelled, timed out) or it failed. */
static void hand_over_rows(corm_conn *c, corm__req *r, PGresult *res)
{
    if ((r->flags & (CORM__REQ_ABANDONED | CORM__REQ_INTERNAL)) || r->error.code) {
        PQclear(res);
        return;
    }
    if (r->view) {
        corm__result_rebind(r->view, res);
    } else if (!(r->view = corm__result_new(&c->alloc, res))) {
        corm__err_nomem(&r->error);
        return;
    }
    r->nstreamed += r->view->nrows;
    c->in_callback++;
    r->rows(r->ud, r->view);
    c->in_callback--;
}

/* Reads every result libpq has ready and completes requests. */
static void process_input(corm_conn *c)
{
    while (c->state == CORM_CONN_READY && !c->close_requested) {
        if (c->copy) {
            if (!corm__copy_process(c)) {
                if (PQstatus(c->pg) == CONNECTION_BAD)
                    return;   /* the caller reports the loss */
                return;
            }
            deliver_in_order(c, list_pop(c));
            send_pending(c);
            continue;
        }
        corm__req *r = c->head;
        if (!r || !(r->flags & CORM__REQ_SENT))
            return;
        /* Single-row mode must be chosen when the statement's results are
         * next and none of them has been parsed (PQisBusy parses). If libpq
         * refuses, the rows come as one batch: still correct. */
        /* An exposed request keeps its rows until it is known not to be
         * stopped: then it can run again. */
        if (r->rows && !(r->flags & (CORM__REQ_SINGLE_ROW | CORM__REQ_EXPOSED)) &&
            !c->awaiting_null && r->ops_seen == r->ops - 1) {
            r->flags |= CORM__REQ_SINGLE_ROW;
            PQsetSingleRowMode(c->pg);
        }
        if (PQisBusy(c->pg))
            return;
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            if (c->awaiting_null) {
                c->awaiting_null = false;
                continue;
            }
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        switch (st) {
        case PGRES_PIPELINE_SYNC:
            PQclear(res);
            finish_head(c);
            break;
        case PGRES_SINGLE_TUPLE:
            hand_over_rows(c, r, res);
            break;
        case PGRES_TUPLES_OK:
        case PGRES_COMMAND_OK:
        case PGRES_EMPTY_QUERY: {
            c->awaiting_null = true;
            if (r->rows && st == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
                r->ops_seen == r->ops - 1) {
                /* Not in single-row mode after all: the whole result is
                 * the one batch, and the request keeps an empty copy. */
                PGresult *empty = PQcopyResult(res, PG_COPYRES_ATTRS);
                hand_over_rows(c, r, res);
                if (!empty) {
                    r->ops_seen++;
                    if (!r->error.code)
                        corm__err_nomem(&r->error);
                    break;
                }
                res = empty;
            }
            int idx = r->ops_seen++;
            if (idx == r->ops - 1 && !r->result && !r->error.code) {
                r->result = corm__result_new(&c->alloc, res);
                if (!r->result)
                    corm__err_nomem(&r->error);
            } else {
                PQclear(res);
            }
            break;
        }
        case PGRES_PIPELINE_ABORTED:
            c->awaiting_null = true;
            r->ops_seen++;
            if (!r->error.code)
                corm__err(&r->error, CORM_EINTERNAL, "statement skipped by the server");
            PQclear(res);
            break;
        case PGRES_COPY_IN:
            /* COPY needs its own call; refuse it without losing the line. */
            c->awaiting_null = true;
            r->ops_seen++;
            corm__err(&r->error, CORM_EPROGRAMMING,
                      "COPY FROM STDIN cannot run as a plain request");
            PQclear(res);
            PQputCopyEnd(c->pg, "COPY is not supported through this call");
            break;
        default: {
            /* FATAL_ERROR, BAD_RESPONSE, COPY_OUT and anything new. */
            c->awaiting_null = true;
            if (r->ops_seen++ == 0 && r->prepares)
                r->flags |= CORM__REQ_PREPARE_FAILED;
            if (!r->error.code) {
                if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
                    corm__err(&r->error, CORM_EPROGRAMMING,
                              "COPY TO STDOUT cannot run as a plain request");
                else
                    corm__err_from_result(&r->error, res, CORM_EINTERNAL);
            }
            PQclear(res);
            if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
                corm_error e = CORM_ERROR_INIT;
                corm__err(&e, CORM_ECONNECTION, "connection closed after an unexpected COPY");
                corm__conn_broken(c, &e);
                corm_error_clear(&e);
                return;
            }
            if (PQstatus(c->pg) == CONNECTION_BAD)
                return;
            break;
        }
        }
    }
}

/* The server or the network went away: fail everything with the most
 * telling message (the server's own, e.g. "terminating connection due to
 * administrator command", when it sent one). */
static void handle_connection_loss(corm_conn *c)
{
    corm_error e = CORM_ERROR_INIT;
    corm__req *h = c->head;
    if (h && h->error.code && h->error.sqlstate[0])
        corm_error_copy(&e, &h->error);
    else
        corm__err_from_conn(&e, c->pg, CORM_ECONNECTION, "connection lost");
    e.code = CORM_ECONNECTION;
    corm__conn_broken(c, &e);
    corm_error_clear(&e);
}

int corm_conn_step(corm_conn *c, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(c->in_callback == 0, err, "called from inside a callback");
    if (c->fail_pending)
        corm__conn_fail_all(c, &c->broken_error);
    /* Deadlines first: a request whose time ran out while it waited (for
     * the handshake, say) must not be sent, or complete, after all. */
    check_deadlines(c);
    if (c->state == CORM_CONN_CONNECTING && !c->close_requested)
        corm__conn_advance_connect(c);
    if (c->state == CORM_CONN_READY) {
        flush(c);
        if (c->state == CORM_CONN_READY && !PQconsumeInput(c->pg)) {
            /* Results already received may explain the loss; read them. */
            process_input(c);
            if (c->state == CORM_CONN_READY)
                handle_connection_loss(c);
        } else if (c->state == CORM_CONN_READY) {
            process_input(c);
            if (c->state == CORM_CONN_READY && PQstatus(c->pg) == CONNECTION_BAD)
                handle_connection_loss(c);
        }
        if (c->fail_pending)
            corm__conn_fail_all(c, &c->broken_error);
        else if (c->state == CORM_CONN_READY && !c->close_requested)
            send_pending(c);   /* a COPY may have reached the head */
    }
    if (!c->close_requested)
        check_deadlines(c);
    if (c->state == CORM_CONN_READY && !c->close_requested) {
        cancel_in_flight(c);   /* forgets a cancel that is through */
        cancel_abandoned_head(c);
        flush(c);
    }
    c->cancel_due = false;
    if (c->close_requested) {
        c->close_requested = false;
        corm_conn_close(c);
        return CORM_OK;
    }
    if (c->state == CORM_CONN_BROKEN && c->head == NULL && c->broken_error.code &&
        !c->broken_reported) {
        c->broken_reported = true;
        corm_error_copy(err, &c->broken_error);
        return c->broken_error.code;
    }
    return CORM_OK;
}
