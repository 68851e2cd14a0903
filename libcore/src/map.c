/*
 * map.c - rows decoded straight into C structs: a field table built once,
 * a plan (column and operation per field) made once per call from the
 * result's columns, then one tight loop over the cells.
 */
#include "corm_int.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/*
 * The map's struct lives here, not in corm_int.h: no other file of the
 * engine looks inside it.
 */
typedef struct map_field {
    corm_field f;       /* f.column is our copy (name_size bytes) or NULL */
    size_t name_size;
    /* The plan of the current call. */
    int col;
    int op;
} map_field;

struct corm_map {
    corm__alloc alloc;
    size_t struct_size;
    map_field *fields;
    size_t n, cap;
};

/* What one field does with one cell: source type x C type, chosen once per
 * call so the loop switches on nothing else. */
enum {
    OP_NONE = 0,
    OP_BOOL,
    OP_I2_I16, OP_I2_I32, OP_I2_I64, OP_I2_F32, OP_I2_F64,
    OP_I4_I16, OP_I4_I32, OP_I4_I64, OP_I4_F32, OP_I4_F64,
    OP_I8_I16, OP_I8_I32, OP_I8_I64, OP_I8_F32, OP_I8_F64,
    OP_OID_I16, OP_OID_I32, OP_OID_I64, OP_OID_F32, OP_OID_F64,
    OP_F4_F32, OP_F4_F64, OP_F8_F32, OP_F8_F64,
    OP_TEXT,     /* text-like or bytea or raw: a view of the wire bytes */
    OP_CHAR,     /* "char": one byte, the NUL "char" as "" */
    OP_JSONB,    /* the text after jsonb's version byte */
    OP_NUMERIC,  /* decimal text made in the result's scratch */
    OP_TIME, OP_TIMESTAMP, OP_DATE, OP_UUID, OP_INTERVAL,
    OP_VALUE,    /* the column's own decoder into a corm_value */
};

/* Source families, from the column's OID. */
enum { SRC_INT2, SRC_INT4, SRC_INT8, SRC_OID, SRC_F4, SRC_F8, SRC_OTHER };

static const char *const ctype_names[CORM__C_LAST] = {
    NULL, "CORM_C_INT16", "CORM_C_INT32", "CORM_C_INT64", "CORM_C_FLOAT", "CORM_C_DOUBLE",
    "CORM_C_BOOL", "CORM_C_TEXT", "CORM_C_BYTES", "CORM_C_USEC", "CORM_C_DAYS",
    "CORM_C_UUID", "CORM_C_INTERVAL", "CORM_C_VALUE",
};

static const size_t ctype_sizes[CORM__C_LAST] = {
    0, sizeof(int16_t), sizeof(int32_t), sizeof(int64_t), sizeof(float), sizeof(double),
    sizeof(bool), sizeof(const char *), sizeof(const void *), sizeof(int64_t),
    sizeof(int32_t), 16, sizeof(corm_interval), sizeof(corm_value),
};

/* ---- the map ------------------------------------------------------------ */

int corm_map_new(corm_map **out, size_t struct_size, const corm_options *opt, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(struct_size > 0, err, "struct_size is 0");
    corm__alloc a;
    corm__alloc_init(&a, opt);
    corm_map *m = corm__calloc(&a, sizeof *m);
    if (!m)
        return corm__err_nomem(err);
    m->alloc = a;
    m->struct_size = struct_size;
    *out = m;
    return CORM_OK;
}

void corm_map_free(corm_map *m)
{
    if (!m)
        return;
    corm__alloc a = m->alloc;
    for (size_t i = 0; i < m->n; i++)
        corm__free(&a, (char *)m->fields[i].f.column, m->fields[i].name_size);
    corm__free(&a, m->fields, m->cap * sizeof *m->fields);
    corm__free(&a, m, sizeof *m);
}

size_t corm_map_nfields(const corm_map *m)
{
    return m ? m->n : 0;
}

/* True when [off, off + size) lies inside a struct of struct_size bytes. */
static bool fits(size_t off, size_t size, size_t struct_size)
{
    return size <= struct_size && off <= struct_size - size;
}

static const char *field_label(const corm_field *f, char *buf, size_t size)
{
    if (f->column)
        return f->column;
    snprintf(buf, size, "#%d", f->col);
    return buf;
}

int corm_map_add_field(corm_map *m, const corm_field *f, corm_error *err)
{
    corm__check(m != NULL, err, "map is NULL");
    corm__check(f != NULL, err, "field is NULL");
    char lbuf[24];
    const char *label = field_label(f, lbuf, sizeof lbuf);
    if (f->type <= 0 || f->type >= CORM__C_LAST)
        return corm__err(err, CORM_EMISUSE, "field for column \"%s\": unknown C type %d", label,
                         f->type);
    const char *tname = ctype_names[f->type];
    size_t tsize = ctype_sizes[f->type];
    if (f->flags & ~(unsigned)(CORM_FIELD_HAS_LEN | CORM_FIELD_HAS_NULL | CORM_FIELD_NULL_ZERO))
        return corm__err(err, CORM_EMISUSE, "field for column \"%s\": unknown flags 0x%x",
                         label, f->flags);
    if (!f->column && f->col < 0)
        return corm__err(err, CORM_EMISUSE, "field %s: negative column index", label);
    if (f->size != 0 && f->size != tsize)
        return corm__err(err, CORM_EMISUSE,
                         "field for column \"%s\": a member of %zu bytes cannot hold %s "
                         "(%zu bytes)", label, f->size, tname, tsize);
    if (!fits(f->offset, tsize, m->struct_size))
        return corm__err(err, CORM_EMISUSE,
                         "field for column \"%s\": %s at offset %zu overruns the %zu-byte "
                         "struct", label, tname, f->offset, m->struct_size);
    if (f->type == CORM_C_BYTES && !(f->flags & CORM_FIELD_HAS_LEN))
        return corm__err(err, CORM_EMISUSE,
                         "field for column \"%s\": CORM_C_BYTES needs a length member", label);
    if (f->flags & CORM_FIELD_HAS_LEN) {
        if (f->type != CORM_C_TEXT && f->type != CORM_C_BYTES)
            return corm__err(err, CORM_EMISUSE,
                             "field for column \"%s\": only text and bytes have a length",
                             label);
        if (!fits(f->len_offset, sizeof(size_t), m->struct_size))
            return corm__err(err, CORM_EMISUSE,
                             "field for column \"%s\": length at offset %zu overruns the "
                             "struct", label, f->len_offset);
    }
    if ((f->flags & CORM_FIELD_HAS_NULL) && !fits(f->null_offset, sizeof(bool), m->struct_size))
        return corm__err(err, CORM_EMISUSE,
                         "field for column \"%s\": null flag at offset %zu overruns the struct",
                         label, f->null_offset);

    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        map_field *nf = corm__realloc(&m->alloc, m->fields, m->cap * sizeof *nf, cap * sizeof *nf);
        if (!nf)
            return corm__err_nomem(err);
        m->fields = nf;
        m->cap = cap;
    }
    map_field *mf = &m->fields[m->n];
    memset(mf, 0, sizeof *mf);
    mf->f = *f;
    mf->f.size = tsize;
    if (f->column) {
        char *name = corm__strdup(&m->alloc, f->column, &mf->name_size);
        if (!name)
            return corm__err_nomem(err);
        mf->f.column = name;
    }
    m->n++;
    return CORM_OK;
}

int corm_map_add_fields(corm_map *m, const corm_field *fields, size_t n, corm_error *err)
{
    corm__check(m != NULL, err, "map is NULL");
    corm__check(fields != NULL || n == 0, err, "fields is NULL");
    for (size_t i = 0; i < n; i++) {
        int rc = corm_map_add_field(m, &fields[i], err);
        if (rc < 0)
            return rc;
    }
    return CORM_OK;
}

/* ---- planning: one operation per field, per call ----------------------- */

static const char *type_name(uint32_t oid)
{
    switch (oid) {
    case CORM_OID_BOOL: return "bool";
    case CORM_OID_BYTEA: return "bytea";
    case CORM_OID_CHAR: return "\"char\"";
    case CORM_OID_NAME: return "name";
    case CORM_OID_INT8: return "int8";
    case CORM_OID_INT2: return "int2";
    case CORM_OID_INT4: return "int4";
    case CORM_OID_TEXT: return "text";
    case CORM_OID_OID: return "oid";
    case CORM_OID_JSON: return "json";
    case CORM_OID_FLOAT4: return "float4";
    case CORM_OID_FLOAT8: return "float8";
    case CORM_OID_UNKNOWN: return "unknown";
    case CORM_OID_BPCHAR: return "bpchar";
    case CORM_OID_VARCHAR: return "varchar";
    case CORM_OID_DATE: return "date";
    case CORM_OID_TIME: return "time";
    case CORM_OID_TIMESTAMP: return "timestamp";
    case CORM_OID_TIMESTAMPTZ: return "timestamptz";
    case CORM_OID_INTERVAL: return "interval";
    case CORM_OID_TIMETZ: return "timetz";
    case CORM_OID_NUMERIC: return "numeric";
    case CORM_OID_UUID: return "uuid";
    case CORM_OID_JSONB: return "jsonb";
    default: return NULL;
    }
}

static int int_family(uint32_t oid)
{
    switch (oid) {
    case CORM_OID_INT2: return SRC_INT2;
    case CORM_OID_INT4: return SRC_INT4;
    case CORM_OID_INT8: return SRC_INT8;
    case CORM_OID_OID: return SRC_OID;
    case CORM_OID_FLOAT4: return SRC_F4;
    case CORM_OID_FLOAT8: return SRC_F8;
    default: return SRC_OTHER;
    }
}

/* A type libcorm passes through as CORM_RAW (enums, extensions' types). */
static bool is_raw(uint32_t oid)
{
    return corm__decoder_for(oid) == corm__decoder_for(0);
}

static bool is_plain_text(uint32_t oid)
{
    switch (oid) {
    case CORM_OID_TEXT:
    case CORM_OID_VARCHAR:
    case CORM_OID_BPCHAR:
    case CORM_OID_NAME:
    case CORM_OID_UNKNOWN:
    case CORM_OID_JSON:
        return true;
    default:
        return false;
    }
}

/* The operation for a column of type oid into C type ctype; OP_NONE when
 * the conversion could lose information. */
static int choose_op(uint32_t oid, int ctype)
{
    /* Integers and floats: a row per source family, a column per C type. */
    static const unsigned char numeric_ops[SRC_OTHER][5] = {
        /*            INT16       INT32       INT64       FLOAT       DOUBLE */
        [SRC_INT2] = {OP_I2_I16, OP_I2_I32, OP_I2_I64, OP_I2_F32, OP_I2_F64},
        [SRC_INT4] = {OP_I4_I16, OP_I4_I32, OP_I4_I64, OP_I4_F32, OP_I4_F64},
        [SRC_INT8] = {OP_I8_I16, OP_I8_I32, OP_I8_I64, OP_I8_F32, OP_I8_F64},
        [SRC_OID] = {OP_OID_I16, OP_OID_I32, OP_OID_I64, OP_OID_F32, OP_OID_F64},
        [SRC_F4] = {OP_NONE, OP_NONE, OP_NONE, OP_F4_F32, OP_F4_F64},
        [SRC_F8] = {OP_NONE, OP_NONE, OP_NONE, OP_F8_F32, OP_F8_F64},
    };
    switch (ctype) {
    case CORM_C_INT16:
    case CORM_C_INT32:
    case CORM_C_INT64:
    case CORM_C_FLOAT:
    case CORM_C_DOUBLE: {
        int fam = int_family(oid);
        return fam == SRC_OTHER ? OP_NONE : numeric_ops[fam][ctype - CORM_C_INT16];
    }
    case CORM_C_BOOL:
        return oid == CORM_OID_BOOL ? OP_BOOL : OP_NONE;
    case CORM_C_TEXT:
        if (is_plain_text(oid))
            return OP_TEXT;
        if (oid == CORM_OID_CHAR)
            return OP_CHAR;
        if (oid == CORM_OID_JSONB)
            return OP_JSONB;
        if (oid == CORM_OID_NUMERIC)
            return OP_NUMERIC;
        return OP_NONE;
    case CORM_C_BYTES:
        if (oid == CORM_OID_BYTEA || is_plain_text(oid) || is_raw(oid))
            return OP_TEXT;
        if (oid == CORM_OID_CHAR)
            return OP_CHAR;
        return OP_NONE;
    case CORM_C_USEC:
        if (oid == CORM_OID_TIMESTAMP || oid == CORM_OID_TIMESTAMPTZ)
            return OP_TIMESTAMP;
        return oid == CORM_OID_TIME ? OP_TIME : OP_NONE;
    case CORM_C_DAYS:
        return oid == CORM_OID_DATE ? OP_DATE : OP_NONE;
    case CORM_C_UUID:
        return oid == CORM_OID_UUID ? OP_UUID : OP_NONE;
    case CORM_C_INTERVAL:
        return oid == CORM_OID_INTERVAL ? OP_INTERVAL : OP_NONE;
    case CORM_C_VALUE:
        return OP_VALUE;
    default:
        return OP_NONE;
    }
}

/* Resolves every field's column in r and chooses its operation. Writes
 * nothing but the map's plan. */
static int plan(const corm_result *r, corm_map *m, corm_error *err)
{
    const PGresult *pg = r->pg;
    for (size_t i = 0; i < m->n; i++) {
        map_field *mf = &m->fields[i];
        int col = -1;
        if (mf->f.column) {
            for (int c = 0; c < r->ncols; c++) {
                if (strcmp(PQfname(pg, c), mf->f.column) == 0) {
                    col = c;
                    break;
                }
            }
            if (col < 0)
                return corm__err(err, CORM_EMISUSE, "the result has no column \"%s\"",
                                 mf->f.column);
        } else {
            col = mf->f.col;
            if (col >= r->ncols)
                return corm__err(err, CORM_EMISUSE,
                                 "column index %d out of range (the result has %d columns)",
                                 col, r->ncols);
        }
        uint32_t oid = (uint32_t)PQftype(pg, col);
        int op = choose_op(oid, mf->f.type);
        if (op == OP_NONE) {
            const char *tn = type_name(oid);
            char tbuf[32];
            if (!tn) {
                snprintf(tbuf, sizeof tbuf, "%s %u",
                         corm__array_elem_oid(oid) ? "array type" : "type", (unsigned)oid);
                tn = tbuf;
            }
            return corm__err(err, CORM_EDATA,
                             "column \"%s\" of type %s does not convert losslessly into a %s "
                             "field (cast it in SQL, or map it as CORM_C_VALUE)",
                             PQfname(pg, col), tn, ctype_names[mf->f.type]);
        }
        mf->col = col;
        mf->op = op;
    }
    return CORM_OK;
}

/* ---- the loop ------------------------------------------------------------ */

static inline int64_t rd_i2(const char *b) { return (int16_t)corm__get_u16(b); }
static inline int64_t rd_i4(const char *b) { return (int32_t)corm__get_u32(b); }
static inline int64_t rd_i8(const char *b) { return (int64_t)corm__get_u64(b); }
static inline int64_t rd_oid(const char *b) { return (int64_t)corm__get_u32(b); }

static inline float rd_f4(const char *b)
{
    uint32_t u = corm__get_u32(b);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline double rd_f8(const char *b)
{
    uint64_t u = corm__get_u64(b);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Integers a float (24-bit significand) and a double (53) hold exactly. */
#define FLT_EXACT INT64_C(16777216)
#define DBL_EXACT INT64_C(9007199254740992)

/* Stores through memcpy: a stride need not keep members aligned. */
#define STORE(dst, T, val)            \
    do {                              \
        T store_tmp_ = (T)(val);      \
        memcpy((dst), &store_tmp_, sizeof store_tmp_); \
    } while (0)

/* An integer source of W bytes read with RD, into C type T when it lies
 * within [LO, HI]. */
#define INT_OP(OP, W, RD, T, LO, HI)      \
    case OP:                              \
        if (n != (W))                     \
            goto bad_length;              \
        iv = RD(b);                       \
        if (iv < (LO) || iv > (HI))       \
            goto int_range;               \
        STORE(dst, T, iv);                \
        break;

#define INT_SOURCE_OPS(PFX, W, RD)                                                 \
    INT_OP(OP_##PFX##_I16, W, RD, int16_t, INT16_MIN, INT16_MAX)                   \
    INT_OP(OP_##PFX##_I32, W, RD, int32_t, INT32_MIN, INT32_MAX)                   \
    INT_OP(OP_##PFX##_I64, W, RD, int64_t, INT64_MIN, INT64_MAX)                   \
    INT_OP(OP_##PFX##_F32, W, RD, float, -FLT_EXACT, FLT_EXACT)                    \
    INT_OP(OP_##PFX##_F64, W, RD, double, -DBL_EXACT, DBL_EXACT)

/* Zeroes the value (and length) of a field for a NULL cell. */
static void put_zero(char *row, const corm_field *f)
{
    memset(row + f->offset, 0, f->size);
    if (f->flags & CORM_FIELD_HAS_LEN)
        memset(row + f->len_offset, 0, sizeof(size_t));
}

static int cell_err(corm_error *err, int code, const PGresult *pg, int row, int col,
                    const char *fmt, ...) CORM__PRINTF(6, 7);
static int cell_err(corm_error *err, int code, const PGresult *pg, int row, int col,
                    const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return corm__err(err, code, "column \"%s\", row %d: %s", PQfname(pg, col), row, what);
}

/*
 * Decodes rows [0, nrows) of r into base, stride bytes apart, with the plan
 * made by plan(). *done counts the rows completed.
 */
static int run(const corm_result *r, const corm_map *m, char *base, size_t nrows,
               size_t stride, size_t *done, corm_error *err)
{
    const PGresult *pg = r->pg;
    corm__arena *scratch = (corm__arena *)&r->scratch;
    const map_field *fields = m->fields;
    const size_t nf = m->n;
    static const bool yes = true, no = false;
    corm_error inner = CORM_ERROR_INIT;
    const map_field *mf = NULL;
    int row = 0, n = 0, rc = CORM_OK;
    int64_t iv = 0;
    double dv = 0;
    corm_value v;

    for (size_t ri = 0; ri < nrows; ri++, base += stride) {
        row = (int)ri;
        for (size_t i = 0; i < nf; i++) {
            mf = &fields[i];
            const corm_field *f = &mf->f;
            const int col = mf->col;
            char *dst = base + f->offset;
            /* libpq gives a NULL length 0, so only an empty value costs
             * the extra PQgetisnull call: two libpq calls per cell, not
             * three. */
            n = PQgetlength(pg, row, col);
            if (n == 0 && PQgetisnull(pg, row, col)) {
                if (mf->op == OP_VALUE) {
                    memset(&v, 0, sizeof v);
                    v.kind = CORM_NULL;
                    v.oid = (uint32_t)PQftype(pg, col);
                    memcpy(dst, &v, sizeof v);
                } else if (f->flags & (CORM_FIELD_HAS_NULL | CORM_FIELD_NULL_ZERO)) {
                    put_zero(base, f);
                } else {
                    rc = cell_err(err, CORM_EDATA, pg, row, col,
                                  "NULL, and its field has no null flag");
                    goto out;
                }
                if (f->flags & CORM_FIELD_HAS_NULL)
                    memcpy(base + f->null_offset, &yes, sizeof yes);
                continue;
            }
            const char *b = PQgetvalue(pg, row, col);
            switch (mf->op) {
            case OP_BOOL:
                if (n != 1)
                    goto bad_length;
                STORE(dst, bool, b[0] != 0);
                break;
            INT_SOURCE_OPS(I2, 2, rd_i2)
            INT_SOURCE_OPS(I4, 4, rd_i4)
            INT_SOURCE_OPS(I8, 8, rd_i8)
            INT_SOURCE_OPS(OID, 4, rd_oid)
            case OP_F4_F32:
                if (n != 4)
                    goto bad_length;
                STORE(dst, float, rd_f4(b));
                break;
            case OP_F4_F64:
                if (n != 4)
                    goto bad_length;
                STORE(dst, double, rd_f4(b));
                break;
            case OP_F8_F64:
                if (n != 8)
                    goto bad_length;
                STORE(dst, double, rd_f8(b));
                break;
            case OP_F8_F32:
                if (n != 8)
                    goto bad_length;
                dv = rd_f8(b);
                /* Exact as a float: NaN, the infinities, and finite values
                 * that survive the round trip (checked against FLT_MAX
                 * first: converting a larger double is undefined). */
                if (!isnan(dv) && !isinf(dv) && (fabs(dv) > FLT_MAX || (double)(float)dv != dv))
                    goto float_range;
                STORE(dst, float, dv);
                break;
            case OP_TEXT:
                /* libpq ends every value with a NUL byte: a C string too. */
                STORE(dst, const char *, b);
                if (f->flags & CORM_FIELD_HAS_LEN)
                    STORE(base + f->len_offset, size_t, n);
                break;
            case OP_CHAR:
                if (n != 1)
                    goto bad_length;
                STORE(dst, const char *, b);
                if (f->flags & CORM_FIELD_HAS_LEN)
                    STORE(base + f->len_offset, size_t, b[0] != 0);
                break;
            case OP_JSONB:
                if (n < 1 || b[0] != 1) {
                    rc = cell_err(err, CORM_EDATA, pg, row, col, "malformed jsonb value");
                    goto out;
                }
                STORE(dst, const char *, b + 1);
                if (f->flags & CORM_FIELD_HAS_LEN)
                    STORE(base + f->len_offset, size_t, n - 1);
                break;
            case OP_NUMERIC:
                rc = corm__dec_numeric(b, (size_t)n, CORM_OID_NUMERIC, &v, scratch, &inner);
                if (rc < 0)
                    goto inner_failed;
                STORE(dst, const char *, v.v.str.ptr);
                if (f->flags & CORM_FIELD_HAS_LEN)
                    STORE(base + f->len_offset, size_t, v.v.str.len);
                break;
            case OP_TIMESTAMP:
                /* Within +-2^57 us (4,566 years) of 2000 a timestamp is
                 * surely in range; the codec judges the rest exactly. */
                if (n == 8 && (iv = rd_i8(b)) > -(INT64_C(1) << 57) && iv < (INT64_C(1) << 57)) {
                    STORE(dst, int64_t, iv);
                    break;
                }
                rc = corm__dec_timestamp(b, (size_t)n, CORM_OID_TIMESTAMP, &v, NULL, &inner);
                if (rc < 0)
                    goto inner_failed;
                STORE(dst, int64_t, v.v.i);
                break;
            case OP_TIME:
                rc = corm__dec_time(b, (size_t)n, CORM_OID_TIME, &v, NULL, &inner);
                if (rc < 0)
                    goto inner_failed;
                STORE(dst, int64_t, v.v.i);
                break;
            case OP_DATE:
                /* As for timestamps: 2^21 days (5,741 years) is surely in range. */
                if (n == 4 && (iv = rd_i4(b)) > -(INT64_C(1) << 21) && iv < (INT64_C(1) << 21)) {
                    STORE(dst, int32_t, iv);
                    break;
                }
                rc = corm__dec_date(b, (size_t)n, CORM_OID_DATE, &v, NULL, &inner);
                if (rc < 0)
                    goto inner_failed;
                STORE(dst, int32_t, v.v.i);
                break;
            case OP_UUID:
                if (n != 16)
                    goto bad_length;
                memcpy(dst, b, 16);
                break;
            case OP_INTERVAL: {
                if (n != 16)
                    goto bad_length;
                corm_interval iv16;
                iv16.usec = rd_i8(b);
                iv16.days = (int32_t)corm__get_u32(b + 8);
                iv16.months = (int32_t)corm__get_u32(b + 12);
                memcpy(dst, &iv16, sizeof iv16);
                break;
            }
            case OP_VALUE: {
                uint32_t oid = (uint32_t)PQftype(pg, col);
                memset(&v, 0, sizeof v);
                v.oid = oid;
                rc = r->decoders[col](b, (size_t)n, oid, &v, scratch, &inner);
                if (rc < 0)
                    goto inner_failed;
                memcpy(dst, &v, sizeof v);
                break;
            }
            default:
                rc = corm__err(err, CORM_EINTERNAL, "map: no operation planned");
                goto out;
            }
            if (f->flags & CORM_FIELD_HAS_NULL)
                memcpy(base + f->null_offset, &no, sizeof no);
        }
        *done = ri + 1;
    }
    rc = CORM_OK;
    goto out;

bad_length:
    rc = cell_err(err, CORM_EDATA, pg, row, mf->col, "malformed value of %d bytes for a %s field",
                  n, ctype_names[mf->f.type]);
    goto out;
int_range:
    rc = cell_err(err, CORM_EDATA, pg, row, mf->col, "%" PRId64 " does not fit a %s field%s", iv,
                  ctype_names[mf->f.type],
                  mf->f.type == CORM_C_FLOAT || mf->f.type == CORM_C_DOUBLE
                      ? " exactly" : "");
    goto out;
float_range:
    rc = cell_err(err, CORM_EDATA, pg, row, mf->col, "%.17g is not exact as a float", dv);
    goto out;
inner_failed:
    rc = cell_err(err, rc, pg, row, mf->col, "%s", inner.message ? inner.message : "cannot decode");
out:
    corm_error_clear(&inner);
    return rc;
}

/* ---- entry points ---------------------------------------------------------- */

int corm_result_map(const corm_result *r, corm_map *m, void *rows, size_t count,
                    size_t stride, size_t *written, corm_error *err)
{
    if (written)
        *written = 0;
    corm__check(r != NULL, err, "result is NULL");
    corm__check(m != NULL, err, "map is NULL");
    corm__check(rows != NULL || count == 0, err, "rows is NULL");
    if (stride == 0)
        stride = m->struct_size;
    if (stride < m->struct_size)
        return corm__err(err, CORM_EMISUSE,
                         "corm_result_map: stride %zu is smaller than the %zu-byte struct",
                         stride, m->struct_size);
    int rc = plan(r, m, err);
    if (rc < 0)
        return rc;
    size_t n = (size_t)r->nrows < count ? (size_t)r->nrows : count, done = 0;
    rc = run(r, m, rows, n, stride, &done, err);
    if (written)
        *written = done;
    return rc;
}

int corm_result_map_alloc(corm_result *r, corm_map *m, void **rows, size_t *nrows,
                          corm_error *err)
{
    corm__check(rows != NULL, err, "rows is NULL");
    *rows = NULL;
    corm__check(nrows != NULL, err, "nrows is NULL");
    *nrows = 0;
    corm__check(r != NULL, err, "result is NULL");
    corm__check(m != NULL, err, "map is NULL");
    int rc = plan(r, m, err);
    if (rc < 0)
        return rc;
    size_t n = (size_t)r->nrows, size = m->struct_size;
    if (n == 0)
        return CORM_OK;
    const size_t align = _Alignof(max_align_t);
    if (size > (SIZE_MAX - align) / n)
        return corm__err_nomem(err);
    /* The arena packs its allocations: ask for room to align the array as
     * malloc would. */
    char *raw = corm__arena_alloc(&r->scratch, n * size + align - 1);
    if (!raw)
        return corm__err_nomem(err);
    char *array = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    memset(array, 0, n * size);
    size_t done = 0;
    rc = run(r, m, array, n, size, &done, err);
    if (rc < 0)
        return rc;   /* the array stays in r's memory, unused, until r is freed */
    *rows = array;
    *nrows = n;
    return CORM_OK;
}
