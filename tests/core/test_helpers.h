/*
 * test_helpers.h - helpers shared by the engine's C test programs
 * (tests/core/test_*.c): a completion record for callbacks, poll loops built
 * only from corm_conn_fd/events/timeout/step, blocking shortcuts that CHECK,
 * and unique table names. Include after ctest.h; everything is static.
 */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corm.h"
#include "ctest.h"

#define TH_UNUSED __attribute__((unused))

/* Monotonic milliseconds. */
static inline int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- completion records ------------------------------------------------ */

/* What one completion callback received. The result is taken (owned here)
 * and the error deep-copied, so both can be inspected after the callback. */
typedef struct th_reply {
    int done;            /* calls received: exactly 1 once complete */
    int code;            /* err->code, or 0 on success */
    corm_error err;
    corm_result *res;
    int seq;             /* completion order across all th_replies */
} th_reply;

static TH_UNUSED int th_seq_next;

static inline void th_reply_init(th_reply *r)
{
    corm_error e = CORM_ERROR_INIT;
    memset(r, 0, sizeof *r);
    r->err = e;
    r->seq = -1;
}

static TH_UNUSED void th_on_done(void *ud, corm_result *res, const corm_error *err)
{
    th_reply *r = ud;
    r->done++;
    if (r->done > 1)
        return;   /* checked by the case: a second call is a failure */
    r->seq = th_seq_next++;
    if (err) {
        r->code = err->code;
        corm_error_copy(&r->err, err);
    } else {
        r->res = corm_result_take(res);
    }
}

static inline void th_reply_clear(th_reply *r)
{
    corm_error_clear(&r->err);
    corm_result_free(r->res);
    th_reply_init(r);
}

static TH_UNUSED int th_reply_done(void *arg)
{
    return ((th_reply *)arg)->done > 0;
}

typedef struct th_replies {
    th_reply *r;
    int n;
} th_replies;

static TH_UNUSED int th_replies_done(void *arg)
{
    th_replies *rs = arg;
    for (int i = 0; i < rs->n; i++)
        if (!rs->r[i].done)
            return 0;
    return 1;
}

/* A reply that must be a success: checks and returns the result. */
#define TH_REPLY_OK(rep)                                                          \
    do {                                                                          \
        CHECK_EQ_INT((rep)->done, 1);                                             \
        CHECK_MSG((rep)->code == 0, "request failed: %s (%s) [%s]",               \
                  (rep)->err.message ? (rep)->err.message : "?",                  \
                  corm_errname((rep)->code), (rep)->err.sqlstate);                \
        CHECK((rep)->res != NULL);                                                \
    } while (0)

/* A reply that must be a failure with this code. */
#define TH_REPLY_ERR(rep, want)                                                   \
    do {                                                                          \
        CHECK_EQ_INT((rep)->done, 1);                                             \
        CHECK_MSG((rep)->code == (want), "expected %s, got %s: %s [%s]",          \
                  corm_errname(want), corm_errname((rep)->code),                  \
                  (rep)->err.message ? (rep)->err.message : "(no error)",         \
                  (rep)->err.sqlstate);                                           \
        CHECK((rep)->res == NULL);                                                \
        CHECK((rep)->err.message != NULL);                                        \
    } while (0)

/* ---- driving a connection with our own poll loop ------------------------ */

typedef struct th_drive_stats {
    int wakeups;         /* poll() calls */
    int steps;           /* corm_conn_step calls */
    int step_errors;     /* negative returns from step */
    int last_step_rc;
    corm_error step_err; /* the last step failure (caller clears) */
} th_drive_stats;

static inline short th_poll_events(int ev)
{
    return (short)((ev & CORM_READ ? POLLIN : 0) | (ev & CORM_WRITE ? POLLOUT : 0));
}

/*
 * Drives c with poll() on corm_conn_fd/corm_conn_events, waking after
 * corm_conn_timeout, and corm_conn_step, until done(arg) is true. Fails
 * the case when limit_ms passes first (a hang). stats may be NULL.
 */
static TH_UNUSED void th_drive(corm_conn *c, int (*done)(void *), void *arg, int limit_ms,
                     th_drive_stats *stats)
{
    int64_t end = th_now_ms() + limit_ms;
    th_drive_stats local = {0, 0, 0, 0, CORM_ERROR_INIT};
    th_drive_stats *st = stats ? stats : &local;
    while (!done(arg)) {
        int64_t left = end - th_now_ms();
        if (left <= 0)
            FAIL("no completion within %d ms (pending %d, state %d)", limit_ms,
                 corm_conn_pending(c), corm_conn_state(c));
        int fd = corm_conn_fd(c), ev = corm_conn_events(c), t = corm_conn_timeout(c);
        if (t < 0 || t > left)
            t = (int)left;
        if (t > 100 && fd < 0)
            t = 100;
        struct pollfd p = {.fd = fd, .events = th_poll_events(ev), .revents = 0};
        st->wakeups++;
        if (fd >= 0 && ev)
            poll(&p, 1, t);
        else
            poll(NULL, 0, t < 10 ? t : 10);
        corm_error e = CORM_ERROR_INIT;
        st->steps++;
        int rc = corm_conn_step(c, &e);
        if (rc < 0) {
            st->step_errors++;
            st->last_step_rc = rc;
            corm_error_clear(&st->step_err);
            st->step_err = e;
        } else {
            corm_error_clear(&e);
        }
    }
    if (!stats)
        corm_error_clear(&local.step_err);
}

static inline void th_wait_reply(corm_conn *c, th_reply *r, int limit_ms)
{
    th_drive(c, th_reply_done, r, limit_ms, NULL);
}

static inline void th_wait_all(corm_conn *c, th_reply *r, int n, int limit_ms)
{
    th_replies rs = {r, n};
    th_drive(c, th_replies_done, &rs, limit_ms, NULL);
}

/* Drives a pool with corm_pool_wait until done(arg); fails after limit_ms. */
static TH_UNUSED void th_pool_drive(corm_pool *p, int (*done)(void *), void *arg, int limit_ms)
{
    int64_t end = th_now_ms() + limit_ms;
    while (!done(arg)) {
        if (th_now_ms() >= end)
            FAIL("pool: no completion within %d ms (size %d)", limit_ms, corm_pool_size(p));
        corm_error e = CORM_ERROR_INIT;
        corm_pool_wait(p, 50, &e);
        corm_error_clear(&e);
    }
}

/* ---- blocking shortcuts -------------------------------------------------- */

static TH_UNUSED corm_conn *th_connect_opt(const corm_options *opt)
{
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    CHECK_OK(corm_conn_connect(&c, ctest_dsn(), opt, &err), &err);
    CHECK(c != NULL);
    CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_READY);
    return c;
}

static inline corm_conn *th_connect(void)
{
    return th_connect_opt(NULL);
}

/* Runs sql (no parameters) and discards the result; the request must succeed. */
static TH_UNUSED void th_exec(corm_conn *c, const char *sql)
{
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_conn_exec_sql(c, sql, NULL, &err);
    CHECK_MSG(rc == 0, "%s: %s [%s]", sql, err.message ? err.message : "?", err.sqlstate);
}

/* Runs a statement with printf-style SQL text. */
static TH_UNUSED void th_execf(corm_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static TH_UNUSED void th_execf(corm_conn *c, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    th_exec(c, sql);
}

/* Runs sql and returns the int cell (0, 0), which must not be NULL. */
static TH_UNUSED int64_t th_int(corm_conn *c, const char *sql)
{
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    int rc = corm_conn_exec_sql(c, sql, &r, &err);
    CHECK_MSG(rc == 0, "%s: %s [%s]", sql, err.message ? err.message : "?", err.sqlstate);
    CHECK_MSG(corm_result_nrows(r) >= 1, "%s: no row", sql);
    int64_t v = 0;
    rc = corm_result_get_int64(r, 0, 0, &v, &err);
    if (rc < 0) {
        corm_result_free(r);
        CHECK_OK(rc, &err);
    }
    corm_result_free(r);
    return v;
}

static TH_UNUSED int64_t th_intf(corm_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static TH_UNUSED int64_t th_intf(corm_conn *c, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return th_int(c, sql);
}

/* Runs sql and copies the text cell (0, 0) into buf ("(null)" for NULL). */
static TH_UNUSED void th_text(corm_conn *c, const char *sql, char *buf, size_t size)
{
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    int rc = corm_conn_exec_sql(c, sql, &r, &err);
    CHECK_MSG(rc == 0, "%s: %s [%s]", sql, err.message ? err.message : "?", err.sqlstate);
    CHECK_MSG(corm_result_nrows(r) >= 1, "%s: no row", sql);
    if (corm_result_isnull(r, 0, 0) == 1) {
        snprintf(buf, size, "(null)");
    } else {
        const char *s = NULL;
        size_t n = 0;
        rc = corm_result_get_text(r, 0, 0, &s, &n, &err);
        if (rc < 0) {
            corm_result_free(r);
            CHECK_OK(rc, &err);
        }
        snprintf(buf, size, "%.*s", (int)n, s);
    }
    corm_result_free(r);
}

/* A table name no other test process or case uses: prefix, our pid, the
 * backend's pid and a counter. */
static TH_UNUSED void th_name(char *buf, size_t size, corm_conn *c, const char *prefix)
{
    static int counter;
    snprintf(buf, size, "corm_%s_%d_%d_%d", prefix, (int)getpid(),
             c ? corm_conn_backend_pid(c) : 0, ++counter);
}

/* Is the backend `pid` running a statement (pg_stat_activity.state = 'active')? */
static TH_UNUSED int th_backend_active(corm_conn *observer, int pid)
{
    return (int)th_intf(observer,
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND state = 'active'",
                        pid);
}

/* 1 when the server says c's session is outside any transaction block (a
 * SAVEPOINT fails with 25P01), 0 when inside (the savepoint is released
 * again). Asks the server, not the engine's bookkeeping. */
static TH_UNUSED int th_server_idle(corm_conn *c)
{
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_conn_exec_sql(c, "SAVEPOINT corm_test_probe", NULL, &err);
    if (rc < 0) {
        CHECK_MSG(strcmp(err.sqlstate, "25P01") == 0, "SAVEPOINT probe: %s [%s]",
                  err.message ? err.message : "?", err.sqlstate);
        corm_error_clear(&err);
        return 1;
    }
    rc = corm_conn_exec_sql(c, "RELEASE SAVEPOINT corm_test_probe", NULL, &err);
    corm_error_clear(&err);
    return 0;
}

/* Ends the process as a failure if the case is still running after
 * `seconds` (for calls that might never return, where a deadline in a poll
 * loop cannot help). */
static void th_watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: watchdog: the case hung (a call never returned)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

static TH_UNUSED void th_watchdog(unsigned seconds)
{
    signal(SIGALRM, th_watchdog_fired);
    alarm(seconds);
}

/* An allocator for corm_options that ends the process as a failure when
 * libcorm holds more than `limit` bytes: turns runaway growth into a quick
 * failure instead of exhausting the machine. */
typedef struct th_budget {
    size_t live, peak, limit;
} th_budget;

static TH_UNUSED void *th_budget_alloc(void *ud, void *ptr, size_t old, size_t n)
{
    th_budget *b = ud;
    if (n == 0) {
        free(ptr);
        if (ptr)
            b->live -= old;
        return NULL;
    }
    void *p = realloc(ptr, n);
    if (!p)
        return NULL;
    b->live = b->live - (ptr ? old : 0) + n;
    if (b->live > b->peak)
        b->peak = b->live;
    if (b->live > b->limit) {
        fprintf(stderr, "FAIL: libcorm holds %zu bytes, over the case's budget of %zu\n",
                b->live, b->limit);
        _exit(1);
    }
    return p;
}

static TH_UNUSED void th_budget_options(corm_options *opt, th_budget *b, size_t limit)
{
    b->live = b->peak = 0;
    b->limit = limit;
    opt->alloc = th_budget_alloc;
    opt->alloc_ud = b;
}

#endif /* TEST_HELPERS_H */
