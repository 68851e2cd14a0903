/*
 * test_roundtrip.c - every type against PostgreSQL, both ways. Edge values
 * the server computes are decoded by libcorm, printed the way the server
 * prints them and compared with the server's own text; then each decoded
 * value is bound as a parameter and the server's text of it must be the
 * same again. Values made in C are sent and read back as text. Arrays of
 * every type (NULL items, other lower bounds, several dimensions) and NULL
 * everywhere.
 */
#define _POSIX_C_SOURCE 200809L /* strncasecmp, getpid */
#define CTEST_MAIN
#include "ctest.h"

#include "corm.h"

#include <math.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

/* ---- connection and small helpers --------------------------------------- */

static corm_conn *connect_utc(void)
{
    corm_error err = CORM_ERROR_INIT;
    corm_conn *c = NULL;
    CHECK_OK(corm_conn_connect(&c, ctest_dsn(), NULL, &err), &err);
    /* Fix every setting that changes how the server prints values (one
     * statement per request: they run as prepared statements). */
    static const char *const settings[] = {
        "SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, MDY'", "SET IntervalStyle = 'postgres'",
        "SET extra_float_digits = 1", "SET bytea_output = 'hex'",
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        CHECK_OK(corm_conn_exec_sql(c, settings[i], NULL, &err), &err);
    return c;
}

static corm_result *exec_sql(corm_conn *c, const char *sql)
{
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = NULL;
    int rc = corm_conn_exec_sql(c, sql, &r, &err);
    CHECK_MSG(rc == 0, "%s\n  failed: %s", sql, err.message ? err.message : "?");
    return r;
}

/* A growing string, for the expected texts. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < sizeof tmp);
    sb_put(b, tmp, (size_t)n);
}

/* ---- printing values the way PostgreSQL does ------------------------------ */

/* float4out/float8out: the shortest digits that read back, in fixed
 * notation for decimal exponents -4 .. FLT_DIG-1 / DBL_DIG-1, else
 * d.ddde+XX. */
static void fmt_float(sbuf *b, double d, bool f4)
{
    if (isnan(d)) {
        sb_puts(b, "NaN");
        return;
    }
    if (isinf(d)) {
        sb_puts(b, d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (d == 0) {
        sb_puts(b, signbit(d) ? "-0" : "0");
        return;
    }
    char buf[64];
    int maxp = f4 ? 9 : 17;
    for (int p = 1; p <= maxp; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, d);
        double back = strtod(buf, NULL);
        if (f4 ? (float)back == (float)d : back == d)
            break;
    }
    char digits[32];
    int nd = 0, exp10;
    const char *p = buf;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    if (neg)
        sb_puts(b, "-");
    if (exp10 < -4 || exp10 >= (f4 ? 6 : 15)) {
        sb_put(b, digits, 1);
        if (nd > 1) {
            sb_puts(b, ".");
            sb_put(b, digits + 1, (size_t)nd - 1);
        }
        sb_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 < 0) {
        sb_puts(b, "0.");
        for (int i = 0; i < -exp10 - 1; i++)
            sb_puts(b, "0");
        sb_put(b, digits, (size_t)nd);
    } else {
        for (int i = 0; i <= exp10; i++)
            sb_put(b, i < nd ? digits + i : "0", 1);
        if (nd > exp10 + 1) {
            sb_puts(b, ".");
            sb_put(b, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
        }
    }
}

/* HH:MM:SS[.ffffff without trailing zeros] */
static void fmt_clock(sbuf *b, int64_t hour, int min, int sec, int usec)
{
    sb_printf(b, "%02lld:%02d:%02d", (long long)hour, min, sec);
    if (usec) {
        char f[8];
        snprintf(f, sizeof f, "%06d", usec);
        int n = 6;
        while (f[n - 1] == '0')
            n--;
        sb_puts(b, ".");
        sb_put(b, f, (size_t)n);
    }
}

static void fmt_ymd(sbuf *b, const corm_datetime *dt)
{
    int y = dt->year > 0 ? dt->year : 1 - dt->year;
    sb_printf(b, "%04d-%02d-%02d", y, dt->month, dt->day);
}

static void fmt_timestamp(sbuf *b, int64_t us, bool tz)
{
    if (us == CORM_TIMESTAMP_INFINITY || us == CORM_TIMESTAMP_NEG_INFINITY) {
        sb_puts(b, us > 0 ? "infinity" : "-infinity");
        return;
    }
    corm_datetime dt;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_timestamp_to_civil(us, &dt, &err), &err);
    fmt_ymd(b, &dt);
    sb_puts(b, " ");
    fmt_clock(b, dt.hour, dt.minute, dt.second, dt.usec);
    if (tz)
        sb_puts(b, "+00");
    if (dt.year <= 0)
        sb_puts(b, " BC");
}

/* AddPostgresIntPart: skips zeros, "+" after a negative part. */
static void interval_part(sbuf *b, int64_t value, const char *unit, bool *is_zero,
                          bool *is_before)
{
    if (value == 0)
        return;
    sb_printf(b, "%s%s%lld %s%s", *is_zero ? "" : " ", (*is_before && value > 0) ? "+" : "",
              (long long)value, unit, value != 1 ? "s" : "");
    *is_before = value < 0;
    *is_zero = false;
}

/* EncodeInterval, IntervalStyle postgres. */
static void fmt_interval(sbuf *b, int64_t usec, int32_t days, int32_t months)
{
    bool is_zero = true, is_before = false;
    interval_part(b, months / 12, "year", &is_zero, &is_before);
    interval_part(b, months % 12, "mon", &is_zero, &is_before);
    interval_part(b, days, "day", &is_zero, &is_before);
    int64_t hour = usec / INT64_C(3600000000);
    int64_t rest = usec % INT64_C(3600000000);
    int64_t min = rest / 60000000;
    rest %= 60000000;
    int64_t sec = rest / 1000000, fsec = rest % 1000000;
    if (is_zero || hour || min || sec || fsec) {
        bool minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;
        sb_printf(b, "%s%s", is_zero ? "" : " ", minus ? "-" : (is_before ? "+" : ""));
        fmt_clock(b, llabs(hour), (int)llabs(min), (int)llabs(sec), (int)llabs(fsec));
    }
}

static void fmt_value(sbuf *b, const corm_value *v);

/* array_out's quoting: empty, "NULL" in any case, or a special character
 * or blank anywhere. */
static void fmt_array_item(sbuf *b, const char *s, size_t n)
{
    bool quote = n == 0 || (n == 4 && strncasecmp(s, "null", 4) == 0);
    for (size_t i = 0; i < n && !quote; i++)
        quote = strchr("{},\"\\ \t\n\r\v\f", s[i]) != NULL && s[i] != 0;
    if (!quote) {
        sb_put(b, s, n);
        return;
    }
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            sb_puts(b, "\\");
        sb_put(b, s + i, 1);
    }
    sb_puts(b, "\"");
}

static void fmt_array(sbuf *b, const corm_value *v)
{
    corm_array a;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_array_init(&a, v, &err), &err);
    if (a.nitems == 0) {
        sb_puts(b, "{}");
        return;
    }
    bool decorate = false;
    for (int d = 0; d < a.ndim; d++)
        decorate |= a.lbounds[d] != 1;
    if (decorate) {
        for (int d = 0; d < a.ndim; d++)
            sb_printf(b, "[%d:%d]", (int)a.lbounds[d], (int)(a.lbounds[d] + a.dims[d] - 1));
        sb_puts(b, "=");
    }
    /* Row-major: open braces as subscripts roll over, from the outside in. */
    int idx[CORM_ARRAY_MAXDIM] = {0};
    for (size_t k = 0; k < a.nitems; k++) {
        int opened = 0;
        for (int d = a.ndim - 1; d >= 0 && idx[d] == 0; d--)
            opened++;
        if (k == 0)
            opened = a.ndim;
        for (int i = 0; i < opened; i++)
            sb_puts(b, "{");
        corm_value it;
        CHECK_EQ_INT(corm_array_next(&a, &it, &err), 1);
        if (it.kind == CORM_NULL) {
            sb_puts(b, "NULL");
        } else {
            sbuf one = {0};
            fmt_value(&one, &it);
            fmt_array_item(b, one.p ? one.p : "", one.len);
            free(one.p);
        }
        int d = a.ndim - 1;
        while (d >= 0 && ++idx[d] == a.dims[d]) {
            idx[d] = 0;
            sb_puts(b, "}");
            d--;
        }
        if (k + 1 < a.nitems)
            sb_puts(b, ",");
    }
    CHECK_EQ_INT(corm_array_next(&a, &(corm_value){0}, &err), 0);
}

/* The text PostgreSQL's output function gives for v (never NULL). */
static void fmt_value(sbuf *b, const corm_value *v)
{
    switch (v->kind) {
    case CORM_BOOL:
        sb_puts(b, v->v.b ? "t" : "f");
        return;
    case CORM_INT:
        sb_printf(b, "%lld", (long long)v->v.i);
        return;
    case CORM_FLOAT:
        fmt_float(b, v->v.f, v->oid == 700);
        return;
    case CORM_TEXT:
        if (v->oid == 18 && v->v.str.len == 1 && (unsigned char)v->v.str.ptr[0] >= 0x80) {
            /* "char" prints high bytes as \ooo since PostgreSQL 15 */
            sb_printf(b, "\\%03o", (unsigned char)v->v.str.ptr[0]);
            return;
        }
        /* fall through */
    case CORM_NUMERIC:
    case CORM_JSON:
    case CORM_RAW:
        sb_put(b, v->v.str.ptr, v->v.str.len);
        return;
    case CORM_BYTES:
        sb_puts(b, "\\x");
        for (size_t i = 0; i < v->v.str.len; i++)
            sb_printf(b, "%02x", (unsigned char)v->v.str.ptr[i]);
        return;
    case CORM_DATE: {
        if (v->v.i == CORM_DATE_INFINITY || v->v.i == CORM_DATE_NEG_INFINITY) {
            sb_puts(b, v->v.i > 0 ? "infinity" : "-infinity");
            return;
        }
        corm_datetime dt;
        corm_error err = CORM_ERROR_INIT;
        CHECK_OK(corm_date_to_civil(v->v.i, &dt, &err), &err);
        fmt_ymd(b, &dt);
        if (dt.year <= 0)
            sb_puts(b, " BC");
        return;
    }
    case CORM_TIME:
    case CORM_TIMETZ: {
        int64_t t = v->kind == CORM_TIME ? v->v.i : v->v.tz.usec;
        fmt_clock(b, t / INT64_C(3600000000), (int)(t / 60000000 % 60),
                  (int)(t / 1000000 % 60), (int)(t % 1000000));
        if (v->kind == CORM_TIMETZ) {
            int z = v->v.tz.zone, az = abs(z);
            sb_printf(b, "%c%02d", z >= 0 ? '+' : '-', az / 3600);
            if (az % 3600)
                sb_printf(b, ":%02d", az / 60 % 60);
            if (az % 60)
                sb_printf(b, ":%02d", az % 60);
        }
        return;
    }
    case CORM_TIMESTAMP:
    case CORM_TIMESTAMPTZ:
        fmt_timestamp(b, v->v.i, v->kind == CORM_TIMESTAMPTZ);
        return;
    case CORM_INTERVAL:
        fmt_interval(b, v->v.interval.usec, v->v.interval.days, v->v.interval.months);
        return;
    case CORM_UUID: {
        const uint8_t *u = v->v.uuid;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                sb_puts(b, "-");
            sb_printf(b, "%02x", u[i]);
        }
        return;
    }
    case CORM_ARRAY:
        fmt_array(b, v);
        return;
    default:
        FAIL("cannot print a value of kind %d", (int)v->kind);
    }
}

/* ---- the per-type tables ---------------------------------------------------- */

typedef struct type_case {
    const char *type;         /* SQL type name */
    uint32_t oid;             /* its oid */
    corm_kind kind;           /* what libcorm decodes it to */
    const char *values[24];   /* SQL expressions of edge values, NULL-ended */
} type_case;

static const type_case types[] = {
    {"int2", 21, CORM_INT, {"0", "1", "-1", "32767", "-32768"}},
    {"int4", 23, CORM_INT, {"0", "2147483647", "-2147483648", "42"}},
    {"int8", 20, CORM_INT, {"0", "9223372036854775807", "-9223372036854775808", "-1"}},
    {"oid", 26, CORM_INT, {"0", "4294967295", "1259"}},
    {"float4", 700, CORM_FLOAT,
     {"0", "'-0'", "1.5", "'NaN'", "'Infinity'", "'-Infinity'", "3.4028235e38", "1.4e-45",
      "0.1", "123456", "1234567", "1e6", "1e-5", "0.0001", "-2.5e-10", "16777216"}},
    {"float8", 701, CORM_FLOAT,
     {"0", "'-0'", "1.5", "'NaN'", "'Infinity'", "'-Infinity'", "1.7976931348623157e308",
      "5e-324", "2.2250738585072014e-308", "0.1", "1e14", "1e15", "123456789012345.6",
      "1234567890123456.7", "1e-5", "0.0001", "-1.5e-7", "9007199254740993", "1/3::float8"}},
    {"numeric", 1700, CORM_NUMERIC,
     {"0", "'0.00'", "'-12.50'", "'1e-20'", "'NaN'", "'Infinity'", "'-Infinity'",
      "'123456789012345678901234567890.000000000000000000001'", "'-0.0000001'",
      "'100000000'", "'1e1000'", "'1.000'", "'10000.0001'", "1::numeric/3",
      "sqrt(2::numeric)", "factorial(40)", "'-9999.9999'", "'1e-16383'",
      "'9.99e131071'::numeric - 1", "round(2.5)", "0.1::float8::numeric"}},
    {"bool", 16, CORM_BOOL, {"true", "false"}},
    {"text", 25, CORM_TEXT,
     {"''", "'hello'", "'héllo wörld ✓'", "E'tab\\there\\nnew'", "'a\"b\\c'",
      "repeat('x', 10000)", "'NULL'", "' spaced '", "'{braces},'"}},
    {"varchar(5)", 1043, CORM_TEXT, {"'abc'", "''", "'abcde'"}},
    {"char(5)", 1042, CORM_TEXT, {"'ab'", "''", "'abcde'"}},
    {"name", 19, CORM_TEXT, {"'pg_catalog'", "repeat('n', 63)", "''"}},
    {"\"char\"", 18, CORM_TEXT, {"'a'", "''", "E'\\\\200'", "'z'"}},
    {"bytea", 17, CORM_BYTES, {"'\\x'", "'\\x00ff'", "decode(repeat('ab', 1000), 'hex')"}},
    {"date", 1082, CORM_DATE,
     {"'2000-01-01'", "'1970-01-01'", "'0001-01-01 BC'", "'4714-11-24 BC'",
      "'5874897-12-31'", "'infinity'", "'-infinity'", "'2024-02-29'", "'1999-12-31'",
      "'0044-03-15 BC'"}},
    {"time", 1083, CORM_TIME,
     {"'00:00'", "'23:59:59.999999'", "'24:00:00'", "'12:34:56.5'", "'00:00:00.000001'"}},
    {"timetz", 1266, CORM_TIMETZ,
     {"'00:00+00'", "'12:00:01+02'", "'23:59:59.999999-15:59'", "'12:00+05:30'",
      "'01:02:03-00:00:30'", "'24:00:00+15:59:59'"}},
    {"timestamp", 1114, CORM_TIMESTAMP,
     {"'2000-01-01'", "'1970-01-01 00:00:00.000001'", "'4714-11-24 00:00 BC'",
      "'294276-12-31 23:59:59.999999'", "'infinity'", "'-infinity'", "'0001-01-01 12:00 BC'",
      "'1999-12-31 23:59:59.5'", "'2024-02-29 12:00'"}},
    {"timestamptz", 1184, CORM_TIMESTAMPTZ,
     {"'2000-01-01 00:00+00'", "'2000-01-01 00:00+05'", "'4714-11-24 00:00+00 BC'",
      "'294276-12-31 23:59:59.999999+00'", "'infinity'", "'-infinity'",
      "'1969-12-31 23:59:59.999999+00'"}},
    {"interval", 1186, CORM_INTERVAL,
     {"'0'", "'1 year 2 mons 3 days 04:05:06.789'", "'-1 year -2 mons +3 days -04:05:06.7'",
      "'1 day'", "'-1 days'", "'178000000 years'", "'-178000000 years'",
      "'2562047788:00:54.775807'", "'-2562047788:00:54.775807'::interval - '00:00:00.000001'", "'1 mon -1 days'",
      "'00:00:00.000001'", "'-00:00:00.000001'", "'100 hours'", "'1 year -1 mon'"}},
    {"uuid", 2950, CORM_UUID,
     {"'00000000-0000-0000-0000-000000000000'", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
      "'ffffffff-ffff-ffff-ffff-ffffffffffff'"}},
    {"json", 114, CORM_JSON,
     {"'{}'", "'{\"a\": [1, 2.5, \"x\"]}'", "'\"str\"'", "'null'", "'  [1,  2] '"}},
    {"jsonb", 3802, CORM_JSON,
     {"'{\"b\": 1, \"a\": [true, null]}'", "'\"é\"'", "'1.50'", "'[]'"}},
};
#define NTYPES (sizeof types / sizeof types[0])

static size_t nvalues(const type_case *t)
{
    size_t n = 0;
    while (t->values[n])
        n++;
    return n;
}

/* Checks the value decoded from column 0 against the server's text in
 * column 1, then sends it back and checks the server's text of it. */
static void check_cell(corm_conn *c, corm_result *r, int row, const char *type,
                       corm_kind want_kind)
{
    corm_error err = CORM_ERROR_INIT;
    corm_value v;
    CHECK_OK(corm_result_get(r, row, 0, &v, &err), &err);
    if (corm_result_isnull(r, row, 0)) {
        CHECK_EQ_INT(v.kind, CORM_NULL);
        CHECK_EQ_INT(corm_result_isnull(r, row, 1), 1);
    } else {
        CHECK_MSG(v.kind == want_kind, "%s row %d: kind %d, want %d", type, row, (int)v.kind,
                  (int)want_kind);
        const char *text;
        size_t len;
        CHECK_OK(corm_result_get_text(r, row, 1, &text, &len, &err), &err);
        sbuf mine = {0};
        fmt_value(&mine, &v);
        CHECK_MSG(mine.len == len && memcmp(mine.p, text, len) == 0,
                  "%s row %d: server prints \"%.200s\", libcorm decoded \"%.200s\"", type, row,
                  text, mine.p ? mine.p : "");
        free(mine.p);
    }

    /* The decoded value as a parameter: the server must see the same. */
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT format('%%s', $1::%s), $1::%s IS NULL", type, type);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    CHECK_OK(corm_query_bind(q, &v, &err), &err);
    corm_result *back = NULL;
    CHECK_OK(corm_conn_exec(c, q, &back, &err), &err);
    bool was_null;
    CHECK_OK(corm_result_get_bool(back, 0, 1, &was_null, &err), &err);
    CHECK_EQ_INT(was_null, v.kind == CORM_NULL);
    if (!was_null) {
        const char *want, *got;
        size_t wl, gl;
        CHECK_OK(corm_result_get_text(r, row, 1, &want, &wl, &err), &err);
        CHECK_OK(corm_result_get_text(back, 0, 0, &got, &gl, &err), &err);
        CHECK_MSG(wl == gl && memcmp(want, got, wl) == 0,
                  "%s row %d sent back: server had \"%.200s\", now \"%.200s\"", type, row, want,
                  got);
    }
    corm_result_free(back);
    corm_query_free(q);
}

/* SELECT x, format('%s', x) FROM (VALUES (v1::T), ..., (NULL::T)) */
static void scalars_of(corm_conn *c, const type_case *t)
{
    sbuf sql = {0};
    sb_puts(&sql, "SELECT x, CASE WHEN x IS NULL THEN NULL ELSE format('%s', x) END FROM (VALUES ");
    size_t n = nvalues(t);
    for (size_t i = 0; i < n; i++)
        sb_printf(&sql, "((%s)::%s), ", t->values[i], t->type);
    sb_printf(&sql, "(NULL::%s)) v(x)", t->type);
    corm_result *r = exec_sql(c, sql.p);
    free(sql.p);
    CHECK_EQ_INT(corm_result_nrows(r), (int)n + 1);
    CHECK_EQ_INT(corm_result_coltype(r, 0), t->oid);
    for (int row = 0; row < (int)n + 1; row++)
        check_cell(c, r, row, t->type, t->kind);
    corm_result_free(r);
}

/* The same values in arrays: one with a NULL item, a 2-D one with lower
 * bounds 0 and -1, a 3-D one, the empty array and a NULL array. */
static void arrays_of(corm_conn *c, const type_case *t)
{
    size_t n = nvalues(t);
    const char *const *v = t->values;
    sbuf sql = {0};
    sb_puts(&sql, "SELECT a, CASE WHEN a IS NULL THEN NULL ELSE format('%s', a) END "
                  "FROM (VALUES (ARRAY[");
    for (size_t i = 0; i < n; i++)
        sb_printf(&sql, "(%s)::%s, ", v[i], t->type);
    sb_printf(&sql, "NULL]::%s[]), ", t->type);
    sb_printf(&sql,
              "(('[0:1][-1:0]=' || (ARRAY[ARRAY[(%s)::%s, (%s)::%s], ARRAY[NULL, (%s)::%s]])::text)"
              "::%s[]), ",
              v[0], t->type, v[1 % n], t->type, v[2 % n], t->type, t->type);
    sb_printf(&sql, "(ARRAY[[[(%s)::%s], [NULL::%s]], [[(%s)::%s], [(%s)::%s]]]), ", v[n - 1],
              t->type, t->type, v[0], t->type, v[1 % n], t->type);
    sb_printf(&sql, "('{}'::%s[]), (NULL::%s[])) t(a)", t->type, t->type);
    corm_result *r = exec_sql(c, sql.p);
    free(sql.p);
    CHECK_EQ_INT(corm_result_nrows(r), 5);
    char arrtype[64];
    snprintf(arrtype, sizeof arrtype, "%s[]", t->type);
    for (int row = 0; row < 5; row++)
        check_cell(c, r, row, arrtype, CORM_ARRAY);
    corm_result_free(r);
}

#define TYPE_TESTS(i)                              \
    TEST(roundtrip_##i)                            \
    {                                              \
        if ((i) >= NTYPES)                         \
            SKIP("no type %d", (int)(i));          \
        corm_conn *c = connect_utc();              \
        scalars_of(c, &types[i]);                  \
        arrays_of(c, &types[i]);                   \
        corm_conn_close(c);                        \
    }

/* One case per type (numbered in table order), so a failure names its type
 * in the output and the others still run. */
TYPE_TESTS(0)
TYPE_TESTS(1)
TYPE_TESTS(2)
TYPE_TESTS(3)
TYPE_TESTS(4)
TYPE_TESTS(5)
TYPE_TESTS(6)
TYPE_TESTS(7)
TYPE_TESTS(8)
TYPE_TESTS(9)
TYPE_TESTS(10)
TYPE_TESTS(11)
TYPE_TESTS(12)
TYPE_TESTS(13)
TYPE_TESTS(14)
TYPE_TESTS(15)
TYPE_TESTS(16)
TYPE_TESTS(17)
TYPE_TESTS(18)
TYPE_TESTS(19)
TYPE_TESTS(20)
TYPE_TESTS(21)
TYPE_TESTS(22)

TEST(roundtrip_table_is_covered)
{
    /* TYPE_TESTS above must reach every entry of types[]. */
    CHECK_EQ_INT(NTYPES, 23);
}

/* ---- values made in C ------------------------------------------------------- */

/* Binds v, runs "SELECT format('%s', $1::type)" and compares with want
 * (NULL: the result must be SQL NULL). */
static void sends_as(corm_conn *c, const corm_value *v, const char *type, const char *want)
{
    corm_error err = CORM_ERROR_INIT;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT CASE WHEN $1::%s IS NULL THEN NULL ELSE format('%%s', $1::%s) END",
             type, type);
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    CHECK_OK(corm_query_bind(q, v, &err), &err);
    corm_result *r = NULL;
    int rc = corm_conn_exec(c, q, &r, &err);
    CHECK_MSG(rc == 0, "sending as %s (want \"%s\"): %s", type, want ? want : "NULL",
              err.message ? err.message : "?");
    if (!want) {
        CHECK_EQ_INT(corm_result_isnull(r, 0, 0), 1);
    } else {
        const char *got;
        size_t n;
        CHECK_OK(corm_result_get_text(r, 0, 0, &got, &n, &err), &err);
        CHECK_MSG(strlen(want) == n && memcmp(want, got, n) == 0,
                  "sent as %s: server reads \"%s\", want \"%s\"", type, got, want);
    }
    corm_result_free(r);
    corm_query_free(q);
}

static corm_value numeric(const char *s)
{
    corm_value v = {.kind = CORM_NUMERIC};
    v.v.str.ptr = s;
    v.v.str.len = strlen(s);
    return v;
}

static corm_value text(const char *s, uint32_t oid)
{
    corm_value v = {.kind = CORM_TEXT, .oid = oid};
    v.v.str.ptr = s;
    v.v.str.len = strlen(s);
    return v;
}

TEST(sent_scalars)
{
    corm_conn *c = connect_utc();
    corm_error err = CORM_ERROR_INIT;
    corm_value v = {.kind = CORM_INT, .v.i = INT64_MIN};
    sends_as(c, &v, "int8", "-9223372036854775808");
    v.oid = CORM_OID_NUMERIC;
    sends_as(c, &v, "numeric", "-9223372036854775808");
    v = (corm_value){.kind = CORM_INT, .oid = CORM_OID_INT2, .v.i = -32768};
    sends_as(c, &v, "int2", "-32768");
    v = (corm_value){.kind = CORM_FLOAT, .oid = CORM_OID_FLOAT4, .v.f = 0.1};
    sends_as(c, &v, "float4", "0.1");
    v = (corm_value){.kind = CORM_FLOAT, .v.f = NAN};
    sends_as(c, &v, "float8", "NaN");
    v.v.f = -INFINITY;
    sends_as(c, &v, "float8", "-Infinity");
    v.v.f = 0.1;
    v.oid = CORM_OID_NUMERIC;
    sends_as(c, &v, "numeric", "0.1");
    v.v.f = 1e-7;
    sends_as(c, &v, "numeric", "0.0000001");
    v = (corm_value){.kind = CORM_BOOL, .v.b = false};
    sends_as(c, &v, "bool", "f");

    static const char *nums[][2] = {
        {"  1.5e-3 ", "0.0015"}, {"1e-20", "0.00000000000000000001"}, {"-0.00", "0.00"},
        {"inf", "Infinity"},     {"-Infinity", "-Infinity"},          {"nan", "NaN"},
        {".5", "0.5"},           {"5.", "5"},                          {"1E+2", "100"},
        {"007.50", "7.50"},      {"-12.50", "-12.50"},
        {"123456789012345678901234567890.123456789012345678901234567890",
         "123456789012345678901234567890.123456789012345678901234567890"},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        corm_value n = numeric(nums[i][0]);
        sends_as(c, &n, "numeric", nums[i][1]);
    }
    /* the longest text: 1 and 131071 zeros, and the smallest scale step */
    corm_value big = numeric("1e131071");
    sends_as(c, &big, "numeric = ('1' || repeat('0', 131071))::numeric", "t");
    corm_value tiny = numeric("1e-16383");
    sends_as(c, &tiny, "numeric = ('0.' || repeat('0', 16382) || '1')::numeric", "t");

    corm_datetime dt = {-4713, 11, 24, 0, 0, 0, 0};
    int64_t days, us;
    CHECK_OK(corm_date_from_civil(&dt, &days, &err), &err);
    v = (corm_value){.kind = CORM_DATE, .v.i = days};
    sends_as(c, &v, "date", "4714-11-24 BC");
    v.v.i = CORM_DATE_NEG_INFINITY;
    sends_as(c, &v, "date", "-infinity");
    dt = (corm_datetime){2024, 2, 29, 13, 14, 15, 16};
    CHECK_OK(corm_timestamp_from_civil(&dt, &us, &err), &err);
    v = (corm_value){.kind = CORM_TIMESTAMPTZ, .v.i = us};
    sends_as(c, &v, "timestamptz", "2024-02-29 13:14:15.000016+00");
    v.kind = CORM_TIMESTAMP;
    sends_as(c, &v, "timestamp", "2024-02-29 13:14:15.000016");
    v.v.i = CORM_TIMESTAMP_INFINITY;
    sends_as(c, &v, "timestamp", "infinity");
    dt = (corm_datetime){0, 1, 1, 0, 0, 0, 0};
    CHECK_OK(corm_timestamp_from_civil(&dt, &us, &err), &err);
    v.v.i = us;
    sends_as(c, &v, "timestamp", "0001-01-01 00:00:00 BC");
    v = (corm_value){.kind = CORM_TIME, .v.i = INT64_C(86400000000)};
    sends_as(c, &v, "time", "24:00:00");
    v = (corm_value){.kind = CORM_TIMETZ};
    v.v.tz.usec = INT64_C(43200000000);
    v.v.tz.zone = 19800;
    sends_as(c, &v, "timetz", "12:00:00+05:30");
    v.v.tz.zone = -30;
    sends_as(c, &v, "timetz", "12:00:00-00:00:30");
    v = (corm_value){.kind = CORM_INTERVAL};
    v.v.interval.usec = -INT64_C(14706700000);
    v.v.interval.days = 3;
    v.v.interval.months = -14;
    sends_as(c, &v, "interval", "-1 years -2 mons +3 days -04:05:06.7");
    v = (corm_value){.kind = CORM_UUID,
                     .v.uuid = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b,
                                0xb9, 0xbd, 0x38, 0x0a, 0x11}};
    sends_as(c, &v, "uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    v = (corm_value){.kind = CORM_JSON};
    v.v.str.ptr = "{\"b\":1,\"a\":2}";
    v.v.str.len = strlen(v.v.str.ptr);
    sends_as(c, &v, "jsonb", "{\"a\": 2, \"b\": 1}");
    v.oid = CORM_OID_JSON;
    sends_as(c, &v, "json", "{\"b\":1,\"a\":2}");
    v = (corm_value){.kind = CORM_BYTES};
    v.v.str.ptr = "\0\377";
    v.v.str.len = 2;
    sends_as(c, &v, "bytea", "\\x00ff");

    corm_value t = text("héllo", CORM_OID_TEXT);
    sends_as(c, &t, "text", "héllo");
    t = text("ab", CORM_OID_BPCHAR);
    sends_as(c, &t, "char(4)", "ab  ");
    t = text("x", CORM_OID_CHAR);
    sends_as(c, &t, "\"char\"", "x");
    t = text("", CORM_OID_CHAR);
    sends_as(c, &t, "\"char\"", "");
    t = text("pg_catalog", CORM_OID_NAME);
    sends_as(c, &t, "name", "pg_catalog");
    t = text("2024-02-29", 0); /* untyped: the server parses it as a date */
    sends_as(c, &t, "date", "2024-02-29");

    /* NULL as every type */
    corm_value null = {.kind = CORM_NULL};
    const char *all[] = {"int2", "int8", "float4", "numeric", "bool", "text", "bytea", "date",
                         "timestamptz", "interval", "uuid", "jsonb", "int4[]", "text[]"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sends_as(c, &null, all[i], NULL);
    corm_conn_close(c);
}

TEST(sent_arrays)
{
    corm_conn *c = connect_utc();
    corm_value items[4] = {
        {.kind = CORM_INT, .v.i = 1},
        {.kind = CORM_INT, .v.i = 2},
        {.kind = CORM_NULL},
        {.kind = CORM_INT, .v.i = 4},
    };
    corm_value v = {.kind = CORM_ARRAY_ITEMS, .oid = CORM_OID_INT4_ARRAY};
    v.v.items.items = items;
    v.v.items.dims = (int32_t[]){2, 2};
    v.v.items.lbounds = (int32_t[]){0, -1};
    v.v.items.ndim = 2;
    sends_as(c, &v, "int4[]", "[0:1][-1:0]={{1,2},{NULL,4}}");
    v.oid = 0;
    v.v.items.lbounds = NULL;
    v.v.items.dims = (int32_t[]){4};
    v.v.items.ndim = 1;
    sends_as(c, &v, "int8[]", "{1,2,NULL,4}");
    v.v.items.dims = (int32_t[]){1, 2, 2};
    v.v.items.ndim = 3;
    sends_as(c, &v, "int8[]", "{{{1,2},{NULL,4}}}");
    v.v.items.ndim = 0;
    sends_as(c, &v, "int8[]", "{}");

    corm_value strs[5] = {text("a b", 0), {.kind = CORM_NULL}, text("\"q\\", 0), text("", 0),
                          text("NULL", 0)};
    corm_value s = {.kind = CORM_ARRAY_ITEMS};
    s.v.items.items = strs;
    s.v.items.dims = (int32_t[]){5};
    s.v.items.ndim = 1;
    sends_as(c, &s, "text[]", "{\"a b\",NULL,\"\\\"q\\\\\",\"\",\"NULL\"}");
    s.v.items.elem_oid = CORM_OID_VARCHAR;
    sends_as(c, &s, "varchar[]", "{\"a b\",NULL,\"\\\"q\\\\\",\"\",\"NULL\"}");

    corm_value nums[3] = {numeric("1e-20"), numeric("NaN"), {.kind = CORM_NULL}};
    corm_value n = {.kind = CORM_ARRAY_ITEMS};
    n.v.items.items = nums;
    n.v.items.dims = (int32_t[]){3};
    n.v.items.ndim = 1;
    sends_as(c, &n, "numeric[]", "{0.00000000000000000001,NaN,NULL}");

    corm_value when[2] = {{.kind = CORM_TIMESTAMPTZ, .v.i = 0},
                          {.kind = CORM_TIMESTAMPTZ, .v.i = CORM_TIMESTAMP_INFINITY}};
    corm_value w = {.kind = CORM_ARRAY_ITEMS};
    w.v.items.items = when;
    w.v.items.dims = (int32_t[]){2};
    w.v.items.ndim = 1;
    sends_as(c, &w, "timestamptz[]", "{\"2000-01-01 00:00:00+00\",infinity}");

    corm_value nulls[2] = {{.kind = CORM_NULL}, {.kind = CORM_NULL}};
    corm_value an = {.kind = CORM_ARRAY_ITEMS, .oid = CORM_OID_DATE_ARRAY};
    an.v.items.items = nulls;
    an.v.items.dims = (int32_t[]){2};
    an.v.items.ndim = 1;
    sends_as(c, &an, "date[]", "{NULL,NULL}");
    corm_conn_close(c);
}

TEST(values_that_do_not_fit)
{
    /* Refused at bind time with CORM_EDATA, naming the parameter; the query
     * keeps its earlier parameters and still runs. */
    corm_conn *c = connect_utc();
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    CHECK_OK(corm_query_sql(&q, "SELECT $1::int4", &err), &err);
    corm_value bad[] = {
        {.kind = CORM_INT, .oid = CORM_OID_INT4, .v.i = INT64_C(1) << 31},
        {.kind = CORM_FLOAT, .oid = CORM_OID_FLOAT4, .v.f = 1e39},
        numeric("1.2.3"),
        text("a\0b", CORM_OID_TEXT),
        {.kind = CORM_DATE, .v.i = INT64_C(1) << 40},
    };
    bad[3].v.str.len = 3;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(corm_query_bind(q, &bad[i], &err), CORM_EDATA, &err);
        CHECK(strstr(err.message, "parameter $1") != NULL);
        CHECK_EQ_INT(corm_query_nparams(q), 0);
    }
    CHECK_OK(corm_query_bind_int64(q, 7, &err), &err);
    corm_result *r = NULL;
    /* int8 7 into $1::int4 is the server's cast: fine */
    CHECK_OK(corm_conn_exec(c, q, &r, &err), &err);
    int64_t got;
    CHECK_OK(corm_result_get_int64(r, 0, 0, &got, &err), &err);
    CHECK_EQ_INT(got, 7);
    corm_result_free(r);
    corm_query_free(q);
    corm_error_clear(&err);
    corm_conn_close(c);
}

TEST(enums)
{
    corm_conn *c = connect_utc();
    corm_error err = CORM_ERROR_INIT;
    char sql[256], type[64];
    snprintf(type, sizeof type, "corm_rt_mood_%d", (int)getpid());
    snprintf(sql, sizeof sql, "DROP TYPE IF EXISTS %s", type);
    corm_result *r = exec_sql(c, sql);
    corm_result_free(r);
    snprintf(sql, sizeof sql, "CREATE TYPE %s AS ENUM ('sad', 'ok', 'happy')", type);
    r = exec_sql(c, sql);
    corm_result_free(r);

    /* decoded: raw bytes that are the label */
    snprintf(sql, sizeof sql, "SELECT 'happy'::%s, '{sad,NULL,ok}'::%s[]", type, type);
    r = exec_sql(c, sql);
    uint32_t enum_oid = corm_result_coltype(r, 0);
    corm_value v;
    CHECK_OK(corm_result_get(r, 0, 0, &v, &err), &err);
    CHECK_EQ_INT(v.kind, CORM_RAW);
    CHECK_EQ_INT(v.oid, enum_oid);
    CHECK(v.v.str.len == 5 && memcmp(v.v.str.ptr, "happy", 5) == 0);
    CHECK_OK(corm_result_get(r, 0, 1, &v, &err), &err);
    CHECK_EQ_INT(v.kind, CORM_RAW);
    sbuf s = {0};
    fmt_array(&s, &v);
    CHECK_STR(s.p, "{sad,NULL,ok}");
    free(s.p);
    corm_array a;
    CHECK_OK(corm_array_init(&a, &v, &err), &err);
    CHECK_EQ_INT(a.elem_oid, enum_oid);

    /* sent: text with oid 0, the server infers the enum */
    corm_value t = text("ok", 0);
    sends_as(c, &t, type, "ok");
    /* and the raw value straight back */
    corm_value raw;
    CHECK_OK(corm_result_get(r, 0, 0, &raw, &err), &err);
    sends_as(c, &raw, type, "happy");
    /* an enum array built from text items */
    corm_value items[3] = {text("happy", 0), {.kind = CORM_NULL}, text("sad", 0)};
    corm_value arr = {.kind = CORM_ARRAY_ITEMS};
    arr.v.items.items = items;
    arr.v.items.dims = (int32_t[]){3};
    arr.v.items.ndim = 1;
    arr.v.items.elem_oid = enum_oid;
    char arrtype[80];
    snprintf(arrtype, sizeof arrtype, "%s[]", type);
    sends_as(c, &arr, arrtype, "{happy,NULL,sad}");
    /* the raw array straight back */
    CHECK_OK(corm_result_get(r, 0, 1, &v, &err), &err);
    sends_as(c, &v, arrtype, "{sad,NULL,ok}");
    /* a label the enum lacks is the server's data error */
    corm_query *q = NULL;
    snprintf(sql, sizeof sql, "SELECT $1::%s", type);
    CHECK_OK(corm_query_sql(&q, sql, &err), &err);
    corm_value bad = text("angry", 0);
    CHECK_OK(corm_query_bind(q, &bad, &err), &err);
    corm_result *res = NULL;
    CHECK_ERR(corm_conn_exec(c, q, &res, &err), CORM_EDATA, &err);
    corm_query_free(q);
    corm_result_free(r);

    snprintf(sql, sizeof sql, "DROP TYPE %s", type);
    r = exec_sql(c, sql);
    corm_result_free(r);
    corm_error_clear(&err);
    corm_conn_close(c);
}

TEST(other_types_are_raw)
{
    corm_conn *c = connect_utc();
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = exec_sql(c, "SELECT '192.168.0.1/24'::inet, '(1,2)'::point, "
                                 "'1.5'::money, 'abc'::xml, ROW(1, 'x')");
    for (int col = 0; col < corm_result_ncols(r); col++) {
        corm_value v;
        CHECK_OK(corm_result_get(r, 0, col, &v, &err), &err);
        CHECK_EQ_INT(v.kind, CORM_RAW);
        CHECK_EQ_INT(v.oid, corm_result_coltype(r, col));
        CHECK(v.v.str.len > 0);
    }
    corm_result_free(r);
    corm_conn_close(c);
}

TEST(numerics_in_a_big_result)
{
    /* Numeric text lives in the result: 20,000 cells decoded one after the
     * other, all still readable at the end (compared with the server's
     * text), and freed with the result. */
    corm_conn *c = connect_utc();
    corm_error err = CORM_ERROR_INIT;
    corm_result *r = exec_sql(c, "SELECT x, a, x::text, a[2]::text FROM ("
                                 "SELECT (i::numeric / 7)::numeric(30,10) x, "
                                 "ARRAY[i::numeric, -i::numeric / 3] a "
                                 "FROM generate_series(1, 10000) i) t");
    const char **texts = calloc(20000, sizeof *texts);
    CHECK(texts != NULL);
    for (int row = 0; row < 10000; row++) {
        corm_value v;
        CHECK_OK(corm_result_get(r, row, 0, &v, &err), &err);
        texts[row] = v.v.str.ptr;
        CHECK_OK(corm_result_get(r, row, 1, &v, &err), &err);
        corm_array a;
        CHECK_OK(corm_array_init(&a, &v, &err), &err);
        CHECK_OK(corm_array_get(&a, 1, &v, &err), &err);
        texts[10000 + row] = v.v.str.ptr;
    }
    for (int row = 0; row < 10000; row++) {
        const char *want;
        CHECK_OK(corm_result_get_text(r, row, 2, &want, NULL, &err), &err);
        CHECK_STR(texts[row], want);
        CHECK_OK(corm_result_get_text(r, row, 3, &want, NULL, &err), &err);
        CHECK_STR(texts[10000 + row], want);
    }
    CHECK_STR(texts[0], "0.1428571429");
    CHECK_STR(texts[10000], "-0.33333333333333333333");
    free(texts);
    corm_result_free(r);
    corm_conn_close(c);
}
