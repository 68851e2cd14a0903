/*
 * test_oom.c - out of memory on every allocation path: a counting failing
 * allocator in corm_options (fail the Nth allocation, for N = 1, 2, ...
 * until the whole operation succeeds) under connections and pools. Never a
 * crash, CORM_ENOMEM returned or delivered, nothing leaked, the sizes the
 * engine passes back to the allocator always right.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <stdlib.h>

/* Lua's Memcontrol idea, with a size header to check the engine's
 * bookkeeping: every block remembers the size it was allocated with, and
 * a free or realloc passing another old size is counted as an error. */
#include "test_failer.h"

static void failer_options(corm_options *opt, failer *f, long fail_at, int sticky)
{
    memset(f, 0, sizeof *f);
    f->fail_at = fail_at;
    f->sticky = sticky;
    corm_options_init(opt);
    opt->alloc = failer_alloc;
    opt->alloc_ud = f;
}

static void check_balanced(const failer *f, long n)
{
    CHECK_MSG(f->live_blocks == 0 && f->live_bytes == 0,
              "failing allocation %ld: %ld blocks (%zu bytes) never freed", n, f->live_blocks,
              f->live_bytes);
    CHECK_MSG(f->size_errors == 0, "failing allocation %ld: %d frees with a wrong old size", n,
              f->size_errors);
}

/* A failure of an operation under the failing allocator: CORM_ENOMEM, with
 * a message. (The engine's own error strings use malloc, so they exist.) */
static void check_nomem(int rc, const corm_error *err, const char *what, long n)
{
    CHECK_MSG(rc == CORM_ENOMEM, "%s with allocation %ld failing: %d (%s) %s", what, n, rc,
              corm_errname(rc), err->message ? err->message : "");
    CHECK(err->message != NULL);
}

/* 21 columns: more than the result's inline decoder slots. */
static const char *const wide_sql =
    "SELECT $1::int8 + 1, $2::text || 'y', 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,"
    " 17, 18, 19, 20, 21";

static int run_wide(corm_conn *c, corm_error *err)
{
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, wide_sql, err), err);
    CHECK_OK(corm_query_bind_int64(q, 41, err), err);
    CHECK_OK(corm_query_bind_text(q, "x", -1, err), err);
    corm_result *r = NULL;
    int rc = corm_conn_exec(c, q, &r, err);
    corm_query_free(q);
    if (rc < 0) {
        CHECK(r == NULL);
        return rc;
    }
    CHECK_EQ_INT(corm_result_ncols(r), 21);
    int64_t v = 0;
    const char *s = NULL;
    CHECK_OK(corm_result_get_int64(r, 0, 0, &v, err), err);
    CHECK_EQ_INT(v, 42);
    CHECK_OK(corm_result_get_text(r, 0, 1, &s, NULL, err), err);
    CHECK_STR(s, "xy");
    CHECK_OK(corm_result_get_int64(r, 0, 20, &v, err), err);
    CHECK_EQ_INT(v, 21);
    corm_result_free(r);
    return 0;
}

/* A streamed request's batches: rows seen, and decodes that ran out of
 * memory (the numeric column's text lives in the result's scratch). */
typedef struct stream_seen {
    int rows;
    int nomem;
} stream_seen;

static void count_rows(void *ud, const corm_result *r)
{
    stream_seen *s = ud;
    corm_error err = CORM_ERROR_INIT;
    for (int i = 0; i < corm_result_nrows(r); i++) {
        corm_value v;
        int rc = corm_result_get(r, i, 1, &v, &err);
        if (rc == CORM_ENOMEM)
            s->nomem++;
        else
            CHECK_OK(rc, &err);
        corm_error_clear(&err);
        s->rows++;
    }
}

typedef struct stream_call {
    stream_seen seen;
    th_reply rep;
} stream_call;

static void stream_rows(void *ud, const corm_result *r)
{
    count_rows(&((stream_call *)ud)->seen, r);
}

static void stream_done(void *ud, corm_result *res, const corm_error *err)
{
    th_on_done(&((stream_call *)ud)->rep, res, err);
}

/* A streamed request under the failing allocator: 50 rows, or ENOMEM from
 * the submit or in done, never a crash or a leak. */
static void stream_pass(corm_conn *c, long n)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    int rc = corm_query_sql(&q, "SELECT i::int8, (i * 1.5)::numeric FROM generate_series(1, 50) AS i",
                            &err);
    if (rc < 0) {
        check_nomem(rc, &err, "corm_query_sql", n);
        corm_error_clear(&err);
        return;
    }
    stream_call sc;
    memset(&sc, 0, sizeof sc);
    th_reply_init(&sc.rep);
    rc = corm_conn_submit_stream(c, q, stream_rows, stream_done, &sc, NULL, &err);
    corm_query_free(q);
    if (rc < 0) {
        check_nomem(rc, &err, "corm_conn_submit_stream", n);
        corm_error_clear(&err);
        return;
    }
    th_wait_reply(c, &sc.rep, 10000);
    if (sc.rep.code)
        check_nomem(sc.rep.code, &sc.rep.err, "a streamed request", n);
    else
        CHECK_EQ_INT(sc.seen.rows, 50);
    th_reply_clear(&sc.rep);
}

/* One pass: open, two different queries, a pipelined pair, a streamed
 * request, close. Returns 1 when nothing failed (the allocator never
 * refused). */
static int conn_pass(long n, int sticky)
{
    const char *dsn = ctest_dsn();
    failer f;
    corm_options opt;
    failer_options(&opt, &f, n, sticky);
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = (corm_conn *)&err;
    int rc = corm_conn_connect(&c, dsn, &opt, &err);
    if (rc < 0) {
        check_nomem(rc, &err, "corm_conn_connect", n);
        corm_error_clear(&err);
        CHECK(c == NULL);
        check_balanced(&f, n);
        return 0;
    }
    rc = run_wide(c, &err);
    if (rc < 0) {
        check_nomem(rc, &err, "the wide query", n);
        corm_error_clear(&err);
    }
    /* Pipelined: two requests in flight, each its own outcome. */
    th_reply r[2];
    th_reply_init(&r[0]);
    th_reply_init(&r[1]);
    int sub[2];
    sub[0] = corm_conn_submit_sql(c, "SELECT 7", th_on_done, &r[0], NULL, &err);
    if (sub[0] < 0) {
        check_nomem(sub[0], &err, "submit", n);
        corm_error_clear(&err);
    }
    sub[1] = corm_conn_submit_sql(c, "SELECT 8", th_on_done, &r[1], NULL, &err);
    if (sub[1] < 0) {
        check_nomem(sub[1], &err, "submit", n);
        corm_error_clear(&err);
    }
    for (int i = 0; i < 2; i++) {
        if (sub[i] < 0) {
            CHECK_EQ_INT(r[i].done, 0);   /* a failed submit never calls back */
            continue;
        }
        th_wait_reply(c, &r[i], 10000);
        if (r[i].code) {
            check_nomem(r[i].code, &r[i].err, "a pipelined request", n);
        } else {
            int64_t v = 0;
            CHECK_OK(corm_result_get_int64(r[i].res, 0, 0, &v, &err), &err);
            CHECK_EQ_INT(v, 7 + i);
        }
        th_reply_clear(&r[i]);
    }
    stream_pass(c, n);
    if (!sticky && f.failures) {
        /* One failed allocation leaves the connection usable (checked with
         * the allocator disarmed, so the check itself cannot fail). */
        f.fail_at = 0;
        CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_READY);
        rc = run_wide(c, &err);
        CHECK_MSG(rc == 0, "allocation %ld failed once, and the connection still fails: %s",
                  n, err.message ? err.message : "?");
    }
    corm_conn_close(c);
    check_balanced(&f, n);
    return f.failures == 0;
}

TEST(oom_connection_each_allocation_fails_once)
{
    long n = 1;
    while (!conn_pass(n, 0)) {
        n++;
        CHECK_MSG(n < 5000, "still failing at allocation %ld", n);
    }
    CHECK_MSG(n > 3, "only %ld allocations in a whole connection's life?", n - 1);
}

TEST(oom_connection_all_allocations_fail_from_n)
{
    long n = 1;
    while (!conn_pass(n, 1)) {
        n++;
        CHECK_MSG(n < 5000, "still failing at allocation %ld", n);
    }
}

/* The allocator is asked for nothing after close, and sees every block
 * back, also with many statements cached and evicted. */
TEST(oom_allocator_sees_every_block_back)
{
    failer f;
    corm_options opt;
    failer_options(&opt, &f, 0, 0);
    opt.statement_cache_size = 3;
    corm_conn *c = th_connect_opt(&opt);
    corm_error err = CORM_ERROR_INIT;
    for (int i = 0; i < 10; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d", i);
        CHECK_EQ_INT(th_int(c, sql), i);
    }
    CHECK_OK(run_wide(c, &err), &err);
    CHECK(f.live_blocks > 0);
    corm_conn_close(c);
    check_balanced(&f, 0);
}

/* One pass over a pool: open, exec, acquire, release, close. */
static int pool_pass(long n, int sticky)
{
    const char *dsn = ctest_dsn();
    failer f;
    corm_options opt;
    failer_options(&opt, &f, n, sticky);
    opt.pool_min_size = 1;
    opt.pool_max_size = 2;
    corm_error err = CORM_ERROR_INIT;
    corm_pool *p = (corm_pool *)&err;
    int rc = corm_pool_open(&p, dsn, &opt, &err);
    if (rc < 0) {
        check_nomem(rc, &err, "corm_pool_open", n);
        corm_error_clear(&err);
        CHECK(p == NULL);
        check_balanced(&f, n);
        return 0;
    }
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, wide_sql, &err), &err);
    CHECK_OK(corm_query_bind_int64(q, 41, &err), &err);
    CHECK_OK(corm_query_bind_text(q, "x", -1, &err), &err);
    for (int i = 0; i < 2; i++) {
        corm_result *r = NULL;
        rc = corm_pool_exec(p, q, &r, &err);
        if (rc < 0) {
            check_nomem(rc, &err, "corm_pool_exec", n);
            corm_error_clear(&err);
            CHECK(r == NULL);
        } else {
            int64_t v = 0;
            CHECK_OK(corm_result_get_int64(r, 0, 0, &v, &err), &err);
            CHECK_EQ_INT(v, 42);
            corm_result_free(r);
        }
    }
    corm_conn *c = NULL;
    rc = corm_pool_acquire_wait(p, 5000, &c, &err);
    if (rc < 0) {
        check_nomem(rc, &err, "corm_pool_acquire_wait", n);
        corm_error_clear(&err);
        CHECK(c == NULL);
    } else {
        rc = corm_conn_exec_sql(c, "SELECT 1", NULL, &err);
        if (rc < 0) {
            check_nomem(rc, &err, "exec on a lent connection", n);
            corm_error_clear(&err);
        }
        CHECK_OK(corm_pool_release(p, c, &err), &err);
    }
    if (!sticky && f.failures) {
        /* After one failure the pool serves again. */
        f.fail_at = 0;
        corm_result *r = NULL;
        rc = corm_pool_exec(p, q, &r, &err);
        CHECK_MSG(rc == 0, "allocation %ld failed once, and the pool still fails: %s", n,
                  err.message ? err.message : "?");
        corm_result_free(r);
    }
    corm_query_free(q);
    corm_pool_close(p);
    check_balanced(&f, n);
    return f.failures == 0;
}

TEST(oom_pool_each_allocation_fails_once)
{
    th_watchdog(240);
    long n = 1;
    while (!pool_pass(n, 0)) {
        n++;
        CHECK_MSG(n < 5000, "still failing at allocation %ld", n);
    }
    CHECK(n > 3);
}

TEST(oom_pool_all_allocations_fail_from_n)
{
    th_watchdog(240);
    long n = 1;
    while (!pool_pass(n, 1)) {
        n++;
        CHECK_MSG(n < 5000, "still failing at allocation %ld", n);
    }
}

/* Results taken from a callback are freed with the connection's allocator,
 * even after the connection is closed. */
TEST(oom_taken_result_outlives_connection)
{
    failer f;
    corm_options opt;
    failer_options(&opt, &f, 0, 0);
    corm_conn *c = th_connect_opt(&opt);
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec_sql(c, "SELECT 5", &r, &err), &err);
    corm_conn_close(c);
    CHECK(f.live_blocks > 0);   /* the result's */
    int64_t v;
    CHECK_OK(corm_result_get_int64(r, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v, 5);
    corm_result_free(r);
    check_balanced(&f, 0);
}

/* Out of memory exactly when the pool must roll back a connection given
 * back inside a transaction: the next borrower must still get a clean
 * connection (the rollback retried, or the connection discarded), never
 * the open transaction. */
static void release_pass(int raw_begin, long extra)
{
    failer f;
    corm_options opt;
    failer_options(&opt, &f, 0, 0);
    opt.pool_min_size = 1;
    opt.pool_max_size = 1;
    corm_error err = CORM_ERROR_INIT;
    corm_pool *p = NULL;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), &opt, &err), &err);
    corm_conn *c = NULL;
    CHECK_OK(corm_pool_acquire_wait(p, 10000, &c, &err), &err);
    char t[96];
    th_name(t, sizeof t, c, "oomrel");
    th_execf(c, "CREATE TABLE %s (k int)", t);
    if (raw_begin) {
        th_exec(c, "BEGIN");
    } else {
        th_reply b;
        th_reply_init(&b);
        CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &b, &err), &err);
        th_wait_reply(c, &b, 10000);
        TH_REPLY_OK(&b);
        th_reply_clear(&b);
    }
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    /* Fail one of the next allocations: the release's rollback.
     * Regression: the rollback's failed submit was once ignored and the
     * connection lent again inside the borrower's transaction. */
    f.fail_at = f.count + extra;
    CHECK_OK(corm_pool_release(p, c, &err), &err);
    for (int i = 0; i < 20; i++)
        corm_pool_wait(p, 10, NULL);
    f.fail_at = 0;
    c = NULL;
    CHECK_OK(corm_pool_acquire_wait(p, 10000, &c, &err), &err);
    CHECK_MSG(th_server_idle(c) == 1,
              "allocation +%ld failed: the next borrower got the open transaction (%s)", extra,
              raw_begin ? "raw BEGIN" : "corm_conn_begin");
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 0);
    th_execf(c, "DROP TABLE %s", t);
    CHECK_OK(corm_pool_release(p, c, &err), &err);
    corm_pool_close(p);
    check_balanced(&f, extra);
}

TEST(oom_while_rolling_back_a_released_connection)
{
    for (long extra = 1; extra <= 4; extra++) {
        release_pass(1, extra);
        release_pass(0, extra);
    }
}
