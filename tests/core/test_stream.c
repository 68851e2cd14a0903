/*
 * test_stream.c - streamed requests (corm_conn_submit_stream,
 * corm_pool_submit_stream): rows handed over in batches while the result
 * arrives, in order, with the final result empty; errors after some rows;
 * cancel and timeout mid-stream; retries only before the first row;
 * pipelining with plain requests; pools; misuse.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <stdlib.h>

/* What a streamed request's rows callback saw. */
typedef struct sink {
    int batches;
    int64_t rows;
    int64_t next;        /* the value column 0 must have next (-1: unchecked) */
    int ncols;           /* columns of the last batch */
    bool out_of_order;
    int cancel_after;    /* >0: cancel the request from inside after that many rows */
    corm_conn *conn;
    corm_request_id id;
    int cancel_rc;
    th_reply *reply;     /* must not be done while batches arrive */
    bool batch_after_done;
} sink;

static void sink_init(sink *s, th_reply *reply)
{
    memset(s, 0, sizeof *s);
    s->next = 1;
    s->reply = reply;
    th_reply_init(reply);
}

static void on_rows(void *ud, const corm_result *r)
{
    sink *s = ud;
    corm_error err = CORM_ERROR_INIT;
    if (s->reply && s->reply->done)
        s->batch_after_done = true;
    s->batches++;
    s->ncols = corm_result_ncols(r);
    for (int i = 0; i < corm_result_nrows(r); i++) {
        if (s->next >= 0) {
            int64_t v = 0;
            CHECK_OK(corm_result_get_int64(r, i, 0, &v, &err), &err);
            if (v != s->next)
                s->out_of_order = true;
            s->next++;
        }
        s->rows++;
    }
    if (s->cancel_after && s->rows >= s->cancel_after && !s->cancel_rc)
        s->cancel_rc = corm_conn_cancel(s->conn, s->id, &err) == 1 ? 1 : -1;
    corm_error_clear(&err);
}

static corm_query *sql_query(const char *sql)
{
    corm_query *q = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    return q;
}

static void submit_stream(corm_conn *c, const char *sql, sink *s, th_reply *rep)
{
    corm_query *q = sql_query(sql);
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_conn_submit_stream(c, q, on_rows, th_on_done, rep, &s->id, &err), &err);
    corm_query_free(q);
}

/* The done callback gets the reply; the rows callback the sink. Both need
 * one ud, so a streamed request's ud is a pair. */
typedef struct pair {
    sink s;
    th_reply rep;
} pair;

static void pair_rows(void *ud, const corm_result *r)
{
    on_rows(&((pair *)ud)->s, r);
}

static void pair_done(void *ud, corm_result *res, const corm_error *err)
{
    th_on_done(&((pair *)ud)->rep, res, err);
}

static void pair_init(pair *p, corm_conn *c)
{
    sink_init(&p->s, &p->rep);
    p->s.conn = c;
}

static void pair_submit(corm_conn *c, const char *sql, pair *p)
{
    corm_query *q = sql_query(sql);
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_conn_submit_stream(c, q, pair_rows, pair_done, p, &p->s.id, &err), &err);
    corm_query_free(q);
}

static int pair_done_p(void *ud)
{
    return ((pair *)ud)->rep.done > 0;
}

TEST(rows_arrive_in_batches_before_done)
{
    corm_conn *c = th_connect();
    pair p;
    pair_init(&p, c);
    pair_submit(c, "SELECT i::int8, repeat('x', 100) FROM generate_series(1, 20000) AS i", &p);
    th_drive(c, pair_done_p, &p, 30000, NULL);
    TH_REPLY_OK(&p.rep);
    CHECK_EQ_INT(p.s.rows, 20000);
    CHECK(!p.s.out_of_order);
    CHECK(!p.s.batch_after_done);
    CHECK_EQ_INT(p.s.ncols, 2);
    /* Handed over while arriving, not as one block at the end. */
    CHECK_MSG(p.s.batches > 1, "one batch only: single-row mode was not used");
    /* The final result: the columns and the count, no rows. */
    CHECK_EQ_INT(corm_result_nrows(p.rep.res), 0);
    CHECK_EQ_INT(corm_result_ncols(p.rep.res), 2);
    CHECK_EQ_INT(corm_result_affected(p.rep.res), 20000);
    th_reply_clear(&p.rep);
    corm_conn_close(c);
}

TEST(prepared_then_cached_statement_both_stream)
{
    corm_conn *c = th_connect();
    /* The first run sends Parse (two results before the rows); the second
     * finds the statement cached. Both must stream. */
    for (int run = 0; run < 3; run++) {
        pair p;
        pair_init(&p, c);
        pair_submit(c, "SELECT i::int8 FROM generate_series(1, 3000) AS i", &p);
        th_drive(c, pair_done_p, &p, 30000, NULL);
        TH_REPLY_OK(&p.rep);
        CHECK_EQ_INT(p.s.rows, 3000);
        CHECK(!p.s.out_of_order);
        CHECK(p.s.batches > 1);
        th_reply_clear(&p.rep);
    }
    CHECK(corm_conn_cached_statements(c) >= 1);
    corm_conn_close(c);
}

TEST(no_rows_and_commands)
{
    corm_conn *c = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "srows");
    th_execf(c, "CREATE TABLE %s (k int8)", t);
    char sql[3][192];
    snprintf(sql[0], sizeof sql[0], "SELECT k FROM %s", t);
    snprintf(sql[1], sizeof sql[1], "INSERT INTO %s SELECT generate_series(1, 5)", t);
    snprintf(sql[2], sizeof sql[2], "UPDATE %s SET k = k + 1 RETURNING k - 1", t);
    pair p[3];
    for (int i = 0; i < 3; i++) {
        pair_init(&p[i], c);
        pair_submit(c, sql[i], &p[i]);
    }
    th_drive(c, pair_done_p, &p[2], 30000, NULL);
    for (int i = 0; i < 3; i++)
        TH_REPLY_OK(&p[i].rep);
    CHECK_EQ_INT(p[0].s.batches, 0);   /* nothing to hand over */
    CHECK_EQ_INT(corm_result_affected(p[0].rep.res), 0);
    CHECK_EQ_INT(p[1].s.batches, 0);   /* a command without rows */
    CHECK_EQ_INT(corm_result_affected(p[1].rep.res), 5);
    CHECK_EQ_INT(p[2].s.rows, 5);      /* RETURNING rows stream too */
    CHECK_EQ_INT(corm_result_affected(p[2].rep.res), 5);
    for (int i = 0; i < 3; i++)
        th_reply_clear(&p[i].rep);
    corm_conn_close(c);
}

TEST(error_after_some_rows)
{
    corm_conn *c = th_connect();
    pair p;
    pair_init(&p, c);
    /* Rows before the failing one are produced and sent first. */
    pair_submit(c,
                "SELECT (CASE WHEN i = 2500 THEN 1 / (i - i) ELSE i END)::int8 "
                "FROM generate_series(1, 5000) AS i",
                &p);
    th_reply after;
    th_reply_init(&after);
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 7", th_on_done, &after, NULL, &err), &err);
    th_wait_reply(c, &after, 30000);
    TH_REPLY_ERR(&p.rep, CORM_EDATA);
    CHECK_STR(p.rep.err.sqlstate, "22012");
    CHECK(p.s.rows < 2500);
    CHECK(!p.s.out_of_order);
    /* The next request is untouched. */
    TH_REPLY_OK(&after);
    CHECK_EQ_INT(th_int(c, "SELECT 8"), 8);
    th_reply_clear(&p.rep);
    th_reply_clear(&after);
    corm_conn_close(c);
}

TEST(cancel_from_inside_rows_callback)
{
    corm_conn *c = th_connect();
    pair p;
    pair_init(&p, c);
    p.s.cancel_after = 100;
    pair_submit(c, "SELECT i::int8 FROM generate_series(1, 10000000) AS i", &p);
    th_drive(c, pair_done_p, &p, 30000, NULL);
    CHECK_EQ_INT(p.s.cancel_rc, 1);
    TH_REPLY_ERR(&p.rep, CORM_ECANCELLED);
    /* No batch after the answer; the count stops where it was cancelled. */
    int64_t seen = p.s.rows;
    CHECK(!p.s.batch_after_done);
    CHECK_EQ_INT(seen, 100);
    /* The connection is usable once the server has stopped. */
    CHECK_EQ_INT(th_int(c, "SELECT 41 + 1"), 42);
    CHECK_EQ_INT(p.s.rows, seen);
    th_reply_clear(&p.rep);
    corm_conn_close(c);
}

TEST(timeout_mid_stream)
{
    corm_conn *c = th_connect();
    pair p;
    pair_init(&p, c);
    /* Wide rows, so the server's send buffer fills (and goes out) every
     * few dozen rows while the statement is still running. */
    corm_query *q = sql_query("SELECT i::int8, repeat('x', 200) FROM generate_series(1, 1000) "
                              "AS i WHERE pg_sleep(0.002) IS NOT NULL");
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_query_set_timeout(q, 500, &err), &err);
    CHECK_OK(corm_conn_submit_stream(c, q, pair_rows, pair_done, &p, &p.s.id, &err), &err);
    corm_query_free(q);
    th_drive(c, pair_done_p, &p, 30000, NULL);
    TH_REPLY_ERR(&p.rep, CORM_ETIMEOUT);
    CHECK(p.s.rows > 0 && p.s.rows < 1000);
    int64_t seen = p.s.rows;
    CHECK_EQ_INT(th_int(c, "SELECT 5"), 5);
    CHECK_EQ_INT(p.s.rows, seen);
    CHECK(!p.s.batch_after_done);
    th_reply_clear(&p.rep);
    corm_conn_close(c);
}

TEST(stale_statement_retried_before_first_row)
{
    corm_conn *c = th_connect();
    char t[96], sql[160];
    th_name(t, sizeof t, c, "sstale");
    th_execf(c, "CREATE TABLE %s (k int8, v text)", t);
    th_execf(c, "INSERT INTO %s SELECT i, 'v' FROM generate_series(1, 50) AS i", t);
    snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY k", t);
    pair p;
    pair_init(&p, c);
    pair_submit(c, sql, &p);
    th_drive(c, pair_done_p, &p, 30000, NULL);
    TH_REPLY_OK(&p.rep);
    CHECK_EQ_INT(p.s.ncols, 2);
    th_reply_clear(&p.rep);
    /* The cached plan's result type changes: the server refuses it before
     * any row, so the engine re-prepares and runs it again, once. */
    th_execf(c, "ALTER TABLE %s ADD COLUMN w int DEFAULT 3", t);
    pair_init(&p, c);
    pair_submit(c, sql, &p);
    th_drive(c, pair_done_p, &p, 30000, NULL);
    TH_REPLY_OK(&p.rep);
    CHECK_EQ_INT(p.s.rows, 50);
    CHECK(!p.s.out_of_order);
    CHECK_EQ_INT(p.s.ncols, 3);
    th_reply_clear(&p.rep);
    corm_conn_close(c);
}

TEST(pipelined_with_plain_requests_in_order)
{
    corm_conn *c = th_connect();
    enum { N = 12 };
    pair p[N];
    th_reply plain[N];
    corm_error err = CORM_ERROR_INIT;
    th_seq_next = 0;
    for (int i = 0; i < N; i++) {
        char sql[128];
        pair_init(&p[i], c);
        snprintf(sql, sizeof sql, "SELECT i::int8 FROM generate_series(1, %d) AS i",
                 (i + 1) * 500);
        pair_submit(c, sql, &p[i]);
        th_reply_init(&plain[i]);
        snprintf(sql, sizeof sql, "SELECT %d", i);
        CHECK_OK(corm_conn_submit_sql(c, sql, th_on_done, &plain[i], NULL, &err), &err);
    }
    th_wait_reply(c, &plain[N - 1], 60000);
    for (int i = 0; i < N; i++) {
        TH_REPLY_OK(&p[i].rep);
        TH_REPLY_OK(&plain[i]);
        CHECK_EQ_INT(p[i].s.rows, (i + 1) * 500);
        CHECK(!p[i].s.out_of_order && !p[i].s.batch_after_done);
        /* Completions keep submission order, streamed or not. */
        CHECK_EQ_INT(p[i].rep.seq, 2 * i);
        CHECK_EQ_INT(plain[i].seq, 2 * i + 1);
        th_reply_clear(&p[i].rep);
        th_reply_clear(&plain[i]);
    }
    corm_conn_close(c);
}

TEST(pool_streams)
{
    corm_pool *pool = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_pool_open(&pool, ctest_dsn(), NULL, &err), &err);
    enum { N = 6 };
    pair p[N];
    corm_query *q = sql_query("SELECT i::int8 FROM generate_series(1, 4000) AS i");
    for (int i = 0; i < N; i++) {
        pair_init(&p[i], NULL);
        CHECK_OK(corm_pool_submit_stream(pool, q, pair_rows, pair_done, &p[i], NULL, &err),
                 &err);
    }
    corm_query_free(q);
    for (int i = 0; i < N; i++)
        th_pool_drive(pool, pair_done_p, &p[i], 30000);
    for (int i = 0; i < N; i++) {
        TH_REPLY_OK(&p[i].rep);
        CHECK_EQ_INT(p[i].s.rows, 4000);
        CHECK(!p[i].s.out_of_order);
        th_reply_clear(&p[i].rep);
    }
    corm_pool_close(pool);
}

TEST(misuse)
{
    corm_conn *c = th_connect();
    corm_query *q = sql_query("SELECT 1");
    corm_error err = CORM_ERROR_INIT;
    th_reply rep;
    sink s;
    sink_init(&s, &rep);
    CHECK_ERR(corm_conn_submit_stream(c, q, NULL, th_on_done, &rep, NULL, &err), CORM_EMISUSE,
              &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_conn_submit_stream(c, q, on_rows, NULL, &s, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_conn_submit_stream(NULL, q, on_rows, th_on_done, &s, NULL, &err),
              CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_conn_submit_stream(c, NULL, on_rows, th_on_done, &s, NULL, &err),
              CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_pool_submit_stream(NULL, q, on_rows, th_on_done, &s, NULL, &err),
              CORM_EMISUSE, &err);
    corm_error_clear(&err);
    /* Nothing was submitted: the connection has nothing pending. */
    CHECK_EQ_INT(th_int(c, "SELECT 3"), 3);
    CHECK_EQ_INT(rep.done, 0);
    corm_query_free(q);
    corm_conn_close(c);
    (void)submit_stream;
}
