/*
 * test_query.c - built queries run against PostgreSQL: every construct with
 * its rows checked, hostile values and names that must round-trip without
 * escaping, and the shape cache reusing one prepared statement.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include "test_sql_fixture.h"

/* ---- setup: a schema of our own, the fixture's tables, seed rows --------- */

typedef struct db {
    corm_conn *c;
    char schema[64];
    fx f;
} db;

static corm_result *run(corm_conn *c, corm_query *q)
{
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec(c, q, &r, &err), &err);
    return r;
}

/* Runs q, frees it, and returns the result. */
static corm_result *run_free(corm_conn *c, corm_query *q)
{
    corm_result *r = run(c, q);
    corm_query_free(q);
    return r;
}

/* One cell as text: integers, text, numeric, bool; NULL is "-". */
static void cell(const corm_result *r, int row, int col, char *buf, size_t size)
{
    corm_error err = CORM_ERROR_INIT;
    corm_value v;
    CHECK_OK(corm_result_get(r, row, col, &v, &err), &err);
    switch (v.kind) {
    case CORM_NULL:
        snprintf(buf, size, "-");
        break;
    case CORM_INT:
        snprintf(buf, size, "%lld", (long long)v.v.i);
        break;
    case CORM_BOOL:
        snprintf(buf, size, "%s", v.v.b ? "t" : "f");
        break;
    case CORM_FLOAT:
        snprintf(buf, size, "%g", v.v.f);
        break;
    case CORM_TEXT:
    case CORM_NUMERIC:
    case CORM_RAW:
    case CORM_JSON:
        snprintf(buf, size, "%.*s", (int)v.v.str.len, v.v.str.ptr);
        break;
    default:
        snprintf(buf, size, "?%d", (int)v.kind);
    }
}

/* Column col of every row, comma-separated. */
static const char *column(const corm_result *r, int col)
{
    static char out[4][1024];
    static int k;
    char *o = out[k++ % 4];
    o[0] = 0;
    for (int i = 0; i < corm_result_nrows(r); i++) {
        char c[256];
        cell(r, i, col, c, sizeof c);
        if (i)
            strcat(o, ",");
        strncat(o, c, 1023 - strlen(o));
    }
    return o;
}

/* Runs q (freeing it) and returns column col as text, freeing the result. */
static const char *rows_of(corm_conn *c, corm_query *q, int col)
{
    static char keep_[4][1024];
    static int k;
    corm_result *r = run_free(c, q);
    char *o = keep_[k++ % 4];
    snprintf(o, 1024, "%s", column(r, col));
    corm_result_free(r);
    return o;
}

static corm_query *SEL(const corm_model *m, const char *alias)
{
    corm_query *q = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_select(&q, m, alias, &err), &err);
    return q;
}

static void WHERE(corm_query *q, const corm_expr *e)
{
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_where(q, e, &err), &err);
}

static void ITEM(corm_query *q, const corm_expr *e, const char *alias)
{
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_select_expr(q, e, alias, &err), &err);
}

static void ORDER(corm_query *q, const corm_expr *e, unsigned flags)
{
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_order_by(q, e, flags, &err), &err);
}

static corm_value VNUM(const char *s)
{
    corm_value v = {.kind = CORM_NUMERIC};
    v.v.str.ptr = s;
    v.v.str.len = strlen(s);
    return v;
}

static void insert_row(db *d, const corm_model *m, int n, const int *cols,
                       const corm_value *vals)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_insert(&q, m, &err), &err);
    CHECK_OK(corm_query_values(q, n, cols, vals, &err), &err);
    corm_result_free(run_free(d->c, q));
}

/*
 * users: 1 ann (a@x, happy, 1.50), 2 bob (no email, sad, 2), 3 cat (c@x,
 * no mood, default score 0)
 * posts: 1 ann "hello" 5 {a,b}; 2 ann "world" 10; 3 bob "bob's" 1;
 * 4 ann "third" 20
 * categories: 1 root, 2 a (1), 3 b (1), 4 aa (2), 5 other
 */
static void db_open(db *d)
{
    memset(d, 0, sizeof *d);
    d->c = th_connect();
    th_name(d->schema, sizeof d->schema, d->c, "q");
    th_execf(d->c, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", d->schema);
    th_execf(d->c, "CREATE SCHEMA \"%s\"", d->schema);
    fx_init(&d->f, d->schema);
    fx *f = &d->f;
    corm_error err = CORM_ERROR_INIT;
    corm_ddl *ddl = NULL;
    CHECK_OK(corm_ddl_create(&ddl, f->reg, 0, NULL, 0, &err), &err);
    int rc = corm_ddl_exec(d->c, ddl, &err);
    corm_ddl_free(ddl);
    CHECK_OK(rc, &err);

    int ucols[] = {f->u_name, f->u_email, f->u_mood, f->u_score};
    corm_value u1[] = {VS("ann"), VS("a@x"), VS("happy"), VNUM("1.50")};
    corm_value u2[] = {VS("bob"), VN(), VS("sad"), VI(2)};
    insert_row(d, f->users, 4, ucols, u1);
    insert_row(d, f->users, 4, ucols, u2);
    int ucols3[] = {f->u_name, f->u_email};
    corm_value u3[] = {VS("cat"), VS("c@x")};
    insert_row(d, f->users, 2, ucols3, u3);

    int pcols[] = {f->p_user, f->p_title, f->p_likes, f->p_tags};
    corm_value tag_items[] = {VS("a"), VS("b")};
    int32_t dims[] = {2};
    corm_value tags = {.kind = CORM_ARRAY_ITEMS};
    tags.v.items.items = tag_items;
    tags.v.items.dims = dims;
    tags.v.items.ndim = 1;
    tags.v.items.elem_oid = CORM_OID_TEXT;
    corm_value p1[] = {VI(1), VS("hello"), VI(5), tags};
    corm_value p2[] = {VI(1), VS("world"), VI(10), VN()};
    corm_value p3[] = {VI(2), VS("bob's"), VI(1), VN()};
    corm_value p4[] = {VI(1), VS("third"), VI(20), VN()};
    insert_row(d, f->posts, 4, pcols, p1);
    insert_row(d, f->posts, 4, pcols, p2);
    insert_row(d, f->posts, 4, pcols, p3);
    insert_row(d, f->posts, 4, pcols, p4);

    int ccols[] = {f->c_name, f->c_parent};
    corm_value c1[] = {VS("root"), VN()}, c2[] = {VS("a"), VI(1)}, c3[] = {VS("b"), VI(1)},
               c4[] = {VS("aa"), VI(2)}, c5[] = {VS("other"), VN()};
    insert_row(d, f->cats, 2, ccols, c1);
    insert_row(d, f->cats, 2, ccols, c2);
    insert_row(d, f->cats, 2, ccols, c3);
    insert_row(d, f->cats, 2, ccols, c4);
    insert_row(d, f->cats, 2, ccols, c5);
}

static void db_close(db *d)
{
    fx_free(&d->f);
    th_execf(d->c, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", d->schema);
    corm_conn_close(d->c);
}

/* ---- SELECT ---------------------------------------------------------------- */

TEST(exec_select_where_order_limit)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f->users, NULL);
    corm_value one = VI(1);
    corm_expr *ge = NULL;
    CHECK_OK(corm_expr_cmp(&ge, COL(f->users, f->u_score), CORM_GE, &one, &err), &err);
    WHERE(q, keep(ge));
    ORDER(q, COL(f->users, f->u_name), CORM_DESC);
    corm_result *r = run(d.c, q);
    CHECK_STR(column(r, f->u_name), "bob,ann");
    CHECK_STR(column(r, f->u_score), "2.00,1.50");
    CHECK_STR(column(r, f->u_mood), "sad,happy");
    /* The result map, resolved when compiled: position i fills field i. */
    CHECK_EQ_INT(corm_query_ncolumns(q), corm_result_ncols(r));
    for (int i = 0; i < corm_result_ncols(r); i++) {
        const corm_model *m;
        CHECK_EQ_INT(corm_query_column_field(q, i, &m), i);
        CHECK(m == f->users);
        CHECK_STR(corm_result_colname(r, i), corm_query_column_name(q, i));
    }
    corm_result_free(r);
    CHECK_OK(corm_query_limit(q, 1, &err), &err);
    CHECK_OK(corm_query_offset(q, 1, &err), &err);
    CHECK_STR(rows_of(d.c, q, f->u_name), "ann");
    db_close(&d);
}

TEST(exec_comparisons_and_logic)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    static const struct {
        int op;
        const char *want;
    } cases[] = {
        {CORM_EQ, "2"},       {CORM_NE, "1,3"}, {CORM_LT, "1"},
        {CORM_LE, "1,2"},     {CORM_GT, "3"},   {CORM_GE, "2,3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        corm_query *q = SEL(f->users, NULL);
        WHERE(q, CMPI(COL(f->users, f->u_id), cases[i].op, 2));
        ORDER(q, COL(f->users, f->u_id), 0);
        CHECK_STR(rows_of(d.c, q, f->u_id), cases[i].want);
    }
    corm_query *q = SEL(f->users, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_expr *isnull = NULL;
    CHECK_OK(corm_expr_is_null(&isnull, COL(f->users, f->u_email), false, &err), &err);
    keep(isnull);
    WHERE(q, OR(AND(CMPS(COL(f->users, f->u_name), CORM_EQ, "ann"), NOT(isnull)),
                CMPI(COL(f->users, f->u_id), CORM_EQ, 3)));
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(d.c, q, f->u_name), "ann,cat");
    db_close(&d);
}

TEST(exec_in_and_not_in)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    int64_t ids[] = {1, 3, 99};
    struct {
        int n;
        bool negate;
        const char *want;
    } cases[] = {{3, false, "1,3"}, {1, false, "1"}, {0, false, ""},
                 {1, true, "2,3"},  {3, true, "2"},  {0, true, "1,2,3"}};
    int before = corm_conn_cached_statements(d.c);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        corm_query *q = SEL(f->users, NULL);
        WHERE(q, INI(COL(f->users, f->u_id), cases[i].n, ids, cases[i].negate));
        ORDER(q, COL(f->users, f->u_id), 0);
        CHECK_STR(rows_of(d.c, q, f->u_id), cases[i].want);
    }
    /* Every list length shares one statement per IN / NOT IN. */
    CHECK_EQ_INT(corm_conn_cached_statements(d.c) - before, 2);
    /* Text, varchar and enum columns; a NULL element. */
    const char *names[] = {"bob", "cat", "zed"};
    corm_query *q = SEL(f->users, NULL);
    WHERE(q, INS(COL(f->users, f->u_name), 3, names, false));
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(d.c, q, f->u_id), "2,3");
    const char *moods[] = {"happy", "sad"};
    q = SEL(f->users, NULL);
    WHERE(q, INS(COL(f->users, f->u_mood), 2, moods, false));
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(d.c, q, f->u_id), "1,2");
    q = SEL(f->users, NULL);
    WHERE(q, INS(COL(f->users, f->u_mood), 1, moods, true));
    CHECK_STR(rows_of(d.c, q, f->u_id), "2");
    corm_value withnull[] = {VI(1), VN()};
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_in(&e, COL(f->users, f->u_id), 2, withnull, false, &err), &err);
    q = SEL(f->users, NULL);
    WHERE(q, keep(e));
    CHECK_STR(rows_of(d.c, q, f->u_id), "1");
    /* float8[]: a cast gives the list its type. */
    corm_expr *fs = NULL;
    CHECK_OK(corm_expr_cast(&fs, COL(f->users, f->u_score), "double precision", &err), &err);
    keep(fs);
    corm_value floats[] = {{.kind = CORM_FLOAT, .v.f = 1.5}, {.kind = CORM_FLOAT, .v.f = 2.0}};
    CHECK_OK(corm_expr_in(&e, fs, 2, floats, false, &err), &err);
    q = SEL(f->users, NULL);
    WHERE(q, keep(e));
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_OK(corm_query_compile(q, &err), &err);
    CHECK_EQ_INT(q->oids[0], CORM_OID_FLOAT8_ARRAY);
    CHECK_STR(rows_of(d.c, q, f->u_id), "1,2");
    /* NULLS FIRST / LAST on the server. */
    q = SEL(f->users, NULL);
    ORDER(q, COL(f->users, f->u_email), CORM_DESC | CORM_NULLS_LAST);
    CHECK_STR(rows_of(d.c, q, f->u_id), "3,1,2");
    q = SEL(f->users, NULL);
    ORDER(q, COL(f->users, f->u_email), CORM_NULLS_FIRST);
    CHECK_STR(rows_of(d.c, q, f->u_id), "2,1,3");
    /* An IN list on an expression (no column type): typed by the values. */
    const char *lowered[] = {"ann", "bob"};
    q = SEL(f->users, NULL);
    WHERE(q, INS(FUNC(f->reg, "lower", 1, COL(f->users, f->u_name), NULL), 2, lowered, false));
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(d.c, q, f->u_id), "1,2");
    db_close(&d);
}

TEST(exec_like_between_null)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    int ucols[] = {f->u_name};
    corm_value v[] = {VS("50%_off\\x")};
    insert_row(&d, f->users, 1, ucols, v);
    struct {
        int op;
        const char *val, *want;
    } cases[] = {
        {CORM_LIKE, "a%", "1"},          {CORM_ILIKE, "B%", "2"},
        {CORM_NOT_LIKE, "%a%", "2,4"},   {CORM_NOT_ILIKE, "%A%", "2,4"},
        {CORM_CONTAINS, "%_", "4"},      {CORM_CONTAINS, "\\x", "4"},
        {CORM_CONTAINS, "o", "2,4"},     {CORM_ICONTAINS, "AN", "1"},
        {CORM_STARTSWITH, "50%", "4"},   {CORM_ISTARTSWITH, "CA", "3"},
        {CORM_ENDSWITH, "b", "2"},       {CORM_IENDSWITH, "T", "3"},
        {CORM_LIKE, "_a_", "3"},       {CORM_CONTAINS, "_a_", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        corm_query *q = SEL(f->users, NULL);
        WHERE(q, CMPS(COL(f->users, f->u_name), cases[i].op, cases[i].val));
        ORDER(q, COL(f->users, f->u_id), 0);
        const char *got = rows_of(d.c, q, f->u_id);
        CHECK_MSG(!strcmp(got, cases[i].want), "case %zu (%s): got %s, want %s", i, cases[i].val,
                  got, cases[i].want);
    }
    corm_expr *id = COL(f->users, f->u_id), *b = NULL, *nb = NULL, *isn = NULL, *nn = NULL;
    CHECK_OK(corm_expr_between(&b, id, VALFOR(id, VI(2)), VALFOR(id, VI(3)), false, &err), &err);
    CHECK_OK(corm_expr_between(&nb, id, VALFOR(id, VI(2)), VALFOR(id, VI(3)), true, &err), &err);
    CHECK_OK(corm_expr_is_null(&isn, COL(f->users, f->u_email), false, &err), &err);
    CHECK_OK(corm_expr_is_null(&nn, COL(f->users, f->u_mood), true, &err), &err);
    const corm_expr *es[] = {keep(b), keep(nb), keep(isn), keep(nn)};
    const char *want[] = {"2,3", "1,4", "2,4", "1,2"};
    for (int i = 0; i < 4; i++) {
        corm_query *q = SEL(f->users, NULL);
        WHERE(q, es[i]);
        ORDER(q, id, 0);
        CHECK_STR(rows_of(d.c, q, f->u_id), want[i]);
    }
    db_close(&d);
}

TEST(exec_distinct_group_having_aggregates)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f->posts, NULL);
    CHECK_OK(corm_query_distinct(q, &err), &err);
    ITEM(q, COL(f->posts, f->p_user), NULL);
    ORDER(q, COL(f->posts, f->p_user), 0);
    CHECK_STR(rows_of(d.c, q, 0), "1,2");

    /* DISTINCT ON: each user's most liked post. */
    q = SEL(f->posts, NULL);
    CHECK_OK(corm_query_distinct_on(q, COL(f->posts, f->p_user), &err), &err);
    ITEM(q, COL(f->posts, f->p_user), NULL);
    ITEM(q, COL(f->posts, f->p_title), NULL);
    ORDER(q, COL(f->posts, f->p_user), 0);
    ORDER(q, COL(f->posts, f->p_likes), CORM_DESC);
    CHECK_STR(rows_of(d.c, q, 1), "third,bob's");

    q = SEL(f->posts, NULL);
    corm_expr *likes = COL(f->posts, f->p_likes), *n = AGG(f->reg, CORM_COUNT, NULL, 0);
    ITEM(q, COL(f->posts, f->p_user), NULL);
    ITEM(q, n, "n");
    ITEM(q, AGG(f->reg, CORM_SUM, likes, 0), "total");
    ITEM(q, AGG(f->reg, CORM_AVG, likes, 0), "mean");
    ITEM(q, AGG(f->reg, CORM_MIN, likes, 0), "lo");
    ITEM(q, AGG(f->reg, CORM_MAX, likes, 0), "hi");
    ITEM(q, AGG(f->reg, CORM_COUNT, COL(f->posts, f->p_tags), CORM_AGG_DISTINCT), "ntags");
    CHECK_OK(corm_query_group_by(q, COL(f->posts, f->p_user), &err), &err);
    CHECK_OK(corm_query_having(q, OP(CORM_GT, n, VAL(f->reg, VI(1))), &err), &err);
    corm_result *r = run_free(d.c, q);
    CHECK_EQ_INT(corm_result_nrows(r), 1);
    char buf[64];
    const char *want[] = {"1", "3", "35", "11.6666666666666667", "5", "20", "1"};
    for (int i = 0; i < 7; i++) {
        cell(r, 0, i, buf, sizeof buf);
        CHECK_MSG(!strcmp(buf, want[i]), "column %d: %s, want %s", i, buf, want[i]);
    }
    corm_result_free(r);
    db_close(&d);
}

TEST(exec_joins)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    /* INNER JOIN on the foreign key. */
    corm_query *q = SEL(f->posts, NULL);
    CHECK_OK(corm_query_join(q, CORM_JOIN_INNER, f->users, NULL, NULL, &err), &err);
    CHECK_OK(corm_query_select_all(q, f->posts, NULL, &err), &err);
    ITEM(q, COL(f->users, f->u_name), "author");
    WHERE(q, CMPS(COL(f->users, f->u_name), CORM_EQ, "bob"));
    corm_result *r = run_free(d.c, q);
    CHECK_STR(column(r, f->p_title), "bob's");
    CHECK_STR(column(r, 5), "bob");
    corm_result_free(r);
    /* LEFT JOIN keeps users without posts. */
    q = SEL(f->users, NULL);
    CHECK_OK(corm_query_join(q, CORM_JOIN_LEFT, f->posts, NULL, NULL, &err), &err);
    ITEM(q, COL(f->users, f->u_name), NULL);
    ITEM(q, COL(f->posts, f->p_title), NULL);
    ORDER(q, COL(f->users, f->u_id), 0);
    ORDER(q, COL(f->posts, f->p_id), 0);
    r = run_free(d.c, q);
    CHECK_STR(column(r, 0), "ann,ann,ann,bob,cat");
    CHECK_STR(column(r, 1), "hello,world,third,bob's,-");
    corm_result_free(r);
    /* Explicit ON, aliases, a self join. */
    q = SEL(f->cats, "c");
    CHECK_OK(corm_query_join(q, CORM_JOIN_LEFT, f->cats, "p",
                             OP(CORM_EQ, COLA(f->cats, f->c_parent, "c"),
                                COLA(f->cats, f->c_id, "p")),
                             &err),
             &err);
    ITEM(q, COLA(f->cats, f->c_name, "c"), NULL);
    ITEM(q, COLA(f->cats, f->c_name, "p"), "parent");
    ORDER(q, COLA(f->cats, f->c_id, "c"), 0);
    r = run_free(d.c, q);
    CHECK_STR(column(r, 0), "root,a,b,aa,other");
    CHECK_STR(column(r, 1), "-,root,root,a,-");
    corm_result_free(r);
    db_close(&d);
}

TEST(exec_subqueries)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    /* IN (SELECT ...), with parameters on both sides. */
    corm_query *sub = SEL(f->posts, NULL);
    ITEM(sub, COL(f->posts, f->p_user), NULL);
    WHERE(sub, CMPI(COL(f->posts, f->p_likes), CORM_GT, 7));
    corm_query *q = SEL(f->users, NULL);
    WHERE(q, CMPS(COL(f->users, f->u_name), CORM_NE, "zed"));
    corm_expr *in = NULL, *notin = NULL;
    CHECK_OK(corm_expr_in_query(&in, COL(f->users, f->u_id), sub, false, &err), &err);
    CHECK_OK(corm_expr_in_query(&notin, COL(f->users, f->u_id), sub, true, &err), &err);
    WHERE(q, keep(in));
    CHECK_STR(rows_of(d.c, q, f->u_name), "ann");
    q = SEL(f->users, NULL);
    WHERE(q, keep(notin));
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(d.c, q, f->u_name), "bob,cat");
    corm_query_free(sub);
    /* Correlated EXISTS / NOT EXISTS. */
    sub = SEL(f->posts, NULL);
    ITEM(sub, COL(f->posts, f->p_id), NULL);
    WHERE(sub, OP(CORM_EQ, COL(f->posts, f->p_user), COL(f->users, f->u_id)));
    corm_expr *ex = NULL;
    CHECK_OK(corm_expr_exists(&ex, sub, &err), &err);
    keep(ex);
    q = SEL(f->users, NULL);
    WHERE(q, ex);
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(d.c, q, f->u_name), "ann,bob");
    q = SEL(f->users, NULL);
    WHERE(q, NOT(ex));
    CHECK_STR(rows_of(d.c, q, f->u_name), "cat");
    corm_query_free(sub);
    /* A scalar subquery per row. */
    sub = SEL(f->posts, NULL);
    ITEM(sub, AGG(f->reg, CORM_COUNT, NULL, 0), NULL);
    WHERE(sub, OP(CORM_EQ, COL(f->posts, f->p_user), COL(f->users, f->u_id)));
    corm_expr *sc = NULL;
    CHECK_OK(corm_expr_subquery(&sc, sub, &err), &err);
    keep(sc);
    corm_query_free(sub);
    q = SEL(f->users, NULL);
    ITEM(q, COL(f->users, f->u_name), NULL);
    ITEM(q, sc, "nposts");
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(d.c, q, 1), "3,1,0");
    db_close(&d);
}

TEST(exec_ctes)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    /* Recursive: category 1 and its descendants, with depth. */
    corm_query *base = SEL(f->cats, NULL);
    ITEM(base, COL(f->cats, f->c_id), NULL);
    ITEM(base, VAL(f->reg, VI(0)), NULL);
    WHERE(base, CMPI(COL(f->cats, f->c_id), CORM_EQ, 1));
    corm_query *rec = SEL(f->cats, "c");
    ITEM(rec, COLA(f->cats, f->c_id, "c"), NULL);
    ITEM(rec, OP(CORM_ADD, IDENT(f->reg, "tree", "depth"), VAL(f->reg, VI(1))), NULL);
    CHECK_OK(corm_query_join_cte(rec, CORM_JOIN_INNER, "tree", NULL,
                                 OP(CORM_EQ, COLA(f->cats, f->c_parent, "c"),
                                    IDENT(f->reg, "tree", "id")),
                                 &err),
             &err);
    CHECK_OK(corm_query_combine(base, CORM_UNION_ALL, rec, &err), &err);
    corm_query *q = NULL;
    CHECK_OK(corm_query_new(&q, f->reg, &err), &err);
    const char *cols[] = {"id", "depth"};
    CHECK_OK(corm_query_with(q, "tree", 2, cols, base, CORM_CTE_RECURSIVE, &err), &err);
    CHECK_OK(corm_query_from_cte(q, "tree", "t", &err), &err);
    ITEM(q, IDENT(f->reg, "t", "id"), NULL);
    ITEM(q, IDENT(f->reg, "t", "depth"), NULL);
    ORDER(q, IDENT(f->reg, "t", "id"), 0);
    corm_result *r = run_free(d.c, q);
    CHECK_STR(column(r, 0), "1,2,3,4");
    CHECK_STR(column(r, 1), "0,1,1,2");
    corm_result_free(r);
    corm_query_free(base);
    corm_query_free(rec);

    /* A data-modifying CTE: delete bob's posts, count them. */
    corm_query *del = NULL;
    CHECK_OK(corm_query_delete(&del, f->posts, &err), &err);
    WHERE(del, CMPI(COL(f->posts, f->p_user), CORM_EQ, 2));
    CHECK_OK(corm_query_returning(del, COL(f->posts, f->p_id), NULL, &err), &err);
    CHECK_OK(corm_query_new(&q, f->reg, &err), &err);
    CHECK_OK(corm_query_with(q, "gone", 0, NULL, del, 0, &err), &err);
    CHECK_OK(corm_query_from_cte(q, "gone", NULL, &err), &err);
    ITEM(q, AGG(f->reg, CORM_COUNT, NULL, 0), "n");
    CHECK_STR(rows_of(d.c, q, 0), "1");
    corm_query_free(del);
    CHECK_EQ_INT(th_intf(d.c, "SELECT count(*) FROM \"%s\".posts", d.schema), 3);
    db_close(&d);
}

TEST(exec_window_functions)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    corm_expr *ord = NULL, *rn = NULL, *total = NULL;
    CHECK_OK(corm_expr_order(&ord, COL(f->posts, f->p_likes), CORM_DESC, &err), &err);
    keep(ord);
    const corm_expr *part[] = {COL(f->posts, f->p_user)};
    const corm_expr *order[] = {ord};
    CHECK_OK(corm_expr_over(&rn, FUNC(f->reg, "row_number", 0, NULL, NULL), 1, part, 1, order,
                            &err),
             &err);
    CHECK_OK(corm_expr_over(&total, AGG(f->reg, CORM_SUM, COL(f->posts, f->p_likes), 0), 1, part,
                            0, NULL, &err),
             &err);
    corm_query *q = SEL(f->posts, NULL);
    ITEM(q, COL(f->posts, f->p_title), NULL);
    ITEM(q, keep(rn), "rank");
    ITEM(q, keep(total), "total");
    ORDER(q, COL(f->posts, f->p_id), 0);
    corm_result *r = run_free(d.c, q);
    CHECK_STR(column(r, 0), "hello,world,bob's,third");
    CHECK_STR(column(r, 1), "3,2,1,1");
    CHECK_STR(column(r, 2), "35,35,1,35");
    corm_result_free(r);
    db_close(&d);
}

TEST(exec_for_update_skip_locked_nowait)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    corm_conn *other = th_connect();
    th_exec(d.c, "BEGIN");
    corm_query *q = SEL(f->users, NULL);
    WHERE(q, CMPI(COL(f->users, f->u_id), CORM_EQ, 1));
    CHECK_OK(corm_query_lock(q, CORM_FOR_UPDATE, &err), &err);
    CHECK_STR(rows_of(d.c, q, f->u_name), "ann");
    th_exec(other, "BEGIN");
    q = SEL(f->users, NULL);
    CHECK_OK(corm_query_lock(q, CORM_FOR_UPDATE | CORM_LOCK_SKIP_LOCKED, &err), &err);
    ORDER(q, COL(f->users, f->u_id), 0);
    CHECK_STR(rows_of(other, q, f->u_id), "2,3");
    q = SEL(f->users, NULL);
    WHERE(q, CMPI(COL(f->users, f->u_id), CORM_EQ, 1));
    CHECK_OK(corm_query_lock(q, CORM_FOR_SHARE | CORM_LOCK_NOWAIT, &err), &err);
    corm_result *r = NULL;
    CHECK_ERR(corm_conn_exec(other, q, &r, &err), corm_error_class_of_sqlstate("55P03"), &err);
    CHECK_STR(err.sqlstate, "55P03");
    corm_query_free(q);
    th_exec(other, "ROLLBACK");
    th_exec(d.c, "ROLLBACK");
    corm_error_clear(&err);
    corm_conn_close(other);
    db_close(&d);
}

/* ---- INSERT, upsert, UPDATE, DELETE ------------------------------------------ */

TEST(exec_insert_many_rows_defaults_returning)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_insert(&q, f->users, &err), &err);
    int c1[] = {f->u_name};
    corm_value v1[] = {VS("dan")};
    int c2[] = {f->u_name, f->u_email, f->u_score};
    corm_value v2[] = {VS("eve"), VS("e@x"), VNUM("-12.25")};
    int c3[] = {f->u_mood, f->u_name};
    corm_value v3[] = {VS("ok"), VS("fay")};
    CHECK_OK(corm_query_values(q, 1, c1, v1, &err), &err);
    CHECK_OK(corm_query_values(q, 3, c2, v2, &err), &err);
    CHECK_OK(corm_query_values(q, 2, c3, v3, &err), &err);
    CHECK_OK(corm_query_returning_all(q, &err), &err);
    corm_result *r = run(d.c, q);
    CHECK_EQ_INT(corm_result_nrows(r), 3);
    CHECK_EQ_INT(corm_result_affected(r), 3);
    CHECK_STR(column(r, f->u_id), "4,5,6");
    CHECK_STR(column(r, f->u_name), "dan,eve,fay");
    CHECK_STR(column(r, f->u_email), "-,e@x,-");
    CHECK_STR(column(r, f->u_mood), "-,-,ok");
    CHECK_STR(column(r, f->u_score), "0.00,-12.25,0.00");
    CHECK_EQ_INT(corm_result_isnull(r, 0, f->u_created), 0);
    CHECK_EQ_INT(corm_query_column_field(q, f->u_created, NULL), f->u_created);
    corm_result_free(r);
    corm_query_free(q);
    /* DEFAULT VALUES into a table where every column has a default. */
    corm_registry *reg = NULL;
    CHECK_OK(corm_registry_new(&reg, NULL, &err), &err);
    corm_model *m = NULL;
    CHECK_OK(corm_model_new(&m, reg, d.schema, "counters", &err), &err);
    CHECK_OK(corm_model_add_column(m, "id", "bigint", CORM_COL_PRIMARY_KEY, &err), &err);
    corm_ddl *ddl = NULL;
    CHECK_OK(corm_ddl_create(&ddl, reg, 0, NULL, 0, &err), &err);
    CHECK_OK(corm_ddl_exec(d.c, ddl, &err), &err);
    corm_ddl_free(ddl);
    CHECK_OK(corm_query_insert(&q, m, &err), &err);
    CHECK_OK(corm_query_values(q, 0, NULL, NULL, &err), &err);
    CHECK_OK(corm_query_returning_all(q, &err), &err);
    CHECK_STR(rows_of(d.c, q, 0), "1");
    CHECK_OK(corm_query_insert(&q, m, &err), &err);
    CHECK_OK(corm_query_values(q, 0, NULL, NULL, &err), &err);
    CHECK_OK(corm_query_values(q, 0, NULL, NULL, &err), &err);
    CHECK_OK(corm_query_returning_all(q, &err), &err);
    CHECK_STR(rows_of(d.c, q, 0), "2,3");
    corm_registry_free(reg);
    db_close(&d);
}

/* Arrays of enum labels go into an enum-array column (sent as array text
 * the server reads as the column's type), quotes and NULLs included. */
TEST(exec_enum_array_values)
{
    db d;
    db_open(&d);
    corm_error err = CORM_ERROR_INIT;
    corm_registry *reg = NULL;
    CHECK_OK(corm_registry_new(&reg, NULL, &err), &err);
    const char *labels[] = {"red", "gr\"een", "back\\slash"};
    CHECK_OK(corm_registry_add_enum(reg, d.schema, "hue", 3, labels, &err), &err);
    corm_model *m = NULL;
    CHECK_OK(corm_model_new(&m, reg, d.schema, "palettes", &err), &err);
    CHECK_OK(corm_model_add_column(m, "id", "bigint", CORM_COL_PRIMARY_KEY, &err), &err);
    int hues = corm_model_add_column(m, "hues", "hue[]", CORM_COL_NULL, &err);
    CHECK_OK(hues, &err);
    corm_ddl *ddl = NULL;
    CHECK_OK(corm_ddl_create(&ddl, reg, 0, NULL, 0, &err), &err);
    CHECK_OK(corm_ddl_exec(d.c, ddl, &err), &err);
    corm_ddl_free(ddl);
    corm_value items[] = {VS("gr\"een"), VN(), VS("back\\slash"), VS("red")};
    int32_t dims[] = {2, 2};
    corm_value arr = {.kind = CORM_ARRAY_ITEMS};
    arr.v.items.items = items;
    arr.v.items.dims = dims;
    arr.v.items.ndim = 2;
    corm_query *q = NULL;
    CHECK_OK(corm_query_insert(&q, m, &err), &err);
    CHECK_OK(corm_query_values(q, 1, &hues, &arr, &err), &err);
    corm_result *r = run(d.c, q);
    CHECK_EQ_INT(corm_result_affected(r), 1);
    corm_result_free(r);
    corm_query_free(q);
    char text[256];
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT hues::text FROM \"%s\".palettes", d.schema);
    th_text(d.c, sql, text, sizeof text);
    CHECK_STR(text, "{{\"gr\\\"een\",NULL},{\"back\\\\slash\",red}}");
    /* A label the enum lacks is the server's data error. */
    corm_value bad_items[] = {VS("purple")};
    int32_t one[] = {1};
    arr.v.items.items = bad_items;
    arr.v.items.dims = one;
    arr.v.items.ndim = 1;
    CHECK_OK(corm_query_insert(&q, m, &err), &err);
    CHECK_OK(corm_query_values(q, 1, &hues, &arr, &err), &err);
    CHECK_ERR(corm_conn_exec(d.c, q, NULL, &err), CORM_EDATA, &err);
    CHECK_STR(err.sqlstate, "22P02");
    corm_error_clear(&err);
    corm_query_free(q);
    corm_registry_free(reg);
    db_close(&d);
}

/* A value of a kind its column cannot hold is refused when the expression
 * or row is built, naming the column, before anything is sent. */
TEST(wrong_kind_refused_before_sending)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_expr *e = NULL;
    corm_value b = {.kind = CORM_BOOL, .v.b = true};
    CHECK_ERR(corm_expr_cmp(&e, COL(f.users, f.u_id), CORM_EQ, &b, &err), CORM_EDATA, &err);
    CHECK_MSG(strstr(err.message, "boolean") && strstr(err.message, "bigint"), "%s", err.message);
    corm_error_clear(&err);
    CHECK(e == NULL);
    corm_value n = VI(3);
    CHECK_ERR(corm_expr_cmp(&e, COL(f.users, f.u_mood), CORM_EQ, &n, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    corm_query *q = NULL;
    CHECK_OK(corm_query_insert(&q, f.users, &err), &err);
    int cols[] = {f.u_name};
    CHECK_ERR(corm_query_values(q, 1, cols, &n, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    /* Text is parsed by the server as the column's type; NULL fits any
     * nullable column. */
    corm_value t = VS("42"), nul = VN();
    int email[] = {f.u_email};
    CHECK_OK(corm_expr_cmp(&e, COL(f.users, f.u_id), CORM_EQ, &t, &err), &err);
    corm_expr_free(e);
    CHECK_OK(corm_expr_cmp(&e, COL(f.users, f.u_score), CORM_EQ, &n, &err), &err);
    corm_expr_free(e);
    CHECK_OK(corm_query_values(q, 1, email, &nul, &err), &err);
    corm_query_free(q);
    fx_free(&f);
}

TEST(exec_upsert)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    int cols[] = {f->u_name, f->u_email, f->u_score};
    corm_value vals[] = {VS("ann"), VS("new@x"), VI(3)};
    corm_query *q = NULL;
    CHECK_OK(corm_query_insert(&q, f->users, &err), &err);
    CHECK_OK(corm_query_values(q, 3, cols, vals, &err), &err);
    CHECK_OK(corm_query_on_conflict(q, 1, &f->u_name, CORM_CONFLICT_NOTHING, &err), &err);
    corm_result *r = run_free(d.c, q);
    CHECK_EQ_INT(corm_result_affected(r), 0);
    corm_result_free(r);

    CHECK_OK(corm_query_insert(&q, f->users, &err), &err);
    CHECK_OK(corm_query_values(q, 3, cols, vals, &err), &err);
    CHECK_OK(corm_query_on_conflict(q, 1, &f->u_name, CORM_CONFLICT_UPDATE, &err), &err);
    CHECK_OK(corm_query_returning(q, COL(f->users, f->u_id), NULL, &err), &err);
    CHECK_OK(corm_query_returning(q, COL(f->users, f->u_email), NULL, &err), &err);
    CHECK_OK(corm_query_returning(q, COL(f->users, f->u_score), NULL, &err), &err);
    r = run_free(d.c, q);
    CHECK_STR(column(r, 0), "1");
    CHECK_STR(column(r, 1), "new@x");
    CHECK_STR(column(r, 2), "3.00");
    corm_result_free(r);

    /* DO UPDATE SET score = users.score + EXCLUDED.score, and a new row. */
    CHECK_OK(corm_query_insert(&q, f->users, &err), &err);
    CHECK_OK(corm_query_values(q, 3, cols, vals, &err), &err);
    corm_value v2[] = {VS("gus"), VN(), VI(7)};
    CHECK_OK(corm_query_values(q, 3, cols, v2, &err), &err);
    CHECK_OK(corm_query_on_conflict(q, 1, &f->u_name, CORM_CONFLICT_UPDATE, &err), &err);
    corm_expr *ex = NULL;
    CHECK_OK(corm_expr_excluded(&ex, f->users, f->u_score, &err), &err);
    CHECK_OK(corm_query_set(q, f->u_score, OP(CORM_ADD, COL(f->users, f->u_score), keep(ex)),
                            &err),
             &err);
    CHECK_OK(corm_query_returning(q, COL(f->users, f->u_name), NULL, &err), &err);
    CHECK_OK(corm_query_returning(q, COL(f->users, f->u_score), NULL, &err), &err);
    r = run_free(d.c, q);
    CHECK_STR(column(r, 0), "ann,gus");
    CHECK_STR(column(r, 1), "6.00,7.00");
    corm_result_free(r);
    db_close(&d);
}

TEST(exec_update_and_delete_returning)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_update(&q, f->posts, &err), &err);
    corm_expr *likes = COL(f->posts, f->p_likes);
    CHECK_OK(corm_query_set(q, f->p_likes, OP(CORM_MUL, likes, VALFOR(likes, VI(2))), &err), &err);
    corm_value t = VS("edited");
    CHECK_OK(corm_query_set_value(q, f->p_title, &t, &err), &err);
    WHERE(q, CMPI(COL(f->posts, f->p_user), CORM_EQ, 1));
    CHECK_OK(corm_query_returning(q, likes, NULL, &err), &err);
    corm_result *r = run_free(d.c, q);
    CHECK_EQ_INT(corm_result_affected(r), 3);
    CHECK_EQ_INT(corm_result_nrows(r), 3);
    corm_result_free(r);
    CHECK_EQ_INT(th_intf(d.c, "SELECT sum(likes) FROM \"%s\".posts WHERE title = 'edited'",
                         d.schema),
                 70);
    CHECK_OK(corm_query_delete(&q, f->posts, &err), &err);
    WHERE(q, CMPI(COL(f->posts, f->p_likes), CORM_LT, 15));
    CHECK_OK(corm_query_returning(q, COL(f->posts, f->p_id), NULL, &err), &err);
    const char *gone = rows_of(d.c, q, 0); /* RETURNING has no order */
    CHECK_MSG(!strcmp(gone, "1,3") || !strcmp(gone, "3,1"), "deleted %s", gone);
    /* Setting NULL on a NOT NULL column is refused before sending. */
    CHECK_OK(corm_query_update(&q, f->posts, &err), &err);
    corm_value nul = VN();
    CHECK_ERR(corm_query_set_value(q, f->p_title, &nul, &err), CORM_EDATA, &err);
    corm_query_free(q);
    corm_error_clear(&err);
    db_close(&d);
}

TEST(exec_raw_fragments_casts_functions_sets)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f->users, NULL);
    WHERE(q, CMPS(COL(f->users, f->u_name), CORM_NE, "nobody"));
    corm_value ps[] = {VS("A@X"), VI(0)};
    WHERE(q, RAW(f->reg, "lower(\"email\") = lower($1) AND $2::int8 = 0 AND '$1' = '$1'", 2, ps));
    CHECK_STR(rows_of(d.c, q, f->u_name), "ann");

    corm_expr *cast = NULL;
    CHECK_OK(corm_expr_cast(&cast, COL(f->users, f->u_score), "integer", &err), &err);
    q = SEL(f->users, NULL);
    ITEM(q, FUNC(f->reg, "upper", 1, COL(f->users, f->u_name), NULL), NULL);
    ITEM(q, FUNC(f->reg, "coalesce", 2, COL(f->users, f->u_email), VAL(f->reg, VS("none"))),
         NULL);
    ITEM(q, OP(CORM_CONCAT, COL(f->users, f->u_name), VAL(f->reg, VS("!"))), NULL);
    ITEM(q, keep(cast), NULL);
    ORDER(q, COL(f->users, f->u_id), 0);
    corm_result *r = run_free(d.c, q);
    CHECK_STR(column(r, 0), "ANN,BOB,CAT");
    CHECK_STR(column(r, 1), "a@x,none,c@x");
    CHECK_STR(column(r, 2), "ann!,bob!,cat!");
    CHECK_STR(column(r, 3), "2,2,0");
    corm_result_free(r);

    /* UNION / INTERSECT / EXCEPT and FROM (subquery). */
    int ops[] = {CORM_UNION, CORM_INTERSECT, CORM_EXCEPT};
    const char *want[] = {"1,2,3", "1,2", "3"};
    for (int i = 0; i < 3; i++) {
        corm_query *a = SEL(f->users, NULL), *b = SEL(f->posts, NULL);
        ITEM(a, COL(f->users, f->u_id), NULL);
        ITEM(b, COL(f->posts, f->p_user), NULL);
        CHECK_OK(corm_query_combine(a, ops[i], b, &err), &err);
        ORDER(a, IDENT(f->reg, NULL, "id"), 0);
        CHECK_STR(rows_of(d.c, a, 0), want[i]);
        corm_query_free(b);
    }
    corm_query *sub = SEL(f->posts, NULL);
    CHECK_OK(corm_query_limit(sub, 2, &err), &err);
    CHECK_OK(corm_query_new(&q, f->reg, &err), &err);
    CHECK_OK(corm_query_from_query(q, sub, "t", &err), &err);
    ITEM(q, AGG(f->reg, CORM_COUNT, NULL, 0), NULL);
    CHECK_STR(rows_of(d.c, q, 0), "2");
    corm_query_free(sub);
    db_close(&d);
}

/* ---- the shape cache on a connection ------------------------------------------ */

TEST(exec_point_lookups_share_one_statement)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    uint64_t c0 = corm__registry_compiles(f->reg);
    int s0 = corm_conn_cached_statements(d.c);
    const char *names[] = {"ann", "bob", "cat"};
    for (int i = 0; i < 30; i++) {
        corm_query *q = NULL;
        corm_expr *c = NULL, *e = NULL;
        CHECK_OK(corm_query_select(&q, f->users, NULL, &err), &err);
        CHECK_OK(corm_expr_column(&c, f->users, f->u_id, NULL, &err), &err);
        corm_value v = VI(i % 3 + 1);
        CHECK_OK(corm_expr_cmp(&e, c, CORM_EQ, &v, &err), &err);
        CHECK_OK(corm_query_where(q, e, &err), &err);
        corm_expr_free(c);
        corm_expr_free(e);
        CHECK_STR(rows_of(d.c, q, f->u_name), names[i % 3]);
    }
    CHECK_EQ_INT(corm__registry_compiles(f->reg) - c0, 1);
    CHECK_EQ_INT(corm_conn_cached_statements(d.c) - s0, 1);
    db_close(&d);
}

/* ---- hostile values ------------------------------------------------------------ */

TEST(hostile_values_round_trip)
{
    db d;
    db_open(&d);
    fx *f = &d.f;
    corm_error err = CORM_ERROR_INIT;
    static char longs[100001];
    memset(longs, 'x', 100000);
    longs[0] = '\'';
    longs[99999] = '\\';
    const char *hostile[] = {
        "'", "''", "\\", "\\'", "'\\", "$1", "$2 $1", "$$", "$corm$", ";--",
        "'); DROP TABLE users; --", "\"; DROP TABLE users; --", "%", "_", "\\%",
        "E'\\x27'", "\xe2\x98\x83 snow", "tab\there\nnewline\r", "/* open", "*/", "?",
        longs,
    };
    int n = (int)(sizeof hostile / sizeof hostile[0]);
    for (int i = 0; i < n; i++) {
        const char *h = hostile[i];
        /* INSERT ... RETURNING reads it back exactly. */
        corm_query *q = NULL;
        CHECK_OK(corm_query_insert(&q, f->posts, &err), &err);
        int cols[] = {f->p_user, f->p_title};
        corm_value vals[] = {VI(3), VS(h)};
        CHECK_OK(corm_query_values(q, 2, cols, vals, &err), &err);
        CHECK_OK(corm_query_returning(q, COL(f->posts, f->p_title), NULL, &err), &err);
        corm_result *r = run_free(d.c, q);
        const char *s;
        size_t len;
        CHECK_OK(corm_result_get_text(r, 0, 0, &s, &len, &err), &err);
        CHECK_MSG(len == strlen(h) && !memcmp(s, h, len), "value %d changed", i);
        corm_result_free(r);
        /* Found by =, IN, CONTAINS and a raw fragment's parameter: once. */
        corm_expr *t = COL(f->posts, f->p_title);
        corm_expr *in = INS(t, 1, &h, false);
        corm_value hv = VS(h);
        const corm_expr *finds[] = {CMPS(t, CORM_EQ, h), in, CMPS(t, CORM_CONTAINS, h),
                                    RAW(f->reg, "\"title\" = $1", 1, &hv)};
        for (int k = 0; k < 4; k++) {
            corm_query *s2 = SEL(f->posts, NULL);
            ITEM(s2, AGG(f->reg, CORM_COUNT, NULL, 0), NULL);
            WHERE(s2, finds[k]);
            WHERE(s2, CMPI(COL(f->posts, f->p_user), CORM_EQ, 3));
            const char *got = rows_of(d.c, s2, 0);
            /* CONTAINS also matches longer titles holding h. */
            if (k == 2)
                CHECK_MSG(strcmp(got, "0") != 0, "value %d: contains found nothing", i);
            else
                CHECK_MSG(!strcmp(got, "1"), "value %d, lookup %d: %s rows", i, k, got);
        }
    }
    /* Nothing escaped: every table is intact. */
    CHECK_EQ_INT(th_intf(d.c, "SELECT count(*) FROM \"%s\".users", d.schema), 3);
    CHECK_EQ_INT(th_intf(d.c, "SELECT count(*) FROM \"%s\".posts", d.schema), 4 + n);

    /* Bytes that are not UTF-8: the server refuses them as data. */
    corm_query *q = NULL;
    CHECK_OK(corm_query_insert(&q, f->posts, &err), &err);
    int cols[] = {f->p_user, f->p_title};
    corm_value bad[] = {VI(3), VS("ok \xff\xfe bad")};
    CHECK_OK(corm_query_values(q, 2, cols, bad, &err), &err);
    corm_result *r = NULL;
    CHECK_ERR(corm_conn_exec(d.c, q, &r, &err), CORM_EDATA, &err);
    CHECK_STR(err.sqlstate, "22021");
    corm_query_free(q);
    /* NUL never reaches the server. */
    corm_value nulv = {.kind = CORM_TEXT};
    nulv.v.str.ptr = "a\0'; DROP TABLE users; --";
    nulv.v.str.len = 25;
    corm_expr *e = NULL;
    CHECK_ERR(corm_expr_cmp(&e, COL(f->posts, f->p_title), CORM_EQ, &nulv, &err), CORM_EDATA,
              &err);
    CHECK(strstr(err.message, "posts.title") != NULL);
    corm_error_clear(&err);
    CHECK_EQ_INT(th_intf(d.c, "SELECT count(*) FROM \"%s\".posts", d.schema), 4 + n);
    db_close(&d);
}

TEST(hostile_identifiers_in_queries)
{
    corm_conn *c = th_connect();
    char schema[64];
    th_name(schema, sizeof schema, c, "qid");
    th_execf(c, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    th_execf(c, "CREATE SCHEMA \"%s\"", schema);
    th_execf(c, "CREATE TABLE \"%s\".victim (x int)", schema);
    corm_registry *reg = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_registry_new(&reg, NULL, &err), &err);
    corm_model *m = NULL;
    CHECK_OK(corm_model_new(&m, reg, schema, "t\"; DROP TABLE victim; --", &err), &err);
    int id = corm_model_add_column(m, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    int a = corm_model_add_column(m, "$1", "text", 0, &err);
    int b = corm_model_add_column(m, "b\"; --", "text", CORM_COL_NULL, &err);
    int u = corm_model_add_column(m, "\xc3\xbc \\ '", "integer", CORM_COL_NULL, &err);
    CHECK(id >= 0 && a >= 0 && b >= 0 && u >= 0);
    corm_ddl *ddl = NULL;
    CHECK_OK(corm_ddl_create(&ddl, reg, 0, NULL, 0, &err), &err);
    CHECK_OK(corm_ddl_exec(c, ddl, &err), &err);
    corm_ddl_free(ddl);
    fx_nkept = 0;
    corm_query *q = NULL;
    CHECK_OK(corm_query_insert(&q, m, &err), &err);
    int cols[] = {a, b, u};
    corm_value vals[] = {VS("$2"), VS("'"), VI(5)};
    CHECK_OK(corm_query_values(q, 3, cols, vals, &err), &err);
    CHECK_OK(corm_query_returning_all(q, &err), &err);
    corm_result *r = run_free(c, q);
    CHECK_STR(column(r, a), "$2");
    CHECK_STR(column(r, b), "'");
    CHECK_STR(corm_result_colname(r, b), "b\"; --");
    corm_result_free(r);
    q = SEL(m, "a\"lias");
    WHERE(q, CMPS(COLA(m, a, "a\"lias"), CORM_EQ, "$2"));
    ITEM(q, COLA(m, u, "a\"lias"), "out\"put");
    r = run_free(c, q);
    CHECK_STR(column(r, 0), "5");
    CHECK_STR(corm_result_colname(r, 0), "out\"put");
    corm_result_free(r);
    CHECK_OK(corm_query_update(&q, m, &err), &err);
    corm_value nv = VI(6);
    CHECK_OK(corm_query_set_value(q, u, &nv, &err), &err);
    WHERE(q, CMPS(COL(m, b), CORM_EQ, "'"));
    corm_result_free(run_free(c, q));
    CHECK_OK(corm_query_delete(&q, m, &err), &err);
    WHERE(q, CMPI(COL(m, u), CORM_EQ, 6));
    r = run_free(c, q);
    CHECK_EQ_INT(corm_result_affected(r), 1);
    corm_result_free(r);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM \"%s\".victim", schema), 0);
    for (int i = 0; i < fx_nkept; i++)
        corm_expr_free(fx_kept[i]);
    fx_nkept = 0;
    corm_registry_free(reg);
    th_execf(c, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    corm_conn_close(c);
}
