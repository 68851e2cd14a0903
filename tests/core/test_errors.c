/*
 * test_errors.c - error codes and names, the SQLSTATE to class table, and
 * every class reached for real from a server or from the engine.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* ---- pure functions ---------------------------------------------------- */

TEST(strerror_and_errname_for_every_code)
{
    static const struct { int code; const char *name, *desc; } map[] = {
#define XX(name, value, lname, desc) {CORM_E##name, lname, desc},
        CORM_ERRNO_MAP(XX)
#undef XX
    };
    size_t n = sizeof map / sizeof map[0];
    CHECK(n >= 13);
    for (size_t i = 0; i < n; i++) {
        CHECK(map[i].code < 0);
        CHECK(map[i].code > CORM__ELAST);
        CHECK_STR(corm_errname(map[i].code), map[i].name);
        CHECK_STR(corm_strerror(map[i].code), map[i].desc);
        for (size_t j = 0; j < i; j++) {
            CHECK(map[i].code != map[j].code);
            CHECK(strcmp(map[i].name, map[j].name) != 0);
        }
    }
    /* The values are stable (append-only enum). */
    CHECK_EQ_INT(CORM_ECONNECTION, -1);
    CHECK_EQ_INT(CORM_ETIMEOUT, -2);
    CHECK_EQ_INT(CORM_ECANCELLED, -3);
    CHECK_EQ_INT(CORM_EINTEGRITY, -4);
    CHECK_EQ_INT(CORM_EDATA, -5);
    CHECK_EQ_INT(CORM_EPROGRAMMING, -6);
    CHECK_EQ_INT(CORM_EMISUSE, -7);
    CHECK_EQ_INT(CORM_ENOMEM, -8);
    CHECK_EQ_INT(CORM_EINTERNAL, -9);
    CHECK_EQ_INT(CORM_EOPERATIONAL, -10);
    CHECK_EQ_INT(CORM_ETRANSACTION, -11);
    CHECK_EQ_INT(CORM_ENOTFOUND, -12);
    CHECK_EQ_INT(CORM_EMULTIPLE, -13);
    CHECK_STR(corm_errname(CORM_OK), "ok");
    CHECK(corm_strerror(CORM_OK) != NULL);
    /* Unknown codes: never NULL. */
    static const int unknown[] = {1, 42, -14, -999, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK(corm_strerror(unknown[i]) != NULL);
        CHECK(corm_errname(unknown[i]) != NULL);
    }
}

TEST(class_of_sqlstate_table)
{
    static const struct { const char *state; int code; } table[] = {
        /* integrity: class 23, with check option (44) */
        {"23000", CORM_EINTEGRITY}, {"23001", CORM_EINTEGRITY}, {"23502", CORM_EINTEGRITY},
        {"23503", CORM_EINTEGRITY}, {"23505", CORM_EINTEGRITY}, {"23514", CORM_EINTEGRITY},
        {"23P01", CORM_EINTEGRITY}, {"44000", CORM_EINTEGRITY},
        /* data: class 22 */
        {"22000", CORM_EDATA}, {"22001", CORM_EDATA}, {"22003", CORM_EDATA},
        {"22007", CORM_EDATA}, {"22012", CORM_EDATA}, {"22P02", CORM_EDATA},
        {"22023", CORM_EDATA},
        /* programming: syntax and access rules (42), feature not supported */
        {"42000", CORM_EPROGRAMMING}, {"42601", CORM_EPROGRAMMING},
        {"42P01", CORM_EPROGRAMMING}, {"42703", CORM_EPROGRAMMING},
        {"42883", CORM_EPROGRAMMING}, {"42P18", CORM_EPROGRAMMING},
        {"42501", CORM_EPROGRAMMING}, {"0A000", CORM_EPROGRAMMING},
        /* transaction: rollback class 40 */
        {"40000", CORM_ETRANSACTION}, {"40001", CORM_ETRANSACTION},
        {"40P01", CORM_ETRANSACTION}, {"40002", CORM_ETRANSACTION},
        /* cancelled: query_canceled (cancel request, statement_timeout) */
        {"57014", CORM_ECANCELLED},
        /* connection: class 08, shutdown and crash, authentication */
        {"08000", CORM_ECONNECTION}, {"08001", CORM_ECONNECTION},
        {"08003", CORM_ECONNECTION}, {"08006", CORM_ECONNECTION},
        {"57P01", CORM_ECONNECTION}, {"57P02", CORM_ECONNECTION},
        {"57P03", CORM_ECONNECTION}, {"28000", CORM_ECONNECTION},
        {"28P01", CORM_ECONNECTION},
        /* operational: PL/pgSQL raise, resources, system errors */
        {"P0001", CORM_EOPERATIONAL}, {"53100", CORM_EOPERATIONAL},
        {"53200", CORM_EOPERATIONAL}, {"53300", CORM_EOPERATIONAL},
        {"58030", CORM_EOPERATIONAL},
        /* internal */
        {"XX000", CORM_EINTERNAL}, {"XX001", CORM_EINTERNAL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int got = corm_error_class_of_sqlstate(table[i].state);
        CHECK_MSG(got == table[i].code, "%s -> %s, want %s", table[i].state,
                  corm_errname(got), corm_errname(table[i].code));
    }
    /* Any well-formed SQLSTATE maps to some error class, never to OK. */
    const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char s[6] = "00000";
    for (int a = 0; alphabet[a]; a++)
        for (int b = 0; alphabet[b]; b++) {
            s[0] = alphabet[a];
            s[1] = alphabet[b];
            int got = corm_error_class_of_sqlstate(s);
            CHECK_MSG(got < 0 && got > CORM__ELAST, "%s -> %d", s, got);
        }
    /* Malformed input does not crash and is not OK. */
    static const char *const bad[] = {"", "2350", "235055", "23"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(corm_error_class_of_sqlstate(bad[i]) < 0);
    CHECK(corm_error_class_of_sqlstate(NULL) < 0);
}

TEST(error_copy_and_clear)
{
    corm_error a = CORM_ERROR_INIT, b = CORM_ERROR_INIT;
    corm_error_clear(NULL);
    corm_error_clear(&a);   /* an empty error: no-op */
    CHECK_EQ_INT(a.code, 0);
    CHECK(a.message == NULL);
    /* Get a real error with detail and hint from the engine's own fill. */
    corm_query *q = NULL;
    CHECK_ERR(corm_query_sql(&q, "", &a), CORM_EMISUSE, &a);
    CHECK(q == NULL);
    CHECK_EQ_INT(a.code, CORM_EMISUSE);
    CHECK(a.message != NULL);
    CHECK_STR(a.sqlstate, "");
    /* Filling an error that holds one replaces it (no leak: valgrind). */
    CHECK_ERR(corm_query_sql(&q, NULL, &a), CORM_EMISUSE, &a);
    CHECK_OK(corm_error_copy(&b, &a), &b);
    CHECK_EQ_INT(b.code, a.code);
    CHECK_STR(b.message, a.message);
    CHECK(b.message != a.message);   /* deep */
    corm_error_clear(&a);
    CHECK_EQ_INT(a.code, 0);
    CHECK(b.message != NULL && b.message[0]);   /* outlives the source */
    /* Copy over a filled error clears it first. */
    corm_error c = CORM_ERROR_INIT;
    CHECK_OK(corm_error_copy(&c, &b), &c);
    CHECK_OK(corm_error_copy(&c, &b), &c);
    corm_error_clear(&c);
    corm_error_clear(&c);   /* twice is fine */
    CHECK_EQ_INT(corm_error_copy(NULL, &b), CORM_EMISUSE);
    corm_error_clear(&b);
}

/* ---- server errors, one connection ------------------------------------ */

typedef struct expect {
    const char *sql;
    int code;
    const char *sqlstate;
    const char *detail_has;   /* substring of DETAIL, or NULL: none expected */
    const char *hint_has;     /* substring of HINT, or NULL: don't care */
    const char *message_has;
} expect;

TEST(server_errors_have_class_sqlstate_and_fields)
{
    corm_conn *c = th_connect();
    char parent[96], child[96];
    th_name(parent, sizeof parent, c, "parent");
    th_name(child, sizeof child, c, "child");
    th_execf(c, "CREATE TABLE %s (id int PRIMARY KEY, u text UNIQUE)", parent);
    th_execf(c,
             "CREATE TABLE %s (pid int REFERENCES %s (id), v int NOT NULL CHECK (v > 0))",
             child, parent);
    th_execf(c, "INSERT INTO %s VALUES (1, 'a')", parent);

    char sql[12][256];
    expect ex[12];
    int n = 0;
#define ADD(...)                                   \
    do {                                           \
        ex[n] = (expect){sql[n], __VA_ARGS__};     \
        n++;                                       \
    } while (0)
    snprintf(sql[n], 256, "INSERT INTO %s VALUES (1, 'b')", parent);
    ADD(CORM_EINTEGRITY, "23505", "already exists", NULL, "duplicate key");
    snprintf(sql[n], 256, "INSERT INTO %s VALUES (999, 5)", child);
    ADD(CORM_EINTEGRITY, "23503", "is not present in table", NULL,
                       "foreign key");
    snprintf(sql[n], 256, "INSERT INTO %s VALUES (1, NULL)", child);
    ADD(CORM_EINTEGRITY, "23502", "Failing row contains", NULL,
                       "not-null");
    snprintf(sql[n], 256, "INSERT INTO %s VALUES (1, -1)", child);
    ADD(CORM_EINTEGRITY, "23514", "Failing row contains", NULL,
                       "check constraint");
    snprintf(sql[n], 256, "SELECT 1 / 0");
    ADD(CORM_EDATA, "22012", NULL, NULL, "division by zero");
    snprintf(sql[n], 256, "SELECT 'twelve'::int4");
    ADD(CORM_EDATA, "22P02", NULL, NULL, "invalid input syntax");
    snprintf(sql[n], 256, "SELEC 1");
    ADD(CORM_EPROGRAMMING, "42601", NULL, NULL, "syntax error");
    snprintf(sql[n], 256, "SELECT * FROM corm_no_such_table_anywhere");
    ADD(CORM_EPROGRAMMING, "42P01", NULL, NULL, "does not exist");
    snprintf(sql[n], 256,
             "DO $$ BEGIN RAISE EXCEPTION 'boom %%', 7 USING DETAIL = 'the detail',"
             " HINT = 'the hint'; END $$");
    ADD(CORM_EOPERATIONAL, "P0001", "the detail", "the hint", "boom 7");

#undef ADD
    corm_error err = CORM_ERROR_INIT;
    /* Pipelined, so each also proves its neighbours unaffected. */
    th_reply reps[12];
    for (int i = 0; i < n; i++) {
        th_reply_init(&reps[i]);
        CHECK_OK(corm_conn_submit_sql(c, ex[i].sql, th_on_done, &reps[i], NULL, &err), &err);
    }
    th_wait_all(c, reps, n, 30000);
    for (int i = 0; i < n; i++) {
        th_reply *r = &reps[i];
        CHECK_EQ_INT(r->done, 1);
        CHECK_MSG(r->code == ex[i].code, "%s: class %s, want %s (%s)", ex[i].sql,
                  corm_errname(r->code), corm_errname(ex[i].code),
                  r->err.message ? r->err.message : "no error");
        CHECK_MSG(strcmp(r->err.sqlstate, ex[i].sqlstate) == 0, "%s: SQLSTATE %s, want %s",
                  ex[i].sql, r->err.sqlstate, ex[i].sqlstate);
        CHECK_MSG(r->err.message && strstr(r->err.message, ex[i].message_has), "%s: message %s",
                  ex[i].sql, r->err.message ? r->err.message : "(null)");
        if (ex[i].detail_has)
            CHECK_MSG(r->err.detail && strstr(r->err.detail, ex[i].detail_has),
                      "%s: detail %s", ex[i].sql, r->err.detail ? r->err.detail : "(null)");
        else
            CHECK_MSG(r->err.detail == NULL, "%s: unexpected detail %s", ex[i].sql,
                      r->err.detail);
        if (ex[i].hint_has)
            CHECK_MSG(r->err.hint && strstr(r->err.hint, ex[i].hint_has), "%s: hint %s",
                      ex[i].sql, r->err.hint ? r->err.hint : "(null)");
        /* The class agrees with the pure table. */
        CHECK_EQ_INT(corm_error_class_of_sqlstate(r->err.sqlstate), r->code);
        th_reply_clear(r);
    }
    /* The blocking helper returns the same error. */
    CHECK_ERR(corm_conn_exec_sql(c, "SELECT 1 / 0", NULL, &err), CORM_EDATA, &err);
    CHECK_STR(err.sqlstate, "22012");
    corm_error_clear(&err);
    th_execf(c, "DROP TABLE %s", child);
    th_execf(c, "DROP TABLE %s", parent);
    corm_conn_close(c);
}

/* statement_timeout on the server: query_canceled, class cancelled. */
TEST(statement_timeout_is_cancelled)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    th_exec(c, "SET statement_timeout = '50ms'");
    CHECK_ERR(corm_conn_exec_sql(c, "SELECT pg_sleep(5)", NULL, &err), CORM_ECANCELLED, &err);
    CHECK_STR(err.sqlstate, "57014");
    corm_error_clear(&err);
    th_exec(c, "RESET statement_timeout");
    CHECK_EQ_INT(th_int(c, "SELECT 3"), 3);
    corm_conn_close(c);
}

/* Two SERIALIZABLE transactions with a write skew: one fails with 40001. */
TEST(serialization_failure_is_transaction)
{
    corm_conn *a = th_connect(), *b = th_connect();
    char t[96];
    th_name(t, sizeof t, a, "ser");
    th_execf(a, "CREATE TABLE %s (k int)", t);
    corm_error err = CORM_ERROR_INIT;
    corm_txn_options o = {CORM_SERIALIZABLE, false, false};
    th_reply ba, bb;
    th_reply_init(&ba);
    th_reply_init(&bb);
    CHECK_OK(corm_conn_begin(a, &o, th_on_done, &ba, &err), &err);
    CHECK_OK(corm_conn_begin(b, &o, th_on_done, &bb, &err), &err);
    th_wait_reply(a, &ba, 10000);
    th_wait_reply(b, &bb, 10000);
    TH_REPLY_OK(&ba);
    TH_REPLY_OK(&bb);
    th_reply_clear(&ba);
    th_reply_clear(&bb);

    char sql[6][256];
    snprintf(sql[0], 256, "SELECT count(*) FROM %s WHERE k = 1", t);
    snprintf(sql[1], 256, "SELECT count(*) FROM %s WHERE k = 2", t);
    snprintf(sql[2], 256, "INSERT INTO %s VALUES (2)", t);
    snprintf(sql[3], 256, "INSERT INTO %s VALUES (1)", t);
    corm_conn *who[4] = {a, b, a, b};
    int failures = 0;
    for (int i = 0; i < 4; i++) {
        int rc = corm_conn_exec_sql(who[i], sql[i], NULL, &err);
        if (rc < 0) {
            CHECK_EQ_INT(rc, CORM_ETRANSACTION);
            CHECK_STR(err.sqlstate, "40001");
            failures++;
        }
        corm_error_clear(&err);
    }
    th_reply ca, cb;
    th_reply_init(&ca);
    th_reply_init(&cb);
    CHECK_OK(corm_conn_commit(a, th_on_done, &ca, &err), &err);
    th_wait_reply(a, &ca, 10000);
    CHECK_OK(corm_conn_commit(b, th_on_done, &cb, &err), &err);
    th_wait_reply(b, &cb, 10000);
    th_reply *cs[2] = {&ca, &cb};
    for (int i = 0; i < 2; i++) {
        if (cs[i]->code) {
            /* An aborted transaction's COMMIT is a rollback: it may fail
             * with the serialization error itself, or report 25P02-ish
             * errors when the failure came earlier. */
            if (!strcmp(cs[i]->err.sqlstate, "40001")) {
                CHECK_EQ_INT(cs[i]->code, CORM_ETRANSACTION);
                failures++;
            }
        }
        th_reply_clear(cs[i]);
    }
    CHECK_MSG(failures == 1, "%d serialization failures, want exactly 1", failures);
    /* Both connections are usable afterwards (whether the engine still
     * believes b is in a transaction is test_txn's failed_commit case). */
    CHECK_EQ_INT(th_int(a, "SELECT 1"), 1);
    CHECK_EQ_INT(th_int(b, "SELECT 1"), 1);
    th_execf(a, "DROP TABLE %s", t);
    corm_conn_close(a);
    corm_conn_close(b);
}

/* Two transactions locking rows in opposite orders: one gets 40P01. */
TEST(deadlock_is_transaction)
{
    corm_conn *a = th_connect(), *b = th_connect();
    char t[96];
    th_name(t, sizeof t, a, "dl");
    th_execf(a, "CREATE TABLE %s (k int PRIMARY KEY, v int)", t);
    th_execf(a, "INSERT INTO %s VALUES (1, 0), (2, 0)", t);
    th_exec(a, "SET deadlock_timeout = '100ms'");
    th_exec(a, "BEGIN");
    th_execf(a, "UPDATE %s SET v = 1 WHERE k = 1", t);
    th_exec(b, "BEGIN");
    th_execf(b, "UPDATE %s SET v = 2 WHERE k = 2", t);
    /* a waits for b's row... */
    corm_error err = CORM_ERROR_INIT;
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 1 WHERE k = 2", t);
    th_reply ra;
    th_reply_init(&ra);
    CHECK_OK(corm_conn_submit_sql(a, sql, th_on_done, &ra, NULL, &err), &err);
    CHECK_OK(corm_conn_step(a, &err), &err);
    /* ...and b for a's: the server breaks the cycle. */
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 2 WHERE k = 1", t);
    int rb = corm_conn_exec_sql(b, sql, NULL, &err);
    th_wait_reply(a, &ra, 30000);
    int deadlocks = 0;
    if (rb < 0) {
        CHECK_EQ_INT(rb, CORM_ETRANSACTION);
        CHECK_STR(err.sqlstate, "40P01");
        CHECK(err.detail != NULL);   /* the server describes the cycle */
        deadlocks++;
    }
    corm_error_clear(&err);
    if (ra.code) {
        TH_REPLY_ERR(&ra, CORM_ETRANSACTION);
        CHECK_STR(ra.err.sqlstate, "40P01");
        deadlocks++;
    }
    CHECK_EQ_INT(deadlocks, 1);
    th_reply_clear(&ra);
    th_exec(a, "ROLLBACK");
    th_exec(b, "ROLLBACK");
    th_execf(a, "DROP TABLE %s", t);
    corm_conn_close(a);
    corm_conn_close(b);
}

/* ---- classes the engine produces itself ------------------------------- */

static int refused_port(int *sock)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *sock = fd;
    return ntohs(a.sin_port);
}

static void *fail_all_alloc(void *ud, void *ptr, size_t old, size_t n)
{
    (void)ud;
    (void)old;
    if (n == 0) {
        free(ptr);
        return NULL;
    }
    return NULL;
}

TEST(engine_error_classes)
{
    corm_error err = CORM_ERROR_INIT;
    /* connection */
    int sock;
    char ci[160];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=postgres dbname=postgres",
             refused_port(&sock));
    corm_conn *c = NULL;
    CHECK_ERR(corm_conn_connect(&c, ci, NULL, &err), CORM_ECONNECTION, &err);
    CHECK_STR(corm_errname(err.code), "connection");
    corm_error_clear(&err);
    close(sock);
    /* nomem */
    corm_options opt;
    corm_options_init(&opt);
    opt.alloc = fail_all_alloc;
    CHECK_ERR(corm_conn_open(&c, "host=127.0.0.1", &opt, &err), CORM_ENOMEM, &err);
    CHECK(c == NULL);
    CHECK(err.message != NULL);
    corm_error_clear(&err);
    /* misuse */
    CHECK_ERR(corm_conn_step(NULL, &err), CORM_EMISUSE, &err);
    CHECK_STR(corm_errname(err.code), "misuse");
    corm_error_clear(&err);

    c = th_connect();
    /* timeout */
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT pg_sleep(5)", &err), &err);
    CHECK_OK(corm_query_set_timeout(q, 100, &err), &err);
    CHECK_ERR(corm_conn_exec(c, q, NULL, &err), CORM_ETIMEOUT, &err);
    CHECK_STR(corm_errname(err.code), "timeout");
    CHECK_STR(err.sqlstate, "");
    corm_error_clear(&err);
    corm_query_free(q);
    /* cancelled */
    th_reply r;
    th_reply_init(&r);
    corm_request_id id;
    CHECK_OK(corm_conn_submit_sql(c, "SELECT pg_sleep(5)", th_on_done, &r, &id, &err), &err);
    CHECK_EQ_INT(corm_conn_cancel(c, id, &err), 1);
    TH_REPLY_ERR(&r, CORM_ECANCELLED);
    CHECK_STR(corm_errname(r.code), "cancelled");
    th_reply_clear(&r);
    CHECK_EQ_INT(th_int(c, "SELECT 9"), 9);
    corm_conn_close(c);
}
