/*
 * test_pipeline.c - many requests in flight on one connection: each gets
 * its own result, in submission order; an error touches only its request;
 * typed results and binary parameters.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include <math.h>
#include <stdlib.h>

/* ---- 1,000 requests from interleaved callers -------------------------- */

enum { NREQ = 1000, NCALLERS = 3 };

typedef struct caller caller;

/* One request of one caller: what it asked and what it must get back. */
typedef struct call {
    caller *owner;
    int index;          /* submission order over all callers */
    int shape;          /* which SQL */
    int64_t n;
    char text[32];
    int done;
    int completed_at;   /* global completion order */
    int caller_seq;     /* completion order within its caller */
    int ok;
    char why[160];
} call;

struct caller {
    int id;
    int completed;
    int *global_done;
};

static const char *const shapes[] = {
    "SELECT $1::int8 * 2",
    "SELECT $1::text || 'x'",
    "SELECT $1::int8 + $2::int8, $3::text",
    "SELECT n FROM generate_series(1, $1::int4) AS n",
};

static void call_done(void *ud, corm_result *res, const corm_error *err)
{
    call *k = ud;
    caller *who = k->owner;
    k->done++;
    k->completed_at = (*who->global_done)++;
    k->caller_seq = who->completed++;
    if (err) {
        snprintf(k->why, sizeof k->why, "error %s: %s", corm_errname(err->code), err->message);
        return;
    }
    corm_error e = CORM_ERROR_INIT;
    int64_t v = 0;
    const char *s = NULL;
    size_t len = 0;
    char want[64];
    switch (k->shape) {
    case 0:
        if (corm_result_nrows(res) != 1 || corm_result_get_int64(res, 0, 0, &v, &e) < 0 ||
            v != k->n * 2)
            snprintf(k->why, sizeof k->why, "shape 0: got %lld for %lld", (long long)v,
                     (long long)k->n);
        else
            k->ok = 1;
        break;
    case 1:
        snprintf(want, sizeof want, "%sx", k->text);
        if (corm_result_get_text(res, 0, 0, &s, &len, &e) < 0 || len != strlen(want) ||
            memcmp(s, want, len) != 0)
            snprintf(k->why, sizeof k->why, "shape 1: got %.*s for %s", (int)len, s ? s : "",
                     k->text);
        else
            k->ok = 1;
        break;
    case 2:
        if (corm_result_ncols(res) != 2 || corm_result_get_int64(res, 0, 0, &v, &e) < 0 ||
            v != k->n + 1000 || corm_result_get_text(res, 0, 1, &s, &len, &e) < 0 ||
            strcmp(s, k->text) != 0)
            snprintf(k->why, sizeof k->why, "shape 2: wrong for %lld", (long long)k->n);
        else
            k->ok = 1;
        break;
    case 3:
        if (corm_result_nrows(res) != (int)k->n) {
            snprintf(k->why, sizeof k->why, "shape 3: %d rows, want %lld",
                     corm_result_nrows(res), (long long)k->n);
            break;
        }
        k->ok = 1;
        for (int i = 0; i < (int)k->n; i++)
            if (corm_result_get_int64(res, i, 0, &v, &e) < 0 || v != i + 1)
                k->ok = 0;
        if (!k->ok)
            snprintf(k->why, sizeof k->why, "shape 3: wrong rows");
        break;
    }
    corm_error_clear(&e);
}

static int all_calls_done(void *arg)
{
    call *calls = arg;
    for (int i = 0; i < NREQ; i++)
        if (!calls[i].done)
            return 0;
    return 1;
}

TEST(pipeline_1000_interleaved_callers)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    static call calls[NREQ];
    caller callers[NCALLERS];
    int global_done = 0;
    for (int i = 0; i < NCALLERS; i++)
        callers[i] = (caller){i, 0, &global_done};
    memset(calls, 0, sizeof calls);

    corm_query *q = NULL;
    for (int i = 0; i < NREQ; i++) {
        call *k = &calls[i];
        /* Callers take turns; each uses the shapes in its own rotation. */
        k->owner = &callers[i % NCALLERS];
        k->index = i;
        k->shape = (i / NCALLERS + k->owner->id) % 4;
        k->n = k->shape == 3 ? 1 + i % 5 : (int64_t)i * 7 - 3000;
        snprintf(k->text, sizeof k->text, "c%d-r%d-\xc3\xa9", k->owner->id, i);
        CHECK_OK(corm_query_sql(&q, shapes[k->shape], &err), &err);
        switch (k->shape) {
        case 0:
            CHECK_OK(corm_query_bind_int64(q, k->n, &err), &err);
            break;
        case 1:
            CHECK_OK(corm_query_bind_text(q, k->text, -1, &err), &err);
            break;
        case 2:
            CHECK_OK(corm_query_bind_int64(q, k->n, &err), &err);
            CHECK_OK(corm_query_bind_int64(q, 1000, &err), &err);
            CHECK_OK(corm_query_bind_text(q, k->text, -1, &err), &err);
            break;
        case 3: {
            corm_value v = {.kind = CORM_INT, .oid = CORM_OID_INT4};
            v.v.i = k->n;
            CHECK_OK(corm_query_bind(q, &v, &err), &err);
            break;
        }
        }
        corm_request_id id = 0;
        CHECK_OK(corm_conn_submit(c, q, call_done, k, &id, &err), &err);
        CHECK(id != 0);
        corm_query_free(q);
        q = NULL;
    }
    /* Nothing completes from inside submit. */
    CHECK_EQ_INT(global_done, 0);
    CHECK_EQ_INT(corm_conn_pending(c), NREQ);

    th_drive_stats ds = {0, 0, 0, 0, CORM_ERROR_INIT};
    th_drive(c, all_calls_done, calls, 60000, &ds);
    CHECK_EQ_INT(ds.step_errors, 0);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    int per_caller[NCALLERS] = {0};
    for (int i = 0; i < NREQ; i++) {
        call *k = &calls[i];
        CHECK_EQ_INT(k->done, 1);
        CHECK_MSG(k->ok, "request %d (caller %d, shape %d): %s", i, k->owner->id, k->shape,
                  k->why);
        /* Completed in submission order, globally and per caller. */
        CHECK_EQ_INT(k->completed_at, i);
        CHECK_EQ_INT(k->caller_seq, per_caller[k->owner->id]++);
    }
    /* Four distinct statements, each prepared once. */
    CHECK_EQ_INT(corm_conn_cached_statements(c), 4);
    corm_conn_close(c);
}

/* ---- an error in the middle of a pipeline ---------------------------- */

TEST(pipeline_error_in_middle_affects_no_other)
{
    corm_conn *c = th_connect();
    char t[96];
    th_name(t, sizeof t, c, "mid");
    th_execf(c, "CREATE TABLE %s (k int PRIMARY KEY, v text)", t);
    th_execf(c, "INSERT INTO %s VALUES (1, 'one')", t);

    char sql[16][256];
    int n = 0;
    snprintf(sql[n++], 256, "SELECT 100");
    snprintf(sql[n++], 256, "SELECT 1 / 0");                                   /* 22012 */
    snprintf(sql[n++], 256, "SELECT 102");
    snprintf(sql[n++], 256, "INSERT INTO %s VALUES (1, 'dup')", t);             /* 23505 */
    snprintf(sql[n++], 256, "SELECT 104");
    snprintf(sql[n++], 256, "SELECT corm_no_such_function(1)");                 /* 42883 + hint */
    snprintf(sql[n++], 256, "SELECT 106");
    snprintf(sql[n++], 256, "INSERT INTO %s VALUES (2, 'two') RETURNING k + 100", t);
    snprintf(sql[n++], 256, "SELECT 'abc'::int");                              /* 22P02 */
    snprintf(sql[n++], 256, "SELECT count(*) + 107 FROM %s", t);
    th_reply reps[16];
    corm_error err = CORM_ERROR_INIT;
    for (int i = 0; i < n; i++) {
        th_reply_init(&reps[i]);
        CHECK_OK(corm_conn_submit_sql(c, sql[i], th_on_done, &reps[i], NULL, &err), &err);
    }
    th_seq_next = 0;
    th_wait_all(c, reps, n, 30000);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(reps[i].seq, i);

    /* The successes: each its own value. */
    static const int good[] = {0, 2, 4, 6, 7, 9};
    static const int64_t want[] = {100, 102, 104, 106, 102, 109};
    for (size_t j = 0; j < sizeof good / sizeof good[0]; j++) {
        th_reply *r = &reps[good[j]];
        TH_REPLY_OK(r);
        int64_t v = 0;
        CHECK_OK(corm_result_get_int64(r->res, 0, 0, &v, &err), &err);
        CHECK_MSG(v == want[j], "request %d: %lld, want %lld", good[j], (long long)v,
                  (long long)want[j]);
    }
    /* Division by zero: data, message, no detail. */
    TH_REPLY_ERR(&reps[1], CORM_EDATA);
    CHECK_STR(reps[1].err.sqlstate, "22012");
    CHECK_STR(reps[1].err.message, "division by zero");
    CHECK(reps[1].err.detail == NULL);
    /* Unique violation: integrity, with the server's DETAIL. */
    TH_REPLY_ERR(&reps[3], CORM_EINTEGRITY);
    CHECK_STR(reps[3].err.sqlstate, "23505");
    CHECK(strstr(reps[3].err.message, "duplicate key") != NULL);
    CHECK(reps[3].err.detail != NULL);
    CHECK_STR(reps[3].err.detail, "Key (k)=(1) already exists.");
    /* Undefined function: programming, with the server's HINT. */
    TH_REPLY_ERR(&reps[5], CORM_EPROGRAMMING);
    CHECK_STR(reps[5].err.sqlstate, "42883");
    CHECK(reps[5].err.hint != NULL);
    CHECK(strstr(reps[5].err.hint, "explicit type casts") != NULL);
    /* Bad input syntax: data. */
    TH_REPLY_ERR(&reps[8], CORM_EDATA);
    CHECK_STR(reps[8].err.sqlstate, "22P02");

    /* The failed INSERT did not happen, the good one did. */
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s WHERE v = 'dup'", t), 0);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", t), 2);
    for (int i = 0; i < n; i++)
        th_reply_clear(&reps[i]);
    th_execf(c, "DROP TABLE %s", t);
    corm_conn_close(c);
}

/* ---- submitting from inside a callback ------------------------------- */

typedef struct chain {
    corm_conn *c;
    int depth;
    int order[8];
    int n;
    th_reply last;
} chain;

static void chain_done(void *ud, corm_result *res, const corm_error *err)
{
    chain *ch = ud;
    int64_t v = -1;
    if (!err)
        corm_result_get_int64(res, 0, 0, &v, NULL);
    ch->order[ch->n++] = (int)v;
    if (ch->depth < 3) {
        ch->depth++;
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d", 10 + ch->depth);
        /* Allowed from a callback; the new request goes to the end. */
        int rc = corm_conn_submit_sql(ch->c, sql, chain_done, ch, NULL, NULL);
        if (rc < 0)
            ch->order[ch->n++] = -100;
    }
}

static int chain_finished(void *arg)
{
    chain *ch = arg;
    return ch->n >= 5;
}

TEST(submit_from_inside_callback)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    chain ch;
    memset(&ch, 0, sizeof ch);
    ch.c = c;
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 1", chain_done, &ch, NULL, &err), &err);
    th_reply second;
    th_reply_init(&second);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 2", th_on_done, &second, NULL, &err), &err);
    /* chain: SELECT 1 -> submits 11 -> 12 -> 13; plus second's completion
     * bumps nothing in ch, so wait for 4 entries and second. */
    int64_t end = th_now_ms() + 20000;
    while (ch.n < 4 || !second.done) {
        CHECK(th_now_ms() < end);
        CHECK_OK(corm_conn_wait(c, 100, &err), &err);
    }
    (void)chain_finished;
    CHECK_EQ_INT(ch.n, 4);
    CHECK_EQ_INT(ch.order[0], 1);
    CHECK_EQ_INT(ch.order[1], 11);
    CHECK_EQ_INT(ch.order[2], 12);
    CHECK_EQ_INT(ch.order[3], 13);
    TH_REPLY_OK(&second);
    th_reply_clear(&second);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    corm_conn_close(c);
}

/* ---- queries are copied at submit ------------------------------------- */

TEST(query_reusable_right_after_submit)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int8, $2::text", &err), &err);
    CHECK_STR(corm_query_text(q), "SELECT $1::int8, $2::text");
    th_reply reps[3];
    for (int i = 0; i < 3; i++) {
        th_reply_init(&reps[i]);
        corm_query_clear_params(q);
        CHECK_EQ_INT(corm_query_nparams(q), 0);
        char s[16];
        snprintf(s, sizeof s, "v%d", i);
        CHECK_OK(corm_query_bind_int64(q, i * 11, &err), &err);
        CHECK_OK(corm_query_bind_text(q, s, -1, &err), &err);
        CHECK_EQ_INT(corm_query_nparams(q), 2);
        CHECK_OK(corm_conn_submit(c, q, th_on_done, &reps[i], NULL, &err), &err);
        /* Scribble over the caller's copy: the request has its own. */
        memset(s, 'z', sizeof s - 1);
    }
    corm_query_free(q);   /* before any completes */
    th_wait_all(c, reps, 3, 20000);
    for (int i = 0; i < 3; i++) {
        TH_REPLY_OK(&reps[i]);
        int64_t v;
        const char *s;
        size_t len;
        char want[16];
        snprintf(want, sizeof want, "v%d", i);
        CHECK_OK(corm_result_get_int64(reps[i].res, 0, 0, &v, &err), &err);
        CHECK_EQ_INT(v, i * 11);
        CHECK_OK(corm_result_get_text(reps[i].res, 0, 1, &s, &len, &err), &err);
        CHECK_STR(s, want);
        th_reply_clear(&reps[i]);
    }
    corm_conn_close(c);
}

/* ---- typed access ------------------------------------------------------ */

TEST(typed_results)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec_sql(c,
                                "SELECT (-32768)::int2 AS a, 2147483647::int4 AS b,"
                                " (-9223372036854775807 - 1)::int8 AS c, 1.5::float4 AS d,"
                                " -2.25e300::float8 AS e, true AS f, false AS g,"
                                " 'h\xc3\xa9llo'::text AS h, 'vc'::varchar(5) AS i,"
                                " '\\x00ff0041'::bytea AS j, NULL::int4 AS k,"
                                " ''::text AS l, ''::bytea AS m",
                                &r, &err),
             &err);
    CHECK_EQ_INT(corm_result_nrows(r), 1);
    CHECK_EQ_INT(corm_result_ncols(r), 13);
    CHECK_STR(corm_result_command(r), "SELECT 1");
    CHECK_EQ_INT(corm_result_affected(r), 1);
    static const uint32_t types[] = {CORM_OID_INT2, CORM_OID_INT4, CORM_OID_INT8,
                                     CORM_OID_FLOAT4, CORM_OID_FLOAT8, CORM_OID_BOOL,
                                     CORM_OID_BOOL, CORM_OID_TEXT, CORM_OID_VARCHAR,
                                     CORM_OID_BYTEA, CORM_OID_INT4, CORM_OID_TEXT,
                                     CORM_OID_BYTEA};
    for (int i = 0; i < 13; i++) {
        char name[2] = {(char)('a' + i), 0};
        CHECK_STR(corm_result_colname(r, i), name);
        CHECK_EQ_INT(corm_result_colindex(r, name), i);
        CHECK_EQ_INT(corm_result_coltype(r, i), types[i]);
        CHECK_EQ_INT(corm_result_isnull(r, 0, i), i == 10);
    }
    CHECK(corm_result_colname(r, 13) == NULL);
    CHECK(corm_result_colname(r, -1) == NULL);
    CHECK_EQ_INT(corm_result_coltype(r, 13), 0);
    CHECK_EQ_INT(corm_result_colindex(r, "nope"), -1);

    int64_t i64;
    double d;
    bool b;
    const char *s;
    const void *p;
    size_t len;
    CHECK_OK(corm_result_get_int64(r, 0, 0, &i64, &err), &err);
    CHECK_EQ_INT(i64, -32768);
    CHECK_OK(corm_result_get_int64(r, 0, 1, &i64, &err), &err);
    CHECK_EQ_INT(i64, 2147483647);
    CHECK_OK(corm_result_get_int64(r, 0, 2, &i64, &err), &err);
    CHECK(i64 == INT64_MIN);
    CHECK_OK(corm_result_get_double(r, 0, 3, &d, &err), &err);
    CHECK(d == 1.5);
    CHECK_OK(corm_result_get_double(r, 0, 4, &d, &err), &err);
    CHECK(d == -2.25e300);
    /* An integer converts to double when exact. */
    CHECK_OK(corm_result_get_double(r, 0, 1, &d, &err), &err);
    CHECK(d == 2147483647.0);
    CHECK_OK(corm_result_get_bool(r, 0, 5, &b, &err), &err);
    CHECK(b == true);
    CHECK_OK(corm_result_get_bool(r, 0, 6, &b, &err), &err);
    CHECK(b == false);
    CHECK_OK(corm_result_get_text(r, 0, 7, &s, &len, &err), &err);
    CHECK_EQ_INT(len, 6);
    CHECK_STR(s, "h\xc3\xa9llo");
    CHECK_OK(corm_result_get_text(r, 0, 8, &s, &len, &err), &err);
    CHECK_STR(s, "vc");
    CHECK_OK(corm_result_get_bytes(r, 0, 9, &p, &len, &err), &err);
    CHECK_EQ_INT(len, 4);
    CHECK_MEM(p, "\x00\xff\x00\x41", 4);
    CHECK_OK(corm_result_get_text(r, 0, 11, &s, &len, &err), &err);
    CHECK_EQ_INT(len, 0);
    CHECK_STR(s, "");
    CHECK_OK(corm_result_get_bytes(r, 0, 12, &p, &len, &err), &err);
    CHECK_EQ_INT(len, 0);

    corm_value v;
    CHECK_OK(corm_result_get(r, 0, 10, &v, &err), &err);
    CHECK_EQ_INT(v.kind, CORM_NULL);
    CHECK_EQ_INT(v.oid, CORM_OID_INT4);
    CHECK_OK(corm_result_get(r, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v.kind, CORM_INT);
    CHECK_EQ_INT(v.oid, CORM_OID_INT2);
    CHECK_OK(corm_result_get(r, 0, 3, &v, &err), &err);
    CHECK_EQ_INT(v.kind, CORM_FLOAT);
    CHECK_OK(corm_result_get(r, 0, 9, &v, &err), &err);
    CHECK_EQ_INT(v.kind, CORM_BYTES);
    CHECK_EQ_INT(v.v.str.len, 4);
    CHECK_OK(corm_result_get(r, 0, 8, &v, &err), &err);
    CHECK_EQ_INT(v.kind, CORM_TEXT);
    corm_result_free(r);
    corm_conn_close(c);
}

#define CHECK_DATA_ERR(expr)                                                   \
    do {                                                                       \
        corm_error e_ = CORM_ERROR_INIT;                                       \
        int rc_ = (expr);                                                      \
        CHECK_MSG(rc_ == CORM_EDATA, "%s returned %d, want CORM_EDATA", #expr, rc_); \
        CHECK_EQ_INT(e_.code, CORM_EDATA);                                     \
        CHECK(e_.message != NULL);                                             \
        corm_error_clear(&e_);                                                 \
    } while (0)

/* Typed getters refuse NULL cells and columns of another type. */
TEST(typed_result_errors)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec_sql(c,
                                "SELECT 1::int4 AS i, 'x'::text AS t, 1.5::float8 AS f,"
                                " true AS b, '\\x01'::bytea AS y, NULL::int8 AS n,"
                                " 9007199254740993::int8 AS big, NULL::text AS nt",
                                &r, &err),
             &err);
    int64_t i64;
    double d;
    bool b;
    const char *s;
    const void *p;
    size_t len;
    /* Wrong type. */
    CHECK_DATA_ERR(corm_result_get_int64(r, 0, 1, &i64, &e_));
    CHECK_DATA_ERR(corm_result_get_int64(r, 0, 2, &i64, &e_));   /* float8 is not int */
    CHECK_DATA_ERR(corm_result_get_int64(r, 0, 3, &i64, &e_));
    CHECK_DATA_ERR(corm_result_get_double(r, 0, 1, &d, &e_));
    CHECK_DATA_ERR(corm_result_get_double(r, 0, 6, &d, &e_));    /* 2^53 + 1: inexact */
    CHECK_DATA_ERR(corm_result_get_bool(r, 0, 0, &b, &e_));
    CHECK_DATA_ERR(corm_result_get_text(r, 0, 0, &s, &len, &e_));
    CHECK_DATA_ERR(corm_result_get_text(r, 0, 4, &s, &len, &e_));
    CHECK_DATA_ERR(corm_result_get_bytes(r, 0, 0, &p, &len, &e_));
    /* NULL. */
    CHECK_DATA_ERR(corm_result_get_int64(r, 0, 5, &i64, &e_));
    CHECK_DATA_ERR(corm_result_get_double(r, 0, 5, &d, &e_));
    CHECK_DATA_ERR(corm_result_get_text(r, 0, 7, &s, &len, &e_));
    CHECK_DATA_ERR(corm_result_get_bytes(r, 0, 7, &p, &len, &e_));
    {
        corm_error e = CORM_ERROR_INIT;
        CHECK_ERR(corm_result_get_int64(r, 0, 5, &i64, &e), CORM_EDATA, &e);
        CHECK(strstr(e.message, "NULL") != NULL);
        CHECK(strstr(e.message, "n") != NULL);
        corm_error_clear(&e);
    }
    /* Out of range cells are misuse. */
    CHECK_ERR(corm_result_get_int64(r, 1, 0, &i64, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_get_int64(r, 0, 8, &i64, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_get_int64(r, -1, 0, &i64, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_result_isnull(r, 0, 99), CORM_EMISUSE);
    CHECK_EQ_INT(corm_result_isnull(r, 5, 0), CORM_EMISUSE);
    corm_value v;
    CHECK_ERR(corm_result_get(r, 0, -1, &v, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    /* The good ones still work after the failures. */
    CHECK_OK(corm_result_get_int64(r, 0, 0, &i64, &err), &err);
    CHECK_EQ_INT(i64, 1);
    corm_result_free(r);
    corm_conn_close(c);
}

/* A result from a statement without rows: command tag and count. */
TEST(command_results)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    char t[96];
    th_name(t, sizeof t, c, "cmd");
    th_execf(c, "CREATE TABLE %s (k int)", t);
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO %s SELECT generate_series(1, 5)", t);
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec_sql(c, sql, &r, &err), &err);
    CHECK_STR(corm_result_command(r), "INSERT 0 5");
    CHECK_EQ_INT(corm_result_affected(r), 5);
    CHECK_EQ_INT(corm_result_nrows(r), 0);
    CHECK_EQ_INT(corm_result_ncols(r), 0);
    corm_result_free(r);
    snprintf(sql, sizeof sql, "UPDATE %s SET k = k + 1 WHERE k > 2", t);
    CHECK_OK(corm_conn_exec_sql(c, sql, &r, &err), &err);
    CHECK_EQ_INT(corm_result_affected(r), 3);
    corm_result_free(r);
    snprintf(sql, sizeof sql, "DROP TABLE %s", t);
    CHECK_OK(corm_conn_exec_sql(c, sql, &r, &err), &err);
    CHECK_STR(corm_result_command(r), "DROP TABLE");
    CHECK_EQ_INT(corm_result_affected(r), -1);
    corm_result_free(r);
    corm_conn_close(c);
}

/* ---- parameters: binary on the wire, read back by the server ----------- */

/* Runs "SELECT pg_typeof($1)::text, $1::text" with one bound value and
 * checks the type the server saw and its text form. */
static void roundtrip(corm_conn *c, const corm_value *val, const char *want_type,
                      const char *want_text)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT pg_typeof($1)::text, $1::text", &err), &err);
    CHECK_OK(corm_query_bind(q, val, &err), &err);
    corm_result *r = NULL;
    int rc = corm_conn_exec(c, q, &r, &err);
    corm_query_free(q);
    CHECK_MSG(rc == 0, "%s: %s", want_type, err.message ? err.message : "");
    const char *s;
    size_t len;
    CHECK_OK(corm_result_get_text(r, 0, 0, &s, &len, &err), &err);
    CHECK_MSG(strcmp(s, want_type) == 0, "type %s, want %s", s, want_type);
    if (want_text == NULL) {
        CHECK_EQ_INT(corm_result_isnull(r, 0, 1), 1);
    } else {
        CHECK_OK(corm_result_get_text(r, 0, 1, &s, &len, &err), &err);
        CHECK_MSG(strcmp(s, want_text) == 0, "%s: text %s, want %s", want_type, s, want_text);
    }
    corm_result_free(r);
}

TEST(bind_each_type_read_back_by_server)
{
    corm_conn *c = th_connect();
    corm_value v;
    memset(&v, 0, sizeof v);

    v = (corm_value){.kind = CORM_BOOL, .v.b = true};
    roundtrip(c, &v, "boolean", "true");
    v = (corm_value){.kind = CORM_BOOL, .v.b = false};
    roundtrip(c, &v, "boolean", "false");
    v = (corm_value){.kind = CORM_INT, .v.i = INT64_MIN};
    roundtrip(c, &v, "bigint", "-9223372036854775808");
    v = (corm_value){.kind = CORM_INT, .oid = CORM_OID_INT8, .v.i = INT64_MAX};
    roundtrip(c, &v, "bigint", "9223372036854775807");
    v = (corm_value){.kind = CORM_INT, .oid = CORM_OID_INT4, .v.i = -2147483647 - 1};
    roundtrip(c, &v, "integer", "-2147483648");
    v = (corm_value){.kind = CORM_INT, .oid = CORM_OID_INT2, .v.i = 32767};
    roundtrip(c, &v, "smallint", "32767");
    v = (corm_value){.kind = CORM_FLOAT, .v.f = 0.1};
    roundtrip(c, &v, "double precision", "0.1");
    v = (corm_value){.kind = CORM_FLOAT, .v.f = -1e308};
    roundtrip(c, &v, "double precision", "-1e+308");
    v = (corm_value){.kind = CORM_FLOAT, .oid = CORM_OID_FLOAT4, .v.f = 1.5};
    roundtrip(c, &v, "real", "1.5");
    v = (corm_value){.kind = CORM_FLOAT, .v.f = INFINITY};
    roundtrip(c, &v, "double precision", "Infinity");
    v = (corm_value){.kind = CORM_TEXT, .oid = CORM_OID_TEXT};
    v.v.str.ptr = "caf\xc3\xa9 'quoted' \\ back";
    v.v.str.len = strlen(v.v.str.ptr);
    roundtrip(c, &v, "text", "caf\xc3\xa9 'quoted' \\ back");
    v = (corm_value){.kind = CORM_TEXT, .oid = CORM_OID_VARCHAR};
    v.v.str.ptr = "vc";
    v.v.str.len = 2;
    roundtrip(c, &v, "character varying", "vc");
    v = (corm_value){.kind = CORM_BYTES};
    v.v.str.ptr = "\x00\xff\x00z";
    v.v.str.len = 4;
    roundtrip(c, &v, "bytea", "\\x00ff007a");
    v = (corm_value){.kind = CORM_NULL, .oid = CORM_OID_INT8};
    roundtrip(c, &v, "bigint", NULL);

    /* The convenience binders, several at once. */
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q,
                            "SELECT $1::text, $2::text, $3::text, $4::text, $5::text,"
                            " $6 IS NULL, length($5), $5 = '\\x610062'::bytea",
                            &err),
             &err);
    CHECK_OK(corm_query_bind_bool(q, true, &err), &err);
    CHECK_OK(corm_query_bind_int64(q, -42, &err), &err);
    CHECK_OK(corm_query_bind_double(q, 2.5, &err), &err);
    CHECK_OK(corm_query_bind_text(q, "abcdef", 3, &err), &err);   /* explicit length */
    CHECK_OK(corm_query_bind_bytes(q, "a\0b", 3, &err), &err);    /* embedded zero */
    CHECK_OK(corm_query_bind_null(q, &err), &err);
    CHECK_EQ_INT(corm_query_nparams(q), 6);
    /* $6 has no type of its own: give it one through the statement. */
    corm_query_free(q);
    CHECK_OK(corm_query_sql(&q,
                            "SELECT $1::text, $2::text, $3::text, $4::text, $5::text,"
                            " $6::int8 IS NULL, length($5), $5 = '\\x610062'::bytea",
                            &err),
             &err);
    CHECK_OK(corm_query_bind_bool(q, true, &err), &err);
    CHECK_OK(corm_query_bind_int64(q, -42, &err), &err);
    CHECK_OK(corm_query_bind_double(q, 2.5, &err), &err);
    CHECK_OK(corm_query_bind_text(q, "abcdef", 3, &err), &err);
    CHECK_OK(corm_query_bind_bytes(q, "a\0b", 3, &err), &err);
    CHECK_OK(corm_query_bind_null(q, &err), &err);
    corm_result *r = NULL;
    CHECK_OK(corm_conn_exec(c, q, &r, &err), &err);
    corm_query_free(q);
    static const char *const want[] = {"true", "-42", "2.5", "abc", "\\x610062"};
    for (int i = 0; i < 5; i++) {
        const char *s;
        size_t len;
        CHECK_OK(corm_result_get_text(r, 0, i, &s, &len, &err), &err);
        CHECK_STR(s, want[i]);
    }
    bool b;
    int64_t n;
    CHECK_OK(corm_result_get_bool(r, 0, 5, &b, &err), &err);
    CHECK(b);
    CHECK_OK(corm_result_get_int64(r, 0, 6, &n, &err), &err);
    CHECK_EQ_INT(n, 3);
    CHECK_OK(corm_result_get_bool(r, 0, 7, &b, &err), &err);
    CHECK(b);
    corm_result_free(r);
    corm_conn_close(c);
}

/* Values that do not fit the requested type fail at bind, naming the
 * parameter, and leave the query's parameters as they were. */
TEST(bind_out_of_range_names_parameter)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int8, $2::int4", &err), &err);
    CHECK_OK(corm_query_bind_int64(q, 1, &err), &err);
    corm_value v = {.kind = CORM_INT, .oid = CORM_OID_INT4, .v.i = (int64_t)INT32_MAX + 1};
    CHECK_ERR(corm_query_bind(q, &v, &err), CORM_EDATA, &err);
    CHECK_EQ_INT(err.code, CORM_EDATA);
    CHECK_MSG(strstr(err.message, "$2") != NULL, "message does not name $2: %s", err.message);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_query_nparams(q), 1);
    v.v.i = (int64_t)INT32_MIN - 1;
    CHECK_ERR(corm_query_bind(q, &v, &err), CORM_EDATA, &err);
    CHECK(strstr(err.message, "$2") != NULL);
    corm_error_clear(&err);

    corm_value s = {.kind = CORM_INT, .oid = CORM_OID_INT2, .v.i = 32768};
    CHECK_ERR(corm_query_bind(q, &s, &err), CORM_EDATA, &err);
    CHECK(strstr(err.message, "$2") != NULL);
    corm_error_clear(&err);
    s.v.i = -32769;
    CHECK_ERR(corm_query_bind(q, &s, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_query_nparams(q), 1);

    /* The first parameter is named $1. */
    corm_query_clear_params(q);
    CHECK_ERR(corm_query_bind(q, &s, &err), CORM_EDATA, &err);
    CHECK_MSG(strstr(err.message, "$1") != NULL, "message does not name $1: %s", err.message);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_query_nparams(q), 0);

    /* In range at the edges is fine, and the query still runs right. */
    CHECK_OK(corm_query_bind_int64(q, 7, &err), &err);
    v.v.i = INT32_MAX;
    CHECK_OK(corm_query_bind(q, &v, &err), &err);
    CHECK_EQ_INT(corm_query_nparams(q), 2);
    const char *dsn = getenv("DATABASE_URL");
    if (dsn && *dsn) {
        corm_conn *c = th_connect();
        corm_result *r = NULL;
        CHECK_OK(corm_conn_exec(c, q, &r, &err), &err);
        int64_t a, b;
        CHECK_OK(corm_result_get_int64(r, 0, 0, &a, &err), &err);
        CHECK_OK(corm_result_get_int64(r, 0, 1, &b, &err), &err);
        CHECK_EQ_INT(a, 7);
        CHECK_EQ_INT(b, INT32_MAX);
        corm_result_free(r);
        corm_conn_close(c);
    }
    corm_query_free(q);
}

/* Text cannot carry a NUL byte in PostgreSQL: refused at bind. */
TEST(bind_text_with_nul_rejected)
{
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::text", &err), &err);
    CHECK_ERR(corm_query_bind_text(q, "a\0b", 3, &err), CORM_EDATA, &err);
    CHECK(strstr(err.message, "$1") != NULL);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_query_nparams(q), 0);
    corm_value v = {.kind = CORM_TEXT, .oid = CORM_OID_VARCHAR};
    v.v.str.ptr = "\0";
    v.v.str.len = 1;
    CHECK_ERR(corm_query_bind(q, &v, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_query_nparams(q), 0);
    /* Up to the NUL (len < 0) is fine. */
    CHECK_OK(corm_query_bind_text(q, "a\0b", -1, &err), &err);
    CHECK_EQ_INT(corm_query_nparams(q), 1);
    corm_query_free(q);
}

/* Big enough to need many reads and partial writes: the host loop must
 * honour CORM_WRITE while a large parameter is being sent. */
TEST(large_parameter_and_result)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    size_t n = 8u << 20;
    unsigned char *blob = malloc(n);
    CHECK(blob != NULL);
    for (size_t i = 0; i < n; i++)
        blob[i] = (unsigned char)(i * 2654435761u >> 13);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT length($1), md5($1), $1", &err), &err);
    CHECK_OK(corm_query_bind_bytes(q, blob, n, &err), &err);
    th_reply big, rows, after;
    th_reply_init(&big);
    th_reply_init(&rows);
    th_reply_init(&after);
    CHECK_OK(corm_conn_submit(c, q, th_on_done, &big, NULL, &err), &err);
    corm_query_free(q);
    /* 8 MB usually do not fit the socket at once, so the engine asks for
     * WRITE until they are out (not asserted: a fast reader on the other
     * end can take it all); READ stays set either way. */
    CHECK(corm_conn_events(c) & CORM_READ);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT g, repeat('x', g % 100) FROM generate_series(1, 200000) g",
                                  th_on_done, &rows, NULL, &err),
             &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 5", th_on_done, &after, NULL, &err), &err);
    th_wait_reply(c, &after, 120000);
    CHECK_EQ_INT(corm_conn_events(c), CORM_READ);   /* nothing left to send */
    TH_REPLY_OK(&big);
    int64_t len;
    CHECK_OK(corm_result_get_int64(big.res, 0, 0, &len, &err), &err);
    CHECK_EQ_INT(len, n);
    const void *p;
    size_t plen;
    CHECK_OK(corm_result_get_bytes(big.res, 0, 2, &p, &plen, &err), &err);
    CHECK_EQ_INT(plen, n);
    CHECK(memcmp(p, blob, n) == 0);
    TH_REPLY_OK(&rows);
    CHECK_EQ_INT(corm_result_nrows(rows.res), 200000);
    int64_t g;
    const char *s;
    size_t slen;
    CHECK_OK(corm_result_get_int64(rows.res, 199998, 0, &g, &err), &err);
    CHECK_EQ_INT(g, 199999);
    CHECK_OK(corm_result_get_text(rows.res, 199998, 1, &s, &slen, &err), &err);
    CHECK_EQ_INT(slen, 99);
    TH_REPLY_OK(&after);
    th_reply_clear(&big);
    th_reply_clear(&rows);
    th_reply_clear(&after);
    free(blob);
    corm_conn_close(c);
}

/* The blocking helper waits for its own request while the others already
 * in flight complete (their callbacks run inside it). */
TEST(blocking_exec_progresses_other_requests)
{
    corm_conn *c = th_connect();
    corm_error err = CORM_ERROR_INIT;
    th_reply a, b;
    th_reply_init(&a);
    th_reply_init(&b);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT pg_sleep(0.1), 1", th_on_done, &a, NULL, &err),
             &err);
    CHECK_OK(corm_conn_submit_sql(c, "SELECT 2", th_on_done, &b, NULL, &err), &err);
    CHECK_EQ_INT(th_int(c, "SELECT 3"), 3);
    TH_REPLY_OK(&a);
    TH_REPLY_OK(&b);
    CHECK(a.seq < b.seq);
    CHECK_EQ_INT(corm_conn_pending(c), 0);
    th_reply_clear(&a);
    th_reply_clear(&b);
    corm_conn_close(c);
}
