/*
 * test_sql.c - the query compiler without a database: the SQL text of
 * every construct (golden strings), parameter numbering and values, the
 * result-column map, the shape cache, quoting of hostile names, and the
 * errors of bad queries.
 */
#define CTEST_MAIN
#include "ctest.h"

#include "test_sql_fixture.h"

#define UCOLS "\"id\", \"name\", \"email\", \"mood\", \"score\", \"created\""
#define PCOLS "\"id\", \"user_id\", \"title\", \"likes\", \"tags\""

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

/* ---- SELECT ----------------------------------------------------------- */

TEST(select_default_columns)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\"");
    CHECK_EQ_INT(corm_query_kind(q), CORM_QUERY_SELECT);
    CHECK_EQ_INT(corm_query_nparams(q), 0);
    corm_query_free(q);
    fx_free(&f);
}

TEST(select_schema_qualified)
{
    fx f;
    fx_init(&f, "app");
    corm_query *q = SEL(f.posts, NULL);
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_join(q, CORM_JOIN_INNER, f.users, NULL, NULL, &err), &err);
    ITEM(q, COL(f.posts, f.p_title), NULL);
    ITEM(q, COL(f.users, f.u_name), NULL);
    GOLDEN(q, "SELECT \"app\".\"posts\".\"title\", \"app\".\"users\".\"name\" FROM "
              "\"app\".\"posts\" JOIN \"app\".\"users\" ON \"app\".\"posts\".\"user_id\" = "
              "\"app\".\"users\".\"id\"");
    corm_query_free(q);
    fx_free(&f);
}

TEST(where_comparisons)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    int ops[] = {CORM_EQ, CORM_NE, CORM_LT, CORM_LE, CORM_GT, CORM_GE};
    for (int i = 0; i < 6; i++)
        WHERE(q, CMPI(COL(f.users, f.u_id), ops[i], i + 1));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = $1 AND \"id\" <> $2 AND \"id\" < $3 "
              "AND \"id\" <= $4 AND \"id\" > $5 AND \"id\" >= $6");
    CHECK_EQ_INT(corm_query_nparams(q), 6);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(q->oids[i], CORM_OID_INT8);
        CHECK_EQ_INT(param_int8(q, i + 1), i + 1);
    }
    corm_query_free(q);
    fx_free(&f);
}

TEST(where_and_or_not_precedence)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    corm_expr *isnull = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_is_null(&isnull, COL(f.users, f.u_email), false, &err), &err);
    keep(isnull);
    corm_expr *e = AND(OR(CMPS(COL(f.users, f.u_name), CORM_EQ, "a"),
                          CMPI(COL(f.users, f.u_id), CORM_GT, 5)),
                       NOT(isnull));
    WHERE(q, e);
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE (\"name\" = $1 OR \"id\" > $2) AND NOT "
              "\"email\" IS NULL");
    corm_query_free(q);

    /* OR under AND in separate WHERE calls gets parentheses too. */
    q = SEL(f.users, NULL);
    WHERE(q, OR(CMPI(COL(f.users, f.u_id), CORM_EQ, 1), CMPI(COL(f.users, f.u_id), CORM_EQ, 2)));
    corm_expr *notnull = NULL;
    CHECK_OK(corm_expr_is_null(&notnull, COL(f.users, f.u_mood), true, &err), &err);
    WHERE(q, keep(notnull));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE (\"id\" = $1 OR \"id\" = $2) AND \"mood\" "
              "IS NOT NULL");
    corm_query_free(q);
    fx_free(&f);
}

TEST(arithmetic_precedence)
{
    fx f;
    fx_init(&f, NULL);
    corm_expr *a = COL(f.posts, f.p_id), *b = COL(f.posts, f.p_likes), *c = COL(f.posts, f.p_user);
    corm_query *q = SEL(f.posts, NULL);
    ITEM(q, OP(CORM_MUL, OP(CORM_ADD, a, b), c), "x");
    ITEM(q, OP(CORM_SUB, a, OP(CORM_SUB, b, c)), "y");
    ITEM(q, OP(CORM_SUB, OP(CORM_SUB, a, b), c), "z");
    ITEM(q, OP(CORM_EQ, OP(CORM_MOD, a, b), OP(CORM_DIV, b, c)), "w");
    GOLDEN(q, "SELECT (\"id\" + \"likes\") * \"user_id\" AS \"x\", \"id\" - (\"likes\" - "
              "\"user_id\") AS \"y\", \"id\" - \"likes\" - \"user_id\" AS \"z\", \"id\" % "
              "\"likes\" = \"likes\" / \"user_id\" AS \"w\" FROM \"posts\"");
    corm_query_free(q);
    fx_free(&f);
}

TEST(in_and_not_in_one_array_parameter)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    int64_t ids[] = {1, 2, 3};
    WHERE(q, INI(COL(f.users, f.u_id), 3, ids, false));
    WHERE(q, INI(COL(f.users, f.u_id), 1, ids, true));
    const char *names[] = {"ann", "bob"};
    WHERE(q, INS(COL(f.users, f.u_name), 2, names, false));
    const char *moods[] = {"happy", "ok"};
    WHERE(q, INS(COL(f.users, f.u_mood), 2, moods, true));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = ANY($1) AND \"id\" <> ALL($2) AND "
              "\"name\" = ANY($3) AND \"mood\" <> ALL(CAST($4 AS \"mood\"[]))");
    CHECK_EQ_INT(q->oids[0], CORM_OID_INT8_ARRAY);
    CHECK_EQ_INT(q->oids[2], CORM_OID_VARCHAR_ARRAY);
    CHECK_EQ_INT(q->oids[3], CORM_OID_TEXT_ARRAY);
    CHECK_EQ_INT(q->formats[0], 1);
    /* int8[] of 3: header 20 bytes, 3 x (4 + 8). */
    CHECK_EQ_INT(q->lens[0], 20 + 3 * 12);
    corm_query *q2 = SEL(f.users, NULL);
    int64_t many[40];
    for (int i = 0; i < 40; i++)
        many[i] = i;
    WHERE(q2, INI(COL(f.users, f.u_id), 40, many, false));
    GOLDEN(q2, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = ANY($1)");
    corm_query *q3 = SEL(f.users, NULL);
    WHERE(q3, INI(COL(f.users, f.u_id), 0, many, false));
    GOLDEN(q3, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = ANY($1)");
    CHECK_EQ_INT(q3->lens[0], 12); /* ndim 0 */
    corm_query_free(q);
    corm_query_free(q2);
    corm_query_free(q3);
    fx_free(&f);
}

TEST(like_family_and_escaping)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    corm_expr *n = COL(f.users, f.u_name);
    WHERE(q, CMPS(n, CORM_LIKE, "a%"));
    WHERE(q, CMPS(n, CORM_ILIKE, "b%"));
    WHERE(q, CMPS(n, CORM_NOT_LIKE, "c%"));
    WHERE(q, CMPS(n, CORM_NOT_ILIKE, "d%"));
    WHERE(q, CMPS(n, CORM_CONTAINS, "50%_off\\"));
    WHERE(q, CMPS(n, CORM_ISTARTSWITH, "ab"));
    WHERE(q, CMPS(n, CORM_ENDSWITH, "yz"));
    WHERE(q, CMPS(n, CORM_ICONTAINS, "m"));
    WHERE(q, CMPS(n, CORM_STARTSWITH, "s"));
    WHERE(q, CMPS(n, CORM_IENDSWITH, "e"));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"name\" LIKE $1 AND \"name\" ILIKE $2 AND "
              "\"name\" NOT LIKE $3 AND \"name\" NOT ILIKE $4 AND \"name\" LIKE $5 AND \"name\" "
              "ILIKE $6 AND \"name\" LIKE $7 AND \"name\" ILIKE $8 AND \"name\" LIKE $9 AND "
              "\"name\" ILIKE $10");
    char buf[64];
    param_text(q, 5, buf, sizeof buf);
    CHECK_STR(buf, "%50\\%\\_off\\\\%");
    param_text(q, 6, buf, sizeof buf);
    CHECK_STR(buf, "ab%");
    param_text(q, 7, buf, sizeof buf);
    CHECK_STR(buf, "%yz");
    corm_query_free(q);
    fx_free(&f);
}

TEST(between_and_null_tests)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    corm_expr *id = COL(f.users, f.u_id), *e = NULL, *e2 = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_expr_between(&e, id, VALFOR(id, VI(1)), VALFOR(id, VI(10)), false, &err), &err);
    CHECK_OK(corm_expr_between(&e2, id, VALFOR(id, VI(4)), VALFOR(id, VI(5)), true, &err), &err);
    WHERE(q, keep(e));
    WHERE(q, keep(e2));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" BETWEEN $1 AND $2 AND \"id\" NOT "
              "BETWEEN $3 AND $4");
    corm_query_free(q);
    fx_free(&f);
}

TEST(order_limit_offset)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_order_by(q, COL(f.users, f.u_name), CORM_ASC, &err), &err);
    CHECK_OK(corm_query_order_by(q, COL(f.users, f.u_id), CORM_DESC | CORM_NULLS_LAST, &err),
             &err);
    CHECK_OK(corm_query_order_by(q, COL(f.users, f.u_email), CORM_NULLS_FIRST, &err), &err);
    CHECK_OK(corm_query_limit(q, 10, &err), &err);
    CHECK_OK(corm_query_offset(q, 20, &err), &err);
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" ORDER BY \"name\", \"id\" DESC NULLS LAST, "
              "\"email\" NULLS FIRST LIMIT $1 OFFSET $2");
    CHECK_EQ_INT(param_int8(q, 1), 10);
    CHECK_EQ_INT(param_int8(q, 2), 20);
    CHECK_ERR(corm_query_limit(q, 5, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_query_offset(q, -1, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

TEST(distinct_and_distinct_on)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.users, NULL);
    CHECK_OK(corm_query_distinct(q, &err), &err);
    ITEM(q, COL(f.users, f.u_mood), NULL);
    GOLDEN(q, "SELECT DISTINCT \"mood\" FROM \"users\"");
    corm_query_free(q);
    q = SEL(f.posts, NULL);
    CHECK_OK(corm_query_distinct_on(q, COL(f.posts, f.p_user), &err), &err);
    ITEM(q, COL(f.posts, f.p_user), NULL);
    ITEM(q, COL(f.posts, f.p_title), NULL);
    CHECK_OK(corm_query_order_by(q, COL(f.posts, f.p_user), 0, &err), &err);
    CHECK_OK(corm_query_order_by(q, COL(f.posts, f.p_likes), CORM_DESC, &err), &err);
    GOLDEN(q, "SELECT DISTINCT ON (\"user_id\") \"user_id\", \"title\" FROM \"posts\" ORDER BY "
              "\"user_id\", \"likes\" DESC");
    CHECK_ERR(corm_query_distinct(q, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

TEST(group_by_having_aggregates)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.posts, NULL);
    corm_expr *likes = COL(f.posts, f.p_likes), *n = AGG(f.reg, CORM_COUNT, NULL, 0);
    ITEM(q, COL(f.posts, f.p_user), NULL);
    ITEM(q, n, "n");
    ITEM(q, AGG(f.reg, CORM_SUM, likes, 0), "total");
    ITEM(q, AGG(f.reg, CORM_AVG, likes, 0), "mean");
    ITEM(q, AGG(f.reg, CORM_MIN, likes, 0), "lo");
    ITEM(q, AGG(f.reg, CORM_MAX, likes, 0), "hi");
    ITEM(q, AGG(f.reg, CORM_COUNT, COL(f.posts, f.p_title), CORM_AGG_DISTINCT), "titles");
    CHECK_OK(corm_query_group_by(q, COL(f.posts, f.p_user), &err), &err);
    CHECK_OK(corm_query_having(q, OP(CORM_GT, n, VAL(f.reg, VI(2))), &err), &err);
    GOLDEN(q, "SELECT \"user_id\", count(*) AS \"n\", sum(\"likes\") AS \"total\", "
              "avg(\"likes\") AS \"mean\", min(\"likes\") AS \"lo\", max(\"likes\") AS \"hi\", "
              "count(DISTINCT \"title\") AS \"titles\" FROM \"posts\" GROUP BY \"user_id\" "
              "HAVING count(*) > $1");
    corm_query_free(q);
    fx_free(&f);
}

TEST(functions_casts_concat)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.users, NULL);
    corm_expr *cast = NULL;
    CHECK_OK(corm_expr_cast(&cast, COL(f.users, f.u_id), "text", &err), &err);
    keep(cast);
    corm_expr *cast2 = NULL;
    CHECK_OK(corm_expr_cast(&cast2, VAL(f.reg, VS("1.5")), "numeric(4, 2)", &err), &err);
    keep(cast2);
    ITEM(q, FUNC(f.reg, "lower", 1, COL(f.users, f.u_name), NULL), "lname");
    ITEM(q, OP(CORM_CONCAT, COL(f.users, f.u_name), VAL(f.reg, VS("!"))), "shout");
    ITEM(q, cast, "sid");
    ITEM(q, FUNC(f.reg, "coalesce", 2, COL(f.users, f.u_email), VAL(f.reg, VS("none"))), "em");
    ITEM(q, FUNC(f.reg, "pg_catalog.now", 0, NULL, NULL), NULL);
    ITEM(q, FUNC(f.reg, "MyFunc", 0, NULL, NULL), NULL);
    ITEM(q, cast2, NULL);
    GOLDEN(q, "SELECT lower(\"name\") AS \"lname\", \"name\" || $1 AS \"shout\", CAST(\"id\" AS "
              "text) AS \"sid\", coalesce(\"email\", $2) AS \"em\", pg_catalog.now(), "
              "\"MyFunc\"(), CAST($3 AS numeric(4,2)) FROM \"users\"");
    corm_query_free(q);
    corm_expr *bad = NULL;
    CHECK_ERR(corm_expr_func(&bad, f.reg, "f(); drop", 0, NULL, &err), CORM_EPROGRAMMING, &err);
    CHECK(bad == NULL);
    CHECK_ERR(corm_expr_cast(&bad, COL(f.users, f.u_id), "text; drop", &err), CORM_EPROGRAMMING,
              &err);
    corm_error_clear(&err);
    fx_free(&f);
}

/* ---- joins ------------------------------------------------------------- */

TEST(join_on_foreign_key)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.posts, NULL);
    CHECK_OK(corm_query_join(q, CORM_JOIN_INNER, f.users, NULL, NULL, &err), &err);
    CHECK_OK(corm_query_select_all(q, f.posts, NULL, &err), &err);
    ITEM(q, COL(f.users, f.u_name), "author");
    GOLDEN(q, "SELECT \"posts\".\"id\", \"posts\".\"user_id\", \"posts\".\"title\", "
              "\"posts\".\"likes\", \"posts\".\"tags\", \"users\".\"name\" AS \"author\" FROM "
              "\"posts\" JOIN \"users\" ON \"posts\".\"user_id\" = \"users\".\"id\"");
    /* The result map: posts' fields by position, then users.name. */
    CHECK_EQ_INT(corm_query_ncolumns(q), 6);
    const corm_model *m = NULL;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(corm_query_column_field(q, i, &m), i);
        CHECK(m == f.posts);
    }
    CHECK_EQ_INT(corm_query_column_field(q, 5, &m), f.u_name);
    CHECK(m == f.users);
    CHECK_STR(corm_query_column_name(q, 5), "author");
    corm_query_free(q);

    /* The other direction, LEFT JOIN, default columns. */
    q = SEL(f.users, NULL);
    CHECK_OK(corm_query_join(q, CORM_JOIN_LEFT, f.posts, NULL, NULL, &err), &err);
    GOLDEN(q, "SELECT \"users\".\"id\", \"users\".\"name\", \"users\".\"email\", "
              "\"users\".\"mood\", \"users\".\"score\", \"users\".\"created\" FROM \"users\" "
              "LEFT JOIN \"posts\" ON \"posts\".\"user_id\" = \"users\".\"id\"");
    corm_query_free(q);
    fx_free(&f);
}

TEST(join_on_condition_with_aliases)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.users, "u");
    CHECK_OK(corm_query_join(q, CORM_JOIN_INNER, f.posts, "p",
                             OP(CORM_EQ, COLA(f.posts, f.p_user, "p"), COLA(f.users, f.u_id, "u")),
                             &err),
             &err);
    ITEM(q, COLA(f.users, f.u_name, "u"), NULL);
    ITEM(q, COL(f.posts, f.p_title), NULL); /* the one posts item: its alias */
    WHERE(q, CMPI(COLA(f.posts, f.p_likes, "p"), CORM_GT, 3));
    GOLDEN(q, "SELECT \"u\".\"name\", \"p\".\"title\" FROM \"users\" AS \"u\" JOIN \"posts\" AS "
              "\"p\" ON \"p\".\"user_id\" = \"u\".\"id\" WHERE \"p\".\"likes\" > $1");
    corm_query_free(q);

    /* A self join: the foreign key goes both ways, so ON is required. */
    q = SEL(f.cats, "c");
    CHECK_ERR(corm_query_join(q, CORM_JOIN_LEFT, f.cats, "parent", NULL, &err), CORM_EPROGRAMMING,
              &err);
    CHECK(strstr(err.message, "foreign keys") != NULL);
    CHECK_OK(corm_query_join(q, CORM_JOIN_LEFT, f.cats, "parent",
                             OP(CORM_EQ, COLA(f.cats, f.c_parent, "c"),
                                COLA(f.cats, f.c_id, "parent")),
                             &err),
             &err);
    ITEM(q, COLA(f.cats, f.c_name, "c"), NULL);
    ITEM(q, COLA(f.cats, f.c_name, "parent"), "parent_name");
    GOLDEN(q, "SELECT \"c\".\"name\", \"parent\".\"name\" AS \"parent_name\" FROM "
              "\"categories\" AS \"c\" LEFT JOIN \"categories\" AS \"parent\" ON "
              "\"c\".\"parent_id\" = \"parent\".\"id\"");
    /* Without the alias the column is ambiguous: found when compiling. */
    corm_query *q2 = SEL(f.cats, "c");
    CHECK_OK(corm_query_join(q2, CORM_JOIN_LEFT, f.cats, "parent",
                             OP(CORM_EQ, COLA(f.cats, f.c_parent, "c"),
                                COLA(f.cats, f.c_id, "parent")),
                             &err),
             &err);
    ITEM(q2, COL(f.cats, f.c_name), NULL);
    CHECK_ERR(corm_query_compile(q2, &err), CORM_EPROGRAMMING, &err);
    CHECK(strstr(err.message, "appears 2 times") != NULL);
    CHECK(corm_query_text(q2) == NULL);
    CHECK_EQ_INT(corm_query_ncolumns(q2), -1);
    /* The same table twice without an alias is refused at once. */
    CHECK_ERR(corm_query_join(q2, CORM_JOIN_INNER, f.cats, "c", NULL, &err), CORM_EPROGRAMMING,
              &err);
    corm_error_clear(&err);
    corm_query_free(q);
    corm_query_free(q2);
    fx_free(&f);
}

/* ---- subqueries, CTEs, set operations, windows, locks ------------------- */

TEST(subqueries_in_exists_scalar)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    /* IN (subquery), numbered after the outer's earlier parameter. */
    corm_query *sub = SEL(f.posts, NULL);
    ITEM(sub, COL(f.posts, f.p_user), NULL);
    WHERE(sub, CMPI(COL(f.posts, f.p_likes), CORM_GT, 10));
    corm_query *q = SEL(f.users, NULL);
    WHERE(q, CMPS(COL(f.users, f.u_name), CORM_LIKE, "a%"));
    corm_expr *in = NULL;
    CHECK_OK(corm_expr_in_query(&in, COL(f.users, f.u_id), sub, false, &err), &err);
    WHERE(q, keep(in));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"name\" LIKE $1 AND \"id\" IN (SELECT "
              "\"user_id\" FROM \"posts\" WHERE \"likes\" > $2)");
    CHECK_EQ_INT(param_int8(q, 2), 10);
    /* The subquery is frozen now. */
    CHECK_ERR(corm_query_where(sub, COL(f.posts, f.p_id), &err), CORM_EMISUSE, &err);
    corm_query_free(sub);
    corm_query_free(q);

    /* Correlated EXISTS and NOT EXISTS. */
    sub = SEL(f.posts, NULL);
    ITEM(sub, COL(f.posts, f.p_id), NULL);
    WHERE(sub, OP(CORM_EQ, COL(f.posts, f.p_user), COL(f.users, f.u_id)));
    corm_expr *ex = NULL;
    CHECK_OK(corm_expr_exists(&ex, sub, &err), &err);
    keep(ex);
    q = SEL(f.users, NULL);
    ITEM(q, COL(f.users, f.u_name), NULL);
    WHERE(q, ex);
    GOLDEN(q, "SELECT \"name\" FROM \"users\" WHERE EXISTS (SELECT \"id\" FROM \"posts\" WHERE "
              "\"user_id\" = \"users\".\"id\")");
    corm_query_free(q);
    q = SEL(f.users, NULL);
    ITEM(q, COL(f.users, f.u_name), NULL);
    WHERE(q, NOT(ex));
    GOLDEN(q, "SELECT \"name\" FROM \"users\" WHERE NOT EXISTS (SELECT \"id\" FROM \"posts\" "
              "WHERE \"user_id\" = \"users\".\"id\")");
    corm_query_free(q);
    corm_query_free(sub);

    /* A scalar subquery in the SELECT list. */
    sub = SEL(f.posts, NULL);
    ITEM(sub, AGG(f.reg, CORM_COUNT, NULL, 0), NULL);
    WHERE(sub, OP(CORM_EQ, COL(f.posts, f.p_user), COL(f.users, f.u_id)));
    corm_expr *sc = NULL;
    CHECK_OK(corm_expr_subquery(&sc, sub, &err), &err);
    keep(sc);
    corm_query_free(sub); /* the expression keeps it */
    q = SEL(f.users, NULL);
    ITEM(q, COL(f.users, f.u_name), NULL);
    ITEM(q, sc, "nposts");
    GOLDEN(q, "SELECT \"name\", (SELECT count(*) FROM \"posts\" WHERE \"user_id\" = "
              "\"users\".\"id\") AS \"nposts\" FROM \"users\"");
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

TEST(cte_and_from_cte)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *active = SEL(f.posts, NULL);
    ITEM(active, COL(f.posts, f.p_user), NULL);
    WHERE(active, CMPI(COL(f.posts, f.p_likes), CORM_GT, 5));
    corm_query *ids = NULL;
    CHECK_OK(corm_query_new(&ids, f.reg, &err), &err);
    CHECK_OK(corm_query_from_cte(ids, "active", NULL, &err), &err);
    ITEM(ids, IDENT(f.reg, NULL, "user_id"), NULL);
    corm_query *q = SEL(f.users, NULL);
    WHERE(q, CMPS(COL(f.users, f.u_name), CORM_NE, "x"));
    CHECK_OK(corm_query_with(q, "active", 0, NULL, active, CORM_CTE_MATERIALIZED, &err), &err);
    ITEM(q, COL(f.users, f.u_name), NULL);
    corm_expr *in = NULL;
    CHECK_OK(corm_expr_in_query(&in, COL(f.users, f.u_id), ids, false, &err), &err);
    WHERE(q, keep(in));
    GOLDEN(q, "WITH \"active\" AS MATERIALIZED (SELECT \"user_id\" FROM \"posts\" WHERE "
              "\"likes\" > $2) SELECT \"name\" FROM \"users\" WHERE \"name\" <> $1 AND \"id\" IN "
              "(SELECT \"user_id\" FROM \"active\")");
    corm_query_free(active);
    corm_query_free(ids);
    corm_query_free(q);
    fx_free(&f);
}

TEST(recursive_cte)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *base = SEL(f.cats, NULL);
    ITEM(base, COL(f.cats, f.c_id), NULL);
    ITEM(base, COL(f.cats, f.c_parent), NULL);
    WHERE(base, CMPI(COL(f.cats, f.c_id), CORM_EQ, 1));
    corm_query *rec = SEL(f.cats, "c");
    ITEM(rec, COLA(f.cats, f.c_id, "c"), NULL);
    ITEM(rec, COLA(f.cats, f.c_parent, "c"), NULL);
    CHECK_OK(corm_query_join_cte(rec, CORM_JOIN_INNER, "tree", NULL,
                                 OP(CORM_EQ, COLA(f.cats, f.c_parent, "c"),
                                    IDENT(f.reg, "tree", "id")),
                                 &err),
             &err);
    CHECK_OK(corm_query_combine(base, CORM_UNION_ALL, rec, &err), &err);
    corm_query *q = NULL;
    CHECK_OK(corm_query_new(&q, f.reg, &err), &err);
    const char *cols[] = {"id", "parent_id"};
    CHECK_OK(corm_query_with(q, "tree", 2, cols, base, CORM_CTE_RECURSIVE, &err), &err);
    CHECK_OK(corm_query_from_cte(q, "tree", NULL, &err), &err);
    ITEM(q, IDENT(f.reg, NULL, "id"), NULL);
    CHECK_OK(corm_query_order_by(q, IDENT(f.reg, NULL, "id"), 0, &err), &err);
    GOLDEN(q, "WITH RECURSIVE \"tree\"(\"id\", \"parent_id\") AS (SELECT \"id\", \"parent_id\" "
              "FROM \"categories\" WHERE \"id\" = $1 UNION ALL SELECT \"c\".\"id\", "
              "\"c\".\"parent_id\" FROM \"categories\" AS \"c\" JOIN \"tree\" ON "
              "\"c\".\"parent_id\" = \"tree\".\"id\") SELECT \"id\" FROM \"tree\" ORDER BY \"id\"");
    corm_query_free(base);
    corm_query_free(rec);
    corm_query_free(q);
    fx_free(&f);
}

TEST(set_operations_and_from_subquery)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    int ops[] = {CORM_UNION, CORM_INTERSECT, CORM_EXCEPT};
    const char *words[] = {"UNION", "INTERSECT", "EXCEPT"};
    for (int i = 0; i < 3; i++) {
        corm_query *a = SEL(f.users, NULL), *b = SEL(f.posts, NULL);
        ITEM(a, COL(f.users, f.u_name), NULL);
        WHERE(a, CMPI(COL(f.users, f.u_id), CORM_LT, 5));
        ITEM(b, COL(f.posts, f.p_title), NULL);
        if (i == 2)
            CHECK_OK(corm_query_limit(b, 3, &err), &err);
        CHECK_OK(corm_query_combine(a, ops[i], b, &err), &err);
        CHECK_OK(corm_query_order_by(a, IDENT(f.reg, NULL, "name"), 0, &err), &err);
        char want[512];
        snprintf(want, sizeof want,
                 "SELECT \"name\" FROM \"users\" WHERE \"id\" < $1 %s %sSELECT \"title\" FROM "
                 "\"posts\"%s ORDER BY \"name\"",
                 words[i], i == 2 ? "(" : "", i == 2 ? " LIMIT $2)" : "");
        GOLDEN(a, want);
        corm_query_free(a);
        corm_query_free(b);
    }
    /* FROM (subquery) AS t: count of a limited query. */
    corm_query *sub = SEL(f.users, NULL);
    CHECK_OK(corm_query_limit(sub, 7, &err), &err);
    corm_query *q = NULL;
    CHECK_OK(corm_query_new(&q, f.reg, &err), &err);
    CHECK_OK(corm_query_from_query(q, sub, "t", &err), &err);
    ITEM(q, AGG(f.reg, CORM_COUNT, NULL, 0), "n");
    GOLDEN(q, "SELECT count(*) AS \"n\" FROM (SELECT " UCOLS " FROM \"users\" LIMIT $1) AS "
              "\"t\"");
    CHECK_EQ_INT(param_int8(q, 1), 7);
    corm_query_free(sub);
    corm_query_free(q);
    fx_free(&f);
}

TEST(window_functions)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_expr *ord = NULL, *w1 = NULL, *w2 = NULL, *w3 = NULL;
    CHECK_OK(corm_expr_order(&ord, COL(f.posts, f.p_likes), CORM_DESC | CORM_NULLS_LAST, &err),
             &err);
    keep(ord);
    const corm_expr *part[] = {COL(f.posts, f.p_user)};
    const corm_expr *order[] = {ord, COL(f.posts, f.p_id)};
    CHECK_OK(corm_expr_over(&w1, FUNC(f.reg, "row_number", 0, NULL, NULL), 1, part, 2, order,
                            &err),
             &err);
    CHECK_OK(corm_expr_over(&w2, AGG(f.reg, CORM_SUM, COL(f.posts, f.p_likes), 0), 1, part, 0,
                            NULL, &err),
             &err);
    CHECK_OK(corm_expr_over(&w3, AGG(f.reg, CORM_COUNT, NULL, 0), 0, NULL, 0, NULL, &err), &err);
    keep(w1), keep(w2), keep(w3);
    corm_query *q = SEL(f.posts, NULL);
    ITEM(q, COL(f.posts, f.p_title), NULL);
    ITEM(q, w1, "rank");
    ITEM(q, w2, "total");
    ITEM(q, w3, "all");
    GOLDEN(q, "SELECT \"title\", row_number() OVER (PARTITION BY \"user_id\" ORDER BY \"likes\" "
              "DESC NULLS LAST, \"id\") AS \"rank\", sum(\"likes\") OVER (PARTITION BY "
              "\"user_id\") AS \"total\", count(*) OVER () AS \"all\" FROM \"posts\"");
    corm_expr *bad = NULL;
    CHECK_ERR(corm_expr_over(&bad, COL(f.posts, f.p_id), 0, NULL, 0, NULL, &err),
              CORM_EPROGRAMMING, &err);
    /* An ordering outside ORDER BY / OVER does not compile. */
    corm_query *q2 = SEL(f.posts, NULL);
    WHERE(q2, ord);
    CHECK_ERR(corm_query_compile(q2, &err), CORM_EPROGRAMMING, &err);
    corm_error_clear(&err);
    corm_query_free(q2);
    corm_query_free(q);
    fx_free(&f);
}

TEST(row_locks)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.users, NULL);
    WHERE(q, CMPI(COL(f.users, f.u_id), CORM_EQ, 1));
    CHECK_OK(corm_query_lock(q, CORM_FOR_UPDATE | CORM_LOCK_SKIP_LOCKED, &err), &err);
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = $1 FOR UPDATE SKIP LOCKED");
    CHECK_OK(corm_query_lock(q, CORM_FOR_SHARE | CORM_LOCK_NOWAIT, &err), &err);
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = $1 FOR SHARE NOWAIT");
    CHECK_OK(corm_query_lock(q, CORM_FOR_NO_KEY_UPDATE, &err), &err);
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = $1 FOR NO KEY UPDATE");
    CHECK_ERR(corm_query_lock(q, CORM_FOR_UPDATE | CORM_LOCK_NOWAIT | CORM_LOCK_SKIP_LOCKED, &err),
              CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

/* ---- INSERT, upsert, UPDATE, DELETE ------------------------------------- */

static corm_query *INSERT(const corm_model *m)
{
    corm_query *q = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_insert(&q, m, &err), &err);
    return q;
}

static void ROW(corm_query *q, int n, const int *cols, const corm_value *vals)
{
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_values(q, n, cols, vals, &err), &err);
}

TEST(insert_rows_defaults_returning)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = INSERT(f.users);
    int cols[] = {f.u_name, f.u_email};
    corm_value vals[] = {VS("ann"), VS("a@x")};
    ROW(q, 2, cols, vals);
    CHECK_OK(corm_query_returning_all(q, &err), &err);
    GOLDEN(q, "INSERT INTO \"users\" (\"name\", \"email\") VALUES ($1, $2) RETURNING " UCOLS);
    CHECK_EQ_INT(corm_query_kind(q), CORM_QUERY_INSERT);
    CHECK_EQ_INT(corm_query_ncolumns(q), 6);
    CHECK_EQ_INT(q->oids[0], CORM_OID_VARCHAR);
    CHECK_EQ_INT(q->oids[1], CORM_OID_TEXT);
    corm_query_free(q);

    /* Rows with different columns: DEFAULT fills the gaps. */
    q = INSERT(f.users);
    ROW(q, 1, cols, vals);
    int cols2[] = {f.u_email, f.u_name};
    corm_value vals2[] = {VS("b@x"), VS("bob")};
    ROW(q, 2, cols2, vals2);
    corm_value none[1];
    int mood[] = {f.u_mood};
    none[0] = VS("sad");
    ROW(q, 1, mood, none);
    corm_query_returning(q, COL(f.users, f.u_id), NULL, &err);
    GOLDEN(q, "INSERT INTO \"users\" (\"name\", \"email\", \"mood\") VALUES ($1, DEFAULT, "
              "DEFAULT), ($3, $2, DEFAULT), (DEFAULT, DEFAULT, $4) RETURNING \"id\"");
    /* The enum value goes in binary (its label's bytes), typed by the server. */
    CHECK_EQ_INT(q->oids[3], 0);
    CHECK_EQ_INT(q->formats[3], 1);
    corm_query_free(q);

    q = INSERT(f.posts);
    ROW(q, 0, NULL, NULL);
    GOLDEN(q, "INSERT INTO \"posts\" DEFAULT VALUES");
    ROW(q, 0, NULL, NULL);
    GOLDEN(q, "INSERT INTO \"posts\" (\"id\") VALUES (DEFAULT), (DEFAULT)");
    corm_query_free(q);

    q = INSERT(f.posts);
    CHECK_ERR(corm_query_compile(q, &err), CORM_EPROGRAMMING, &err);
    CHECK(strstr(err.message, "without rows") != NULL);
    /* A value that does not fit its column names the column. */
    int likes[] = {f.p_likes};
    corm_value big[] = {VI(5000000000)};
    CHECK_ERR(corm_query_values(q, 1, likes, big, &err), CORM_EDATA, &err);
    CHECK(strstr(err.message, "posts.likes") != NULL);
    CHECK_EQ_INT(corm_query_nparams(q), 0);
    int title[] = {f.p_title};
    corm_value nul[] = {VN()};
    CHECK_ERR(corm_query_values(q, 1, title, nul, &err), CORM_EDATA, &err);
    CHECK(strstr(err.message, "NOT NULL") != NULL);
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

TEST(upsert)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    int cols[] = {f.u_name, f.u_email};
    corm_value vals[] = {VS("ann"), VS("a@x")};
    corm_query *q = INSERT(f.users);
    ROW(q, 2, cols, vals);
    CHECK_OK(corm_query_on_conflict(q, 1, &f.u_name, CORM_CONFLICT_NOTHING, &err), &err);
    GOLDEN(q, "INSERT INTO \"users\" (\"name\", \"email\") VALUES ($1, $2) ON CONFLICT "
              "(\"name\") DO NOTHING");
    CHECK_ERR(corm_query_on_conflict(q, 1, &f.u_name, CORM_CONFLICT_NOTHING, &err), CORM_EMISUSE,
              &err);
    corm_query_free(q);

    q = INSERT(f.users);
    ROW(q, 2, cols, vals);
    CHECK_OK(corm_query_on_conflict(q, 1, &f.u_name, CORM_CONFLICT_UPDATE, &err), &err);
    CHECK_OK(corm_query_returning(q, COL(f.users, f.u_id), NULL, &err), &err);
    GOLDEN(q, "INSERT INTO \"users\" (\"name\", \"email\") VALUES ($1, $2) ON CONFLICT "
              "(\"name\") DO UPDATE SET \"email\" = EXCLUDED.\"email\" RETURNING \"id\"");
    corm_query_free(q);

    q = INSERT(f.users);
    int cols3[] = {f.u_name, f.u_score};
    corm_value vals3[] = {VS("ann"), VI(5)};
    ROW(q, 2, cols3, vals3);
    CHECK_OK(corm_query_on_conflict(q, 1, &f.u_name, CORM_CONFLICT_UPDATE, &err), &err);
    corm_expr *ex = NULL;
    CHECK_OK(corm_expr_excluded(&ex, f.users, f.u_score, &err), &err);
    keep(ex);
    CHECK_OK(corm_query_set(q, f.u_score, OP(CORM_ADD, COL(f.users, f.u_score), ex), &err), &err);
    corm_value mood = VS("happy");
    CHECK_OK(corm_query_set_value(q, f.u_mood, &mood, &err), &err);
    GOLDEN(q, "INSERT INTO \"users\" (\"name\", \"score\") VALUES ($1, $2) ON CONFLICT "
              "(\"name\") DO UPDATE SET \"score\" = \"users\".\"score\" + EXCLUDED.\"score\", "
              "\"mood\" = $3");
    corm_query_free(q);

    /* EXCLUDED outside an upsert does not compile. */
    q = SEL(f.users, NULL);
    ITEM(q, ex, NULL);
    CHECK_ERR(corm_query_compile(q, &err), CORM_EPROGRAMMING, &err);
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

TEST(update_and_delete)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_update(&q, f.posts, &err), &err);
    CHECK_ERR(corm_query_compile(q, &err), CORM_EPROGRAMMING, &err);
    corm_value t = VS("x");
    CHECK_OK(corm_query_set_value(q, f.p_title, &t, &err), &err);
    corm_expr *likes = COL(f.posts, f.p_likes);
    CHECK_OK(corm_query_set(q, f.p_likes, OP(CORM_ADD, likes, VALFOR(likes, VI(1))), &err), &err);
    WHERE(q, CMPI(COL(f.posts, f.p_id), CORM_EQ, 5));
    CHECK_OK(corm_query_returning(q, likes, "n", &err), &err);
    GOLDEN(q, "UPDATE \"posts\" SET \"title\" = $1, \"likes\" = \"likes\" + $2 WHERE \"id\" = $3 "
              "RETURNING \"likes\" AS \"n\"");
    CHECK_EQ_INT(q->oids[1], CORM_OID_INT4); /* typed like the integer column */
    CHECK_ERR(corm_query_set_value(q, f.p_title, &t, &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_query_select_expr(q, likes, NULL, &err), CORM_EMISUSE, &err);
    corm_query_free(q);

    CHECK_OK(corm_query_delete(&q, f.posts, &err), &err);
    WHERE(q, CMPI(COL(f.posts, f.p_likes), CORM_LT, 1));
    CHECK_OK(corm_query_returning(q, COL(f.posts, f.p_id), NULL, &err), &err);
    GOLDEN(q, "DELETE FROM \"posts\" WHERE \"likes\" < $1 RETURNING \"id\"");
    CHECK_EQ_INT(corm_query_kind(q), CORM_QUERY_DELETE);
    CHECK_ERR(corm_query_limit(q, 1, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

/* ---- raw fragments and parameter numbering ------------------------------ */

TEST(raw_fragments_renumbered)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.users, NULL);
    WHERE(q, CMPS(COL(f.users, f.u_name), CORM_EQ, "x"));
    corm_value ps[] = {VS("A"), VS("B")};
    WHERE(q, RAW(f.reg,
                 "lower(\"email\") = lower($1) OR $2 = '$3' OR \"$1\" IS NULL -- $2\n"
                 " OR $$ $1 $$ = E'\\' $1' OR x$1 = /* $1 */ $1",
                 2, ps));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"name\" = $1 AND (lower(\"email\") = "
              "lower($2) OR $3 = '$3' OR \"$1\" IS NULL -- $2\n OR $$ $1 $$ = E'\\' $1' OR x$1 = "
              "/* $1 */ $2)");
    char buf[16];
    param_text(q, 2, buf, sizeof buf);
    CHECK_STR(buf, "A");
    corm_query_free(q);

    corm_expr *bad = NULL;
    CHECK_ERR(corm_expr_raw(&bad, f.reg, "1; DROP TABLE users", 0, NULL, &err), CORM_EPROGRAMMING,
              &err);
    CHECK_ERR(corm_expr_raw(&bad, f.reg, "$3", 2, ps, &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_expr_raw(&bad, f.reg, "'unterminated", 0, NULL, &err), CORM_EPROGRAMMING,
              &err);
    CHECK_ERR(corm_expr_raw(&bad, f.reg, "\"unterminated", 0, NULL, &err), CORM_EPROGRAMMING,
              &err);
    CHECK_ERR(corm_expr_raw(&bad, f.reg, "/* open", 0, NULL, &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_expr_raw(&bad, f.reg, "$q$ open", 0, NULL, &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_expr_raw(&bad, f.reg, "  ", 0, NULL, &err), CORM_EPROGRAMMING, &err);
    /* A semicolon inside quotes is text. */
    CHECK_OK(corm_expr_raw(&bad, f.reg, "';' = ';'", 0, NULL, &err), &err);
    corm_expr_free(bad);
    corm_error_clear(&err);
    fx_free(&f);
}

TEST(parameters_numbered_in_build_order)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    WHERE(q, CMPS(COL(f.users, f.u_name), CORM_EQ, "w"));
    ITEM(q, OP(CORM_ADD, COL(f.users, f.u_id), VAL(f.reg, VI(100))), "next");
    GOLDEN(q, "SELECT \"id\" + $2 AS \"next\" FROM \"users\" WHERE \"name\" = $1");
    CHECK_EQ_INT(param_int8(q, 2), 100);
    /* One expression used twice binds its value twice. */
    corm_expr *e = CMPI(COL(f.users, f.u_id), CORM_GT, 7);
    WHERE(q, OR(e, e));
    GOLDEN(q, "SELECT \"id\" + $2 AS \"next\" FROM \"users\" WHERE \"name\" = $1 AND (\"id\" > "
              "$3 OR \"id\" > $4)");
    CHECK_EQ_INT(param_int8(q, 4), 7);
    corm_query_free(q);
    fx_free(&f);
}

TEST(result_column_map)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = SEL(f.users, NULL);
    CHECK_EQ_INT(corm_query_ncolumns(q), -1); /* not compiled yet */
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_compile(q, &err), &err);
    CHECK_EQ_INT(corm_query_ncolumns(q), 6);
    const corm_model *m;
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(corm_query_column_field(q, i, &m), i);
        CHECK(m == f.users);
        CHECK_STR(corm_query_column_name(q, i), corm_model_column_name(f.users, i));
    }
    CHECK_EQ_INT(corm_query_column_field(q, 6, &m), -1);
    CHECK(m == NULL);
    corm_query_free(q);

    q = SEL(f.users, NULL);
    ITEM(q, FUNC(f.reg, "lower", 1, COL(f.users, f.u_email), NULL), "email");
    ITEM(q, AGG(f.reg, CORM_COUNT, NULL, 0), NULL);
    ITEM(q, COL(f.users, f.u_id), "ident");
    CHECK_OK(corm_query_compile(q, &err), &err);
    CHECK_EQ_INT(corm_query_ncolumns(q), 3);
    CHECK_EQ_INT(corm_query_column_field(q, 0, &m), f.u_email); /* by its alias */
    CHECK_EQ_INT(corm_query_column_field(q, 1, &m), -1);
    CHECK(m == NULL);
    CHECK(corm_query_column_name(q, 1) == NULL);
    CHECK_EQ_INT(corm_query_column_field(q, 2, &m), f.u_id);
    CHECK_STR(corm_query_column_name(q, 2), "ident");
    corm_query_free(q);

    /* Raw SQL has no map. */
    corm_query *raw = NULL;
    CHECK_OK(corm_query_sql(&raw, "SELECT 1", &err), &err);
    CHECK_OK(corm_query_compile(raw, &err), &err);
    CHECK_EQ_INT(corm_query_ncolumns(raw), -1);
    CHECK_EQ_INT(corm_query_kind(raw), CORM_QUERY_RAW);
    CHECK_STR(corm_query_text(raw), "SELECT 1");
    corm_query_free(raw);
    fx_free(&f);
}

/* ---- the shape cache ----------------------------------------------------- */

static corm_query *point_lookup(fx *f, int64_t id)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f->users, NULL);
    corm_expr *c = NULL, *e = NULL;
    CHECK_OK(corm_expr_column(&c, f->users, f->u_id, NULL, &err), &err);
    corm_value v = VI(id);
    CHECK_OK(corm_expr_cmp(&e, c, CORM_EQ, &v, &err), &err);
    CHECK_OK(corm_query_where(q, e, &err), &err);
    CHECK_OK(corm_query_limit(q, 1, &err), &err);
    corm_expr_free(c);
    corm_expr_free(e);
    return q;
}

TEST(shape_cache_compiles_once)
{
    fx f;
    fx_init(&f, NULL);
    corm__registry_verify_cache(f.reg, true);
    corm_error err = CORM_ERROR_INIT;
    uint64_t c0 = corm__registry_compiles(f.reg), h0 = corm__registry_cache_hits(f.reg);
    const char *first = NULL;
    char text[256];
    for (int i = 0; i < 50; i++) {
        corm_query *q = point_lookup(&f, i);
        CHECK_OK(corm_query_compile(q, &err), &err);
        if (!first) {
            snprintf(text, sizeof text, "%s", corm_query_text(q));
            first = text;
        }
        CHECK_STR(corm_query_text(q), first);
        CHECK_EQ_INT(param_int8(q, 1), i);
        corm_query_free(q);
    }
    CHECK_EQ_INT(corm__registry_compiles(f.reg) - c0, 1);
    CHECK_EQ_INT(corm__registry_cache_hits(f.reg) - h0, 49);
    CHECK_STR(first, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = $1 LIMIT $2");

    /* Another shape compiles once more; a change after compiling recompiles. */
    corm_query *q = point_lookup(&f, 1);
    WHERE(q, CMPS(COL(f.users, f.u_name), CORM_EQ, "x"));
    CHECK_OK(corm_query_compile(q, &err), &err);
    CHECK_EQ_INT(corm__registry_compiles(f.reg) - c0, 2);
    WHERE(q, CMPS(COL(f.users, f.u_name), CORM_NE, "y"));
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = $1 AND \"name\" = $3 AND \"name\" "
              "<> $4 LIMIT $2");
    CHECK_EQ_INT(corm__registry_compiles(f.reg) - c0, 3);
    /* Submitting compiles through the same hook. */
    const char *sql = NULL;
    CHECK_OK(corm__query_finalize(q, &sql, &err), &err);
    CHECK(sql == corm_query_text(q));
    CHECK_EQ_INT(corm__registry_compiles(f.reg) - c0, 3);
    corm_query_free(q);

    /* Same text, different aliases: different shapes. */
    corm_query *a = SEL(f.users, NULL), *b = SEL(f.users, NULL);
    ITEM(a, COL(f.users, f.u_id), "x");
    ITEM(b, COL(f.users, f.u_id), "y");
    GOLDEN(a, "SELECT \"id\" AS \"x\" FROM \"users\"");
    GOLDEN(b, "SELECT \"id\" AS \"y\" FROM \"users\"");
    corm_query_free(a);
    corm_query_free(b);
    fx_free(&f);
}

TEST(shape_cache_is_bounded)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    /* More distinct shapes than the cache holds; queries alive keep theirs. */
    corm_query *kept = SEL(f.users, NULL);
    ITEM(kept, COL(f.users, f.u_id), "kept");
    CHECK_OK(corm_query_compile(kept, &err), &err);
    for (int i = 0; i < CORM__SHAPE_CACHE_MAX + 100; i++) {
        char alias[32];
        snprintf(alias, sizeof alias, "a%d", i);
        corm_query *q = SEL(f.users, NULL);
        corm_expr *c = NULL;
        CHECK_OK(corm_expr_column(&c, f.users, f.u_id, NULL, &err), &err);
        ITEM(q, c, alias);
        corm_expr_free(c);
        CHECK_OK(corm_query_compile(q, &err), &err);
        corm_query_free(q);
    }
    CHECK(f.reg->nshapes <= CORM__SHAPE_CACHE_MAX);
    CHECK_STR(corm_query_text(kept), "SELECT \"id\" AS \"kept\" FROM \"users\"");
    corm_query_free(kept);
    fx_free(&f);
}

TEST(registry_outlives_free_while_queries_live)
{
    fx f;
    fx_init(&f, NULL);
    corm_query *q = point_lookup(&f, 3);
    corm_expr *e = COL(f.users, f.u_name);
    corm_expr_ref(e);
    fx_free(&f); /* frees the registry handle and the kept expressions */
    GOLDEN(q, "SELECT " UCOLS " FROM \"users\" WHERE \"id\" = $1 LIMIT $2");
    corm_expr_free(e);
    corm_query_free(q); /* the last user: the registry goes now */
}

/* ---- names: quoting, limits, NUL, UTF-8 ----------------------------------- */

TEST(hostile_identifiers_are_quoted)
{
    corm_registry *reg = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_registry_new(&reg, NULL, &err), &err);
    corm_model *m = NULL;
    CHECK_OK(corm_model_new(&m, reg, "s\"; --", "we\"ird; DROP TABLE x;--", &err), &err);
    const char *names[] = {"$1", "a\\b", "sp ace", "\xc3\xbcn\xc3\xaf", "\"", "Case"};
    for (int i = 0; i < 6; i++)
        CHECK_OK(corm_model_add_column(m, names[i], "text", 0, &err), &err);
    corm_query *q = NULL;
    CHECK_OK(corm_query_select(&q, m, "x\"y", &err), &err);
    corm_expr *c = NULL;
    CHECK_OK(corm_expr_column(&c, m, 4, NULL, &err), &err);
    CHECK_OK(corm_query_select_expr(q, c, "al\"ias", &err), &err);
    CHECK_OK(corm_query_select_expr(q, c, NULL, &err), &err);
    GOLDEN(q, "SELECT \"\"\"\" AS \"al\"\"ias\", \"\"\"\" FROM \"s\"\"; --\".\"we\"\"ird; DROP "
              "TABLE x;--\" AS \"x\"\"y\"");
    corm_query_free(q);
    CHECK_OK(corm_query_select(&q, m, NULL, &err), &err);
    GOLDEN(q, "SELECT \"$1\", \"a\\b\", \"sp ace\", \"\xc3\xbcn\xc3\xaf\", \"\"\"\", \"Case\" "
              "FROM \"s\"\"; --\".\"we\"\"ird; DROP TABLE x;--\"");
    corm_query_free(q);
    corm_expr_free(c);
    corm_registry_free(reg);
}

TEST(name_limits_nul_and_utf8)
{
    corm_registry *reg = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_registry_new(&reg, NULL, &err), &err);
    char n63[64], n64[65];
    memset(n63, 'a', 63);
    n63[63] = 0;
    memset(n64, 'b', 64);
    n64[64] = 0;
    corm_model *m = NULL;
    CHECK_ERR(corm_model_new(&m, reg, NULL, n64, &err), CORM_EPROGRAMMING, &err);
    CHECK(m == NULL);
    CHECK(strstr(err.message, "63") != NULL);
    CHECK_ERR(corm_model_new(&m, reg, n64, "t", &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_model_new(&m, reg, NULL, "", &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_model_new(&m, reg, NULL, "bad\xff\xfe", &err), CORM_EPROGRAMMING, &err);
    CHECK(strstr(err.message, "UTF-8") != NULL);
    CHECK_ERR(corm_model_new(&m, reg, NULL, "\xc0\xaf", &err), CORM_EPROGRAMMING, &err);
    CHECK_OK(corm_model_new(&m, reg, NULL, n63, &err), &err);
    CHECK_ERR(corm_model_add_column(m, n64, "text", 0, &err), CORM_EPROGRAMMING, &err);
    CHECK(strstr(err.message, n63) != NULL); /* names the model */
    int c = corm_model_add_column(m, n63, "text", 0, &err);
    CHECK_OK(c, &err);
    /* 63 bytes of multi-byte UTF-8 are fine; 64 are not. */
    char u[80] = "";
    for (int i = 0; i < 21; i++)
        strcat(u, "\xe2\x82\xac"); /* euro sign, 3 bytes: 63 bytes */
    CHECK_OK(corm_model_add_column(m, u, "text", 0, &err), &err);
    strcat(u, "x");
    CHECK_ERR(corm_model_add_column(m, u, "text", 0, &err), CORM_EPROGRAMMING, &err);
    /* Aliases and CTE names follow the same rules. */
    corm_query *q = NULL;
    CHECK_ERR(corm_query_select(&q, m, n64, &err), CORM_EPROGRAMMING, &err);
    CHECK(q == NULL);
    CHECK_OK(corm_query_select(&q, m, NULL, &err), &err);
    corm_expr *e = NULL;
    CHECK_OK(corm_expr_column(&e, m, c, NULL, &err), &err);
    CHECK_ERR(corm_query_select_expr(q, e, n64, &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_query_select_expr(q, e, "\xff", &err), CORM_EPROGRAMMING, &err);
    CHECK_ERR(corm_query_with(q, n64, 0, NULL, q, 0, &err), CORM_EPROGRAMMING, &err);
    /* A name with a length: an embedded NUL is refused. */
    CHECK_ERR(corm_check_name("ab\0cd", 5, &err), CORM_EPROGRAMMING, &err);
    CHECK(strstr(err.message, "NUL") != NULL);
    CHECK_OK(corm_check_name("abcd", 4, &err), &err);
    CHECK_ERR(corm_check_name(n64, 64, &err), CORM_EPROGRAMMING, &err);
    /* A text value with a NUL byte is refused when bound. */
    corm_value v = {.kind = CORM_TEXT};
    v.v.str.ptr = "ab\0cd";
    v.v.str.len = 5;
    corm_expr *bad = NULL;
    CHECK_ERR(corm_expr_cmp(&bad, e, CORM_EQ, &v, &err), CORM_EDATA, &err);
    CHECK(strstr(err.message, "NUL") != NULL);
    CHECK(bad == NULL);
    CHECK_ERR(corm_expr_in(&bad, e, 1, &v, false, &err), CORM_EDATA, &err);
    CHECK_ERR(corm_expr_raw(&bad, reg, "$1", 1, &v, &err), CORM_EDATA, &err);
    CHECK_ERR(corm_query_set_value(q, c, &v, &err), CORM_EMISUSE, &err); /* a SELECT */
    corm_error_clear(&err);
    corm_expr_free(e);
    corm_query_free(q);
    corm_registry_free(reg);
}

/* ---- misuse ------------------------------------------------------------- */

TEST(misuse_is_reported)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_ERR(corm_query_select(&q, NULL, NULL, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_query_select(NULL, f.users, NULL, &err), CORM_EMISUSE, &err);
    q = SEL(f.users, NULL);
    CHECK_ERR(corm_query_where(q, NULL, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_query_bind_int64(q, 1, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_query_on_conflict(q, 0, NULL, CORM_CONFLICT_NOTHING, &err), CORM_EMISUSE,
              &err);
    CHECK_ERR(corm_query_values(q, 0, NULL, NULL, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_query_returning_all(q, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_query_join(q, 9, f.posts, NULL, NULL, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_query_from(q, f.posts, NULL, &err), CORM_EMISUSE, &err);
    corm_query_clear_params(q); /* a no-op on built queries */
    /* A frozen model refuses changes. */
    CHECK_ERR(corm_model_add_column(f.users, "x", "text", 0, &err), CORM_EMISUSE, &err);
    /* Expressions from another registry. */
    fx g;
    corm_registry *keep_reg = f.reg;
    corm_expr *keep_kept[1024];
    int nkept = fx_nkept;
    memcpy(keep_kept, fx_kept, sizeof keep_kept);
    fx_init(&g, NULL);
    corm_expr *other = NULL;
    CHECK_OK(corm_expr_column(&other, g.users, g.u_id, NULL, &err), &err);
    CHECK_ERR(corm_query_where(q, other, &err), CORM_EMISUSE, &err);
    corm_expr *mix = NULL;
    corm_expr *mine = NULL;
    CHECK_OK(corm_expr_column(&mine, f.users, f.u_id, NULL, &err), &err);
    CHECK_ERR(corm_expr_and(&mix, mine, other, &err), CORM_EMISUSE, &err);
    CHECK(mix == NULL);
    corm_expr_free(other);
    corm_expr_free(mine);
    fx_free(&g);
    memcpy(fx_kept, keep_kept, sizeof keep_kept);
    fx_nkept = nkept;
    f.reg = keep_reg;
    /* Column indexes out of range. */
    corm_expr *e = NULL;
    CHECK_ERR(corm_expr_column(&e, f.users, 99, NULL, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_expr_column(&e, f.users, -1, NULL, &err), CORM_EMISUSE, &err);
    CHECK(e == NULL);
    corm_expr *cmp = NULL;
    corm_value v = VI(1);
    CHECK_ERR(corm_expr_cmp(&cmp, COL(f.users, f.u_id), 999, &v, &err), CORM_EMISUSE, &err);
    CHECK_ERR(corm_expr_op(&cmp, CORM_CONTAINS, COL(f.users, f.u_id), COL(f.users, f.u_id), &err),
              CORM_EMISUSE, &err);
    CHECK_ERR(corm_expr_agg(&cmp, f.reg, CORM_SUM, NULL, 0, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}

TEST(column_not_in_query)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = SEL(f.users, NULL);
    WHERE(q, CMPI(COL(f.posts, f.p_likes), CORM_GT, 1));
    CHECK_ERR(corm_query_compile(q, &err), CORM_EPROGRAMMING, &err);
    CHECK(strstr(err.message, "posts") != NULL);
    corm_query_free(q);
    q = SEL(f.users, "u");
    WHERE(q, CMPI(COLA(f.users, f.u_id, "v"), CORM_GT, 1));
    CHECK_ERR(corm_query_compile(q, &err), CORM_EPROGRAMMING, &err);
    CHECK(strstr(err.message, "\"v\"") != NULL);
    corm_query_free(q);
    q = NULL;
    CHECK_OK(corm_query_new(&q, f.reg, &err), &err);
    CHECK_ERR(corm_query_compile(q, &err), CORM_EPROGRAMMING, &err);
    /* SELECT of expressions with no FROM is fine. */
    ITEM(q, VAL(f.reg, VI(1)), "one");
    GOLDEN(q, "SELECT $1 AS \"one\"");
    corm_error_clear(&err);
    corm_query_free(q);
    fx_free(&f);
}
