/*
 * codec_array.c - n-dimensional arrays in binary: the decoded view and its
 * walk (corm_array_*), and arrays built from C values for parameters.
 *
 * Wire form: int32 ndim, int32 flags (1: has NULLs), uint32 element type,
 * ndim pairs of int32 (length, lower bound), then each item in row-major
 * order as int32 length (-1: NULL) and that many bytes.
 */
#include "corm_int.h"

#include <string.h>

/* PostgreSQL's MaxArraySize: most items an array may hold. */
#define MAX_ARRAY_ITEMS ((size_t)0x3FFFFFFF / 8)

typedef struct array_hdr {
    int ndim;
    uint32_t elem;
    bool has_nulls;
    int32_t dims[CORM_ARRAY_MAXDIM];
    int32_t lbounds[CORM_ARRAY_MAXDIM];
    size_t nitems;
    const char *body, *end;
} array_hdr;

/* Reads the header and walks every item's length, so that later walks can
 * trust the layout: CORM_EDATA for anything that does not add up. */
static int parse(const char *b, size_t n, array_hdr *h, corm_error *err)
{
    if (n < 12)
        return corm__err(err, CORM_EDATA, "malformed array: %zu bytes, header needs 12", n);
    int32_t ndim = (int32_t)corm__get_u32(b);
    uint32_t flags = corm__get_u32(b + 4);
    h->elem = corm__get_u32(b + 8);
    if (ndim < 0 || ndim > CORM_ARRAY_MAXDIM)
        return corm__err(err, CORM_EDATA, "malformed array: %d dimensions", (int)ndim);
    if (flags > 1)
        return corm__err(err, CORM_EDATA, "malformed array: flags %u", (unsigned)flags);
    h->ndim = ndim;
    if (n - 12 < (size_t)ndim * 8)
        return corm__err(err, CORM_EDATA, "malformed array: truncated dimensions");
    const char *p = b + 12, *end = b + n;
    /* Every item takes at least its 4-byte length, which bounds the count
     * by the bytes present before any product can overflow. */
    size_t room = (n - 12 - (size_t)ndim * 8) / 4;
    size_t nitems = ndim > 0 ? 1 : 0;
    bool empty = false;
    memset(h->dims, 0, sizeof h->dims);
    memset(h->lbounds, 0, sizeof h->lbounds);
    for (int i = 0; i < ndim; i++, p += 8) {
        int32_t dim = (int32_t)corm__get_u32(p);
        int32_t lb = (int32_t)corm__get_u32(p + 4);
        if (dim < 0)
            return corm__err(err, CORM_EDATA, "malformed array: dimension %d has length %d",
                             i + 1, (int)dim);
        if ((int64_t)lb + dim - 1 > INT32_MAX)
            return corm__err(err, CORM_EDATA, "malformed array: upper bound overflows");
        h->dims[i] = dim;
        h->lbounds[i] = lb;
        if (dim == 0)
            empty = true;
        else if (!empty && nitems > room / (size_t)dim)
            return corm__err(err, CORM_EDATA, "malformed array: more items than bytes");
        else
            nitems *= (size_t)dim;
    }
    if (empty)
        nitems = 0;
    h->body = p;
    h->has_nulls = false;
    for (size_t i = 0; i < nitems; i++) {
        if (end - p < 4)
            return corm__err(err, CORM_EDATA, "malformed array: item %zu truncated", i);
        int32_t len = (int32_t)corm__get_u32(p);
        p += 4;
        if (len == -1) {
            h->has_nulls = true;
            continue;
        }
        if (len < 0 || end - p < len)
            return corm__err(err, CORM_EDATA, "malformed array: item %zu has length %d", i,
                             (int)len);
        p += len;
    }
    if (p != end)
        return corm__err(err, CORM_EDATA, "malformed array: %zu bytes after the last item",
                         (size_t)(end - p));
    h->nitems = nitems;
    h->end = end;
    return CORM_OK;
}

int corm__dec_array(const char *b, size_t n, uint32_t oid, corm_value *o, corm__arena *s,
                    corm_error *err)
{
    (void)oid;
    array_hdr h;
    int rc = parse(b, n, &h, err);
    if (rc < 0)
        return rc;
    o->kind = CORM_ARRAY;
    o->v.array.ptr = b;
    o->v.array.len = n;
    o->v.array.elem_oid = h.elem;
    o->v.array.ctx_ = s;
    return CORM_OK;
}

/* ---- the walk ---------------------------------------------------------- */

int corm_array_init(corm_array *a, const corm_value *v, corm_error *err)
{
    corm__check(a != NULL && v != NULL, err, "NULL argument");
    memset(a, 0, sizeof *a);
    const char *b;
    size_t n;
    const void *ctx = NULL;
    if (v->kind == CORM_ARRAY) {
        b = v->v.array.ptr;
        n = v->v.array.len;
        ctx = v->v.array.ctx_;
    } else if (v->kind == CORM_RAW) {
        b = v->v.str.ptr;
        n = v->v.str.len;
    } else {
        return corm__err(err, CORM_EMISUSE, "value of kind %d is not an array", (int)v->kind);
    }
    corm__check(b != NULL || n == 0, err, "array bytes are NULL");
    array_hdr h;
    int rc = parse(b ? b : "", n, &h, err);
    if (rc < 0)
        return rc;
    a->ndim = h.ndim;
    a->elem_oid = h.elem;
    memcpy(a->dims, h.dims, sizeof a->dims);
    memcpy(a->lbounds, h.lbounds, sizeof a->lbounds);
    a->nitems = h.nitems;
    a->has_nulls = h.has_nulls;
    a->body_ = a->pos_ = h.body;
    a->end_ = h.end;
    a->next_ = 0;
    a->decode_ = (void (*)(void))corm__decoder_for(h.elem);
    a->ctx_ = ctx;
    return CORM_OK;
}

/* Reads the length of the item at a->pos_, bounds-checked again: the
 * struct is the caller's, and a stale one must not read astray. */
static int item_at(corm_array *a, const char **data, int32_t *len, corm_error *err)
{
    if (!a->pos_ || a->end_ - a->pos_ < 4)
        return corm__err(err, CORM_EDATA, "array walk past its bytes");
    int32_t l = (int32_t)corm__get_u32(a->pos_);
    if (l < -1 || (l >= 0 && a->end_ - (a->pos_ + 4) < l))
        return corm__err(err, CORM_EDATA, "array item %zu has length %d", a->next_, (int)l);
    *data = a->pos_ + 4;
    *len = l;
    a->pos_ += 4 + (l > 0 ? l : 0);
    a->next_++;
    return CORM_OK;
}

int corm_array_next(corm_array *a, corm_value *out, corm_error *err)
{
    corm__check(a != NULL && out != NULL, err, "NULL argument");
    corm__check(a->decode_ != NULL, err, "array walk not initialised");
    if (a->next_ >= a->nitems)
        return 0;
    const char *data = NULL;
    int32_t len = -1;
    int rc = item_at(a, &data, &len, err);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->oid = a->elem_oid;
    if (len < 0) {
        out->kind = CORM_NULL;
        return 1;
    }
    corm__decode_fn *dec = (corm__decode_fn *)a->decode_;
    /* Element text (numerics) goes to the result the array came from. */
    rc = dec(data, (size_t)len, a->elem_oid, out, (corm__arena *)a->ctx_, err);
    return rc < 0 ? rc : 1;
}

int corm_array_get(corm_array *a, size_t i, corm_value *out, corm_error *err)
{
    corm__check(a != NULL && out != NULL, err, "NULL argument");
    corm__check(a->decode_ != NULL, err, "array walk not initialised");
    if (i >= a->nitems)
        return corm__err(err, CORM_EMISUSE, "array item %zu out of range (%zu items)", i,
                         a->nitems);
    if (i < a->next_) {
        a->pos_ = a->body_;
        a->next_ = 0;
    }
    while (a->next_ < i) {
        const char *data;
        int32_t len;
        int rc = item_at(a, &data, &len, err);
        if (rc < 0)
            return rc;
    }
    int rc = corm_array_next(a, out, err);
    return rc < 0 ? rc : CORM_OK;
}

/* ---- encoding ---------------------------------------------------------- */

/* The type a scalar of this kind is sent as when nothing says otherwise. */
static uint32_t default_oid(const corm_value *v)
{
    if (v->oid)
        return v->oid;
    switch (v->kind) {
    case CORM_BOOL: return CORM_OID_BOOL;
    case CORM_INT: return CORM_OID_INT8;
    case CORM_FLOAT: return CORM_OID_FLOAT8;
    case CORM_TEXT: return CORM_OID_TEXT;
    case CORM_BYTES: return CORM_OID_BYTEA;
    case CORM_NUMERIC: return CORM_OID_NUMERIC;
    case CORM_DATE: return CORM_OID_DATE;
    case CORM_TIME: return CORM_OID_TIME;
    case CORM_TIMETZ: return CORM_OID_TIMETZ;
    case CORM_TIMESTAMP: return CORM_OID_TIMESTAMP;
    case CORM_TIMESTAMPTZ: return CORM_OID_TIMESTAMPTZ;
    case CORM_INTERVAL: return CORM_OID_INTERVAL;
    case CORM_UUID: return CORM_OID_UUID;
    case CORM_JSON: return CORM_OID_JSONB;
    default: return 0;
    }
}

/* Re-files an item's error under its index, keeping the class. */
static int item_error(corm_error *err, size_t k, corm_error *inner, int rc)
{
    if (rc == CORM_ENOMEM)
        corm__err_nomem(err);
    else
        corm__err(err, rc, "array item %zu: %s", k,
                  inner->message ? inner->message : corm_strerror(rc));
    corm_error_clear(inner);
    return rc;
}

static int enc_wire_array(const corm_value *v, corm__buf *out, const corm__alloc *a,
                          uint32_t *oid, corm_error *err)
{
    corm__check(v->v.array.ptr != NULL || v->v.array.len == 0, err, "array bytes are NULL");
    array_hdr h;
    int rc = parse(v->v.array.ptr ? v->v.array.ptr : "", v->v.array.len, &h, err);
    if (rc < 0)
        return rc;
    uint32_t want_elem = corm__array_elem_oid(v->oid);
    if (v->oid && want_elem && want_elem != h.elem)
        return corm__err(err, CORM_EDATA, "array of type %u sent as type %u",
                         (unsigned)h.elem, (unsigned)v->oid);
    *oid = v->oid ? v->oid : corm__array_oid_of(h.elem);
    if (v->v.array.len && corm__buf_put(out, a, v->v.array.ptr, v->v.array.len) < 0)
        return corm__err_nomem(err);
    return CORM_OK;
}

int corm__enc_array(const corm_value *v, corm__buf *out, const corm__alloc *a, uint32_t *oid,
                    corm_error *err)
{
    if (v->kind == CORM_ARRAY)
        return enc_wire_array(v, out, a, oid, err);

    const corm_value *items = v->v.items.items;
    const int32_t *dims = v->v.items.dims, *lbounds = v->v.items.lbounds;
    int ndim = v->v.items.ndim;
    if (ndim < 0 || ndim > CORM_ARRAY_MAXDIM)
        return corm__err(err, CORM_EDATA, "array of %d dimensions (at most %d)", ndim,
                         CORM_ARRAY_MAXDIM);
    if (ndim > 0 && !dims)
        return corm__err(err, CORM_EDATA, "array of %d dimensions without dims", ndim);
    size_t count = ndim > 0 ? 1 : 0;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return corm__err(err, CORM_EDATA, "array dimension %d has length %d", i + 1,
                             (int)dims[i]);
        int32_t lb = lbounds ? lbounds[i] : 1;
        if ((int64_t)lb + dims[i] - 1 > INT32_MAX)
            return corm__err(err, CORM_EDATA, "array dimension %d: upper bound overflows",
                             i + 1);
        if (dims[i] && count > MAX_ARRAY_ITEMS / (size_t)dims[i])
            return corm__err(err, CORM_EDATA, "array has too many items (at most %zu)",
                             MAX_ARRAY_ITEMS);
        count *= (size_t)dims[i];
    }
    if (count && !items)
        return corm__err(err, CORM_EDATA, "array items are NULL");

    uint32_t elem = v->v.items.elem_oid;
    uint32_t from_type = corm__array_elem_oid(v->oid);
    if (v->oid && elem == 0) {
        if (!from_type)
            return corm__err(err, CORM_EDATA,
                             "array type %u is not built in: give its elem_oid",
                             (unsigned)v->oid);
        elem = from_type;
    }
    if (from_type && elem != from_type)
        return corm__err(err, CORM_EDATA, "array type %u does not hold items of type %u",
                         (unsigned)v->oid, (unsigned)elem);
    for (size_t k = 0; elem == 0 && k < count; k++)
        if (items[k].kind != CORM_NULL)
            elem = default_oid(&items[k]);
    if (elem == 0)
        elem = CORM_OID_TEXT;
    /* Types not built in get their items as given; text is an enum's
     * binary form. */
    bool builtin = corm__array_oid_of(elem) != 0;

    int rc = corm__put_be(out, a, count ? (uint32_t)ndim : 0, 4, err);
    if (rc == 0)
        rc = corm__put_be(out, a, 0, 4, err);
    if (rc == 0)
        rc = corm__put_be(out, a, elem, 4, err);
    size_t flags_at = out->len - 8;
    for (int i = 0; rc == 0 && count && i < ndim; i++) {
        rc = corm__put_be(out, a, (uint32_t)dims[i], 4, err);
        if (rc == 0)
            rc = corm__put_be(out, a, (uint32_t)(lbounds ? lbounds[i] : 1), 4, err);
    }
    if (rc < 0)
        return rc;

    bool has_nulls = false;
    for (size_t k = 0; k < count; k++) {
        const corm_value *it = &items[k];
        if (it->kind == CORM_NULL) {
            has_nulls = true;
            if ((rc = corm__put_be(out, a, UINT32_MAX, 4, err)) < 0)
                return rc;
            continue;
        }
        if (it->kind == CORM_ARRAY || it->kind == CORM_ARRAY_ITEMS)
            return corm__err(err, CORM_EDATA,
                             "array item %zu is an array: give the outer array dims", k);
        if (it->oid && it->oid != elem)
            return corm__err(err, CORM_EDATA, "array item %zu has type %u, the array holds %u",
                             k, (unsigned)it->oid, (unsigned)elem);
        size_t len_at = out->len;
        if ((rc = corm__put_be(out, a, 0, 4, err)) < 0)
            return rc;
        corm_error inner = CORM_ERROR_INIT;
        if (!builtin && it->kind == CORM_TEXT) {
            if (it->v.str.len && (!it->v.str.ptr || memchr(it->v.str.ptr, 0, it->v.str.len)))
                return corm__err(err, CORM_EDATA, "array item %zu: text contains a NUL byte",
                                 k);
            if (it->v.str.len && corm__buf_put(out, a, it->v.str.ptr, it->v.str.len) < 0)
                return corm__err_nomem(err);
        } else {
            corm_value tmp = *it;
            tmp.oid = elem;
            uint32_t got;
            int format;
            bool is_null;
            rc = corm__encode(&tmp, out, a, &got, &format, &is_null, err ? &inner : NULL);
            if (rc < 0)
                return item_error(err, k, &inner, rc);
            if (format != 1)
                return corm__err(err, CORM_EDATA,
                                 "array item %zu: a value of kind %d cannot be sent in binary "
                                 "as type %u", k, (int)it->kind, (unsigned)elem);
        }
        size_t len = out->len - len_at - 4;
        if (len > INT32_MAX)
            return corm__err(err, CORM_EDATA, "array item %zu is too large", k);
        corm__put_u32(out->data + len_at, (uint32_t)len);
    }
    corm__put_u32(out->data + flags_at, has_nulls ? 1 : 0);
    *oid = v->oid ? v->oid : corm__array_oid_of(elem);
    return CORM_OK;
}
