/*
 * test_pool.c - the pool: sizes, lending with timeouts and in order,
 * connections returned clean, cancellation, a host loop driven only by the
 * watch callback, many requests over few connections, a server restart.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <stdlib.h>

static corm_pool *open_pool(int min, int max)
{
    corm_options opt;
    corm_options_init(&opt);
    opt.pool_min_size = min;
    opt.pool_max_size = max;
    corm_error err = CORM_ERROR_INIT;
    corm_pool *p = NULL;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), &opt, &err), &err);
    CHECK(p != NULL);
    return p;
}

/* What an acquire callback received. */
typedef struct lend {
    int done;
    corm_conn *conn;
    int code;
    corm_error err;
    int order;
    int64_t at;
} lend;

static int lend_order;

static void on_lend(void *ud, corm_conn *conn, const corm_error *err)
{
    lend *l = ud;
    l->done++;
    l->conn = conn;
    l->order = lend_order++;
    l->at = th_now_ms();
    if (err) {
        l->code = err->code;
        corm_error_copy(&l->err, err);
    }
}

static int lend_done(void *arg)
{
    return ((lend *)arg)->done > 0;
}

static void lend_clear(lend *l)
{
    corm_error_clear(&l->err);
    memset(l, 0, sizeof *l);
}

static int pool_idle_is(corm_pool *p, int n)
{
    return corm_pool_idle(p) == n;
}

typedef struct idle_want {
    corm_pool *p;
    int n;
} idle_want;

static int idle_reached(void *arg)
{
    idle_want *w = arg;
    return pool_idle_is(w->p, w->n);
}

static void wait_idle(corm_pool *p, int n, int limit_ms)
{
    idle_want w = {p, n};
    th_pool_drive(p, idle_reached, &w, limit_ms);
}

/* Acquires and waits for the callback; the lend must succeed. */
static corm_conn *borrow(corm_pool *p, int timeout_ms)
{
    corm_error err = CORM_ERROR_INIT;
    lend l;
    memset(&l, 0, sizeof l);
    CHECK_OK(corm_pool_acquire(p, timeout_ms, on_lend, &l, NULL, &err), &err);
    th_pool_drive(p, lend_done, &l, 15000);
    CHECK_EQ_INT(l.done, 1);
    CHECK_MSG(l.code == 0, "acquire failed: %s", l.err.message ? l.err.message : "?");
    CHECK(l.conn != NULL);
    CHECK_EQ_INT(corm_conn_state(l.conn), CORM_CONN_READY);
    corm_conn *c = l.conn;
    lend_clear(&l);
    return c;
}

static void give_back(corm_pool *p, corm_conn *c)
{
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_pool_release(p, c, &err), &err);
}

/* ---- sizes and lending ------------------------------------------------- */

TEST(pool_min_and_max_size)
{
    corm_pool *p = open_pool(2, 3);
    CHECK_EQ_INT(corm_pool_size(p), 2);   /* opening at once */
    wait_idle(p, 2, 15000);
    CHECK_EQ_INT(corm_pool_size(p), 2);
    corm_conn *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = borrow(p, 5000);
        for (int j = 0; j < i; j++)
            CHECK(c[i] != c[j]);
    }
    CHECK_EQ_INT(corm_pool_size(p), 3);
    CHECK_EQ_INT(corm_pool_idle(p), 0);
    /* Each is a working connection of its own. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(th_int(c[i], "SELECT 1"), 1);
    CHECK(corm_conn_backend_pid(c[0]) != corm_conn_backend_pid(c[1]));
    /* A fourth cannot be had: max is honoured, the wait times out. */
    corm_error err = CORM_ERROR_INIT;
    lend l;
    memset(&l, 0, sizeof l);
    int64_t t0 = th_now_ms();
    CHECK_OK(corm_pool_acquire(p, 300, on_lend, &l, NULL, &err), &err);
    th_pool_drive(p, lend_done, &l, 10000);
    int64_t elapsed = l.at - t0;
    CHECK_EQ_INT(l.code, CORM_ETIMEOUT);
    CHECK(l.conn == NULL);
    CHECK(l.err.message != NULL);
    CHECK_MSG(elapsed >= 250 && elapsed < 5000, "timed out after %lld ms", (long long)elapsed);
    CHECK_EQ_INT(corm_pool_size(p), 3);
    lend_clear(&l);
    for (int i = 0; i < 3; i++)
        give_back(p, c[i]);
    wait_idle(p, 3, 10000);
    CHECK(corm_pool_size(p) >= 2 && corm_pool_size(p) <= 3);
    corm_pool_close(p);
}

/* With every connection lent, the waiter times out after about its timeout;
 * corm_pool_timeout tells the host loop when to wake up for it. */
TEST(pool_acquire_timeout)
{
    corm_pool *p = open_pool(1, 1);
    corm_conn *held = borrow(p, 0);
    corm_error err = CORM_ERROR_INIT;
    lend l;
    memset(&l, 0, sizeof l);
    int64_t t0 = th_now_ms();
    CHECK_OK(corm_pool_acquire(p, 400, on_lend, &l, NULL, &err), &err);
    CHECK_OK(corm_pool_step(p, -1, &err), &err);
    int t = corm_pool_timeout(p);
    CHECK_MSG(t >= 0 && t <= 400, "corm_pool_timeout %d", t);
    th_pool_drive(p, lend_done, &l, 10000);
    CHECK_EQ_INT(l.done, 1);
    CHECK_EQ_INT(l.code, CORM_ETIMEOUT);
    int64_t elapsed = l.at - t0;
    CHECK_MSG(elapsed >= 350 && elapsed < 5000, "timed out after %lld ms", (long long)elapsed);
    lend_clear(&l);
    /* The blocking helper likewise. */
    corm_conn *c = NULL;
    t0 = th_now_ms();
    CHECK_ERR(corm_pool_acquire_wait(p, 300, &c, &err), CORM_ETIMEOUT, &err);
    CHECK(c == NULL);
    CHECK(th_now_ms() - t0 < 5000);
    corm_error_clear(&err);
    give_back(p, held);
    c = borrow(p, 1000);
    CHECK(c == held);
    give_back(p, c);
    corm_pool_close(p);
}

/* Three waiters, one connection released at a time: served in the order
 * they asked. */
TEST(pool_acquire_first_come_first_served)
{
    corm_pool *p = open_pool(1, 1);
    corm_conn *c = borrow(p, 0);
    corm_error err = CORM_ERROR_INIT;
    lend w[3];
    memset(w, 0, sizeof w);
    lend_order = 0;
    for (int i = 0; i < 3; i++)
        CHECK_OK(corm_pool_acquire(p, 0, on_lend, &w[i], NULL, &err), &err);
    for (int i = 0; i < 10; i++)
        corm_pool_wait(p, 10, NULL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(w[i].done, 0);
    for (int i = 0; i < 3; i++) {
        give_back(p, c);
        th_pool_drive(p, lend_done, &w[i], 10000);
        CHECK_EQ_INT(w[i].code, 0);
        CHECK_EQ_INT(w[i].order, i);
        for (int j = i + 1; j < 3; j++)
            CHECK_MSG(w[j].done == 0, "waiter %d served before waiter %d", j, i);
        c = w[i].conn;
        CHECK_EQ_INT(th_int(c, "SELECT 1"), 1);
    }
    give_back(p, c);
    for (int i = 0; i < 3; i++)
        lend_clear(&w[i]);
    corm_pool_close(p);
}

/* Requests submitted to the pool never go to a lent connection: with all
 * lent they wait, and run once one is back. */
TEST(pool_submit_waits_while_all_lent)
{
    corm_pool *p = open_pool(1, 1);
    corm_conn *c = borrow(p, 0);
    int lent_pid = corm_conn_backend_pid(c);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT pg_backend_pid()", &err), &err);
    th_reply r;
    th_reply_init(&r);
    CHECK_OK(corm_pool_submit(p, q, th_on_done, &r, NULL, &err), &err);
    for (int i = 0; i < 20; i++)
        corm_pool_wait(p, 10, NULL);
    CHECK_EQ_INT(r.done, 0);
    /* Meanwhile the borrower has the connection to itself. */
    CHECK_EQ_INT(th_int(c, "SELECT 2"), 2);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    give_back(p, c);
    th_pool_drive(p, th_reply_done, &r, 10000);
    TH_REPLY_OK(&r);
    int64_t pid;
    CHECK_OK(corm_result_get_int64(r.res, 0, 0, &pid, &err), &err);
    CHECK_EQ_INT(pid, lent_pid);
    th_reply_clear(&r);
    corm_query_free(q);
    corm_pool_close(p);
}

/* ---- returned clean ---------------------------------------------------- */

static void make_table(corm_pool *p, char *name, size_t size)
{
    corm_conn *c = borrow(p, 0);
    th_name(name, size, c, "pool");
    th_execf(c, "CREATE TABLE %s (k int)", name);
    give_back(p, c);
}

static void drop_table(corm_pool *p, const char *name)
{
    corm_conn *c = borrow(p, 0);
    th_execf(c, "DROP TABLE %s", name);
    give_back(p, c);
}

/* The next borrower of a connection released inside a transaction sees no
 * transaction and none of its rows. */
static void check_clean(corm_pool *p, const char *table, int want_pid)
{
    corm_conn *c = borrow(p, 0);
    CHECK_EQ_INT(corm_conn_backend_pid(c), want_pid);   /* the same connection */
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 0);
    CHECK_EQ_INT(th_server_idle(c), 1);
    CHECK_EQ_INT(th_int(c, "SELECT (txid_current_if_assigned() IS NULL)::int"), 1);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", table), 0);
    give_back(p, c);
}

TEST(pool_release_rolls_back_corm_begin)
{
    corm_pool *p = open_pool(1, 1);
    char t[96];
    make_table(p, t, sizeof t);
    corm_conn *c = borrow(p, 0);
    int pid = corm_conn_backend_pid(c);
    corm_error err = CORM_ERROR_INIT;
    th_reply b;
    th_reply_init(&b);
    CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &b, &err), &err);
    th_wait_reply(c, &b, 10000);
    TH_REPLY_OK(&b);
    th_reply_clear(&b);
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 1);
    give_back(p, c);
    check_clean(p, t, pid);

    /* Nested levels, and requests still in flight when released. */
    c = borrow(p, 0);
    CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &b, &err), &err);
    th_wait_reply(c, &b, 10000);
    th_reply_clear(&b);
    CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &b, &err), &err);
    th_wait_reply(c, &b, 10000);
    th_reply_clear(&b);
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO %s SELECT 2 FROM pg_sleep(0.2)", t);
    CHECK_OK(corm_conn_submit_sql(c, sql, th_on_done, &b, NULL, &err), &err);
    give_back(p, c);   /* the borrower's request still runs */
    check_clean(p, t, pid);
    TH_REPLY_OK(&b);   /* and completed for the borrower */
    th_reply_clear(&b);
    drop_table(p, t);
    corm_pool_close(p);
}

TEST(pool_release_rolls_back_raw_begin)
{
    corm_pool *p = open_pool(1, 1);
    char t[96];
    make_table(p, t, sizeof t);
    corm_conn *c = borrow(p, 0);
    int pid = corm_conn_backend_pid(c);
    th_exec(c, "BEGIN");
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    give_back(p, c);
    check_clean(p, t, pid);

    /* A transaction left failed (aborted) is rolled back too. */
    c = borrow(p, 0);
    th_exec(c, "START TRANSACTION");
    th_execf(c, "INSERT INTO %s VALUES (2)", t);
    corm_error err = CORM_ERROR_INIT;
    CHECK_ERR(corm_conn_exec_sql(c, "SELECT 1 / 0", NULL, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    give_back(p, c);
    check_clean(p, t, pid);
    drop_table(p, t);
    corm_pool_close(p);
}

/* Only connections this pool lent can be released, once each. */
TEST(pool_release_of_foreign_connection_is_misuse)
{
    corm_pool *p = open_pool(1, 2), *q = open_pool(1, 1);
    corm_conn *own = th_connect();
    corm_error err = CORM_ERROR_INIT;
    CHECK_ERR(corm_pool_release(p, own, &err), CORM_EMISUSE, &err);
    CHECK(err.message != NULL);
    corm_error_clear(&err);
    CHECK_EQ_INT(th_int(own, "SELECT 1"), 1);   /* untouched */
    corm_conn_close(own);

    corm_conn *c = borrow(p, 0);
    CHECK_ERR(corm_pool_release(q, c, &err), CORM_EMISUSE, &err);   /* another pool's */
    corm_error_clear(&err);
    give_back(p, c);
    CHECK_ERR(corm_pool_release(p, c, &err), CORM_EMISUSE, &err);   /* twice */
    corm_error_clear(&err);
    /* A member that was not lent (shared) cannot be released either. */
    wait_idle(p, 1, 10000);
    CHECK_EQ_INT(corm_pool_size(p), 1);
    c = borrow(p, 0);
    give_back(p, c);
    CHECK_ERR(corm_pool_release(p, c, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_pool_close(p);
    corm_pool_close(q);
}

/* ---- cancellation ------------------------------------------------------- */

TEST(pool_cancel)
{
    corm_pool *p = open_pool(1, 2);
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT pg_sleep(60)", &err), &err);
    th_reply r;
    th_reply_init(&r);
    corm_request_id id = 0;
    CHECK_OK(corm_pool_submit(p, q, th_on_done, &r, &id, &err), &err);
    CHECK(id != 0);
    for (int i = 0; i < 20; i++)
        corm_pool_wait(p, 10, NULL);
    CHECK_EQ_INT(r.done, 0);
    int64_t t0 = th_now_ms();
    CHECK_EQ_INT(corm_pool_cancel(p, id, &err), 1);
    TH_REPLY_ERR(&r, CORM_ECANCELLED);
    CHECK_EQ_INT(corm_pool_cancel(p, id, &err), 0);
    CHECK_EQ_INT(corm_pool_cancel(p, id + 12345, &err), 0);
    th_reply_clear(&r);
    /* The pool goes on serving, on the same connection too. */
    for (int i = 0; i < 3; i++) {
        corm_result *res = NULL;
        corm_query *one = NULL;
        CHECK_OK(corm_query_sql(&one, "SELECT 1", &err), &err);
        CHECK_OK(corm_pool_exec(p, one, &res, &err), &err);
        corm_result_free(res);
        corm_query_free(one);
    }
    CHECK_MSG(th_now_ms() - t0 < 20000, "the cancelled sleep held the pool");

    /* A request still queued in the pool (all connections lent). */
    corm_pool *one = open_pool(1, 1);
    corm_conn *c = borrow(one, 0);
    th_reply_init(&r);
    CHECK_OK(corm_pool_submit(one, q, th_on_done, &r, &id, &err), &err);
    corm_pool_wait(one, 10, NULL);
    CHECK_EQ_INT(corm_pool_cancel(one, id, &err), 1);
    TH_REPLY_ERR(&r, CORM_ECANCELLED);
    th_reply_clear(&r);
    give_back(one, c);
    wait_idle(one, 1, 10000);
    corm_pool_close(one);
    corm_query_free(q);
    corm_pool_close(p);
}

TEST(pool_cancel_acquire)
{
    corm_pool *p = open_pool(1, 1);
    corm_conn *c = borrow(p, 0);
    corm_error err = CORM_ERROR_INIT;
    lend a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    corm_request_id ida = 0, idb = 0;
    CHECK_OK(corm_pool_acquire(p, 0, on_lend, &a, &ida, &err), &err);
    CHECK_OK(corm_pool_acquire(p, 0, on_lend, &b, &idb, &err), &err);
    CHECK(ida != idb);
    CHECK_EQ_INT(corm_pool_cancel_acquire(p, ida, &err), 1);
    CHECK_EQ_INT(a.done, 1);
    CHECK_EQ_INT(a.code, CORM_ECANCELLED);
    CHECK(a.conn == NULL);
    CHECK_EQ_INT(corm_pool_cancel_acquire(p, ida, &err), 0);
    CHECK_EQ_INT(corm_pool_cancel_acquire(p, 987654, &err), 0);
    /* The next in line gets the connection. */
    give_back(p, c);
    th_pool_drive(p, lend_done, &b, 10000);
    CHECK_EQ_INT(b.code, 0);
    CHECK(b.conn == c);
    CHECK_EQ_INT(a.done, 1);
    CHECK_EQ_INT(corm_pool_cancel_acquire(p, idb, &err), 0);   /* already served */
    give_back(p, b.conn);
    lend_clear(&a);
    lend_clear(&b);
    corm_pool_close(p);
}

/* Closing the pool completes everything still waiting with CANCELLED. */
TEST(pool_close_cancels_pending)
{
    corm_pool *p = open_pool(1, 1);
    corm_conn *c = borrow(p, 0);
    (void)c;   /* lent connections are closed with the pool */
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT 1", &err), &err);
    th_reply r[3];
    for (int i = 0; i < 3; i++) {
        th_reply_init(&r[i]);
        CHECK_OK(corm_pool_submit(p, q, th_on_done, &r[i], NULL, &err), &err);
    }
    lend w;
    memset(&w, 0, sizeof w);
    CHECK_OK(corm_pool_acquire(p, 0, on_lend, &w, NULL, &err), &err);
    corm_pool_close(p);
    for (int i = 0; i < 3; i++) {
        TH_REPLY_ERR(&r[i], CORM_ECANCELLED);
        th_reply_clear(&r[i]);
    }
    CHECK_EQ_INT(w.done, 1);
    CHECK_EQ_INT(w.code, CORM_ECANCELLED);
    lend_clear(&w);
    corm_query_free(q);
}

/* ---- a host loop from the watch callback alone --------------------------- */

enum { MAXFD = 64, NPOOLREQ = 200 };

typedef struct watched {
    int fd[MAXFD];
    int ev[MAXFD];
    int n;
    int reports;
    int removals;
    int max_watched;
    int bad;   /* a report that made no sense */
} watched;

static void on_watch(void *ud, int fd, int events)
{
    watched *w = ud;
    w->reports++;
    if (fd < 0 || (events & ~(CORM_READ | CORM_WRITE)))
        w->bad++;
    int i = 0;
    while (i < w->n && w->fd[i] != fd)
        i++;
    if (events == 0) {
        w->removals++;
        if (i < w->n) {
            w->fd[i] = w->fd[w->n - 1];
            w->ev[i] = w->ev[w->n - 1];
            w->n--;
        }
        return;
    }
    if (i == w->n) {
        if (w->n == MAXFD) {
            w->bad++;
            return;
        }
        w->n++;
    }
    w->fd[i] = fd;
    w->ev[i] = events;
    if (w->n > w->max_watched)
        w->max_watched = w->n;
}

typedef struct preq {
    int64_t n;
    int done;
    int ok;
    int pid;
    char why[128];
} preq;

static void preq_done(void *ud, corm_result *res, const corm_error *err)
{
    preq *r = ud;
    r->done++;
    if (err) {
        snprintf(r->why, sizeof r->why, "%s: %s", corm_errname(err->code), err->message);
        return;
    }
    int64_t v = 0, pid = 0;
    if (corm_result_get_int64(res, 0, 0, &v, NULL) == 0 &&
        corm_result_get_int64(res, 0, 1, &pid, NULL) == 0 && v == r->n * 3) {
        r->ok = 1;
        r->pid = (int)pid;
    } else {
        snprintf(r->why, sizeof r->why, "got %lld for %lld", (long long)v, (long long)r->n);
    }
}

/* One round of a host loop built only from the watch reports: poll the
 * reported sockets, step each ready one, or step with -1 on a timeout. */
static void watch_wait(corm_pool *p, watched *w, int max_ms)
{
    struct pollfd fds[MAXFD];
    int n = w->n;
    for (int i = 0; i < n; i++) {
        fds[i].fd = w->fd[i];
        fds[i].events = th_poll_events(w->ev[i]);
        fds[i].revents = 0;
    }
    int t = corm_pool_timeout(p);
    if (t < 0 || t > max_ms)
        t = max_ms;
    int ready = poll(fds, (nfds_t)n, t);
    corm_error err = CORM_ERROR_INIT;
    if (ready > 0) {
        for (int i = 0; i < n; i++)
            if (fds[i].revents)
                CHECK_OK(corm_pool_step(p, fds[i].fd, &err), &err);
    } else {
        CHECK_OK(corm_pool_step(p, -1, &err), &err);
    }
}

static void watch_drive(corm_pool *p, watched *w, int (*done)(void *), void *arg, int limit_ms)
{
    int64_t end = th_now_ms() + limit_ms;
    while (!done(arg)) {
        CHECK_MSG(th_now_ms() < end, "watch-driven pool: no completion within %d ms "
                  "(%d sockets watched, size %d)", limit_ms, w->n, corm_pool_size(p));
        watch_wait(p, w, 50);
    }
}

TEST(pool_driven_by_watch_callback_200_requests)
{
    corm_pool *p = open_pool(4, 4);
    watched w;
    memset(&w, 0, sizeof w);
    corm_pool_set_watch(p, on_watch, &w);
    corm_error err = CORM_ERROR_INIT;
    static preq reqs[NPOOLREQ];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < NPOOLREQ; i++) {
        corm_query *q = NULL;
        CHECK_OK(corm_query_sql(&q, "SELECT $1::int8 * 3, pg_backend_pid()", &err), &err);
        reqs[i].n = i - 50;
        CHECK_OK(corm_query_bind_int64(q, reqs[i].n, &err), &err);
        CHECK_OK(corm_pool_submit(p, q, preq_done, &reqs[i], NULL, &err), &err);
        corm_query_free(q);
    }
    CHECK(w.n > 0);   /* sockets were reported */

    int64_t end = th_now_ms() + 60000;
    int done = 0;
    while (done < NPOOLREQ) {
        CHECK_MSG(th_now_ms() < end, "only %d of %d done", done, NPOOLREQ);
        struct pollfd fds[MAXFD];
        int n = w.n;
        for (int i = 0; i < n; i++) {
            fds[i].fd = w.fd[i];
            fds[i].events = th_poll_events(w.ev[i]);
            fds[i].revents = 0;
        }
        int t = corm_pool_timeout(p);
        if (t < 0 || t > 1000)
            t = 1000;   /* only a guard: progress must come from the reports */
        int ready = poll(fds, (nfds_t)n, t);
        CHECK(ready >= 0 || errno == EINTR);
        if (ready > 0) {
            for (int i = 0; i < n; i++)
                if (fds[i].revents)
                    CHECK_OK(corm_pool_step(p, fds[i].fd, &err), &err);
        } else {
            CHECK_OK(corm_pool_step(p, -1, &err), &err);
        }
        done = 0;
        for (int i = 0; i < NPOOLREQ; i++)
            done += reqs[i].done > 0;
    }
    int pids[8], npids = 0;
    for (int i = 0; i < NPOOLREQ; i++) {
        CHECK_EQ_INT(reqs[i].done, 1);
        CHECK_MSG(reqs[i].ok, "request %d: %s", i, reqs[i].why);
        int k = 0;
        while (k < npids && pids[k] != reqs[i].pid)
            k++;
        if (k == npids) {
            CHECK_MSG(npids < 4, "more than 4 backends served a pool of 4");
            pids[npids++] = reqs[i].pid;
        }
    }
    CHECK_MSG(npids >= 2, "all 200 requests went to %d connection(s)", npids);
    CHECK_EQ_INT(w.bad, 0);
    CHECK(w.max_watched <= 4);
    CHECK_EQ_INT(corm_pool_size(p), 4);
    corm_pool_close(p);
    /* Closing told the host to stop watching every socket. */
    CHECK_MSG(w.n == 0, "%d sockets still watched after close", w.n);
}

/* The same load with the blocking helpers and corm_pool_wait. */
TEST(pool_200_requests_over_4_connections)
{
    corm_pool *p = open_pool(1, 4);
    corm_error err = CORM_ERROR_INIT;
    static preq reqs[NPOOLREQ];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < NPOOLREQ; i++) {
        corm_query *q = NULL;
        CHECK_OK(corm_query_sql(&q, "SELECT $1::int8 * 3, pg_backend_pid()", &err), &err);
        reqs[i].n = i * 1000;
        CHECK_OK(corm_query_bind_int64(q, reqs[i].n, &err), &err);
        CHECK_OK(corm_pool_submit(p, q, preq_done, &reqs[i], NULL, &err), &err);
        corm_query_free(q);
    }
    CHECK(corm_pool_size(p) <= 4);
    int64_t end = th_now_ms() + 60000;
    for (;;) {
        int done = 0;
        for (int i = 0; i < NPOOLREQ; i++)
            done += reqs[i].done > 0;
        if (done == NPOOLREQ)
            break;
        CHECK_MSG(th_now_ms() < end, "only %d of %d done", done, NPOOLREQ);
        CHECK_OK(corm_pool_wait(p, 100, &err), &err);
        CHECK(corm_pool_size(p) <= 4);
    }
    for (int i = 0; i < NPOOLREQ; i++) {
        CHECK_EQ_INT(reqs[i].done, 1);
        CHECK_MSG(reqs[i].ok, "request %d: %s", i, reqs[i].why);
    }
    corm_result *r = NULL;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT 77", &err), &err);
    CHECK_OK(corm_pool_exec(p, q, &r, &err), &err);
    int64_t v;
    CHECK_OK(corm_result_get_int64(r, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v, 77);
    corm_result_free(r);
    CHECK_OK(corm_pool_exec(p, q, NULL, &err), &err);   /* result discarded */
    corm_query_free(q);
    CHECK_OK(corm_query_sql(&q, "SELECT 1 / 0", &err), &err);
    CHECK_ERR(corm_pool_exec(p, q, &r, &err), CORM_EDATA, &err);
    CHECK(r == NULL);
    CHECK_STR(err.sqlstate, "22012");
    corm_error_clear(&err);
    corm_query_free(q);
    corm_pool_close(p);
}

/* ---- the server stopped and started again -------------------------------- */

static void pgtmp(const char *verb)
{
    const char *tool = ctest_env("CORM_TEST_PGTMP");
    const char *dir = ctest_env("CORM_TEST_PGDIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s '%s' >/dev/null 2>&1", tool, verb, dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed (%d)", cmd, rc);
}

static int all_preq_done_1(void *arg)
{
    return ((preq *)arg)->done > 0;
}

static int all_preq_done(void *arg)
{
    preq *r = arg;
    for (int i = 0; i < 5; i++)
        if (!r[i].done)
            return 0;
    return 1;
}

TEST(pool_survives_server_restart)
{
    ctest_env("CORM_TEST_PGTMP");
    ctest_env("CORM_TEST_PGDIR");
    corm_pool *p = open_pool(2, 4);
    /* A watcher too: sockets of broken members must be withdrawn. */
    watched w;
    memset(&w, 0, sizeof w);
    corm_pool_set_watch(p, on_watch, &w);
    wait_idle(p, 2, 15000);
    corm_error err = CORM_ERROR_INIT;

    /* Requests in flight when the server goes away. */
    preq inflight[5];
    memset(inflight, 0, sizeof inflight);
    corm_query *sleepq = NULL;
    CHECK_OK(corm_query_sql(&sleepq, "SELECT 0::int8, pg_backend_pid() FROM pg_sleep(30)",
                            &err),
             &err);
    for (int i = 0; i < 5; i++)
        CHECK_OK(corm_pool_submit(p, sleepq, preq_done, &inflight[i], NULL, &err), &err);
    corm_query_free(sleepq);
    for (int i = 0; i < 20; i++)
        watch_wait(p, &w, 10);
    int old_pids[4], nold = 0;
    corm_conn *probe = th_connect();
    {
        corm_result *r = NULL;
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT pid FROM pg_stat_activity WHERE query LIKE '%%FROM pg_sleep(30)'"
                 " AND pid <> pg_backend_pid()");
        CHECK_OK(corm_conn_exec_sql(probe, sql, &r, &err), &err);
        for (int i = 0; i < corm_result_nrows(r) && nold < 4; i++) {
            int64_t pid;
            CHECK_OK(corm_result_get_int64(r, i, 0, &pid, &err), &err);
            old_pids[nold++] = (int)pid;
        }
        corm_result_free(r);
    }
    corm_conn_close(probe);

    pgtmp("pause");
    int64_t t0 = th_now_ms();
    watch_drive(p, &w, all_preq_done, inflight, 15000);
    for (int i = 0; i < 5; i++) {
        CHECK_MSG(!inflight[i].ok, "request %d succeeded with the server down", i);
        CHECK_MSG(strncmp(inflight[i].why, "connection:", 11) == 0, "request %d: %s", i,
                  inflight[i].why);
    }
    CHECK(th_now_ms() - t0 < 15000);

    /* While it is down: requests and acquires fail, none hangs. */
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int8 * 3, pg_backend_pid()", &err), &err);
    CHECK_OK(corm_query_bind_int64(q, 5, &err), &err);
    for (int round = 0; round < 3; round++) {
        preq down;
        memset(&down, 0, sizeof down);
        down.n = 5;
        int rc = corm_pool_submit(p, q, preq_done, &down, NULL, &err);
        if (rc < 0) {
            CHECK_EQ_INT(rc, CORM_ECONNECTION);
            corm_error_clear(&err);
        } else {
            int64_t end = th_now_ms() + 15000;
            while (!down.done) {
                CHECK_MSG(th_now_ms() < end, "a request hangs while the server is down");
                watch_wait(p, &w, 50);
            }
            CHECK(!down.ok);
            CHECK_MSG(strncmp(down.why, "connection:", 11) == 0, "%s", down.why);
        }
    }
    lend l;
    memset(&l, 0, sizeof l);
    CHECK_OK(corm_pool_acquire(p, 0, on_lend, &l, NULL, &err), &err);
    watch_drive(p, &w, lend_done, &l, 15000);
    CHECK_EQ_INT(l.code, CORM_ECONNECTION);
    CHECK(l.conn == NULL);
    lend_clear(&l);

    pgtmp("resume");
    /* Back: within a few seconds the pool serves again, from new backends. */
    int64_t end = th_now_ms() + 20000;
    preq back;
    for (;;) {
        CHECK_MSG(th_now_ms() < end, "the pool did not recover after resume");
        memset(&back, 0, sizeof back);
        back.n = 5;
        int rc = corm_pool_submit(p, q, preq_done, &back, NULL, &err);
        corm_error_clear(&err);
        if (rc == 0) {
            int64_t e2 = th_now_ms() + 15000;
            while (!back.done) {
                CHECK_MSG(th_now_ms() < e2, "a request hangs after resume");
                watch_wait(p, &w, 50);
            }
            if (back.ok)
                break;
        }
        for (int i = 0; i < 4; i++)
            watch_wait(p, &w, 50);
    }
    for (int i = 0; i < nold; i++)
        CHECK(back.pid != old_pids[i]);
    /* Several more, all fine; the pool is back to at least its minimum. */
    for (int i = 0; i < 10; i++) {
        corm_result *r = NULL;
        CHECK_OK(corm_pool_exec(p, q, &r, &err), &err);
        int64_t v;
        CHECK_OK(corm_result_get_int64(r, 0, 0, &v, &err), &err);
        CHECK_EQ_INT(v, 15);
        corm_result_free(r);
    }
    wait_idle(p, corm_pool_size(p), 15000);
    CHECK(corm_pool_size(p) >= 2 && corm_pool_size(p) <= 4);
    corm_conn *c = borrow(p, 5000);
    CHECK_EQ_INT(th_int(c, "SELECT 1"), 1);
    give_back(p, c);
    corm_query_free(q);
    CHECK_EQ_INT(w.bad, 0);
    CHECK(w.n <= corm_pool_size(p));
    corm_pool_close(p);
    CHECK_MSG(w.n == 0, "%d sockets still watched after close", w.n);
}

/* A member whose backend is killed is replaced; its requests fail with
 * CORM_ECONNECTION, later ones run on a new connection. */
TEST(pool_replaces_a_killed_member)
{
    corm_pool *p = open_pool(1, 1);
    watched w;
    memset(&w, 0, sizeof w);
    corm_pool_set_watch(p, on_watch, &w);
    wait_idle(p, 1, 15000);
    corm_conn *obs = th_connect();
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT 0::int8, pg_backend_pid() FROM pg_sleep(30)", &err),
             &err);
    preq victim;
    memset(&victim, 0, sizeof victim);
    CHECK_OK(corm_pool_submit(p, q, preq_done, &victim, NULL, &err), &err);
    corm_query_free(q);
    int pid = 0;
    int64_t end = th_now_ms() + 10000;
    while (!pid) {
        CHECK_MSG(th_now_ms() < end, "the sleep never started");
        watch_wait(p, &w, 20);
        pid = (int)th_int(obs, "SELECT coalesce(max(pid), 0) FROM pg_stat_activity"
                               " WHERE query LIKE '%FROM pg_sleep(30)' AND state = 'active'"
                               " AND pid <> pg_backend_pid()");
    }
    CHECK_EQ_INT(th_intf(obs, "SELECT pg_terminate_backend(%d)::int", pid), 1);
    watch_drive(p, &w, all_preq_done_1, &victim, 10000);
    CHECK(!victim.ok);
    CHECK_MSG(strncmp(victim.why, "connection:", 11) == 0, "%s", victim.why);
    /* The next request gets a new backend: the server is up, so it must
     * not fail (the pool has not even tried to reconnect yet). */
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int8 * 3, pg_backend_pid()", &err), &err);
    CHECK_OK(corm_query_bind_int64(q, 2, &err), &err);
    preq next;
    memset(&next, 0, sizeof next);
    next.n = 2;
    CHECK_OK(corm_pool_submit(p, q, preq_done, &next, NULL, &err), &err);
    watch_drive(p, &w, all_preq_done_1, &next, 15000);
    /* Regression: reaping the broken member once set a backoff, and with
     * no live member left the pool failed requests and waiters with "server
     * unreachable" before attempting any new connection. */
    CHECK_MSG(next.ok, "first request after the kill: %s", next.why);
    CHECK(next.pid != pid);
    CHECK_EQ_INT(corm_pool_size(p), 1);
    CHECK_EQ_INT(w.bad, 0);
    CHECK_EQ_INT(w.n, 1);   /* the new socket, and only it */
    corm_query_free(q);
    corm_conn_close(obs);
    corm_pool_close(p);
    CHECK_EQ_INT(w.n, 0);
}

/* A lent connection that broke is discarded on release, not lent again. */
TEST(pool_release_of_a_broken_connection)
{
    corm_pool *p = open_pool(1, 1);
    corm_conn *c = borrow(p, 0);
    int pid = corm_conn_backend_pid(c);
    corm_conn *obs = th_connect();
    CHECK_EQ_INT(th_intf(obs, "SELECT pg_terminate_backend(%d)::int", pid), 1);
    corm_conn_close(obs);
    corm_error err = CORM_ERROR_INIT;
    int64_t end = th_now_ms() + 10000;
    while (corm_conn_state(c) != CORM_CONN_BROKEN) {
        CHECK_MSG(th_now_ms() < end, "the lent connection never noticed");
        int rc = corm_conn_exec_sql(c, "SELECT 1", NULL, &err);
        if (rc < 0)
            CHECK_EQ_INT(rc, CORM_ECONNECTION);
        corm_error_clear(&err);
    }
    give_back(p, c);
    /* The server is up: the acquire must not fail (regression, as in
     * pool_replaces_a_killed_member). */
    c = borrow(p, 10000);
    CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_READY);
    CHECK(corm_conn_backend_pid(c) != pid);
    CHECK_EQ_INT(th_int(c, "SELECT 1"), 1);
    give_back(p, c);
    corm_pool_close(p);
}

/* pool_pipeline_depth: a busy connection makes the pool open another
 * (below max); pool_min_size = 0 opens nothing until asked. */
TEST(pool_depth_and_lazy_open)
{
    corm_options opt;
    corm_options_init(&opt);
    opt.pool_min_size = 0;
    opt.pool_max_size = 2;
    opt.pool_pipeline_depth = 1;
    corm_error err = CORM_ERROR_INIT;
    corm_pool *p = NULL;
    CHECK_OK(corm_pool_open(&p, ctest_dsn(), &opt, &err), &err);
    CHECK_EQ_INT(corm_pool_size(p), 0);
    for (int i = 0; i < 5; i++)
        corm_pool_wait(p, 10, NULL);
    CHECK_EQ_INT(corm_pool_size(p), 0);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT 0::int8, pg_backend_pid() FROM pg_sleep(0.2)", &err),
             &err);
    preq r[2];
    memset(r, 0, sizeof r);
    CHECK_OK(corm_pool_submit(p, q, preq_done, &r[0], NULL, &err), &err);
    CHECK_OK(corm_pool_submit(p, q, preq_done, &r[1], NULL, &err), &err);
    CHECK_EQ_INT(corm_pool_size(p), 2);
    th_pool_drive(p, all_preq_done_1, &r[0], 10000);
    th_pool_drive(p, all_preq_done_1, &r[1], 10000);
    CHECK_MSG(r[0].ok && r[1].ok, "%s / %s", r[0].why, r[1].why);
    CHECK(r[0].pid != r[1].pid);
    /* At max, a third goes to an existing connection anyway. */
    preq third;
    memset(&third, 0, sizeof third);
    preq fourth;
    memset(&fourth, 0, sizeof fourth);
    preq fifth;
    memset(&fifth, 0, sizeof fifth);
    CHECK_OK(corm_pool_submit(p, q, preq_done, &third, NULL, &err), &err);
    CHECK_OK(corm_pool_submit(p, q, preq_done, &fourth, NULL, &err), &err);
    CHECK_OK(corm_pool_submit(p, q, preq_done, &fifth, NULL, &err), &err);
    CHECK_EQ_INT(corm_pool_size(p), 2);
    th_pool_drive(p, all_preq_done_1, &third, 10000);
    th_pool_drive(p, all_preq_done_1, &fourth, 10000);
    th_pool_drive(p, all_preq_done_1, &fifth, 10000);
    CHECK(third.ok && fourth.ok && fifth.ok);
    corm_query_free(q);
    corm_pool_close(p);
}
