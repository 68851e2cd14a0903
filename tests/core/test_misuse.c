/*
 * test_misuse.c - the engine's API used wrongly: NULL handles and
 * arguments, re-entering from callbacks, wrong parameter counts, closing
 * from inside callbacks. Never a crash; CORM_EMISUSE or the documented
 * no-op, and the handles stay usable.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"
#include "corm_int.h"   /* corm__sql_max_placeholder */

static void never_done(void *ud, corm_result *res, const corm_error *err)
{
    (void)res;
    (void)err;
    ++*(int *)ud;
}

static void never_lent(void *ud, corm_conn *conn, const corm_error *err)
{
    (void)conn;
    (void)err;
    ++*(int *)ud;
}

static void never_watched(void *ud, int fd, int events)
{
    (void)fd;
    (void)events;
    ++*(int *)ud;
}

#define MISUSE(expr)                                                           \
    do {                                                                       \
        corm_error e_ = CORM_ERROR_INIT;                                       \
        int rc_ = (expr);                                                      \
        CHECK_MSG(rc_ == CORM_EMISUSE, "%s returned %d, want CORM_EMISUSE", #expr, rc_); \
        CHECK_MSG(e_.code == CORM_EMISUSE && e_.message != NULL,               \
                  "%s: the error was not filled", #expr);                      \
        corm_error_clear(&e_);                                                 \
    } while (0)

/* The same with err == NULL: allowed everywhere. */
#define MISUSE_NOERR(expr)                                                     \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        CHECK_MSG(rc_ == CORM_EMISUSE, "%s returned %d, want CORM_EMISUSE", #expr, rc_); \
    } while (0)

/* Every engine entry point with a NULL handle. */
TEST(null_handles)
{
    int calls = 0;
    corm_request_id id = 0;
    corm_result *res = NULL;
    corm_conn *conn = NULL;
    int64_t i64;
    double d;
    bool b;
    const char *s;
    const void *p;
    size_t len;
    corm_value v;
    corm_query *q = NULL;
    corm_txn_options topt = {0, false, false};

    /* No-ops and neutral answers, documented or obvious. */
    corm_error_clear(NULL);
    corm_options_init(NULL);
    corm_query_free(NULL);
    corm_query_clear_params(NULL);
    corm_result_free(NULL);
    corm_conn_close(NULL);
    corm_pool_close(NULL);
    corm_pool_set_watch(NULL, never_watched, &calls);
    CHECK(corm_result_take(NULL) == NULL);
    CHECK_EQ_INT(corm_query_nparams(NULL), 0);
    CHECK(corm_query_text(NULL) == NULL);
    CHECK_EQ_INT(corm_result_nrows(NULL), 0);
    CHECK_EQ_INT(corm_result_ncols(NULL), 0);
    CHECK(corm_result_colname(NULL, 0) == NULL);
    CHECK_EQ_INT(corm_result_coltype(NULL, 0), 0);
    CHECK_EQ_INT(corm_result_colindex(NULL, "a"), -1);
    CHECK_EQ_INT(corm_result_affected(NULL), -1);
    CHECK(corm_result_command(NULL) != NULL);
    CHECK_EQ_INT(corm_conn_fd(NULL), -1);
    CHECK_EQ_INT(corm_conn_events(NULL), 0);
    CHECK_EQ_INT(corm_conn_timeout(NULL), -1);
    CHECK_EQ_INT(corm_conn_pending(NULL), 0);
    CHECK_EQ_INT(corm_conn_in_transaction(NULL), 0);
    CHECK_EQ_INT(corm_conn_backend_pid(NULL), 0);
    CHECK_EQ_INT(corm_conn_cached_statements(NULL), 0);
    CHECK_EQ_INT(corm_conn_txn_depth(NULL), 0);
    CHECK(corm_conn_state(NULL) == CORM_CONN_BROKEN);
    CHECK_EQ_INT(corm_pool_timeout(NULL), -1);
    CHECK_EQ_INT(corm_pool_size(NULL), 0);
    CHECK_EQ_INT(corm_pool_idle(NULL), 0);
    CHECK_EQ_INT(corm_error_copy(NULL, NULL), CORM_EMISUSE);

    /* Failures. */
    MISUSE(corm_query_bind_null(NULL, &e_));
    MISUSE(corm_query_bind_bool(NULL, true, &e_));
    MISUSE(corm_query_bind_int64(NULL, 1, &e_));
    MISUSE(corm_query_bind_double(NULL, 1.0, &e_));
    MISUSE(corm_query_bind_text(NULL, "x", -1, &e_));
    MISUSE(corm_query_bind_bytes(NULL, "x", 1, &e_));
    v = (corm_value){.kind = CORM_INT, .v.i = 1};
    MISUSE(corm_query_bind(NULL, &v, &e_));
    MISUSE(corm_query_set_timeout(NULL, 10, &e_));
    CHECK_EQ_INT(corm_result_isnull(NULL, 0, 0), CORM_EMISUSE);
    MISUSE(corm_result_get(NULL, 0, 0, &v, &e_));
    MISUSE(corm_result_get_int64(NULL, 0, 0, &i64, &e_));
    MISUSE(corm_result_get_double(NULL, 0, 0, &d, &e_));
    MISUSE(corm_result_get_bool(NULL, 0, 0, &b, &e_));
    MISUSE(corm_result_get_text(NULL, 0, 0, &s, &len, &e_));
    MISUSE(corm_result_get_bytes(NULL, 0, 0, &p, &len, &e_));
    MISUSE(corm_conn_step(NULL, &e_));
    MISUSE(corm_conn_submit(NULL, q, never_done, &calls, &id, &e_));
    MISUSE(corm_conn_submit_sql(NULL, "SELECT 1", never_done, &calls, &id, &e_));
    MISUSE(corm_conn_cancel(NULL, 1, &e_));
    MISUSE(corm_conn_begin(NULL, &topt, never_done, &calls, &e_));
    MISUSE(corm_conn_commit(NULL, never_done, &calls, &e_));
    MISUSE(corm_conn_rollback(NULL, never_done, &calls, &e_));
    MISUSE(corm_pool_step(NULL, -1, &e_));
    MISUSE(corm_pool_submit(NULL, q, never_done, &calls, &id, &e_));
    MISUSE(corm_pool_cancel(NULL, 1, &e_));
    MISUSE(corm_pool_acquire(NULL, 0, never_lent, &calls, &id, &e_));
    MISUSE(corm_pool_cancel_acquire(NULL, 1, &e_));
    MISUSE(corm_pool_release(NULL, conn, &e_));
    MISUSE(corm_conn_wait(NULL, 0, &e_));
    MISUSE(corm_conn_exec(NULL, q, &res, &e_));
    MISUSE(corm_conn_exec_sql(NULL, "SELECT 1", &res, &e_));
    MISUSE(corm_conn_drain(NULL, &e_));
    MISUSE(corm_pool_wait(NULL, 0, &e_));
    MISUSE(corm_pool_exec(NULL, q, &res, &e_));
    MISUSE(corm_pool_acquire_wait(NULL, 0, &conn, &e_));
    CHECK(res == NULL);
    CHECK(conn == NULL);

    /* And with no error to fill. */
    MISUSE_NOERR(corm_conn_step(NULL, NULL));
    MISUSE_NOERR(corm_conn_submit_sql(NULL, "SELECT 1", never_done, &calls, NULL, NULL));
    MISUSE_NOERR(corm_pool_step(NULL, -1, NULL));
    MISUSE_NOERR(corm_query_bind_int64(NULL, 1, NULL));
    MISUSE_NOERR(corm_conn_exec_sql(NULL, "SELECT 1", NULL, NULL));
    CHECK_EQ_INT(calls, 0);
}

/* NULL arguments to constructors: *out is NULL afterwards, nothing leaks. */
TEST(null_arguments_to_constructors)
{
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = (corm_conn *)&err;
    corm_pool *p = (corm_pool *)&err;
    corm_query *q = (corm_query *)&err;
    MISUSE(corm_conn_open(NULL, "host=127.0.0.1", NULL, &e_));
    MISUSE(corm_conn_open(&c, NULL, NULL, &e_));
    CHECK(c == NULL);
    MISUSE(corm_pool_open(NULL, "host=127.0.0.1", NULL, &e_));
    MISUSE(corm_pool_open(&p, NULL, NULL, &e_));
    CHECK(p == NULL);
    MISUSE(corm_query_sql(NULL, "SELECT 1", &e_));
    MISUSE(corm_query_sql(&q, NULL, &e_));
    CHECK(q == NULL);
    q = (corm_query *)&err;
    MISUSE(corm_query_sql(&q, "", &e_));
    CHECK(q == NULL);
    c = (corm_conn *)&err;
    MISUSE(corm_conn_connect(&c, NULL, NULL, &e_));
    /* Regression: the helper once left *out as it was when the open failed. */
    CHECK(c == NULL);
}

/* A NULL out pointer to the blocking constructor is misuse, not a crash. */
TEST(connect_helper_null_out)
{
    const char *dsn = ctest_dsn();
    /* Regression: the helper once connected and then wrote through NULL. */
    MISUSE(corm_conn_connect(NULL, dsn, NULL, &e_));
}

/* NULL arguments on live handles. */
TEST(null_arguments_on_live_handles)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    int calls = 0;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int8", &err), &err);
    MISUSE(corm_conn_submit(c, NULL, never_done, &calls, NULL, &e_));
    MISUSE(corm_conn_submit(c, q, NULL, &calls, NULL, &e_));
    MISUSE(corm_conn_submit_sql(c, NULL, never_done, &calls, NULL, &e_));
    MISUSE(corm_conn_submit_sql(c, "", never_done, &calls, NULL, &e_));
    MISUSE(corm_conn_submit_sql(c, "SELECT 1", NULL, &calls, NULL, &e_));
    MISUSE(corm_conn_begin(c, NULL, NULL, &calls, &e_));
    MISUSE(corm_conn_exec(c, NULL, NULL, &e_));
    MISUSE(corm_conn_exec_sql(c, NULL, NULL, &e_));
    MISUSE(corm_query_bind(q, NULL, &e_));
    MISUSE(corm_query_bind_text(q, NULL, 3, &e_));
    MISUSE(corm_query_bind_bytes(q, NULL, 3, &e_));
    CHECK_EQ_INT(corm_query_nparams(q), 0);
    /* NULL bytes of length 0 are an empty value, not misuse. */
    CHECK_OK(corm_query_bind_bytes(q, NULL, 0, &err), &err);
    CHECK_EQ_INT(corm_query_nparams(q), 1);
    CHECK_EQ_INT(corm_conn_pending(c), 0);

    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec_sql(c, "SELECT 1::int8, 'x'::text, '\\x00'::bytea", &r, &err),
             &err);
    MISUSE(corm_result_get(r, 0, 0, NULL, &e_));
    MISUSE(corm_result_get_int64(r, 0, 0, NULL, &e_));
    MISUSE(corm_result_get_text(r, 0, 1, NULL, NULL, &e_));
    MISUSE(corm_result_get_bytes(r, 0, 2, NULL, NULL, &e_));
    CHECK_EQ_INT(corm_result_colindex(r, NULL), -1);
    /* len may be NULL for text. */
    const char *s = NULL;
    CHECK_OK(corm_result_get_text(r, 0, 1, &s, NULL, &err), &err);
    CHECK_STR(s, "x");
    corm_result_free(r);

    corm_pool *p = NULL;
    corm_options opt;
    corm_options_init(&opt);
    opt.pool_min_size = 0;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), &opt, &err), &err);
    MISUSE(corm_pool_submit(p, NULL, never_done, &calls, NULL, &e_));
    MISUSE(corm_pool_submit(p, q, NULL, &calls, NULL, &e_));
    MISUSE(corm_pool_acquire(p, 0, NULL, &calls, NULL, &e_));
    MISUSE(corm_pool_release(p, NULL, &e_));
    MISUSE(corm_pool_acquire_wait(p, 0, NULL, &e_));
    MISUSE(corm_pool_exec(p, NULL, NULL, &e_));
    CHECK_EQ_INT(corm_pool_size(p), 0);
    corm_pool_set_watch(p, NULL, NULL);   /* no watcher: fine */
    corm_pool_close(p);

    CHECK_EQ_INT(calls, 0);
    CHECK_EQ_INT(th_int(c, "SELECT 1"), 1);   /* still usable */
    corm_query_free(q);
    corm_conn_close(c);
}

/* ---- re-entering from callbacks ---------------------------------------- */

typedef struct reenter {
    corm_conn *c;
    corm_pool *p;
    int ran;
    int step, wait, exec, exec_sql, drain;
    int pool_step, pool_wait, pool_exec, pool_acquire_wait;
    int submit;
    th_reply inner;
} reenter;

static void reenter_conn(void *ud, corm_result *res, const corm_error *err)
{
    (void)res;
    (void)err;
    reenter *k = ud;
    k->ran++;
    corm_query *q = NULL;
    corm_query_sql(&q, "SELECT 1", NULL);
    k->step = corm_conn_step(k->c, NULL);
    k->wait = corm_conn_wait(k->c, 0, NULL);
    k->exec = corm_conn_exec(k->c, q, NULL, NULL);
    k->exec_sql = corm_conn_exec_sql(k->c, "SELECT 1", NULL, NULL);
    k->drain = corm_conn_drain(k->c, NULL);
    /* Submitting is allowed. */
    k->submit = corm_conn_submit_sql(k->c, "SELECT 2", th_on_done, &k->inner, NULL, NULL);
    corm_query_free(q);
}

TEST(step_and_exec_from_inside_a_callback)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    reenter k;
    memset(&k, 0, sizeof k);
    k.c = c;
    th_reply_init(&k.inner);
    th_reply after;
    th_reply_init(&after);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", reenter_conn, &k, NULL, &err), &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 3", th_on_done, &after, NULL, &err), &err);
    th_wait_reply(c, &k.inner, 10000);
    CHECK_EQ_INT(k.ran, 1);
    CHECK_EQ_INT(k.step, CORM_EMISUSE);
    CHECK_EQ_INT(k.wait, CORM_EMISUSE);
    CHECK_EQ_INT(k.exec, CORM_EMISUSE);
    CHECK_EQ_INT(k.exec_sql, CORM_EMISUSE);
    CHECK_EQ_INT(k.drain, CORM_EMISUSE);
    CHECK_EQ_INT(k.submit, 0);
    TH_REPLY_OK(&after);
    TH_REPLY_OK(&k.inner);
    CHECK(after.seq < k.inner.seq);
    th_reply_clear(&after);
    th_reply_clear(&k.inner);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    CHECK_EQ_INT(th_int(c, "SELECT 4"), 4);
    corm_conn_close(c);
}

static void reenter_pool(void *ud, corm_result *res, const corm_error *err)
{
    (void)res;
    (void)err;
    reenter *k = ud;
    k->ran++;
    corm_query *q = NULL;
    corm_query_sql(&q, "SELECT 1", NULL);
    corm_conn *c = NULL;
    k->pool_step = corm_pool_step(k->p, -1, NULL);
    k->pool_wait = corm_pool_wait(k->p, 0, NULL);
    k->pool_exec = corm_pool_exec(k->p, q, NULL, NULL);
    k->pool_acquire_wait = corm_pool_acquire_wait(k->p, 100, &c, NULL);
    k->submit = corm_pool_submit(k->p, q, th_on_done, &k->inner, NULL, NULL);
    corm_query_free(q);
}

static void reenter_lend(void *ud, corm_conn *conn, const corm_error *err)
{
    (void)err;
    reenter *k = ud;
    k->ran++;
    k->c = conn;
    k->pool_step = corm_pool_step(k->p, -1, NULL);
    k->pool_wait = corm_pool_wait(k->p, 0, NULL);
}

static int reenter_ran(void *arg)
{
    return ((reenter *)arg)->ran > 0;
}

TEST(pool_step_and_exec_from_inside_a_callback)
{
    corm_error err = CORM_ERROR_INIT;
    corm_pool *p = NULL;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), NULL, &err), &err);
    reenter k;
    memset(&k, 0, sizeof k);
    k.p = p;
    th_reply_init(&k.inner);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT 1", &err), &err);
    CHECK_OK(corm_pool_submit(p, q, reenter_pool, &k, NULL, &err), &err);
    th_pool_drive(p, th_reply_done, &k.inner, 10000);
    CHECK_EQ_INT(k.ran, 1);
    CHECK_EQ_INT(k.pool_step, CORM_EMISUSE);
    CHECK_EQ_INT(k.pool_wait, CORM_EMISUSE);
    CHECK_EQ_INT(k.pool_exec, CORM_EMISUSE);
    CHECK_EQ_INT(k.pool_acquire_wait, CORM_EMISUSE);
    CHECK_EQ_INT(k.submit, 0);
    TH_REPLY_OK(&k.inner);
    th_reply_clear(&k.inner);

    /* The acquire callback too. */
    reenter l;
    memset(&l, 0, sizeof l);
    l.p = p;
    CHECK_OK(corm_pool_acquire(p, 5000, reenter_lend, &l, NULL, &err), &err);
    th_pool_drive(p, reenter_ran, &l, 10000);
    CHECK(l.c != NULL);
    CHECK_EQ_INT(l.pool_step, CORM_EMISUSE);
    CHECK_EQ_INT(l.pool_wait, CORM_EMISUSE);
    CHECK_OK(corm_pool_release(p, l.c, &err), &err);
    CHECK_OK(corm_pool_exec(p, q, NULL, &err), &err);
    corm_query_free(q);
    corm_pool_close(p);
}

/* ---- wrong parameter counts ---------------------------------------------- */

static void run_count(corm_conn *c, const char *sql, int nbind)
{
    /* A count that does not match the placeholders is refused at submit,
     * before anything is sent: the server would accept extra declared
     * parameters silently, and reject missing ones only at Bind. */
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    for (int i = 0; i < nbind; i++)
        CHECK_OK(corm_query_bind_int64(q, i + 1, &err), &err);
    th_reply r;
    th_reply_init(&r);
    CHECK_ERR(corm_conn_submit(c, q, th_on_done, &r, NULL, &err), CORM_EMISUSE, &err);
    CHECK(strstr(err.message, "$") != NULL);
    corm_error_clear(&err);
    corm_query_free(q);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_READY);
    CHECK_EQ_INT(th_int(c, "SELECT 5"), 5);
}

TEST(too_few_parameters)
{
    corm_conn *c = th_connect();
    run_count(c, "SELECT $1::int8", 0);
    run_count(c, "SELECT $1::int8 + $2::int8", 1);
    corm_conn_close(c);
    corm_options opt;
    corm_options_init(&opt);
    opt.prepared_statements = 0;
    c = th_connect_opt(&opt);
    run_count(c, "SELECT $1::int8", 0);
    corm_conn_close(c);
}

TEST(too_many_parameters)
{
    corm_conn *c = th_connect();
    run_count(c, "SELECT $1::int8", 2);
    run_count(c, "SELECT 1", 1);
    corm_conn_close(c);
}

/* Counts that are right are accepted, whatever else looks like a
 * placeholder; the pool and submit_sql check the same way. */
TEST(right_parameter_counts_accepted)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    static const struct { const char *sql; int nbind; int64_t want; } ok[] = {
        {"SELECT $1::int8 + $1::int8", 1, 2},
        {"SELECT length('$2') + $1::int8", 1, 3},
        {"SELECT $1::int8 -- and $3\n", 1, 1},
        {"SELECT $2::int8", 2, 2},
        {"SELECT length($q$ $5 $q$) + $1::int8", 1, 5},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        corm_query *q = NULL;
        CHECK_OK(corm_query_sql(&q, ok[i].sql, &err), &err);
        for (int k = 0; k < ok[i].nbind; k++)
            CHECK_OK(corm_query_bind_int64(q, k + 1, &err), &err);
        corm_result *r = NULL;
        int rc = corm_conn_exec(c, q, &r, &err);
        CHECK_MSG(rc == 0, "%s: %s", ok[i].sql, err.message ? err.message : "");
        int64_t v;
        CHECK_OK(corm_result_get_int64(r, 0, 0, &v, &err), &err);
        CHECK_MSG(v == ok[i].want, "%s: %lld", ok[i].sql, (long long)v);
        corm_result_free(r);
        corm_query_free(q);
    }
    /* Text without parameters: a $n outside literals is refused too. */
    int calls = 0;
    CHECK_ERR(corm_conn_submit_sql(c, "SELECT $1::int8", never_done, &calls, NULL, &err),
              CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_OK(corm_conn_exec_sql(c, "DO $$ BEGIN PERFORM 1; END $$", NULL, &err), &err);
    CHECK_EQ_INT(calls, 0);
    corm_conn_close(c);

    corm_pool *p = NULL;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), NULL, &err), &err);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int8, $2::int8", &err), &err);
    CHECK_OK(corm_query_bind_int64(q, 1, &err), &err);
    CHECK_ERR(corm_pool_submit(p, q, never_done, &calls, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_pool_exec(p, q, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_OK(corm_query_bind_int64(q, 2, &err), &err);
    CHECK_OK(corm_pool_exec(p, q, NULL, &err), &err);
    corm_query_free(q);
    CHECK_EQ_INT(calls, 0);
    corm_pool_close(p);
}

/* Placeholders are found only where the server would see them. */
TEST(placeholder_scan)
{
    static const struct { const char *sql; int max; } cases[] = {
        {"SELECT 1", 0},
        {"SELECT $1", 1},
        {"SELECT $2, $1", 2},
        {"SELECT $10::int", 10},
        {"SELECT '$1'", 0},
        {"SELECT 'it''s $3'", 0},
        {"SELECT E'\\' $1'", 0},
        {"SELECT E'\\\\', $1", 1},
        {"SELECT \"$1\"", 0},
        {"SELECT \"a\"\"$2\" , $1", 1},
        {"SELECT 1 -- $4\n + $1", 1},
        {"SELECT /* $5 /* nested $6 */ still */ $2", 2},
        {"SELECT $$ $7 $$, $1", 1},
        {"SELECT $tag$ $8 $other$ $tag$, $2", 2},
        {"SELECT a$1 FROM t", 0},
        {"SELECT 'unterminated $1", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(corm__sql_max_placeholder(cases[i].sql) == cases[i].max, "%s: got %d",
                  cases[i].sql, corm__sql_max_placeholder(cases[i].sql));
}

/* ---- closing from inside callbacks ---------------------------------------- */

typedef struct closer {
    corm_conn *c;
    int ran;
    int64_t value;
    int submit_rc;
    int late_calls;
} closer;

static void close_in_callback(void *ud, corm_result *res, const corm_error *err)
{
    closer *k = ud;
    k->ran++;
    corm_conn_close(k->c);   /* deferred: res and c stay valid here */
    if (!err)
        corm_result_get_int64(res, 0, 0, &k->value, NULL);
    k->submit_rc = corm_conn_submit_sql(k->c, "SELECT 9", never_done, &k->late_calls, NULL,
                                        NULL);
    corm_conn_pending(k->c);
}

TEST(close_from_inside_own_callback)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    closer k;
    memset(&k, 0, sizeof k);
    k.c = c;
    th_reply r[2];
    th_reply_init(&r[0]);
    th_reply_init(&r[1]);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 41", close_in_callback, &k, NULL, &err), &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT pg_sleep(30)", th_on_done, &r[0], NULL, &err),
             &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 2", th_on_done, &r[1], NULL, &err), &err);
    int64_t end = th_now_ms() + 10000;
    while (!k.ran) {
        CHECK(th_now_ms() < end);
        int fd = corm_conn_fd(c);
        struct pollfd pf = {fd, th_poll_events(corm_conn_events(c)), 0};
        poll(&pf, 1, 100);
        CHECK_OK(corm_conn_step(c, &err), &err);   /* the close happens at its end */
    }
    /* c is gone now: not touched again. */
    CHECK_EQ_INT(k.ran, 1);
    CHECK_EQ_INT(k.value, 41);
    CHECK_EQ_INT(k.submit_rc, CORM_EMISUSE);   /* refused while closing */
    CHECK_EQ_INT(k.late_calls, 0);
    TH_REPLY_ERR(&r[0], CORM_ECANCELLED);
    TH_REPLY_ERR(&r[1], CORM_ECANCELLED);
    th_reply_clear(&r[0]);
    th_reply_clear(&r[1]);
}

/* A close requested from a callback run by corm_conn_cancel, and one from
 * a callback run by a blocking helper that waits on another request. */
TEST(close_from_callback_run_by_cancel_or_exec)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    closer k;
    memset(&k, 0, sizeof k);
    k.c = c;
    corm_request_id id;
    CHECK_OK(corm_conn_submit_sql(c, "SELECT pg_sleep(30)", close_in_callback, &k, &id, &err),
             &err);
    CHECK_EQ_INT(corm_conn_cancel(c, id, &err), 1);   /* c closed at its end */
    CHECK_EQ_INT(k.ran, 1);

    c = th_connect();
    memset(&k, 0, sizeof k);
    k.c = c;
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 41", close_in_callback, &k, NULL, &err), &err);
    /* The helper waits for its own request; the other's callback closes c
     * under it: the helper's request is cancelled and it returns. */
    int rc = corm_conn_exec_sql(c, "SELECT pg_sleep(30)", NULL, &err);
    CHECK_EQ_INT(k.ran, 1);
    CHECK_EQ_INT(rc, CORM_ECANCELLED);
    corm_error_clear(&err);
}

typedef struct pool_closer {
    corm_pool *p;
    int ran;
    int submit_rc;
    int fd;
} pool_closer;

/* The watch of a one-connection pool: remembers its socket. */
static void one_watch(void *ud, int fd, int events)
{
    *(int *)ud = events ? fd : -1;
}

static void pool_close_in_callback(void *ud, corm_result *res, const corm_error *err)
{
    (void)res;
    (void)err;
    pool_closer *k = ud;
    k->ran++;
    corm_pool_close(k->p);   /* deferred */
    corm_query *q = NULL;
    corm_query_sql(&q, "SELECT 1", NULL);
    int calls = 0;
    k->submit_rc = corm_pool_submit(k->p, q, never_done, &calls, NULL, NULL);
    corm_query_free(q);
}

TEST(pool_close_from_inside_a_callback)
{
    corm_error err = CORM_ERROR_INIT;
    corm_pool *p = NULL;
    corm_options opt;
    corm_options_init(&opt);
    opt.pool_max_size = 1;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), &opt, &err), &err);
    pool_closer k = {p, 0, 0, -1};
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT 1", &err), &err);
    CHECK_OK(corm_pool_submit(p, q, pool_close_in_callback, &k, NULL, &err), &err);
    th_reply r;
    th_reply_init(&r);
    CHECK_OK(corm_pool_submit(p, q, th_on_done, &r, NULL, &err), &err);
    corm_query_free(q);
    corm_pool_set_watch(p, one_watch, &k.fd);
    int64_t end = th_now_ms() + 10000;
    while (!k.ran) {
        CHECK(th_now_ms() < end);
        /* Step the pool directly, one call per round: corm_pool_step must
         * not touch p after the close it performs. */
        int fd = k.fd;
        if (fd >= 0) {
            struct pollfd pf = {fd, POLLIN | POLLOUT, 0};
            poll(&pf, 1, 50);
        } else {
            usleep(10000);
        }
        CHECK_OK(corm_pool_step(p, fd, &err), &err);
    }
    CHECK_EQ_INT(k.submit_rc, CORM_EMISUSE);
    CHECK_EQ_INT(r.done, 1);
    CHECK(r.code == 0 || r.code == CORM_ECANCELLED);
    th_reply_clear(&r);
}
