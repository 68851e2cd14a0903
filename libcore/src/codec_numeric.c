/*
 * codec_numeric.c - numeric in binary: base-10000 digits <-> the exact
 * decimal text PostgreSQL prints and reads.
 *
 * Wire form: int16 ndigits, int16 weight (base-10000 exponent of the first
 * digit), uint16 sign, uint16 dscale (digits shown after the point), then
 * ndigits uint16 digits 0..9999, most significant first.
 */
#include "corm_int.h"

#include <stdio.h>
#include <string.h>

#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000
#define NUMERIC_DSCALE_MAX 0x3FFF
#define NBASE 10000
#define DEC_DIGITS 4

static int malformed(corm_error *err, const char *why)
{
    return corm__err(err, CORM_EDATA, "malformed numeric value: %s", why);
}

static void put_static(corm_value *o, const char *s)
{
    o->kind = CORM_NUMERIC;
    o->v.str.ptr = s;
    o->v.str.len = strlen(s);
}

/* Writes the 4 decimal digits of group value g at p. */
static void put_group(char *p, unsigned g)
{
    p[0] = (char)('0' + g / 1000);
    p[1] = (char)('0' + g / 100 % 10);
    p[2] = (char)('0' + g / 10 % 10);
    p[3] = (char)('0' + g % 10);
}

int corm__dec_numeric(const char *b, size_t n, uint32_t oid, corm_value *o,
                      corm__arena *scratch, corm_error *err)
{
    (void)oid;
    if (n < 8)
        return malformed(err, "shorter than its header");
    size_t ndigits = corm__get_u16(b);
    int weight = (int16_t)corm__get_u16(b + 2);
    unsigned sign = corm__get_u16(b + 4);
    unsigned dscale = corm__get_u16(b + 6);
    if (n != 8 + 2 * ndigits)
        return corm__err(err, CORM_EDATA,
                         "malformed numeric value: %zu bytes for %zu digits", n, ndigits);
    switch (sign) {
    case NUMERIC_NAN:
        put_static(o, "NaN");
        return CORM_OK;
    case NUMERIC_PINF:
        put_static(o, "Infinity");
        return CORM_OK;
    case NUMERIC_NINF:
        put_static(o, "-Infinity");
        return CORM_OK;
    case NUMERIC_POS:
    case NUMERIC_NEG:
        break;
    default:
        return malformed(err, "invalid sign");
    }
    if (dscale > NUMERIC_DSCALE_MAX)
        return malformed(err, "invalid scale");
    const char *dig = b + 8;
    for (size_t i = 0; i < ndigits; i++)
        if (corm__get_u16(dig + 2 * i) >= NBASE)
            return malformed(err, "digit out of range");

    /* PostgreSQL's get_str_from_var: the integer part's groups (the first
     * without leading zeros; "0" when weight < 0), then dscale fraction
     * digits, digits past the stored ones being zeros. */
    size_t intlen = weight >= 0 ? (size_t)(weight + 1) * DEC_DIGITS : 1;
    size_t fraclen = dscale ? 1 + dscale + DEC_DIGITS : 0;
    size_t cap = 1 + intlen + fraclen + 1;
    char *buf = corm__arena_alloc(scratch, cap);
    if (!buf)
        return corm__err_nomem(err);
    char *start = buf + 1, *p = start;
    bool nonzero = false;
    long d = 0; /* index into dig of the group being printed */
    if (weight < 0) {
        *p++ = '0';
        d = weight + 1;
    } else {
        for (d = 0; d <= weight; d++) {
            unsigned g = (size_t)d < ndigits ? corm__get_u16(dig + 2 * d) : 0;
            nonzero |= g != 0;
            put_group(p, g);
            p += 4;
        }
        /* Leading zeros go, as numeric_out drops them from the first group;
         * a sloppy sender's leading zero groups go with them. */
        char *q = start;
        while (q < p - 1 && *q == '0')
            q++;
        memmove(start, q, (size_t)(p - q));
        p -= q - start;
    }
    if (dscale) {
        *p++ = '.';
        char *frac = p;
        for (unsigned i = 0; i < dscale; i += DEC_DIGITS, d++) {
            unsigned g = d >= 0 && (size_t)d < ndigits ? corm__get_u16(dig + 2 * d) : 0;
            put_group(p, g);
            p += 4;
        }
        p = frac + dscale;
        for (char *q = frac; q < p; q++)
            nonzero |= *q != '0';
    }
    *p = 0;
    /* The server never sends a negative zero; a malformed one prints
     * without its sign, so the text always parses back to these bytes. */
    if (sign == NUMERIC_NEG && nonzero) {
        *--start = '-';
    }
    o->kind = CORM_NUMERIC;
    o->v.str.ptr = start;
    o->v.str.len = (size_t)(p - start);
    return CORM_OK;
}

/* ---- encoding ---------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool ieq(const char *s, size_t n, const char *word)
{
    size_t m = strlen(word);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    return true;
}

static int put_header(corm__buf *out, const corm__alloc *a, unsigned ndigits, int weight,
                      unsigned sign, unsigned dscale, corm_error *err)
{
    if (corm__buf_reserve(out, a, 8 + 2 * (size_t)ndigits) < 0)
        return corm__err_nomem(err);
    char *p = out->data + out->len;
    corm__put_u16(p, (uint16_t)ndigits);
    corm__put_u16(p + 2, (uint16_t)(int16_t)weight);
    corm__put_u16(p + 4, (uint16_t)sign);
    corm__put_u16(p + 6, (uint16_t)dscale);
    memset(p + 8, 0, 2 * (size_t)ndigits);
    out->len += 8 + 2 * (size_t)ndigits;
    return CORM_OK;
}

static int64_t floor_div4(int64_t x)
{
    return x >= 0 ? x / 4 : -((-x + 3) / 4);
}

/*
 * Parses PostgreSQL's numeric input syntax: optional blanks, "NaN",
 * [+-]"Infinity"/"inf" (any case), or [+-]digits[.digits][e[+-]digits] with
 * at least one digit, optional blanks. The scale is the count of fraction
 * digits less the exponent (at least 0), as numeric_in computes it, so the
 * server prints exactly what its own parser would have made of the text.
 */
int corm__enc_numeric_str(const char *s, size_t n, corm__buf *out, const corm__alloc *a,
                          corm_error *err)
{
    size_t i = 0, end = n;
    while (i < end && is_space(s[i]))
        i++;
    while (end > i && is_space(s[end - 1]))
        end--;
    const char *t = s + i;
    size_t tn = end - i;
    if (ieq(t, tn, "nan"))
        return put_header(out, a, 0, 0, NUMERIC_NAN, 0, err);
    if (ieq(t, tn, "infinity") || ieq(t, tn, "+infinity") || ieq(t, tn, "inf") ||
        ieq(t, tn, "+inf"))
        return put_header(out, a, 0, 0, NUMERIC_PINF, 0, err);
    if (ieq(t, tn, "-infinity") || ieq(t, tn, "-inf"))
        return put_header(out, a, 0, 0, NUMERIC_NINF, 0, err);

    unsigned sign = NUMERIC_POS;
    if (i < end && (s[i] == '+' || s[i] == '-')) {
        if (s[i] == '-')
            sign = NUMERIC_NEG;
        i++;
    }
    size_t int_start = i;
    while (i < end && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t ni = i - int_start, frac_start = i, nf = 0;
    if (i < end && s[i] == '.') {
        frac_start = ++i;
        while (i < end && s[i] >= '0' && s[i] <= '9')
            i++;
        nf = i - frac_start;
    }
    if (ni + nf == 0)
        return corm__err(err, CORM_EDATA, "invalid numeric text \"%.*s\"",
                         (int)(n > 64 ? 64 : n), s);
    int64_t exp = 0;
    if (i < end && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool neg = false;
        if (i < end && (s[i] == '+' || s[i] == '-'))
            neg = s[i++] == '-';
        size_t e0 = i;
        while (i < end && s[i] >= '0' && s[i] <= '9') {
            /* Past a billion the value is out of range anyway. */
            if (exp < 1000000000)
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (i == e0)
            return corm__err(err, CORM_EDATA, "invalid numeric text \"%.*s\": bad exponent",
                             (int)(n > 64 ? 64 : n), s);
        if (neg)
            exp = -exp;
    }
    if (i != end)
        return corm__err(err, CORM_EDATA, "invalid numeric text \"%.*s\"",
                         (int)(n > 64 ? 64 : n), s);

    int64_t dscale = (int64_t)nf - exp;
    if (dscale < 0)
        dscale = 0;
    if (dscale > NUMERIC_DSCALE_MAX)
        return corm__err(err, CORM_EDATA,
                         "numeric text has %lld digits after the point (at most %d)",
                         (long long)dscale, NUMERIC_DSCALE_MAX);

    /* Digit k of the concatenated integer and fraction digits has decimal
     * weight dweight0 - k. */
    size_t nd = ni + nf;
#define DIGIT(k) ((k) < ni ? s[int_start + (k)] : s[frac_start + (k) - ni])
    size_t kf = 0, kl = nd;
    while (kf < nd && DIGIT(kf) == '0')
        kf++;
    if (kf == nd)
        return put_header(out, a, 0, 0, NUMERIC_POS, (unsigned)dscale, err);
    while (DIGIT(kl - 1) == '0')
        kl--;
    int64_t dweight0 = (int64_t)ni - 1 + exp;
    int64_t wfirst = floor_div4(dweight0 - (int64_t)kf);
    int64_t wlast = floor_div4(dweight0 - (int64_t)(kl - 1));
    if (wfirst > INT16_MAX)
        return corm__err(err, CORM_EDATA, "numeric text is out of range (too large)");
    if (wfirst - wlast + 1 > UINT16_MAX || wlast < INT16_MIN)
        return corm__err(err, CORM_EDATA, "numeric text has too many digits");
    unsigned ndigits = (unsigned)(wfirst - wlast + 1);
    size_t base = out->len;
    int rc = put_header(out, a, ndigits, (int)wfirst, sign, (unsigned)dscale, err);
    if (rc < 0)
        return rc;
    static const unsigned pow10[4] = {1, 10, 100, 1000};
    char *groups = out->data + base + 8;
    for (size_t k = kf; k < kl; k++) {
        int64_t dw = dweight0 - (int64_t)k;
        int64_t g = floor_div4(dw);
        size_t idx = (size_t)(wfirst - g);
        unsigned val = corm__get_u16(groups + 2 * idx) +
                       (unsigned)(DIGIT(k) - '0') * pow10[dw - 4 * g];
        corm__put_u16(groups + 2 * idx, (uint16_t)val);
    }
#undef DIGIT
    return CORM_OK;
}

int corm__enc_numeric_int(int64_t i, corm__buf *out, const corm__alloc *a, corm_error *err)
{
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%lld", (long long)i);
    return corm__enc_numeric_str(buf, (size_t)len, out, a, err);
}
