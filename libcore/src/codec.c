/*
 * codec.c - PostgreSQL binary codecs: wire bytes <-> corm_value, one
 * decoder per type OID, chosen once per column.
 */
#include "corm_int.h"

#include <math.h>
#include <string.h>

static int bad_length(corm_error *err, uint32_t oid, size_t len, size_t want)
{
    return corm__err(err, CORM_EDATA, "malformed value of type %u: %zu bytes, expected %zu",
                     (unsigned)oid, len, want);
}

static int dec_bool(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 1)
        return bad_length(err, oid, n, 1);
    o->kind = CORM_BOOL;
    o->v.b = b[0] != 0;
    return CORM_OK;
}

static int dec_int2(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 2)
        return bad_length(err, oid, n, 2);
    o->kind = CORM_INT;
    o->v.i = (int16_t)corm__get_u16(b);
    return CORM_OK;
}

static int dec_int4(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 4)
        return bad_length(err, oid, n, 4);
    o->kind = CORM_INT;
    o->v.i = (int32_t)corm__get_u32(b);
    return CORM_OK;
}

static int dec_oid(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 4)
        return bad_length(err, oid, n, 4);
    o->kind = CORM_INT;
    o->v.i = corm__get_u32(b);
    return CORM_OK;
}

static int dec_int8(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 8)
        return bad_length(err, oid, n, 8);
    o->kind = CORM_INT;
    o->v.i = (int64_t)corm__get_u64(b);
    return CORM_OK;
}

static int dec_float4(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 4)
        return bad_length(err, oid, n, 4);
    uint32_t u = corm__get_u32(b);
    float f;
    memcpy(&f, &u, sizeof f);
    o->kind = CORM_FLOAT;
    o->v.f = f;
    return CORM_OK;
}

static int dec_float8(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 8)
        return bad_length(err, oid, n, 8);
    uint64_t u = corm__get_u64(b);
    double d;
    memcpy(&d, &u, sizeof d);
    o->kind = CORM_FLOAT;
    o->v.f = d;
    return CORM_OK;
}

static int dec_text(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    (void)oid;
    (void)err;
    o->kind = CORM_TEXT;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
}

static int dec_bytea(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    (void)oid;
    (void)err;
    o->kind = CORM_BYTES;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
}

static int dec_json(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    (void)err;
    (void)oid;
    o->kind = CORM_JSON;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
}

static int dec_jsonb(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    /* jsonb's binary form is a version byte (1) and the JSON text. */
    if (n < 1 || b[0] != 1)
        return corm__err(err, CORM_EDATA, "malformed jsonb value (type %u)", (unsigned)oid);
    o->kind = CORM_JSON;
    o->v.str.ptr = b + 1;
    o->v.str.len = n - 1;
    return CORM_OK;
}

static int dec_uuid(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    if (n != 16)
        return bad_length(err, oid, n, 16);
    o->kind = CORM_UUID;
    memcpy(o->v.uuid, b, 16);
    return CORM_OK;
}

static int dec_raw(const char *b, size_t n, uint32_t oid, corm_value *o, corm_error *err)
{
    (void)oid;
    (void)err;
    o->kind = CORM_RAW;
    o->v.str.ptr = b;
    o->v.str.len = n;
    return CORM_OK;
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
    case CORM_OID_CHAR:
        return dec_text;
    case CORM_OID_BYTEA:
        return dec_bytea;
    case CORM_OID_JSON:
        return dec_json;
    case CORM_OID_JSONB:
        return dec_jsonb;
    case CORM_OID_UUID:
        return dec_uuid;
    default:
        return dec_raw;
    }
}

/* ---- encoding -------------------------------------------------------- */

static int put_be(corm__buf *out, const corm__alloc *a, uint64_t v, int nbytes,
                  corm_error *err)
{
    char tmp[8];
    for (int i = 0; i < nbytes; i++)
        tmp[i] = (char)(v >> (8 * (nbytes - 1 - i)));
    if (corm__buf_put(out, a, tmp, (size_t)nbytes) < 0)
        return corm__err_nomem(err);
    return CORM_OK;
}

static int enc_int(int64_t i, uint32_t want, corm__buf *out, const corm__alloc *a,
                   uint32_t *oid, corm_error *err)
{
    switch (want) {
    case 0:
    case CORM_OID_INT8:
        *oid = CORM_OID_INT8;
        return put_be(out, a, (uint64_t)i, 8, err);
    case CORM_OID_INT4:
        if (i < INT32_MIN || i > INT32_MAX)
            return corm__err(err, CORM_EDATA, "integer %lld out of range for int4",
                             (long long)i);
        *oid = want;
        return put_be(out, a, (uint64_t)(uint32_t)(int32_t)i, 4, err);
    case CORM_OID_INT2:
        if (i < INT16_MIN || i > INT16_MAX)
            return corm__err(err, CORM_EDATA, "integer %lld out of range for int2",
                             (long long)i);
        *oid = want;
        return put_be(out, a, (uint64_t)(uint16_t)(int16_t)i, 2, err);
    case CORM_OID_OID:
        if (i < 0 || i > (int64_t)UINT32_MAX)
            return corm__err(err, CORM_EDATA, "integer %lld out of range for oid",
                             (long long)i);
        *oid = want;
        return put_be(out, a, (uint64_t)i, 4, err);
    case CORM_OID_FLOAT8: {
        double d = (double)i;
        if ((int64_t)d != i || d >= 9223372036854775808.0)
            return corm__err(err, CORM_EDATA, "integer %lld has no exact float8 value",
                             (long long)i);
        uint64_t u;
        memcpy(&u, &d, 8);
        *oid = want;
        return put_be(out, a, u, 8, err);
    }
    default:
        return corm__err(err, CORM_EDATA, "cannot send an integer as type %u", (unsigned)want);
    }
}

static int enc_float(double d, uint32_t want, corm__buf *out, const corm__alloc *a,
                     uint32_t *oid, corm_error *err)
{
    if (want == 0 || want == CORM_OID_FLOAT8) {
        uint64_t u;
        memcpy(&u, &d, 8);
        *oid = CORM_OID_FLOAT8;
        return put_be(out, a, u, 8, err);
    }
    if (want == CORM_OID_FLOAT4) {
        float f = (float)d;
        if (isfinite(d) && !isfinite(f))
            return corm__err(err, CORM_EDATA, "value %g out of range for float4", d);
        uint32_t u;
        memcpy(&u, &f, 4);
        *oid = want;
        return put_be(out, a, u, 4, err);
    }
    return corm__err(err, CORM_EDATA, "cannot send a float as type %u", (unsigned)want);
}

static bool text_like(uint32_t oid)
{
    return oid == CORM_OID_TEXT || oid == CORM_OID_VARCHAR || oid == CORM_OID_BPCHAR ||
           oid == CORM_OID_NAME || oid == CORM_OID_JSON;
}

int corm__encode(const corm_value *v, corm__buf *out, const corm__alloc *a, uint32_t *oid,
                 int *format, bool *is_null, corm_error *err)
{
    uint32_t want = v->oid;
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
        return put_be(out, a, v->v.b ? 1 : 0, 1, err);
    case CORM_INT:
        return enc_int(v->v.i, want, out, a, oid, err);
    case CORM_FLOAT:
        return enc_float(v->v.f, want, out, a, oid, err);
    case CORM_TEXT:
        if (memchr(v->v.str.ptr, 0, v->v.str.len))
            return corm__err(err, CORM_EDATA, "text contains a NUL byte");
        if (want == 0) {
            /* Untyped text lets the server infer the parameter's type from
             * the statement, so "WHERE id = $1" works for any column type;
             * the text format is then parsed by that type's input function. */
            *format = 0;
        } else if (!text_like(want) && want != CORM_OID_UNKNOWN) {
            /* Any other type reads the string through its text input. */
            *format = 0;
        }
        if (corm__buf_put(out, a, v->v.str.ptr, v->v.str.len) < 0)
            return corm__err_nomem(err);
        return CORM_OK;
    case CORM_JSON:
        if (want == 0 || want == CORM_OID_JSONB) {
            *oid = CORM_OID_JSONB;
            if (corm__buf_put(out, a, "\1", 1) < 0)
                return corm__err_nomem(err);
        } else if (want != CORM_OID_JSON) {
            return corm__err(err, CORM_EDATA, "cannot send JSON as type %u", (unsigned)want);
        }
        if (corm__buf_put(out, a, v->v.str.ptr, v->v.str.len) < 0)
            return corm__err_nomem(err);
        return CORM_OK;
    case CORM_BYTES:
        if (want != 0 && want != CORM_OID_BYTEA)
            return corm__err(err, CORM_EDATA, "cannot send bytes as type %u", (unsigned)want);
        *oid = CORM_OID_BYTEA;
        if (corm__buf_put(out, a, v->v.str.ptr, v->v.str.len) < 0)
            return corm__err_nomem(err);
        return CORM_OK;
    case CORM_UUID:
        if (want != 0 && want != CORM_OID_UUID)
            return corm__err(err, CORM_EDATA, "cannot send a uuid as type %u", (unsigned)want);
        *oid = CORM_OID_UUID;
        if (corm__buf_put(out, a, v->v.uuid, 16) < 0)
            return corm__err_nomem(err);
        return CORM_OK;
    case CORM_RAW:
        if (want == 0)
            return corm__err(err, CORM_EDATA, "raw bytes need the type's oid");
        if (corm__buf_put(out, a, v->v.str.ptr, v->v.str.len) < 0)
            return corm__err_nomem(err);
        return CORM_OK;
    default:
        return corm__err(err, CORM_EDATA, "cannot send a value of kind %d yet", (int)v->kind);
    }
}
