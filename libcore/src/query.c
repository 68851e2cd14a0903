/*
 * query.c - a statement and its bound parameters, encoded in binary into
 * the query's own buffer when bound.
 */
#include "corm_int.h"

#include <stdlib.h>
#include <string.h>

static bool ident_char(char ch)
{
    unsigned char u = (unsigned char)ch;
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
           u == '_' || u == '$' || u >= 0x80;
}

/* Skips a dollar-quoted string starting at p ("$tag$...$tag$"); returns p
 * unchanged when p does not start one. */
static const char *skip_dollar_quote(const char *p)
{
    const char *t = p + 1;
    if (*t >= '0' && *t <= '9')
        return p;   /* $1 is a placeholder, not a tag */
    while (*t && *t != '$' && ident_char(*t))
        t++;
    if (*t != '$')
        return p;
    size_t taglen = (size_t)(t - p) + 1;
    for (const char *q = t + 1; *q; q++)
        if (*q == '$' && !strncmp(q, p, taglen))
            return q + taglen;
    return p + strlen(p);   /* unterminated: the server will say so */
}

int corm__sql_max_placeholder(const char *s)
{
    /* A lexer just deep enough to see $n outside literals, quoted names and
     * comments, so a wrong parameter count is refused before sending. */
    int max = 0;
    const char *p = s;
    while (*p) {
        char ch = *p;
        if (ch == '\'') {
            bool escapes = p > s && (p[-1] == 'E' || p[-1] == 'e') &&
                           (p - 1 == s || !ident_char(p[-2]));
            for (p++; *p; p++) {
                if (escapes && *p == '\\' && p[1]) {
                    p++;
                    continue;
                }
                if (*p == '\'') {
                    if (p[1] == '\'') {
                        p++;
                        continue;
                    }
                    break;
                }
            }
            if (*p)
                p++;
        } else if (ch == '"') {
            for (p++; *p; p++)
                if (*p == '"') {
                    if (p[1] == '"') {
                        p++;
                        continue;
                    }
                    break;
                }
            if (*p)
                p++;
        } else if (ch == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (ch == '/' && p[1] == '*') {
            int depth = 0;
            while (*p) {
                if (p[0] == '/' && p[1] == '*') {
                    depth++;
                    p += 2;
                } else if (p[0] == '*' && p[1] == '/') {
                    p += 2;
                    if (--depth == 0)
                        break;
                } else {
                    p++;
                }
            }
        } else if (ch == '$' && (p == s || !ident_char(p[-1]))) {
            if (p[1] >= '0' && p[1] <= '9') {
                long n = 0;
                for (p++; *p >= '0' && *p <= '9'; p++)
                    if (n < 100000)
                        n = n * 10 + (*p - '0');
                if (n > max)
                    max = (int)n;
            } else {
                const char *q = skip_dollar_quote(p);
                p = q == p ? p + 1 : q;
            }
        } else if (ident_char(ch)) {
            while (*p && ident_char(*p))
                p++;
        } else {
            p++;
        }
    }
    return max;
}

int corm__check_param_count(const char *sql, int placeholders, int nparams, corm_error *err)
{
    if (placeholders < 0)
        placeholders = corm__sql_max_placeholder(sql);
    if (placeholders == nparams)
        return CORM_OK;
    if (nparams < placeholders)
        return corm__err(err, CORM_EMISUSE, "the query uses $%d but %d parameter%s bound",
                         placeholders, nparams, nparams == 1 ? " is" : "s are");
    if (placeholders == 0)
        return corm__err(err, CORM_EMISUSE,
                         "%d parameter%s bound but the query has no $n placeholder", nparams,
                         nparams == 1 ? " is" : "s are");
    return corm__err(err, CORM_EMISUSE, "%d parameters are bound but the query uses only $1..$%d",
                     nparams, placeholders);
}

int corm_query_sql(corm_query **out, const char *sql, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(sql != NULL, err, "sql is NULL");
    corm__check(*sql != 0, err, "sql is empty");
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm_query *q = corm__calloc(&a, sizeof *q);
    if (!q)
        return corm__err_nomem(err);
    q->alloc = a;
    q->sql = corm__strdup(&a, sql, &q->sql_size);
    if (!q->sql) {
        corm__free(&a, q, sizeof *q);
        return corm__err_nomem(err);
    }
    q->placeholders = corm__sql_max_placeholder(sql);
    *out = q;
    return CORM_OK;
}

static void free_arrays(corm_query *q)
{
    const corm__alloc *a = &q->alloc;
    size_t cap = (size_t)q->cap;
    corm__free(a, q->oids, cap * sizeof *q->oids);
    corm__free(a, q->lens, cap * sizeof *q->lens);
    corm__free(a, q->formats, cap * sizeof *q->formats);
    corm__free(a, q->offsets, cap * sizeof *q->offsets);
}

void corm_query_free(corm_query *q)
{
    if (!q)
        return;
    /* A built query lives on while another query uses it as a part. */
    if (q->built && --q->built->refs > 0)
        return;
    if (q->built)
        corm__built_free(q);
    corm__alloc a = q->alloc;
    free_arrays(q);
    corm__buf_free(&q->data, &a);
    corm__free(&a, q->sql, q->sql_size);
    corm__free(&a, q, sizeof *q);
}

/* Grows the parameter arrays to hold one more; all or nothing. */
static int grow(corm_query *q)
{
    if (q->nparams < q->cap)
        return CORM_OK;
    if (q->cap >= 65535)
        return CORM_EDATA;
    size_t old = (size_t)q->cap, cap = old ? old * 2 : 8;
    const corm__alloc *a = &q->alloc;
    uint32_t *oids = corm__malloc(a, cap * sizeof *oids);
    int32_t *lens = corm__malloc(a, cap * sizeof *lens);
    int32_t *formats = corm__malloc(a, cap * sizeof *formats);
    size_t *offsets = corm__malloc(a, cap * sizeof *offsets);
    if (!oids || !lens || !formats || !offsets) {
        corm__free(a, oids, cap * sizeof *oids);
        corm__free(a, lens, cap * sizeof *lens);
        corm__free(a, formats, cap * sizeof *formats);
        corm__free(a, offsets, cap * sizeof *offsets);
        return CORM_ENOMEM;
    }
    if (old) {
        memcpy(oids, q->oids, old * sizeof *oids);
        memcpy(lens, q->lens, old * sizeof *lens);
        memcpy(formats, q->formats, old * sizeof *formats);
        memcpy(offsets, q->offsets, old * sizeof *offsets);
    }
    free_arrays(q);
    q->oids = oids;
    q->lens = lens;
    q->formats = formats;
    q->offsets = offsets;
    q->cap = (int)cap;
    return CORM_OK;
}

int corm_query_bind(corm_query *q, const corm_value *v, corm_error *err)
{
    corm__check(q != NULL, err, "query is NULL");
    corm__check(v != NULL, err, "value is NULL");
    corm__check(q->built == NULL, err,
                "a built query binds values through its expressions (corm_expr_raw)");
    int rc = grow(q);
    if (rc == CORM_ENOMEM)
        return corm__err_nomem(err);
    if (rc < 0)
        return corm__err(err, CORM_EDATA, "too many parameters (at most 65535)");
    size_t start = q->data.len;
    uint32_t oid;
    int format;
    bool is_null;
    rc = corm__encode(v, &q->data, &q->alloc, &oid, &format, &is_null, err);
    if (rc < 0) {
        q->data.len = start;
        if (err && err->code == CORM_EDATA && err->message) {
            /* Name the parameter, so a caller binding many can find it. */
            char *m = err->message;
            err->message = NULL;
            unsigned flags = err->flags_;
            err->flags_ &= ~1u;
            corm__err(err, CORM_EDATA, "parameter $%d: %s", q->nparams + 1, m);
            if (flags & 1u)
                free(m);
        }
        return rc;
    }
    size_t n = q->data.len - start;
    if (n > INT32_MAX) {
        q->data.len = start;
        return corm__err(err, CORM_EDATA, "parameter $%d: value too large", q->nparams + 1);
    }
    int i = q->nparams++;
    q->oids[i] = oid;
    q->formats[i] = format;
    q->lens[i] = is_null ? -1 : (int32_t)n;
    q->offsets[i] = start;
    return CORM_OK;
}

int corm_query_bind_null(corm_query *q, corm_error *err)
{
    corm_value v = {.kind = CORM_NULL};
    return corm_query_bind(q, &v, err);
}

int corm_query_bind_bool(corm_query *q, bool b, corm_error *err)
{
    corm_value v = {.kind = CORM_BOOL, .v.b = b};
    return corm_query_bind(q, &v, err);
}

int corm_query_bind_int64(corm_query *q, int64_t i, corm_error *err)
{
    corm_value v = {.kind = CORM_INT, .v.i = i};
    return corm_query_bind(q, &v, err);
}

int corm_query_bind_double(corm_query *q, double d, corm_error *err)
{
    corm_value v = {.kind = CORM_FLOAT, .v.f = d};
    return corm_query_bind(q, &v, err);
}

int corm_query_bind_text(corm_query *q, const char *s, ptrdiff_t len, corm_error *err)
{
    corm__check(s != NULL, err, "text is NULL");
    corm_value v = {.kind = CORM_TEXT, .oid = CORM_OID_TEXT};
    v.v.str.ptr = s;
    v.v.str.len = len < 0 ? strlen(s) : (size_t)len;
    return corm_query_bind(q, &v, err);
}

int corm_query_bind_bytes(corm_query *q, const void *p, size_t len, corm_error *err)
{
    corm__check(p != NULL || len == 0, err, "bytes are NULL");
    corm_value v = {.kind = CORM_BYTES};
    v.v.str.ptr = p ? p : "";
    v.v.str.len = len;
    return corm_query_bind(q, &v, err);
}

int corm_query_nparams(const corm_query *q)
{
    return q ? q->nparams : 0;
}

void corm_query_clear_params(corm_query *q)
{
    /* A built query's parameters belong to its expressions. */
    if (!q || q->built)
        return;
    q->nparams = 0;
    q->data.len = 0;
}

int corm_query_set_timeout(corm_query *q, int timeout_ms, corm_error *err)
{
    corm__check(q != NULL, err, "query is NULL");
    corm__check(timeout_ms >= 0, err, "timeout is negative");
    q->timeout_ms = timeout_ms;
    return CORM_OK;
}

const char *corm_query_text(const corm_query *q)
{
    if (q && q->built) {
        /* Compiles (lazily) to show the text; NULL when it cannot compile
         * (corm_query_compile says why). */
        const char *sql;
        return corm__built_finalize((corm_query *)q, &sql, NULL) < 0 ? NULL : sql;
    }
    return q ? q->sql : NULL;
}

int corm__query_push_param(corm_query *q, const corm__param *p, corm_error *err)
{
    int rc = grow(q);
    if (rc == CORM_ENOMEM)
        return corm__err_nomem(err);
    if (rc < 0)
        return corm__err(err, CORM_EDATA, "too many parameters (at most 65535)");
    size_t start = q->data.len;
    if (p->len > 0 && corm__buf_put(&q->data, &q->alloc, p->data, (size_t)p->len) < 0)
        return corm__err_nomem(err);
    int i = q->nparams++;
    q->oids[i] = p->oid;
    q->formats[i] = p->format;
    q->lens[i] = p->len;
    q->offsets[i] = start;
    return i + 1;
}

int corm__query_finalize(const corm_query *q, const char **sql, corm_error *err)
{
    /* Raw SQL is final as given. Built queries compile here, once per
     * shape, so building stays cheap and only submitted queries compile. */
    if (q->built)
        return corm__built_finalize((corm_query *)q, sql, err);
    int rc = corm__check_param_count(q->sql, q->placeholders, q->nparams, err);
    if (rc < 0)
        return rc;
    *sql = q->sql;
    return CORM_OK;
}
