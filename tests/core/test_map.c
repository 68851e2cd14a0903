/*
 * test_map.c - rows mapped into C structs (corm_map, corm_result_map):
 * every C type, NULLs with and without flags, lossless-conversion and range
 * errors, strides, a 100,000-row map checked value by value, the
 * result-owned array, misuse, and out of memory.
 */
#define CTEST_MAIN
#include "corm_int.h" /* corm__result_new, libpq: results built by hand */

#include "ctest.h"
#include "test_helpers.h"

#include <math.h>
#include <stdalign.h>
#include <stdlib.h>

#define NF(a) (sizeof(a) / sizeof((a)[0]))

/* Runs sql (no parameters) and returns its result; the caller frees it. */
static corm_result *query(corm_conn *c, const char *sql)
{
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    int rc = corm_conn_exec_sql(c, sql, &r, &err);
    CHECK_MSG(rc == 0, "%s: %s [%s]", sql, err.message ? err.message : "?", err.sqlstate);
    return r;
}

static corm_map *new_map(size_t size, const corm_field *fields, size_t n)
{
    corm_error err = CORM_ERROR_INIT;
    corm_map *m = NULL;
    CHECK_OK(corm_map_new(&m, size, NULL, &err), &err);
    CHECK_OK(corm_map_add_fields(m, fields, n, &err), &err);
    CHECK_EQ_INT(corm_map_nfields(m), n);
    return m;
}

/* err holds a message containing every one of the (NULL-terminated) words. */
static void check_message(const corm_error *err, ...)
{
    CHECK(err->message != NULL);
    va_list ap;
    va_start(ap, err);
    for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *))
        CHECK_MSG(strstr(err->message, w) != NULL, "message \"%s\" lacks \"%s\"", err->message,
                  w);
    va_end(ap);
}

/* ---- every C type --------------------------------------------------------- */

struct everything {
    int16_t i16;
    int32_t i32;
    int64_t i64;
    int32_t i4_to_32;
    int64_t i2_to_64, oid_to_64;
    float f32, f4_to_f32;
    double f64, i4_to_f64;
    bool b;
    const char *text;
    size_t text_len;
    const char *vc, *bp, *nm, *ch, *json, *jsonb, *num;
    size_t num_len;
    const void *bytes;
    size_t bytes_len;
    const void *enum_bytes;
    size_t enum_len;
    const void *text_bytes;
    size_t text_bytes_len;
    int64_t ts, tstz, tm;
    int32_t date;
    uint8_t uuid[16];
    corm_interval iv;
    corm_value arr, ttz;
};

#define E struct everything
static const corm_field everything_fields[] = {
    CORM_FIELD("i16", CORM_C_INT16, E, i16),
    CORM_FIELD("i32", CORM_C_INT32, E, i32),
    CORM_FIELD("i64", CORM_C_INT64, E, i64),
    CORM_FIELD("i8small", CORM_C_INT32, E, i4_to_32),
    CORM_FIELD("i16", CORM_C_INT64, E, i2_to_64),
    CORM_FIELD("o", CORM_C_INT64, E, oid_to_64),
    CORM_FIELD("f4", CORM_C_FLOAT, E, f4_to_f32),
    CORM_FIELD("f8half", CORM_C_FLOAT, E, f32),
    CORM_FIELD("f8", CORM_C_DOUBLE, E, f64),
    CORM_FIELD("i32", CORM_C_DOUBLE, E, i4_to_f64),
    CORM_FIELD("b", CORM_C_BOOL, E, b),
    CORM_FIELD_LEN("t", CORM_C_TEXT, E, text, text_len),
    CORM_FIELD("vc", CORM_C_TEXT, E, vc),
    CORM_FIELD("bp", CORM_C_TEXT, E, bp),
    CORM_FIELD("nm", CORM_C_TEXT, E, nm),
    CORM_FIELD("ch", CORM_C_TEXT, E, ch),
    CORM_FIELD("j", CORM_C_TEXT, E, json),
    CORM_FIELD("jb", CORM_C_TEXT, E, jsonb),
    CORM_FIELD_LEN("num", CORM_C_TEXT, E, num, num_len),
    CORM_FIELD_LEN("by", CORM_C_BYTES, E, bytes, bytes_len),
    CORM_FIELD_LEN("en", CORM_C_BYTES, E, enum_bytes, enum_len),
    CORM_FIELD_LEN("t", CORM_C_BYTES, E, text_bytes, text_bytes_len),
    CORM_FIELD("ts", CORM_C_USEC, E, ts),
    CORM_FIELD("tstz", CORM_C_USEC, E, tstz),
    CORM_FIELD("tm", CORM_C_USEC, E, tm),
    CORM_FIELD("d", CORM_C_DAYS, E, date),
    CORM_FIELD("u", CORM_C_UUID, E, uuid),
    CORM_FIELD("iv", CORM_C_INTERVAL, E, iv),
    CORM_FIELD("arr", CORM_C_VALUE, E, arr),
    CORM_FIELD("ttz", CORM_C_VALUE, E, ttz),
};
#undef E

static const char everything_sql[] =
    "SELECT (-32768)::int2 AS i16, 2147483647::int4 AS i32, (-9223372036854775808)::int8 AS i64,"
    " (-2147483648)::int8 AS i8small, 4000000000::oid AS o, 1.5::float4 AS f4,"
    " 0.25::float8 AS f8half, 0.1::float8 AS f8, true AS b, 'héllo'::text AS t,"
    " 'v'::varchar(10) AS vc, 'ab'::char(4) AS bp, 'nm'::name AS nm, 'x'::\"char\" AS ch,"
    " '{\"a\": 1}'::json AS j, '{\"a\": 1}'::jsonb AS jb, -12.50::numeric AS num,"
    " '\\x00ff01'::bytea AS by, 'happy'::pg_temp.mood AS en,"
    " '2000-01-02 00:00:01.5'::timestamp AS ts,"
    " '2000-01-01 00:00:00+01'::timestamptz AS tstz, '00:00:02'::time AS tm,"
    " '1999-12-31'::date AS d, '00112233-4455-6677-8899-aabbccddeeff'::uuid AS u,"
    " '1 mon 2 days 3.000004 sec'::interval AS iv, ARRAY[1, NULL, 3]::int4[] AS arr,"
    " '01:00:00+02'::timetz AS ttz";

static void check_everything(const struct everything *e)
{
    CHECK_EQ_INT(e->i16, -32768);
    CHECK_EQ_INT(e->i32, 2147483647);
    CHECK(e->i64 == INT64_MIN);
    CHECK_EQ_INT(e->i4_to_32, INT32_MIN);
    CHECK_EQ_INT(e->i2_to_64, -32768);
    CHECK_EQ_INT(e->oid_to_64, 4000000000LL);
    CHECK(e->f4_to_f32 == 1.5f);
    CHECK(e->f32 == 0.25f);
    CHECK(e->f64 == 0.1);
    CHECK(e->i4_to_f64 == 2147483647.0);
    CHECK(e->b == true);
    CHECK_STR(e->text, "héllo");
    CHECK_EQ_INT(e->text_len, strlen("héllo"));
    CHECK_STR(e->vc, "v");
    CHECK_STR(e->bp, "ab  ");
    CHECK_STR(e->nm, "nm");
    CHECK_STR(e->ch, "x");
    CHECK_STR(e->json, "{\"a\": 1}");
    CHECK_STR(e->jsonb, "{\"a\": 1}");
    CHECK_STR(e->num, "-12.50");
    CHECK_EQ_INT(e->num_len, 6);
    CHECK_EQ_INT(e->bytes_len, 3);
    CHECK_MEM(e->bytes, "\x00\xff\x01", 3);
    CHECK_EQ_INT(e->enum_len, 5);
    CHECK_MEM(e->enum_bytes, "happy", 5);
    CHECK_EQ_INT(e->text_bytes_len, e->text_len);
    CHECK(e->text_bytes == (const void *)e->text);
    CHECK_EQ_INT(e->ts, INT64_C(86400000000) + 1500000);
    CHECK_EQ_INT(e->tstz, -INT64_C(3600000000));
    CHECK_EQ_INT(e->tm, 2000000);
    CHECK_EQ_INT(e->date, -1);
    CHECK_MEM(e->uuid, "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
    CHECK_EQ_INT(e->iv.months, 1);
    CHECK_EQ_INT(e->iv.days, 2);
    CHECK_EQ_INT(e->iv.usec, 3000004);
    CHECK_EQ_INT(e->arr.kind, CORM_ARRAY);
    CHECK_EQ_INT(e->arr.oid, CORM_OID_INT4_ARRAY);
    corm_error err = CORM_ERROR_INIT;
    corm_array a;
    CHECK_OK(corm_array_init(&a, &e->arr, &err), &err);
    CHECK_EQ_INT(a.nitems, 3);
    corm_value item;
    CHECK_OK(corm_array_get(&a, 2, &item, &err), &err);
    CHECK_EQ_INT(item.v.i, 3);
    CHECK_EQ_INT(e->ttz.kind, CORM_TIMETZ);
    CHECK_EQ_INT(e->ttz.v.tz.usec, INT64_C(3600000000));
    CHECK_EQ_INT(e->ttz.v.tz.zone, 7200);
}

TEST(every_c_type)
{
    corm_conn *c = th_connect();
    th_exec(c, "SET TIME ZONE 'UTC'");
    th_exec(c, "CREATE TYPE pg_temp.mood AS ENUM ('sad', 'happy')");
    corm_result *r = query(c, everything_sql);
    corm_map *m = new_map(sizeof(struct everything), everything_fields, NF(everything_fields));
    corm_error err = CORM_ERROR_INIT;
    struct everything e;
    memset(&e, 0xA5, sizeof e);
    size_t n = 99;
    CHECK_OK(corm_result_map(r, m, &e, 1, sizeof e, &n, &err), &err);
    CHECK_EQ_INT(n, 1);
    check_everything(&e);

    /* Mapping again re-plans and rewrites the same values. */
    memset(&e, 0, sizeof e);
    CHECK_OK(corm_result_map(r, m, &e, 1, 0, &n, &err), &err);
    check_everything(&e);

    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

/* Columns by index, and the widenings that always fit. */
TEST(by_index_and_widening)
{
    struct w {
        int16_t a16;
        int32_t a32;
        int64_t a64;
        float af;
        double ad;
        int64_t b64;
        double bd;
        double fd;
    } w;
    static const corm_field fields[] = {
        CORM_FIELD_AT(0, CORM_C_INT16, struct w, a16, 0),
        CORM_FIELD_AT(0, CORM_C_INT32, struct w, a32, 0),
        CORM_FIELD_AT(0, CORM_C_INT64, struct w, a64, 0),
        CORM_FIELD_AT(0, CORM_C_FLOAT, struct w, af, 0),
        CORM_FIELD_AT(0, CORM_C_DOUBLE, struct w, ad, 0),
        CORM_FIELD_AT(1, CORM_C_INT64, struct w, b64, 0),
        CORM_FIELD_AT(1, CORM_C_DOUBLE, struct w, bd, 0),
        CORM_FIELD_AT(2, CORM_C_DOUBLE, struct w, fd, 0),
    };
    corm_conn *c = th_connect();
    corm_result *r = query(c, "SELECT 32767::int2, (-2147483648)::int4, 1.25::float4");
    corm_map *m = new_map(sizeof w, fields, NF(fields));
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_result_map(r, m, &w, 1, 0, NULL, &err), &err);
    CHECK_EQ_INT(w.a16, 32767);
    CHECK_EQ_INT(w.a32, 32767);
    CHECK_EQ_INT(w.a64, 32767);
    CHECK(w.af == 32767.0f);
    CHECK(w.ad == 32767.0);
    CHECK_EQ_INT(w.b64, INT32_MIN);
    CHECK(w.bd == (double)INT32_MIN);
    CHECK(w.fd == 1.25);
    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

/* One map, results whose columns come in another order (and extra ones). */
TEST(map_reused_across_shapes)
{
    struct p {
        int64_t id;
        const char *name;
    } p[2];
    static const corm_field fields[] = {
        CORM_FIELD("id", CORM_C_INT64, struct p, id),
        CORM_FIELD("name", CORM_C_TEXT, struct p, name),
    };
    corm_conn *c = th_connect();
    corm_map *m = new_map(sizeof p[0], fields, NF(fields));
    corm_error err = CORM_ERROR_INIT;
    corm_result *r1 = query(c, "SELECT 7::int4 AS id, 'a' AS name");
    corm_result *r2 = query(c, "SELECT 'x' AS other, 'b' AS name, 8::int8 AS id"
                               " UNION ALL SELECT 'y', 'c', 9");
    size_t n = 0;
    CHECK_OK(corm_result_map(r1, m, p, 2, 0, &n, &err), &err);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(p[0].id, 7);
    CHECK_STR(p[0].name, "a");
    CHECK_OK(corm_result_map(r2, m, p, 2, 0, &n, &err), &err);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(p[0].id, 8);
    CHECK_STR(p[0].name, "b");
    CHECK_EQ_INT(p[1].id, 9);
    CHECK_STR(p[1].name, "c");
    corm_result_free(r1);
    corm_result_free(r2);
    corm_map_free(m);
    corm_conn_close(c);
}

/* ---- NULLs ------------------------------------------------------------------ */

struct nullable {
    int64_t i;
    bool i_null;
    const char *t;
    size_t t_len;
    bool t_null;
    double d;          /* NULL as zero, no flag */
    const char *z;     /* NULL as zero, no flag */
    corm_value v;      /* NULL as CORM_NULL */
    uint8_t u[16];
    bool u_null;
    corm_interval iv;
    bool iv_null;
};

#define N struct nullable
static const corm_field nullable_fields[] = {
    CORM_FIELD_NULL("i", CORM_C_INT64, N, i, i_null),
    CORM_FIELD_LEN_NULL("t", CORM_C_TEXT, N, t, t_len, t_null),
    CORM_FIELD_ZERO("d", CORM_C_DOUBLE, N, d),
    CORM_FIELD_ZERO("t", CORM_C_TEXT, N, z),
    CORM_FIELD("v", CORM_C_VALUE, N, v),
    CORM_FIELD_NULL("u", CORM_C_UUID, N, u, u_null),
    CORM_FIELD_NULL("iv", CORM_C_INTERVAL, N, iv, iv_null),
};
#undef N

TEST(nulls_with_flags_and_zero)
{
    corm_conn *c = th_connect();
    corm_result *r = query(
        c, "SELECT * FROM (VALUES"
           " (1::int8, 'one'::text, 1.5::float8, 10::int4, gen_random_uuid(), '1 day'::interval),"
           " (NULL, NULL, NULL, NULL, NULL, NULL)) AS t(i, t, d, v, u, iv)");
    corm_map *m = new_map(sizeof(struct nullable), nullable_fields, NF(nullable_fields));
    corm_error err = CORM_ERROR_INIT;
    struct nullable rows[2];
    memset(rows, 0x5A, sizeof rows);
    size_t n = 0;
    CHECK_OK(corm_result_map(r, m, rows, 2, sizeof rows[0], &n, &err), &err);
    CHECK_EQ_INT(n, 2);

    CHECK_EQ_INT(rows[0].i, 1);
    CHECK(!rows[0].i_null);
    CHECK_STR(rows[0].t, "one");
    CHECK_EQ_INT(rows[0].t_len, 3);
    CHECK(!rows[0].t_null);
    CHECK(rows[0].d == 1.5);
    CHECK_STR(rows[0].z, "one");
    CHECK_EQ_INT(rows[0].v.kind, CORM_INT);
    CHECK_EQ_INT(rows[0].v.v.i, 10);
    CHECK(!rows[0].u_null);
    CHECK(!rows[0].iv_null);
    CHECK_EQ_INT(rows[0].iv.days, 1);

    static const uint8_t zero16[16];
    CHECK_EQ_INT(rows[1].i, 0);
    CHECK(rows[1].i_null);
    CHECK(rows[1].t == NULL);
    CHECK_EQ_INT(rows[1].t_len, 0);
    CHECK(rows[1].t_null);
    CHECK(rows[1].d == 0.0);
    CHECK(rows[1].z == NULL);
    CHECK_EQ_INT(rows[1].v.kind, CORM_NULL);
    CHECK_EQ_INT(rows[1].v.oid, CORM_OID_INT4);
    CHECK(rows[1].u_null);
    CHECK_MEM(rows[1].u, zero16, 16);
    CHECK(rows[1].iv_null);
    CHECK_EQ_INT(rows[1].iv.usec, 0);
    CHECK_EQ_INT(rows[1].iv.days, 0);
    CHECK_EQ_INT(rows[1].iv.months, 0);

    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

TEST(null_without_flag_is_data_error)
{
    struct s {
        int64_t id;
        const char *name;
    } rows[3];
    static const corm_field fields[] = {
        CORM_FIELD("id", CORM_C_INT64, struct s, id),
        CORM_FIELD("name", CORM_C_TEXT, struct s, name),
    };
    corm_conn *c = th_connect();
    corm_result *r = query(c, "SELECT * FROM (VALUES (1::int8, 'a'), (2, 'b'), (3, NULL))"
                              " AS t(id, name)");
    corm_map *m = new_map(sizeof rows[0], fields, NF(fields));
    corm_error err = CORM_ERROR_INIT;
    size_t n = 99;
    CHECK_ERR(corm_result_map(r, m, rows, 3, 0, &n, &err), CORM_EDATA, &err);
    CHECK_EQ_INT(err.code, CORM_EDATA);
    check_message(&err, "\"name\"", "row 2", "NULL", (char *)NULL);
    CHECK_EQ_INT(n, 2);          /* rows 0 and 1 are complete */
    CHECK_EQ_INT(rows[1].id, 2);
    CHECK_STR(rows[1].name, "b");
    corm_error_clear(&err);

    /* The allocating variant returns nothing on the same error. */
    void *arr = (void *)1;
    size_t na = 99;
    CHECK_ERR(corm_result_map_alloc(r, m, &arr, &na, &err), CORM_EDATA, &err);
    CHECK(arr == NULL);
    CHECK_EQ_INT(na, 0);
    corm_error_clear(&err);

    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

/* ---- conversions that are refused ----------------------------------------- */

/* Maps column "x" of sql into a one-field struct of C type ctype, expecting
 * CORM_EDATA before anything is written; the message must hold `word`. */
static void refused(corm_conn *c, const char *sql, int ctype, size_t member_size,
                    const char *word)
{
    union {
        uint8_t bytes[64];
        corm_value v;
    } slot;
    corm_field f = {.column = "x", .type = ctype, .offset = 0, .size = member_size};
    if (ctype == CORM_C_BYTES) {
        f.flags = CORM_FIELD_HAS_LEN;
        f.len_offset = 8;
    }
    corm_map *m = new_map(sizeof slot, &f, 1);
    corm_result *r = query(c, sql);
    corm_error err = CORM_ERROR_INIT;
    memset(&slot, 0x77, sizeof slot);
    size_t n = 99;
    int rc = corm_result_map(r, m, &slot, 1, 0, &n, &err);
    CHECK_MSG(rc == CORM_EDATA, "%s into C type %d: %d (%s)", sql, ctype, rc,
              err.message ? err.message : "no message");
    check_message(&err, "\"x\"", word, (char *)NULL);
    CHECK_EQ_INT(n, 0);
    for (size_t i = 0; i < sizeof slot.bytes; i++)
        CHECK_EQ_INT(slot.bytes[i], 0x77);
    corm_error_clear(&err);
    corm_map_free(m);
    corm_result_free(r);
}

TEST(type_mismatch_errors)
{
    corm_conn *c = th_connect();
    refused(c, "SELECT 1.0::float8 AS x", CORM_C_INT64, 8, "float8");
    refused(c, "SELECT 1.0::float4 AS x", CORM_C_INT32, 4, "CORM_C_INT32");
    refused(c, "SELECT 1::numeric AS x", CORM_C_INT64, 8, "numeric");
    refused(c, "SELECT 1::numeric AS x", CORM_C_DOUBLE, 8, "CORM_C_DOUBLE");
    refused(c, "SELECT '1'::text AS x", CORM_C_INT32, 4, "text");
    refused(c, "SELECT 1::int4 AS x", CORM_C_BOOL, 1, "int4");
    refused(c, "SELECT true AS x", CORM_C_INT16, 2, "bool");
    refused(c, "SELECT 1::int4 AS x", CORM_C_TEXT, sizeof(char *), "CORM_C_TEXT");
    refused(c, "SELECT '\\x01'::bytea AS x", CORM_C_TEXT, sizeof(char *), "bytea");
    refused(c, "SELECT 1::numeric AS x", CORM_C_BYTES, sizeof(void *), "CORM_C_BYTES");
    refused(c, "SELECT now() AS x", CORM_C_DAYS, 4, "timestamptz");
    refused(c, "SELECT current_date AS x", CORM_C_USEC, 8, "date");
    refused(c, "SELECT now() AS x", CORM_C_INT64, 8, "timestamptz");
    refused(c, "SELECT '01:00+02'::timetz AS x", CORM_C_USEC, 8, "timetz");
    refused(c, "SELECT 'a'::text AS x", CORM_C_UUID, 16, "CORM_C_UUID");
    refused(c, "SELECT 1::int8 AS x", CORM_C_INTERVAL, sizeof(corm_interval), "int8");
    refused(c, "SELECT ARRAY[1] AS x", CORM_C_BYTES, sizeof(void *), "array");
    corm_conn_close(c);
}

/* ---- values that do not fit, per cell ------------------------------------ */

/* Maps column "x" (one column, several rows) into ctype; expects the first
 * `good` rows to map and row `good` to fail with CORM_EDATA. good == nrows:
 * all map. Returns the mapped values through out (as doubles). */
static void per_cell(corm_conn *c, const char *sql, int ctype, int good, double *out)
{
    union cell {
        int16_t i16;
        int32_t i32;
        int64_t i64;
        float f;
        double d;
    } cells[8];
    corm_field f = {.column = "x", .type = ctype, .offset = 0};
    corm_map *m = new_map(sizeof cells[0], &f, 1);
    corm_result *r = query(c, sql);
    int nrows = corm_result_nrows(r);
    CHECK(nrows <= 8);
    corm_error err = CORM_ERROR_INIT;
    size_t n = 99;
    int rc = corm_result_map(r, m, cells, 8, 0, &n, &err);
    if (good == nrows) {
        CHECK_MSG(rc == 0, "%s: %s", sql, err.message ? err.message : "?");
    } else {
        CHECK_MSG(rc == CORM_EDATA, "%s: expected a data error in row %d, got %d", sql, good,
                  rc);
        char row[32];
        snprintf(row, sizeof row, "row %d", good);
        check_message(&err, "\"x\"", row, (char *)NULL);
        corm_error_clear(&err);
    }
    CHECK_EQ_INT(n, good);
    for (int i = 0; i < good && out; i++) {
        switch (ctype) {
        case CORM_C_INT16: out[i] = cells[i].i16; break;
        case CORM_C_INT32: out[i] = cells[i].i32; break;
        case CORM_C_INT64: out[i] = (double)cells[i].i64; break;
        case CORM_C_FLOAT: out[i] = cells[i].f; break;
        default: out[i] = cells[i].d; break;
        }
    }
    corm_map_free(m);
    corm_result_free(r);
}

TEST(int_range_per_cell)
{
    corm_conn *c = th_connect();
    double v[8];
    per_cell(c, "SELECT x::int8 FROM (VALUES (2147483647), (-2147483648), (2147483648)) t(x)",
             CORM_C_INT32, 2, v);
    CHECK(v[0] == 2147483647.0 && v[1] == -2147483648.0);
    per_cell(c, "SELECT x::int8 FROM (VALUES (1), (-2147483649)) t(x)", CORM_C_INT32, 1, NULL);
    per_cell(c, "SELECT x::int8 FROM (VALUES (-1), (1099511627776)) t(x)", CORM_C_INT32, 1, NULL);
    per_cell(c, "SELECT x::int4 FROM (VALUES (32767), (-32768), (32768)) t(x)", CORM_C_INT16, 2,
             v);
    CHECK(v[0] == 32767.0 && v[1] == -32768.0);
    per_cell(c, "SELECT x::int8 FROM (VALUES (-32769)) t(x)", CORM_C_INT16, 0, NULL);
    per_cell(c, "SELECT x::oid FROM (VALUES (2147483647), (2147483648)) t(x)", CORM_C_INT32, 1,
             NULL);
    per_cell(c, "SELECT x::oid FROM (VALUES (4294967295)) t(x)", CORM_C_INT64, 1, v);
    CHECK(v[0] == 4294967295.0);
    /* Integers into floats only when exact. */
    per_cell(c, "SELECT x::int8 FROM (VALUES (9007199254740992), (-9007199254740992),"
                " (9007199254740993)) t(x)", CORM_C_DOUBLE, 2, v);
    CHECK(v[0] == 9007199254740992.0 && v[1] == -9007199254740992.0);
    per_cell(c, "SELECT x::int4 FROM (VALUES (16777216), (16777217)) t(x)", CORM_C_FLOAT, 1, v);
    CHECK(v[0] == 16777216.0);
    /* float8 into float: exact values, NaN and the infinities only. */
    per_cell(c, "SELECT x::float8 FROM (VALUES ('0.5'), ('NaN'), ('Infinity'), ('-Infinity'),"
                " ('-3.25'), ('0.1')) t(x)", CORM_C_FLOAT, 5, v);
    CHECK(v[0] == 0.5 && isnan(v[1]) && isinf(v[2]) && v[2] > 0 && isinf(v[3]) && v[3] < 0 &&
          v[4] == -3.25);
    per_cell(c, "SELECT x::float8 FROM (VALUES ('1e300')) t(x)", CORM_C_FLOAT, 0, NULL);
    per_cell(c, "SELECT x::float8 FROM (VALUES ('1e-300')) t(x)", CORM_C_FLOAT, 0, NULL);
    /* float4 into double always fits. */
    per_cell(c, "SELECT x::float4 FROM (VALUES ('0.1'), ('NaN')) t(x)", CORM_C_DOUBLE, 2, v);
    CHECK(v[0] == (double)0.1f && isnan(v[1]));

    /* The message names the value. */
    corm_field f = {.column = "x", .type = CORM_C_INT32};
    corm_map *m = new_map(sizeof(int32_t), &f, 1);
    corm_result *r = query(c, "SELECT 3000000000::int8 AS x");
    corm_error err = CORM_ERROR_INIT;
    int32_t out = 0;
    CHECK_ERR(corm_result_map(r, m, &out, 1, 0, NULL, &err), CORM_EDATA, &err);
    check_message(&err, "3000000000", "CORM_C_INT32", "row 0", (char *)NULL);
    corm_error_clear(&err);
    corm_result_free(r);
    corm_map_free(m);
    corm_conn_close(c);
}

/* Special values survive: infinities of dates and timestamps, "char" NUL. */
TEST(special_values)
{
    struct sv {
        int64_t ts_inf, ts_ninf;
        int32_t d_inf, d_ninf;
        const char *nulch;
        size_t nulch_len;
        const char *nan, *pinf;
        double f_nan;
        int64_t t24;
    } s;
    static const corm_field fields[] = {
        CORM_FIELD("a", CORM_C_USEC, struct sv, ts_inf),
        CORM_FIELD("b", CORM_C_USEC, struct sv, ts_ninf),
        CORM_FIELD("c", CORM_C_DAYS, struct sv, d_inf),
        CORM_FIELD("d", CORM_C_DAYS, struct sv, d_ninf),
        CORM_FIELD_LEN("e", CORM_C_TEXT, struct sv, nulch, nulch_len),
        CORM_FIELD("f", CORM_C_TEXT, struct sv, nan),
        CORM_FIELD("g", CORM_C_TEXT, struct sv, pinf),
        CORM_FIELD("h", CORM_C_DOUBLE, struct sv, f_nan),
        CORM_FIELD("i", CORM_C_USEC, struct sv, t24),
    };
    corm_conn *c = th_connect();
    corm_result *r = query(c, "SELECT 'infinity'::timestamptz AS a, '-infinity'::timestamp AS b,"
                              " 'infinity'::date AS c, '-infinity'::date AS d,"
                              " ''::\"char\" AS e, 'NaN'::numeric AS f,"
                              " 'Infinity'::numeric AS g, 'NaN'::float8 AS h,"
                              " '24:00:00'::time AS i");
    corm_map *m = new_map(sizeof s, fields, NF(fields));
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_result_map(r, m, &s, 1, 0, NULL, &err), &err);
    CHECK(s.ts_inf == CORM_TIMESTAMP_INFINITY);
    CHECK(s.ts_ninf == CORM_TIMESTAMP_NEG_INFINITY);
    CHECK(s.d_inf == CORM_DATE_INFINITY);
    CHECK(s.d_ninf == CORM_DATE_NEG_INFINITY);
    CHECK_STR(s.nulch, "");
    CHECK_EQ_INT(s.nulch_len, 0);
    CHECK_STR(s.nan, "NaN");
    CHECK_STR(s.pinf, "Infinity");
    CHECK(isnan(s.f_nan));
    CHECK_EQ_INT(s.t24, INT64_C(86400000000));
    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

/* Empty values are not NULLs; timestamps and dates far from 2000 take the
 * codec's exact range check. */
TEST(empty_values_and_far_dates)
{
    struct ev {
        const char *t;
        size_t t_len;
        bool t_null;
        const void *by;
        size_t by_len;
        int64_t old_ts, far_ts;
        int32_t old_d, far_d;
    } e;
    static const corm_field fields[] = {
        CORM_FIELD_LEN_NULL("t", CORM_C_TEXT, struct ev, t, t_len, t_null),
        CORM_FIELD_LEN("by", CORM_C_BYTES, struct ev, by, by_len),
        CORM_FIELD("ots", CORM_C_USEC, struct ev, old_ts),
        CORM_FIELD("fts", CORM_C_USEC, struct ev, far_ts),
        CORM_FIELD("od", CORM_C_DAYS, struct ev, old_d),
        CORM_FIELD("fd", CORM_C_DAYS, struct ev, far_d),
    };
    corm_conn *c = th_connect();
    corm_result *r = query(c, "SELECT ''::text AS t, ''::bytea AS by,"
                              " '4713-01-01 00:00 BC'::timestamp AS ots,"
                              " '200000-01-01 00:00'::timestamp AS fts,"
                              " '4713-01-01 BC'::date AS od, '5000000-01-01'::date AS fd,"
                              " '4713-01-01 00:00 BC'::timestamp"
                              "   - '2000-01-01'::timestamp AS ots_i,"
                              " '5000000-01-01'::date - '2000-01-01'::date AS fd_i");
    corm_map *m = new_map(sizeof e, fields, NF(fields));
    corm_error err = CORM_ERROR_INIT;
    memset(&e, 0x11, sizeof e);
    CHECK_OK(corm_result_map(r, m, &e, 1, 0, NULL, &err), &err);
    CHECK_STR(e.t, "");
    CHECK_EQ_INT(e.t_len, 0);
    CHECK(!e.t_null);
    CHECK(e.by != NULL);
    CHECK_EQ_INT(e.by_len, 0);
    corm_value v;
    CHECK_OK(corm_result_get(r, 0, 2, &v, &err), &err);
    CHECK_EQ_INT(e.old_ts, v.v.i);
    CHECK(e.old_ts < -(INT64_C(1) << 57));
    CHECK_OK(corm_result_get(r, 0, 3, &v, &err), &err);
    CHECK_EQ_INT(e.far_ts, v.v.i);
    CHECK(e.far_ts > (INT64_C(1) << 57));
    CHECK_OK(corm_result_get(r, 0, 4, &v, &err), &err);
    CHECK_EQ_INT(e.old_d, v.v.i);
    CHECK(e.old_d < -(1 << 21));
    int64_t days = 0;
    CHECK_OK(corm_result_get_int64(r, 0, 7, &days, &err), &err);
    CHECK_EQ_INT(e.far_d, days);
    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

/* Malformed bytes (a result built by hand, as a broken server might send
 * it): a data error naming the column and row, never a read past a value. */
static corm_result *fake_result(uint32_t oid, const char *value, int len)
{
    PGresult *pg = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    CHECK(pg != NULL);
    PGresAttDesc att = {.name = (char *)"x", .format = 1, .typid = oid, .typlen = -1,
                        .atttypmod = -1};
    CHECK(PQsetResultAttrs(pg, 1, &att));
    CHECK(PQsetvalue(pg, 0, 0, (char *)value, len));
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm_result *r = corm__result_new(&a, pg);
    CHECK(r != NULL);
    return r;
}

static void malformed(uint32_t oid, const char *value, int len, int ctype, const char *word)
{
    union {
        uint8_t bytes[64];
        corm_value v;
    } slot;
    corm_field f = {.column = "x", .type = ctype, .offset = 0};
    corm_map *m = new_map(sizeof slot, &f, 1);
    corm_result *r = fake_result(oid, value, len);
    corm_error err = CORM_ERROR_INIT;
    size_t n = 9;
    int rc = corm_result_map(r, m, &slot, 1, 0, &n, &err);
    CHECK_MSG(rc == CORM_EDATA, "type %u, %d bytes into C type %d: %d", oid, len, ctype, rc);
    check_message(&err, "\"x\"", "row 0", word, (char *)NULL);
    CHECK_EQ_INT(n, 0);
    corm_error_clear(&err);
    corm_result_free(r);
    corm_map_free(m);
}

TEST(malformed_bytes)
{
    malformed(CORM_OID_INT8, "\x01\x02\x03", 3, CORM_C_INT64, "3 bytes");
    malformed(CORM_OID_INT2, "\x01", 1, CORM_C_INT32, "1 bytes");
    malformed(CORM_OID_FLOAT8, "\x01\x02\x03\x04", 4, CORM_C_DOUBLE, "4 bytes");
    malformed(CORM_OID_BOOL, "\x01\x01", 2, CORM_C_BOOL, "2 bytes");
    malformed(CORM_OID_JSONB, "\x02{}", 3, CORM_C_TEXT, "jsonb");
    malformed(CORM_OID_UUID, "\x01\x02", 2, CORM_C_UUID, "2 bytes");
    malformed(CORM_OID_INTERVAL, "\x01\x02", 2, CORM_C_INTERVAL, "2 bytes");
    malformed(CORM_OID_TIMESTAMP, "\x01\x02", 2, CORM_C_USEC, "timestamp");
    /* 2^63 - 256 microseconds: past PostgreSQL's last timestamp, and not
     * its infinity. */
    malformed(CORM_OID_TIMESTAMP, "\x7f\xff\xff\xff\xff\xff\xff\0", 8, CORM_C_USEC, "range");
    malformed(CORM_OID_DATE, "\x7f\xff\xff\0", 4, CORM_C_DAYS, "range");
    malformed(CORM_OID_TIME, "\xff\0\0\0\0\0\0\0", 8, CORM_C_USEC, "range");
    malformed(CORM_OID_NUMERIC, "\0\x01", 2, CORM_C_TEXT, "numeric");
    malformed(CORM_OID_INT4_ARRAY, "\0\0", 2, CORM_C_VALUE, "array");
}

/* ---- strides and counts ----------------------------------------------------- */

struct small {
    int32_t a;
    const char *t;
};

TEST(stride_larger_than_struct)
{
    static const corm_field fields[] = {
        CORM_FIELD("a", CORM_C_INT32, struct small, a),
        CORM_FIELD("t", CORM_C_TEXT, struct small, t),
    };
    /* An odd stride: members land unaligned, which the map must handle
     * (it stores through memcpy), and the gaps must stay untouched. */
    const size_t stride = sizeof(struct small) + 13;
    enum { ROWS = 5 };
    unsigned char buf[ROWS * (sizeof(struct small) + 13)];
    memset(buf, 0xEE, sizeof buf);
    corm_conn *c = th_connect();
    corm_result *r = query(c, "SELECT i AS a, 'r' || i AS t FROM generate_series(0, 4) i");
    corm_map *m = new_map(sizeof(struct small), fields, NF(fields));
    corm_error err = CORM_ERROR_INIT;
    size_t n = 0;
    CHECK_OK(corm_result_map(r, m, buf, ROWS, stride, &n, &err), &err);
    CHECK_EQ_INT(n, ROWS);
    for (int i = 0; i < ROWS; i++) {
        struct small s;
        memcpy(&s, buf + (size_t)i * stride, sizeof s);
        CHECK_EQ_INT(s.a, i);
        char want[8];
        snprintf(want, sizeof want, "r%d", i);
        CHECK_STR(s.t, want);
        for (size_t k = sizeof s; k < stride; k++)
            CHECK_EQ_INT(buf[(size_t)i * stride + k], 0xEE);
    }

    /* Fewer slots than rows: the first `count` rows, and *written says so. */
    memset(buf, 0xEE, sizeof buf);
    CHECK_OK(corm_result_map(r, m, buf, 2, stride, &n, &err), &err);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(buf[2 * stride], 0xEE);
    /* count 0 with rows NULL: nothing to do. */
    CHECK_OK(corm_result_map(r, m, NULL, 0, 0, &n, &err), &err);
    CHECK_EQ_INT(n, 0);

    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

/* ---- 100,000 rows -------------------------------------------------------------- */

struct big {
    int64_t id;
    int32_t half;
    const char *name;
    size_t name_len;
    double quarter;
    bool mod3;
    bool note_null;
    const char *note;
    int64_t at_us;
    int32_t day;
    const char *num;
};

#define B struct big
static const corm_field big_fields[] = {
    CORM_FIELD("id", CORM_C_INT64, B, id),
    CORM_FIELD("half", CORM_C_INT32, B, half),
    CORM_FIELD_LEN("name", CORM_C_TEXT, B, name, name_len),
    CORM_FIELD("quarter", CORM_C_DOUBLE, B, quarter),
    CORM_FIELD("mod3", CORM_C_BOOL, B, mod3),
    CORM_FIELD_NULL("note", CORM_C_TEXT, B, note, note_null),
    CORM_FIELD("at", CORM_C_USEC, B, at_us),
    CORM_FIELD("day", CORM_C_DAYS, B, day),
    CORM_FIELD("num", CORM_C_TEXT, B, num),
};
#undef B

static const char big_sql[] =
    "SELECT i::int8 AS id, (i / 2)::int8 AS half, 'user ' || i AS name, i / 4.0::float8 AS quarter,"
    " i % 3 = 0 AS mod3, CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || i END AS note,"
    " '2000-01-01'::timestamp + i * interval '1 second' AS at,"
    " '2000-01-01'::date + (i % 1000) AS day, (i::numeric / 100)::numeric(12, 2) AS num"
    " FROM generate_series(0, 99999) i ORDER BY i";

static void check_big(const struct big *rows, size_t n)
{
    CHECK_EQ_INT(n, 100000);
    char want[32];
    for (size_t k = 0; k < n; k++) {
        const struct big *b = &rows[k];
        int64_t i = (int64_t)k;
        CHECK_EQ_INT(b->id, i);
        CHECK_EQ_INT(b->half, i / 2);
        int len = snprintf(want, sizeof want, "user %" PRId64, i);
        CHECK_STR(b->name, want);
        CHECK_EQ_INT(b->name_len, len);
        CHECK(b->quarter == (double)i / 4.0);
        CHECK(b->mod3 == (i % 3 == 0));
        if (i % 7 == 0) {
            CHECK(b->note_null);
            CHECK(b->note == NULL);
        } else {
            CHECK(!b->note_null);
            snprintf(want, sizeof want, "n%" PRId64, i);
            CHECK_STR(b->note, want);
        }
        CHECK_EQ_INT(b->at_us, i * 1000000);
        CHECK_EQ_INT(b->day, i % 1000);
        snprintf(want, sizeof want, "%" PRId64 ".%02d", i / 100, (int)(i % 100));
        CHECK_STR(b->num, want);
    }
}

TEST(hundred_thousand_rows)
{
    corm_conn *c = th_connect();
    corm_result *r = query(c, big_sql);
    CHECK_EQ_INT(corm_result_nrows(r), 100000);
    corm_map *m = new_map(sizeof(struct big), big_fields, NF(big_fields));
    corm_error err = CORM_ERROR_INIT;

    struct big *rows = malloc(100000 * sizeof *rows);
    CHECK(rows != NULL);
    size_t n = 0;
    CHECK_OK(corm_result_map(r, m, rows, 100000, sizeof *rows, &n, &err), &err);
    check_big(rows, n);
    free(rows);

    /* The same through the result-owned array. */
    struct big *owned = NULL;
    CHECK_OK(corm_result_map_alloc(r, m, (void **)&owned, &n, &err), &err);
    check_big(owned, n);

    corm_map_free(m);
    corm_result_free(r);   /* frees `owned` too */
    corm_conn_close(c);
}

/* ---- the result-owned array ----------------------------------------------- */

TEST(alloc_variant)
{
    struct user {
        int64_t id;
        const char *name;
        char pad[3];   /* never written: must come back zeroed */
    };
    static const corm_field fields[] = {
        CORM_FIELD("id", CORM_C_INT64, struct user, id),
        CORM_FIELD("name", CORM_C_TEXT, struct user, name),
    };
    corm_conn *c = th_connect();
    corm_map *m = new_map(sizeof(struct user), fields, NF(fields));
    corm_error err = CORM_ERROR_INIT;

    corm_result *r = query(c, "SELECT i AS id, 'u' || i AS name FROM generate_series(1, 3) i");
    struct user *users = NULL;
    size_t n = 0;
    CHECK_OK(corm_result_map_alloc(r, m, (void **)&users, &n, &err), &err);
    CHECK_EQ_INT(n, 3);
    CHECK(users != NULL);
    CHECK_EQ_INT((uintptr_t)users % alignof(max_align_t), 0);
    for (int i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof want, "u%d", i + 1);
        CHECK_EQ_INT(users[i].id, i + 1);
        CHECK_STR(users[i].name, want);
        CHECK(users[i].pad[0] == 0 && users[i].pad[1] == 0 && users[i].pad[2] == 0);
    }
    /* A second array from the same result: a distinct block, same values. */
    struct user *again = NULL;
    CHECK_OK(corm_result_map_alloc(r, m, (void **)&again, &n, &err), &err);
    CHECK(again != users);
    CHECK_EQ_INT(again[2].id, 3);
    corm_result_free(r);

    /* No rows: NULL and 0. */
    r = query(c, "SELECT 1::int8 AS id, 'x' AS name WHERE false");
    users = (struct user *)&err;
    n = 7;
    CHECK_OK(corm_result_map_alloc(r, m, (void **)&users, &n, &err), &err);
    CHECK(users == NULL);
    CHECK_EQ_INT(n, 0);
    corm_result_free(r);

    corm_map_free(m);
    corm_conn_close(c);
}

/* ---- misuse --------------------------------------------------------------------- */

TEST(misuse)
{
    struct s {
        int64_t id;
        const char *t;
        size_t len;
        bool isnull;
    } s;
    corm_error err = CORM_ERROR_INIT;
    corm_map *m = (corm_map *)&err;

    CHECK_ERR(corm_map_new(NULL, sizeof s, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_map_new(&m, 0, NULL, &err), CORM_EMISUSE, &err);
    CHECK(m == NULL);
    corm_error_clear(&err);
    CHECK_OK(corm_map_new(&m, sizeof s, NULL, &err), &err);

    /* Bad fields are refused and leave the map as it was. */
    corm_field bad[] = {
        {.column = "x", .type = 0, .offset = 0},                          /* no type */
        {.column = "x", .type = CORM__C_LAST, .offset = 0},               /* unknown type */
        {.column = "x", .type = CORM_C_INT32, .offset = 0, .size = 8},    /* wrong size */
        {.column = "x", .type = CORM_C_INT64, .offset = sizeof s - 4},    /* overruns */
        {.column = "x", .type = CORM_C_INT64, .offset = SIZE_MAX - 2},    /* overflows */
        {.column = NULL, .col = -1, .type = CORM_C_INT64},                /* bad index */
        {.column = "x", .type = CORM_C_BYTES, .offset = 8},               /* bytes, no length */
        {.column = "x", .type = CORM_C_INT64, .flags = CORM_FIELD_HAS_LEN,
         .len_offset = 16},                                               /* length of an int */
        {.column = "x", .type = CORM_C_TEXT, .offset = 8, .flags = CORM_FIELD_HAS_LEN,
         .len_offset = sizeof s},                                         /* length outside */
        {.column = "x", .type = CORM_C_TEXT, .offset = 8, .flags = CORM_FIELD_HAS_NULL,
         .null_offset = sizeof s},                                        /* flag outside */
        {.column = "x", .type = CORM_C_TEXT, .offset = 8, .flags = 1u << 7}, /* bad flag */
    };
    for (size_t i = 0; i < NF(bad); i++) {
        int rc = corm_map_add_field(m, &bad[i], &err);
        CHECK_MSG(rc == CORM_EMISUSE, "bad field %zu: %d", i, rc);
        CHECK(err.message != NULL);
        corm_error_clear(&err);
    }
    CHECK_EQ_INT(corm_map_nfields(m), 0);
    CHECK_ERR(corm_map_add_field(NULL, &bad[0], &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_map_add_field(m, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_map_add_fields(m, NULL, 2, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_OK(corm_map_add_fields(m, NULL, 0, &err), &err);
    /* add_fields stops at the first bad one, keeping those before it. */
    corm_field two[] = {
        CORM_FIELD("id", CORM_C_INT64, struct s, id),
        {.column = "t", .type = CORM_C_BYTES, .offset = offsetof(struct s, t)},
    };
    CHECK_ERR(corm_map_add_fields(m, two, 2, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_EQ_INT(corm_map_nfields(m), 1);
    corm_field t = CORM_FIELD_LEN_NULL("t", CORM_C_TEXT, struct s, t, len, isnull);
    CHECK_OK(corm_map_add_field(m, &t, &err), &err);
    CHECK_EQ_INT(corm_map_nfields(m), 2);
    CHECK_EQ_INT(corm_map_nfields(NULL), 0);

    corm_conn *c = th_connect();
    corm_result *r = query(c, "SELECT 1::int8 AS id, 'a' AS t");
    size_t n = 5;
    CHECK_ERR(corm_result_map(NULL, m, &s, 1, 0, &n, &err), CORM_EMISUSE, &err);
    CHECK_EQ_INT(n, 0);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_map(r, NULL, &s, 1, 0, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_map(r, m, NULL, 1, 0, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_map(r, m, &s, 1, sizeof s - 1, &n, &err), CORM_EMISUSE, &err);
    check_message(&err, "stride", (char *)NULL);
    corm_error_clear(&err);
    /* A NULL error pointer is allowed. */
    CHECK_ERR(corm_result_map(NULL, m, &s, 1, 0, NULL, NULL), CORM_EMISUSE, &err);

    void *arr = NULL;
    CHECK_ERR(corm_result_map_alloc(r, m, NULL, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_map_alloc(r, m, &arr, NULL, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_map_alloc(NULL, m, &arr, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_result_map_alloc(r, NULL, &arr, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);

    /* A column the result does not have: by name, then by index. */
    corm_field extra = CORM_FIELD("missing", CORM_C_INT64, struct s, id);
    corm_map *m2 = NULL;
    CHECK_OK(corm_map_new(&m2, sizeof s, NULL, &err), &err);
    CHECK_OK(corm_map_add_field(m2, &extra, &err), &err);
    memset(&s, 0x33, sizeof s);
    CHECK_ERR(corm_result_map(r, m2, &s, 1, 0, &n, &err), CORM_EMISUSE, &err);
    check_message(&err, "\"missing\"", (char *)NULL);
    corm_error_clear(&err);
    CHECK_EQ_INT(s.id, 0x3333333333333333LL);   /* nothing written */
    CHECK_ERR(corm_result_map_alloc(r, m2, &arr, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_map_free(m2);

    /* Names match exactly: "ID" is not "id". */
    CHECK_OK(corm_map_new(&m2, sizeof s, NULL, &err), &err);
    corm_field upper = CORM_FIELD("ID", CORM_C_INT64, struct s, id);
    CHECK_OK(corm_map_add_field(m2, &upper, &err), &err);
    CHECK_ERR(corm_result_map(r, m2, &s, 1, 0, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_map_free(m2);

    CHECK_OK(corm_map_new(&m2, sizeof s, NULL, &err), &err);
    corm_field idx = CORM_FIELD_AT(2, CORM_C_INT64, struct s, id, 0);
    CHECK_OK(corm_map_add_field(m2, &idx, &err), &err);
    CHECK_ERR(corm_result_map(r, m2, &s, 1, 0, &n, &err), CORM_EMISUSE, &err);
    check_message(&err, "index 2", (char *)NULL);
    corm_error_clear(&err);
    corm_map_free(m2);

    /* A command result has no columns at all. */
    corm_result *cmd = query(c, "SET search_path = public");
    CHECK_ERR(corm_result_map(cmd, m, &s, 1, 0, &n, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_result_free(cmd);

    /* And the good map still works. */
    CHECK_OK(corm_result_map(r, m, &s, 1, 0, &n, &err), &err);
    CHECK_EQ_INT(s.id, 1);
    CHECK_STR(s.t, "a");
    CHECK_EQ_INT(s.len, 1);
    CHECK(!s.isnull);

    corm_map_free(NULL);
    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
}

/* ---- out of memory ------------------------------------------------------------ */

/* A failing allocator (test_oom.c's): fails request number fail_at, and
 * keeps a size header to catch wrong sizes passed back. */
#include "test_failer.h"

/* Many fields (the field array grows), numerics (text in the result's
 * scratch) and the result-owned array: every allocation of the map's
 * paths fails once, in turn. */
struct oomrow {
    int64_t id;
    const char *name;
    const char *num;
    double f;
    bool b;
    const char *t1, *t2, *t3, *t4, *t5, *t6, *t7, *t8;
};

#define O struct oomrow
static const corm_field oom_fields[] = {
    CORM_FIELD("id", CORM_C_INT64, O, id),  CORM_FIELD("name", CORM_C_TEXT, O, name),
    CORM_FIELD("num", CORM_C_TEXT, O, num), CORM_FIELD("f", CORM_C_DOUBLE, O, f),
    CORM_FIELD("b", CORM_C_BOOL, O, b),     CORM_FIELD("name", CORM_C_TEXT, O, t1),
    CORM_FIELD("name", CORM_C_TEXT, O, t2), CORM_FIELD("name", CORM_C_TEXT, O, t3),
    CORM_FIELD("name", CORM_C_TEXT, O, t4), CORM_FIELD("name", CORM_C_TEXT, O, t5),
    CORM_FIELD("name", CORM_C_TEXT, O, t6), CORM_FIELD("name", CORM_C_TEXT, O, t7),
    CORM_FIELD("name", CORM_C_TEXT, O, t8),
};
#undef O

/* One pass with allocation number fail_at (counted from the map's first
 * call) failing. Returns 1 when nothing failed. */
static int oom_pass(long fail_at)
{
    failer f;
    memset(&f, 0, sizeof f);
    corm_options opt;
    corm_options_init(&opt);
    opt.alloc = failer_alloc;
    opt.alloc_ud = &f;
    corm_conn *c = th_connect_opt(&opt);
    corm_result *r = query(c, "SELECT i::int8 AS id, 'n' || i AS name,"
                              " (i::numeric / 7)::numeric(20, 6) AS num,"
                              " i / 2.0::float8 AS f, i % 2 = 0 AS b FROM generate_series(1, 300) i");
    f.fail_at = f.count + fail_at;
    long before = f.failures;
    corm_error err = CORM_ERROR_INIT;
    corm_map *m = (corm_map *)&err;
    int rc = corm_map_new(&m, sizeof(struct oomrow), &opt, &err);
    if (rc == 0)
        rc = corm_map_add_fields(m, oom_fields, NF(oom_fields), &err);
    struct oomrow *rows = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = corm_result_map_alloc(r, m, (void **)&rows, &n, &err);
    if (rc == 0) {
        /* A second map into a caller array (numerics again in scratch). */
        struct oomrow *mine = calloc(300, sizeof *mine);
        CHECK(mine != NULL);
        size_t w = 0;
        rc = corm_result_map(r, m, mine, 300, 0, &w, &err);
        if (rc == 0) {
            CHECK_EQ_INT(w, 300);
            CHECK_STR(mine[6].num, "1.000000");
            CHECK_STR(mine[299].t8, "n300");
        }
        free(mine);
    }
    if (rc == 0) {
        CHECK_EQ_INT(n, 300);
        CHECK_EQ_INT(rows[0].id, 1);
        CHECK_STR(rows[13].num, "2.000000");
        CHECK_STR(rows[299].name, "n300");
        CHECK(rows[2].f == 1.5);
    }
    int failed = f.failures > before;
    if (failed) {
        CHECK_MSG(rc == CORM_ENOMEM, "allocation %ld failing: %d (%s) %s", fail_at, rc,
                  corm_errname(rc), err.message ? err.message : "");
        CHECK(err.message != NULL);
    } else {
        CHECK_OK(rc, &err);
    }
    if (m == (corm_map *)&err)
        FAIL("corm_map_new left *out unset");
    corm_error_clear(&err);
    corm_map_free(m);
    corm_result_free(r);
    corm_conn_close(c);
    CHECK_MSG(f.live_blocks == 0 && f.live_bytes == 0,
              "allocation %ld failing: %ld blocks (%zu bytes) never freed", fail_at,
              f.live_blocks, f.live_bytes);
    CHECK_EQ_INT(f.size_errors, 0);
    return !failed;
}

TEST(out_of_memory)
{
    long n = 1;
    while (!oom_pass(n)) {
        n++;
        CHECK_MSG(n < 200, "still failing after %ld allocations", n);
    }
    CHECK(n > 4);   /* map, fields, names, arena blocks: several paths walked */
}
