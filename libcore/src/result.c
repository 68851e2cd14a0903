/*
 * result.c - corm_result: the rows of one statement in binary format, with
 * a decoder chosen once per column from its type OID.
 */
#include "corm_int.h"

#include <stdlib.h>
#include <string.h>

corm_result *corm__result_new(const corm__alloc *a, PGresult *pg)
{
    corm_result *r = corm__calloc(a, sizeof *r);
    if (!r) {
        PQclear(pg);
        return NULL;
    }
    r->alloc = *a;
    r->pg = pg;
    corm__arena_init(&r->scratch, a);
    r->nrows = PQntuples(pg);
    r->ncols = PQnfields(pg);
    const char *tuples = PQcmdTuples(pg);
    r->affected = (tuples && *tuples) ? strtoll(tuples, NULL, 10) : -1;
    if (r->ncols <= (int)(sizeof r->inline_decoders / sizeof r->inline_decoders[0])) {
        r->decoders = r->inline_decoders;
    } else {
        r->decoders = corm__malloc(a, (size_t)r->ncols * sizeof *r->decoders);
        if (!r->decoders) {
            PQclear(pg);
            corm__free(a, r, sizeof *r);
            return NULL;
        }
    }
    for (int c = 0; c < r->ncols; c++)
        r->decoders[c] = corm__decoder_for((uint32_t)PQftype(pg, c));
    return r;
}

void corm__result_rebind(corm_result *r, PGresult *pg)
{
    PQclear(r->pg);
    r->pg = pg;
    r->nrows = PQntuples(pg);
    r->affected = -1;
    corm__arena_reset(&r->scratch);
}

void corm_result_free(corm_result *r)
{
    if (!r)
        return;
    corm__alloc a = r->alloc;
    PQclear(r->pg);
    corm__arena_free(&r->scratch);
    if (r->decoders != r->inline_decoders)
        corm__free(&a, r->decoders, (size_t)r->ncols * sizeof *r->decoders);
    corm__free(&a, r, sizeof *r);
}

corm_result *corm_result_take(corm_result *r)
{
    if (r)
        r->taken = true;
    return r;
}

int corm_result_nrows(const corm_result *r)
{
    return r ? r->nrows : 0;
}

int corm_result_ncols(const corm_result *r)
{
    return r ? r->ncols : 0;
}

const char *corm_result_colname(const corm_result *r, int col)
{
    if (!r || col < 0 || col >= r->ncols)
        return NULL;
    return PQfname(r->pg, col);
}

uint32_t corm_result_coltype(const corm_result *r, int col)
{
    if (!r || col < 0 || col >= r->ncols)
        return 0;
    return (uint32_t)PQftype(r->pg, col);
}

int corm_result_colindex(const corm_result *r, const char *name)
{
    if (!r || !name)
        return -1;
    for (int c = 0; c < r->ncols; c++)
        if (strcmp(PQfname(r->pg, c), name) == 0)
            return c;
    return -1;
}

int64_t corm_result_affected(const corm_result *r)
{
    return r ? r->affected : -1;
}

const char *corm_result_command(const corm_result *r)
{
    return r ? PQcmdStatus(r->pg) : "";
}

static int check_cell(const corm_result *r, int row, int col, corm_error *err)
{
    corm__check(r != NULL, err, "result is NULL");
    if (row < 0 || row >= r->nrows)
        return corm__err(err, CORM_EMISUSE, "row %d out of range (0..%d)", row, r->nrows - 1);
    if (col < 0 || col >= r->ncols)
        return corm__err(err, CORM_EMISUSE, "column %d out of range (0..%d)", col,
                         r->ncols - 1);
    return CORM_OK;
}

int corm_result_isnull(const corm_result *r, int row, int col)
{
    int rc = check_cell(r, row, col, NULL);
    if (rc < 0)
        return rc;
    return PQgetisnull(r->pg, row, col) ? 1 : 0;
}

int corm_result_get(const corm_result *r, int row, int col, corm_value *out, corm_error *err)
{
    int rc = check_cell(r, row, col, err);
    if (rc < 0)
        return rc;
    corm__check(out != NULL, err, "out is NULL");
    uint32_t oid = (uint32_t)PQftype(r->pg, col);
    memset(out, 0, sizeof *out);
    out->oid = oid;
    if (PQgetisnull(r->pg, row, col)) {
        out->kind = CORM_NULL;
        return CORM_OK;
    }
    const char *b = PQgetvalue(r->pg, row, col);
    size_t n = (size_t)PQgetlength(r->pg, row, col);
    return r->decoders[col](b, n, oid, out, (corm__arena *)&r->scratch, err);
}

/* Decodes a cell that must not be NULL. */
static int get_nonnull(const corm_result *r, int row, int col, corm_value *v, corm_error *err)
{
    int rc = corm_result_get(r, row, col, v, err);
    if (rc < 0)
        return rc;
    if (v->kind == CORM_NULL)
        return corm__err(err, CORM_EDATA, "column \"%s\" is NULL in row %d",
                         PQfname(r->pg, col), row);
    return CORM_OK;
}

static int wrong_type(const corm_result *r, int col, const char *want, corm_error *err)
{
    return corm__err(err, CORM_EDATA, "column \"%s\" (type %u) is not %s", PQfname(r->pg, col),
                     (unsigned)PQftype(r->pg, col), want);
}

int corm_result_get_int64(const corm_result *r, int row, int col, int64_t *out,
                          corm_error *err)
{
    corm_value v;
    int rc = get_nonnull(r, row, col, &v, err);
    if (rc < 0)
        return rc;
    corm__check(out != NULL, err, "out is NULL");
    if (v.kind != CORM_INT)
        return wrong_type(r, col, "an integer", err);
    *out = v.v.i;
    return CORM_OK;
}

int corm_result_get_double(const corm_result *r, int row, int col, double *out,
                           corm_error *err)
{
    corm_value v;
    int rc = get_nonnull(r, row, col, &v, err);
    if (rc < 0)
        return rc;
    corm__check(out != NULL, err, "out is NULL");
    if (v.kind == CORM_FLOAT) {
        *out = v.v.f;
        return CORM_OK;
    }
    /* Integers up to 2^53 convert exactly; larger ones would round. */
    if (v.kind == CORM_INT && v.v.i <= (INT64_C(1) << 53) && v.v.i >= -(INT64_C(1) << 53)) {
        *out = (double)v.v.i;
        return CORM_OK;
    }
    return wrong_type(r, col, "a float (or an integer exact as one)", err);
}

int corm_result_get_bool(const corm_result *r, int row, int col, bool *out, corm_error *err)
{
    corm_value v;
    int rc = get_nonnull(r, row, col, &v, err);
    if (rc < 0)
        return rc;
    corm__check(out != NULL, err, "out is NULL");
    if (v.kind != CORM_BOOL)
        return wrong_type(r, col, "a boolean", err);
    *out = v.v.b;
    return CORM_OK;
}

int corm_result_get_text(const corm_result *r, int row, int col, const char **out, size_t *len,
                         corm_error *err)
{
    corm_value v;
    int rc = get_nonnull(r, row, col, &v, err);
    if (rc < 0)
        return rc;
    corm__check(out != NULL, err, "out is NULL");
    if (v.kind != CORM_TEXT && v.kind != CORM_JSON && v.kind != CORM_NUMERIC)
        return wrong_type(r, col, "text", err);
    /* libpq NUL-terminates every value, so the pointer is a C string too. */
    *out = v.v.str.ptr;
    if (len)
        *len = v.v.str.len;
    return CORM_OK;
}

int corm_result_get_bytes(const corm_result *r, int row, int col, const void **out,
                          size_t *len, corm_error *err)
{
    corm_value v;
    int rc = get_nonnull(r, row, col, &v, err);
    if (rc < 0)
        return rc;
    corm__check(out != NULL && len != NULL, err, "out or len is NULL");
    if (v.kind != CORM_BYTES && v.kind != CORM_RAW)
        return wrong_type(r, col, "bytea", err);
    *out = v.v.str.ptr;
    *len = v.v.str.len;
    return CORM_OK;
}
