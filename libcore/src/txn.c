/*
 * txn.c - transactions and savepoints as ordinary pipelined requests.
 */
#include "corm_int.h"

#include <stdio.h>
#include <string.h>

int corm_conn_txn_depth(const corm_conn *c)
{
    return c ? c->txn_depth : 0;
}

int corm__conn_txn_open(const corm_conn *c)
{
    return c->txn_depth > 0 || c->server_in_txn;
}

int corm_conn_in_transaction(const corm_conn *c)
{
    return c ? corm__conn_txn_open(c) : 0;
}

static bool default_options(const corm_txn_options *o)
{
    return !o || (o->isolation == CORM_ISOLATION_DEFAULT && !o->read_only && !o->deferrable);
}

int corm_conn_begin(corm_conn *c, const corm_txn_options *opt, corm_done_fn *done, void *ud,
                    corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    char sql[128];
    if (c->txn_depth > 0) {
        corm__check(default_options(opt), err,
                    "a savepoint cannot change isolation, read only or deferrable");
        snprintf(sql, sizeof sql, "SAVEPOINT corm_sp_%d", c->txn_depth);
    } else {
        static const char *const levels[] = {"", " ISOLATION LEVEL READ COMMITTED",
                                             " ISOLATION LEVEL REPEATABLE READ",
                                             " ISOLATION LEVEL SERIALIZABLE"};
        int iso = opt ? opt->isolation : 0;
        corm__check(iso >= 0 && iso <= CORM_SERIALIZABLE, err, "unknown isolation level");
        snprintf(sql, sizeof sql, "BEGIN%s%s%s", levels[iso],
                 opt && opt->read_only ? " READ ONLY" : "",
                 opt && opt->deferrable ? " DEFERRABLE" : "");
    }
    int rc = corm__conn_submit_req(c, NULL, sql, done, ud, NULL, err);
    if (rc == CORM_OK)
        c->txn_depth++;
    return rc;
}

int corm_conn_commit(corm_conn *c, corm_done_fn *done, void *ud, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    corm__check(c->txn_depth > 0, err, "no transaction is open");
    char sql[64];
    if (c->txn_depth == 1)
        snprintf(sql, sizeof sql, "COMMIT");
    else
        snprintf(sql, sizeof sql, "RELEASE SAVEPOINT corm_sp_%d", c->txn_depth - 1);
    int rc = corm__conn_submit_req(c, NULL, sql, done, ud, NULL, err);
    if (rc == CORM_OK)
        c->txn_depth--;
    return rc;
}

int corm_conn_rollback(corm_conn *c, corm_done_fn *done, void *ud, corm_error *err)
{
    corm__check(c != NULL, err, "connection is NULL");
    corm__check(done != NULL, err, "callback is NULL");
    corm__check(c->txn_depth > 0, err, "no transaction is open");
    char sql[64];
    if (c->txn_depth == 1)
        snprintf(sql, sizeof sql, "ROLLBACK");
    else
        snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT corm_sp_%d", c->txn_depth - 1);
    int rc = corm__conn_submit_req(c, NULL, sql, done, ud, NULL, err);
    if (rc < 0)
        return rc;
    if (c->txn_depth > 1) {
        /* The savepoint survives ROLLBACK TO; release it so the level is
         * gone, as the caller expects. */
        snprintf(sql, sizeof sql, "RELEASE SAVEPOINT corm_sp_%d", c->txn_depth - 1);
        corm__conn_submit_internal(c, sql, NULL);
    }
    c->txn_depth--;
    return CORM_OK;
}
