/*
 * test_cursor.c - streaming through server-side cursors: batches of a
 * bounded size, parameters, errors, transactions, pipelined fetches, pools.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

static corm_query *sql_query(const char *sql)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    return q;
}

/* 100,000 rows in batches of 1,000: no batch larger, every row seen once,
 * in order, and the transaction the cursor began is over afterwards. */
TEST(stream_in_batches)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = sql_query("SELECT g::int8, repeat('x', 50) FROM generate_series(1, $1) g");
    CHECK_OK(corm_query_bind_int64(q, 100000, &err), &err);
    th_reply opened;
    th_reply_init(&opened);
    corm_cursor *cur = NULL;
    CHECK_OK(corm_cursor_open(&cur, c, q, 1000, th_on_done, &opened, &err), &err);
    corm_query_free(q);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    int64_t expect = 1, batches = 0;
    for (;;) {
        corm_result *res = NULL;
        CHECK_OK(corm_cursor_fetch_wait(cur, &res, &err), &err);
        int n = corm_result_nrows(res);
        CHECK(n <= 1000);
        for (int i = 0; i < n; i++) {
            int64_t v;
            CHECK_OK(corm_result_get_int64(res, i, 0, &v, &err), &err);
            CHECK_MSG(v == expect, "row %lld: got %lld", (long long)expect, (long long)v);
            expect++;
        }
        corm_result_free(res);
        batches++;
        if (corm_cursor_exhausted(cur))
            break;
    }
    CHECK_EQ_INT(expect - 1, 100000);
    CHECK_EQ_INT(batches, 101);   /* 100 full batches and an empty one */
    TH_REPLY_OK(&opened);
    th_reply_clear(&opened);
    th_reply closed;
    th_reply_init(&closed);
    CHECK_OK(corm_cursor_close(cur, th_on_done, &closed, &err), &err);
    th_wait_reply(c, &closed, 10000);
    TH_REPLY_OK(&closed);
    th_reply_clear(&closed);
    corm_cursor_free(cur);
    CHECK_OK(corm_conn_drain(c, &err), &err);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    CHECK_EQ_INT(th_server_idle(c), 1);
    corm_conn_close(c);
}

/* Fetches pipelined behind the declaration complete in order. */
TEST(pipelined_fetches)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = sql_query("SELECT g::int8 FROM generate_series(1, 25) g");
    th_reply opened, batch[4], closed;
    th_reply_init(&opened);
    th_reply_init(&closed);
    corm_cursor *cur = NULL;
    CHECK_OK(corm_cursor_open(&cur, c, q, 10, th_on_done, &opened, &err), &err);
    corm_query_free(q);
    for (int i = 0; i < 4; i++) {
        th_reply_init(&batch[i]);
        CHECK_OK(corm_cursor_fetch(cur, th_on_done, &batch[i], NULL, &err), &err);
    }
    CHECK_OK(corm_cursor_close(cur, th_on_done, &closed, &err), &err);
    th_wait_reply(c, &closed, 10000);
    TH_REPLY_OK(&opened);
    static const int want[] = {10, 10, 5, 0};
    for (int i = 0; i < 4; i++) {
        TH_REPLY_OK(&batch[i]);
        CHECK_EQ_INT(corm_result_nrows(batch[i].res), want[i]);
        CHECK(batch[i].seq > opened.seq);
        if (i)
            CHECK(batch[i].seq > batch[i - 1].seq);
    }
    int64_t first;
    CHECK_OK(corm_result_get_int64(batch[2].res, 0, 0, &first, &err), &err);
    CHECK_EQ_INT(first, 21);
    CHECK_EQ_INT(corm_cursor_exhausted(cur), 1);
    TH_REPLY_OK(&closed);
    th_reply_clear(&opened);
    th_reply_clear(&closed);
    for (int i = 0; i < 4; i++)
        th_reply_clear(&batch[i]);
    corm_cursor_free(cur);
    CHECK_OK(corm_conn_drain(c, &err), &err);
    CHECK_EQ_INT(th_server_idle(c), 1);
    corm_conn_close(c);
}

/* A query the server rejects: the declaration's callback has the error,
 * fetches fail, closing ends the transaction, the connection goes on. */
TEST(bad_query)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = sql_query("SELECT * FROM no_such_table_for_cursor");
    th_reply opened, batch, closed;
    th_reply_init(&opened);
    th_reply_init(&batch);
    th_reply_init(&closed);
    corm_cursor *cur = NULL;
    CHECK_OK(corm_cursor_open(&cur, c, q, 10, th_on_done, &opened, &err), &err);
    corm_query_free(q);
    CHECK_OK(corm_cursor_fetch(cur, th_on_done, &batch, NULL, &err), &err);
    CHECK_OK(corm_cursor_close(cur, th_on_done, &closed, &err), &err);
    th_wait_reply(c, &closed, 10000);
    TH_REPLY_ERR(&opened, CORM_EPROGRAMMING);
    CHECK_STR(opened.err.sqlstate, "42P01");
    CHECK(batch.code < 0);
    CHECK(closed.code < 0);   /* CLOSE in an aborted transaction */
    th_reply_clear(&opened);
    th_reply_clear(&batch);
    th_reply_clear(&closed);
    corm_cursor_free(cur);
    CHECK_OK(corm_conn_drain(c, &err), &err);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    CHECK_EQ_INT(th_server_idle(c), 1);
    CHECK_EQ_INT(th_int(c, "SELECT 3"), 3);
    corm_conn_close(c);
}

/* Inside the caller's transaction the cursor neither begins nor commits. */
TEST(inside_caller_transaction)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    th_name(t, sizeof t, c, "cur");
    th_execf(c, "CREATE TABLE %s (k int8)", t);
    th_reply r;
    th_reply_init(&r);
    CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &r, &err), &err);
    th_wait_reply(c, &r, 10000);
    th_reply_clear(&r);
    th_execf(c, "INSERT INTO %s SELECT generate_series(1, 7)", t);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT k FROM %s ORDER BY k", t);
    corm_query *q = sql_query(sql);
    corm_cursor *cur = NULL;
    CHECK_OK(corm_cursor_open(&cur, c, q, 100, th_on_done, &r, &err), &err);
    corm_query_free(q);
    corm_result *res = NULL;
    CHECK_OK(corm_cursor_fetch_wait(cur, &res, &err), &err);
    CHECK_EQ_INT(corm_result_nrows(res), 7);   /* sees the uncommitted rows */
    corm_result_free(res);
    TH_REPLY_OK(&r);
    th_reply_clear(&r);
    corm_cursor_free(cur);   /* closes without a callback */
    CHECK_EQ_INT(corm_conn_txn_depth(c), 1);
    CHECK_EQ_INT(th_server_idle(c), 0);
    CHECK_OK(corm_conn_rollback(c, th_on_done, &r, &err), &err);
    th_wait_reply(c, &r, 10000);
    th_reply_clear(&r);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* On a pool: a lent connection carries the cursor; released clean. */
TEST(on_a_pool)
{
    corm_error err = CORM_ERROR_INIT;
    corm_options opt;
    corm_options_init(&opt);
    opt.pool_max_size = 1;
    corm_pool *p = NULL;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), &opt, &err), &err);
    corm_conn *c = NULL;
    CHECK_OK(corm_pool_acquire_wait(p, 5000, &c, &err), &err);
    corm_query *q = sql_query("SELECT g::int8 FROM generate_series(1, $1) g");
    CHECK_OK(corm_query_bind_int64(q, 2500, &err), &err);
    th_reply opened;
    th_reply_init(&opened);
    corm_cursor *cur = NULL;
    CHECK_OK(corm_cursor_open(&cur, c, q, 1000, th_on_done, &opened, &err), &err);
    corm_query_free(q);
    int64_t total = 0;
    while (!corm_cursor_exhausted(cur)) {
        corm_result *res = NULL;
        CHECK_OK(corm_cursor_fetch_wait(cur, &res, &err), &err);
        total += corm_result_nrows(res);
        corm_result_free(res);
    }
    CHECK_EQ_INT(total, 2500);
    th_reply_clear(&opened);
    corm_cursor_free(cur);
    CHECK_OK(corm_pool_release(p, c, &err), &err);
    /* The next user is outside any transaction: a SAVEPOINT is refused. */
    q = sql_query("SAVEPOINT probe");
    CHECK_ERR(corm_pool_exec(p, q, NULL, &err), CORM_EPROGRAMMING, &err);
    CHECK_STR(err.sqlstate, "25P01");
    corm_error_clear(&err);
    corm_query_free(q);
    corm_pool_close(p);
}

TEST(misuse)
{
    corm_error err = CORM_ERROR_INIT;
    corm_cursor *cur = (corm_cursor *)&err;
    corm_query *q = sql_query("SELECT 1");
    CHECK_ERR(corm_cursor_open(&cur, NULL, q, 10, th_on_done, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK(cur == NULL);
    corm_conn *c = th_connect();
    CHECK_ERR(corm_cursor_open(&cur, c, q, 0, th_on_done, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_cursor_open(&cur, c, NULL, 10, th_on_done, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_cursor_fetch(NULL, th_on_done, NULL, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    th_reply opened, closed;
    th_reply_init(&opened);
    th_reply_init(&closed);
    CHECK_OK(corm_cursor_open(&cur, c, q, 10, th_on_done, &opened, &err), &err);
    CHECK_OK(corm_cursor_close(cur, th_on_done, &closed, &err), &err);
    CHECK_ERR(corm_cursor_fetch(cur, th_on_done, NULL, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_OK(corm_cursor_close(cur, th_on_done, &closed, &err), &err);   /* idempotent */
    th_wait_reply(c, &closed, 10000);
    CHECK_EQ_INT(closed.done, 1);
    th_reply_clear(&opened);
    th_reply_clear(&closed);
    corm_cursor_free(cur);
    corm_cursor_free(NULL);
    CHECK_EQ_INT(corm_cursor_exhausted(NULL), 0);
    corm_query_free(q);
    CHECK_OK(corm_conn_drain(c, &err), &err);
    corm_conn_close(c);
}
