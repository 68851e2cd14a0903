/*
 * ddl.c - CREATE and DROP statements for a registry's models and enums,
 * in dependency order, as SQL text; and running them on a connection.
 */
#include "corm_int.h"

#include <stdio.h>
#include <string.h>

struct corm_ddl {
    corm__alloc alloc;
    int n, cap;
    char **stmts;
};

void corm_ddl_free(corm_ddl *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        corm__free(&d->alloc, d->stmts[i], strlen(d->stmts[i]) + 1);
    corm__free(&d->alloc, d->stmts, (size_t)d->cap * sizeof *d->stmts);
    corm__free(&d->alloc, d, sizeof *d);
}

int corm_ddl_count(const corm_ddl *d)
{
    return d ? d->n : 0;
}

const char *corm_ddl_statement(const corm_ddl *d, int i)
{
    return d && i >= 0 && i < d->n ? d->stmts[i] : NULL;
}

/* Moves the text of b into a new statement of d (b is emptied). */
static int add_stmt(corm_ddl *d, corm__buf *b)
{
    const corm__alloc *a = &d->alloc;
    if (d->n == d->cap) {
        int ncap = d->cap ? d->cap * 2 : 8;
        char **p = corm__realloc(a, d->stmts, (size_t)d->cap * sizeof *p,
                                 (size_t)ncap * sizeof *p);
        if (!p)
            return CORM_ENOMEM;
        d->stmts = p;
        d->cap = ncap;
    }
    char *s = corm__malloc(a, b->len + 1);
    if (!s)
        return CORM_ENOMEM;
    memcpy(s, b->data, b->len);
    s[b->len] = 0;
    d->stmts[d->n++] = s;
    b->len = 0;
    return CORM_OK;
}

/* Wraps the statement in b in a DO block that ignores duplicate_object
 * (for what has no IF NOT EXISTS). The dollar-quote tag is chosen so that
 * it does not occur in the body. */
static int wrap_do(corm__buf *b, const corm__alloc *a)
{
    char tag[32];
    for (int i = 0;; i++) {
        snprintf(tag, sizeof tag, i ? "$corm%d$" : "$corm$", i);
        bool found = false;
        size_t tl = strlen(tag);
        for (size_t k = 0; k + tl <= b->len && !found; k++)
            found = !memcmp(b->data + k, tag, tl);
        if (!found)
            break;
    }
    corm__buf w = {0};
    int rc = corm__buf_printf(&w, a, "DO %s BEGIN ", tag);
    if (rc == CORM_OK)
        rc = corm__buf_put(&w, a, b->data, b->len);
    if (rc == CORM_OK)
        rc = corm__buf_printf(&w, a, "; EXCEPTION WHEN duplicate_object THEN NULL; END %s",
                              tag);
    if (rc < 0) {
        corm__buf_free(&w, a);
        return CORM_ENOMEM;
    }
    corm__buf_free(b, a);
    *b = w;
    return CORM_OK;
}

typedef struct plan {
    const corm_model **models;  /* in creation order */
    int n;
} plan;

/* Orders the chosen models so that referenced tables come first (a
 * depth-first walk; cycles are broken where found). */
static int make_plan(corm_registry *reg, int n, const corm_model *const *models, plan *p,
                     corm_error *err)
{
    const corm__alloc *a = &reg->alloc;
    int total = n ? n : reg->nmodels;
    p->n = 0;
    p->models = corm__calloc(a, (size_t)(total ? total : 1) * sizeof *p->models);
    char *state = corm__calloc(a, (size_t)(reg->nmodels ? reg->nmodels : 1));
    char *chosen = corm__calloc(a, (size_t)(reg->nmodels ? reg->nmodels : 1));
    int *stack = corm__calloc(a, (size_t)(reg->nmodels ? reg->nmodels : 1) * 2 * sizeof(int));
    int rc = CORM_OK;
    if (!p->models || !state || !chosen || !stack) {
        rc = corm__err_nomem(err);
        goto done;
    }
    for (int i = 0; i < total; i++) {
        const corm_model *m = n ? models[i] : reg->models[i];
        if (!m || m->reg != reg) {
            rc = corm__err(err, CORM_EMISUSE, "model %d is NULL or from another registry", i);
            goto done;
        }
        if (chosen[m->index]) {
            rc = corm__err(err, CORM_EMISUSE, "model \"%s\" is listed twice", m->table);
            goto done;
        }
        chosen[m->index] = 1;
    }
    /* Iterative DFS: state 0 new, 1 on the stack, 2 placed. Each stack
     * entry is (model index, next foreign key to look at). */
    for (int i = 0; i < total; i++) {
        const corm_model *root = n ? models[i] : reg->models[i];
        if (state[root->index])
            continue;
        int sp = 0;
        stack[0] = root->index;
        stack[1] = 0;
        state[root->index] = 1;
        sp = 1;
        while (sp) {
            int mi = stack[2 * (sp - 1)], *next = &stack[2 * (sp - 1) + 1];
            const corm_model *m = reg->models[mi];
            if (*next < m->nfks) {
                const corm_model *t = m->fks[(*next)++].target;
                if (chosen[t->index] && state[t->index] == 0) {
                    state[t->index] = 1;
                    stack[2 * sp] = t->index;
                    stack[2 * sp + 1] = 0;
                    sp++;
                }
                continue;
            }
            state[mi] = 2;
            p->models[p->n++] = m;
            sp--;
        }
    }
    for (int i = 0; i < p->n; i++)
        ((corm_model *)p->models[i])->frozen = true;
done:
    corm__free(a, state, (size_t)(reg->nmodels ? reg->nmodels : 1));
    corm__free(a, chosen, (size_t)(reg->nmodels ? reg->nmodels : 1));
    corm__free(a, stack, (size_t)(reg->nmodels ? reg->nmodels : 1) * 2 * sizeof(int));
    if (rc < 0) {
        corm__free(a, p->models, (size_t)(total ? total : 1) * sizeof *p->models);
        p->models = NULL;
    }
    return rc;
}

static void free_plan(corm_registry *reg, plan *p, int total)
{
    corm__free(&reg->alloc, p->models, (size_t)(total ? total : 1) * sizeof *p->models);
}

static int plan_pos(const plan *p, const corm_model *m)
{
    for (int i = 0; i < p->n; i++)
        if (p->models[i] == m)
            return i;
    return -1;
}

/* Is this model's enum-typed column using u? */
static bool uses_type(const corm_model *m, const corm__utype *u)
{
    for (int c = 0; c < m->ncols; c++)
        if (m->cols[c].type.utype == u)
            return true;
    return false;
}

static int put_cols(corm__buf *b, const corm__alloc *a, const corm_model *m, int n,
                    const int *cols)
{
    int rc = corm__buf_puts(b, a, "(");
    for (int i = 0; i < n && rc == CORM_OK; i++) {
        if (i)
            rc = corm__buf_puts(b, a, ", ");
        if (rc == CORM_OK)
            rc = corm__buf_ident(b, a, m->cols[cols[i]].name);
    }
    return rc == CORM_OK ? corm__buf_puts(b, a, ")") : rc;
}

static const char *fk_action(int act)
{
    static const char *const s[] = {NULL, "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"};
    return s[act];
}

static int put_fk(corm__buf *b, const corm__alloc *a, const corm_model *m, const corm__fk *fk,
                  const char *name)
{
    int rc = CORM_OK;
    if (name) {
        rc = corm__buf_puts(b, a, "CONSTRAINT ");
        if (rc == CORM_OK)
            rc = corm__buf_ident(b, a, name);
        if (rc == CORM_OK)
            rc = corm__buf_puts(b, a, " ");
    }
    if (rc == CORM_OK)
        rc = corm__buf_puts(b, a, "FOREIGN KEY ");
    if (rc == CORM_OK)
        rc = put_cols(b, a, m, fk->ncols, fk->cols);
    if (rc == CORM_OK)
        rc = corm__buf_puts(b, a, " REFERENCES ");
    if (rc == CORM_OK)
        rc = corm__buf_table(b, a, fk->target);
    if (rc == CORM_OK)
        rc = corm__buf_puts(b, a, " ");
    if (rc == CORM_OK)
        rc = put_cols(b, a, fk->target, fk->ncols, fk->target_cols);
    if (rc == CORM_OK && fk->on_delete)
        rc = corm__buf_printf(b, a, " ON DELETE %s", fk_action(fk->on_delete));
    if (rc == CORM_OK && fk->on_update)
        rc = corm__buf_printf(b, a, " ON UPDATE %s", fk_action(fk->on_update));
    return rc;
}

static int put_enum(corm__buf *b, const corm__alloc *a, const corm__utype *u)
{
    int rc = corm__buf_printf(b, a, "CREATE TYPE %s AS ENUM (", u->sql);
    for (int i = 0; i < u->nlabels && rc == CORM_OK; i++) {
        if (i)
            rc = corm__buf_puts(b, a, ", ");
        if (rc == CORM_OK)
            rc = corm__buf_literal(b, a, u->labels[i], strlen(u->labels[i]), true);
    }
    return rc == CORM_OK ? corm__buf_puts(b, a, ")") : rc;
}

/* The CREATE TABLE of m; foreign keys to tables not yet created (a cycle)
 * are left for ALTER TABLE. */
static int put_table(corm__buf *b, const corm__alloc *a, const plan *p, int pos,
                     unsigned flags)
{
    const corm_model *m = p->models[pos];
    int rc = corm__buf_puts(b, a, flags & CORM_DDL_IF_NOT_EXISTS ? "CREATE TABLE IF NOT EXISTS "
                                                                  : "CREATE TABLE ");
    if (rc == CORM_OK)
        rc = corm__buf_table(b, a, m);
    if (rc == CORM_OK)
        rc = corm__buf_puts(b, a, " (");
    bool first = true;
#define SEP()                                                          \
    do {                                                               \
        if (rc == CORM_OK && !first)                                   \
            rc = corm__buf_puts(b, a, ", ");                           \
        first = false;                                                 \
    } while (0)
    for (int c = 0; c < m->ncols && rc == CORM_OK; c++) {
        const corm__column *col = &m->cols[c];
        SEP();
        if (rc == CORM_OK)
            rc = corm__buf_ident(b, a, col->name);
        if (rc == CORM_OK)
            rc = corm__buf_printf(b, a, " %s", col->type.sql);
        if (rc == CORM_OK && corm__column_identity(m, c))
            rc = corm__buf_puts(b, a, " GENERATED BY DEFAULT AS IDENTITY");
        if (rc == CORM_OK && !(col->flags & CORM_COL_NULL))
            rc = corm__buf_puts(b, a, " NOT NULL");
        const char *def = corm__column_default(m, c);
        if (rc == CORM_OK && def)
            rc = corm__buf_printf(b, a, " DEFAULT %s", def);
        if (rc == CORM_OK && (col->flags & CORM_COL_UNIQUE))
            rc = corm__buf_puts(b, a, " UNIQUE");
    }
    if (m->npk) {
        SEP();
        if (rc == CORM_OK)
            rc = corm__buf_puts(b, a, "PRIMARY KEY ");
        if (rc == CORM_OK)
            rc = put_cols(b, a, m, m->npk, m->pk);
    }
    for (int i = 0; i < m->nuniques && rc == CORM_OK; i++) {
        SEP();
        if (rc == CORM_OK && m->uniques[i].name) {
            rc = corm__buf_puts(b, a, "CONSTRAINT ");
            if (rc == CORM_OK)
                rc = corm__buf_ident(b, a, m->uniques[i].name);
            if (rc == CORM_OK)
                rc = corm__buf_puts(b, a, " ");
        }
        if (rc == CORM_OK)
            rc = corm__buf_puts(b, a, "UNIQUE ");
        if (rc == CORM_OK)
            rc = put_cols(b, a, m, m->uniques[i].ncols, m->uniques[i].cols);
    }
    for (int i = 0; i < m->nchecks && rc == CORM_OK; i++) {
        SEP();
        if (rc == CORM_OK && m->checks[i].name) {
            rc = corm__buf_puts(b, a, "CONSTRAINT ");
            if (rc == CORM_OK)
                rc = corm__buf_ident(b, a, m->checks[i].name);
            if (rc == CORM_OK)
                rc = corm__buf_puts(b, a, " ");
        }
        if (rc == CORM_OK)
            rc = corm__buf_printf(b, a, "CHECK (%s)", m->checks[i].sql);
    }
    for (int i = 0; i < m->nfks && rc == CORM_OK; i++) {
        const corm__fk *fk = &m->fks[i];
        int tpos = plan_pos(p, fk->target);
        if (fk->target != m && tpos > pos)
            continue; /* a cycle: added by ALTER TABLE */
        SEP();
        if (rc == CORM_OK)
            rc = put_fk(b, a, m, fk, fk->name);
    }
#undef SEP
    return rc == CORM_OK ? corm__buf_puts(b, a, ")") : rc;
}

static int ddl_new(corm_ddl **out, corm_registry *reg, corm_error *err)
{
    corm_ddl *d = corm__calloc(&reg->alloc, sizeof *d);
    if (!d)
        return corm__err_nomem(err);
    d->alloc = reg->alloc;
    *out = d;
    return CORM_OK;
}

int corm_ddl_create(corm_ddl **out, corm_registry *reg, int n, const corm_model *const *models,
                    unsigned flags, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(reg != NULL, err, "registry is NULL");
    corm__check(n >= 0 && (n == 0 || models), err, "models are NULL");
    corm__check((flags & ~(unsigned)CORM_DDL_IF_NOT_EXISTS) == 0, err,
                "bad flags for CREATE (only CORM_DDL_IF_NOT_EXISTS)");
    plan p;
    int rc = make_plan(reg, n, models, &p, err);
    if (rc < 0)
        return rc;
    corm_ddl *d = NULL;
    const corm__alloc *a = &reg->alloc;
    corm__buf b = {0};
    if ((rc = ddl_new(&d, reg, err)) < 0)
        goto fail;
    bool ine = flags & CORM_DDL_IF_NOT_EXISTS;
    for (int i = 0; i < reg->nutypes && rc == CORM_OK; i++) {
        const corm__utype *u = reg->utypes[i];
        bool used = false;
        for (int k = 0; k < p.n && !used; k++)
            used = uses_type(p.models[k], u);
        if (!u->is_enum || !used)
            continue;
        rc = put_enum(&b, a, u);
        if (rc == CORM_OK && ine)
            rc = wrap_do(&b, a);
        if (rc == CORM_OK)
            rc = add_stmt(d, &b);
    }
    for (int i = 0; i < p.n && rc == CORM_OK; i++) {
        rc = put_table(&b, a, &p, i, flags);
        if (rc == CORM_OK)
            rc = add_stmt(d, &b);
    }
    /* Foreign keys that close a cycle, once every table exists. */
    for (int i = 0; i < p.n && rc == CORM_OK; i++) {
        const corm_model *m = p.models[i];
        for (int k = 0; k < m->nfks && rc == CORM_OK; k++) {
            const corm__fk *fk = &m->fks[k];
            if (fk->target == m || plan_pos(&p, fk->target) < i)
                continue;
            /* Named, so that running the DDL again finds it exists. */
            char name[CORM__NAME_MAX + 1];
            if (fk->name)
                snprintf(name, sizeof name, "%s", fk->name);
            else
                snprintf(name, sizeof name, "%.40s_%.16s_fkey", m->table,
                         m->cols[fk->cols[0]].name);
            /* Keep whole UTF-8 sequences after the cut. */
            size_t len = strlen(name);
            if (!corm__utf8_valid(name, len)) {
                while (len && !corm__utf8_valid(name, len))
                    name[--len] = 0;
            }
            rc = corm__buf_puts(&b, a, "ALTER TABLE ");
            if (rc == CORM_OK)
                rc = corm__buf_table(&b, a, m);
            if (rc == CORM_OK)
                rc = corm__buf_puts(&b, a, " ADD ");
            if (rc == CORM_OK)
                rc = put_fk(&b, a, m, fk, name);
            if (rc == CORM_OK && ine)
                rc = wrap_do(&b, a);
            if (rc == CORM_OK)
                rc = add_stmt(d, &b);
        }
    }
    for (int i = 0; i < p.n && rc == CORM_OK; i++) {
        const corm_model *m = p.models[i];
        for (int k = 0; k < m->nindexes && rc == CORM_OK; k++) {
            const corm__index *ix = &m->indexes[k];
            rc = corm__buf_printf(&b, a, "CREATE %sINDEX %s",
                                  ix->flags & CORM_INDEX_UNIQUE ? "UNIQUE " : "",
                                  ine ? "IF NOT EXISTS " : "");
            if (rc == CORM_OK)
                rc = corm__buf_ident(&b, a, ix->name);
            if (rc == CORM_OK)
                rc = corm__buf_puts(&b, a, " ON ");
            if (rc == CORM_OK)
                rc = corm__buf_table(&b, a, m);
            if (rc == CORM_OK && ix->method)
                rc = corm__buf_printf(&b, a, " USING %s", ix->method);
            if (rc == CORM_OK)
                rc = corm__buf_puts(&b, a, " ");
            if (rc == CORM_OK)
                rc = put_cols(&b, a, m, ix->ncols, ix->cols);
            if (rc == CORM_OK && ix->where_sql)
                rc = corm__buf_printf(&b, a, " WHERE %s", ix->where_sql);
            if (rc == CORM_OK)
                rc = add_stmt(d, &b);
        }
    }
    if (rc < 0)
        rc = corm__err_nomem(err);
fail:
    corm__buf_free(&b, a);
    free_plan(reg, &p, n ? n : reg->nmodels);
    if (rc < 0) {
        corm_ddl_free(d);
        return rc;
    }
    *out = d;
    return CORM_OK;
}

int corm_ddl_drop(corm_ddl **out, corm_registry *reg, int n, const corm_model *const *models,
                  unsigned flags, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(reg != NULL, err, "registry is NULL");
    corm__check(n >= 0 && (n == 0 || models), err, "models are NULL");
    corm__check((flags & ~(unsigned)(CORM_DDL_IF_EXISTS | CORM_DDL_CASCADE)) == 0, err,
                "bad flags for DROP (CORM_DDL_IF_EXISTS, CORM_DDL_CASCADE)");
    plan p;
    int rc = make_plan(reg, n, models, &p, err);
    if (rc < 0)
        return rc;
    corm_ddl *d = NULL;
    const corm__alloc *a = &reg->alloc;
    corm__buf b = {0};
    if ((rc = ddl_new(&d, reg, err)) < 0)
        goto fail;
    const char *tail = flags & CORM_DDL_CASCADE ? " CASCADE" : "";
    if (p.n) {
        /* One statement: tables that reference each other go together. */
        rc = corm__buf_puts(&b, a,
                            flags & CORM_DDL_IF_EXISTS ? "DROP TABLE IF EXISTS " : "DROP TABLE ");
        for (int i = p.n - 1; i >= 0 && rc == CORM_OK; i--) {
            rc = corm__buf_table(&b, a, p.models[i]);
            if (rc == CORM_OK && i)
                rc = corm__buf_puts(&b, a, ", ");
        }
        if (rc == CORM_OK)
            rc = corm__buf_puts(&b, a, tail);
        if (rc == CORM_OK)
            rc = add_stmt(d, &b);
    }
    /* Enums that only the dropped models use. */
    for (int i = reg->nutypes - 1; i >= 0 && rc == CORM_OK; i--) {
        const corm__utype *u = reg->utypes[i];
        if (!u->is_enum)
            continue;
        bool used_here = false, used_elsewhere = false;
        for (int k = 0; k < reg->nmodels; k++) {
            bool here = plan_pos(&p, reg->models[k]) >= 0;
            if (uses_type(reg->models[k], u)) {
                used_here |= here;
                used_elsewhere |= !here;
            }
        }
        if (!used_here || used_elsewhere)
            continue;
        rc = corm__buf_printf(&b, a, "DROP TYPE %s%s%s",
                              flags & CORM_DDL_IF_EXISTS ? "IF EXISTS " : "", u->sql, tail);
        if (rc == CORM_OK)
            rc = add_stmt(d, &b);
    }
    if (rc < 0)
        rc = corm__err_nomem(err);
fail:
    corm__buf_free(&b, a);
    free_plan(reg, &p, n ? n : reg->nmodels);
    if (rc < 0) {
        corm_ddl_free(d);
        return rc;
    }
    *out = d;
    return CORM_OK;
}

int corm_ddl_exec(corm_conn *c, const corm_ddl *d, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(d != NULL, err, "ddl is NULL");
    bool own = !corm_conn_in_transaction(c);
    int rc;
    if (own && (rc = corm_conn_exec_sql(c, "BEGIN", NULL, err)) < 0)
        return rc;
    for (int i = 0; i < d->n; i++) {
        rc = corm_conn_exec_sql(c, d->stmts[i], NULL, err);
        if (rc < 0) {
            if (own)
                corm_conn_exec_sql(c, "ROLLBACK", NULL, NULL);
            return rc;
        }
    }
    if (own)
        return corm_conn_exec_sql(c, "COMMIT", NULL, err);
    return CORM_OK;
}
