/*
 * test_codec.c - the binary codecs without a server: every type's edge
 * values decoded from known wire bytes and encoded back, malformed bytes,
 * values that do not fit, arrays, the calendar helpers.
 */
#define CTEST_MAIN
#include "ctest.h"

#include "corm.h"
#include "corm_int.h"

#include <math.h>

/* ---- helpers ------------------------------------------------------------ */

/* Hex text ("00ff", spaces ignored) to bytes; returns the length. */
static size_t unhex(const char *hex, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        CHECK(sscanf(p, "%2x", &v) == 1);
        CHECK(n < cap);
        out[n++] = (char)v;
        p += 2;
    }
    return n;
}

static void tohex(const char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)b[i]);
    out[2 * n] = 0;
}

/* A decoding context: scratch storage, freed by ctx_done. */
typedef struct ctx {
    corm__alloc alloc;
    corm__arena arena;
    char wire[4096];
    corm_error err;
} ctx;

static void ctx_init(ctx *c)
{
    corm__alloc_init(&c->alloc, NULL);
    corm__arena_init(&c->arena, &c->alloc);
    corm_error e = CORM_ERROR_INIT;
    c->err = e;
}

static void ctx_done(ctx *c)
{
    corm__arena_free(&c->arena);
    corm_error_clear(&c->err);
}

/* Decodes hex wire bytes as type oid; returns the status. The bytes stay
 * in c->wire, which views point into. */
static int dec(ctx *c, uint32_t oid, const char *hex, corm_value *v)
{
    size_t n = unhex(hex, c->wire, sizeof c->wire);
    memset(v, 0, sizeof *v);
    v->oid = oid;
    corm_error_clear(&c->err);
    return corm__decoder_for(oid)(c->wire, n, oid, v, &c->arena, &c->err);
}

static void dec_ok(ctx *c, uint32_t oid, const char *hex, corm_value *v)
{
    CHECK_OK(dec(c, oid, hex, v), &c->err);
}

static void dec_bad(ctx *c, uint32_t oid, const char *hex)
{
    corm_value v;
    CHECK_ERR(dec(c, oid, hex, &v), CORM_EDATA, &c->err);
    CHECK(c->err.message != NULL);
}

/* Encodes v; returns the status, the hex of the bytes in hex_out (if the
 * encoding succeeded) and the oid and format chosen. */
static int enc(const corm_value *v, char *hex_out, uint32_t *oid, int *format, corm_error *err)
{
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm__buf b = {0};
    uint32_t o = 0;
    int f = -1;
    bool is_null = false;
    int rc = corm__encode(v, &b, &a, &o, &f, &is_null, err);
    if (rc == 0 && hex_out) {
        if (is_null)
            strcpy(hex_out, "NULL");
        else
            tohex(b.data, b.len, hex_out);
    }
    corm__buf_free(&b, &a);
    if (oid)
        *oid = o;
    if (format)
        *format = f;
    return rc;
}

/* v encodes (binary) to exactly hex, sent as type want_oid. */
static void enc_is(const corm_value *v, const char *hex, uint32_t want_oid)
{
    char got[8192], want[8192];
    char tmp[4096];
    size_t n = unhex(hex, tmp, sizeof tmp);
    tohex(tmp, n, want);
    corm_error err = CORM_ERROR_INIT;
    uint32_t oid;
    int format;
    CHECK_OK(enc(v, got, &oid, &format, &err), &err);
    CHECK_STR(got, want);
    CHECK_EQ_INT(oid, want_oid);
    CHECK_EQ_INT(format, 1);
}

static void enc_bad(const corm_value *v)
{
    corm_error err = CORM_ERROR_INIT;
    char got[8192];
    CHECK_ERR(enc(v, got, NULL, NULL, &err), CORM_EDATA, &err);
    CHECK(err.message != NULL);
    corm_error_clear(&err);
}

static bool str_is(const corm_value *v, const char *s)
{
    return v->v.str.len == strlen(s) && memcmp(v->v.str.ptr, s, v->v.str.len) == 0;
}

#define CHECK_VSTR(val, s)                                                          \
    CHECK_MSG(str_is(&(val), (s)), "string \"%.*s\" != \"%s\"", (int)(val).v.str.len, \
              (val).v.str.ptr, (s))

/* ---- integers, floats, bool ------------------------------------------------ */

TEST(int_decode_edges)
{
    static const struct { uint32_t oid; const char *hex; int64_t want; } t[] = {
        {CORM_OID_INT2, "8000", INT16_MIN},
        {CORM_OID_INT2, "7fff", INT16_MAX},
        {CORM_OID_INT2, "ffff", -1},
        {CORM_OID_INT4, "80000000", INT32_MIN},
        {CORM_OID_INT4, "7fffffff", INT32_MAX},
        {CORM_OID_INT8, "8000000000000000", INT64_MIN},
        {CORM_OID_INT8, "7fffffffffffffff", INT64_MAX},
        {CORM_OID_INT8, "0000000000000000", 0},
        {CORM_OID_OID, "ffffffff", UINT32_MAX},
    };
    ctx c;
    ctx_init(&c);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        corm_value v;
        dec_ok(&c, t[i].oid, t[i].hex, &v);
        CHECK_EQ_INT(v.kind, CORM_INT);
        CHECK_EQ_INT(v.v.i, t[i].want);
        /* and back, as the same type */
        corm_value e = {.kind = CORM_INT, .oid = t[i].oid, .v.i = t[i].want};
        enc_is(&e, t[i].hex, t[i].oid);
    }
    dec_bad(&c, CORM_OID_INT2, "00");
    dec_bad(&c, CORM_OID_INT4, "000000");
    dec_bad(&c, CORM_OID_INT8, "00000000000000");
    dec_bad(&c, CORM_OID_INT8, "");
    dec_bad(&c, CORM_OID_OID, "0000000000");
    ctx_done(&c);
}

TEST(int_encode_range)
{
    corm_value v = {.kind = CORM_INT};
    v.v.i = 5;
    enc_is(&v, "0000000000000005", CORM_OID_INT8); /* default: int8 */
    static const struct { uint32_t oid; int64_t bad; } t[] = {
        {CORM_OID_INT2, 32768},      {CORM_OID_INT2, -32769},
        {CORM_OID_INT4, 2147483648}, {CORM_OID_INT4, -2147483649LL},
        {CORM_OID_OID, -1},          {CORM_OID_OID, 4294967296LL},
        {CORM_OID_FLOAT8, (INT64_C(1) << 53) + 1}, {CORM_OID_FLOAT4, (1 << 24) + 1},
        {CORM_OID_BOOL, 1},          {CORM_OID_TEXT, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        v.oid = t[i].oid;
        v.v.i = t[i].bad;
        enc_bad(&v);
    }
    /* exact conversions are allowed */
    v.oid = CORM_OID_FLOAT8;
    v.v.i = INT64_C(1) << 53;
    enc_is(&v, "4340000000000000", CORM_OID_FLOAT8);
    v.oid = CORM_OID_FLOAT4;
    v.v.i = -(1 << 24);
    enc_is(&v, "cb800000", CORM_OID_FLOAT4);
    v.oid = CORM_OID_NUMERIC;
    v.v.i = INT64_MIN; /* -9223372036854775808: groups 922 3372 0368 5477 5808 */
    enc_is(&v, "0005 0004 4000 0000 039a 0d2c 0170 1565 16b0", CORM_OID_NUMERIC);
}

TEST(float_edges)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    dec_ok(&c, CORM_OID_FLOAT8, "7ff8000000000000", &v);
    CHECK(v.kind == CORM_FLOAT && isnan(v.v.f));
    dec_ok(&c, CORM_OID_FLOAT8, "7ff0000000000000", &v);
    CHECK(isinf(v.v.f) && v.v.f > 0);
    dec_ok(&c, CORM_OID_FLOAT8, "fff0000000000000", &v);
    CHECK(isinf(v.v.f) && v.v.f < 0);
    dec_ok(&c, CORM_OID_FLOAT8, "8000000000000000", &v);
    CHECK(v.v.f == 0 && signbit(v.v.f));
    dec_ok(&c, CORM_OID_FLOAT8, "0000000000000001", &v);
    CHECK(v.v.f == 4.9406564584124654e-324);
    dec_ok(&c, CORM_OID_FLOAT4, "7fc00000", &v);
    CHECK(isnan(v.v.f));
    dec_ok(&c, CORM_OID_FLOAT4, "ff800000", &v);
    CHECK(isinf(v.v.f) && v.v.f < 0);
    dec_ok(&c, CORM_OID_FLOAT4, "3dcccccd", &v);
    CHECK(v.v.f == (double)0.1f);
    dec_ok(&c, CORM_OID_FLOAT4, "7f7fffff", &v);
    CHECK(v.v.f == 3.4028234663852886e38);
    dec_bad(&c, CORM_OID_FLOAT4, "7fc000");
    dec_bad(&c, CORM_OID_FLOAT8, "7ff80000");
    ctx_done(&c);

    corm_value e = {.kind = CORM_FLOAT};
    e.v.f = INFINITY;
    enc_is(&e, "7ff0000000000000", CORM_OID_FLOAT8);
    e.oid = CORM_OID_FLOAT4;
    enc_is(&e, "7f800000", CORM_OID_FLOAT4);
    e.v.f = -INFINITY;
    enc_is(&e, "ff800000", CORM_OID_FLOAT4);
    e.v.f = 0.1;
    enc_is(&e, "3dcccccd", CORM_OID_FLOAT4);
    e.v.f = -0.0;
    enc_is(&e, "80000000", CORM_OID_FLOAT4);
    e.v.f = NAN;
    {
        char hex[64];
        corm_error err = CORM_ERROR_INIT;
        CHECK_OK(enc(&e, hex, NULL, NULL, &err), &err);
        unsigned u;
        sscanf(hex, "%8x", &u);
        CHECK((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0);
    }
    e.v.f = 3.5e38; /* overflows float4 */
    enc_bad(&e);
    e.v.f = -1e39;
    enc_bad(&e);
    e.v.f = 1e-50; /* would become zero */
    enc_bad(&e);
    e.v.f = 1e-40; /* a float4 subnormal: fine */
    {
        corm_error err = CORM_ERROR_INIT;
        CHECK_OK(enc(&e, NULL, NULL, NULL, &err), &err);
    }
    /* floats to integer types: integral only */
    e.oid = CORM_OID_INT4;
    e.v.f = 42.0;
    enc_is(&e, "0000002a", CORM_OID_INT4);
    e.v.f = 42.5;
    enc_bad(&e);
    e.v.f = 3e9;
    enc_bad(&e);
    e.v.f = NAN;
    enc_bad(&e);
    e.oid = CORM_OID_INT8;
    e.v.f = 9223372036854775808.0;
    enc_bad(&e);
    e.v.f = -9223372036854775808.0;
    enc_is(&e, "8000000000000000", CORM_OID_INT8);
    /* floats to numeric: the shortest decimal that reads back */
    e.oid = CORM_OID_NUMERIC;
    e.v.f = 0.1;
    enc_is(&e, "0001 ffff 0000 0001 03e8", CORM_OID_NUMERIC);
    e.v.f = NAN;
    enc_is(&e, "0000 0000 c000 0000", CORM_OID_NUMERIC);
    e.v.f = -INFINITY;
    enc_is(&e, "0000 0000 f000 0000", CORM_OID_NUMERIC);
    e.oid = CORM_OID_TEXT;
    enc_bad(&e);
}

TEST(bool_both_ways)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    dec_ok(&c, CORM_OID_BOOL, "01", &v);
    CHECK(v.kind == CORM_BOOL && v.v.b);
    dec_ok(&c, CORM_OID_BOOL, "00", &v);
    CHECK(!v.v.b);
    dec_bad(&c, CORM_OID_BOOL, "");
    dec_bad(&c, CORM_OID_BOOL, "0101");
    ctx_done(&c);
    corm_value e = {.kind = CORM_BOOL, .v.b = true};
    enc_is(&e, "01", CORM_OID_BOOL);
    e.oid = CORM_OID_INT4;
    enc_bad(&e);
}

/* ---- numeric ------------------------------------------------------------- */

/* Wire bytes from PostgreSQL's numeric_send and the text numeric_out prints. */
static const struct { const char *hex, *text; } numeric_wire[] = {
    {"0000 0000 0000 0000", "0"},
    {"0000 0000 0000 0002", "0.00"},
    {"0002 0000 4000 0002 000c 1388", "-12.50"},
    {"0001 0001 0000 0000 000a", "100000"},
    {"0001 fffb 0000 0014 0001", "0.00000000000000000001"},
    {"0004 0001 0000 0008 04d2 162e 223d 10e1", "12345678.87654321"},
    {"0001 0000 0000 0000 0001", "1"},
    {"0001 0000 4000 0000 0001", "-1"},
    {"0001 ffff 0000 0001 03e8", "0.1"},
    {"0001 ffff 0000 0004 0001", "0.0001"},
    {"0001 0000 0000 0003 0007", "7.000"},
    {"0002 0002 0000 0000 0001 0001", "100010000"},
    {"0000 0000 c000 0000", "NaN"},
    {"0000 0000 d000 0000", "Infinity"},
    {"0000 0000 f000 0020", "-Infinity"},
    {"0005 0004 4000 0000 039a 0d2c 0170 1565 16b0", "-9223372036854775808"},
};

TEST(numeric_decode_known)
{
    ctx c;
    ctx_init(&c);
    for (size_t i = 0; i < sizeof numeric_wire / sizeof numeric_wire[0]; i++) {
        corm_value v;
        dec_ok(&c, CORM_OID_NUMERIC, numeric_wire[i].hex, &v);
        CHECK_EQ_INT(v.kind, CORM_NUMERIC);
        CHECK_VSTR(v, numeric_wire[i].text);
        CHECK(v.v.str.ptr[v.v.str.len] == 0); /* a C string too */
    }
    ctx_done(&c);
}

TEST(numeric_encode_known)
{
    for (size_t i = 0; i < sizeof numeric_wire / sizeof numeric_wire[0]; i++) {
        if (strcmp(numeric_wire[i].text, "-Infinity") == 0)
            continue; /* the server's dscale bits there are noise */
        corm_value v = {.kind = CORM_NUMERIC};
        v.v.str.ptr = numeric_wire[i].text;
        v.v.str.len = strlen(numeric_wire[i].text);
        enc_is(&v, numeric_wire[i].hex, CORM_OID_NUMERIC);
    }
}

/* Encodes text as numeric and decodes it again: what the server would print. */
static void numeric_canon(const char *in, const char *want)
{
    corm_value v = {.kind = CORM_NUMERIC};
    v.v.str.ptr = in;
    v.v.str.len = strlen(in);
    char hex[8192];
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(enc(&v, hex, NULL, NULL, &err), &err);
    ctx c;
    ctx_init(&c);
    corm_value out;
    dec_ok(&c, CORM_OID_NUMERIC, hex, &out);
    CHECK_MSG(str_is(&out, want), "\"%s\" -> \"%.*s\", want \"%s\"", in, (int)out.v.str.len,
              out.v.str.ptr, want);
    ctx_done(&c);
}

TEST(numeric_text_forms)
{
    static const char *t[][2] = {
        {"  1.5e-3 ", "0.0015"}, {"-0", "0"},        {"-0.00", "0.00"},
        {".5", "0.5"},           {"5.", "5"},        {"1E+2", "100"},
        {"1e-20", "0.00000000000000000001"},         {"007.50", "7.50"},
        {"+42", "42"},           {"inf", "Infinity"}, {"-INF", "-Infinity"},
        {"+Infinity", "Infinity"}, {"nan", "NaN"},   {"NaN", "NaN"},
        {"\t\n-12.50\r\n", "-12.50"},                {"0.000", "0.000"},
        {"1.23e1", "12.3"},      {"123e-5", "0.00123"}, {"9999.9999", "9999.9999"},
        {"10000", "10000"},      {"0.00010000", "0.00010000"},
        {"1e131071", NULL},      {"123456789012345678901234567890.123456789012345678901234567890",
                                  "123456789012345678901234567890.123456789012345678901234567890"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (!t[i][1])
            continue;
        numeric_canon(t[i][0], t[i][1]);
    }
    /* The largest weight: 1 followed by 131071 zeros. */
    {
        corm_value v = {.kind = CORM_NUMERIC};
        v.v.str.ptr = "1e131071";
        v.v.str.len = 8;
        enc_is(&v, "0001 7fff 0000 0000 03e8", CORM_OID_NUMERIC);
    }
}

TEST(numeric_malformed_text)
{
    static const char *bad[] = {
        "", " ", "1.2.3", "abc", "1e", "1e+", "--1", "+-1", "1 2", ".", "-NaN", "0x10",
        "1_000", "1e-16384", "1e131072", "Infinityx", "1,5", "e5", "- 1", "1e 2", "NaN1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corm_value v = {.kind = CORM_NUMERIC};
        v.v.str.ptr = bad[i];
        v.v.str.len = strlen(bad[i]);
        corm_error err = CORM_ERROR_INIT;
        CHECK_MSG(enc(&v, NULL, NULL, NULL, &err) == CORM_EDATA, "\"%s\" was accepted", bad[i]);
        corm_error_clear(&err);
    }
    /* an embedded NUL is malformed, not an end of string */
    corm_value v = {.kind = CORM_NUMERIC};
    v.v.str.ptr = "12\0003";
    v.v.str.len = 4;
    enc_bad(&v);
    /* numeric as another type */
    v.v.str.ptr = "1";
    v.v.str.len = 1;
    v.oid = CORM_OID_INT4;
    enc_bad(&v);
}

TEST(numeric_malformed_wire)
{
    ctx c;
    ctx_init(&c);
    dec_bad(&c, CORM_OID_NUMERIC, "");
    dec_bad(&c, CORM_OID_NUMERIC, "0000 0000 0000");
    dec_bad(&c, CORM_OID_NUMERIC, "0001 0000 0000 0000");        /* digit missing */
    dec_bad(&c, CORM_OID_NUMERIC, "0000 0000 0000 0000 0001");   /* extra bytes */
    dec_bad(&c, CORM_OID_NUMERIC, "0001 0000 1234 0000 0001");   /* sign */
    dec_bad(&c, CORM_OID_NUMERIC, "0001 0000 0000 4000 0001");   /* dscale */
    dec_bad(&c, CORM_OID_NUMERIC, "0001 0000 0000 0000 2710");   /* digit 10000 */
    dec_bad(&c, CORM_OID_NUMERIC, "ffff 0000 0000 0000");        /* 65535 digits claimed */
    /* without scratch storage, numeric text cannot be made */
    corm_value v;
    size_t n = unhex("0001 0000 0000 0000 0001", c.wire, sizeof c.wire);
    CHECK_ERR(corm__decoder_for(CORM_OID_NUMERIC)(c.wire, n, CORM_OID_NUMERIC, &v, NULL, &c.err),
              CORM_ENOMEM, &c.err);
    ctx_done(&c);
}

TEST(numeric_extremes)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    /* weight 32767 and dscale 16383: the widest text there is */
    dec_ok(&c, CORM_OID_NUMERIC, "0001 7fff 0000 3fff 0001", &v);
    CHECK_EQ_INT(v.v.str.len, 1 + 32767 * 4 + 1 + 16383);
    CHECK(v.v.str.ptr[0] == '1' && v.v.str.ptr[1 + 32767 * 4] == '.');
    /* the lowest weight, digits past dscale cut (as numeric_out does) */
    dec_ok(&c, CORM_OID_NUMERIC, "0001 8000 4000 0002 0001", &v);
    CHECK_VSTR(v, "0.00");
    /* leading zero groups from a sloppy sender still print as a number */
    dec_ok(&c, CORM_OID_NUMERIC, "0002 0001 0000 0000 0000 0005", &v);
    CHECK_VSTR(v, "5");
    dec_ok(&c, CORM_OID_NUMERIC, "0002 0000 4000 0001 0000 0000", &v);
    CHECK_VSTR(v, "0.0");
    ctx_done(&c);
}

/* xorshift: deterministic pseudo-random numbers, no global state. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

TEST(numeric_random_roundtrip)
{
    /* Normalised wire values (what a server sends) must survive
     * decode -> text -> encode byte for byte. */
    uint64_t seed = 0x9E3779B97F4A7C15u;
    ctx c;
    ctx_init(&c);
    for (int iter = 0; iter < 3000; iter++) {
        int nd = 1 + (int)(rnd(&seed) % 12);
        int weight = (int)(rnd(&seed) % 41) - 20;
        unsigned dig[12];
        for (int i = 0; i < nd; i++)
            dig[i] = (unsigned)(rnd(&seed) % 10000);
        if (dig[0] == 0)
            dig[0] = 1;
        if (dig[nd - 1] == 0)
            dig[nd - 1] = 7;
        int wl = weight - nd + 1, need = 0;
        if (wl < 0) {
            unsigned last = dig[nd - 1];
            int tz = 0;
            while (tz < 3 && last % 10 == 0) {
                last /= 10;
                tz++;
            }
            need = -wl * 4 - tz;
        }
        int dscale = need + (int)(rnd(&seed) % 6);
        bool neg = rnd(&seed) & 1;
        char hex[200];
        int k = sprintf(hex, "%04x%04x%04x%04x", nd, (unsigned)(uint16_t)weight,
                        neg ? 0x4000u : 0u, (unsigned)dscale);
        for (int i = 0; i < nd; i++)
            k += sprintf(hex + k, "%04x", dig[i]);
        corm_value v;
        dec_ok(&c, CORM_OID_NUMERIC, hex, &v);
        corm_value e = {.kind = CORM_NUMERIC};
        e.v.str = v.v.str;
        enc_is(&e, hex, CORM_OID_NUMERIC);
    }
    ctx_done(&c);
}

/* ---- strings ----------------------------------------------------------------- */

TEST(text_types)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    uint32_t text_oids[] = {CORM_OID_TEXT, CORM_OID_VARCHAR, CORM_OID_BPCHAR, CORM_OID_NAME,
                            CORM_OID_UNKNOWN};
    for (size_t i = 0; i < sizeof text_oids / sizeof text_oids[0]; i++) {
        dec_ok(&c, text_oids[i], "68c3a9 20", &v); /* "hé " */
        CHECK_EQ_INT(v.kind, CORM_TEXT);
        CHECK_VSTR(v, "h\xc3\xa9 ");
        dec_ok(&c, text_oids[i], "", &v);
        CHECK_EQ_INT(v.v.str.len, 0);
    }
    dec_ok(&c, CORM_OID_CHAR, "61", &v);
    CHECK_VSTR(v, "a");
    dec_ok(&c, CORM_OID_CHAR, "00", &v);
    CHECK_VSTR(v, "");
    dec_ok(&c, CORM_OID_CHAR, "80", &v);
    CHECK_VSTR(v, "\x80");
    dec_bad(&c, CORM_OID_CHAR, "");
    dec_bad(&c, CORM_OID_CHAR, "6162");
    ctx_done(&c);

    corm_value e = {.kind = CORM_TEXT};
    e.v.str.ptr = "abc";
    e.v.str.len = 3;
    /* oid 0: untyped text, for the server to infer (enums included) */
    {
        char hex[64];
        uint32_t oid;
        int format;
        corm_error err = CORM_ERROR_INIT;
        CHECK_OK(enc(&e, hex, &oid, &format, &err), &err);
        CHECK_EQ_INT(oid, 0);
        CHECK_EQ_INT(format, 0);
        CHECK_STR(hex, "61626300"); /* text format: a C string for libpq */
        /* a non-text type reads the text through its input function */
        e.oid = CORM_OID_INT4;
        CHECK_OK(enc(&e, hex, &oid, &format, &err), &err);
        CHECK_EQ_INT(oid, CORM_OID_INT4);
        CHECK_EQ_INT(format, 0);
    }
    uint32_t bin[] = {CORM_OID_TEXT, CORM_OID_VARCHAR, CORM_OID_BPCHAR, CORM_OID_NAME,
                      CORM_OID_JSON};
    for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++) {
        e.oid = bin[i];
        enc_is(&e, "616263", bin[i]);
    }
    e.oid = CORM_OID_JSONB;
    enc_is(&e, "01 616263", CORM_OID_JSONB);
    /* "char": one byte, or none for NUL */
    e.oid = CORM_OID_CHAR;
    e.v.str.len = 1;
    enc_is(&e, "61", CORM_OID_CHAR);
    e.v.str.len = 0;
    enc_is(&e, "00", CORM_OID_CHAR);
    e.v.str.len = 2;
    enc_bad(&e);
    /* NUL bytes never fit text */
    e.oid = CORM_OID_TEXT;
    e.v.str.ptr = "a\0b";
    e.v.str.len = 3;
    enc_bad(&e);
    e.oid = 0;
    enc_bad(&e);
    /* name: at most 63 bytes */
    char name[65];
    memset(name, 'n', 64);
    e.oid = CORM_OID_NAME;
    e.v.str.ptr = name;
    e.v.str.len = 63;
    {
        corm_error err = CORM_ERROR_INIT;
        CHECK_OK(enc(&e, NULL, NULL, NULL, &err), &err);
    }
    e.v.str.len = 64;
    enc_bad(&e);
}

TEST(bytea_uuid_json)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    dec_ok(&c, CORM_OID_BYTEA, "00ff00", &v);
    CHECK(v.kind == CORM_BYTES && v.v.str.len == 3 && v.v.str.ptr[1] == (char)0xff);
    dec_ok(&c, CORM_OID_UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11", &v);
    CHECK(v.kind == CORM_UUID && v.v.uuid[0] == 0xa0 && v.v.uuid[15] == 0x11);
    dec_bad(&c, CORM_OID_UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a");
    dec_ok(&c, CORM_OID_JSON, "7b7d", &v);
    CHECK(v.kind == CORM_JSON);
    CHECK_VSTR(v, "{}");
    dec_ok(&c, CORM_OID_JSONB, "01 5b315d", &v);
    CHECK(v.kind == CORM_JSON);
    CHECK_VSTR(v, "[1]");
    dec_bad(&c, CORM_OID_JSONB, "");
    dec_bad(&c, CORM_OID_JSONB, "02 5b315d");
    /* anything else: raw bytes and the oid, never an error */
    dec_ok(&c, 869 /* inet */, "02200004c0a80001", &v);
    CHECK(v.kind == CORM_RAW && v.oid == 869 && v.v.str.len == 8);
    dec_ok(&c, 123456, "", &v);
    CHECK(v.kind == CORM_RAW);
    ctx_done(&c);

    corm_value e = {.kind = CORM_BYTES};
    e.v.str.ptr = "\0\1";
    e.v.str.len = 2;
    enc_is(&e, "0001", CORM_OID_BYTEA);
    e.oid = CORM_OID_TEXT;
    enc_bad(&e);
    corm_value u = {.kind = CORM_UUID};
    memset(u.v.uuid, 0xab, 16);
    enc_is(&u, "abababababababababababababababab", CORM_OID_UUID);
    u.oid = CORM_OID_TEXT;
    enc_bad(&u);
    corm_value j = {.kind = CORM_JSON};
    j.v.str.ptr = "{}";
    j.v.str.len = 2;
    enc_is(&j, "01 7b7d", CORM_OID_JSONB);
    j.oid = CORM_OID_JSON;
    enc_is(&j, "7b7d", CORM_OID_JSON);
    j.oid = CORM_OID_BYTEA;
    enc_bad(&j);
    corm_value r = {.kind = CORM_RAW};
    r.v.str.ptr = "x";
    r.v.str.len = 1;
    enc_bad(&r); /* raw needs its oid */
    r.oid = 869;
    enc_is(&r, "78", 869);
}

/* ---- dates and times ------------------------------------------------------------- */

TEST(date_time_decode)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    dec_ok(&c, CORM_OID_DATE, "7fffffff", &v);
    CHECK(v.kind == CORM_DATE && v.v.i == CORM_DATE_INFINITY);
    dec_ok(&c, CORM_OID_DATE, "80000000", &v);
    CHECK(v.v.i == CORM_DATE_NEG_INFINITY);
    dec_ok(&c, CORM_OID_DATE, "ffda97a7", &v); /* 4714-11-24 BC */
    CHECK_EQ_INT(v.v.i, -2451545);
    dec_bad(&c, CORM_OID_DATE, "ffda97a6");    /* a day before */
    dec_ok(&c, CORM_OID_DATE, "7fda970c", &v); /* 5874897-12-31 */
    CHECK_EQ_INT(v.v.i, 2145031948);
    dec_bad(&c, CORM_OID_DATE, "7fda970d");
    dec_bad(&c, CORM_OID_DATE, "7ffffffe");
    dec_bad(&c, CORM_OID_DATE, "000000");
    dec_ok(&c, CORM_OID_TIME, "000000141dd76000", &v); /* 24:00:00 */
    CHECK(v.kind == CORM_TIME && v.v.i == INT64_C(86400000000));
    dec_bad(&c, CORM_OID_TIME, "000000141dd76001");
    dec_bad(&c, CORM_OID_TIME, "ffffffffffffffff");
    /* 12:00:01+02: PostgreSQL sends -7200 (west), we give +7200 (east) */
    dec_ok(&c, CORM_OID_TIMETZ, "0000000a0efaf240 ffffe3e0", &v);
    CHECK(v.kind == CORM_TIMETZ && v.v.tz.usec == INT64_C(43201000000) && v.v.tz.zone == 7200);
    dec_bad(&c, CORM_OID_TIMETZ, "0000000a0efaf240 ffff1f00"); /* -57600 */
    dec_bad(&c, CORM_OID_TIMETZ, "0000000a0efaf240");
    dec_ok(&c, CORM_OID_TIMESTAMP, "7fffffffffffffff", &v);
    CHECK(v.kind == CORM_TIMESTAMP && v.v.i == CORM_TIMESTAMP_INFINITY);
    dec_ok(&c, CORM_OID_TIMESTAMPTZ, "8000000000000000", &v);
    CHECK(v.kind == CORM_TIMESTAMPTZ && v.v.i == CORM_TIMESTAMP_NEG_INFINITY);
    dec_ok(&c, CORM_OID_TIMESTAMP, "fd0f7cc1411fa000", &v); /* 4714-11-24 00:00 BC */
    CHECK_EQ_INT(v.v.i, INT64_C(-211813488000000000));
    dec_bad(&c, CORM_OID_TIMESTAMP, "fd0f7cc1411f9fff");
    dec_ok(&c, CORM_OID_TIMESTAMP, "7fffff5bb3b29fff", &v); /* 294276-12-31 23:59:59.999999 */
    dec_bad(&c, CORM_OID_TIMESTAMP, "7fffff5bb3b2a000");
    dec_ok(&c, CORM_OID_INTERVAL, "000000036c8bc087 fffffffd 0000000e", &v);
    CHECK(v.kind == CORM_INTERVAL && v.v.interval.usec == INT64_C(14706000007) &&
          v.v.interval.days == -3 && v.v.interval.months == 14);
    dec_bad(&c, CORM_OID_INTERVAL, "000000036c8bc087 fffffffd");
    ctx_done(&c);
}

TEST(date_time_encode)
{
    corm_value v = {.kind = CORM_DATE, .v.i = CORM_DATE_INFINITY};
    enc_is(&v, "7fffffff", CORM_OID_DATE);
    v.v.i = -2451545;
    enc_is(&v, "ffda97a7", CORM_OID_DATE);
    v.v.i = -2451546;
    enc_bad(&v);
    v.v.i = INT64_C(1) << 40;
    enc_bad(&v);
    v.oid = CORM_OID_TIMESTAMP;
    v.v.i = 0;
    enc_bad(&v);

    corm_value t = {.kind = CORM_TIME, .v.i = INT64_C(86400000000)};
    enc_is(&t, "000000141dd76000", CORM_OID_TIME);
    t.v.i = -1;
    enc_bad(&t);
    corm_value tz = {.kind = CORM_TIMETZ};
    tz.v.tz.usec = INT64_C(43201000000);
    tz.v.tz.zone = 7200;
    enc_is(&tz, "0000000a0efaf240 ffffe3e0", CORM_OID_TIMETZ);
    tz.v.tz.zone = 57600;
    enc_bad(&tz);

    corm_value ts = {.kind = CORM_TIMESTAMPTZ, .v.i = CORM_TIMESTAMP_NEG_INFINITY};
    enc_is(&ts, "8000000000000000", CORM_OID_TIMESTAMPTZ);
    ts.kind = CORM_TIMESTAMP;
    ts.v.i = INT64_C(-211813488000000000);
    enc_is(&ts, "fd0f7cc1411fa000", CORM_OID_TIMESTAMP);
    ts.v.i--;
    enc_bad(&ts);
    ts.v.i = INT64_C(9223371331200000000);
    enc_bad(&ts);
    ts.v.i = 0;
    ts.oid = CORM_OID_TIMESTAMPTZ;
    enc_bad(&ts);

    corm_value iv = {.kind = CORM_INTERVAL};
    iv.v.interval.usec = INT64_C(14706000007);
    iv.v.interval.days = -3;
    iv.v.interval.months = 14;
    enc_is(&iv, "000000036c8bc087 fffffffd 0000000e", CORM_OID_INTERVAL);
    iv.oid = CORM_OID_TIME;
    enc_bad(&iv);
}

TEST(civil_dates)
{
    static const struct { int y, m, d; int64_t days; } t[] = {
        {2000, 1, 1, 0},          {1970, 1, 1, -10957},      {1999, 12, 31, -1},
        {2000, 2, 29, 59},        {0, 1, 1, -730485},         {-4713, 11, 24, -2451545},
        {5874897, 12, 31, 2145031948}, {1900, 3, 1, -36465},  {2024, 2, 29, 8825},
    };
    corm_error err = CORM_ERROR_INIT;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        corm_datetime dt;
        CHECK_OK(corm_date_to_civil(t[i].days, &dt, &err), &err);
        CHECK_EQ_INT(dt.year, t[i].y);
        CHECK_EQ_INT(dt.month, t[i].m);
        CHECK_EQ_INT(dt.day, t[i].d);
        CHECK_EQ_INT(dt.hour, 0);
        int64_t back;
        CHECK_OK(corm_date_from_civil(&dt, &back, &err), &err);
        CHECK_EQ_INT(back, t[i].days);
    }
    corm_datetime dt = {1900, 2, 29, 0, 0, 0, 0};
    int64_t days;
    CHECK_ERR(corm_date_from_civil(&dt, &days, &err), CORM_EDATA, &err);
    dt = (corm_datetime){2023, 13, 1, 0, 0, 0, 0};
    CHECK_ERR(corm_date_from_civil(&dt, &days, &err), CORM_EDATA, &err);
    dt = (corm_datetime){2023, 4, 31, 0, 0, 0, 0};
    CHECK_ERR(corm_date_from_civil(&dt, &days, &err), CORM_EDATA, &err);
    dt = (corm_datetime){-4713, 11, 23, 0, 0, 0, 0};
    CHECK_ERR(corm_date_from_civil(&dt, &days, &err), CORM_EDATA, &err);
    dt = (corm_datetime){5874898, 1, 1, 0, 0, 0, 0};
    CHECK_ERR(corm_date_from_civil(&dt, &days, &err), CORM_EDATA, &err);
    dt = (corm_datetime){INT32_MIN, 1, 1, 0, 0, 0, 0};
    CHECK_ERR(corm_date_from_civil(&dt, &days, &err), CORM_EDATA, &err);
    CHECK_ERR(corm_date_to_civil(CORM_DATE_INFINITY, &dt, &err), CORM_EDATA, &err);
    CHECK_ERR(corm_date_to_civil(CORM_DATE_NEG_INFINITY, &dt, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
}

TEST(civil_timestamps)
{
    corm_error err = CORM_ERROR_INIT;
    corm_datetime dt;
    CHECK_OK(corm_timestamp_to_civil(-1, &dt, &err), &err);
    CHECK(dt.year == 1999 && dt.month == 12 && dt.day == 31 && dt.hour == 23 &&
          dt.minute == 59 && dt.second == 59 && dt.usec == 999999);
    CHECK_OK(corm_timestamp_to_civil(INT64_C(-211813488000000000), &dt, &err), &err);
    CHECK(dt.year == -4713 && dt.month == 11 && dt.day == 24 && dt.hour == 0);
    CHECK_OK(corm_timestamp_to_civil(INT64_C(9223371331199999999), &dt, &err), &err);
    CHECK(dt.year == 294276 && dt.month == 12 && dt.day == 31 && dt.usec == 999999);
    int64_t us;
    CHECK_OK(corm_timestamp_from_civil(&dt, &us, &err), &err);
    CHECK_EQ_INT(us, INT64_C(9223371331199999999));
    dt = (corm_datetime){2000, 1, 1, 0, 0, 0, 500000};
    CHECK_OK(corm_timestamp_from_civil(&dt, &us, &err), &err);
    CHECK_EQ_INT(us, 500000);
    dt = (corm_datetime){294277, 1, 1, 0, 0, 0, 0};
    CHECK_ERR(corm_timestamp_from_civil(&dt, &us, &err), CORM_EDATA, &err);
    dt = (corm_datetime){5000000, 1, 1, 0, 0, 0, 0}; /* a valid date, no timestamp */
    CHECK_ERR(corm_timestamp_from_civil(&dt, &us, &err), CORM_EDATA, &err);
    dt = (corm_datetime){2000, 1, 1, 24, 0, 0, 0};
    CHECK_ERR(corm_timestamp_from_civil(&dt, &us, &err), CORM_EDATA, &err);
    dt = (corm_datetime){2000, 1, 1, 0, 0, 0, 1000000};
    CHECK_ERR(corm_timestamp_from_civil(&dt, &us, &err), CORM_EDATA, &err);
    CHECK_ERR(corm_timestamp_to_civil(CORM_TIMESTAMP_INFINITY, &dt, &err), CORM_EDATA, &err);
    CHECK_ERR(corm_timestamp_to_civil(CORM_TIMESTAMP_NEG_INFINITY, &dt, &err), CORM_EDATA,
              &err);
    /* every day of 400 years (one Gregorian cycle) and some far ones round-trip */
    for (int64_t d = -80000; d < 80000; d += 1) {
        CHECK_OK(corm_date_to_civil(d, &dt, &err), &err);
        int64_t back;
        CHECK_OK(corm_date_from_civil(&dt, &back, &err), &err);
        CHECK_EQ_INT(back, d);
    }
    corm_error_clear(&err);
}

/* ---- arrays ----------------------------------------------------------------------- */

/* '[0:1][-1:0]={{1,2},{NULL,4}}'::int[] as the server sends it */
#define ARRAY_2D "00000002 00000001 00000017 00000002 00000000 00000002 ffffffff " \
                 "00000004 00000001 00000004 00000002 ffffffff 00000004 00000004"

TEST(array_decode_walk)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    dec_ok(&c, CORM_OID_INT4_ARRAY, ARRAY_2D, &v);
    CHECK_EQ_INT(v.kind, CORM_ARRAY);
    CHECK_EQ_INT(v.v.array.elem_oid, CORM_OID_INT4);
    corm_array a;
    CHECK_OK(corm_array_init(&a, &v, &c.err), &c.err);
    CHECK_EQ_INT(a.ndim, 2);
    CHECK_EQ_INT(a.dims[0], 2);
    CHECK_EQ_INT(a.dims[1], 2);
    CHECK_EQ_INT(a.lbounds[0], 0);
    CHECK_EQ_INT(a.lbounds[1], -1);
    CHECK_EQ_INT(a.nitems, 4);
    CHECK(a.has_nulls);
    static const int64_t want[] = {1, 2, 0, 4};
    corm_value it;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 1);
        CHECK_EQ_INT(it.oid, CORM_OID_INT4);
        if (i == 2) {
            CHECK_EQ_INT(it.kind, CORM_NULL);
        } else {
            CHECK_EQ_INT(it.kind, CORM_INT);
            CHECK_EQ_INT(it.v.i, want[i]);
        }
    }
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 0);
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 0);
    /* random access, forwards and back */
    CHECK_OK(corm_array_get(&a, 3, &it, &c.err), &c.err);
    CHECK_EQ_INT(it.v.i, 4);
    CHECK_OK(corm_array_get(&a, 0, &it, &c.err), &c.err);
    CHECK_EQ_INT(it.v.i, 1);
    CHECK_OK(corm_array_get(&a, 1, &it, &c.err), &c.err);
    CHECK_EQ_INT(it.v.i, 2);
    CHECK_ERR(corm_array_get(&a, 4, &it, &c.err), CORM_EMISUSE, &c.err);
    /* the empty array */
    dec_ok(&c, CORM_OID_INT4_ARRAY, "00000000 00000000 00000017", &v);
    CHECK_OK(corm_array_init(&a, &v, &c.err), &c.err);
    CHECK_EQ_INT(a.ndim, 0);
    CHECK_EQ_INT(a.nitems, 0);
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 0);
    /* not an array */
    corm_value i4 = {.kind = CORM_INT};
    CHECK_ERR(corm_array_init(&a, &i4, &c.err), CORM_EMISUSE, &c.err);
    ctx_done(&c);
}

TEST(array_of_numeric_and_text)
{
    ctx c;
    ctx_init(&c);
    corm_value v;
    /* array[1.5, null, -2]::numeric[] */
    dec_ok(&c, CORM_OID_NUMERIC_ARRAY,
           "00000001 00000001 000006a4 00000003 00000001 0000000c 0002 0000 0000 0001 0001 "
           "1388 ffffffff 0000000a 0001 0000 4000 0000 0002", &v);
    corm_array a;
    CHECK_OK(corm_array_init(&a, &v, &c.err), &c.err);
    corm_value it;
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 1);
    CHECK_EQ_INT(it.kind, CORM_NUMERIC);
    CHECK_VSTR(it, "1.5");
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 1);
    CHECK_EQ_INT(it.kind, CORM_NULL);
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 1);
    CHECK_VSTR(it, "-2");
    /* array['a','b']::text[] */
    dec_ok(&c, CORM_OID_TEXT_ARRAY,
           "00000001 00000000 00000019 00000002 00000001 00000001 61 00000001 62", &v);
    CHECK_OK(corm_array_init(&a, &v, &c.err), &c.err);
    CHECK_OK(corm_array_get(&a, 1, &it, &c.err), &c.err);
    CHECK_VSTR(it, "b");
    /* an enum array arrives raw (its oid is not built in); the walk takes it */
    dec_ok(&c, 99999, "00000001 00000000 0001869f 00000001 00000001 00000003 736164", &v);
    CHECK_EQ_INT(v.kind, CORM_RAW);
    CHECK_OK(corm_array_init(&a, &v, &c.err), &c.err);
    CHECK_EQ_INT(a.elem_oid, 99999);
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 1);
    CHECK_EQ_INT(it.kind, CORM_RAW);
    CHECK_VSTR(it, "sad");
    /* a bad item reports, and the walk goes on */
    dec_ok(&c, CORM_OID_INT4_ARRAY,
           "00000001 00000000 00000017 00000002 00000001 00000002 0001 00000004 00000005", &v);
    CHECK_OK(corm_array_init(&a, &v, &c.err), &c.err);
    CHECK_ERR(corm_array_next(&a, &it, &c.err), CORM_EDATA, &c.err);
    CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 1);
    CHECK_EQ_INT(it.v.i, 5);
    /* int2vector and oidvector use the array format */
    dec_ok(&c, CORM_OID_INT2VECTOR, "00000001 00000000 00000015 00000001 00000000 00000002 0007",
           &v);
    CHECK_EQ_INT(v.kind, CORM_ARRAY);
    ctx_done(&c);
}

TEST(array_malformed)
{
    static const char *bad[] = {
        "",
        "00000001 00000000",
        "00000007 00000000 00000017",                                 /* 7 dims */
        "ffffffff 00000000 00000017",                                 /* -1 dims */
        "00000001 00000002 00000017 00000001 00000001 00000004 00000001", /* flags 2 */
        "00000001 00000000 00000017 00000001",                        /* dims cut */
        "00000001 00000000 00000017 ffffffff 00000001",               /* negative dim */
        "00000001 00000000 00000017 00000002 00000001 00000004 00000001", /* item missing */
        "00000001 00000000 00000017 00000001 00000001 00000004 000000",   /* item cut */
        "00000001 00000000 00000017 00000001 00000001 fffffffe",      /* length -2 */
        "00000001 00000000 00000017 00000001 00000001 ffffffff 00",   /* trailing byte */
        "00000001 00000000 00000017 00000002 7fffffff ffffffff ffffffff", /* upper bound */
        "00000002 00000000 00000017 7fffffff 00000001 7fffffff 00000001 ffffffff", /* count */
        "00000001 00000000 00000017 7fffffff 00000001 ffffffff",      /* more items than bytes */
    };
    ctx c;
    ctx_init(&c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corm_value v;
        int rc = dec(&c, CORM_OID_INT4_ARRAY, bad[i], &v);
        CHECK_MSG(rc == CORM_EDATA, "case %zu decoded (%d)", i, rc);
        /* the walk refuses the same bytes given as raw */
        corm_value raw = {.kind = CORM_RAW};
        raw.v.str.ptr = c.wire;
        raw.v.str.len = unhex(bad[i], c.wire, sizeof c.wire);
        corm_array a;
        CHECK_ERR(corm_array_init(&a, &raw, &c.err), CORM_EDATA, &c.err);
    }
    ctx_done(&c);
}

TEST(array_encode_items)
{
    corm_value items[4] = {
        {.kind = CORM_INT, .v.i = 1},
        {.kind = CORM_INT, .v.i = 2},
        {.kind = CORM_NULL},
        {.kind = CORM_INT, .v.i = 4},
    };
    int32_t dims[2] = {2, 2}, lbs[2] = {0, -1};
    corm_value v = {.kind = CORM_ARRAY_ITEMS, .oid = CORM_OID_INT4_ARRAY};
    v.v.items.items = items;
    v.v.items.dims = dims;
    v.v.items.lbounds = lbs;
    v.v.items.ndim = 2;
    enc_is(&v, ARRAY_2D, CORM_OID_INT4_ARRAY);
    /* elem_oid instead of the array type */
    v.oid = 0;
    v.v.items.elem_oid = CORM_OID_INT4;
    enc_is(&v, ARRAY_2D, CORM_OID_INT4_ARRAY);
    /* neither: the kind's default, int8 */
    v.v.items.elem_oid = 0;
    int32_t d1[1] = {2};
    v.v.items.dims = d1;
    v.v.items.lbounds = NULL;
    v.v.items.ndim = 1;
    enc_is(&v, "00000001 00000000 00000014 00000002 00000001 "
               "00000008 0000000000000001 00000008 0000000000000002", CORM_OID_INT8_ARRAY);
    /* an item out of range for the element type, named by index */
    items[1].v.i = 1 << 20;
    v.v.items.elem_oid = CORM_OID_INT2;
    {
        corm_error err = CORM_ERROR_INIT;
        CHECK_ERR(enc(&v, NULL, NULL, NULL, &err), CORM_EDATA, &err);
        CHECK(strstr(err.message, "array item 1") != NULL);
        corm_error_clear(&err);
    }
    /* an item of another declared type */
    items[1].v.i = 2;
    items[1].oid = CORM_OID_INT4;
    enc_bad(&v);
    items[1].oid = 0;
    /* text where the element type is int4: text format has no place here */
    corm_value txt[1] = {{.kind = CORM_TEXT}};
    txt[0].v.str.ptr = "5";
    txt[0].v.str.len = 1;
    corm_value tv = {.kind = CORM_ARRAY_ITEMS};
    tv.v.items.items = txt;
    tv.v.items.dims = (int32_t[]){1};
    tv.v.items.ndim = 1;
    tv.v.items.elem_oid = CORM_OID_INT4;
    enc_bad(&tv);
    /* an array type that does not hold that element */
    tv.oid = CORM_OID_TEXT_ARRAY;
    enc_bad(&tv);
    /* an enum array: text items sent as their bytes, server infers the type */
    tv.oid = 0;
    tv.v.items.elem_oid = 99999;
    enc_is(&tv, "00000001 00000000 0001869f 00000001 00000001 00000001 35", 0);
    /* not built in and no elem_oid */
    tv.oid = 99998;
    tv.v.items.elem_oid = 0;
    enc_bad(&tv);
    /* empty, all-NULL, nested, malformed shapes */
    corm_value e = {.kind = CORM_ARRAY_ITEMS};
    enc_is(&e, "00000000 00000000 00000019", CORM_OID_TEXT_ARRAY);
    corm_value nulls[2] = {{.kind = CORM_NULL}, {.kind = CORM_NULL}};
    e.v.items.items = nulls;
    e.v.items.dims = d1;
    e.v.items.ndim = 1;
    enc_is(&e, "00000001 00000001 00000019 00000002 00000001 ffffffff ffffffff",
           CORM_OID_TEXT_ARRAY);
    corm_value nested[1] = {{.kind = CORM_ARRAY_ITEMS}};
    e.v.items.items = nested;
    e.v.items.dims = (int32_t[]){1};
    enc_bad(&e);
    e.v.items.ndim = 7;
    enc_bad(&e);
    e.v.items.ndim = 1;
    e.v.items.dims = (int32_t[]){-1};
    enc_bad(&e);
    e.v.items.dims = NULL;
    enc_bad(&e);
    e.v.items.dims = (int32_t[]){2};
    e.v.items.lbounds = (int32_t[]){INT32_MAX};
    enc_bad(&e);
    e.v.items.lbounds = NULL;
    e.v.items.items = NULL;
    enc_bad(&e);
    e.v.items.ndim = 3;
    e.v.items.dims = (int32_t[]){65536, 65536, 65536};
    enc_bad(&e); /* too many items, without reading any */
    /* a zero dimension: the empty array */
    e.v.items.ndim = 2;
    e.v.items.dims = (int32_t[]){3, 0};
    enc_is(&e, "00000000 00000000 00000019", CORM_OID_TEXT_ARRAY);
}

TEST(array_encode_every_type)
{
    /* One item of each kind, as its own array: the bytes are the scalar's,
     * framed. */
    corm_value one[] = {
        {.kind = CORM_BOOL, .v.b = true},
        {.kind = CORM_INT, .oid = CORM_OID_INT2, .v.i = -1},
        {.kind = CORM_FLOAT, .oid = CORM_OID_FLOAT4, .v.f = 1.0},
        {.kind = CORM_NUMERIC, .v.str = {"-12.50", 6}},
        {.kind = CORM_TEXT, .oid = CORM_OID_VARCHAR, .v.str = {"x", 1}},
        {.kind = CORM_TEXT, .oid = CORM_OID_CHAR, .v.str = {"x", 1}},
        {.kind = CORM_BYTES, .v.str = {"\xff", 1}},
        {.kind = CORM_DATE, .v.i = -1},
        {.kind = CORM_TIME, .v.i = 1},
        {.kind = CORM_TIMETZ, .v.tz = {1, -3600}},
        {.kind = CORM_TIMESTAMP, .v.i = 1},
        {.kind = CORM_TIMESTAMPTZ, .v.i = -1},
        {.kind = CORM_INTERVAL, .v.interval = {1, 2, 3}},
        {.kind = CORM_UUID, .v.uuid = {1}},
        {.kind = CORM_JSON, .v.str = {"1", 1}},
        {.kind = CORM_JSON, .oid = CORM_OID_JSON, .v.str = {"1", 1}},
    };
    ctx c;
    ctx_init(&c);
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        char scalar[256], arr[512];
        uint32_t soid, aoid;
        int f;
        corm_error err = CORM_ERROR_INIT;
        CHECK_OK(enc(&one[i], scalar, &soid, &f, &err), &err);
        corm_value v = {.kind = CORM_ARRAY_ITEMS};
        v.v.items.items = &one[i];
        v.v.items.dims = (int32_t[]){1};
        v.v.items.ndim = 1;
        CHECK_OK(enc(&v, arr, &aoid, &f, &err), &err);
        CHECK_EQ_INT(aoid, corm__array_oid_of(soid));
        char want[600];
        sprintf(want, "00000001000000000000%04x0000000100000001%08zx%s", (unsigned)soid,
                strlen(scalar) / 2, scalar);
        CHECK_STR(arr, want);
        /* and it decodes to the same scalar */
        corm_value dv;
        dec_ok(&c, aoid, arr, &dv);
        corm_array a;
        CHECK_OK(corm_array_init(&a, &dv, &c.err), &c.err);
        corm_value it;
        CHECK_EQ_INT(corm_array_next(&a, &it, &c.err), 1);
        CHECK_EQ_INT(it.kind, one[i].kind);
        /* a decoded array is sent back as it came */
        char again[512];
        CHECK_OK(enc(&dv, again, &aoid, &f, &err), &err);
        CHECK_STR(again, arr);
        CHECK_EQ_INT(aoid, corm__array_oid_of(soid));
    }
    ctx_done(&c);
}

TEST(array_wire_param_checked)
{
    char buf[64];
    size_t n = unhex("00000001 00000000 00000017 00000002 00000001 00000004 00000001", buf,
                     sizeof buf);
    corm_value v = {.kind = CORM_ARRAY};
    v.v.array.ptr = buf;
    v.v.array.len = n;
    enc_bad(&v); /* an item missing */
    v.v.array.len = 0;
    enc_bad(&v);
    n = unhex("00000001 00000000 00000017 00000001 00000001 00000004 00000001", buf, sizeof buf);
    v.v.array.len = n;
    enc_is(&v, "00000001 00000000 00000017 00000001 00000001 00000004 00000001",
           CORM_OID_INT4_ARRAY);
    v.oid = CORM_OID_TEXT_ARRAY; /* claims text[], holds int4 */
    enc_bad(&v);
}

/* ---- memory --------------------------------------------------------------------- */

/* Fails every allocation after `left` reach zero. */
static void *failing_alloc(void *ud, void *ptr, size_t old, size_t n)
{
    (void)old;
    int *left = ud;
    if (n == 0) {
        free(ptr);
        return NULL;
    }
    if (*left <= 0)
        return NULL;
    (*left)--;
    return realloc(ptr, n);
}

TEST(oom_paths)
{
    /* Encoding a big array and decoding numerics under an allocator that
     * fails at every possible point: each attempt succeeds or reports
     * CORM_ENOMEM, and nothing leaks (valgrind/ASan check the latter). */
    corm_value items[64];
    for (int i = 0; i < 64; i++) {
        items[i] = (corm_value){.kind = CORM_NUMERIC};
        items[i].v.str.ptr = "123456789.987654321";
        items[i].v.str.len = 19;
    }
    corm_value v = {.kind = CORM_ARRAY_ITEMS};
    v.v.items.items = items;
    v.v.items.dims = (int32_t[]){64};
    v.v.items.ndim = 1;
    bool succeeded = false;
    for (int limit = 0; limit < 64 && !succeeded; limit++) {
        int left = limit;
        corm_options opt;
        corm_options_init(&opt);
        opt.alloc = failing_alloc;
        opt.alloc_ud = &left;
        corm__alloc a;
        corm__alloc_init(&a, &opt);
        corm__buf b = {0};
        uint32_t oid;
        int format;
        bool is_null;
        corm_error err = CORM_ERROR_INIT;
        int rc = corm__encode(&v, &b, &a, &oid, &format, &is_null, &err);
        CHECK_MSG(rc == CORM_OK || rc == CORM_ENOMEM, "rc %d", rc);
        if (rc == CORM_OK) {
            succeeded = true;
            /* decode every item under a failing arena too */
            for (int dl = 0; dl < 8; dl++) {
                int dleft = dl;
                corm_options o2 = opt;
                o2.alloc_ud = &dleft;
                corm__alloc a2;
                corm__alloc_init(&a2, &o2);
                corm__arena ar;
                corm__arena_init(&ar, &a2);
                corm_value dv;
                CHECK_OK(corm__decoder_for(oid)(b.data, b.len, oid, &dv, &ar, &err), &err);
                corm_array arr;
                CHECK_OK(corm_array_init(&arr, &dv, &err), &err);
                corm_value it;
                int r;
                while ((r = corm_array_next(&arr, &it, &err)) == 1)
                    CHECK(str_is(&it, "123456789.987654321"));
                CHECK(r == 0 || r == CORM_ENOMEM);
                corm__arena_free(&ar);
            }
        }
        corm_error_clear(&err);
        corm__buf_free(&b, &a);
    }
    CHECK(succeeded);
}

TEST(arena_blocks)
{
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm__arena ar;
    corm__arena_init(&ar, &a);
    CHECK(corm__arena_alloc(NULL, 1) == NULL);
    for (int i = 0; i < 10000; i++) {
        char *p = corm__arena_alloc(&ar, (size_t)(i % 37) + 1);
        CHECK(p != NULL);
        memset(p, 'x', (size_t)(i % 37) + 1);
    }
    char *big = corm__arena_alloc(&ar, 1 << 20);
    CHECK(big != NULL);
    memset(big, 'y', 1 << 20);
    char *after = corm__arena_alloc(&ar, 10);
    CHECK(after != NULL);
    memset(after, 'z', 10);
    corm__arena_free(&ar);
    corm__arena_free(&ar); /* idempotent */
}
