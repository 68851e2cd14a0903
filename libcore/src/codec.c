/*
 * codec.c - PostgreSQL binary codecs: wire bytes <-> corm_value, one
 * decoder per type OID, chosen once per column. Scalars live here; numeric,
 * date/time and arrays have their own files.
 */
#include "corm_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- scratch arena ---------------------------------------------------- */

struct corm__arena_block {
    corm__arena_block *next;
    size_t size, used;
    char data[];
};

void corm__arena_init(corm__arena *ar, const corm__alloc *a)
{
    ar->alloc = *a;
    ar->head = NULL;
}

void *corm__arena_alloc(corm__arena *ar, size_t n)
{
    if (!ar)
        return NULL;
    corm__arena_block *b = ar->head;
    if (b && b->size - b->used >= n) {
        void *p = b->data + b->used;
        b->used += n;
        return p;
    }
    /* Blocks double up to 64 KiB so a result with many numerics makes few
     * allocations; a larger request gets a block of its own. */
    size_t size = b ? (b->size < 65536 ? b->size * 2 : 65536) : 512;
    if (size < n)
        size = n;
    if (size > SIZE_MAX - sizeof *b)
        return NULL;
    corm__arena_block *nb = corm__malloc(&ar->alloc, sizeof *nb + size);
    if (!nb)
        return NULL;
    nb->size = size;
    nb->used = n;
    if (b && size == n && b->size - b->used > 0) {
        /* Keep filling the current block: slot the full one behind it. */
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        ar->head = nb;
    }
    return nb->data;
}

void corm__arena_reset(corm__arena *ar)
{
    corm__arena_block *b = ar->head;
    if (!b)
        return;
    /* Keep the newest (largest) block for the next row; free the rest. */
    corm__arena_block *older = b->next;
    b->next = NULL;
    b->used = 0;
    while (older) {
        corm__arena_block *next = older->next;
        corm__free(&ar->alloc, older, sizeof *older + older->size);
        older = next;
    }
}

void corm__arena_free(corm__arena *ar)
{
    corm__arena_block *b = ar->head;
    while (b) {
        corm__arena_block *next = b->next;
        corm__free(&ar->alloc, b, sizeof *b + b->size);
        b = next;
    }
    ar->head = NULL;
}

/* ---- decoding --------------------------------------------------------- */

static int bad_length(corm_error *err, uint32_t oid, size_t len, size_t want)
{
    return corm__err(err, CORM_EDATA, "malformed value of type %u: %zu bytes, expected %zu",
                     (unsigned)oid, len, want);
}

static int dec_bool(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)s;
    if (n != 1)
        return bad_length(err, oid, n, 1);
    o->kind = CORM_BOOL;
    o->v.b = b[0] != 0;
    return CORM_OK;
}

static int dec_int2(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)s;
    if (n != 2)
        return bad_length(err, oid, n, 2);
    o->kind = CORM_INT;
    o->v.i = (int16_t)corm__get_u16(b);
    return CORM_OK;
}

static int dec_int4(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)s;
    if (n != 4)
        return bad_length(err, oid, n, 4);
    o->kind = CORM_INT;
    o->v.i = (int32_t)corm__get_u32(b);
    return CORM_OK;
}

static int dec_oid(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                   corm_error *err)
{
    (void)s;
    if (n != 4)
        return bad_length(err, oid, n, 4);
    o->kind = CORM_INT;
    o->v.i = corm__get_u32(b);
    return CORM_OK;
}

static int dec_int8(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)s;
    if (n != 8)
        return bad_length(err, oid, n, 8);
    o->kind = CORM_INT;
    o->v.i = (int64_t)corm__get_u64(b);
    return CORM_OK;
}

static int dec_float4(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                      corm_error *err)
{
    (void)s;
    if (n != 4)
        return bad_length(err, oid, n, 4);
    uint32_t u = corm__get_u32(b);
    float f;
    memcpy(&f, &u, sizeof f);
    o->kind = CORM_FLOAT;
    o->v.f = f;
    return CORM_OK;
}

static int dec_float8(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                      corm_error *err)
{
    (void)s;
    if (n != 8)
        return bad_length(err, oid, n, 8);
    uint64_t u = corm__get_u64(b);
    double d;
    memcpy(&d, &u, sizeof d);
    o->kind = CORM_FLOAT;
    o->v.f = d;
    return CORM_OK;
}

static int dec_text(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)oid;
    (void)s;
    (void)err;
    o->kind = CORM_TEXT;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
}

static int dec_char(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)s;
    if (n != 1)
        return bad_length(err, oid, n, 1);
    /* The NUL "char" prints as the empty string; keep that, so the text is
     * what the server would show and a C string stays one. */
    o->kind = CORM_TEXT;
    o->v.str.ptr = b;
    o->v.str.len = b[0] != 0;
    return CORM_OK;
}

static int dec_bytea(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                     corm_error *err)
{
    (void)oid;
    (void)s;
    (void)err;
    o->kind = CORM_BYTES;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
}

static int dec_json(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)err;
    (void)oid;
    (void)s;
    o->kind = CORM_JSON;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
}

static int dec_jsonb(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                     corm_error *err)
{
    (void)s;
    /* jsonb's binary form is a version byte (1) and the JSON text. */
    if (n < 1 || b[0] != 1)
        return corm__err(err, CORM_EDATA, "malformed jsonb value (type %u)", (unsigned)oid);
    o->kind = CORM_JSON;
    o->v.str.ptr = b + 1;
    o->v.str.len = n - 1;
    return CORM_OK;
}

static int dec_uuid(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)s;
    if (n != 16)
        return bad_length(err, oid, n, 16);
    o->kind = CORM_UUID;
    memcpy(o->v.uuid, b, 16);
    return CORM_OK;
}

static int dec_raw(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                   corm_error *err)
{
    (void)oid;
    (void)s;
    (void)err;
    o->kind = CORM_RAW;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
}

/* Built-in array types and their elements. int2vector and oidvector are
 * sent in the array format too. */
static const uint32_t array_types[][2] = {
    {CORM_OID_BOOL_ARRAY, CORM_OID_BOOL},
    {CORM_OID_BYTEA_ARRAY, CORM_OID_BYTEA},
    {CORM_OID_CHAR_ARRAY, CORM_OID_CHAR},
    {CORM_OID_NAME_ARRAY, CORM_OID_NAME},
    {CORM_OID_INT2_ARRAY, CORM_OID_INT2},
    {CORM_OID_INT4_ARRAY, CORM_OID_INT4},
    {CORM_OID_TEXT_ARRAY, CORM_OID_TEXT},
    {CORM_OID_BPCHAR_ARRAY, CORM_OID_BPCHAR},
    {CORM_OID_VARCHAR_ARRAY, CORM_OID_VARCHAR},
    {CORM_OID_INT8_ARRAY, CORM_OID_INT8},
    {CORM_OID_FLOAT4_ARRAY, CORM_OID_FLOAT4},
    {CORM_OID_FLOAT8_ARRAY, CORM_OID_FLOAT8},
    {CORM_OID_OID_ARRAY, CORM_OID_OID},
    {CORM_OID_TIMESTAMP_ARRAY, CORM_OID_TIMESTAMP},
    {CORM_OID_DATE_ARRAY, CORM_OID_DATE},
    {CORM_OID_TIME_ARRAY, CORM_OID_TIME},
    {CORM_OID_TIMESTAMPTZ_ARRAY, CORM_OID_TIMESTAMPTZ},
    {CORM_OID_INTERVAL_ARRAY, CORM_OID_INTERVAL},
    {CORM_OID_NUMERIC_ARRAY, CORM_OID_NUMERIC},
    {CORM_OID_TIMETZ_ARRAY, CORM_OID_TIMETZ},
    {CORM_OID_UUID_ARRAY, CORM_OID_UUID},
    {CORM_OID_JSON_ARRAY, CORM_OID_JSON},
    {CORM_OID_JSONB_ARRAY, CORM_OID_JSONB},
};
#define N_ARRAY_TYPES (sizeof array_types / sizeof array_types[0])

uint32_t corm__array_elem_oid(uint32_t array_oid)
{
    if (array_oid == CORM_OID_INT2VECTOR)
        return CORM_OID_INT2;
    if (array_oid == CORM_OID_OIDVECTOR)
        return CORM_OID_OID;
    for (size_t i = 0; i < N_ARRAY_TYPES; i++)
        if (array_types[i][0] == array_oid)
            return array_types[i][1];
    return 0;
}

uint32_t corm__array_oid_of(uint32_t elem_oid)
{
    for (size_t i = 0; i < N_ARRAY_TYPES; i++)
        if (array_types[i][1] == elem_oid)
            return array_types[i][0];
    return 0;
}

corm__decode_fn *corm__decoder_for(uint32_t oid)
{
    switch (oid) {
    case CORM_OID_BOOL:
        return dec_bool;
    case CORM_OID_INT2:
        return dec_int2;
    case CORM_OID_INT4:
        return dec_int4;
    case CORM_OID_OID:
        return dec_oid;
    case CORM_OID_INT8:
        return dec_int8;
    case CORM_OID_FLOAT4:
        return dec_float4;
    case CORM_OID_FLOAT8:
        return dec_float8;
    case CORM_OID_TEXT:
    case CORM_OID_VARCHAR:
    case CORM_OID_BPCHAR:
    case CORM_OID_NAME:
    case CORM_OID_UNKNOWN:
        return dec_text;
    case CORM_OID_CHAR:
        return dec_char;
    case CORM_OID_BYTEA:
        return dec_bytea;
    case CORM_OID_JSON:
        return dec_json;
    case CORM_OID_JSONB:
        return dec_jsonb;
    case CORM_OID_UUID:
        return dec_uuid;
    case CORM_OID_NUMERIC:
        return corm__dec_numeric;
    case CORM_OID_DATE:
        return corm__dec_date;
    case CORM_OID_TIME:
        return corm__dec_time;
    case CORM_OID_TIMETZ:
        return corm__dec_timetz;
    case CORM_OID_TIMESTAMP:
    case CORM_OID_TIMESTAMPTZ:
        return corm__dec_timestamp;
    case CORM_OID_INTERVAL:
        return corm__dec_interval;
    default:
        if (corm__array_elem_oid(oid))
            return corm__dec_array;
        return dec_raw;
    }
}

/* ---- encoding --------------------------------------------------------- */

int corm__put_be(corm__buf *out, const corm__alloc *a, uint64_t v, int nbytes,
                 corm_error *err)
{
    char tmp[8];
    for (int i = 0; i < nbytes; i++)
        tmp[i] = (char)(v >> (8 * (nbytes - 1 - i)));
    if (corm__buf_put(out, a, tmp, (size_t)nbytes) < 0)
        return corm__err_nomem(err);
    return CORM_OK;
}

static int put_bytes(corm__buf *out, const corm__alloc *a, const void *p, size_t n,
                     corm_error *err)
{
    if (n && corm__buf_put(out, a, p, n) < 0)
        return corm__err_nomem(err);
    return CORM_OK;
}

static int put_float8(corm__buf *out, const corm__alloc *a, double d, corm_error *err)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return corm__put_be(out, a, u, 8, err);
}

/* float4 of d, or CORM_EDATA when d is finite and float4 cannot hold it:
 * too large, or so small it would become zero (PostgreSQL's float4in
 * refuses both). */
static int put_float4(corm__buf *out, const corm__alloc *a, double d, corm_error *err)
{
    float f = (float)d;
    if (isfinite(d) && !isfinite(f))
        return corm__err(err, CORM_EDATA, "value %g out of range for float4 (overflow)", d);
    if (d != 0 && f == 0)
        return corm__err(err, CORM_EDATA, "value %g out of range for float4 (underflow)", d);
    uint32_t u;
    memcpy(&u, &f, 4);
    return corm__put_be(out, a, u, 4, err);
}

static int enc_int(int64_t i, uint32_t want, corm__buf *out, const corm__alloc *a,
                   uint32_t *oid, corm_error *err)
{
    *oid = want;
    switch (want) {
    case 0:
    case CORM_OID_INT8:
        *oid = CORM_OID_INT8;
        return corm__put_be(out, a, (uint64_t)i, 8, err);
    case CORM_OID_INT4:
        if (i < INT32_MIN || i > INT32_MAX)
            return corm__err(err, CORM_EDATA, "integer %lld out of range for int4",
                             (long long)i);
        return corm__put_be(out, a, (uint64_t)(uint32_t)(int32_t)i, 4, err);
    case CORM_OID_INT2:
        if (i < INT16_MIN || i > INT16_MAX)
            return corm__err(err, CORM_EDATA, "integer %lld out of range for int2",
                             (long long)i);
        return corm__put_be(out, a, (uint64_t)(uint16_t)(int16_t)i, 2, err);
    case CORM_OID_OID:
        if (i < 0 || i > (int64_t)UINT32_MAX)
            return corm__err(err, CORM_EDATA, "integer %lld out of range for oid",
                             (long long)i);
        return corm__put_be(out, a, (uint64_t)i, 4, err);
    case CORM_OID_FLOAT8:
        /* 2^53 bounds the integers every double holds exactly. */
        if (i > (INT64_C(1) << 53) || i < -(INT64_C(1) << 53))
            return corm__err(err, CORM_EDATA, "integer %lld has no exact float8 value",
                             (long long)i);
        return put_float8(out, a, (double)i, err);
    case CORM_OID_FLOAT4:
        if (i > (INT64_C(1) << 24) || i < -(INT64_C(1) << 24))
            return corm__err(err, CORM_EDATA, "integer %lld has no exact float4 value",
                             (long long)i);
        return put_float4(out, a, (double)i, err);
    case CORM_OID_NUMERIC:
        return corm__enc_numeric_int(i, out, a, err);
    default:
        return corm__err(err, CORM_EDATA, "cannot send an integer as type %u", (unsigned)want);
    }
}

/* The shortest decimal text that reads back as d (at most 17 digits). */
static void shortest_decimal(double d, char *buf, size_t size)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static int enc_float(double d, uint32_t want, corm__buf *out, const corm__alloc *a,
                     uint32_t *oid, corm_error *err)
{
    *oid = want;
    switch (want) {
    case 0:
    case CORM_OID_FLOAT8:
        *oid = CORM_OID_FLOAT8;
        return put_float8(out, a, d, err);
    case CORM_OID_FLOAT4:
        return put_float4(out, a, d, err);
    case CORM_OID_INT2:
    case CORM_OID_INT4:
    case CORM_OID_INT8:
    case CORM_OID_OID:
        /* Integral doubles only (LuaJIT has no other numbers); the bounds
         * are powers of two, exact as doubles, so the cast is defined. */
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d))
            return corm__err(err, CORM_EDATA, "float %.17g is not an integer of type %u", d,
                             (unsigned)want);
        return enc_int((int64_t)d, want, out, a, oid, err);
    case CORM_OID_NUMERIC: {
        if (isnan(d))
            return corm__enc_numeric_str("NaN", 3, out, a, err);
        if (isinf(d))
            return d > 0 ? corm__enc_numeric_str("Infinity", 8, out, a, err)
                         : corm__enc_numeric_str("-Infinity", 9, out, a, err);
        char buf[40];
        shortest_decimal(d, buf, sizeof buf);
        return corm__enc_numeric_str(buf, strlen(buf), out, a, err);
    }
    default:
        return corm__err(err, CORM_EDATA, "cannot send a float as type %u", (unsigned)want);
    }
}

/* Types whose binary form is the text itself. */
static bool text_like(uint32_t oid)
{
    return oid == CORM_OID_TEXT || oid == CORM_OID_VARCHAR || oid == CORM_OID_BPCHAR ||
           oid == CORM_OID_NAME || oid == CORM_OID_JSON || oid == CORM_OID_UNKNOWN;
}

/* PostgreSQL's default NAMEDATALEN is 64: 63 bytes and the NUL. */
#define NAME_MAX_BYTES 63

static int enc_text(const corm_value *v, uint32_t want, corm__buf *out, const corm__alloc *a,
                    uint32_t *oid, int *format, corm_error *err)
{
    const char *p = v->v.str.ptr;
    size_t n = v->v.str.len;
    if (n && !p)
        return corm__err(err, CORM_EDATA, "text pointer is NULL");
    if (n && memchr(p, 0, n))
        return corm__err(err, CORM_EDATA, "text contains a NUL byte");
    *oid = want;
    if (want == 0) {
        /* Untyped text lets the server infer the parameter's type from the
         * statement, so "WHERE id = $1" works for any column type (an enum
         * included); the text format is then parsed by that type's input
         * function. */
        *format = 0;
    } else if (want == CORM_OID_CHAR) {
        if (n > 1)
            return corm__err(err, CORM_EDATA,
                             "text of %zu bytes does not fit \"char\" (one byte)", n);
        char c = n ? p[0] : 0;
        return put_bytes(out, a, &c, 1, err);
    } else if (want == CORM_OID_NAME && n > NAME_MAX_BYTES) {
        return corm__err(err, CORM_EDATA, "text of %zu bytes is too long for name (at most %d)",
                         n, NAME_MAX_BYTES);
    } else if (want == CORM_OID_JSONB) {
        if (corm__buf_put(out, a, "\1", 1) < 0)
            return corm__err_nomem(err);
    } else if (!text_like(want)) {
        /* Any other type reads the string through its text input. */
        *format = 0;
    }
    int rc = put_bytes(out, a, p, n, err);
    /* libpq reads text-format parameters as C strings, ignoring their
     * lengths: the NUL ends this one where the next value's bytes begin. */
    if (rc == 0 && *format == 0 && corm__buf_put(out, a, "", 1) < 0)
        return corm__err_nomem(err);
    return rc;
}

static int enc_str_checked(const corm_value *v, const char *what, corm_error *err)
{
    if (v->v.str.len && !v->v.str.ptr)
        return corm__err(err, CORM_EDATA, "%s pointer is NULL", what);
    return CORM_OK;
}

int corm__encode(const corm_value *v, corm__buf *out, const corm__alloc *a, uint32_t *oid,
                 int *format, bool *is_null, corm_error *err)
{
    uint32_t want = v->oid;
    int rc;
    *format = 1;
    *is_null = false;
    *oid = want;
    switch (v->kind) {
    case CORM_NULL:
        *is_null = true;
        return CORM_OK;
    case CORM_BOOL:
        if (want != 0 && want != CORM_OID_BOOL)
            return corm__err(err, CORM_EDATA, "cannot send a boolean as type %u",
                             (unsigned)want);
        *oid = CORM_OID_BOOL;
        return corm__put_be(out, a, v->v.b ? 1 : 0, 1, err);
    case CORM_INT:
        return enc_int(v->v.i, want, out, a, oid, err);
    case CORM_FLOAT:
        return enc_float(v->v.f, want, out, a, oid, err);
    case CORM_TEXT:
        return enc_text(v, want, out, a, oid, format, err);
    case CORM_JSON:
        if ((rc = enc_str_checked(v, "JSON", err)) < 0)
            return rc;
        if (v->v.str.len && memchr(v->v.str.ptr, 0, v->v.str.len))
            return corm__err(err, CORM_EDATA, "JSON text contains a NUL byte");
        if (want == 0 || want == CORM_OID_JSONB) {
            *oid = CORM_OID_JSONB;
            if (corm__buf_put(out, a, "\1", 1) < 0)
                return corm__err_nomem(err);
        } else if (want != CORM_OID_JSON) {
            return corm__err(err, CORM_EDATA, "cannot send JSON as type %u", (unsigned)want);
        }
        return put_bytes(out, a, v->v.str.ptr, v->v.str.len, err);
    case CORM_BYTES:
        if ((rc = enc_str_checked(v, "bytes", err)) < 0)
            return rc;
        if (want != 0 && want != CORM_OID_BYTEA)
            return corm__err(err, CORM_EDATA, "cannot send bytes as type %u", (unsigned)want);
        *oid = CORM_OID_BYTEA;
        return put_bytes(out, a, v->v.str.ptr, v->v.str.len, err);
    case CORM_NUMERIC:
        if ((rc = enc_str_checked(v, "numeric text", err)) < 0)
            return rc;
        if (want != 0 && want != CORM_OID_NUMERIC)
            return corm__err(err, CORM_EDATA, "cannot send a numeric as type %u",
                             (unsigned)want);
        *oid = CORM_OID_NUMERIC;
        return corm__enc_numeric_str(v->v.str.ptr, v->v.str.len, out, a, err);
    case CORM_DATE:
    case CORM_TIME:
    case CORM_TIMETZ:
    case CORM_TIMESTAMP:
    case CORM_TIMESTAMPTZ:
    case CORM_INTERVAL:
        return corm__enc_time(v, out, a, oid, err);
    case CORM_UUID:
        if (want != 0 && want != CORM_OID_UUID)
            return corm__err(err, CORM_EDATA, "cannot send a uuid as type %u", (unsigned)want);
        *oid = CORM_OID_UUID;
        return put_bytes(out, a, v->v.uuid, 16, err);
    case CORM_ARRAY:
    case CORM_ARRAY_ITEMS:
        return corm__enc_array(v, out, a, oid, err);
    case CORM_RAW:
        if ((rc = enc_str_checked(v, "raw", err)) < 0)
            return rc;
        if (want == 0)
            return corm__err(err, CORM_EDATA, "raw bytes need the type's oid");
        return put_bytes(out, a, v->v.str.ptr, v->v.str.len, err);
    default:
        return corm__err(err, CORM_EDATA, "cannot send a value of kind %d", (int)v->kind);
    }
}
