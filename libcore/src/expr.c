/*
 * expr.c - expression nodes: columns, bound values, operators, IN lists
 * bound as one array parameter, subqueries, aggregates, functions, casts,
 * window functions and raw SQL fragments.
 */
#include "corm_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---- parameters ------------------------------------------------------ */

/* The wire type for v when compared with or stored into type t: the
 * column's own type whenever v's kind can be sent as it. */
static uint32_t oid_for(const corm_value *v, const corm__type *t)
{
    if (v->oid || !t)
        return v->oid;
    if (v->kind == CORM_NULL || v->kind == CORM_TEXT)
        return t->oid;   /* 0 for enums: the server infers, reads text */
    if (v->kind == CORM_ARRAY_ITEMS || v->kind == CORM_ARRAY)
        return t->ndims ? t->oid : 0;
    if (t->ndims)
        return 0;
    switch (v->kind) {
    case CORM_INT:
        return (t->family == CORM__F_INT || t->family == CORM__F_FLOAT ||
                t->family == CORM__F_NUMERIC)
                   ? t->oid
                   : 0;
    case CORM_FLOAT:
        return (t->family == CORM__F_FLOAT || t->family == CORM__F_NUMERIC) ? t->oid : 0;
    case CORM_NUMERIC:
        return t->family == CORM__F_NUMERIC ? t->oid : 0;
    case CORM_BOOL:
        return t->family == CORM__F_BOOL ? t->oid : 0;
    case CORM_BYTES:
        return t->family == CORM__F_BYTES ? t->oid : 0;
    case CORM_UUID:
        return t->family == CORM__F_UUID ? t->oid : 0;
    case CORM_JSON:
        return t->family == CORM__F_JSON ? t->oid : 0;
    case CORM_DATE:
        return t->family == CORM__F_DATE ? t->oid : 0;
    case CORM_TIME:
        return t->family == CORM__F_TIME ? t->oid : 0;
    case CORM_TIMETZ:
        return t->family == CORM__F_TIMETZ ? t->oid : 0;
    case CORM_TIMESTAMP:
    case CORM_TIMESTAMPTZ:
        return (t->family == CORM__F_TIMESTAMP || t->family == CORM__F_TIMESTAMPTZ) ? t->oid
                                                                                      : 0;
    case CORM_INTERVAL:
        return t->family == CORM__F_INTERVAL ? t->oid : 0;
    default:
        return 0;
    }
}

static const char *kind_name(corm_kind k)
{
    static const char *const names[] = {
        "NULL", "boolean", "integer", "float", "text", "bytes", "numeric", "date", "time",
        "timetz", "timestamp", "timestamptz", "interval", "uuid", "json", "array", "raw bytes",
        "array"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "value";
}

/* Rewrites err's message as "label: message". */
static int label_err(corm_error *err, int rc, const char *label)
{
    if (!err || !err->message || !label)
        return rc;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err->message);
    corm__err(err, err->code, "%s: %s", label, msg);
    return rc;
}

/* Writes dimension d of an array of enum labels as array text ({"a","b"}),
 * consuming items from *next. */
static int enum_array_dim(corm__buf *b, const corm__alloc *a, const corm_value *v, int d,
                          size_t *next, corm_error *err)
{
    if (corm__buf_put(b, a, "{", 1) < 0)
        return corm__err_nomem(err);
    for (int32_t i = 0; i < v->v.items.dims[d]; i++) {
        if (i && corm__buf_put(b, a, ",", 1) < 0)
            return corm__err_nomem(err);
        if (d + 1 < v->v.items.ndim) {
            int rc = enum_array_dim(b, a, v, d + 1, next, err);
            if (rc < 0)
                return rc;
            continue;
        }
        const corm_value *it = &v->v.items.items[(*next)++];
        if (it->kind == CORM_NULL) {
            if (corm__buf_put(b, a, "NULL", 4) < 0)
                return corm__err_nomem(err);
            continue;
        }
        if (it->kind != CORM_TEXT)
            return corm__err(err, CORM_EDATA, "item %zu of an enum array is not text",
                             *next - 1);
        if (memchr(it->v.str.ptr, 0, it->v.str.len))
            return corm__err(err, CORM_EDATA, "item %zu contains a NUL byte", *next - 1);
        if (corm__buf_put(b, a, "\"", 1) < 0)
            return corm__err_nomem(err);
        for (size_t k = 0; k < it->v.str.len; k++) {
            char ch = it->v.str.ptr[k];
            if ((ch == '"' || ch == '\\') && corm__buf_put(b, a, "\\", 1) < 0)
                return corm__err_nomem(err);
            if (corm__buf_put(b, a, &ch, 1) < 0)
                return corm__err_nomem(err);
        }
        if (corm__buf_put(b, a, "\"", 1) < 0)
            return corm__err_nomem(err);
    }
    if (corm__buf_put(b, a, "}", 1) < 0)
        return corm__err_nomem(err);
    return CORM_OK;
}

/* An array of enum labels for an enum-array column. Binary arrays carry
 * their element type's oid, which libcorm cannot know for an enum, so the
 * array goes as text, untyped: the server reads it as the column's type. */
static int enum_array_param(const corm__alloc *a, const corm_value *v, const char *label,
                            corm__param *out, corm_error *err)
{
    corm__buf b = {0};
    size_t next = 0;
    int rc;
    if (v->v.items.ndim < 0 || v->v.items.ndim > CORM_ARRAY_MAXDIM)
        rc = corm__err(err, CORM_EDATA, "bad array dimensions");
    else if (v->v.items.ndim == 0)
        rc = corm__buf_put(&b, a, "{}", 2) < 0 ? corm__err_nomem(err) : CORM_OK;
    else
        rc = enum_array_dim(&b, a, v, 0, &next, err);
    if (rc == CORM_OK && corm__buf_put(&b, a, "", 1) < 0)
        rc = corm__err_nomem(err);
    if (rc < 0 || b.len > INT32_MAX) {
        corm__buf_free(&b, a);
        return label_err(err, rc < 0 ? rc : corm__err(err, CORM_EDATA, "value too large"),
                         label);
    }
    out->oid = 0;
    out->format = 0;
    out->len = (int32_t)b.len;   /* the NUL included: libpq reads text as a C string */
    out->data = corm__malloc(a, b.len);
    if (!out->data) {
        corm__buf_free(&b, a);
        return corm__err_nomem(err);
    }
    memcpy(out->data, b.data, b.len);
    corm__buf_free(&b, a);
    return CORM_OK;
}

int corm__param_encode(const corm__alloc *a, const corm_value *v, const corm__type *t,
                       const char *label, corm__param *out, corm_error *err)
{
    memset(out, 0, sizeof *out);
    if (t && t->family == CORM__F_ENUM && t->ndims > 0 && v->kind == CORM_ARRAY_ITEMS &&
        v->oid == 0)
        return enum_array_param(a, v, label, out, err);
    corm_value tmp = *v;
    tmp.oid = oid_for(v, t);
    /* A scalar of a kind the column's type cannot hold (a boolean for a
     * bigint, a number for an enum) is refused here, named, before
     * anything is sent, rather than sent in its own type for the server to
     * refuse or, worse, to convert by assignment. Text is exempt: the
     * server parses it as the column's type. */
    if (t && v->oid == 0 && tmp.oid == 0 && t->ndims == 0 &&
        (t->oid != 0 || t->family == CORM__F_ENUM) && v->kind != CORM_NULL &&
        v->kind != CORM_TEXT && v->kind != CORM_RAW && v->kind != CORM_ARRAY &&
        v->kind != CORM_ARRAY_ITEMS)
        return corm__err(err, CORM_EDATA, "%s: a %s value does not fit type %s",
                         label ? label : "value", kind_name(v->kind), t->sql);
    corm__buf b = {0};
    uint32_t oid;
    int format;
    bool is_null;
    int rc = corm__encode(&tmp, &b, a, &oid, &format, &is_null, err);
    if (rc < 0) {
        corm__buf_free(&b, a);
        return label_err(err, rc, label);
    }
    if (!is_null && b.len > INT32_MAX) {
        corm__buf_free(&b, a);
        return corm__err(err, CORM_EDATA, "%s: value too large", label ? label : "value");
    }
    /* An enum's binary form is its label's bytes: text for an enum column
     * goes in binary, typed by the server from the column (the text form
     * the codec made may carry a terminating NUL for libpq). */
    if (t && t->family == CORM__F_ENUM && t->ndims == 0 && v->kind == CORM_TEXT &&
        v->oid == 0 && format == 0) {
        format = 1;
        b.len = v->v.str.len;
    }
    out->oid = oid;
    out->format = format;
    out->len = is_null ? -1 : (int32_t)b.len;
    if (out->len > 0) {
        out->data = corm__malloc(a, (size_t)out->len);
        if (!out->data) {
            corm__buf_free(&b, a);
            return corm__err_nomem(err);
        }
        memcpy(out->data, b.data, (size_t)out->len);
    }
    corm__buf_free(&b, a);
    return CORM_OK;
}

void corm__param_clear(const corm__alloc *a, corm__param *p)
{
    if (p->len > 0)
        corm__free(a, p->data, (size_t)p->len);
    p->data = NULL;
    p->len = -1;
}

/* ---- nodes ----------------------------------------------------------- */

static void free_str(const corm__alloc *a, char *s)
{
    if (s)
        corm__free(a, s, strlen(s) + 1);
}

static corm_expr *node_new(corm_registry *reg, int kind, corm_error *err)
{
    corm_expr *e = corm__calloc(&reg->alloc, sizeof *e);
    if (!e) {
        corm__err_nomem(err);
        return NULL;
    }
    e->refs = 1;
    e->kind = (uint8_t)kind;
    e->reg = reg;
    corm__registry_retain(reg);
    return e;
}

corm_expr *corm_expr_ref(corm_expr *e)
{
    if (e)
        e->refs++;
    return e;
}

void corm_expr_free(corm_expr *e)
{
    if (!e || --e->refs > 0)
        return;
    corm_registry *reg = e->reg;
    const corm__alloc *a = &reg->alloc;
    for (int i = 0; i < e->nargs; i++)
        corm_expr_free(e->args[i]);
    if (e->args)
        corm__free(a, e->args, (size_t)e->nargs * sizeof *e->args);
    for (int i = 0; i < e->nparams; i++)
        corm__param_clear(a, &e->params[i]);
    if (e->params)
        corm__free(a, e->params, (size_t)e->nparams * sizeof *e->params);
    if (e->sub)
        corm_query_free(e->sub);
    if (e->type) {
        free_str(a, (char *)e->type->sql);
        corm__free(a, e->type, sizeof *e->type);
    }
    free_str(a, e->s1);
    free_str(a, e->s2);
    corm__free(a, e, sizeof *e);
    corm__registry_release(reg);
}

static char *dup_str(corm_expr *e, const char *s, corm_error *err)
{
    if (!s)
        return NULL;
    char *d = corm__strdup(&e->reg->alloc, s, NULL);
    if (!d)
        corm__err_nomem(err);
    return d;
}

/* Gives e its children (referenced); all must share e's registry. */
static int set_args(corm_expr *e, int n, const corm_expr *const *args, corm_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!args[i])
            return corm__err(err, CORM_EMISUSE, "expression argument %d is NULL", i);
        if (args[i]->reg != e->reg)
            return corm__err(err, CORM_EMISUSE, "expression from another registry");
    }
    if (n == 0)
        return CORM_OK;
    e->args = corm__malloc(&e->reg->alloc, (size_t)n * sizeof *e->args);
    if (!e->args)
        return corm__err_nomem(err);
    for (int i = 0; i < n; i++)
        e->args[i] = corm_expr_ref((corm_expr *)args[i]);
    e->nargs = n;
    return CORM_OK;
}

static int alloc_params(corm_expr *e, int n, corm_error *err)
{
    if (n == 0)
        return CORM_OK;
    e->params = corm__calloc(&e->reg->alloc, (size_t)n * sizeof *e->params);
    if (!e->params)
        return corm__err_nomem(err);
    for (int i = 0; i < n; i++)
        e->params[i].len = -1;
    e->nparams = n;
    return CORM_OK;
}

/* Ends a constructor: on success hands e out, on failure frees it. */
static int finish(corm_expr **out, corm_expr *e, int rc)
{
    if (rc < 0) {
        corm_expr_free(e);
        return rc;
    }
    *out = e;
    return CORM_OK;
}

#define BEGIN(out, err)                                                  \
    do {                                                                 \
        corm__check((out) != NULL, (err), "out is NULL");                \
        *(out) = NULL;                                                   \
    } while (0)

const corm__type *corm__expr_type(const corm_expr *e)
{
    if (!e)
        return NULL;
    if (e->kind == CORM__E_COLUMN || e->kind == CORM__E_EXCLUDED)
        return &e->model->cols[e->col].type;
    if (e->kind == CORM__E_CAST)
        return e->type;
    return NULL;
}

/* "users.age" for a column expression, else NULL. */
static const char *expr_label(const corm_expr *e, char *buf, size_t size)
{
    if (e && (e->kind == CORM__E_COLUMN || e->kind == CORM__E_EXCLUDED)) {
        snprintf(buf, size, "%s.%s", e->model->table, e->model->cols[e->col].name);
        return buf;
    }
    return NULL;
}

/* Models used in queries can no longer change. */
static void freeze_model(const corm_model *m)
{
    ((corm_model *)m)->frozen = true;
}

static int check_reg(corm_registry *reg, corm_error *err)
{
    corm__check(reg != NULL, err, "registry is NULL");
    corm__check(!reg->freed, err, "registry was freed");
    return CORM_OK;
}

/* ---- leaves ---------------------------------------------------------- */

static int column_node(corm_expr **out, const corm_model *m, int col, const char *alias,
                       int kind, corm_error *err)
{
    BEGIN(out, err);
    corm__check(m != NULL, err, "model is NULL");
    int rc = check_reg(m->reg, err);
    if (rc < 0)
        return rc;
    if (col < 0 || col >= m->ncols)
        return corm__err(err, CORM_EMISUSE, "model \"%s\" has no column %d", m->table, col);
    if (alias && (rc = corm__name_check(alias, strlen(alias), "table alias", err)) < 0)
        return rc;
    corm_expr *e = node_new(m->reg, kind, err);
    if (!e)
        return CORM_ENOMEM;
    freeze_model(m);
    e->model = m;
    e->col = col;
    if (alias && !(e->s1 = dup_str(e, alias, err)))
        return finish(out, e, CORM_ENOMEM);
    return finish(out, e, CORM_OK);
}

int corm_expr_column(corm_expr **out, const corm_model *m, int col, const char *alias,
                     corm_error *err)
{
    return column_node(out, m, col, alias, CORM__E_COLUMN, err);
}

int corm_expr_excluded(corm_expr **out, const corm_model *m, int col, corm_error *err)
{
    return column_node(out, m, col, NULL, CORM__E_EXCLUDED, err);
}

int corm_expr_ident(corm_expr **out, corm_registry *reg, const char *qualifier,
                    const char *name, corm_error *err)
{
    BEGIN(out, err);
    int rc = check_reg(reg, err);
    if (rc < 0)
        return rc;
    corm__check(name != NULL, err, "name is NULL");
    if (qualifier &&
        (rc = corm__name_check(qualifier, strlen(qualifier), "qualifier", err)) < 0)
        return rc;
    if ((rc = corm__name_check(name, strlen(name), "name", err)) < 0)
        return rc;
    corm_expr *e = node_new(reg, CORM__E_IDENT, err);
    if (!e)
        return CORM_ENOMEM;
    if ((qualifier && !(e->s1 = dup_str(e, qualifier, err))) || !(e->s2 = dup_str(e, name, err)))
        return finish(out, e, CORM_ENOMEM);
    return finish(out, e, CORM_OK);
}

static int value_node(corm_expr **out, corm_registry *reg, const corm_value *v,
                      const corm__type *t, const char *label, corm_error *err)
{
    corm_expr *e = node_new(reg, CORM__E_PARAM, err);
    if (!e)
        return CORM_ENOMEM;
    int rc = alloc_params(e, 1, err);
    if (rc == CORM_OK)
        rc = corm__param_encode(&reg->alloc, v, t, label, &e->params[0], err);
    return finish(out, e, rc);
}

int corm_expr_value(corm_expr **out, corm_registry *reg, const corm_value *v, corm_error *err)
{
    BEGIN(out, err);
    int rc = check_reg(reg, err);
    if (rc < 0)
        return rc;
    corm__check(v != NULL, err, "value is NULL");
    return value_node(out, reg, v, NULL, NULL, err);
}

int corm_expr_value_for(corm_expr **out, const corm_expr *like, const corm_value *v,
                        corm_error *err)
{
    BEGIN(out, err);
    corm__check(like != NULL, err, "expression is NULL");
    corm__check(v != NULL, err, "value is NULL");
    char lb[160];
    return value_node(out, like->reg, v, corm__expr_type(like), expr_label(like, lb, sizeof lb),
                      err);
}

/* ---- operators ------------------------------------------------------- */

static bool op_valid(int op)
{
    return op >= CORM_EQ && op <= CORM_CONCAT;
}

int corm_expr_op(corm_expr **out, int op, const corm_expr *a, const corm_expr *b,
                 corm_error *err)
{
    BEGIN(out, err);
    corm__check(a != NULL && b != NULL, err, "operand is NULL");
    corm__check(op_valid(op), err, "bad operator (the CORM_CONTAINS family needs corm_expr_cmp)");
    corm_expr *e = node_new(a->reg, CORM__E_BINARY, err);
    if (!e)
        return CORM_ENOMEM;
    e->op = op;
    const corm_expr *args[2] = {a, b};
    return finish(out, e, set_args(e, 2, args, err));
}

/* Escapes LIKE's wildcards and escape character in s, and wraps it. */
static int like_pattern(const corm__alloc *a, const corm_value *v, int op, corm__buf *b,
                        corm_error *err)
{
    if (v->kind != CORM_TEXT)
        return corm__err(err, CORM_EDATA, "a contains/startswith/endswith value must be text");
    bool lead = op == CORM_CONTAINS || op == CORM_ICONTAINS || op == CORM_ENDSWITH ||
                op == CORM_IENDSWITH;
    bool trail = op == CORM_CONTAINS || op == CORM_ICONTAINS || op == CORM_STARTSWITH ||
                 op == CORM_ISTARTSWITH;
    if (lead && corm__buf_put(b, a, "%", 1) < 0)
        return corm__err_nomem(err);
    for (size_t i = 0; i < v->v.str.len; i++) {
        char c = v->v.str.ptr[i];
        if ((c == '%' || c == '_' || c == '\\') && corm__buf_put(b, a, "\\", 1) < 0)
            return corm__err_nomem(err);
        if (corm__buf_put(b, a, &c, 1) < 0)
            return corm__err_nomem(err);
    }
    if (trail && corm__buf_put(b, a, "%", 1) < 0)
        return corm__err_nomem(err);
    return CORM_OK;
}

int corm_expr_cmp(corm_expr **out, const corm_expr *lhs, int op, const corm_value *v,
                  corm_error *err)
{
    BEGIN(out, err);
    corm__check(lhs != NULL, err, "expression is NULL");
    corm__check(v != NULL, err, "value is NULL");
    corm__check(op >= CORM_EQ && op <= CORM_IENDSWITH, err, "bad operator");
    int rc;
    corm_expr *val = NULL;
    int binop = op;
    if (op >= CORM_CONTAINS) {
        const corm__alloc *a = &lhs->reg->alloc;
        corm__buf b = {0};
        rc = like_pattern(a, v, op, &b, err);
        if (rc == CORM_OK) {
            corm_value pv = *v;
            pv.v.str.ptr = b.data ? b.data : "";
            pv.v.str.len = b.len;
            rc = corm_expr_value_for(&val, lhs, &pv, err);
        }
        corm__buf_free(&b, a);
        binop = (op == CORM_CONTAINS || op == CORM_STARTSWITH || op == CORM_ENDSWITH)
                    ? CORM_LIKE
                    : CORM_ILIKE;
    } else {
        rc = corm_expr_value_for(&val, lhs, v, err);
    }
    if (rc < 0)
        return rc;
    rc = corm_expr_op(out, binop, lhs, val, err);
    corm_expr_free(val);
    return rc;
}

static int logic(corm_expr **out, int kind, const corm_expr *a, const corm_expr *b,
                 corm_error *err)
{
    BEGIN(out, err);
    corm__check(a != NULL && b != NULL, err, "operand is NULL");
    corm_expr *e = node_new(a->reg, kind, err);
    if (!e)
        return CORM_ENOMEM;
    const corm_expr *args[2] = {a, b};
    return finish(out, e, set_args(e, 2, args, err));
}

int corm_expr_and(corm_expr **out, const corm_expr *a, const corm_expr *b, corm_error *err)
{
    return logic(out, CORM__E_AND, a, b, err);
}

int corm_expr_or(corm_expr **out, const corm_expr *a, const corm_expr *b, corm_error *err)
{
    return logic(out, CORM__E_OR, a, b, err);
}

static int unary(corm_expr **out, int kind, const corm_expr *a, bool negate, corm_error *err)
{
    BEGIN(out, err);
    corm__check(a != NULL, err, "operand is NULL");
    corm_expr *e = node_new(a->reg, kind, err);
    if (!e)
        return CORM_ENOMEM;
    e->negate = negate;
    return finish(out, e, set_args(e, 1, &a, err));
}

int corm_expr_not(corm_expr **out, const corm_expr *a, corm_error *err)
{
    return unary(out, CORM__E_NOT, a, false, err);
}

int corm_expr_is_null(corm_expr **out, const corm_expr *a, bool negate, corm_error *err)
{
    return unary(out, CORM__E_ISNULL, a, negate, err);
}

int corm_expr_between(corm_expr **out, const corm_expr *x, const corm_expr *lo,
                      const corm_expr *hi, bool negate, corm_error *err)
{
    BEGIN(out, err);
    corm__check(x != NULL && lo != NULL && hi != NULL, err, "operand is NULL");
    corm_expr *e = node_new(x->reg, CORM__E_BETWEEN, err);
    if (!e)
        return CORM_ENOMEM;
    e->negate = negate;
    const corm_expr *args[3] = {x, lo, hi};
    return finish(out, e, set_args(e, 3, args, err));
}

/* ---- IN lists: one binary array parameter ----------------------------- */

/* A one-dimensional array in PostgreSQL's binary format: ndim, has-null
 * flag, element oid, then (length, lower bound 1) and each element as
 * length (-1 for NULL) and bytes. Elements are already encoded, binary. */
static int encode_array(const corm__alloc *a, const corm__param *elems, size_t n,
                        uint32_t elem_oid, corm__buf *b, corm_error *err)
{
    bool has_null = false;
    for (size_t i = 0; i < n; i++)
        has_null |= elems[i].len < 0;
    char h[20];
    corm__put_u32(h, n ? 1 : 0);
    corm__put_u32(h + 4, has_null ? 1 : 0);
    corm__put_u32(h + 8, elem_oid);
    corm__put_u32(h + 12, (uint32_t)n);
    corm__put_u32(h + 16, 1);
    if (corm__buf_put(b, a, h, n ? 20 : 12) < 0)
        return corm__err_nomem(err);
    for (size_t i = 0; i < n; i++) {
        char l[4];
        corm__put_u32(l, (uint32_t)elems[i].len);
        if (corm__buf_put(b, a, l, 4) < 0 ||
            (elems[i].len > 0 && corm__buf_put(b, a, elems[i].data, (size_t)elems[i].len) < 0))
            return corm__err_nomem(err);
    }
    return CORM_OK;
}

int corm_expr_in(corm_expr **out, const corm_expr *lhs, size_t n, const corm_value *values,
                 bool negate, corm_error *err)
{
    BEGIN(out, err);
    corm__check(lhs != NULL, err, "expression is NULL");
    corm__check(n == 0 || values != NULL, err, "values are NULL");
    corm__check(n <= 100000000, err, "too many values");
    const corm__alloc *a = &lhs->reg->alloc;
    const corm__type *t = corm__expr_type(lhs);
    char lb[160];
    const char *label = expr_label(lhs, lb, sizeof lb);
    if (t && t->ndims)
        return corm__err(err, CORM_EPROGRAMMING, "%s: IN on an array column is not supported",
                         label ? label : "IN");
    corm__param *elems = n ? corm__calloc(a, n * sizeof *elems) : NULL;
    if (n && !elems)
        return corm__err_nomem(err);
    corm_expr *e = NULL;
    corm__buf b = {0};
    int rc = CORM_OK;
    bool all_text = true, binary = true;
    uint32_t elem_oid = t ? t->elem_oid : 0;
    for (size_t i = 0; i < n && rc == CORM_OK; i++) {
        const corm_value *v = &values[i];
        if (v->kind == CORM_NULL) {
            elems[i].len = -1;
            continue;
        }
        all_text &= v->kind == CORM_TEXT;
        rc = corm__param_encode(a, v, t, label, &elems[i], err);
        if (rc < 0)
            break;
        if (elems[i].format != 1 || elems[i].oid == 0)
            binary = false;
        else if (!t && elem_oid == 0)
            elem_oid = elems[i].oid;
        if (elems[i].oid != elem_oid)
            binary = false;
    }
    const char *cast = NULL;
    uint32_t array_oid = elem_oid ? corm__array_oid(elem_oid) : 0;
    if (rc == CORM_OK && !(binary && array_oid && (t || n > 0))) {
        /* Not all binary in the column's own type (an enum, text for a
         * uuid column, or no values to tell the type): send text[] and let
         * the server cast it to the column's array type. */
        if (!all_text && n) {
            rc = corm__err(err, CORM_EDATA,
                           "%s: IN list values do not match the type and are not all text",
                           label ? label : "IN");
        } else {
            for (size_t i = 0; i < n && rc == CORM_OK; i++) {
                if (values[i].kind == CORM_NULL)
                    continue;
                corm__param_clear(a, &elems[i]);
                corm_value tv = values[i];
                tv.oid = CORM_OID_TEXT;
                rc = corm__param_encode(a, &tv, NULL, label, &elems[i], err);
            }
            elem_oid = CORM_OID_TEXT;
            array_oid = CORM_OID_TEXT_ARRAY;
            if (t && t->oid != CORM_OID_TEXT)
                cast = t->sql; /* base type; the [] is added when written */
        }
    }
    if (rc == CORM_OK)
        rc = encode_array(a, elems, n, elem_oid, &b, err);
    if (rc == CORM_OK && b.len > INT32_MAX)
        rc = corm__err(err, CORM_EDATA, "IN list too large");
    if (rc == CORM_OK) {
        e = node_new(lhs->reg, CORM__E_IN_ARRAY, err);
        if (!e)
            rc = CORM_ENOMEM;
    }
    if (rc == CORM_OK) {
        e->negate = negate;
        rc = set_args(e, 1, &lhs, err);
        if (rc == CORM_OK)
            rc = alloc_params(e, 1, err);
        if (rc == CORM_OK && cast && !(e->s1 = dup_str(e, cast, err)))
            rc = CORM_ENOMEM;
        if (rc == CORM_OK) {
            corm__param *p = &e->params[0];
            p->oid = array_oid;
            p->format = 1;
            p->data = corm__malloc(a, b.len);
            if (!p->data)
                rc = corm__err_nomem(err);
            else {
                memcpy(p->data, b.data, b.len);
                p->len = (int32_t)b.len;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        corm__param_clear(a, &elems[i]);
    if (elems)
        corm__free(a, elems, n * sizeof *elems);
    corm__buf_free(&b, a);
    if (rc < 0) {
        corm_expr_free(e);
        return rc;
    }
    *out = e;
    return CORM_OK;
}

/* ---- subqueries ------------------------------------------------------ */

/* Takes a reference on sub and freezes it. */
static int use_sub(corm_expr *e, corm_query *sub, corm_error *err)
{
    if (!sub || !sub->built)
        return corm__err(err, CORM_EMISUSE, "a subquery must be a built query");
    if (sub->built->reg != e->reg)
        return corm__err(err, CORM_EMISUSE, "subquery from another registry");
    sub->built->frozen = true;
    sub->built->refs++;
    e->sub = sub;
    return CORM_OK;
}

static int sub_node(corm_expr **out, int kind, const corm_expr *lhs, corm_query *sub,
                    bool negate, corm_error *err)
{
    BEGIN(out, err);
    corm__check(sub != NULL && sub->built != NULL, err, "subquery is NULL or not built");
    corm_expr *e = node_new(sub->built->reg, kind, err);
    if (!e)
        return CORM_ENOMEM;
    e->negate = negate;
    int rc = CORM_OK;
    if (lhs)
        rc = set_args(e, 1, &lhs, err);
    if (rc == CORM_OK)
        rc = use_sub(e, sub, err);
    return finish(out, e, rc);
}

int corm_expr_in_query(corm_expr **out, const corm_expr *lhs, corm_query *sub, bool negate,
                       corm_error *err)
{
    corm__check(lhs != NULL, err, "expression is NULL");
    return sub_node(out, CORM__E_IN_QUERY, lhs, sub, negate, err);
}

int corm_expr_exists(corm_expr **out, corm_query *sub, corm_error *err)
{
    return sub_node(out, CORM__E_EXISTS, NULL, sub, false, err);
}

int corm_expr_subquery(corm_expr **out, corm_query *sub, corm_error *err)
{
    return sub_node(out, CORM__E_SUBQUERY, NULL, sub, false, err);
}

/* ---- functions ------------------------------------------------------- */

int corm_expr_agg(corm_expr **out, corm_registry *reg, int agg, const corm_expr *arg,
                  unsigned flags, corm_error *err)
{
    BEGIN(out, err);
    int rc = check_reg(reg, err);
    if (rc < 0)
        return rc;
    corm__check(agg >= CORM_COUNT && agg <= CORM_MAX, err, "bad aggregate");
    corm__check((flags & ~(unsigned)CORM_AGG_DISTINCT) == 0, err, "bad aggregate flags");
    if (!arg && agg != CORM_COUNT)
        return corm__err(err, CORM_EMISUSE, "only count takes no argument");
    if (!arg && (flags & CORM_AGG_DISTINCT))
        return corm__err(err, CORM_EMISUSE, "count(DISTINCT *) is not SQL");
    corm_expr *e = node_new(reg, CORM__E_AGG, err);
    if (!e)
        return CORM_ENOMEM;
    e->op = agg;
    e->flags = flags;
    return finish(out, e, arg ? set_args(e, 1, &arg, err) : CORM_OK);
}

static bool func_name_ok(const char *s)
{
    const char *dot = strchr(s, '.');
    if (dot && strchr(dot + 1, '.'))
        return false;
    const char *parts[2] = {s, dot ? dot + 1 : NULL};
    size_t lens[2] = {dot ? (size_t)(dot - s) : strlen(s), dot ? strlen(dot + 1) : 0};
    for (int i = 0; i < (dot ? 2 : 1); i++) {
        const char *p = parts[i];
        size_t n = lens[i];
        if (n == 0 || n > CORM__NAME_MAX || !(isalpha((unsigned char)p[0]) || p[0] == '_'))
            return false;
        for (size_t k = 1; k < n; k++)
            if (!(isalnum((unsigned char)p[k]) || p[k] == '_'))
                return false;
    }
    return true;
}

int corm_expr_func(corm_expr **out, corm_registry *reg, const char *name, int nargs,
                   const corm_expr *const *args, corm_error *err)
{
    BEGIN(out, err);
    int rc = check_reg(reg, err);
    if (rc < 0)
        return rc;
    corm__check(name != NULL, err, "function name is NULL");
    corm__check(nargs >= 0 && (nargs == 0 || args != NULL), err, "arguments are NULL");
    if (!func_name_ok(name))
        return corm__err(err, CORM_EPROGRAMMING,
                         "function name \"%s\" must be [schema.]name of letters, digits and _",
                         name);
    corm_expr *e = node_new(reg, CORM__E_FUNC, err);
    if (!e)
        return CORM_ENOMEM;
    if (!(e->s1 = dup_str(e, name, err)))
        return finish(out, e, CORM_ENOMEM);
    return finish(out, e, set_args(e, nargs, args, err));
}

int corm_expr_cast(corm_expr **out, const corm_expr *x, const char *type, corm_error *err)
{
    BEGIN(out, err);
    corm__check(x != NULL, err, "expression is NULL");
    corm__type t;
    char sqlbuf[CORM__TYPE_MAX];
    int rc = corm__type_parse(x->reg, type, &t, sqlbuf, err);
    if (rc < 0)
        return rc;
    if (t.serial)
        return corm__err(err, CORM_EPROGRAMMING, "cannot cast to %s", t.sql);
    corm_expr *e = node_new(x->reg, CORM__E_CAST, err);
    if (!e)
        return CORM_ENOMEM;
    e->type = corm__malloc(&x->reg->alloc, sizeof *e->type);
    if (!e->type)
        return finish(out, e, corm__err_nomem(err));
    *e->type = t;
    e->type->sql = corm__strdup(&x->reg->alloc, sqlbuf, NULL);
    if (!e->type->sql) {
        corm__free(&x->reg->alloc, e->type, sizeof *e->type);
        e->type = NULL;
        return finish(out, e, corm__err_nomem(err));
    }
    return finish(out, e, set_args(e, 1, &x, err));
}

int corm_expr_order(corm_expr **out, const corm_expr *x, unsigned flags, corm_error *err)
{
    BEGIN(out, err);
    corm__check(x != NULL, err, "expression is NULL");
    corm__check((flags & ~(unsigned)(CORM_DESC | CORM_NULLS_FIRST | CORM_NULLS_LAST)) == 0 &&
                    (flags & (CORM_NULLS_FIRST | CORM_NULLS_LAST)) !=
                        (CORM_NULLS_FIRST | CORM_NULLS_LAST),
                err, "bad order flags");
    corm_expr *e = node_new(x->reg, CORM__E_ORDER, err);
    if (!e)
        return CORM_ENOMEM;
    e->op = (int)flags;
    return finish(out, e, set_args(e, 1, &x, err));
}

int corm_expr_over(corm_expr **out, const corm_expr *fn, int npartition,
                   const corm_expr *const *partition, int norder, const corm_expr *const *order,
                   corm_error *err)
{
    BEGIN(out, err);
    corm__check(fn != NULL, err, "function is NULL");
    corm__check(npartition >= 0 && (npartition == 0 || partition), err, "partition is NULL");
    corm__check(norder >= 0 && (norder == 0 || order), err, "order is NULL");
    if (fn->kind != CORM__E_FUNC && fn->kind != CORM__E_AGG)
        return corm__err(err, CORM_EPROGRAMMING,
                         "OVER needs a function call (corm_expr_func or corm_expr_agg)");
    corm_expr *e = node_new(fn->reg, CORM__E_OVER, err);
    if (!e)
        return CORM_ENOMEM;
    e->op = npartition;
    int n = 1 + npartition + norder;
    const corm_expr **args = corm__malloc(&fn->reg->alloc, (size_t)n * sizeof *args);
    if (!args)
        return finish(out, e, corm__err_nomem(err));
    args[0] = fn;
    for (int i = 0; i < npartition; i++)
        args[1 + i] = partition[i];
    for (int i = 0; i < norder; i++)
        args[1 + npartition + i] = order[i];
    int rc = set_args(e, n, args, err);
    corm__free(&fn->reg->alloc, args, (size_t)n * sizeof *args);
    return finish(out, e, rc);
}

/* ---- raw SQL --------------------------------------------------------- */

int corm_expr_raw(corm_expr **out, corm_registry *reg, const char *sql, int nparams,
                  const corm_value *params, corm_error *err)
{
    BEGIN(out, err);
    int rc = check_reg(reg, err);
    if (rc < 0)
        return rc;
    corm__check(sql != NULL, err, "sql is NULL");
    corm__check(nparams >= 0 && (nparams == 0 || params != NULL), err, "params are NULL");
    const char *s = sql;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return corm__err(err, CORM_EPROGRAMMING, "raw SQL is empty");
    if (!corm__utf8_valid(sql, strlen(sql)))
        return corm__err(err, CORM_EPROGRAMMING, "raw SQL is not valid UTF-8");
    int maxp;
    if ((rc = corm__sql_scan(sql, "raw SQL", &maxp, err)) < 0)
        return rc;
    if (maxp > nparams)
        return corm__err(err, CORM_EPROGRAMMING, "raw SQL uses $%d but has %d parameter(s)",
                         maxp, nparams);
    corm_expr *e = node_new(reg, CORM__E_RAW, err);
    if (!e)
        return CORM_ENOMEM;
    if (!(e->s1 = dup_str(e, sql, err)))
        return finish(out, e, CORM_ENOMEM);
    rc = alloc_params(e, nparams, err);
    for (int i = 0; i < nparams && rc == CORM_OK; i++) {
        char lb[48];
        snprintf(lb, sizeof lb, "raw SQL parameter $%d", i + 1);
        rc = corm__param_encode(&reg->alloc, &params[i], NULL, lb, &e->params[i], err);
    }
    return finish(out, e, rc);
}
