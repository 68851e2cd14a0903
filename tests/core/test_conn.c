/*
 * test_conn.c - opening connections: the non-blocking handshake driven by a
 * host poll loop, refusal, timeouts, bad conninfo and options, notices.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <libpq-fe.h>

/* A TCP socket on 127.0.0.1 at a free port; listening or only bound (then
 * connecting to it is refused). Returns the fd; *port gets the port. */
static int local_socket(int do_listen, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    if (do_listen)
        CHECK(listen(fd, 8) == 0);
    return fd;
}

static void local_conninfo(char *buf, size_t size, int port)
{
    snprintf(buf, size, "host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable",
             port);
}

TEST(version_compile_and_run_time)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", CORM_VERSION_MAJOR, CORM_VERSION_MINOR,
             CORM_VERSION_PATCH);
    CHECK_STR(corm_version(), want);
    CHECK_EQ_INT(corm_version_num(), CORM_VERSION_NUM);
}

/* The whole handshake and a request, driven by our own poll loop from the
 * three calls a host loop has: fd, events, timeout, then step. A request
 * submitted before the connection is ready waits for it. */
TEST(connect_nonblocking_own_poll_loop)
{
    const char *dsn = ctest_dsn();
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    CHECK_OK(corm_conn_open(&c, dsn, NULL, &err), &err);
    CHECK(c != NULL);
    int st = corm_conn_state(c);
    CHECK(st == CORM_CONN_CONNECTING || st == CORM_CONN_READY);

    th_reply rep;
    th_reply_init(&rep);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int8 + 1 AS n", &err), &err);
    CHECK_OK(corm_query_bind_int64(q, 41, &err), &err);
    corm_request_id id = 0;
    CHECK_OK(corm_conn_submit(c, q, th_on_done, &rep, &id, &err), &err);
    corm_query_free(q);
    CHECK(id != 0);
    CHECK_EQ_INT(rep.done, 0);   /* never from inside submit */
    CHECK_EQ_INT(corm_conn_pending(c), 1);

    int connecting_rounds = 0;
    int64_t end = th_now_ms() + 20000;
    while (!rep.done) {
        CHECK_MSG(th_now_ms() < end, "no result within 20 s (state %d)", corm_conn_state(c));
        /* The socket can change while connecting: read it every round. */
        int fd = corm_conn_fd(c);
        int ev = corm_conn_events(c);
        int t = corm_conn_timeout(c);
        if (corm_conn_state(c) == CORM_CONN_CONNECTING) {
            connecting_rounds++;
            CHECK(fd >= 0);
            CHECK(ev == CORM_READ || ev == CORM_WRITE);
            /* The default connect timeout (10 s) is a deadline. */
            CHECK(t >= 0 && t <= 10000);
        } else {
            CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_READY);
            CHECK(fd >= 0);
            CHECK(ev & CORM_READ);   /* READ whenever open */
        }
        struct pollfd p = {.fd = fd, .events = th_poll_events(ev), .revents = 0};
        int n = poll(&p, 1, t < 0 || t > 1000 ? 1000 : t);
        CHECK(n >= 0 || errno == EINTR);
        CHECK_OK(corm_conn_step(c, &err), &err);
    }
    TH_REPLY_OK(&rep);
    int64_t v = 0;
    CHECK_OK(corm_result_get_int64(rep.res, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v, 42);
    CHECK_STR(corm_result_colname(rep.res, 0), "n");
    CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_READY);
    CHECK(corm_conn_backend_pid(c) > 0);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    CHECK(corm_conn_events(c) & CORM_READ);
    /* No request with a deadline and connected: nothing to wake up for. */
    CHECK_EQ_INT(corm_conn_timeout(c), -1);
    (void)connecting_rounds;
    th_reply_clear(&rep);
    corm_conn_close(c);
}

/* A port where nothing listens: the failure comes either from open at once
 * or through step and the callbacks of every request, never as a hang. */
TEST(connect_refused_port)
{
    int port;
    int sock = local_socket(0, &port);   /* bound, not listening: refused */
    char ci[256];
    local_conninfo(ci, sizeof ci, port);
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    corm_options opt;
    corm_options_init(&opt);
    opt.connect_timeout_ms = 5000;
    int rc = corm_conn_open(&c, ci, &opt, &err);
    if (rc < 0) {
        CHECK_EQ_INT(rc, CORM_ECONNECTION);
        CHECK(c == NULL);
        CHECK(err.message != NULL);
        corm_error_clear(&err);
    } else {
        th_reply reps[2];
        th_reply_init(&reps[0]);
        th_reply_init(&reps[1]);
        CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", th_on_done, &reps[0], NULL, &err), &err);
        CHECK_OK(corm_conn_submit_sql(c, "SELECT 2", th_on_done, &reps[1], NULL, &err), &err);
        th_drive_stats ds = {0, 0, 0, 0, CORM_ERROR_INIT};
        th_replies rs = {reps, 2};
        th_drive(c, th_replies_done, &rs, 5000, &ds);
        TH_REPLY_ERR(&reps[0], CORM_ECONNECTION);
        TH_REPLY_ERR(&reps[1], CORM_ECONNECTION);
        CHECK(reps[0].seq < reps[1].seq);
        /* Step said so, exactly once. */
        CHECK_EQ_INT(ds.step_errors, 1);
        CHECK_EQ_INT(ds.last_step_rc, CORM_ECONNECTION);
        CHECK_EQ_INT(ds.step_err.code, CORM_ECONNECTION);
        CHECK(ds.step_err.message != NULL);
        corm_error_clear(&ds.step_err);
        CHECK_OK(corm_conn_step(c, &err), &err);
        CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_BROKEN);
        CHECK_EQ_INT(corm_conn_fd(c), -1);
        CHECK_EQ_INT(corm_conn_events(c), 0);
        CHECK_EQ_INT(corm_conn_pending(c), 0);
        /* A broken connection refuses new requests without calling back. */
        th_reply late;
        th_reply_init(&late);
        CHECK_ERR(corm_conn_submit_sql(c, "SELECT 3", th_on_done, &late, NULL, &err),
                  CORM_ECONNECTION, &err);
        CHECK_EQ_INT(late.done, 0);
        corm_error_clear(&err);
        th_reply_clear(&reps[0]);
        th_reply_clear(&reps[1]);
        corm_conn_close(c);
    }
    /* The blocking helper gives the same class and leaves *out NULL. */
    c = (corm_conn *)&err;   /* garbage that must be overwritten */
    CHECK_ERR(corm_conn_connect(&c, ci, &opt, &err), CORM_ECONNECTION, &err);
    CHECK(c == NULL);
    CHECK(err.message != NULL);
    corm_error_clear(&err);
    close(sock);
}

/* A server that accepts and hangs up during the handshake: the failure
 * always arrives through step and the request callbacks. */
TEST(connect_server_hangs_up)
{
    int port;
    int lsock = local_socket(1, &port);
    char ci[256];
    local_conninfo(ci, sizeof ci, port);
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    CHECK_OK(corm_conn_open(&c, ci, NULL, &err), &err);
    th_reply rep;
    th_reply_init(&rep);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", th_on_done, &rep, NULL, &err), &err);
    int step_errors = 0, step_rc = 0;
    int64_t end = th_now_ms() + 10000;
    while (!rep.done) {
        CHECK_MSG(th_now_ms() < end, "no failure within 10 s");
        int fd = corm_conn_fd(c), ev = corm_conn_events(c);
        struct pollfd p[2] = {{.fd = fd, .events = th_poll_events(ev), .revents = 0},
                              {.fd = lsock, .events = POLLIN, .revents = 0}};
        poll(p, 2, 100);
        if (p[1].revents & POLLIN) {
            int s = accept(lsock, NULL, NULL);
            if (s >= 0)
                close(s);
        }
        corm_error e = CORM_ERROR_INIT;
        int rc = corm_conn_step(c, &e);
        if (rc < 0) {
            step_errors++;
            step_rc = rc;
        }
        corm_error_clear(&e);
    }
    TH_REPLY_ERR(&rep, CORM_ECONNECTION);
    CHECK_EQ_INT(step_errors, 1);
    CHECK_EQ_INT(step_rc, CORM_ECONNECTION);
    CHECK_EQ_INT(corm_conn_state(c), CORM_CONN_BROKEN);
    th_reply_clear(&rep);
    corm_conn_close(c);
    close(lsock);
}

/* A server that never answers the handshake (the listen backlog accepts the
 * TCP connection, nobody reads): connect_timeout_ms ends the wait. */
TEST(connect_timeout_silent_server)
{
    int port;
    int lsock = local_socket(1, &port);
    char ci[256];
    local_conninfo(ci, sizeof ci, port);
    corm_options opt;
    corm_options_init(&opt);
    opt.connect_timeout_ms = 300;
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    int64_t t0 = th_now_ms();
    CHECK_OK(corm_conn_open(&c, ci, &opt, &err), &err);
    CHECK(corm_conn_timeout(c) >= 0 && corm_conn_timeout(c) <= 300);
    th_reply rep;
    th_reply_init(&rep);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", th_on_done, &rep, NULL, &err), &err);
    th_drive_stats ds = {0, 0, 0, 0, CORM_ERROR_INIT};
    th_drive(c, th_reply_done, &rep, 5000, &ds);
    int64_t elapsed = th_now_ms() - t0;
    TH_REPLY_ERR(&rep, CORM_ECONNECTION);
    CHECK_MSG(elapsed >= 250, "gave up after %lld ms, before the 300 ms timeout",
              (long long)elapsed);
    CHECK_MSG(elapsed < 5000, "took %lld ms", (long long)elapsed);
    CHECK_EQ_INT(ds.step_errors, 1);
    CHECK_EQ_INT(ds.last_step_rc, CORM_ECONNECTION);
    corm_error_clear(&ds.step_err);
    th_reply_clear(&rep);
    corm_conn_close(c);

    /* The blocking helper honours the same deadline. */
    t0 = th_now_ms();
    CHECK_ERR(corm_conn_connect(&c, ci, &opt, &err), CORM_ECONNECTION, &err);
    CHECK(c == NULL);
    elapsed = th_now_ms() - t0;
    CHECK_MSG(elapsed < 5000, "corm_conn_connect took %lld ms", (long long)elapsed);
    corm_error_clear(&err);
    close(lsock);
}

/* A non-routable address: either the network drops the SYN (the timeout
 * acts) or the namespace refuses at once; CORM_ECONNECTION both ways and
 * never a hang. */
TEST(connect_timeout_blackhole_address)
{
    corm_options opt;
    corm_options_init(&opt);
    opt.connect_timeout_ms = 300;
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    const char *ci = "hostaddr=10.255.255.1 port=5432 user=postgres dbname=postgres "
                     "sslmode=disable";
    int64_t t0 = th_now_ms();
    int rc = corm_conn_open(&c, ci, &opt, &err);
    if (rc < 0) {
        CHECK_EQ_INT(rc, CORM_ECONNECTION);
        CHECK(c == NULL);
        corm_error_clear(&err);
    } else {
        th_reply rep;
        th_reply_init(&rep);
        CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", th_on_done, &rep, NULL, &err), &err);
        th_drive_stats ds = {0, 0, 0, 0, CORM_ERROR_INIT};
        th_drive(c, th_reply_done, &rep, 5000, &ds);
        TH_REPLY_ERR(&rep, CORM_ECONNECTION);
        CHECK_EQ_INT(ds.last_step_rc, CORM_ECONNECTION);
        corm_error_clear(&ds.step_err);
        th_reply_clear(&rep);
        corm_conn_close(c);
    }
    int64_t elapsed = th_now_ms() - t0;
    CHECK_MSG(elapsed < 5000, "took %lld ms", (long long)elapsed);
}

/* Conninfo that libpq cannot parse fails in corm_conn_open, *out NULL. */
TEST(connect_bad_conninfo)
{
    static const char *const bad[] = {
        "this is not a conninfo",
        "host=127.0.0.1 no_such_option=1",
        "postgresql://127.0.0.1:notaport/postgres",
        "postgresql://[::1/postgres",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corm_error err = CORM_ERROR_INIT;
        corm_conn *c = (corm_conn *)&err;
        int rc = corm_conn_open(&c, bad[i], NULL, &err);
        CHECK_MSG(rc == CORM_ECONNECTION, "%s: got %d (%s)", bad[i], rc,
                  err.message ? err.message : "");
        CHECK(c == NULL);
        CHECK(err.message != NULL && err.message[0]);
        CHECK_EQ_INT(err.code, CORM_ECONNECTION);
        corm_error_clear(&err);

        corm_pool *p = (corm_pool *)&err;
        rc = corm_pool_open(&p, bad[i], NULL, &err);
        CHECK_MSG(rc == CORM_ECONNECTION, "pool %s: got %d", bad[i], rc);
        CHECK(p == NULL);
        corm_error_clear(&err);
    }
}

/* The blocking constructor follows the same rule as corm_conn_open: on
 * failure *out is NULL, whichever way it failed. */
TEST(connect_helper_failure_leaves_out_null)
{
    static const char *const bad[] = {
        "this is not a conninfo",
        "host=127.0.0.1 no_such_option=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corm_error err = CORM_ERROR_INIT;
        corm_conn *c = (corm_conn *)&err;   /* garbage that must be overwritten */
        int rc = corm_conn_connect(&c, bad[i], NULL, &err);
        CHECK_MSG(rc == CORM_ECONNECTION, "connect %s: got %d", bad[i], rc);
        CHECK(err.message != NULL);
        corm_error_clear(&err);
        /* Regression: the helper once returned early without resetting *out. */
        CHECK_MSG(c == NULL, "%s: *out left as %p", bad[i], (void *)c);
    }
    /* Bad options: misuse, *out NULL as well. */
    corm_options opt;
    corm_options_init(&opt);
    opt.statement_cache_size = 0;
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = (corm_conn *)&err;
    CHECK_ERR(corm_conn_connect(&c, "host=127.0.0.1", &opt, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK(c == NULL);
}

/* Options that make no sense are refused before anything is allocated. */
TEST(bad_options_rejected)
{
    struct { const char *what; corm_options o; } cases[6];
    for (int i = 0; i < 6; i++)
        corm_options_init(&cases[i].o);
    cases[0].what = "statement_cache_size = 0";
    cases[0].o.statement_cache_size = 0;
    cases[1].what = "connect_timeout_ms < 0";
    cases[1].o.connect_timeout_ms = -1;
    cases[2].what = "pool_min_size > pool_max_size";
    cases[2].o.pool_min_size = 5;
    cases[2].o.pool_max_size = 2;
    cases[3].what = "pool_max_size = 0";
    cases[3].o.pool_max_size = 0;
    cases[3].o.pool_min_size = 0;
    cases[4].what = "pool_pipeline_depth = 0";
    cases[4].o.pool_pipeline_depth = 0;
    cases[5].what = "pool_min_size < 0";
    cases[5].o.pool_min_size = -1;
    /* No server is needed: the options are checked first. */
    const char *ci = "host=127.0.0.1 port=1 user=postgres dbname=postgres";
    for (int i = 0; i < 6; i++) {
        corm_error err = CORM_ERROR_INIT;
        corm_conn *c = (corm_conn *)&err;
        int rc = corm_conn_open(&c, ci, &cases[i].o, &err);
        CHECK_MSG(rc == CORM_EMISUSE, "conn %s: got %d", cases[i].what, rc);
        CHECK(c == NULL);
        CHECK(err.message != NULL);
        corm_error_clear(&err);
        corm_pool *p = (corm_pool *)&err;
        rc = corm_pool_open(&p, ci, &cases[i].o, &err);
        CHECK_MSG(rc == CORM_EMISUSE, "pool %s: got %d", cases[i].what, rc);
        CHECK(p == NULL);
        corm_error_clear(&err);
    }
}

/* A zeroed corm_options (size 0) means every default; so does NULL. */
TEST(zeroed_options_mean_defaults)
{
    corm_options zero;
    memset(&zero, 0, sizeof zero);
    corm_conn *c = th_connect_opt(&zero);
    CHECK_EQ_INT(th_int(c, "SELECT 5"), 5);
    CHECK_EQ_INT(corm_conn_cached_statements(c), 1);   /* prepared by default */
    corm_conn_close(c);
    c = th_connect_opt(NULL);
    CHECK_EQ_INT(th_int(c, "SELECT 6"), 6);
    corm_conn_close(c);
}

typedef struct notices {
    int n;
    char severity[32];
    char sqlstate[6];
    char message[128];
} notices;

static void on_notice(void *ud, const char *severity, const char *sqlstate,
                      const char *message)
{
    notices *ns = ud;
    ns->n++;
    snprintf(ns->severity, sizeof ns->severity, "%s", severity);
    snprintf(ns->sqlstate, sizeof ns->sqlstate, "%s", sqlstate);
    snprintf(ns->message, sizeof ns->message, "%s", message);
}

/* Server notices go to options.notice, never to stderr by default. */
TEST(notices_reach_the_callback)
{
    notices ns;
    memset(&ns, 0, sizeof ns);
    corm_options opt;
    corm_options_init(&opt);
    opt.notice = on_notice;
    opt.notice_ud = &ns;
    corm_conn *c = th_connect_opt(&opt);
    th_exec(c, "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$");
    CHECK_EQ_INT(ns.n, 1);
    CHECK_STR(ns.severity, "NOTICE");
    CHECK_STR(ns.sqlstate, "00000");
    CHECK_STR(ns.message, "hello 42");
    th_exec(c, "DO $$ BEGIN RAISE WARNING 'careful' USING ERRCODE = '01000'; END $$");
    CHECK_EQ_INT(ns.n, 2);
    CHECK_STR(ns.severity, "WARNING");
    CHECK_STR(ns.message, "careful");
    corm_conn_close(c);

    /* Without a callback the notice is dropped quietly. */
    c = th_connect();
    th_exec(c, "DO $$ BEGIN RAISE NOTICE 'nobody listens'; END $$");
    corm_conn_close(c);
}

/* Builds "host=127.0.0.1,H port=P_refused,P ..." from DATABASE_URL: libpq
 * tries the refused address first, so the socket changes while connecting. */
static void two_host_conninfo(char *buf, size_t size, int refused_port)
{
    const char *dsn = ctest_dsn();
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &msg);
    CHECK_MSG(opts != NULL, "cannot parse DATABASE_URL: %s", msg ? msg : "?");
    const char *host = "127.0.0.1", *port = "5432", *user = NULL, *db = NULL, *pw = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr"))
            host = o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
        else if (!strcmp(o->keyword, "user"))
            user = o->val;
        else if (!strcmp(o->keyword, "dbname"))
            db = o->val;
        else if (!strcmp(o->keyword, "password"))
            pw = o->val;
    }
    int n = snprintf(buf, size, "host=127.0.0.1,%s port=%d,%s sslmode=disable", host,
                     refused_port, port);
    if (user)
        n += snprintf(buf + n, size - (size_t)n, " user=%s", user);
    if (db)
        n += snprintf(buf + n, size - (size_t)n, " dbname=%s", db);
    if (pw)
        snprintf(buf + n, size - (size_t)n, " password=%s", pw);
    PQconninfoFree(opts);
}

TEST(connect_socket_changes_while_connecting)
{
    int port;
    int sock = local_socket(0, &port);
    char ci[512];
    two_host_conninfo(ci, sizeof ci, port);
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    CHECK_OK(corm_conn_open(&c, ci, NULL, &err), &err);
    th_reply r;
    th_reply_init(&r);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 12", th_on_done, &r, NULL, &err), &err);
    th_drive_stats ds = {0, 0, 0, 0, CORM_ERROR_INIT};
    th_drive(c, th_reply_done, &r, 20000, &ds);   /* reads fd every round */
    CHECK_EQ_INT(ds.step_errors, 0);
    TH_REPLY_OK(&r);
    int64_t v;
    CHECK_OK(corm_result_get_int64(r.res, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v, 12);
    th_reply_clear(&r);
    corm_conn_close(c);

    /* A pool follows the change through its watch reports. */
    corm_pool *p = NULL;
    CHECK_OK(corm_pool_open(&p, ci, NULL, &err), &err);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT 13", &err), &err);
    corm_result *res = NULL;
    CHECK_OK(corm_pool_exec(p, q, &res, &err), &err);
    CHECK_OK(corm_result_get_int64(res, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v, 13);
    corm_result_free(res);
    corm_query_free(q);
    corm_pool_close(p);
    close(sock);
}
