/*
 * json.c - a strict JSON reader that reports what it reads to a sink, so
 * each front end builds its own host values (dicts, Lua tables) in one
 * pass with no intermediate tree. json and jsonb values arrive as text; a
 * generic decoder followed by a conversion would walk every value twice.
 *
 * Iterative: nesting lives in a small byte stack, so hostile input cannot
 * exhaust the C stack; CORM_JSON_MAX_DEPTH bounds it.
 */
#include "corm_int.h"

#include <string.h>

enum { IN_ARRAY = 1, IN_OBJECT = 2 };

typedef struct reader {
    const char *start, *p, *end;
    const corm_json_sink *sink;
    void *ud;
    corm_error *err;
    corm__alloc alloc;
    char *buf;          /* unescaped strings that need it */
    size_t cap;
    char small[256];
} reader;

static int fail(reader *r, const char *what)
{
    return corm__err(r->err, CORM_EDATA, "invalid JSON at offset %zu: %s",
                     (size_t)(r->p - r->start), what);
}

static void skip_space(reader *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads a string at r->p (the opening quote) and passes it to emit (the
 * sink's string or key). Text without escapes is passed in place. */
static int read_string(reader *r, int (*emit)(void *, const char *, size_t))
{
    const char *start = ++r->p;
    const char *q = start;
    while (q < r->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    if (q < r->end && *q == '"') {
        r->p = q + 1;
        return emit(r->ud, start, (size_t)(q - start));
    }
    /* Escapes (or an error): unescape into the buffer. The output is never
     * longer than the input (\uXXXX is 6 bytes for at most 3, a pair 12
     * for 4), so one size check up front suffices. */
    size_t need = (size_t)(r->end - start);
    if (need > r->cap) {
        char *nb = corm__malloc(&r->alloc, need);
        if (!nb)
            return corm__err_nomem(r->err);
        if (r->buf != r->small)
            corm__free(&r->alloc, r->buf, r->cap);
        r->buf = nb;
        r->cap = need;
    }
    size_t n = (size_t)(q - start);
    memcpy(r->buf, start, n);
    r->p = q;
    for (;;) {
        if (r->p >= r->end)
            return fail(r, "unterminated string");
        unsigned char ch = (unsigned char)*r->p;
        if (ch == '"') {
            r->p++;
            return emit(r->ud, r->buf, n);
        }
        if (ch < 0x20)
            return fail(r, "control character in a string");
        if (ch != '\\') {
            r->buf[n++] = (char)ch;
            r->p++;
            continue;
        }
        if (r->end - r->p < 2)
            return fail(r, "unterminated string");
        char e = r->p[1];
        r->p += 2;
        switch (e) {
        case '"': r->buf[n++] = '"'; break;
        case '\\': r->buf[n++] = '\\'; break;
        case '/': r->buf[n++] = '/'; break;
        case 'b': r->buf[n++] = '\b'; break;
        case 'f': r->buf[n++] = '\f'; break;
        case 'n': r->buf[n++] = '\n'; break;
        case 'r': r->buf[n++] = '\r'; break;
        case 't': r->buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (r->end - r->p < 4 || hex4(r->p, &cp) < 0)
                return fail(r, "bad \\u escape");
            r->p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(r, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
                    hex4(r->p + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(r, "high surrogate without its low half");
                r->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(r->buf + n, cp);
            break;
        }
        default:
            return fail(r, "bad escape");
        }
    }
}

static bool is_digit(const reader *r, const char *p)
{
    return p < r->end && *p >= '0' && *p <= '9';
}

static int read_number(reader *r)
{
    const char *s = r->p, *p = s;
    bool integer = true;
    if (p < r->end && *p == '-')
        p++;
    if (!is_digit(r, p))
        return fail(r, "bad number");
    if (*p == '0')
        p++;
    else
        while (is_digit(r, p))
            p++;
    if (p < r->end && *p == '.') {
        integer = false;
        p++;
        if (!is_digit(r, p))
            return fail(r, "bad number");
        while (is_digit(r, p))
            p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        if (p < r->end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(r, p))
            return fail(r, "bad number");
        while (is_digit(r, p))
            p++;
    }
    r->p = p;
    return r->sink->number(r->ud, s, (size_t)(p - s), integer);
}

static int read_word(reader *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return fail(r, "unexpected character");
    r->p += n;
    return CORM_OK;
}

/* A member's key and its colon; the value follows. */
static int read_key(reader *r)
{
    skip_space(r);
    if (r->p >= r->end || *r->p != '"')
        return fail(r, "expected a key");
    int rc = read_string(r, r->sink->key);
    if (rc < 0)
        return rc;
    skip_space(r);
    if (r->p >= r->end || *r->p != ':')
        return fail(r, "expected ':'");
    r->p++;
    return CORM_OK;
}

static int parse(reader *r)
{
    const corm_json_sink *s = r->sink;
    unsigned char stack[CORM_JSON_MAX_DEPTH];
    int depth = 0, rc;
    for (;;) {
        /* A value. */
        skip_space(r);
        if (r->p >= r->end)
            return fail(r, "unexpected end");
        switch (*r->p) {
        case '{':
        case '[': {
            bool obj = *r->p == '{';
            if (depth == CORM_JSON_MAX_DEPTH)
                return fail(r, "nested too deeply");
            r->p++;
            if ((rc = obj ? s->begin_object(r->ud) : s->begin_array(r->ud)) < 0)
                return rc;
            stack[depth++] = obj ? IN_OBJECT : IN_ARRAY;
            skip_space(r);
            if (r->p < r->end && *r->p == (obj ? '}' : ']')) {
                r->p++;
                depth--;
                if ((rc = obj ? s->end_object(r->ud) : s->end_array(r->ud)) < 0)
                    return rc;
                break;   /* an empty container is a complete value */
            }
            if (obj && (rc = read_key(r)) < 0)
                return rc;
            continue;   /* the first member's value */
        }
        case '"':
            rc = read_string(r, s->string);
            break;
        case 't':
            if ((rc = read_word(r, "true", 4)) == CORM_OK)
                rc = s->boolean(r->ud, 1);
            break;
        case 'f':
            if ((rc = read_word(r, "false", 5)) == CORM_OK)
                rc = s->boolean(r->ud, 0);
            break;
        case 'n':
            if ((rc = read_word(r, "null", 4)) == CORM_OK)
                rc = s->null(r->ud);
            break;
        default:
            if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
                rc = read_number(r);
            else
                rc = fail(r, "unexpected character");
            break;
        }
        if (rc < 0)
            return rc;
        /* After a complete value: close containers, or go to the next
         * member. */
        for (;;) {
            skip_space(r);
            if (depth == 0) {
                if (r->p != r->end)
                    return fail(r, "trailing characters");
                return CORM_OK;
            }
            if (r->p >= r->end)
                return fail(r, "unexpected end");
            bool obj = stack[depth - 1] == IN_OBJECT;
            char ch = *r->p++;
            if (ch == (obj ? '}' : ']')) {
                depth--;
                if ((rc = obj ? s->end_object(r->ud) : s->end_array(r->ud)) < 0)
                    return rc;
                continue;
            }
            if (ch != ',')
                return fail(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            if (obj && (rc = read_key(r)) < 0)
                return rc;
            break;   /* the next value */
        }
    }
}

int corm_json_parse(const char *text, size_t len, const corm_json_sink *sink, void *ud,
                    corm_error *err)
{
    corm__check(text != NULL || len == 0, err, "text is NULL");
    corm__check(sink != NULL && sink->null && sink->boolean && sink->number && sink->string &&
                    sink->begin_array && sink->end_array && sink->begin_object &&
                    sink->key && sink->end_object,
                err, "sink is NULL or incomplete");
    reader r;
    r.start = r.p = text ? text : "";
    r.end = r.p + len;
    r.sink = sink;
    r.ud = ud;
    r.err = err;
    corm__alloc_init(&r.alloc, NULL);
    r.buf = r.small;
    r.cap = sizeof r.small;
    int rc = parse(&r);
    if (r.buf != r.small)
        corm__free(&r.alloc, r.buf, r.cap);
    return rc;
}
