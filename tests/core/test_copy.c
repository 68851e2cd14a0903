/*
 * test_copy.c - bulk writes through binary COPY: every column kind, a
 * million rows in bounded memory, a failing row named by the server, an
 * abort, and requests queued behind a copy.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <stdlib.h>
#include <sys/resource.h>

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int64_t rows_for_variant(int64_t plain)
{
    const char *v = getenv("CORM_TEST_VARIANT");
    if (v && !strcmp(v, "valgrind"))
        return plain / 50;
    if (v && !strcmp(v, "asan"))
        return plain / 10;
    return plain;
}

static const char *const cols[] = {"id", "name", "score", "active", "at", "amount", "tag"};
static const uint32_t oids[] = {CORM_OID_INT8,   CORM_OID_TEXT,        CORM_OID_FLOAT8,
                                CORM_OID_BOOL,   CORM_OID_TIMESTAMPTZ, CORM_OID_NUMERIC,
                                CORM_OID_UUID};

static void make_table(corm_conn *c, char *t, size_t size)
{
    th_name(t, size, c, "copy");
    th_execf(c,
             "CREATE TABLE %s (id int8 PRIMARY KEY, name text, score float8, active bool,"
             " at timestamptz, amount numeric(12,2), tag uuid)",
             t);
}

static void fill_row(corm_value *v, int64_t i, char *name, size_t namesize)
{
    snprintf(name, namesize, "user %lld", (long long)i);
    memset(v, 0, 7 * sizeof *v);
    v[0].kind = CORM_INT;
    v[0].v.i = i;
    v[1].kind = CORM_TEXT;
    v[1].v.str.ptr = name;
    v[1].v.str.len = strlen(name);
    v[2].kind = CORM_FLOAT;
    v[2].v.f = (double)i / 4;
    v[3].kind = CORM_BOOL;
    v[3].v.b = i % 2;
    v[4].kind = CORM_TIMESTAMPTZ;
    v[4].v.i = i * 1000001;
    if (i % 7 == 0) {
        v[5].kind = CORM_NULL;
    } else {
        v[5].kind = CORM_NUMERIC;
        v[5].v.str.ptr = i % 2 ? "-12.50" : "1234.05";
        v[5].v.str.len = strlen(v[5].v.str.ptr);
    }
    v[6].kind = CORM_UUID;
    memset(v[6].v.uuid, 0, 16);
    memcpy(v[6].v.uuid + 8, &i, sizeof i);
}

/* A million rows: the count comes back, the server agrees, values are
 * exact, and the process does not grow with the row count. */
TEST(million_rows_bounded)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    make_table(c, t, sizeof t);
    int64_t n = rows_for_variant(1000000);
    th_reply r;
    th_reply_init(&r);
    corm_copy *cp = NULL;
    CHECK_OK(corm_copy_open(&cp, c, NULL, t, cols, oids, 7, th_on_done, &r, &err), &err);
    long rss_before = max_rss_kb();
    for (int64_t i = 1; i <= n; i++) {
        corm_value v[7];
        char name[32];
        fill_row(v, i, name, sizeof name);
        CHECK_OK(corm_copy_put_wait(cp, v, &err), &err);
    }
    CHECK_EQ_INT(corm_copy_rows(cp), n);
    CHECK_OK(corm_copy_end_wait(cp, &err), &err);
    long grown_kb = max_rss_kb() - rss_before;
    TH_REPLY_OK(&r);
    CHECK_EQ_INT(corm_result_affected(r.res), n);
    th_reply_clear(&r);
    corm_copy_free(cp);
    /* 1,000,000 rows are ~60 MB on the wire; buffers stay at a chunk. */
    const char *variant = getenv("CORM_TEST_VARIANT");
    if (!variant || !strcmp(variant, "plain"))
        CHECK_MSG(grown_kb < 16 * 1024, "RSS grew by %ld kB", grown_kb);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), n);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s WHERE amount IS NULL", t), n / 7);
    char text[128];
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT name || '|' || score || '|' || active || '|' || amount || '|' || tag"
             " || '|' || (at = '2000-01-01 00:00:00+00'::timestamptz + 3000003 * interval '1 us')"
             " FROM %s WHERE id = 3",
             t);
    th_text(c, sql, text, sizeof text);
    CHECK_STR(text, "user 3|0.75|true|-12.50|00000000-0000-0000-0300-000000000000|true");
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* A row the server refuses: the callback has its error naming the line;
 * nothing is stored; requests queued behind the copy run afterwards. */
TEST(failing_row_reported)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    make_table(c, t, sizeof t);
    th_reply r, after;
    th_reply_init(&r);
    th_reply_init(&after);
    corm_copy *cp = NULL;
    CHECK_OK(corm_copy_open(&cp, c, NULL, t, cols, oids, 7, th_on_done, &r, &err), &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 42::int8", th_on_done, &after, NULL, &err), &err);
    for (int64_t i = 1; i <= 5; i++) {
        corm_value v[7];
        char name[32];
        fill_row(v, i == 4 ? 2 : i, name, sizeof name);   /* row 4 repeats id 2 */
        int rc = corm_copy_put_wait(cp, v, &err);
        CHECK(rc == CORM_OK || rc == CORM_ECANCELLED);
        corm_error_clear(&err);
    }
    CHECK_OK(corm_copy_end_wait(cp, &err), &err);
    TH_REPLY_ERR(&r, CORM_EINTEGRITY);
    CHECK_STR(r.err.sqlstate, "23505");
    CHECK_MSG(strstr(r.err.message, "line") != NULL, "message: %s", r.err.message);
    CHECK(r.err.detail != NULL);
    th_wait_reply(c, &after, 10000);
    TH_REPLY_OK(&after);
    CHECK(after.seq > r.seq);
    th_reply_clear(&r);
    th_reply_clear(&after);
    corm_copy_free(cp);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 0);
    /* Pipelining is back: several requests in flight at once. */
    th_reply many[10];
    for (int i = 0; i < 10; i++) {
        th_reply_init(&many[i]);
        CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", th_on_done, &many[i], NULL, &err), &err);
    }
    th_wait_all(c, many, 10, 10000);
    for (int i = 0; i < 10; i++) {
        TH_REPLY_OK(&many[i]);
        th_reply_clear(&many[i]);
    }
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* Requests before the copy finish first; the copy waits for them. */
TEST(waits_for_earlier_requests)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    make_table(c, t, sizeof t);
    th_reply before, r;
    th_reply_init(&before);
    th_reply_init(&r);
    char sql[160];
    snprintf(sql, sizeof sql, "INSERT INTO %s (id) SELECT 100 FROM pg_sleep(0.2)", t);
    CHECK_OK(corm_conn_submit_sql(c, sql, th_on_done, &before, NULL, &err), &err);
    corm_copy *cp = NULL;
    CHECK_OK(corm_copy_open(&cp, c, NULL, t, cols, oids, 7, th_on_done, &r, &err), &err);
    corm_value v[7];
    char name[32];
    fill_row(v, 1, name, sizeof name);
    CHECK_OK(corm_copy_put(cp, v, &err), &err);   /* buffered until the copy starts */
    CHECK_OK(corm_copy_end_wait(cp, &err), &err);
    TH_REPLY_OK(&before);
    TH_REPLY_OK(&r);
    CHECK(before.seq < r.seq);
    CHECK_EQ_INT(corm_result_affected(r.res), 1);
    th_reply_clear(&before);
    th_reply_clear(&r);
    corm_copy_free(cp);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 2);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* Abort: nothing stored, the error says cancelled; freeing an unfinished
 * copy abandons it the same way. */
TEST(abort_and_abandon)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    make_table(c, t, sizeof t);
    th_reply r;
    th_reply_init(&r);
    corm_copy *cp = NULL;
    CHECK_OK(corm_copy_open(&cp, c, NULL, t, cols, oids, 7, th_on_done, &r, &err), &err);
    corm_value v[7];
    char name[32];
    fill_row(v, 1, name, sizeof name);
    CHECK_OK(corm_copy_put_wait(cp, v, &err), &err);
    CHECK_OK(corm_copy_abort(cp, "changed my mind", &err), &err);
    th_wait_reply(c, &r, 10000);
    TH_REPLY_ERR(&r, CORM_ECANCELLED);
    CHECK(strstr(r.err.message, "changed my mind") != NULL);
    th_reply_clear(&r);
    CHECK_ERR(corm_copy_put(cp, v, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_copy_free(cp);

    CHECK_OK(corm_copy_open(&cp, c, NULL, t, cols, oids, 7, th_on_done, &r, &err), &err);
    CHECK_OK(corm_copy_put_wait(cp, v, &err), &err);
    corm_copy_free(cp);   /* abandoned: the engine finishes and frees it */
    th_wait_reply(c, &r, 10000);
    TH_REPLY_ERR(&r, CORM_ECANCELLED);
    th_reply_clear(&r);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 0);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* Values that do not fit are refused before they are sent; bad names and
 * arguments are refused at open. */
TEST(bad_input)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    make_table(c, t, sizeof t);
    th_reply r;
    th_reply_init(&r);
    corm_copy *cp = (corm_copy *)&err;
    CHECK_ERR(corm_copy_open(&cp, NULL, NULL, t, cols, oids, 7, th_on_done, &r, &err),
              CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK(cp == NULL);
    CHECK_ERR(corm_copy_open(&cp, c, NULL, t, cols, oids, 0, th_on_done, &r, &err),
              CORM_EMISUSE, &err);
    corm_error_clear(&err);
    static const char *const badcols[] = {""};
    CHECK_ERR(corm_copy_open(&cp, c, NULL, t, badcols, oids, 1, th_on_done, &r, &err),
              CORM_EPROGRAMMING, &err);
    corm_error_clear(&err);
    CHECK_OK(corm_copy_open(&cp, c, NULL, t, cols, oids, 7, th_on_done, &r, &err), &err);
    corm_value v[7];
    char name[32];
    fill_row(v, 1, name, sizeof name);
    v[0].kind = CORM_TEXT;   /* text where int8 is wanted: no binary form */
    v[0].v.str.ptr = "12";
    v[0].v.str.len = 2;
    CHECK_ERR(corm_copy_put(cp, v, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    fill_row(v, 1, name, sizeof name);
    v[5].v.str.ptr = "12.3.4";
    v[5].v.str.len = 6;
    CHECK_ERR(corm_copy_put(cp, v, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    fill_row(v, 1, name, sizeof name);
    CHECK_OK(corm_copy_put(cp, v, &err), &err);
    CHECK_EQ_INT(corm_copy_rows(cp), 1);
    CHECK_OK(corm_copy_end_wait(cp, &err), &err);
    TH_REPLY_OK(&r);
    CHECK_EQ_INT(corm_result_affected(r.res), 1);
    th_reply_clear(&r);
    corm_copy_free(cp);
    corm_copy_free(NULL);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* The connection breaks mid-copy: the callback gets a connection error and
 * the handle stays safe to use and free. */
TEST(connection_lost_mid_copy)
{
    corm_conn *c = th_connect();
    corm_conn *killer = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    make_table(c, t, sizeof t);
    th_reply r;
    th_reply_init(&r);
    corm_copy *cp = NULL;
    CHECK_OK(corm_copy_open(&cp, c, NULL, t, cols, oids, 7, th_on_done, &r, &err), &err);
    int pid = corm_conn_backend_pid(c);
    int64_t i = 1;
    for (; i <= 2000; i++) {
        corm_value v[7];
        char name[32];
        fill_row(v, i, name, sizeof name);
        CHECK_OK(corm_copy_put_wait(cp, v, &err), &err);
    }
    th_intf(killer, "SELECT pg_terminate_backend(%d)::int", pid);
    for (int64_t k = 0; k < 200000 && !r.done; k++) {
        corm_value v[7];
        char name[32];
        fill_row(v, i + k, name, sizeof name);
        if (corm_copy_put_wait(cp, v, &err) < 0) {
            corm_error_clear(&err);
            break;
        }
    }
    corm_copy_end(cp, NULL);
    th_wait_reply(c, &r, 10000);
    TH_REPLY_ERR(&r, CORM_ECONNECTION);
    th_reply_clear(&r);
    CHECK(corm_copy_put(cp, (corm_value[7]){{0}}, &err) < 0);
    corm_error_clear(&err);
    corm_copy_free(cp);
    corm_conn_close(c);
    th_execf(killer, "DROP TABLE %s", t);
    corm_conn_close(killer);
}
