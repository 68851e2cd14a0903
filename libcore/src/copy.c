/*
 * copy.c - bulk writes through COPY ... FROM STDIN in binary format, rows
 * encoded by the codecs and streamed in chunks so memory stays bounded.
 *
 * libpq runs COPY only outside pipeline mode, so a copy is a barrier in the
 * connection's queue: it starts when every request before it has completed,
 * and requests after it wait until it ends and pipeline mode is back.
 */
#include "corm_int.h"

#include <stdio.h>
#include <string.h>

enum { CHUNK = 64 * 1024 };

enum copy_state {
    COPY_QUEUED,      /* waiting for the requests before it */
    COPY_STARTING,    /* COPY sent, waiting for the server to accept data */
    COPY_STREAMING,   /* rows go out */
    COPY_ENDING,      /* CopyDone sent (or CopyFail), waiting for the outcome */
    COPY_DONE,
};

struct corm_copy {
    corm__alloc alloc;
    corm_conn *conn;         /* valid while req is */
    corm__req *req;          /* the barrier request (its callback gets the
                              * outcome); NULL once it has completed */
    bool user_freed;         /* corm_copy_free came first: the engine frees */
    int ncolumns;
    uint32_t *oids;
    corm__buf buf;           /* encoded rows not yet handed to libpq */
    int state;
    bool ended;              /* corm_copy_end or corm_copy_abort was called */
    bool failed;             /* the server refused the copy: drop further rows */
    char *abort_msg;
    size_t abort_size;
    int64_t rows;
};

static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static void copy_free(corm_copy *cp)
{
    corm__alloc a = cp->alloc;
    corm__buf_free(&cp->buf, &a);
    corm__free(&a, cp->oids, (size_t)cp->ncolumns * sizeof *cp->oids);
    corm__free(&a, cp->abort_msg, cp->abort_size);
    corm__free(&a, cp, sizeof *cp);
}

int corm_copy_open(corm_copy **out, corm_conn *c, const char *schema, const char *table,
                   const char *const *columns, const uint32_t *oids, int ncolumns,
                   corm_done_fn *done, void *ud, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(table != NULL, err, "table is NULL");
    corm__check(ncolumns >= 1 && ncolumns <= 1600, err, "ncolumns must be 1..1600");
    corm__check(columns != NULL && oids != NULL, err, "columns or oids is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    if (c->state == CORM_CONN_BROKEN)
        return corm__err(err, CORM_ECONNECTION, "connection is broken");
    int rc;
    if ((schema && (rc = corm__name_check(schema, strlen(schema), "schema", err)) < 0) ||
        (rc = corm__name_check(table, strlen(table), "table", err)) < 0)
        return rc;
    for (int i = 0; i < ncolumns; i++) {
        corm__check(columns[i] != NULL, err, "a column name is NULL");
        if ((rc = corm__name_check(columns[i], strlen(columns[i]), "column", err)) < 0)
            return rc;
    }
    corm__buf sql = {0};
    const corm__alloc *a = &c->alloc;
    bool ok = corm__buf_puts(&sql, a, "COPY ") == CORM_OK;
    if (schema)
        ok = ok && corm__buf_ident(&sql, a, schema) == CORM_OK &&
             corm__buf_puts(&sql, a, ".") == CORM_OK;
    ok = ok && corm__buf_ident(&sql, a, table) == CORM_OK && corm__buf_puts(&sql, a, " (") == 0;
    for (int i = 0; i < ncolumns && ok; i++)
        ok = (i == 0 || corm__buf_puts(&sql, a, ", ") == CORM_OK) &&
             corm__buf_ident(&sql, a, columns[i]) == CORM_OK;
    ok = ok && corm__buf_puts(&sql, a, ") FROM STDIN (FORMAT binary)") == CORM_OK &&
         corm__buf_put(&sql, a, "", 1) == CORM_OK;
    corm_copy *cp = ok ? corm__calloc(a, sizeof *cp) : NULL;
    if (cp)
        cp->oids = corm__malloc(a, (size_t)ncolumns * sizeof *cp->oids);
    if (!cp || !cp->oids) {
        if (cp)
            corm__free(a, cp, sizeof *cp);
        corm__buf_free(&sql, a);
        return corm__err_nomem(err);
    }
    memcpy(cp->oids, oids, (size_t)ncolumns * sizeof *oids);
    cp->ncolumns = ncolumns;
    cp->conn = c;
    cp->alloc = *a;
    if (corm__buf_put(&cp->buf, a, header, sizeof header) < 0) {
        corm__buf_free(&sql, a);
        copy_free(cp);
        return corm__err_nomem(err);
    }
    corm__req *r;
    rc = corm__req_new(&r, a, NULL, sql.data, done, ud, err);
    corm__buf_free(&sql, a);
    if (rc < 0) {
        copy_free(cp);
        return rc;
    }
    r->flags |= CORM__REQ_COPY | CORM__REQ_UNNAMED;
    r->copy = cp;
    r->id = ++*c->next_id;
    cp->req = r;
    *out = cp;
    corm__conn_push(c, r);
    return CORM_OK;
}

/* Hands the buffered bytes to libpq while the server takes data. */
static int push_chunk(corm_copy *cp)
{
    corm_conn *c = cp->conn;
    if (cp->state != COPY_STREAMING || cp->buf.len == 0)
        return CORM_OK;
    int rc = PQputCopyData(c->pg, cp->buf.data, (int)cp->buf.len);
    if (rc < 0) {
        /* The server ended the copy (an error): the outcome says why. */
        cp->failed = true;
        cp->buf.len = 0;
        return CORM_OK;
    }
    if (rc == 0)
        return CORM_OK;   /* libpq's buffer is full: retry after a write */
    cp->buf.len = 0;
    int f = PQflush(c->pg);
    if (f < 0)
        return CORM_ECONNECTION;
    c->want_write = f == 1;
    return CORM_OK;
}

int corm_copy_put(corm_copy *cp, const corm_value *values, corm_error *err)
{
    corm__check(cp != NULL && values != NULL, err, "NULL argument");
    corm__check(!cp->ended, err, "copy already ended");
    if (!cp->req)
        return corm__err(err, CORM_ECANCELLED, "the copy is over (its callback has run)");
    corm_conn *c = cp->conn;
    if (c->state == CORM_CONN_BROKEN)
        return corm__err(err, CORM_ECONNECTION, "connection is broken");
    if (cp->failed)
        return corm__err(err, CORM_ECANCELLED,
                         "the server refused the copy; its error reaches the callback");
    const corm__alloc *a = &cp->alloc;
    size_t start = cp->buf.len;
    char n16[2];
    corm__put_u16(n16, (uint16_t)cp->ncolumns);
    if (corm__buf_put(&cp->buf, a, n16, 2) < 0)
        return corm__err_nomem(err);
    for (int i = 0; i < cp->ncolumns; i++) {
        size_t lenpos = cp->buf.len;
        if (corm__buf_put(&cp->buf, a, "\0\0\0\0", 4) < 0) {
            cp->buf.len = start;
            return corm__err_nomem(err);
        }
        corm_value v = values[i];
        v.oid = cp->oids[i];
        uint32_t oid;
        int format;
        bool is_null;
        int rc = corm__encode(&v, &cp->buf, a, &oid, &format, &is_null, err);
        if (rc < 0) {
            cp->buf.len = start;
            return rc;
        }
        if (is_null) {
            corm__put_u32(cp->buf.data + lenpos, 0xFFFFFFFFu);
            continue;
        }
        if (format == 0) {
            /* Text-format bytes carry a NUL the binary form does not. */
            cp->buf.len--;
            /* An enum's binary form is its label; any other type needs a
             * value of its own kind, not text for the server to parse. */
            if (v.kind != CORM_TEXT || cp->oids[i] < 16384) {
                cp->buf.len = start;
                return corm__err(err, CORM_EDATA,
                                 "column %d: a value of kind %d cannot be copied as type %u",
                                 i + 1, (int)values[i].kind, (unsigned)cp->oids[i]);
            }
        }
        size_t n = cp->buf.len - lenpos - 4;
        if (n > INT32_MAX) {
            cp->buf.len = start;
            return corm__err(err, CORM_EDATA, "column %d: value too large", i + 1);
        }
        corm__put_u32(cp->buf.data + lenpos, (uint32_t)n);
    }
    cp->rows++;
    if (cp->buf.len >= CHUNK && push_chunk(cp) < 0)
        return corm__err(err, CORM_ECONNECTION, "cannot send to the server");
    return CORM_OK;
}

int corm_copy_ready(const corm_copy *cp)
{
    if (!cp || cp->ended || !cp->req)
        return 0;
    if (cp->state == COPY_QUEUED || cp->state == COPY_STARTING)
        return cp->buf.len < CHUNK;   /* buffered until the server takes data */
    return !cp->conn->want_write && cp->buf.len < CHUNK;
}

/* Sends the trailer (or CopyFail) once the server takes data. */
static void finish_stream(corm_copy *cp)
{
    if (!cp->req || !cp->ended || cp->state != COPY_STREAMING)
        return;
    corm_conn *c = cp->conn;
    if (cp->abort_msg || cp->failed) {
        cp->buf.len = 0;
        PQputCopyEnd(c->pg, cp->abort_msg ? cp->abort_msg : "copy abandoned");
    } else {
        if (push_chunk(cp) < 0 || cp->buf.len > 0)
            return;   /* try again after a write */
        if (PQputCopyData(c->pg, "\377\377", 2) <= 0)
            return;
        PQputCopyEnd(c->pg, NULL);
    }
    cp->state = COPY_ENDING;
    int f = PQflush(c->pg);
    c->want_write = f == 1;
}

int corm_copy_end(corm_copy *cp, corm_error *err)
{
    corm__check(cp != NULL, err, "copy is NULL");
    corm__check(!cp->ended, err, "copy already ended");
    cp->ended = true;
    finish_stream(cp);
    return CORM_OK;
}

int corm_copy_abort(corm_copy *cp, const char *reason, corm_error *err)
{
    corm__check(cp != NULL, err, "copy is NULL");
    corm__check(!cp->ended, err, "copy already ended");
    cp->ended = true;
    cp->abort_msg = corm__strdup(&cp->alloc, reason ? reason : "aborted by the client",
                                 &cp->abort_size);
    if (!cp->abort_msg)
        cp->failed = true;   /* still ends it, with a generic message */
    finish_stream(cp);
    return CORM_OK;
}

int64_t corm_copy_rows(const corm_copy *cp)
{
    return cp ? cp->rows : 0;
}

/* ---- the engine's side (called from pipeline.c) ---------------------- */

bool corm__copy_start(corm_conn *c, corm__req *r)
{
    corm_copy *cp = r->copy;
    if (!PQexitPipelineMode(c->pg))
        return false;
    if (!PQsendQuery(c->pg, r->sql))
        return false;
    r->ops = 1;
    cp->state = COPY_STARTING;
    c->copy = cp;
    return true;
}

void corm__copy_detach(corm__req *r)
{
    corm_copy *cp = r->copy;
    if (!cp)
        return;
    r->copy = NULL;
    cp->req = NULL;
    cp->state = COPY_DONE;
    if (cp->user_freed)
        copy_free(cp);
}

void corm_copy_free(corm_copy *cp)
{
    if (!cp)
        return;
    if (!cp->req) {
        copy_free(cp);
        return;
    }
    /* Still in the connection's hands: end it as abandoned and let the
     * engine free it when the copy's request completes. */
    if (!cp->ended)
        corm_copy_abort(cp, "copy abandoned by the client", NULL);
    cp->user_freed = true;
}

/* Reads the copy's outcome; returns true when the copy is over and the
 * connection is back in pipeline mode. */
static void add_context(corm_error *e, const PGresult *res)
{
    const char *ctx = PQresultErrorField(res, PG_DIAG_CONTEXT);
    if (!ctx || !e->message)
        return;
    /* The context names the failing line ("COPY t, line 3, column k"):
     * the row the caller needs to find. */
    corm_error tmp = CORM_ERROR_INIT;
    corm__err(&tmp, e->code, "%s (%s)", e->message, ctx);
    memcpy(tmp.sqlstate, e->sqlstate, sizeof tmp.sqlstate);
    if (e->detail) {
        corm_error d = CORM_ERROR_INIT;
        corm_error_copy(&d, e);
        corm_error_clear(e);
        *e = tmp;
        e->detail = d.detail;   /* keep the server's DETAIL */
        e->flags_ |= d.flags_ & 2u;
        d.detail = NULL;
        d.flags_ &= ~2u;
        corm_error_clear(&d);
    } else {
        corm_error_clear(e);
        *e = tmp;
    }
}

bool corm__copy_process(corm_conn *c)
{
    corm_copy *cp = c->copy;
    corm__req *r = cp->req;
    for (;;) {
        if (cp->state == COPY_STREAMING) {
            push_chunk(cp);
            finish_stream(cp);
            if (cp->state == COPY_STREAMING && !cp->failed)
                return false;   /* more rows to come from the caller */
        }
        if (PQisBusy(c->pg))
            return false;
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            if (cp->state == COPY_STARTING)
                return false;
            /* The copy is over: back to pipelining. */
            cp->state = COPY_DONE;
            c->copy = NULL;
            if (!PQenterPipelineMode(c->pg)) {
                corm__err_from_conn(&r->error, c->pg, CORM_ECONNECTION,
                                    "cannot re-enter pipeline mode");
            }
            return true;
        }
        switch (PQresultStatus(res)) {
        case PGRES_COPY_IN:
            PQclear(res);
            if (cp->state == COPY_STARTING) {
                cp->state = COPY_STREAMING;
                continue;
            }
            return false;   /* still streaming */
        case PGRES_COMMAND_OK:
            if (!r->result && !r->error.code) {
                r->result = corm__result_new(&c->alloc, res);
                if (!r->result)
                    corm__err_nomem(&r->error);
            } else {
                PQclear(res);
            }
            break;
        default:
            if (!r->error.code) {
                corm__err_from_result(&r->error, res, CORM_EINTERNAL);
                add_context(&r->error, res);
            }
            PQclear(res);
            cp->failed = true;
            if (cp->state == COPY_STARTING)
                cp->state = COPY_ENDING;   /* refused before any data */
            if (PQstatus(c->pg) == CONNECTION_BAD)
                return false;
            break;
        }
        if (cp->state == COPY_STREAMING && cp->failed) {
            /* Refused mid-stream: libpq has left copy mode already. */
            cp->state = COPY_ENDING;
        }
    }
}

/* ---- blocking helpers ------------------------------------------------ */

int corm_copy_put_wait(corm_copy *cp, const corm_value *values, corm_error *err)
{
    corm__check(cp != NULL, err, "copy is NULL");
    corm__check(!cp->req || cp->conn->in_callback == 0, err, "called from inside a callback");
    /* cp->req turns NULL when the copy is over (the connection broke, say);
     * the connection may be gone then, so it is not touched again. */
    while (cp->req && !corm_copy_ready(cp) && !cp->failed && !cp->ended)
        corm_conn_wait(cp->conn, -1, NULL);
    return corm_copy_put(cp, values, err);
}

int corm_copy_end_wait(corm_copy *cp, corm_error *err)
{
    corm__check(cp != NULL, err, "copy is NULL");
    int rc = cp->ended ? CORM_OK : corm_copy_end(cp, err);
    if (rc < 0)
        return rc;
    while (cp->req)
        corm_conn_wait(cp->conn, -1, NULL);
    return CORM_OK;
}
