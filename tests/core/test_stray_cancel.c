/*
 * test_stray_cancel.c - a cancel or a timeout stops its own request and
 * never another: hundreds of rounds of deadlines around a statement's end,
 * cancels among pipelined requests, inside transactions, on pools of 1
 * and 4. Every request nobody cancelled must return its own result.
 *
 * PostgreSQL signals a backend twice per cancel request and stops whatever
 * runs when the signal lands, so a late cancel used to stop the next
 * statement (issue 12). Nothing here measures time: deadlines only decide
 * where the cancel lands, and the limits are for hangs.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <stdio.h>
#include <stdlib.h>

/* Fewer rounds under valgrind, where every step is slower. */
static int rounds(int plain)
{
    const char *v = getenv("CORM_TEST_VARIANT");
    return v && !strcmp(v, "valgrind") ? plain / 5 : plain;
}

/* A small deterministic generator: the same rounds on every run. */
static unsigned next_rand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (*state >> 16) & 0x7fff;
}

static corm_query *query_with_timeout(const char *sql, int timeout_ms)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    if (timeout_ms > 0)
        CHECK_OK(corm_query_set_timeout(q, timeout_ms, &err), &err);
    return q;
}

/* A reply that must hold its own value k in column col. */
static void check_value(th_reply *r, int col, int64_t k)
{
    TH_REPLY_OK(r);
    corm_error err = CORM_ERROR_INIT;
    int64_t v = -1;
    CHECK_OK(corm_result_get_int64(r->res, 0, col, &v, &err), &err);
    CHECK_EQ_INT(v, k);
}

/* The timed request either finished or timed out; nothing else. */
static void check_timed(th_reply *r)
{
    CHECK_EQ_INT(r->done, 1);
    CHECK_MSG(r->code == 0 || r->code == CORM_ETIMEOUT || r->code == CORM_ECANCELLED,
              "the timed request failed otherwise: %s [%s]",
              r->err.message ? r->err.message : "?", r->err.sqlstate);
}

/* A 30 ms statement with deadlines from before it starts to after it ends,
 * then the next statement at once: the next one always gets its result. */
TEST(deadlines_around_the_end_spare_the_next_statement)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    int n = rounds(300);
    for (int i = 0; i < n; i++) {
        int t = 1 + (i * 7) % 60;
        corm_query *q = query_with_timeout("SELECT pg_sleep(0.03), 0::int8", t);
        th_reply a, b;
        th_reply_init(&a);
        th_reply_init(&b);
        CHECK_OK(corm_conn_submit(c, q, th_on_done, &a, NULL, &err), &err);
        corm_query_free(q);
        th_wait_reply(c, &a, 20000);
        check_timed(&a);
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d::int8 FROM pg_sleep(0.002)", i);
        CHECK_OK(corm_conn_submit_sql(c, sql, th_on_done, &b, NULL, &err), &err);
        th_wait_reply(c, &b, 20000);
        check_value(&b, 0, i);
        th_reply_clear(&a);
        th_reply_clear(&b);
    }
    CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_READY);
    corm_conn_close(c);
}

/* Requests pipelined behind the timed one (a plain one and a streamed one,
 * sent before its deadline) and one sent after it: the cancel may land on
 * those already on the server, and then they run again; all three get
 * their own results. */
static void count_rows(void *ud, const corm_result *rows)
{
    *(int *)ud += corm_result_nrows(rows);
}

typedef struct stream_reply {
    th_reply r;
    int rows;
} stream_reply;

static void stream_done(void *ud, corm_result *res, const corm_error *err)
{
    th_on_done(&((stream_reply *)ud)->r, res, err);
}

static void stream_rows(void *ud, const corm_result *rows)
{
    count_rows(&((stream_reply *)ud)->rows, rows);
}

TEST(deadlines_spare_requests_pipelined_behind)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    int n = rounds(200);
    for (int i = 0; i < n; i++) {
        int t = 1 + (i * 11) % 50;
        corm_query *q = query_with_timeout("SELECT pg_sleep(0.025), 0::int8", t);
        th_reply a, b, d;
        stream_reply s;
        th_reply_init(&a);
        th_reply_init(&b);
        th_reply_init(&d);
        th_reply_init(&s.r);
        s.rows = 0;
        CHECK_OK(corm_conn_submit(c, q, th_on_done, &a, NULL, &err), &err);
        corm_query_free(q);
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT %d::int8 FROM pg_sleep(0.001)", i);
        CHECK_OK(corm_conn_submit_sql(c, sql, th_on_done, &b, NULL, &err), &err);
        corm_query *sq = query_with_timeout("SELECT g FROM generate_series(1, 50) g", 0);
        CHECK_OK(corm_conn_submit_stream(c, sq, stream_rows, stream_done, &s, NULL, &err), &err);
        corm_query_free(sq);
        th_wait_reply(c, &a, 20000);
        check_timed(&a);
        snprintf(sql, sizeof sql, "SELECT %d::int8", -i);
        CHECK_OK(corm_conn_submit_sql(c, sql, th_on_done, &d, NULL, &err), &err);
        th_wait_reply(c, &b, 20000);
        th_wait_reply(c, &d, 20000);
        th_wait_reply(c, &s.r, 20000);
        check_value(&b, 0, i);
        check_value(&d, 0, -i);
        TH_REPLY_OK(&s.r);
        CHECK_EQ_INT(s.rows, 50);   /* every row once: no half stream before a rerun */
        CHECK(b.seq < s.r.seq && s.r.seq < d.seq);   /* still in submission order */
        th_reply_clear(&a);
        th_reply_clear(&b);
        th_reply_clear(&d);
        th_reply_clear(&s.r);
    }
    corm_conn_close(c);
}

/* Eight requests in flight on one connection, a pseudo-random half of
 * them cancelled at pseudo-random moments: the other half get their own
 * values, in submission order. */
TEST(cancels_among_pipelined_requests)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    unsigned seed = 12;
    int n = rounds(150);
    enum { K = 8 };
    for (int round = 0; round < n; round++) {
        th_reply r[K];
        corm_request_id id[K];
        bool cancel[K];
        for (int k = 0; k < K; k++) {
            th_reply_init(&r[k]);
            cancel[k] = next_rand(&seed) % 2;
            char sql[96];
            snprintf(sql, sizeof sql, "SELECT pg_sleep(0.00%u), %d::int8",
                     next_rand(&seed) % 6, round * K + k);
            CHECK_OK(corm_conn_submit_sql(c, sql, th_on_done, &r[k], &id[k], &err), &err);
        }
        for (int k = 0; k < K; k++) {
            if (!cancel[k])
                continue;
            /* Let a few replies arrive first, so cancels land on requests
             * queued, running and just finished. */
            int want = (int)(next_rand(&seed) % (unsigned)(k + 1));
            for (int j = 0; j < want && j < K; j++)
                if (!cancel[j])
                    th_wait_reply(c, &r[j], 20000);
            corm_conn_cancel(c, id[k], &err);
        }
        th_wait_all(c, r, K, 20000);
        int last_seq = -1;
        for (int k = 0; k < K; k++) {
            if (cancel[k] && r[k].code == CORM_ECANCELLED)
                continue;
            check_value(&r[k], 1, round * K + k);
            if (!cancel[k]) {
                CHECK(r[k].seq > last_seq);
                last_seq = r[k].seq;
            }
        }
        for (int k = 0; k < K; k++)
            th_reply_clear(&r[k]);
    }
    CHECK_EQ_INT(th_int(c, "SELECT 5"), 5);
    corm_conn_close(c);
}

/* Inside a transaction block nothing can be run again, so the cancel must
 * never reach the next statement: it finds the transaction aborted (the
 * cancel stopped the timed one) or going on (the timed one had finished),
 * never stopped by a cancel of its own. */
TEST(deadlines_in_a_transaction_spare_the_next_statement)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    int n = rounds(200);
    int aborted = 0, went_on = 0;
    for (int i = 0; i < n; i++) {
        th_exec(c, "BEGIN");
        corm_query *q = query_with_timeout("SELECT pg_sleep(0.02)", 1 + (i * 3) % 40);
        th_reply a, b;
        th_reply_init(&a);
        th_reply_init(&b);
        CHECK_OK(corm_conn_submit(c, q, th_on_done, &a, NULL, &err), &err);
        corm_query_free(q);
        th_wait_reply(c, &a, 20000);
        check_timed(&a);
        CHECK_OK(corm_conn_submit_sql(c, "SELECT 1::int8", th_on_done, &b, NULL, &err), &err);
        th_wait_reply(c, &b, 20000);
        CHECK_EQ_INT(b.done, 1);
        if (b.code == 0) {
            went_on++;
        } else {
            CHECK_MSG(!strcmp(b.err.sqlstate, "25P02"), "the next statement failed: %s [%s]",
                      b.err.message ? b.err.message : "?", b.err.sqlstate);
            aborted++;
        }
        th_exec(c, "ROLLBACK");
        th_reply_clear(&a);
        th_reply_clear(&b);
    }
    CHECK_EQ_INT(aborted + went_on, n);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    corm_conn_close(c);
}

/* In a transaction with a request already sent behind the timed one, no
 * cancel is sent at all: the one behind gets its result, and the timed
 * one's work stays in the transaction as the server did it. */
TEST(no_cancel_in_a_transaction_with_requests_behind)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    th_exec(c, "CREATE TEMP TABLE stray_t (x int8)");
    int n = rounds(50);
    for (int i = 0; i < n; i++) {
        th_exec(c, "BEGIN");
        corm_query *q = query_with_timeout(
            "INSERT INTO stray_t SELECT 1 FROM pg_sleep(0.03)", 1 + (i * 5) % 40);
        th_reply a, b;
        th_reply_init(&a);
        th_reply_init(&b);
        CHECK_OK(corm_conn_submit(c, q, th_on_done, &a, NULL, &err), &err);
        corm_query_free(q);
        CHECK_OK(corm_conn_submit_sql(c, "SELECT 7::int8", th_on_done, &b, NULL, &err), &err);
        th_wait_reply(c, &b, 20000);
        check_timed(&a);
        check_value(&b, 0, 7);
        CHECK_EQ_INT(th_int(c, "SELECT count(*) FROM stray_t"), 1);
        th_exec(c, "ROLLBACK");
        th_reply_clear(&a);
        th_reply_clear(&b);
    }
    corm_conn_close(c);
}

/* A pool of 1 and of 4: timed requests and plain ones from many callers,
 * pipelined on shared connections; every plain one gets its value. */
static void pool_rounds(int max_size)
{
    corm_options opt;
    corm_options_init(&opt);
    opt.pool_min_size = 1;
    opt.pool_max_size = max_size;
    corm_pool *p = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), &opt, &err), &err);
    enum { K = 6 };
    int n = rounds(100);
    unsigned seed = 7;
    for (int round = 0; round < n; round++) {
        th_reply r[K];
        bool timed[K];
        for (int k = 0; k < K; k++) {
            th_reply_init(&r[k]);
            timed[k] = k % 3 == 0;
            char sql[96];
            snprintf(sql, sizeof sql, "SELECT pg_sleep(0.0%u), %d::int8",
                     timed[k] ? 2 + next_rand(&seed) % 2 : next_rand(&seed) % 2, round * K + k);
            corm_query *q = query_with_timeout(sql, timed[k] ? 1 + (int)(next_rand(&seed) % 35) : 0);
            CHECK_OK(corm_pool_submit(p, q, th_on_done, &r[k], NULL, &err), &err);
            corm_query_free(q);
        }
        th_replies rs = {r, K};
        th_pool_drive(p, th_replies_done, &rs, 20000);
        for (int k = 0; k < K; k++) {
            if (timed[k] && r[k].code == CORM_ETIMEOUT)
                continue;
            check_value(&r[k], 1, round * K + k);
        }
        for (int k = 0; k < K; k++)
            th_reply_clear(&r[k]);
    }
    CHECK(corm_pool_size(p) <= max_size);
    corm_pool_close(p);
}

TEST(pool_of_one_spares_every_plain_request)
{
    pool_rounds(1);
}

TEST(pool_of_four_spares_every_plain_request)
{
    pool_rounds(4);
}
