/*
 * test_stmt.c - the per-connection cache of prepared statements: stale
 * plans after ALTER TABLE, running without prepared statements, eviction.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

/* Prepared statements the server holds for c's session. */
static int server_statements(corm_conn *c)
{
    return (int)th_int(c, "SELECT count(*) FROM pg_prepared_statements");
}

/* SELECT * is prepared, the table changes shape, and the next run succeeds
 * anyway with the new column: the engine re-prepares once, outside a
 * transaction. */
TEST(stale_plan_retried_outside_transaction)
{
    corm_conn *c = th_connect();
    char t[96], sel[160];
    th_name(t, sizeof t, c, "stale");
    th_execf(c, "CREATE TABLE %s (a int)", t);
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    snprintf(sel, sizeof sel, "SELECT * FROM %s", t);
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec_sql(c, sel, &r, &err), &err);
    CHECK_EQ_INT(corm_result_ncols(r), 1);
    corm_result_free(r);
    int before = corm_conn_cached_statements(c);
    CHECK(before >= 1);

    th_execf(c, "ALTER TABLE %s ADD COLUMN b int DEFAULT 7", t);
    int after_alter = corm_conn_cached_statements(c);
    CHECK(after_alter >= before);

    CHECK_OK(corm_conn_exec_sql(c, sel, &r, &err), &err);
    CHECK_EQ_INT(corm_result_ncols(r), 2);
    CHECK_STR(corm_result_colname(r, 1), "b");
    int64_t v;
    CHECK_OK(corm_result_get_int64(r, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v, 1);
    CHECK_OK(corm_result_get_int64(r, 0, 1, &v, &err), &err);
    CHECK_EQ_INT(v, 7);
    corm_result_free(r);
    /* The stale entry was replaced, not added to: one statement for the
     * text, and the cache did not shrink either. */
    int after_retry = corm_conn_cached_statements(c);
    CHECK_MSG(after_retry >= after_alter - 1 && after_retry <= after_alter + 1,
              "cache went from %d to %d", after_alter, after_retry);
    /* Runs again without any retry, still right. */
    CHECK_OK(corm_conn_exec_sql(c, sel, &r, &err), &err);
    CHECK_EQ_INT(corm_result_ncols(r), 2);
    corm_result_free(r);
    /* What the engine counts is what the server holds. */
    th_execf(c, "DROP TABLE %s", t);
    server_statements(c);   /* prepare the probe itself first */
    CHECK_EQ_INT(server_statements(c), corm_conn_cached_statements(c));
    corm_conn_close(c);
}

/* Inside a transaction a retry could repeat effects or see another
 * snapshot: the error reaches the caller instead. */
TEST(stale_plan_fails_inside_transaction)
{
    corm_conn *c = th_connect(), *other = th_connect();
    char t[96], sel[160];
    th_name(t, sizeof t, c, "stale_tx");
    th_execf(c, "CREATE TABLE %s (a int)", t);
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    snprintf(sel, sizeof sel, "SELECT * FROM %s", t);
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_conn_exec_sql(c, sel, NULL, &err), &err);
    th_execf(other, "ALTER TABLE %s ADD COLUMN b int DEFAULT 7", t);

    th_exec(c, "BEGIN");
    int rc = corm_conn_exec_sql(c, sel, NULL, &err);
    CHECK_MSG(rc < 0, "the stale statement was retried inside a transaction");
    CHECK_STR(err.sqlstate, "0A000");
    CHECK(strstr(err.message, "cached plan") != NULL);
    CHECK_EQ_INT(rc, CORM_EPROGRAMMING);
    corm_error_clear(&err);
    th_exec(c, "ROLLBACK");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);

    /* Also through corm_conn_begin. */
    th_reply b;
    th_reply_init(&b);
    CHECK_OK(corm_conn_exec_sql(c, "SELECT 1", NULL, &err), &err);
    corm_result *r = NULL;
    /* Outside the transaction the statement works again, new shape. */
    CHECK_OK(corm_conn_exec_sql(c, sel, &r, &err), &err);
    CHECK_EQ_INT(corm_result_ncols(r), 2);
    corm_result_free(r);
    th_execf(other, "ALTER TABLE %s ADD COLUMN c int DEFAULT 8", t);
    CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &b, &err), &err);
    th_wait_reply(c, &b, 10000);
    TH_REPLY_OK(&b);
    th_reply_clear(&b);
    rc = corm_conn_exec_sql(c, sel, NULL, &err);
    CHECK_MSG(rc < 0, "the stale statement was retried inside corm_conn_begin's transaction");
    CHECK_STR(err.sqlstate, "0A000");
    corm_error_clear(&err);
    CHECK_OK(corm_conn_rollback(c, th_on_done, &b, &err), &err);
    th_wait_reply(c, &b, 10000);
    TH_REPLY_OK(&b);
    th_reply_clear(&b);
    CHECK_OK(corm_conn_exec_sql(c, sel, &r, &err), &err);
    CHECK_EQ_INT(corm_result_ncols(r), 3);
    corm_result_free(r);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
    corm_conn_close(other);
}

/* The retried request keeps its place: requests pipelined behind a stale
 * statement still complete after it, in submission order. */
TEST(stale_plan_retry_keeps_submission_order)
{
    corm_conn *c = th_connect();
    char t[96], sel[160];
    th_name(t, sizeof t, c, "stale_ord");
    th_execf(c, "CREATE TABLE %s (a int)", t);
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    snprintf(sel, sizeof sel, "SELECT * FROM %s", t);
    th_exec(c, sel);
    th_execf(c, "ALTER TABLE %s ADD COLUMN b int DEFAULT 7", t);
    corm_error err = CORM_ERROR_INIT;
    th_reply r[4];
    for (int i = 0; i < 4; i++)
        th_reply_init(&r[i]);
    th_seq_next = 0;
    CHECK_OK(corm_conn_submit_sql(c, sel, th_on_done, &r[0], NULL, &err), &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", th_on_done, &r[1], NULL, &err), &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 2", th_on_done, &r[2], NULL, &err), &err);
    CHECK_OK(corm_conn_submit_sql(c, sel, th_on_done, &r[3], NULL, &err), &err);
    th_wait_all(c, r, 4, 10000);
    for (int i = 0; i < 4; i++)
        TH_REPLY_OK(&r[i]);
    CHECK_EQ_INT(corm_result_ncols(r[0].res), 2);
    CHECK_EQ_INT(corm_result_ncols(r[3].res), 2);
    /* Regression: the retried request was once appended at the end of the
     * pipeline and completed after requests submitted later. */
    for (int i = 0; i < 4; i++)
        CHECK_MSG(r[i].seq == i, "request %d completed as number %d", i, r[i].seq);
    for (int i = 0; i < 4; i++)
        th_reply_clear(&r[i]);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* prepared_statements = 0: unnamed statements only, nothing cached, and
 * every kind of query works (PgBouncer transaction mode). */
TEST(without_prepared_statements)
{
    corm_options opt;
    corm_options_init(&opt);
    opt.prepared_statements = 0;
    corm_conn *c = th_connect_opt(&opt);
    char t[96], sel[160];
    th_name(t, sizeof t, c, "noprep");
    th_execf(c, "CREATE TABLE %s (a int)", t);
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    snprintf(sel, sizeof sel, "SELECT * FROM %s", t);
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec_sql(c, sel, &r, &err), &err);
    corm_result_free(r);
    for (int i = 0; i < 20; i++) {
        corm_query *q = NULL;
        CHECK_OK(corm_query_sql(&q, i % 2 ? "SELECT $1::int8 * 3" : "SELECT $1::int8 + 3",
                                &err),
                 &err);
        CHECK_OK(corm_query_bind_int64(q, i, &err), &err);
        CHECK_OK(corm_conn_exec(c, q, &r, &err), &err);
        corm_query_free(q);
        int64_t v;
        CHECK_OK(corm_result_get_int64(r, 0, 0, &v, &err), &err);
        CHECK_EQ_INT(v, i % 2 ? i * 3 : i + 3);
        corm_result_free(r);
    }
    th_execf(c, "ALTER TABLE %s ADD COLUMN b int DEFAULT 7", t);
    CHECK_OK(corm_conn_exec_sql(c, sel, &r, &err), &err);
    CHECK_EQ_INT(corm_result_ncols(r), 2);
    corm_result_free(r);
    CHECK_EQ_INT(corm_conn_cached_statements(c), 0);
    CHECK_EQ_INT(server_statements(c), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* Checks the result of "SELECT $1::int8 + k" for statement k. */
static void check_sum(th_reply *r, int k, int64_t n)
{
    corm_error err = CORM_ERROR_INIT;
    TH_REPLY_OK(r);
    int64_t v;
    CHECK_OK(corm_result_get_int64(r->res, 0, 0, &v, &err), &err);
    CHECK_MSG(v == n + k, "statement %d with %lld: got %lld", k, (long long)n, (long long)v);
}

static void submit_sum(corm_conn *c, int k, int64_t n, th_reply *r)
{
    corm_error err = CORM_ERROR_INIT;
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT $1::int8 + %d", k);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    CHECK_OK(corm_query_bind_int64(q, n, &err), &err);
    CHECK_OK(corm_conn_submit(c, q, th_on_done, r, NULL, &err), &err);
    corm_query_free(q);
}

/* statement_cache_size = 2, five statements in rotation, one at a time:
 * the cache stays at two and every result is right. */
TEST(statement_cache_evicts_one_at_a_time)
{
    th_watchdog(30);
    corm_options opt;
    corm_options_init(&opt);
    opt.statement_cache_size = 2;
    th_budget budget;
    th_budget_options(&opt, &budget, 16u << 20);
    corm_conn *c = th_connect_opt(&opt);
    /* Regression: the engine's own "DEALLOCATE corm_N" for an evicted
     * statement was once prepared and cached itself, evicting another entry
     * and queueing another DEALLOCATE forever (the first overflowing submit
     * never returned). The allocation budget turns such a loop into a quick
     * failure. */
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 5; k++) {
            th_reply r;
            th_reply_init(&r);
            submit_sum(c, k, round * 100 + k, &r);
            th_wait_reply(c, &r, 10000);
            check_sum(&r, k, round * 100 + k);
            th_reply_clear(&r);
            CHECK_MSG(corm_conn_cached_statements(c) <= 2, "cache holds %d",
                      corm_conn_cached_statements(c));
        }
    CHECK_EQ_INT(corm_conn_cached_statements(c), 2);
    /* The evicted statements were deallocated on the server too, and the
     * engine's own DEALLOCATEs did not take cache places. */
    char buf[256];
    const char *probe = "SELECT count(*)::text || ' ' || coalesce(string_agg(statement, ' | '), '')"
                        " FROM pg_prepared_statements";
    /* The first run of the probe evicts an entry, deallocated behind it;
     * the second run is a cache hit and sees the settled state. */
    th_text(c, probe, buf, sizeof buf);
    th_text(c, probe, buf, sizeof buf);
    CHECK_MSG(atoi(buf) <= 2, "the server holds: %s", buf);
    CHECK_EQ_INT(corm_conn_cached_statements(c), 2);
    corm_conn_close(c);
}

/* The same with everything in flight at once. */
TEST(statement_cache_evicts_pipelined)
{
    th_watchdog(30);
    corm_options opt;
    corm_options_init(&opt);
    opt.statement_cache_size = 2;
    th_budget budget;
    th_budget_options(&opt, &budget, 16u << 20);
    corm_conn *c = th_connect_opt(&opt);
    th_reply r[15];
    for (int i = 0; i < 15; i++) {
        th_reply_init(&r[i]);
        submit_sum(c, i % 5, i * 10, &r[i]);
    }
    th_seq_next = 0;
    th_wait_all(c, r, 15, 20000);
    for (int i = 0; i < 15; i++) {
        check_sum(&r[i], i % 5, i * 10);
        CHECK_EQ_INT(r[i].seq, i);
        th_reply_clear(&r[i]);
    }
    CHECK(corm_conn_cached_statements(c) <= 2);
    corm_conn_close(c);
}

/* Submitted before the connection is ready: sent in one go at connect,
 * evictions included. */
TEST(statement_cache_evicts_while_connecting)
{
    th_watchdog(30);
    corm_options opt;
    corm_options_init(&opt);
    opt.statement_cache_size = 2;
    th_budget budget;
    th_budget_options(&opt, &budget, 16u << 20);
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    CHECK_OK(corm_conn_open(&c, ctest_dsn(), &opt, &err), &err);
    th_reply r[10];
    for (int i = 0; i < 10; i++) {
        th_reply_init(&r[i]);
        submit_sum(c, i % 5, i, &r[i]);
    }
    th_seq_next = 0;
    th_wait_all(c, r, 10, 20000);
    for (int i = 0; i < 10; i++) {
        check_sum(&r[i], i % 5, i);
        CHECK_EQ_INT(r[i].seq, i);
        th_reply_clear(&r[i]);
    }
    CHECK(corm_conn_cached_statements(c) <= 2);
    corm_conn_close(c);
}

/* A statement whose Parse fails is not cached; the text can be used again
 * once it is valid (e.g. after the table appears). */
TEST(failed_prepare_is_not_cached)
{
    corm_conn *c = th_connect();
    char t[96], sel[160];
    th_name(t, sizeof t, c, "later");
    snprintf(sel, sizeof sel, "SELECT count(*) FROM %s", t);
    int before = corm_conn_cached_statements(c);
    corm_error err = CORM_ERROR_INIT;
    CHECK_ERR(corm_conn_exec_sql(c, sel, NULL, &err), CORM_EPROGRAMMING, &err);
    CHECK_STR(err.sqlstate, "42P01");
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_conn_cached_statements(c), before);
    th_execf(c, "CREATE TABLE %s (a int)", t);
    CHECK_EQ_INT(th_int(c, sel), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* The default cache (256) overflows too in a long-lived connection: 300
 * distinct statements, all right, the cache bounded. */
TEST(statement_cache_default_size_overflow)
{
    th_watchdog(30);
    corm_options opt;
    corm_options_init(&opt);
    th_budget budget;
    th_budget_options(&opt, &budget, 16u << 20);
    corm_conn *c = th_connect_opt(&opt);
    for (int k = 0; k < 300; k++) {
        th_reply r;
        th_reply_init(&r);
        submit_sum(c, k, 1, &r);
        th_wait_reply(c, &r, 10000);
        check_sum(&r, k, 1);
        th_reply_clear(&r);
    }
    CHECK(corm_conn_cached_statements(c) <= 256);
    CHECK(corm_conn_cached_statements(c) >= 200);
    corm_conn_close(c);
}
