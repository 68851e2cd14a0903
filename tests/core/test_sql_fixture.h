/*
 * test_sql_fixture.h - the models the compiler tests share (users, posts,
 * categories, an enum), and short helpers that build expressions and keep
 * them for one call to free at the end of a case. Include after ctest.h.
 */
#ifndef TEST_SQL_FIXTURE_H
#define TEST_SQL_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "corm.h"
#include "corm_int.h"
#include "ctest.h"

typedef struct fx {
    corm_registry *reg;
    corm_model *users, *posts, *cats;
    int u_id, u_name, u_email, u_mood, u_score, u_created;
    int p_id, p_user, p_title, p_likes, p_tags;
    int c_id, c_parent, c_name;
} fx;

/* Expressions made by the helpers below, freed by fx_free. */
static corm_expr *fx_kept[1024];
static int fx_nkept;

static inline corm_expr *keep(corm_expr *e)
{
    CHECK(fx_nkept < 1024);
    fx_kept[fx_nkept++] = e;
    return e;
}

#define OKE(call)                                                           \
    do {                                                                    \
        corm_error err_ = CORM_ERROR_INIT;                                  \
        int rc_ = (call);                                                   \
        CHECK_MSG(rc_ >= 0, "%s: %s", #call, err_.message ? err_.message : "?"); \
        corm_error_clear(&err_);                                            \
    } while (0)

static inline int fx_col(corm_model *m, const char *name, const char *type, unsigned flags)
{
    corm_error err = CORM_ERROR_INIT;
    int i = corm_model_add_column(m, name, type, flags, &err);
    CHECK_OK(i, &err);
    return i;
}

/*
 * users(id bigint pk, name varchar(30) unique, email text null, mood mood
 * null, score numeric(12,2) default 0, created timestamptz default now())
 * posts(id, user_id -> users on delete cascade, title text, likes integer
 * default 0, tags text[] null)
 * categories(id, parent_id -> categories null on delete set null, name)
 */
static inline void fx_init(fx *f, const char *schema)
{
    corm_error err = CORM_ERROR_INIT;
    memset(f, 0, sizeof *f);
    fx_nkept = 0;
    CHECK_OK(corm_registry_new(&f->reg, NULL, &err), &err);
    const char *moods[] = {"happy", "sad", "ok"};
    CHECK_OK(corm_registry_add_enum(f->reg, schema, "mood", 3, moods, &err), &err);

    CHECK_OK(corm_model_new(&f->users, f->reg, schema, "users", &err), &err);
    f->u_id = fx_col(f->users, "id", "bigint", CORM_COL_PRIMARY_KEY);
    f->u_name = fx_col(f->users, "name", "varchar(30)", CORM_COL_UNIQUE);
    f->u_email = fx_col(f->users, "email", "text", CORM_COL_NULL);
    f->u_mood = fx_col(f->users, "mood", schema ? "mood" : "mood", CORM_COL_NULL);
    f->u_score = fx_col(f->users, "score", "numeric(12,2)", 0);
    f->u_created = fx_col(f->users, "created", "timestamptz", 0);
    corm_value zero = {.kind = CORM_INT, .v.i = 0};
    CHECK_OK(corm_model_set_default(f->users, f->u_score, &zero, &err), &err);
    CHECK_OK(corm_model_set_default_sql(f->users, f->u_created, "now()", &err), &err);

    CHECK_OK(corm_model_new(&f->posts, f->reg, schema, "posts", &err), &err);
    f->p_id = fx_col(f->posts, "id", "bigint", CORM_COL_PRIMARY_KEY);
    f->p_user = fx_col(f->posts, "user_id", "bigint", 0);
    f->p_title = fx_col(f->posts, "title", "text", 0);
    f->p_likes = fx_col(f->posts, "likes", "integer", 0);
    f->p_tags = fx_col(f->posts, "tags", "text[]", CORM_COL_NULL);
    CHECK_OK(corm_model_set_default(f->posts, f->p_likes, &zero, &err), &err);
    CHECK_OK(corm_model_add_foreign_key(f->posts, NULL, 1, &f->p_user, f->users, NULL,
                                        CORM_FK_CASCADE, CORM_FK_NO_ACTION, &err),
             &err);

    CHECK_OK(corm_model_new(&f->cats, f->reg, schema, "categories", &err), &err);
    f->c_id = fx_col(f->cats, "id", "bigint", CORM_COL_PRIMARY_KEY);
    f->c_parent = fx_col(f->cats, "parent_id", "bigint", CORM_COL_NULL);
    f->c_name = fx_col(f->cats, "name", "text", 0);
    CHECK_OK(corm_model_add_foreign_key(f->cats, NULL, 1, &f->c_parent, f->cats, NULL,
                                        CORM_FK_SET_NULL, CORM_FK_NO_ACTION, &err),
             &err);
}

static inline void fx_free(fx *f)
{
    for (int i = 0; i < fx_nkept; i++)
        corm_expr_free(fx_kept[i]);
    fx_nkept = 0;
    corm_registry_free(f->reg);
    f->reg = NULL;
}

/* ---- expression shorthands (each kept) ---------------------------------- */

static inline corm_expr *COLA(const corm_model *m, int c, const char *alias)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_column(&e, m, c, alias, &err), &err);
    return keep(e);
}

static inline corm_expr *COL(const corm_model *m, int c)
{
    return COLA(m, c, NULL);
}

static inline corm_value VI(int64_t i)
{
    corm_value v = {.kind = CORM_INT};
    v.v.i = i;
    return v;
}

static inline corm_value VS(const char *s)
{
    corm_value v = {.kind = CORM_TEXT};
    v.v.str.ptr = s;
    v.v.str.len = strlen(s);
    return v;
}

static inline corm_value VN(void)
{
    corm_value v = {.kind = CORM_NULL};
    return v;
}

static inline corm_expr *CMPV(const corm_expr *l, int op, corm_value v)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_cmp(&e, l, op, &v, &err), &err);
    return keep(e);
}

static inline corm_expr *CMPI(const corm_expr *l, int op, int64_t i)
{
    return CMPV(l, op, VI(i));
}

static inline corm_expr *CMPS(const corm_expr *l, int op, const char *s)
{
    return CMPV(l, op, VS(s));
}

static inline corm_expr *OP(int op, const corm_expr *a, const corm_expr *b)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_op(&e, op, a, b, &err), &err);
    return keep(e);
}

static inline corm_expr *AND(const corm_expr *a, const corm_expr *b)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_and(&e, a, b, &err), &err);
    return keep(e);
}

static inline corm_expr *OR(const corm_expr *a, const corm_expr *b)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_or(&e, a, b, &err), &err);
    return keep(e);
}

static inline corm_expr *NOT(const corm_expr *a)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_not(&e, a, &err), &err);
    return keep(e);
}

static inline corm_expr *VAL(corm_registry *reg, corm_value v)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_value(&e, reg, &v, &err), &err);
    return keep(e);
}

static inline corm_expr *VALFOR(const corm_expr *like, corm_value v)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_value_for(&e, like, &v, &err), &err);
    return keep(e);
}

static inline corm_expr *AGG(corm_registry *reg, int agg, const corm_expr *arg, unsigned flags)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_agg(&e, reg, agg, arg, flags, &err), &err);
    return keep(e);
}

static inline corm_expr *FUNC(corm_registry *reg, const char *name, int n, const corm_expr *a0,
                       const corm_expr *a1)
{
    const corm_expr *args[2] = {a0, a1};
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_func(&e, reg, name, n, args, &err), &err);
    return keep(e);
}

static inline corm_expr *IDENT(corm_registry *reg, const char *q, const char *name)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_ident(&e, reg, q, name, &err), &err);
    return keep(e);
}

static inline corm_expr *INI(const corm_expr *l, int n, const int64_t *vals, bool negate)
{
    corm_value v[64];
    CHECK(n <= 64);
    for (int i = 0; i < n; i++)
        v[i] = VI(vals[i]);
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_in(&e, l, (size_t)n, v, negate, &err), &err);
    return keep(e);
}

static inline corm_expr *INS(const corm_expr *l, int n, const char *const *vals, bool negate)
{
    corm_value v[64];
    CHECK(n <= 64);
    for (int i = 0; i < n; i++)
        v[i] = VS(vals[i]);
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_in(&e, l, (size_t)n, v, negate, &err), &err);
    return keep(e);
}

static inline corm_expr *RAW(corm_registry *reg, const char *sql, int n, const corm_value *params)
{
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_raw(&e, reg, sql, n, params, &err), &err);
    return keep(e);
}

/* Compiles q and checks its SQL text. */
static inline void golden_(const char *file, int line, corm_query *q, const char *want)
{
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_query_compile(q, &err);
    if (rc < 0)
        ctest_fail_(file, line, "compile failed: %s", err.message ? err.message : "?");
    const char *got = corm_query_text(q);
    if (!got || strcmp(got, want))
        ctest_fail_(file, line, "SQL differs:\n   got: %s\n  want: %s", got ? got : "(null)",
                    want);
}
#define GOLDEN(q, want) golden_(__FILE__, __LINE__, (q), (want))

/* The text of parameter i (1-based) of q as bound (binary text or text format). */
static inline void param_text(const corm_query *q, int i, char *buf, size_t size)
{
    CHECK(i >= 1 && i <= q->nparams);
    int32_t len = q->lens[i - 1];
    if (len < 0) {
        snprintf(buf, size, "(null)");
        return;
    }
    snprintf(buf, size, "%.*s", (int)len, q->data.data + q->offsets[i - 1]);
}

/* An integer parameter (int2, int4 or int8, by its length). */
static inline int64_t param_int8(const corm_query *q, int i)
{
    CHECK(i >= 1 && i <= q->nparams);
    const char *p = q->data.data + q->offsets[i - 1];
    switch (q->lens[i - 1]) {
    case 2:
        return (int16_t)corm__get_u16(p);
    case 4:
        return (int32_t)corm__get_u32(p);
    case 8:
        return (int64_t)corm__get_u64(p);
    }
    FAIL("parameter $%d is not an integer (%d bytes)", i, (int)q->lens[i - 1]);
}

#endif /* TEST_SQL_FIXTURE_H */
