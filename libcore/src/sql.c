/*
 * sql.c - built queries: the clause calls that make a query's AST, the
 * shape key and the registry's cache of compiled shapes, and the compiler
 * from AST to PostgreSQL SQL with $n parameters.
 */
#include "corm_int.h"

#include <stdio.h>
#include <string.h>

/* ---- making built queries -------------------------------------------- */

static int built_new(corm_query **out, corm_registry *reg, int kind, const corm_model *m,
                     corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(reg != NULL, err, "registry is NULL");
    corm__check(!reg->freed, err, "registry was freed");
    corm_query *q = corm__calloc(&reg->alloc, sizeof *q);
    corm__built *b = corm__calloc(&reg->alloc, sizeof *b);
    if (!q || !b) {
        corm__free(&reg->alloc, q, sizeof *q);
        corm__free(&reg->alloc, b, sizeof *b);
        return corm__err_nomem(err);
    }
    q->alloc = reg->alloc;
    q->built = b;
    b->reg = reg;
    b->refs = 1;
    b->kind = kind;
    b->model = m;
    corm__registry_retain(reg);
    if (m) {
        ((corm_model *)m)->frozen = true;
        b->rels = corm__region_alloc(&b->arena, &reg->alloc, 4 * sizeof *b->rels);
        if (!b->rels) {
            corm_query_free(q);
            return corm__err_nomem(err);
        }
        b->caprels = 4;
        memset(&b->rels[0], 0, sizeof b->rels[0]);
        b->rels[0].kind = CORM__REL_MODEL;
        b->rels[0].model = m;
        b->nrels = 1;
    }
    *out = q;
    return CORM_OK;
}

static void slot_release(corm__slot *s)
{
    corm_expr_free(s->e);
    s->e = NULL;
}

void corm__built_free(corm_query *q)
{
    corm__built *b = q->built;
    corm_registry *reg = b->reg;
    for (int i = 0; i < b->nrels; i++) {
        slot_release(&b->rels[i].on);
        corm_query_free(b->rels[i].sub);
    }
    for (int i = 0; i < b->nitems; i++)
        slot_release(&b->items[i].s);
    for (int i = 0; i < b->ndistinct_on; i++)
        slot_release(&b->distinct_on[i]);
    for (int i = 0; i < b->nwhere; i++)
        slot_release(&b->where[i]);
    for (int i = 0; i < b->ngroup; i++)
        slot_release(&b->group[i]);
    for (int i = 0; i < b->nhaving; i++)
        slot_release(&b->having[i]);
    for (int i = 0; i < b->norder; i++)
        slot_release(&b->order[i].s);
    for (int i = 0; i < b->nctes; i++)
        corm_query_free(b->ctes[i].sub);
    for (int i = 0; i < b->nsetops; i++)
        corm_query_free(b->setops[i].sub);
    for (int i = 0; i < b->nsets; i++)
        slot_release(&b->sets[i].s);
    if (b->shape)
        corm__shape_release(reg, b->shape);
    corm__region_free(&b->arena, &reg->alloc);
    corm__free(&reg->alloc, b, sizeof *b);
    q->built = NULL;
    corm__registry_release(reg);
}

int corm_query_select(corm_query **out, const corm_model *m, const char *alias, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(m != NULL, err, "model is NULL");
    int rc;
    if (alias && (rc = corm__name_check(alias, strlen(alias), "table alias", err)) < 0)
        return rc;
    rc = built_new(out, m->reg, CORM_QUERY_SELECT, m, err);
    if (rc == CORM_OK && alias) {
        corm__built *b = (*out)->built;
        b->rels[0].alias = corm__region_strdup(&b->arena, &b->reg->alloc, alias);
        if (!b->rels[0].alias) {
            corm_query_free(*out);
            *out = NULL;
            return corm__err_nomem(err);
        }
    }
    return rc;
}

int corm_query_new(corm_query **out, corm_registry *reg, corm_error *err)
{
    return built_new(out, reg, CORM_QUERY_SELECT, NULL, err);
}

int corm_query_insert(corm_query **out, const corm_model *m, corm_error *err)
{
    corm__check(m != NULL, err, "model is NULL");
    return built_new(out, m->reg, CORM_QUERY_INSERT, m, err);
}

int corm_query_update(corm_query **out, const corm_model *m, corm_error *err)
{
    corm__check(m != NULL, err, "model is NULL");
    return built_new(out, m->reg, CORM_QUERY_UPDATE, m, err);
}

int corm_query_delete(corm_query **out, const corm_model *m, corm_error *err)
{
    corm__check(m != NULL, err, "model is NULL");
    return built_new(out, m->reg, CORM_QUERY_DELETE, m, err);
}

int corm_query_kind(const corm_query *q)
{
    return q && q->built ? q->built->kind : CORM_QUERY_RAW;
}

/* ---- clause plumbing ------------------------------------------------- */

#define BUILT(q, err)                                                                    \
    corm__check((q) != NULL, err, "query is NULL");                                      \
    corm__check((q)->built != NULL, err, "not a built query (made by corm_query_sql)");  \
    corm__built *b = (q)->built;                                                         \
    corm__check(!b->frozen, err,                                                         \
                "the query is used inside another query and can no longer change")

#define KIND(b, cond, err, what)                                                         \
    corm__check(cond, err, what " is not available for this kind of query")

/* A change: the compiled shape no longer applies. */
static void changed(corm__built *b)
{
    if (b->shape) {
        corm__shape_release(b->reg, b->shape);
        b->shape = NULL;
    }
}

static int grow(corm__built *b, void **arr, int *cap, int n, size_t elem, corm_error *err)
{
    if (n < *cap)
        return CORM_OK;
    int ncap = *cap ? *cap * 2 : 4;
    void *p = corm__region_alloc(&b->arena, &b->reg->alloc, (size_t)ncap * elem);
    if (!p)
        return corm__err_nomem(err);
    if (n)
        memcpy(p, *arr, (size_t)n * elem);
    *arr = p;
    *cap = ncap;
    return CORM_OK;
}

#define GROW(b, arr, cap, n, err) \
    grow((b), (void **)&(arr), &(cap), (n), sizeof *(arr), (err))

static const char *keep_name(corm__built *b, const char *s, const char *what, int *rc,
                             corm_error *err)
{
    *rc = CORM_OK;
    if (!s)
        return NULL;
    *rc = corm__name_check(s, strlen(s), what, err);
    if (*rc < 0)
        return NULL;
    const char *d = corm__region_strdup(&b->arena, &b->reg->alloc, s);
    if (!d)
        *rc = corm__err_nomem(err);
    return d;
}

static int push_query_params(corm_query *q, const corm_query *sub, corm_error *err)
{
    for (int i = 0; i < sub->nparams; i++) {
        corm__param p = {sub->oids[i], sub->formats[i], sub->lens[i],
                         sub->lens[i] > 0 ? sub->data.data + sub->offsets[i] : NULL};
        int rc = corm__query_push_param(q, &p, err);
        if (rc < 0)
            return rc;
    }
    return CORM_OK;
}

/* The parameters of e, in the compiler's order: children, subquery, own. */
static int push_expr_params(corm_query *q, const corm_expr *e, corm_error *err)
{
    int rc;
    for (int i = 0; i < e->nargs; i++)
        if ((rc = push_expr_params(q, e->args[i], err)) < 0)
            return rc;
    if (e->sub && (rc = push_query_params(q, e->sub, err)) < 0)
        return rc;
    for (int i = 0; i < e->nparams; i++)
        if ((rc = corm__query_push_param(q, &e->params[i], err)) < 0)
            return rc;
    return CORM_OK;
}

/* Binds e's values into q and fills slot; all or nothing. */
static int attach(corm_query *q, const corm_expr *e, corm__slot *slot, corm_error *err)
{
    corm__check(e != NULL, err, "expression is NULL");
    corm__check(e->reg == q->built->reg, err, "expression from another registry");
    int n = q->nparams;
    size_t len = q->data.len;
    int rc = push_expr_params(q, e, err);
    if (rc < 0) {
        q->nparams = n;
        q->data.len = len;
        return rc;
    }
    slot->e = corm_expr_ref((corm_expr *)e);
    slot->base = n;
    changed(q->built);
    return CORM_OK;
}

/* Uses sub inside q: binds its values, references and freezes it. */
static int attach_query(corm_query *q, corm_query *sub, int *base, corm_error *err)
{
    corm__check(sub != NULL, err, "query is NULL");
    corm__check(sub->built != NULL, err, "a part of a built query must be built too");
    corm__check(sub != q, err, "a query cannot contain itself");
    corm__check(sub->built->reg == q->built->reg, err, "query from another registry");
    int n = q->nparams;
    size_t len = q->data.len;
    int rc = push_query_params(q, sub, err);
    if (rc < 0) {
        q->nparams = n;
        q->data.len = len;
        return rc;
    }
    *base = n;
    sub->built->frozen = true;
    sub->built->refs++;
    changed(q->built);
    return CORM_OK;
}

static int add_slot(corm_query *q, corm__slot **arr, int *n, int *cap, const corm_expr *e,
                    corm_error *err)
{
    corm__built *b = q->built;
    int rc = grow(b, (void **)arr, cap, *n, sizeof **arr, err);
    if (rc < 0)
        return rc;
    if ((rc = attach(q, e, &(*arr)[*n], err)) < 0)
        return rc;
    (*n)++;
    return CORM_OK;
}

/* ---- relations ------------------------------------------------------- */

/* The name a relation is known by in SQL (for duplicate checks). */
static void rel_label(const corm__rel *r, char *buf, size_t size)
{
    if (r->alias)
        snprintf(buf, size, "%s", r->alias);
    else if (r->kind == CORM__REL_MODEL)
        snprintf(buf, size, "%s.%s", r->model->schema ? r->model->schema : "",
                 r->model->table);
    else
        snprintf(buf, size, "%s", r->name ? r->name : "");
}

static int check_dup(const corm__built *b, const corm__rel *r, corm_error *err)
{
    char l1[160], l2[160];
    rel_label(r, l1, sizeof l1);
    for (int i = 0; i < b->nrels; i++) {
        rel_label(&b->rels[i], l2, sizeof l2);
        if (!strcmp(l1, l2))
            return corm__err(err, CORM_EPROGRAMMING,
                             "\"%s\" appears twice in FROM/JOIN: give one an alias",
                             r->alias ? r->alias : r->kind == CORM__REL_MODEL ? r->model->table
                                                                               : r->name);
    }
    return CORM_OK;
}

static int add_rel(corm_query *q, corm__rel *r, corm_error *err)
{
    corm__built *b = q->built;
    int rc = check_dup(b, r, err);
    if (rc < 0)
        return rc;
    rc = GROW(b, b->rels, b->caprels, b->nrels, err);
    if (rc < 0)
        return rc;
    b->rels[b->nrels++] = *r;
    if (r->kind == CORM__REL_MODEL) {
        ((corm_model *)r->model)->frozen = true;
        if (!b->model)
            b->model = r->model;
    }
    changed(b);
    return CORM_OK;
}

int corm_query_from(corm_query *q, const corm_model *m, const char *alias, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "FROM");
    corm__check(m != NULL, err, "model is NULL");
    corm__check(m->reg == b->reg, err, "model from another registry");
    corm__check(b->nrels == 0, err, "the query has a FROM item already (use a join)");
    int rc;
    corm__rel r = {0};
    r.kind = CORM__REL_MODEL;
    r.model = m;
    r.alias = keep_name(b, alias, "table alias", &rc, err);
    if (rc < 0)
        return rc;
    return add_rel(q, &r, err);
}

int corm_query_from_cte(corm_query *q, const char *name, const char *alias, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "FROM");
    corm__check(name != NULL, err, "CTE name is NULL");
    corm__check(b->nrels == 0, err, "the query has a FROM item already (use a join)");
    int rc;
    corm__rel r = {0};
    r.kind = CORM__REL_CTE;
    r.name = keep_name(b, name, "CTE name", &rc, err);
    if (rc < 0)
        return rc;
    r.alias = keep_name(b, alias, "table alias", &rc, err);
    if (rc < 0)
        return rc;
    return add_rel(q, &r, err);
}

int corm_query_from_query(corm_query *q, corm_query *sub, const char *alias, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "FROM");
    corm__check(b->nrels == 0, err, "the query has a FROM item already (use a join)");
    corm__check(alias != NULL, err, "a subquery in FROM needs an alias");
    int rc;
    corm__rel r = {0};
    r.kind = CORM__REL_QUERY;
    r.alias = keep_name(b, alias, "table alias", &rc, err);
    if (rc < 0)
        return rc;
    rc = GROW(b, b->rels, b->caprels, b->nrels, err);
    if (rc < 0)
        return rc;
    if ((rc = attach_query(q, sub, &r.sub_base, err)) < 0)
        return rc;
    r.sub = sub;
    return add_rel(q, &r, err); /* cannot fail: room made, alias unique (only item) */
}

/* The one foreign key between model m (about to join) and a relation
 * already in b. */
static int find_fk(const corm__built *b, const corm_model *m, corm__rel *r, corm_error *err)
{
    int found = 0;
    int newi = b->nrels;
    for (int i = 0; i < b->nrels; i++) {
        const corm__rel *o = &b->rels[i];
        if (o->kind != CORM__REL_MODEL)
            continue;
        for (int k = 0; k < m->nfks; k++)
            if (m->fks[k].target == o->model) {
                found++;
                r->fk = &m->fks[k];
                r->fk_child = newi;
                r->fk_parent = i;
            }
        for (int k = 0; k < o->model->nfks; k++)
            if (o->model->fks[k].target == m) {
                found++;
                r->fk = &o->model->fks[k];
                r->fk_child = i;
                r->fk_parent = newi;
            }
    }
    if (found == 1)
        return CORM_OK;
    char lb[160];
    if (found)
        return corm__err(err, CORM_EPROGRAMMING,
                         "join %s: %d foreign keys could give the ON condition; give it "
                         "explicitly",
                         corm__model_label(m, lb, sizeof lb), found);
    return corm__err(err, CORM_EPROGRAMMING,
                     "join %s: no foreign key links it to the query; give the ON condition",
                     corm__model_label(m, lb, sizeof lb));
}

static int join(corm_query *q, int type, corm__rel *r, const corm_expr *on, corm_error *err)
{
    corm__built *b = q->built;
    corm__check(type == CORM_JOIN_INNER || type == CORM_JOIN_LEFT, err, "bad join type");
    corm__check(b->nrels > 0, err, "a join needs a FROM item first");
    r->join = type;
    int rc = check_dup(b, r, err);
    if (rc < 0)
        return rc;
    if ((rc = GROW(b, b->rels, b->caprels, b->nrels, err)) < 0)
        return rc;
    if (on) {
        if ((rc = attach(q, on, &r->on, err)) < 0)
            return rc;
    } else if (r->kind == CORM__REL_MODEL) {
        if ((rc = find_fk(b, r->model, r, err)) < 0)
            return rc;
    } else {
        return corm__err(err, CORM_EMISUSE, "this join needs an ON condition");
    }
    return add_rel(q, r, err); /* cannot fail now: checked, and room made */
}

int corm_query_join(corm_query *q, int type, const corm_model *m, const char *alias,
                    const corm_expr *on, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "JOIN");
    corm__check(m != NULL, err, "model is NULL");
    corm__check(m->reg == b->reg, err, "model from another registry");
    int rc;
    corm__rel r = {0};
    r.kind = CORM__REL_MODEL;
    r.model = m;
    r.alias = keep_name(b, alias, "table alias", &rc, err);
    if (rc < 0)
        return rc;
    return join(q, type, &r, on, err);
}

int corm_query_join_cte(corm_query *q, int type, const char *name, const char *alias,
                        const corm_expr *on, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "JOIN");
    corm__check(name != NULL, err, "CTE name is NULL");
    corm__check(on != NULL, err, "a CTE join needs an ON condition");
    int rc;
    corm__rel r = {0};
    r.kind = CORM__REL_CTE;
    r.name = keep_name(b, name, "CTE name", &rc, err);
    if (rc < 0)
        return rc;
    r.alias = keep_name(b, alias, "table alias", &rc, err);
    if (rc < 0)
        return rc;
    return join(q, type, &r, on, err);
}

/* ---- SELECT list and RETURNING ---------------------------------------- */

static int add_item_expr(corm_query *q, const corm_expr *e, const char *alias, corm_error *err)
{
    corm__built *b = q->built;
    int rc;
    const char *al = keep_name(b, alias, "column alias", &rc, err);
    if (rc < 0)
        return rc;
    if ((rc = GROW(b, b->items, b->capitems, b->nitems, err)) < 0)
        return rc;
    corm__item *it = &b->items[b->nitems];
    memset(it, 0, sizeof *it);
    if ((rc = attach(q, e, &it->s, err)) < 0)
        return rc;
    it->kind = CORM__ITEM_EXPR;
    it->alias = al;
    b->nitems++;
    return CORM_OK;
}

static int add_item_all(corm_query *q, int rel, corm_error *err)
{
    corm__built *b = q->built;
    int rc = GROW(b, b->items, b->capitems, b->nitems, err);
    if (rc < 0)
        return rc;
    corm__item *it = &b->items[b->nitems++];
    memset(it, 0, sizeof *it);
    it->kind = CORM__ITEM_ALL;
    it->rel = rel;
    changed(b);
    return CORM_OK;
}

int corm_query_select_expr(corm_query *q, const corm_expr *e, const char *alias,
                           corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "a SELECT list (use corm_query_returning)");
    return add_item_expr(q, e, alias, err);
}

int corm_query_select_all(corm_query *q, const corm_model *m, const char *alias,
                          corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "a SELECT list");
    corm__check(m != NULL, err, "model is NULL");
    int found = -1, n = 0;
    for (int i = 0; i < b->nrels; i++) {
        const corm__rel *r = &b->rels[i];
        if (r->kind == CORM__REL_MODEL && r->model == m &&
            (!alias || (r->alias && !strcmp(r->alias, alias)))) {
            found = i;
            n++;
        }
    }
    if (n != 1)
        return corm__err(err, CORM_EPROGRAMMING,
                         n ? "model \"%s\" appears %d times in the query: name its alias"
                           : "model \"%s\" is not in the query's FROM/JOIN%.0d",
                         m->table, n);
    return add_item_all(q, found, err);
}

int corm_query_returning(corm_query *q, const corm_expr *e, const char *alias, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind != CORM_QUERY_SELECT, err, "RETURNING");
    return add_item_expr(q, e, alias, err);
}

int corm_query_returning_all(corm_query *q, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind != CORM_QUERY_SELECT, err, "RETURNING");
    return add_item_all(q, 0, err);
}

int corm_query_distinct(corm_query *q, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "DISTINCT");
    corm__check(b->ndistinct_on == 0, err, "DISTINCT ON is set already");
    b->distinct = true;
    changed(b);
    return CORM_OK;
}

int corm_query_distinct_on(corm_query *q, const corm_expr *e, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "DISTINCT ON");
    corm__check(!b->distinct, err, "DISTINCT is set already");
    return add_slot(q, &b->distinct_on, &b->ndistinct_on, &b->capdistinct_on, e, err);
}

/* ---- WHERE, GROUP BY, HAVING, ORDER BY, LIMIT, locks ------------------ */

int corm_query_where(corm_query *q, const corm_expr *e, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind != CORM_QUERY_INSERT, err, "WHERE");
    return add_slot(q, &b->where, &b->nwhere, &b->capwhere, e, err);
}

int corm_query_group_by(corm_query *q, const corm_expr *e, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "GROUP BY");
    return add_slot(q, &b->group, &b->ngroup, &b->capgroup, e, err);
}

int corm_query_having(corm_query *q, const corm_expr *e, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "HAVING");
    return add_slot(q, &b->having, &b->nhaving, &b->caphaving, e, err);
}

int corm_query_order_by(corm_query *q, const corm_expr *e, unsigned flags, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "ORDER BY");
    corm__check((flags & ~(unsigned)(CORM_DESC | CORM_NULLS_FIRST | CORM_NULLS_LAST)) == 0 &&
                    (flags & (CORM_NULLS_FIRST | CORM_NULLS_LAST)) !=
                        (CORM_NULLS_FIRST | CORM_NULLS_LAST),
                err, "bad order flags");
    int rc = GROW(b, b->order, b->caporder, b->norder, err);
    if (rc < 0)
        return rc;
    corm__order *o = &b->order[b->norder];
    if ((rc = attach(q, e, &o->s, err)) < 0)
        return rc;
    o->flags = flags;
    b->norder++;
    return CORM_OK;
}

static int bound_int(corm_query *q, int64_t n, int *param, const char *what, corm_error *err)
{
    corm__built *b = q->built;
    corm__check(*param == 0, err, "given twice");
    if (n < 0)
        return corm__err(err, CORM_EMISUSE, "%s must be >= 0", what);
    corm_value v = {.kind = CORM_INT, .oid = CORM_OID_INT8};
    v.v.i = n;
    corm__param p;
    int rc = corm__param_encode(&b->reg->alloc, &v, NULL, what, &p, err);
    if (rc < 0)
        return rc;
    rc = corm__query_push_param(q, &p, err);
    corm__param_clear(&b->reg->alloc, &p);
    if (rc < 0)
        return rc;
    *param = rc;
    changed(b);
    return CORM_OK;
}

int corm_query_limit(corm_query *q, int64_t n, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "LIMIT");
    return bound_int(q, n, &b->limit_param, "LIMIT", err);
}

int corm_query_offset(corm_query *q, int64_t n, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "OFFSET");
    return bound_int(q, n, &b->offset_param, "OFFSET", err);
}

int corm_query_lock(corm_query *q, unsigned mode, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "FOR UPDATE");
    unsigned strength = mode & 0xF, opts = mode & ~0xFu;
    corm__check(strength >= CORM_FOR_UPDATE && strength <= CORM_FOR_KEY_SHARE, err,
                "bad lock strength");
    corm__check(opts == 0 || opts == CORM_LOCK_NOWAIT || opts == CORM_LOCK_SKIP_LOCKED, err,
                "bad lock options (NOWAIT or SKIP LOCKED, not both)");
    b->lock = mode;
    changed(b);
    return CORM_OK;
}

/* ---- WITH and set operations ------------------------------------------ */

int corm_query_with(corm_query *q, const char *name, int ncols, const char *const *cols,
                    corm_query *sub, unsigned flags, corm_error *err)
{
    BUILT(q, err);
    corm__check(name != NULL, err, "CTE name is NULL");
    corm__check(ncols >= 0 && (ncols == 0 || cols != NULL), err, "columns are NULL");
    corm__check((flags & ~(unsigned)(CORM_CTE_RECURSIVE | CORM_CTE_MATERIALIZED |
                                     CORM_CTE_NOT_MATERIALIZED)) == 0 &&
                    (flags & (CORM_CTE_MATERIALIZED | CORM_CTE_NOT_MATERIALIZED)) !=
                        (CORM_CTE_MATERIALIZED | CORM_CTE_NOT_MATERIALIZED),
                err, "bad CTE flags");
    int rc;
    corm__cte c = {0};
    c.name = keep_name(b, name, "CTE name", &rc, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < b->nctes; i++)
        if (!strcmp(b->ctes[i].name, name))
            return corm__err(err, CORM_EPROGRAMMING, "CTE \"%s\" is defined twice", name);
    if (ncols) {
        c.cols = corm__region_alloc(&b->arena, &b->reg->alloc, (size_t)ncols * sizeof *c.cols);
        if (!c.cols)
            return corm__err_nomem(err);
        for (int i = 0; i < ncols; i++) {
            corm__check(cols[i] != NULL, err, "CTE column name is NULL");
            c.cols[i] = keep_name(b, cols[i], "CTE column name", &rc, err);
            if (rc < 0)
                return rc;
        }
    }
    c.ncols = ncols;
    c.flags = flags;
    if ((rc = GROW(b, b->ctes, b->capctes, b->nctes, err)) < 0)
        return rc;
    if ((rc = attach_query(q, sub, &c.base, err)) < 0)
        return rc;
    c.sub = sub;
    b->ctes[b->nctes++] = c;
    if (flags & CORM_CTE_RECURSIVE)
        b->recursive = true;
    return CORM_OK;
}

int corm_query_combine(corm_query *q, int op, corm_query *other, corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_SELECT, err, "UNION");
    corm__check(op >= CORM_UNION && op <= CORM_EXCEPT, err, "bad set operation");
    corm__check(other != NULL && other->built != NULL &&
                    other->built->kind == CORM_QUERY_SELECT,
                err, "the other query must be a built SELECT");
    int rc = GROW(b, b->setops, b->capsetops, b->nsetops, err);
    if (rc < 0)
        return rc;
    corm__setop *s = &b->setops[b->nsetops];
    if ((rc = attach_query(q, other, &s->base, err)) < 0)
        return rc;
    s->op = op;
    s->sub = other;
    b->nsetops++;
    return CORM_OK;
}

/* ---- INSERT, ON CONFLICT, SET ------------------------------------------ */

static const char *col_label(const corm_model *m, int col, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%s", m->table, m->cols[col].name);
    return buf;
}

int corm_query_values(corm_query *q, int n, const int *cols, const corm_value *values,
                      corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_INSERT, err, "VALUES");
    corm__check(n >= 0 && (n == 0 || (cols && values)), err, "columns or values are NULL");
    const corm_model *m = b->model;
    int rc;
    for (int i = 0; i < n; i++) {
        if (cols[i] < 0 || cols[i] >= m->ncols)
            return corm__err(err, CORM_EMISUSE, "model \"%s\" has no column %d", m->table,
                             cols[i]);
        for (int j = 0; j < i; j++)
            if (cols[i] == cols[j])
                return corm__err(err, CORM_EPROGRAMMING, "column \"%s\" appears twice in a row",
                                 m->cols[cols[i]].name);
    }
    if ((rc = GROW(b, b->rows, b->caprows, b->nrows, err)) < 0)
        return rc;
    int *row = corm__region_alloc(&b->arena, &b->reg->alloc,
                                  (size_t)(m->ncols ? m->ncols : 1) * sizeof *row);
    if (!row)
        return corm__err_nomem(err);
    memset(row, 0, (size_t)m->ncols * sizeof *row);
    int saved = q->nparams;
    size_t saved_len = q->data.len;
    for (int i = 0; i < n && rc == CORM_OK; i++) {
        char lb[160];
        corm__param p;
        rc = corm__param_encode(&b->reg->alloc, &values[i], &m->cols[cols[i]].type,
                                col_label(m, cols[i], lb, sizeof lb), &p, err);
        if (rc < 0)
            break;
        if (p.len < 0 && (m->cols[cols[i]].flags & CORM_COL_NULL) == 0 &&
            !corm__column_identity(m, cols[i]))
            rc = corm__err(err, CORM_EDATA, "%s: NULL for a NOT NULL column", lb);
        else
            rc = corm__query_push_param(q, &p, err);
        corm__param_clear(&b->reg->alloc, &p);
        if (rc > 0) {
            row[cols[i]] = rc;
            rc = CORM_OK;
        }
    }
    if (rc < 0) {
        q->nparams = saved;
        q->data.len = saved_len;
        return rc;
    }
    b->rows[b->nrows++] = row;
    changed(b);
    return CORM_OK;
}

int corm_query_on_conflict(corm_query *q, int ncols, const int *cols, int action,
                           corm_error *err)
{
    BUILT(q, err);
    KIND(b, b->kind == CORM_QUERY_INSERT, err, "ON CONFLICT");
    corm__check(!b->conflict_set, err, "ON CONFLICT is set already");
    corm__check(action == CORM_CONFLICT_NOTHING || action == CORM_CONFLICT_UPDATE, err,
                "bad conflict action");
    corm__check(ncols >= 0 && (ncols == 0 || cols), err, "columns are NULL");
    if (action == CORM_CONFLICT_UPDATE && ncols == 0)
        return corm__err(err, CORM_EPROGRAMMING,
                         "ON CONFLICT DO UPDATE needs the conflict columns");
    const corm_model *m = b->model;
    for (int i = 0; i < ncols; i++)
        if (cols[i] < 0 || cols[i] >= m->ncols)
            return corm__err(err, CORM_EMISUSE, "model \"%s\" has no column %d", m->table,
                             cols[i]);
    if (ncols) {
        b->conflict_cols =
            corm__region_alloc(&b->arena, &b->reg->alloc, (size_t)ncols * sizeof(int));
        if (!b->conflict_cols)
            return corm__err_nomem(err);
        memcpy(b->conflict_cols, cols, (size_t)ncols * sizeof(int));
    }
    b->nconflict_cols = ncols;
    b->conflict = action;
    b->conflict_set = true;
    changed(b);
    return CORM_OK;
}

static int add_set(corm_query *q, int col, const corm_expr *e, const corm_value *v,
                   corm_error *err)
{
    corm__built *b = q->built;
    corm__check(b->kind == CORM_QUERY_UPDATE ||
                    (b->kind == CORM_QUERY_INSERT && b->conflict == CORM_CONFLICT_UPDATE),
                err, "SET needs an UPDATE, or an INSERT with ON CONFLICT DO UPDATE");
    const corm_model *m = b->model;
    if (col < 0 || col >= m->ncols)
        return corm__err(err, CORM_EMISUSE, "model \"%s\" has no column %d", m->table, col);
    for (int i = 0; i < b->nsets; i++)
        if (b->sets[i].col == col)
            return corm__err(err, CORM_EPROGRAMMING, "column \"%s\" is set twice",
                             m->cols[col].name);
    int rc = GROW(b, b->sets, b->capsets, b->nsets, err);
    if (rc < 0)
        return rc;
    corm__assign *s = &b->sets[b->nsets];
    memset(s, 0, sizeof *s);
    s->col = col;
    if (e) {
        if ((rc = attach(q, e, &s->s, err)) < 0)
            return rc;
    } else {
        char lb[160];
        corm__param p;
        rc = corm__param_encode(&b->reg->alloc, v, &m->cols[col].type,
                                col_label(m, col, lb, sizeof lb), &p, err);
        if (rc < 0)
            return rc;
        if (p.len < 0 && !(m->cols[col].flags & CORM_COL_NULL)) {
            corm__param_clear(&b->reg->alloc, &p);
            return corm__err(err, CORM_EDATA, "%s: NULL for a NOT NULL column", lb);
        }
        rc = corm__query_push_param(q, &p, err);
        corm__param_clear(&b->reg->alloc, &p);
        if (rc < 0)
            return rc;
        s->param = rc;
        changed(b);
    }
    b->nsets++;
    return CORM_OK;
}

int corm_query_set(corm_query *q, int col, const corm_expr *e, corm_error *err)
{
    BUILT(q, err);
    corm__check(e != NULL, err, "expression is NULL");
    return add_set(q, col, e, NULL, err);
}

int corm_query_set_value(corm_query *q, int col, const corm_value *v, corm_error *err)
{
    BUILT(q, err);
    corm__check(v != NULL, err, "value is NULL");
    return add_set(q, col, NULL, v, err);
}

/* ---- the shape key --------------------------------------------------- */

/* Everything the compiler reads, except the values: two queries with equal
 * keys compile to the same SQL and result map. */
typedef struct kbuf {
    corm__buf b;
    const corm__alloc *a;
    bool oom;
} kbuf;

static void k_put(kbuf *k, const void *p, size_t n)
{
    if (!k->oom && corm__buf_put(&k->b, k->a, p, n) < 0)
        k->oom = true;
}

static void k_int(kbuf *k, int64_t v)
{
    k_put(k, &v, sizeof v);
}

static void k_ptr(kbuf *k, const void *p)
{
    k_put(k, &p, sizeof p);
}

static void k_str(kbuf *k, const char *s)
{
    if (!s) {
        k_int(k, -1);
        return;
    }
    size_t n = strlen(s);
    k_int(k, (int64_t)n);
    k_put(k, s, n);
}

static void k_query(kbuf *k, const corm_query *q);

static void k_expr(kbuf *k, const corm_expr *e)
{
    if (!e) {
        k_int(k, 0);
        return;
    }
    k_int(k, e->kind);
    k_int(k, e->negate);
    k_int(k, e->op);
    k_int(k, e->flags);
    k_ptr(k, e->model);
    k_int(k, e->col);
    k_str(k, e->s1);
    k_str(k, e->s2);
    k_str(k, e->type ? e->type->sql : NULL);
    k_int(k, e->nparams);
    k_int(k, e->nargs);
    for (int i = 0; i < e->nargs; i++)
        k_expr(k, e->args[i]);
    if (e->sub)
        k_query(k, e->sub);
    else
        k_int(k, -2);
}

static void k_slot(kbuf *k, const corm__slot *s)
{
    k_int(k, s->base);
    k_expr(k, s->e);
}

static void k_query(kbuf *k, const corm_query *q)
{
    const corm__built *b = q->built;
    k_int(k, b->kind);
    k_ptr(k, b->model);
    k_int(k, b->nrels);
    for (int i = 0; i < b->nrels; i++) {
        const corm__rel *r = &b->rels[i];
        k_int(k, r->kind);
        k_int(k, r->join);
        k_ptr(k, r->model);
        k_str(k, r->name);
        k_str(k, r->alias);
        k_int(k, r->sub_base);
        if (r->sub)
            k_query(k, r->sub);
        k_slot(k, &r->on);
        k_ptr(k, r->fk);
        k_int(k, r->fk_child);
        k_int(k, r->fk_parent);
    }
    k_int(k, b->nitems);
    for (int i = 0; i < b->nitems; i++) {
        k_int(k, b->items[i].kind);
        k_slot(k, &b->items[i].s);
        k_str(k, b->items[i].alias);
        k_int(k, b->items[i].rel);
    }
    k_int(k, b->distinct);
    k_int(k, b->ndistinct_on);
    for (int i = 0; i < b->ndistinct_on; i++)
        k_slot(k, &b->distinct_on[i]);
    k_int(k, b->nwhere);
    for (int i = 0; i < b->nwhere; i++)
        k_slot(k, &b->where[i]);
    k_int(k, b->ngroup);
    for (int i = 0; i < b->ngroup; i++)
        k_slot(k, &b->group[i]);
    k_int(k, b->nhaving);
    for (int i = 0; i < b->nhaving; i++)
        k_slot(k, &b->having[i]);
    k_int(k, b->norder);
    for (int i = 0; i < b->norder; i++) {
        k_slot(k, &b->order[i].s);
        k_int(k, b->order[i].flags);
    }
    k_int(k, b->limit_param);
    k_int(k, b->offset_param);
    k_int(k, b->lock);
    k_int(k, b->recursive);
    k_int(k, b->nctes);
    for (int i = 0; i < b->nctes; i++) {
        const corm__cte *c = &b->ctes[i];
        k_str(k, c->name);
        k_int(k, c->ncols);
        for (int j = 0; j < c->ncols; j++)
            k_str(k, c->cols[j]);
        k_int(k, c->base);
        k_int(k, c->flags);
        k_query(k, c->sub);
    }
    k_int(k, b->nsetops);
    for (int i = 0; i < b->nsetops; i++) {
        k_int(k, b->setops[i].op);
        k_int(k, b->setops[i].base);
        k_query(k, b->setops[i].sub);
    }
    k_int(k, b->nrows);
    int ncols = b->model ? b->model->ncols : 0;
    for (int i = 0; i < b->nrows; i++)
        k_put(k, b->rows[i], (size_t)ncols * sizeof(int));
    k_int(k, b->conflict);
    k_int(k, b->nconflict_cols);
    if (b->nconflict_cols)
        k_put(k, b->conflict_cols, (size_t)b->nconflict_cols * sizeof(int));
    k_int(k, b->nsets);
    for (int i = 0; i < b->nsets; i++) {
        k_int(k, b->sets[i].col);
        k_int(k, b->sets[i].param);
        k_slot(k, &b->sets[i].s);
    }
}

/* ---- the compiler ---------------------------------------------------- */

typedef struct scope {
    const corm__built *b;
    const struct scope *parent;
    bool qualify;           /* write columns with their relation's name */
    bool excluded;          /* EXCLUDED is visible (upsert's DO UPDATE) */
} scope;

typedef struct outcol_tmp {
    const corm_model *model;
    int field;
    int name;               /* offset in names, or -1 */
} outcol_tmp;

typedef struct cctx {
    const corm__alloc *a;
    corm__buf out;
    corm_error *err;
    int rc;
    /* Result columns of the top-level query. */
    outcol_tmp *cols;
    int ncols, capcols;
    bool star;              /* SELECT *: columns unknown */
    corm__buf names;
} cctx;

static void fail(cctx *x, int rc)
{
    if (x->rc == CORM_OK)
        x->rc = rc;
}

static void P(cctx *x, const char *s)
{
    if (x->rc == CORM_OK && corm__buf_puts(&x->out, x->a, s) < 0)
        fail(x, corm__err_nomem(x->err));
}

static void ID(cctx *x, const char *s)
{
    if (x->rc == CORM_OK && corm__buf_ident(&x->out, x->a, s) < 0)
        fail(x, corm__err_nomem(x->err));
}

static void PARAM(cctx *x, int n)
{
    if (x->rc == CORM_OK && corm__buf_printf(&x->out, x->a, "$%d", n) < 0)
        fail(x, corm__err_nomem(x->err));
}

static void TABLE(cctx *x, const corm_model *m)
{
    if (x->rc == CORM_OK && corm__buf_table(&x->out, x->a, m) < 0)
        fail(x, corm__err_nomem(x->err));
}

/* A function or type name: unquoted when plain lowercase (so that
 * coalesce, greatest and friends keep their special syntax), else quoted.
 * Validated to letters, digits, '_' and one '.' beforehand. */
static void FNAME(cctx *x, const char *s)
{
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    for (int part = 0; part < (dot ? 2 : 1); part++) {
        bool plain = true;
        for (size_t i = 0; i < n; i++)
            if (s[i] >= 'A' && s[i] <= 'Z')
                plain = false;
        if (plain) {
            if (x->rc == CORM_OK && corm__buf_put(&x->out, x->a, s, n) < 0)
                fail(x, corm__err_nomem(x->err));
        } else {
            char tmp[CORM__NAME_MAX + 1];
            memcpy(tmp, s, n);
            tmp[n] = 0;
            ID(x, tmp);
        }
        if (dot && part == 0) {
            P(x, ".");
            s = dot + 1;
            n = strlen(s);
        }
    }
}

static void add_outcol(cctx *x, const corm_model *m, int field, const char *name)
{
    if (x->rc != CORM_OK)
        return;
    if (x->ncols == x->capcols) {
        int ncap = x->capcols ? x->capcols * 2 : 16;
        outcol_tmp *p = corm__realloc(x->a, x->cols, (size_t)x->capcols * sizeof *p,
                                      (size_t)ncap * sizeof *p);
        if (!p) {
            fail(x, corm__err_nomem(x->err));
            return;
        }
        x->cols = p;
        x->capcols = ncap;
    }
    outcol_tmp *c = &x->cols[x->ncols++];
    c->model = m;
    c->field = field;
    c->name = -1;
    if (name) {
        c->name = (int)x->names.len;
        if (corm__buf_put(&x->names, x->a, name, strlen(name) + 1) < 0)
            fail(x, corm__err_nomem(x->err));
    }
}

static void rel_qualifier(cctx *x, const corm__rel *r)
{
    if (r->alias)
        ID(x, r->alias);
    else if (r->kind == CORM__REL_MODEL)
        TABLE(x, r->model);
    else
        ID(x, r->name);
}

/* Finds the relation a column of model m (alias: the FROM item's alias)
 * belongs to, innermost scope first. */
static const corm__rel *resolve(cctx *x, const scope *sc, const corm_model *m,
                                const char *alias, const scope **where)
{
    for (const scope *s = sc; s; s = s->parent) {
        const corm__rel *found = NULL;
        int n = 0;
        for (int i = 0; i < s->b->nrels; i++) {
            const corm__rel *r = &s->b->rels[i];
            if (alias) {
                if (r->alias && !strcmp(r->alias, alias)) {
                    if (r->kind != CORM__REL_MODEL || r->model != m) {
                        fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                                          "column of model \"%s\": \"%s\" is another table",
                                          m->table, alias));
                        return NULL;
                    }
                    found = r;
                    n = 1;
                    break;
                }
            } else if (r->kind == CORM__REL_MODEL && r->model == m) {
                found = r;
                n++;
            }
        }
        if (n > 1) {
            fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                              "model \"%s\" appears %d times in the query: columns need the "
                              "alias (corm_expr_column's alias)",
                              m->table, n));
            return NULL;
        }
        if (found) {
            *where = s;
            return found;
        }
    }
    fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                      alias ? "column of model \"%s\": no FROM/JOIN item \"%s\" in the query"
                            : "column of model \"%s\": the model is not in the query's "
                              "FROM/JOIN%s",
                      m->table, alias ? alias : ""));
    return NULL;
}

static void c_colref(cctx *x, const scope *sc, const corm_model *m, int col, const char *alias)
{
    const scope *where = NULL;
    const corm__rel *r = resolve(x, sc, m, alias, &where);
    if (!r)
        return;
    if (where != sc || sc->qualify) {
        rel_qualifier(x, r);
        P(x, ".");
    }
    ID(x, m->cols[col].name);
}

enum {
    PREC_NONE = 0,
    PREC_OR = 1,
    PREC_AND = 2,
    PREC_NOT = 3,
    PREC_IS = 4,
    PREC_CMP = 5,
    PREC_LIKE = 6,  /* LIKE, BETWEEN, IN */
    PREC_OTHER = 7, /* || */
    PREC_ADD = 8,
    PREC_MUL = 9,
    PREC_ATOM = 20,
};

static int op_prec(int op)
{
    switch (op) {
    case CORM_EQ:
    case CORM_NE:
    case CORM_LT:
    case CORM_LE:
    case CORM_GT:
    case CORM_GE:
        return PREC_CMP;
    case CORM_LIKE:
    case CORM_ILIKE:
    case CORM_NOT_LIKE:
    case CORM_NOT_ILIKE:
        return PREC_LIKE;
    case CORM_CONCAT:
        return PREC_OTHER;
    case CORM_ADD:
    case CORM_SUB:
        return PREC_ADD;
    default:
        return PREC_MUL;
    }
}

static const char *op_sql(int op)
{
    static const char *const s[] = {"",     " = ",        " <> ",        " < ",   " <= ",
                                    " > ",  " >= ",       " LIKE ",      " ILIKE ",
                                    " NOT LIKE ", " NOT ILIKE ", " + ",  " - ",   " * ",
                                    " / ",  " % ",        " || "};
    return s[op];
}

static int expr_prec(const corm_expr *e)
{
    switch (e->kind) {
    case CORM__E_OR:
        return PREC_OR;
    case CORM__E_AND:
        return PREC_AND;
    case CORM__E_NOT:
        return PREC_NOT;
    case CORM__E_ISNULL:
        return PREC_IS;
    case CORM__E_BINARY:
        return op_prec(e->op);
    case CORM__E_IN_ARRAY:
        return PREC_CMP;
    case CORM__E_BETWEEN:
    case CORM__E_IN_QUERY:
        return PREC_LIKE;
    default:
        return PREC_ATOM;
    }
}

static void c_query(cctx *x, const corm_query *q, int offset, const scope *parent, bool top);

static void c_expr(cctx *x, const corm_expr *e, const scope *sc, int *pn, int need);

static void c_sub(cctx *x, const corm_query *sub, const scope *sc, int *pn)
{
    c_query(x, sub, *pn - 1, sc, false);
    *pn += sub->nparams;
}

static void c_order_item(cctx *x, const corm_expr *e, unsigned flags, const scope *sc, int *pn)
{
    if (e->kind == CORM__E_ORDER) {
        flags |= (unsigned)e->op;
        e = e->args[0];
    }
    c_expr(x, e, sc, pn, PREC_NONE);
    if (flags & CORM_DESC)
        P(x, " DESC");
    if (flags & CORM_NULLS_FIRST)
        P(x, " NULLS FIRST");
    if (flags & CORM_NULLS_LAST)
        P(x, " NULLS LAST");
}

static void c_expr(cctx *x, const corm_expr *e, const scope *sc, int *pn, int need)
{
    if (x->rc != CORM_OK)
        return;
    int prec = expr_prec(e);
    bool paren = prec < need;
    if (paren)
        P(x, "(");
    switch (e->kind) {
    case CORM__E_COLUMN:
        c_colref(x, sc, e->model, e->col, e->s1);
        break;
    case CORM__E_EXCLUDED: {
        bool ok = false;
        for (const scope *s = sc; s; s = s->parent)
            ok |= s->excluded && s->b->model == e->model;
        if (!ok) {
            fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                              "EXCLUDED.\"%s\" is only valid in ON CONFLICT DO UPDATE of "
                              "model \"%s\"",
                              e->model->cols[e->col].name, e->model->table));
            break;
        }
        P(x, "EXCLUDED.");
        ID(x, e->model->cols[e->col].name);
        break;
    }
    case CORM__E_IDENT:
        if (e->s1) {
            ID(x, e->s1);
            P(x, ".");
        }
        ID(x, e->s2);
        break;
    case CORM__E_PARAM:
        PARAM(x, (*pn)++);
        break;
    case CORM__E_BINARY: {
        bool assoc = prec >= PREC_OTHER;
        c_expr(x, e->args[0], sc, pn, assoc ? prec : prec + 1);
        P(x, op_sql(e->op));
        c_expr(x, e->args[1], sc, pn, prec + 1);
        break;
    }
    case CORM__E_AND:
    case CORM__E_OR:
        c_expr(x, e->args[0], sc, pn, prec);
        P(x, e->kind == CORM__E_AND ? " AND " : " OR ");
        c_expr(x, e->args[1], sc, pn, prec);
        break;
    case CORM__E_NOT:
        P(x, "NOT ");
        c_expr(x, e->args[0], sc, pn, PREC_NOT);
        break;
    case CORM__E_ISNULL:
        c_expr(x, e->args[0], sc, pn, PREC_CMP);
        P(x, e->negate ? " IS NOT NULL" : " IS NULL");
        break;
    case CORM__E_BETWEEN:
        c_expr(x, e->args[0], sc, pn, PREC_OTHER);
        P(x, e->negate ? " NOT BETWEEN " : " BETWEEN ");
        c_expr(x, e->args[1], sc, pn, PREC_OTHER);
        P(x, " AND ");
        c_expr(x, e->args[2], sc, pn, PREC_OTHER);
        break;
    case CORM__E_IN_ARRAY:
        c_expr(x, e->args[0], sc, pn, PREC_LIKE);
        P(x, e->negate ? " <> ALL(" : " = ANY(");
        if (e->s1) {
            P(x, "CAST(");
            PARAM(x, (*pn)++);
            P(x, " AS ");
            P(x, e->s1);
            P(x, "[])");
        } else {
            PARAM(x, (*pn)++);
        }
        P(x, ")");
        break;
    case CORM__E_IN_QUERY:
        c_expr(x, e->args[0], sc, pn, PREC_OTHER);
        P(x, e->negate ? " NOT IN (" : " IN (");
        c_sub(x, e->sub, sc, pn);
        P(x, ")");
        break;
    case CORM__E_EXISTS:
        P(x, "EXISTS (");
        c_sub(x, e->sub, sc, pn);
        P(x, ")");
        break;
    case CORM__E_SUBQUERY:
        P(x, "(");
        c_sub(x, e->sub, sc, pn);
        P(x, ")");
        break;
    case CORM__E_AGG: {
        static const char *const names[] = {"", "count(", "sum(", "avg(", "min(", "max("};
        P(x, names[e->op]);
        if (e->nargs == 0) {
            P(x, "*");
        } else {
            if (e->flags & CORM_AGG_DISTINCT)
                P(x, "DISTINCT ");
            c_expr(x, e->args[0], sc, pn, PREC_NONE);
        }
        P(x, ")");
        break;
    }
    case CORM__E_FUNC:
        FNAME(x, e->s1);
        P(x, "(");
        for (int i = 0; i < e->nargs; i++) {
            if (i)
                P(x, ", ");
            c_expr(x, e->args[i], sc, pn, PREC_NONE);
        }
        P(x, ")");
        break;
    case CORM__E_CAST:
        P(x, "CAST(");
        c_expr(x, e->args[0], sc, pn, PREC_NONE);
        P(x, " AS ");
        P(x, e->type->sql);
        P(x, ")");
        break;
    case CORM__E_ORDER:
        fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                          "an ordering (corm_expr_order) can only appear in ORDER BY or OVER"));
        break;
    case CORM__E_OVER: {
        int np = e->op, no = e->nargs - 1 - np;
        c_expr(x, e->args[0], sc, pn, PREC_ATOM);
        P(x, " OVER (");
        if (np) {
            P(x, "PARTITION BY ");
            for (int i = 0; i < np; i++) {
                if (i)
                    P(x, ", ");
                c_expr(x, e->args[1 + i], sc, pn, PREC_NONE);
            }
        }
        if (no) {
            P(x, np ? " ORDER BY " : "ORDER BY ");
            for (int i = 0; i < no; i++) {
                if (i)
                    P(x, ", ");
                c_order_item(x, e->args[1 + np + i], 0, sc, pn);
            }
        }
        P(x, ")");
        break;
    }
    case CORM__E_RAW:
        P(x, "(");
        if (x->rc == CORM_OK && corm__sql_renumber(&x->out, x->a, e->s1, *pn - 1) < 0)
            fail(x, corm__err_nomem(x->err));
        P(x, ")");
        *pn += e->nparams;
        break;
    default:
        fail(x, corm__err(x->err, CORM_EINTERNAL, "unknown expression node %d", e->kind));
    }
    if (paren)
        P(x, ")");
}

static void c_slot(cctx *x, const corm__slot *s, const scope *sc, int offset, int need)
{
    int pn = offset + s->base + 1;
    c_expr(x, s->e, sc, &pn, need);
}

/* "a AND b AND c" from several slots. */
static void c_conj(cctx *x, const char *kw, const corm__slot *s, int n, const scope *sc,
                   int offset)
{
    if (n == 0)
        return;
    P(x, kw);
    for (int i = 0; i < n; i++) {
        if (i)
            P(x, " AND ");
        c_slot(x, &s[i], sc, offset, n > 1 ? PREC_AND : PREC_NONE);
    }
}

static void c_list(cctx *x, const char *kw, const corm__slot *s, int n, const scope *sc,
                   int offset)
{
    if (n == 0)
        return;
    P(x, kw);
    for (int i = 0; i < n; i++) {
        if (i)
            P(x, ", ");
        c_slot(x, &s[i], sc, offset, PREC_NONE);
    }
}

/* The output name of an item without alias: a column's name. */
static const char *item_name(const corm__item *it)
{
    if (it->alias)
        return it->alias;
    const corm_expr *e = it->s.e;
    if (e->kind == CORM__E_COLUMN || e->kind == CORM__E_EXCLUDED)
        return e->model->cols[e->col].name;
    if (e->kind == CORM__E_IDENT)
        return e->s2;
    return NULL;
}

/* Every column of relation r, in order (SELECT r.* written out, so each
 * result column maps to its field). */
static void c_all_columns(cctx *x, const scope *sc, const corm__rel *r, bool top)
{
    for (int c = 0; c < r->model->ncols; c++) {
        if (c)
            P(x, ", ");
        if (sc->qualify) {
            rel_qualifier(x, r);
            P(x, ".");
        }
        ID(x, r->model->cols[c].name);
        if (top)
            add_outcol(x, r->model, c, r->model->cols[c].name);
    }
}

static void c_items(cctx *x, const corm__built *b, const scope *sc, int offset, bool top)
{
    for (int i = 0; i < b->nitems; i++) {
        const corm__item *it = &b->items[i];
        if (i)
            P(x, ", ");
        if (it->kind == CORM__ITEM_ALL) {
            c_all_columns(x, sc, &b->rels[it->rel], top);
            continue;
        }
        c_slot(x, &it->s, sc, offset, PREC_NONE);
        if (it->alias) {
            P(x, " AS ");
            ID(x, it->alias);
        }
        if (top) {
            const corm_expr *e = it->s.e;
            const char *name = item_name(it);
            if (e->kind == CORM__E_COLUMN)
                add_outcol(x, e->model, e->col, name);
            else if (it->alias && b->model && corm_model_column_index(b->model, it->alias) >= 0)
                add_outcol(x, b->model, corm_model_column_index(b->model, it->alias), name);
            else
                add_outcol(x, NULL, -1, name);
        }
    }
}

static bool needs_parens(const corm__built *b)
{
    return b->norder || b->limit_param || b->offset_param || b->lock || b->nctes ||
           b->nsetops;
}

static void c_rel(cctx *x, const corm__rel *r, const scope *parent, int offset)
{
    switch (r->kind) {
    case CORM__REL_MODEL:
        TABLE(x, r->model);
        break;
    case CORM__REL_CTE:
        ID(x, r->name);
        break;
    case CORM__REL_QUERY:
        P(x, "(");
        c_query(x, r->sub, offset + r->sub_base, parent, false);
        P(x, ")");
        break;
    }
    if (r->alias) {
        P(x, " AS ");
        ID(x, r->alias);
    }
}

static void c_from(cctx *x, const corm__built *b, const scope *sc, int offset)
{
    if (b->nrels == 0)
        return;
    P(x, " FROM ");
    for (int i = 0; i < b->nrels; i++) {
        const corm__rel *r = &b->rels[i];
        if (i)
            P(x, r->join == CORM_JOIN_LEFT ? " LEFT JOIN " : " JOIN ");
        c_rel(x, r, sc->parent, offset);
        if (i == 0)
            continue;
        P(x, " ON ");
        if (r->on.e) {
            c_slot(x, &r->on, sc, offset, PREC_NONE);
            continue;
        }
        const corm__rel *child = &b->rels[r->fk_child], *par = &b->rels[r->fk_parent];
        for (int k = 0; k < r->fk->ncols; k++) {
            if (k)
                P(x, " AND ");
            rel_qualifier(x, child);
            P(x, ".");
            ID(x, child->model->cols[r->fk->cols[k]].name);
            P(x, " = ");
            rel_qualifier(x, par);
            P(x, ".");
            ID(x, par->model->cols[r->fk->target_cols[k]].name);
        }
    }
}

static void c_returning(cctx *x, const corm__built *b, const scope *sc, int offset, bool top)
{
    if (b->nitems == 0)
        return;
    P(x, " RETURNING ");
    c_items(x, b, sc, offset, top);
}

static void c_select(cctx *x, const corm__built *b, const scope *sc, int offset, bool top)
{
    P(x, "SELECT ");
    if (b->distinct)
        P(x, "DISTINCT ");
    if (b->ndistinct_on) {
        P(x, "DISTINCT ON (");
        for (int i = 0; i < b->ndistinct_on; i++) {
            if (i)
                P(x, ", ");
            c_slot(x, &b->distinct_on[i], sc, offset, PREC_NONE);
        }
        P(x, ") ");
    }
    if (b->nitems) {
        c_items(x, b, sc, offset, top);
    } else if (b->nrels && b->rels[0].kind == CORM__REL_MODEL) {
        /* Default list: every column of the first model, in order. */
        c_all_columns(x, sc, &b->rels[0], top);
    } else if (b->nrels) {
        P(x, "*");
        if (top)
            x->star = true;
    } else {
        fail(x, corm__err(x->err, CORM_EPROGRAMMING, "SELECT with nothing to select"));
    }
    c_from(x, b, sc, offset);
    c_conj(x, " WHERE ", b->where, b->nwhere, sc, offset);
    c_list(x, " GROUP BY ", b->group, b->ngroup, sc, offset);
    c_conj(x, " HAVING ", b->having, b->nhaving, sc, offset);
    for (int i = 0; i < b->nsetops; i++) {
        static const char *const ops[] = {"", " UNION ", " UNION ALL ", " INTERSECT ",
                                          " EXCEPT "};
        const corm__setop *s = &b->setops[i];
        P(x, ops[s->op]);
        bool paren = needs_parens(s->sub->built);
        if (paren)
            P(x, "(");
        c_query(x, s->sub, offset + s->base, sc->parent, false);
        if (paren)
            P(x, ")");
    }
    if (b->norder) {
        P(x, " ORDER BY ");
        for (int i = 0; i < b->norder; i++) {
            if (i)
                P(x, ", ");
            int pn = offset + b->order[i].s.base + 1;
            c_order_item(x, b->order[i].s.e, b->order[i].flags, sc, &pn);
        }
    }
    if (b->limit_param) {
        P(x, " LIMIT ");
        PARAM(x, offset + b->limit_param);
    }
    if (b->offset_param) {
        P(x, " OFFSET ");
        PARAM(x, offset + b->offset_param);
    }
    if (b->lock) {
        static const char *const locks[] = {"", " FOR UPDATE", " FOR NO KEY UPDATE",
                                            " FOR SHARE", " FOR KEY SHARE"};
        P(x, locks[b->lock & 0xF]);
        if (b->lock & CORM_LOCK_NOWAIT)
            P(x, " NOWAIT");
        if (b->lock & CORM_LOCK_SKIP_LOCKED)
            P(x, " SKIP LOCKED");
    }
}

static void c_assigns(cctx *x, const corm__built *b, const scope *sc, int offset)
{
    for (int i = 0; i < b->nsets; i++) {
        if (i)
            P(x, ", ");
        ID(x, b->model->cols[b->sets[i].col].name);
        P(x, " = ");
        if (b->sets[i].s.e)
            c_slot(x, &b->sets[i].s, sc, offset, PREC_NONE);
        else
            PARAM(x, offset + b->sets[i].param);
    }
}

static void c_insert(cctx *x, const corm__built *b, const scope *sc, int offset, bool top)
{
    const corm_model *m = b->model;
    if (b->nrows == 0) {
        fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                          "INSERT into \"%s\" without rows (corm_query_values)", m->table));
        return;
    }
    P(x, "INSERT INTO ");
    TABLE(x, m);
    /* The columns any row gives, in model order. */
    int nused = 0;
    bool used_buf[256];
    bool *used = m->ncols <= 256 ? used_buf : corm__calloc(x->a, (size_t)m->ncols);
    if (!used) {
        fail(x, corm__err_nomem(x->err));
        return;
    }
    for (int c = 0; c < m->ncols; c++) {
        used[c] = false;
        for (int r = 0; r < b->nrows && !used[c]; r++)
            used[c] = b->rows[r][c] != 0;
        nused += used[c];
    }
    if (nused == 0 && b->nrows == 1) {
        P(x, " DEFAULT VALUES");
    } else {
        int only = -1;
        if (nused == 0)
            only = 0; /* every row all DEFAULT: name one column */
        P(x, " (");
        bool first = true;
        for (int c = 0; c < m->ncols; c++) {
            if (!used[c] && c != only)
                continue;
            if (!first)
                P(x, ", ");
            first = false;
            ID(x, m->cols[c].name);
        }
        P(x, ") VALUES ");
        for (int r = 0; r < b->nrows; r++) {
            P(x, r ? ", (" : "(");
            first = true;
            for (int c = 0; c < m->ncols; c++) {
                if (!used[c] && c != only)
                    continue;
                if (!first)
                    P(x, ", ");
                first = false;
                if (b->rows[r][c])
                    PARAM(x, offset + b->rows[r][c]);
                else
                    P(x, "DEFAULT");
            }
            P(x, ")");
        }
    }
    if (b->conflict) {
        P(x, " ON CONFLICT");
        if (b->nconflict_cols) {
            P(x, " (");
            for (int i = 0; i < b->nconflict_cols; i++) {
                if (i)
                    P(x, ", ");
                ID(x, m->cols[b->conflict_cols[i]].name);
            }
            P(x, ")");
        }
        if (b->conflict == CORM_CONFLICT_NOTHING) {
            P(x, " DO NOTHING");
        } else {
            scope up = {b, sc->parent, true, true};
            P(x, " DO UPDATE SET ");
            if (b->nsets) {
                c_assigns(x, b, &up, offset);
            } else {
                bool any = false;
                for (int c = 0; c < m->ncols; c++) {
                    bool target = false;
                    for (int i = 0; i < b->nconflict_cols; i++)
                        target |= b->conflict_cols[i] == c;
                    if (!used[c] || target)
                        continue;
                    if (any)
                        P(x, ", ");
                    any = true;
                    ID(x, m->cols[c].name);
                    P(x, " = EXCLUDED.");
                    ID(x, m->cols[c].name);
                }
                if (!any)
                    fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                                      "ON CONFLICT DO UPDATE of \"%s\": no column to update "
                                      "(use DO NOTHING or corm_query_set)",
                                      m->table));
            }
        }
    }
    if (used != used_buf)
        corm__free(x->a, used, (size_t)m->ncols);
    c_returning(x, b, sc, offset, top);
}

static void c_query(cctx *x, const corm_query *q, int offset, const scope *parent, bool top)
{
    const corm__built *b = q->built;
    scope sc = {b, parent, b->nrels > 1, false};
    if (b->nctes) {
        P(x, b->recursive ? "WITH RECURSIVE " : "WITH ");
        for (int i = 0; i < b->nctes; i++) {
            const corm__cte *c = &b->ctes[i];
            if (i)
                P(x, ", ");
            ID(x, c->name);
            if (c->ncols) {
                P(x, "(");
                for (int k = 0; k < c->ncols; k++) {
                    if (k)
                        P(x, ", ");
                    ID(x, c->cols[k]);
                }
                P(x, ")");
            }
            P(x, " AS ");
            if (c->flags & CORM_CTE_MATERIALIZED)
                P(x, "MATERIALIZED ");
            if (c->flags & CORM_CTE_NOT_MATERIALIZED)
                P(x, "NOT MATERIALIZED ");
            P(x, "(");
            c_query(x, c->sub, offset + c->base, parent, false);
            P(x, ")");
        }
        P(x, " ");
    }
    switch (b->kind) {
    case CORM_QUERY_SELECT:
        c_select(x, b, &sc, offset, top);
        break;
    case CORM_QUERY_INSERT:
        c_insert(x, b, &sc, offset, top);
        break;
    case CORM_QUERY_UPDATE:
        if (b->nsets == 0) {
            fail(x, corm__err(x->err, CORM_EPROGRAMMING,
                              "UPDATE of \"%s\" sets nothing (corm_query_set)",
                              b->model->table));
            break;
        }
        P(x, "UPDATE ");
        TABLE(x, b->model);
        P(x, " SET ");
        c_assigns(x, b, &sc, offset);
        c_conj(x, " WHERE ", b->where, b->nwhere, &sc, offset);
        c_returning(x, b, &sc, offset, top);
        break;
    case CORM_QUERY_DELETE:
        P(x, "DELETE FROM ");
        TABLE(x, b->model);
        c_conj(x, " WHERE ", b->where, b->nwhere, &sc, offset);
        c_returning(x, b, &sc, offset, top);
        break;
    }
}

/* ---- the shape cache ------------------------------------------------- */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void shape_free(corm_registry *reg, corm__shape *s)
{
    corm__free(&reg->alloc, s, s->size);
}

void corm__shape_release(corm_registry *reg, corm__shape *s)
{
    if (s && --s->refs == 0)
        shape_free(reg, s);
}

static void cache_unlink(corm_registry *reg, corm__shape *s)
{
    size_t i = (size_t)(s->hash & (reg->nbuckets - 1));
    for (corm__shape **pp = &reg->buckets[i]; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    if (s->older)
        s->older->newer = s->newer;
    else
        reg->oldest = s->newer;
    if (s->newer)
        s->newer->older = s->older;
    else
        reg->newest = s->older;
    s->cached = false;
    reg->nshapes--;
    corm__shape_release(reg, s);
}

void corm__shape_cache_clear(corm_registry *reg)
{
    while (reg->oldest)
        cache_unlink(reg, reg->oldest);
}

static int cache_insert(corm_registry *reg, corm__shape *s)
{
    if ((size_t)reg->nshapes >= reg->nbuckets) {
        size_t n = reg->nbuckets ? reg->nbuckets * 2 : 64;
        corm__shape **nb = corm__calloc(&reg->alloc, n * sizeof *nb);
        if (!nb)
            return CORM_ENOMEM;
        for (size_t i = 0; i < reg->nbuckets; i++) {
            corm__shape *p = reg->buckets[i];
            while (p) {
                corm__shape *next = p->hnext;
                size_t k = (size_t)(p->hash & (n - 1));
                p->hnext = nb[k];
                nb[k] = p;
                p = next;
            }
        }
        corm__free(&reg->alloc, reg->buckets, reg->nbuckets * sizeof *reg->buckets);
        reg->buckets = nb;
        reg->nbuckets = n;
    }
    if (reg->nshapes >= CORM__SHAPE_CACHE_MAX)
        cache_unlink(reg, reg->oldest);
    size_t i = (size_t)(s->hash & (reg->nbuckets - 1));
    s->hnext = reg->buckets[i];
    reg->buckets[i] = s;
    s->older = reg->newest;
    s->newer = NULL;
    if (reg->newest)
        reg->newest->newer = s;
    else
        reg->oldest = s;
    reg->newest = s;
    s->cached = true;
    s->refs++;
    reg->nshapes++;
    return CORM_OK;
}

static corm__shape *cache_find(corm_registry *reg, uint64_t h, const char *key, size_t keylen)
{
    if (!reg->nbuckets)
        return NULL;
    for (corm__shape *s = reg->buckets[h & (reg->nbuckets - 1)]; s; s = s->hnext)
        if (s->hash == h && s->keylen == keylen && !memcmp(s->key, key, keylen))
            return s;
    return NULL;
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Compiles q into a new shape (refs 1) holding key. */
static int compile(corm_query *q, const char *key, size_t keylen, uint64_t h,
                   corm__shape **out, corm_error *err)
{
    corm_registry *reg = q->built->reg;
    cctx x = {0};
    x.a = &reg->alloc;
    x.err = err;
    c_query(&x, q, 0, NULL, true);
    int rc = x.rc;
    corm__shape *s = NULL;
    if (rc == CORM_OK) {
        size_t off_cols = align8(sizeof *s);
        size_t off_key = off_cols + (size_t)x.ncols * sizeof(corm__outcol);
        size_t off_sql = off_key + keylen;
        size_t off_names = off_sql + x.out.len + 1;
        size_t size = off_names + x.names.len;
        char *block = corm__malloc(x.a, size);
        if (!block) {
            rc = corm__err_nomem(err);
        } else {
            s = (corm__shape *)block;
            memset(s, 0, sizeof *s);
            s->size = size;
            s->hash = h;
            s->refs = 1;
            s->keylen = keylen;
            s->key = block + off_key;
            memcpy(s->key, key, keylen);
            s->sql = block + off_sql;
            memcpy(s->sql, x.out.data, x.out.len);
            s->sql[x.out.len] = 0;
            char *names = block + off_names;
            if (x.names.len)
                memcpy(names, x.names.data, x.names.len);
            s->ncols = x.star ? -1 : x.ncols;
            s->cols = (corm__outcol *)(void *)(block + off_cols);
            for (int i = 0; i < x.ncols; i++) {
                s->cols[i].model = x.cols[i].model;
                s->cols[i].field = x.cols[i].field;
                s->cols[i].name = x.cols[i].name >= 0 ? names + x.cols[i].name : NULL;
            }
            reg->compiles++;
        }
    }
    corm__buf_free(&x.out, x.a);
    corm__buf_free(&x.names, x.a);
    corm__free(x.a, x.cols, (size_t)x.capcols * sizeof *x.cols);
    *out = s;
    return rc;
}

static bool same_shape(const corm__shape *a, const corm__shape *b)
{
    if (strcmp(a->sql, b->sql) || a->ncols != b->ncols)
        return false;
    for (int i = 0; i < a->ncols; i++)
        if (a->cols[i].model != b->cols[i].model || a->cols[i].field != b->cols[i].field ||
            (a->cols[i].name == NULL) != (b->cols[i].name == NULL) ||
            (a->cols[i].name && strcmp(a->cols[i].name, b->cols[i].name)))
            return false;
    return true;
}

int corm__built_finalize(corm_query *q, const char **sql, corm_error *err)
{
    corm__built *b = q->built;
    if (b->shape) {
        *sql = b->shape->sql;
        return CORM_OK;
    }
    corm_registry *reg = b->reg;
    kbuf k = {{0}, &reg->alloc, false};
    k_query(&k, q);
    if (k.oom) {
        corm__buf_free(&k.b, k.a);
        return corm__err_nomem(err);
    }
    uint64_t h = hash_bytes(k.b.data, k.b.len);
    corm__shape *s = cache_find(reg, h, k.b.data, k.b.len);
    int rc = CORM_OK;
    if (s) {
        reg->cache_hits++;
        s->refs++;
        if (reg->verify_cache) {
            corm__shape *fresh = NULL;
            uint64_t before = reg->compiles;
            rc = compile(q, k.b.data, k.b.len, h, &fresh, err);
            reg->compiles = before;
            if (rc == CORM_OK && !same_shape(s, fresh))
                rc = corm__err(err, CORM_EINTERNAL,
                               "shape cache returned \"%s\" for a query that compiles to "
                               "\"%s\"",
                               s->sql, fresh->sql);
            if (fresh)
                shape_free(reg, fresh);
            if (rc < 0) {
                corm__shape_release(reg, s);
                s = NULL;
            }
        }
    } else {
        rc = compile(q, k.b.data, k.b.len, h, &s, err);
        /* Out of memory for the cache: the query keeps its own shape. */
        if (rc == CORM_OK)
            cache_insert(reg, s);
    }
    corm__buf_free(&k.b, k.a);
    if (rc < 0)
        return rc;
    b->shape = s;
    *sql = s->sql;
    return CORM_OK;
}

/* ---- compiled queries: public reading -------------------------------- */

int corm_query_compile(corm_query *q, corm_error *err)
{
    corm__check(q != NULL, err, "query is NULL");
    if (!q->built)
        return CORM_OK;
    const char *sql;
    return corm__built_finalize(q, &sql, err);
}

int corm_query_ncolumns(const corm_query *q)
{
    if (!q || !q->built || !q->built->shape)
        return -1;
    return q->built->shape->ncols;
}

const char *corm_query_column_name(const corm_query *q, int i)
{
    if (corm_query_ncolumns(q) <= i || i < 0)
        return NULL;
    return q->built->shape->cols[i].name;
}

int corm_query_column_field(const corm_query *q, int i, const corm_model **model)
{
    if (model)
        *model = NULL;
    if (corm_query_ncolumns(q) <= i || i < 0)
        return -1;
    const corm__outcol *c = &q->built->shape->cols[i];
    if (model)
        *model = c->model;
    return c->field;
}
