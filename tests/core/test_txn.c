/*
 * test_txn.c - transactions as pipelined requests: isolation levels, read
 * only, deferrable, commit, rollback, nested savepoints, and the engine's
 * idea of whether a transaction is open.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

enum { BEGIN, COMMIT, ROLLBACK };

/* Runs corm_conn_begin/commit/rollback and waits; returns the reply's code. */
static int txn(corm_conn *c, int what, const corm_txn_options *o)
{
    corm_error err = CORM_ERROR_INIT;
    th_reply r;
    th_reply_init(&r);
    int rc = what == BEGIN    ? corm_conn_begin(c, o, th_on_done, &r, &err)
             : what == COMMIT ? corm_conn_commit(c, th_on_done, &r, &err)
                              : corm_conn_rollback(c, th_on_done, &r, &err);
    CHECK_OK(rc, &err);
    th_wait_reply(c, &r, 10000);
    CHECK_EQ_INT(r.done, 1);
    int code = r.code;
    th_reply_clear(&r);
    return code;
}

#define TXN_OK(c, what, o) CHECK_EQ_INT(txn((c), (what), (o)), 0)

TEST(isolation_levels)
{
    corm_conn *c = th_connect();
    static const struct { int level; const char *name; } levels[] = {
        {CORM_READ_COMMITTED, "read committed"},
        {CORM_REPEATABLE_READ, "repeatable read"},
        {CORM_SERIALIZABLE, "serializable"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        corm_txn_options o = {levels[i].level, false, false};
        TXN_OK(c, BEGIN, &o);
        CHECK_EQ_INT(corm_conn_txn_depth(c), 1);
        CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
        th_text(c, "SHOW transaction_isolation", buf, sizeof buf);
        CHECK_STR(buf, levels[i].name);
        th_text(c, "SHOW transaction_read_only", buf, sizeof buf);
        CHECK_STR(buf, "off");
        TXN_OK(c, COMMIT, NULL);
        CHECK_EQ_INT(corm_conn_txn_depth(c), 0);
        CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    }
    /* Default options (and NULL) take the server's default level. */
    char deflt[64];
    th_text(c, "SHOW default_transaction_isolation", deflt, sizeof deflt);
    corm_txn_options o = {CORM_ISOLATION_DEFAULT, false, false};
    TXN_OK(c, BEGIN, &o);
    th_text(c, "SHOW transaction_isolation", buf, sizeof buf);
    CHECK_STR(buf, deflt);
    TXN_OK(c, COMMIT, NULL);
    TXN_OK(c, BEGIN, NULL);
    th_text(c, "SHOW transaction_isolation", buf, sizeof buf);
    CHECK_STR(buf, deflt);
    TXN_OK(c, ROLLBACK, NULL);
    /* An unknown level is misuse, and nothing is begun. */
    corm_error err = CORM_ERROR_INIT;
    th_reply r;
    th_reply_init(&r);
    o.isolation = 17;
    CHECK_ERR(corm_conn_begin(c, &o, th_on_done, &r, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    o.isolation = -1;
    CHECK_ERR(corm_conn_begin(c, &o, th_on_done, &r, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 0);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    CHECK_EQ_INT(r.done, 0);
    corm_conn_close(c);
}

TEST(read_only_refuses_writes)
{
    corm_conn *c = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "ro");
    th_execf(c, "CREATE TABLE %s (k int)", t);
    corm_txn_options o = {CORM_ISOLATION_DEFAULT, true, false};
    TXN_OK(c, BEGIN, &o);
    char buf[64];
    th_text(c, "SHOW transaction_read_only", buf, sizeof buf);
    CHECK_STR(buf, "on");
    corm_error err = CORM_ERROR_INIT;
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", t);
    int rc = corm_conn_exec_sql(c, sql, NULL, &err);
    CHECK(rc < 0);
    CHECK_STR(err.sqlstate, "25006");
    CHECK_EQ_INT(rc, corm_error_class_of_sqlstate("25006"));
    corm_error_clear(&err);
    /* The failed transaction still needs its rollback. */
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    TXN_OK(c, ROLLBACK, NULL);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

TEST(serializable_read_only_deferrable)
{
    corm_conn *c = th_connect();
    corm_txn_options o = {CORM_SERIALIZABLE, true, true};
    TXN_OK(c, BEGIN, &o);
    char buf[64];
    th_text(c, "SHOW transaction_isolation", buf, sizeof buf);
    CHECK_STR(buf, "serializable");
    th_text(c, "SHOW transaction_read_only", buf, sizeof buf);
    CHECK_STR(buf, "on");
    th_text(c, "SHOW transaction_deferrable", buf, sizeof buf);
    CHECK_STR(buf, "on");
    TXN_OK(c, COMMIT, NULL);
    corm_conn_close(c);
}

TEST(commit_makes_rows_visible)
{
    corm_conn *c = th_connect(), *other = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "commit");
    th_execf(c, "CREATE TABLE %s (k int)", t);
    TXN_OK(c, BEGIN, NULL);
    th_execf(c, "INSERT INTO %s VALUES (1), (2)", t);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 2);
    CHECK_EQ_INT(th_intf(other, "SELECT count(*) FROM %s", t), 0);   /* not yet */
    TXN_OK(c, COMMIT, NULL);
    CHECK_EQ_INT(th_intf(other, "SELECT count(*) FROM %s", t), 2);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
    corm_conn_close(other);
}

TEST(rollback_discards_rows)
{
    corm_conn *c = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "rb");
    th_execf(c, "CREATE TABLE %s (k int)", t);
    TXN_OK(c, BEGIN, NULL);
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    TXN_OK(c, ROLLBACK, NULL);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 0);
    /* A statement error inside the transaction, then rollback: clean. */
    TXN_OK(c, BEGIN, NULL);
    th_execf(c, "INSERT INTO %s VALUES (2)", t);
    corm_error err = CORM_ERROR_INIT;
    CHECK_ERR(corm_conn_exec_sql(c, "SELECT 1 / 0", NULL, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_conn_exec_sql(c, "SELECT 1", NULL, &err), CORM_EPROGRAMMING, &err);
    CHECK_STR(err.sqlstate, "25P02");   /* in failed transaction */
    corm_error_clear(&err);
    TXN_OK(c, ROLLBACK, NULL);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* Three levels: rolling back an inner level keeps the outer levels' rows. */
TEST(nested_savepoints)
{
    corm_conn *c = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "sp");
    th_execf(c, "CREATE TABLE %s (k int)", t);
    char list[64];
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT coalesce(string_agg(k::text, ',' ORDER BY k), '') FROM %s",
             t);

    TXN_OK(c, BEGIN, NULL);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 1);
    th_execf(c, "INSERT INTO %s VALUES (1)", t);
    TXN_OK(c, BEGIN, NULL);                       /* savepoint */
    CHECK_EQ_INT(corm_conn_txn_depth(c), 2);
    th_execf(c, "INSERT INTO %s VALUES (2)", t);
    TXN_OK(c, BEGIN, NULL);                       /* savepoint in savepoint */
    CHECK_EQ_INT(corm_conn_txn_depth(c), 3);
    th_execf(c, "INSERT INTO %s VALUES (3)", t);
    th_text(c, sql, list, sizeof list);
    CHECK_STR(list, "1,2,3");
    TXN_OK(c, ROLLBACK, NULL);                    /* level 3 gone */
    CHECK_EQ_INT(corm_conn_txn_depth(c), 2);
    th_text(c, sql, list, sizeof list);
    CHECK_STR(list, "1,2");
    TXN_OK(c, BEGIN, NULL);                       /* level 3 again */
    CHECK_EQ_INT(corm_conn_txn_depth(c), 3);
    th_execf(c, "INSERT INTO %s VALUES (4)", t);
    TXN_OK(c, COMMIT, NULL);                      /* released into level 2 */
    CHECK_EQ_INT(corm_conn_txn_depth(c), 2);
    th_text(c, sql, list, sizeof list);
    CHECK_STR(list, "1,2,4");
    /* An error inside a savepoint, rolled back: the outer level goes on. */
    TXN_OK(c, BEGIN, NULL);
    corm_error err = CORM_ERROR_INIT;
    CHECK_ERR(corm_conn_exec_sql(c, "SELECT 1 / 0", NULL, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    TXN_OK(c, ROLLBACK, NULL);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 2);
    th_text(c, sql, list, sizeof list);
    CHECK_STR(list, "1,2,4");
    TXN_OK(c, ROLLBACK, NULL);                    /* level 2 gone: only 1 stays */
    CHECK_EQ_INT(corm_conn_txn_depth(c), 1);
    th_text(c, sql, list, sizeof list);
    CHECK_STR(list, "1");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    TXN_OK(c, COMMIT, NULL);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 0);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    corm_conn *other = th_connect();
    th_text(other, sql, list, sizeof list);
    CHECK_STR(list, "1");
    corm_conn_close(other);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* A savepoint cannot change the transaction's options. */
TEST(savepoint_with_options_is_misuse)
{
    corm_conn *c = th_connect();
    TXN_OK(c, BEGIN, NULL);
    corm_error err = CORM_ERROR_INIT;
    th_reply r;
    th_reply_init(&r);
    corm_txn_options o = {CORM_SERIALIZABLE, false, false};
    CHECK_ERR(corm_conn_begin(c, &o, th_on_done, &r, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_txn_options ro = {CORM_ISOLATION_DEFAULT, true, false};
    CHECK_ERR(corm_conn_begin(c, &ro, th_on_done, &r, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(r.done, 0);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 1);
    /* All-default options are fine for a savepoint. */
    corm_txn_options d = {CORM_ISOLATION_DEFAULT, false, false};
    TXN_OK(c, BEGIN, &d);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 2);
    TXN_OK(c, COMMIT, NULL);
    TXN_OK(c, COMMIT, NULL);
    corm_conn_close(c);
}

TEST(commit_or_rollback_without_transaction_is_misuse)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    th_reply r;
    th_reply_init(&r);
    CHECK_ERR(corm_conn_commit(c, th_on_done, &r, &err), CORM_EMISUSE, &err);
    CHECK(err.message != NULL);
    corm_error_clear(&err);
    CHECK_ERR(corm_conn_rollback(c, th_on_done, &r, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(r.done, 0);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    /* After a full begin/commit, one more commit is misuse again. */
    TXN_OK(c, BEGIN, NULL);
    TXN_OK(c, COMMIT, NULL);
    CHECK_ERR(corm_conn_commit(c, th_on_done, &r, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(th_int(c, "SELECT 1"), 1);
    corm_conn_close(c);
}

/* Pipelined without waiting: BEGIN, work, COMMIT all in flight at once,
 * completing in order. */
TEST(transaction_fully_pipelined)
{
    corm_conn *c = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "pipe");
    th_execf(c, "CREATE TABLE %s (k int)", t);
    corm_error err = CORM_ERROR_INIT;
    th_reply r[5];
    for (int i = 0; i < 5; i++)
        th_reply_init(&r[i]);
    char ins[256], cnt[256];
    snprintf(ins, sizeof ins, "INSERT INTO %s SELECT generate_series(1, 10)", t);
    snprintf(cnt, sizeof cnt, "SELECT count(*) FROM %s", t);
    th_seq_next = 0;
    CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &r[0], &err), &err);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 1);   /* at submit time */
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    CHECK_OK(corm_conn_submit_sql(c, ins, th_on_done, &r[1], NULL, &err), &err);
    CHECK_OK(corm_conn_begin(c, NULL, th_on_done, &r[2], &err), &err);
    CHECK_OK(corm_conn_rollback(c, th_on_done, &r[3], &err), &err);
    CHECK_OK(corm_conn_commit(c, th_on_done, &r[4], &err), &err);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 0);
    th_wait_all(c, r, 5, 10000);
    for (int i = 0; i < 5; i++) {
        TH_REPLY_OK(&r[i]);
        CHECK_EQ_INT(r[i].seq, i);
        th_reply_clear(&r[i]);
    }
    CHECK_EQ_INT(th_int(c, cnt), 10);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* BEGIN/COMMIT sent as plain SQL are tracked too. */
TEST(raw_sql_transactions_are_tracked)
{
    corm_conn *c = th_connect();
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    th_exec(c, "BEGIN");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 0);   /* depth counts the engine's calls */
    th_exec(c, "SAVEPOINT a");
    th_exec(c, "ROLLBACK TO SAVEPOINT a");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    th_exec(c, "rollback to a");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    CHECK_EQ_INT(th_server_idle(c), 0);
    th_exec(c, "COMMIT");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    CHECK_EQ_INT(th_server_idle(c), 1);
    th_exec(c, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 1);
    th_exec(c, "ROLLBACK");
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    corm_conn_close(c);
}

/* A COMMIT that fails on the server (here a deferred constraint) still
 * ends the transaction: the server is idle afterwards, and the engine must
 * agree, or it would refuse retries and roll back what is not there. */
TEST(failed_commit_ends_transaction)
{
    corm_conn *c = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "dfr");
    th_execf(c, "CREATE TABLE %s (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)", t);
    corm_error err = CORM_ERROR_INIT;
    TXN_OK(c, BEGIN, NULL);
    th_execf(c, "INSERT INTO %s VALUES (1), (1)", t);   /* checked at commit */
    th_reply r;
    th_reply_init(&r);
    CHECK_OK(corm_conn_commit(c, th_on_done, &r, &err), &err);
    th_wait_reply(c, &r, 10000);
    TH_REPLY_ERR(&r, CORM_EINTEGRITY);
    CHECK_STR(r.err.sqlstate, "23505");
    th_reply_clear(&r);
    CHECK_EQ_INT(corm_conn_txn_depth(c), 0);
    /* The server is outside any transaction: */
    CHECK_EQ_INT(th_server_idle(c), 1);
    /* Regression: a failed COMMIT was once not tracked, and the engine kept
     * reporting an open transaction (also reached by a SERIALIZABLE commit
     * failing with 40001). */
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}
