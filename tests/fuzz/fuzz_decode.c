/*
 * fuzz_decode.c - libFuzzer target for libcorm's binary codecs: arbitrary
 * bytes through every decoder, the array walk, re-encoding, the numeric
 * text parser and the calendar helpers. Any crash, sanitizer report or
 * broken round-trip property aborts.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcore/include \
 *       -Ilibcore/src -I$(pg_config --includedir) tests/fuzz/fuzz_decode.c \
 *       libcore/src/{alloc,error,codec,codec_array,codec_numeric,codec_time,json}.c -lpq -lm
 *
 * Input: byte 0 picks the type (an index into oids[] below; 0xff: the oid
 * is the next 4 bytes, big-endian), byte 1 the mode (% 4), the rest is the
 * payload:
 *   mode 0  decode the payload as that type; walk arrays (nested ones too);
 *           encode what decoded and check it decodes to the same value;
 *           dates and timestamps through the calendar and back
 *   mode 1  the payload as numeric text: parse, print, parse again; the two
 *           parses must give the same bytes
 *   mode 3  the payload as JSON text (corm_json_parse): events must nest
 *           properly; what parsed is written out as JSON again, which must
 *           parse to the same text once more
 *   mode 2  decode an array, rebuild it from its items as CORM_ARRAY_ITEMS
 *           with the same shape, and check every item survives
 * tests/fuzz/make_corpus.py writes seeds in this layout; keep oids[] in step
 * with its table.
 */
#include "corm_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t oids[] = {
    CORM_OID_BOOL, CORM_OID_BYTEA, CORM_OID_CHAR, CORM_OID_NAME, CORM_OID_INT8,
    CORM_OID_INT2, CORM_OID_INT2VECTOR, CORM_OID_INT4, CORM_OID_TEXT, CORM_OID_OID,
    CORM_OID_OIDVECTOR, CORM_OID_JSON, CORM_OID_FLOAT4, CORM_OID_FLOAT8, CORM_OID_UNKNOWN,
    CORM_OID_BPCHAR, CORM_OID_VARCHAR, CORM_OID_DATE, CORM_OID_TIME, CORM_OID_TIMESTAMP,
    CORM_OID_TIMESTAMPTZ, CORM_OID_INTERVAL, CORM_OID_TIMETZ, CORM_OID_NUMERIC, CORM_OID_UUID,
    CORM_OID_JSONB,
    /* 26.. arrays */
    CORM_OID_JSON_ARRAY, CORM_OID_BOOL_ARRAY, CORM_OID_BYTEA_ARRAY, CORM_OID_CHAR_ARRAY,
    CORM_OID_NAME_ARRAY, CORM_OID_INT2_ARRAY, CORM_OID_INT4_ARRAY, CORM_OID_TEXT_ARRAY,
    CORM_OID_BPCHAR_ARRAY, CORM_OID_VARCHAR_ARRAY, CORM_OID_INT8_ARRAY, CORM_OID_FLOAT4_ARRAY,
    CORM_OID_FLOAT8_ARRAY, CORM_OID_OID_ARRAY, CORM_OID_TIMESTAMP_ARRAY, CORM_OID_DATE_ARRAY,
    CORM_OID_TIME_ARRAY, CORM_OID_TIMESTAMPTZ_ARRAY, CORM_OID_INTERVAL_ARRAY,
    CORM_OID_NUMERIC_ARRAY, CORM_OID_TIMETZ_ARRAY, CORM_OID_UUID_ARRAY, CORM_OID_JSONB_ARRAY,
    /* 49.. not built in: raw */
    869, 600, 99999,
};
#define NOIDS (sizeof oids / sizeof oids[0])

#define PROPERTY(cond)                                                          \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "property failed: %s (%s:%d)\n", #cond, __FILE__,  \
                    __LINE__);                                                  \
            abort();                                                            \
        }                                                                       \
    } while (0)

static bool same_str(const corm_value *a, const corm_value *b)
{
    return a->v.str.len == b->v.str.len &&
           (a->v.str.len == 0 || memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len) == 0);
}

/* Decoded values equal as values (not as bytes: bool 2 is true, too). */
static bool same_value(const corm_value *a, const corm_value *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case CORM_NULL:
        return true;
    case CORM_BOOL:
        return a->v.b == b->v.b;
    case CORM_INT:
    case CORM_DATE:
    case CORM_TIME:
    case CORM_TIMESTAMP:
    case CORM_TIMESTAMPTZ:
        return a->v.i == b->v.i;
    case CORM_FLOAT:
        return memcmp(&a->v.f, &b->v.f, sizeof(double)) == 0 ||
               (isnan(a->v.f) && isnan(b->v.f));
    case CORM_TIMETZ:
        return a->v.tz.usec == b->v.tz.usec && a->v.tz.zone == b->v.tz.zone;
    case CORM_INTERVAL:
        return a->v.interval.usec == b->v.interval.usec &&
               a->v.interval.days == b->v.interval.days &&
               a->v.interval.months == b->v.interval.months;
    case CORM_UUID:
        return memcmp(a->v.uuid, b->v.uuid, 16) == 0;
    case CORM_ARRAY:
        return a->v.array.len == b->v.array.len && a->v.array.elem_oid == b->v.array.elem_oid &&
               (a->v.array.len == 0 ||
                memcmp(a->v.array.ptr, b->v.array.ptr, a->v.array.len) == 0);
    default:
        return same_str(a, b);
    }
}

/* Encodes v (as its own oid) and decodes the bytes again with dec. */
static void check_reencode(const corm_value *v, uint32_t oid, corm__arena *ar)
{
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm__buf b = {0};
    corm_value in = *v;
    in.oid = oid;
    uint32_t sent;
    int format;
    bool is_null;
    corm_error err = CORM_ERROR_INIT;
    int rc = corm__encode(&in, &b, &a, &sent, &format, &is_null, &err);
    /* Only values that do not fit may fail (text with NUL, a raw value
     * whose oid is 0, ...), never with another class. */
    PROPERTY(rc == CORM_OK || rc == CORM_EDATA);
    PROPERTY(rc != CORM_OK || err.code == 0);
    if (rc == CORM_OK && format == 1 && !is_null) {
        corm_value back;
        memset(&back, 0, sizeof back);
        rc = corm__decoder_for(oid)(b.data ? b.data : "", b.len, oid, &back, ar, &err);
        PROPERTY(rc == CORM_OK);
        PROPERTY(same_value(v, &back));
    }
    corm_error_clear(&err);
    corm__buf_free(&b, &a);
}

static void check_calendar(const corm_value *v)
{
    corm_datetime dt;
    corm_error err = CORM_ERROR_INIT;
    if (v->kind == CORM_DATE && corm_date_to_civil(v->v.i, &dt, &err) == 0) {
        int64_t back = 0;
        PROPERTY(corm_date_from_civil(&dt, &back, &err) == 0 && back == v->v.i);
    }
    if ((v->kind == CORM_TIMESTAMP || v->kind == CORM_TIMESTAMPTZ) &&
        corm_timestamp_to_civil(v->v.i, &dt, &err) == 0) {
        int64_t back = 0;
        PROPERTY(corm_timestamp_from_civil(&dt, &back, &err) == 0 && back == v->v.i);
    }
    corm_error_clear(&err);
}

static void walk(const corm_value *v, corm__arena *ar, int depth)
{
    corm_array a;
    corm_error err = CORM_ERROR_INIT;
    if (corm_array_init(&a, v, &err) < 0) {
        PROPERTY(err.code == CORM_EDATA);
        PROPERTY(v->kind == CORM_RAW); /* a CORM_ARRAY was checked when decoded */
        corm_error_clear(&err);
        return;
    }
    PROPERTY(a.ndim >= 0 && a.ndim <= CORM_ARRAY_MAXDIM);
    size_t n = 0;
    corm_value it;
    int rc;
    while ((rc = corm_array_next(&a, &it, &err)) != 0) {
        n++;
        PROPERTY(n <= a.nitems);
        if (rc < 0) {
            PROPERTY(err.code == CORM_EDATA || err.code == CORM_ENOMEM);
            continue;
        }
        check_calendar(&it);
        if (it.kind == CORM_ARRAY && depth < 3)
            walk(&it, ar, depth + 1);
        if (it.kind != CORM_NULL && it.kind != CORM_RAW)
            check_reencode(&it, a.elem_oid, ar);
    }
    PROPERTY(n == a.nitems);
    if (a.nitems) {
        size_t i = a.nitems / 2;
        rc = corm_array_get(&a, i, &it, &err);
        PROPERTY(rc == 0 || err.code == CORM_EDATA || err.code == CORM_ENOMEM);
        rc = corm_array_get(&a, 0, &it, &err);
        PROPERTY(rc == 0 || err.code == CORM_EDATA || err.code == CORM_ENOMEM);
    }
    PROPERTY(corm_array_get(&a, a.nitems, &it, &err) == CORM_EMISUSE);
    corm_error_clear(&err);
}

static void mode_decode(uint32_t oid, const char *p, size_t n, corm__arena *ar)
{
    corm_value v;
    memset(&v, 0, sizeof v);
    v.oid = oid;
    corm_error err = CORM_ERROR_INIT;
    int rc = corm__decoder_for(oid)(p, n, oid, &v, ar, &err);
    if (rc < 0) {
        PROPERTY(rc == CORM_EDATA && err.code == CORM_EDATA && err.message);
        corm_error_clear(&err);
        return;
    }
    check_calendar(&v);
    if (v.kind == CORM_ARRAY || v.kind == CORM_RAW)
        walk(&v, ar, 0);
    if (v.kind == CORM_NUMERIC)
        PROPERTY(v.v.str.ptr[v.v.str.len] == 0);
    check_reencode(&v, oid, ar);
}

static void mode_numeric_text(const char *p, size_t n, corm__arena *ar)
{
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm__buf b1 = {0}, b2 = {0};
    corm_error err = CORM_ERROR_INIT;
    int rc = corm__enc_numeric_str(p, n, &b1, &a, &err);
    PROPERTY(rc == CORM_OK || rc == CORM_EDATA);
    if (rc == CORM_OK) {
        corm_value v;
        rc = corm__dec_numeric(b1.data, b1.len, CORM_OID_NUMERIC, &v, ar, &err);
        PROPERTY(rc == CORM_OK);
        rc = corm__enc_numeric_str(v.v.str.ptr, v.v.str.len, &b2, &a, &err);
        PROPERTY(rc == CORM_OK);
        PROPERTY(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    }
    corm_error_clear(&err);
    corm__buf_free(&b1, &a);
    corm__buf_free(&b2, &a);
}

static void mode_rebuild(uint32_t oid, const char *p, size_t n, corm__arena *ar)
{
    corm_value v;
    memset(&v, 0, sizeof v);
    corm_error err = CORM_ERROR_INIT;
    corm_array arr;
    if (corm__decoder_for(oid)(p, n, oid, &v, ar, &err) < 0 ||
        corm_array_init(&arr, &v, &err) < 0 || arr.nitems > 256 || arr.elem_oid == 0) {
        /* (element type 0 is no type: the builder would infer another) */
        corm_error_clear(&err);
        return;
    }
    corm_value items[256];
    for (size_t i = 0; i < arr.nitems; i++) {
        if (corm_array_next(&arr, &items[i], &err) != 1) {
            corm_error_clear(&err);
            return;
        }
        /* the builder takes items as the element type's values */
        items[i].oid = 0;
        if (items[i].kind == CORM_ARRAY) {
            corm_error_clear(&err);
            return;
        }
    }
    corm_value built = {.kind = CORM_ARRAY_ITEMS};
    built.v.items.items = items;
    built.v.items.dims = arr.dims;
    built.v.items.lbounds = arr.lbounds;
    built.v.items.ndim = arr.ndim;
    built.v.items.elem_oid = arr.elem_oid;
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm__buf b = {0};
    uint32_t sent;
    int format;
    bool is_null;
    int rc = corm__encode(&built, &b, &a, &sent, &format, &is_null, &err);
    PROPERTY(rc == CORM_OK || rc == CORM_EDATA);
    if (rc == CORM_OK) {
        corm_value again = {.kind = CORM_RAW};
        again.v.str.ptr = b.data;
        again.v.str.len = b.len;
        corm_array arr2;
        PROPERTY(corm_array_init(&arr2, &again, &err) == 0);
        PROPERTY(arr2.nitems == arr.nitems && arr2.elem_oid == arr.elem_oid);
        if (arr.nitems) {
            PROPERTY(arr2.ndim == arr.ndim);
            PROPERTY(memcmp(arr2.dims, arr.dims, sizeof arr.dims) == 0);
            PROPERTY(memcmp(arr2.lbounds, arr.lbounds, sizeof arr.lbounds) == 0);
        }
        arr2.ctx_ = ar;
        for (size_t i = 0; i < arr.nitems; i++) {
            corm_value it;
            PROPERTY(corm_array_next(&arr2, &it, &err) == 1);
            PROPERTY(same_value(&items[i], &it));
        }
    }
    corm_error_clear(&err);
    corm__buf_free(&b, &a);
}

/* ---- mode 3: JSON -------------------------------------------------------- */

/* Writes what the reader reports back out as JSON; tracks nesting. */
typedef struct jout {
    char *buf;
    size_t len, cap;
    int depth;
    bool need_comma[CORM_JSON_MAX_DEPTH + 1];
    bool after_key;
} jout;

static void jput(jout *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->cap + n + 1) * 2;
        char *b = realloc(o->buf, cap);
        PROPERTY(b != NULL);
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = 0;
}

/* A separator before a value (not after a key). */
static void jsep(jout *o)
{
    if (o->after_key) {
        o->after_key = false;
        return;
    }
    if (o->need_comma[o->depth])
        jput(o, ",", 1);
    o->need_comma[o->depth] = true;
}

static void jstr(jout *o, const char *s, size_t n)
{
    jput(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch < 0x20 || ch == '"' || ch == '\\') {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            jput(o, esc, 6);
        } else {
            jput(o, (const char *)&s[i], 1);
        }
    }
    jput(o, "\"", 1);
}

static int j_null(void *ud) { jsep(ud); jput(ud, "null", 4); return 0; }
static int j_bool(void *ud, int v) { jsep(ud); jput(ud, v ? "true" : "false", v ? 4 : 5); return 0; }
static int j_number(void *ud, const char *t, size_t n, int integer)
{
    PROPERTY(n > 0);
    for (size_t i = 0; i < n; i++)
        PROPERTY(integer ? (t[i] == '-' || (t[i] >= '0' && t[i] <= '9')) : t[i] != ' ');
    jsep(ud);
    jput(ud, t, n);
    return 0;
}
static int j_string(void *ud, const char *s, size_t n) { jsep(ud); jstr(ud, s, n); return 0; }
static int j_open(jout *o, const char *c)
{
    jsep(o);
    jput(o, c, 1);
    PROPERTY(o->depth < CORM_JSON_MAX_DEPTH);
    o->need_comma[++o->depth] = false;
    return 0;
}
static int j_close(jout *o, const char *c)
{
    PROPERTY(o->depth > 0 && !o->after_key);
    o->depth--;
    jput(o, c, 1);
    return 0;
}
static int j_begin_array(void *ud) { return j_open(ud, "["); }
static int j_end_array(void *ud) { return j_close(ud, "]"); }
static int j_begin_object(void *ud) { return j_open(ud, "{"); }
static int j_end_object(void *ud) { return j_close(ud, "}"); }
static int j_key(void *ud, const char *s, size_t n)
{
    jout *o = ud;
    PROPERTY(o->depth > 0 && !o->after_key);
    jsep(o);
    jstr(o, s, n);
    jput(o, ":", 1);
    o->after_key = true;
    return 0;
}

static const corm_json_sink jwriter = {
    j_null, j_bool, j_number, j_string, j_begin_array, j_end_array, j_begin_object, j_key,
    j_end_object,
};

static void mode_json(const char *p, size_t n)
{
    jout *o = calloc(1, sizeof *o);
    PROPERTY(o != NULL);
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_json_parse(p, n, &jwriter, o, &err);
    PROPERTY(rc == CORM_OK || rc == CORM_EDATA);
    PROPERTY((rc == CORM_OK) == (err.code == 0));
    if (rc == CORM_OK) {
        PROPERTY(o->depth == 0 && !o->after_key && o->len > 0);
        /* What it read, written out, reads the same. */
        jout *again = calloc(1, sizeof *again);
        PROPERTY(again != NULL);
        PROPERTY(corm_json_parse(o->buf, o->len, &jwriter, again, &err) == CORM_OK);
        PROPERTY(again->len == o->len && memcmp(again->buf, o->buf, o->len) == 0);
        free(again->buf);
        free(again);
    }
    corm_error_clear(&err);
    free(o->buf);
    free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t oid;
    size_t off = 2;
    if (data[0] == 0xff) {
        if (size < 6)
            return 0;
        oid = ((uint32_t)data[2] << 24) | ((uint32_t)data[3] << 16) | ((uint32_t)data[4] << 8) |
              data[5];
        off = 6;
    } else {
        oid = oids[data[0] % NOIDS];
    }
    int mode = data[1] % 4;
    /* A copy of exactly the payload's size, so reading one byte past it is
     * a heap overflow the sanitizer reports. */
    size_t n = size - off;
    char *p = malloc(n ? n : 1);
    if (!p)
        return 0;
    memcpy(p, data + off, n);
    corm__alloc a;
    corm__alloc_init(&a, NULL);
    corm__arena ar;
    corm__arena_init(&ar, &a);
    switch (mode) {
    case 0:
        mode_decode(oid, p, n, &ar);
        break;
    case 1:
        mode_numeric_text(p, n, &ar);
        break;
    case 3:
        mode_json(p, n);
        break;
    default:
        mode_rebuild(oid, p, n, &ar);
        break;
    }
    corm__arena_free(&ar);
    free(p);
    return 0;
}
