/*
 * model.c - the model registry: models, columns and their PostgreSQL
 * types, keys and constraints; and the helpers every SQL writer shares
 * (names, quoting, literals, scanning developer-written SQL).
 */
#include "corm_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ----------------------------------------------------------- */

struct corm__rchunk {
    corm__rchunk *next;
    size_t size, used;
    /* data follows, 16-aligned */
};

#define CHUNK_HDR ((sizeof(corm__rchunk) + 15) & ~(size_t)15)

void *corm__region_alloc(corm__region *ar, const corm__alloc *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    corm__rchunk *c = ar->head;
    if (!c || c->size - c->used < n) {
        size_t want = ar->next_size ? ar->next_size : 1024;
        if (want < n)
            want = n;
        c = corm__malloc(a, CHUNK_HDR + want);
        if (!c)
            return NULL;
        c->size = want;
        c->used = 0;
        c->next = ar->head;
        ar->head = c;
        if (ar->next_size < 65536)
            ar->next_size = want * 2;
    }
    void *p = (char *)c + CHUNK_HDR + c->used;
    c->used += n;
    return p;
}

char *corm__region_memdup(corm__region *ar, const corm__alloc *a, const void *p, size_t n)
{
    char *d = corm__region_alloc(ar, a, n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

char *corm__region_strdup(corm__region *ar, const corm__alloc *a, const char *s)
{
    return s ? corm__region_memdup(ar, a, s, strlen(s)) : NULL;
}

void corm__region_free(corm__region *ar, const corm__alloc *a)
{
    corm__rchunk *c = ar->head;
    while (c) {
        corm__rchunk *next = c->next;
        corm__free(a, c, CHUNK_HDR + c->size);
        c = next;
    }
    ar->head = NULL;
    ar->next_size = 0;
}

/* Grows an arena array to hold one more element (old contents copied). */
static int region_grow(corm__region *ar, const corm__alloc *a, void **arr, int *cap, int n,
                      size_t elem)
{
    if (n < *cap)
        return CORM_OK;
    int ncap = *cap ? *cap * 2 : 4;
    void *p = corm__region_alloc(ar, a, (size_t)ncap * elem);
    if (!p)
        return CORM_ENOMEM;
    if (n)
        memcpy(p, *arr, (size_t)n * elem);
    *arr = p;
    *cap = ncap;
    return CORM_OK;
}

/* ---- buffers and quoting --------------------------------------------- */

int corm__buf_puts(corm__buf *b, const corm__alloc *a, const char *s)
{
    return corm__buf_put(b, a, s, strlen(s));
}

int corm__buf_printf(corm__buf *b, const corm__alloc *a, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CORM_EINTERNAL;
    if ((size_t)n < sizeof tmp)
        return corm__buf_put(b, a, tmp, (size_t)n);
    if (corm__buf_reserve(b, a, (size_t)n + 1) < 0)
        return CORM_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CORM_OK;
}

int corm__buf_ident(corm__buf *b, const corm__alloc *a, const char *s)
{
    size_t n = strlen(s), extra = 2;
    for (size_t i = 0; i < n; i++)
        extra += s[i] == '"';
    if (corm__buf_reserve(b, a, n + extra) < 0)
        return CORM_ENOMEM;
    char *p = b->data + b->len;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            *p++ = '"';
        *p++ = s[i];
    }
    *p++ = '"';
    b->len = (size_t)(p - b->data);
    return CORM_OK;
}

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length, or 0
 * when invalid (overlong, surrogate, past U+10FFFF, truncated). */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < (size_t)len)
        return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

bool corm__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_next(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += (size_t)n;
    }
    return true;
}

int corm__buf_literal(corm__buf *b, const corm__alloc *a, const char *s, size_t len,
                      bool dollar_safe)
{
    bool plain = true;
    for (size_t i = 0; i < len && plain; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7F || c == '\\' || (dollar_safe && c == '$'))
            plain = false;
    }
    if (plain) {
        /* Printable ASCII without backslashes: the same under either
         * setting of standard_conforming_strings. */
        if (corm__buf_put(b, a, "'", 1) < 0)
            return CORM_ENOMEM;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '\'' && corm__buf_put(b, a, "'", 1) < 0)
                return CORM_ENOMEM;
            if (corm__buf_put(b, a, s + i, 1) < 0)
                return CORM_ENOMEM;
        }
        return corm__buf_put(b, a, "'", 1);
    }
    if (corm__buf_put(b, a, "E'", 2) < 0)
        return CORM_ENOMEM;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_next(p + i, len - i, &cp);
        if (n == 0 || cp == 0)
            return CORM_EDATA;
        i += (size_t)n;
        int rc;
        if (cp == '\\')
            rc = corm__buf_put(b, a, "\\\\", 2);
        else if (cp == '\'')
            rc = corm__buf_put(b, a, "\\'", 2);
        else if (cp >= 0x20 && cp < 0x7F && !(dollar_safe && cp == '$')) {
            char ch = (char)cp;
            rc = corm__buf_put(b, a, &ch, 1);
        } else if (cp <= 0xFFFF)
            rc = corm__buf_printf(b, a, "\\u%04X", (unsigned)cp);
        else
            rc = corm__buf_printf(b, a, "\\U%08X", (unsigned)cp);
        if (rc < 0)
            return CORM_ENOMEM;
    }
    return corm__buf_put(b, a, "'", 1);
}

int corm__name_check(const char *s, size_t len, const char *what, corm_error *err)
{
    if (!s)
        return corm__err(err, CORM_EMISUSE, "%s is NULL", what);
    if (len == 0)
        return corm__err(err, CORM_EPROGRAMMING, "%s is empty", what);
    if (memchr(s, 0, len))
        return corm__err(err, CORM_EPROGRAMMING, "%s \"%s\" contains a NUL byte", what, s);
    if (len > CORM__NAME_MAX)
        return corm__err(err, CORM_EPROGRAMMING,
                         "%s \"%.20s...\" is %zu bytes long; PostgreSQL truncates names at "
                         "%d bytes, so longer names are refused",
                         what, s, len, CORM__NAME_MAX);
    if (!corm__utf8_valid(s, len))
        return corm__err(err, CORM_EPROGRAMMING, "%s is not valid UTF-8", what);
    return CORM_OK;
}

int corm_check_name(const char *name, size_t len, corm_error *err)
{
    return corm__name_check(name, len, "name", err);
}

/* Checks a NUL-terminated name argument. */
static int check_name(const char *s, const char *what, corm_error *err)
{
    if (!s)
        return corm__err(err, CORM_EMISUSE, "%s is NULL", what);
    return corm__name_check(s, strlen(s), what, err);
}

/* Rewrites err's message as "prefix: message", keeping its code. */
static int err_prefix(corm_error *err, int rc, const char *prefix)
{
    if (!err || !err->message)
        return rc;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err->message);
    int code = err->code;
    corm__err(err, code, "%s: %s", prefix, msg);
    return rc;
}

const char *corm__model_label(const corm_model *m, char *buf, size_t size)
{
    if (m->schema)
        snprintf(buf, size, "model \"%s.%s\"", m->schema, m->table);
    else
        snprintf(buf, size, "model \"%s\"", m->table);
    return buf;
}

int corm__buf_table(corm__buf *b, const corm__alloc *a, const corm_model *m)
{
    if (m->schema) {
        if (corm__buf_ident(b, a, m->schema) < 0 || corm__buf_put(b, a, ".", 1) < 0)
            return CORM_ENOMEM;
    }
    return corm__buf_ident(b, a, m->table);
}

/* ---- scanning developer-written SQL ---------------------------------- */

static bool ident_byte(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* One scanner for checking and renumbering: with b == NULL it only checks. */
static int scan(const char *sql, const char *what, int *max_param, int offset, corm__buf *b,
                const corm__alloc *a, corm_error *err)
{
    const char *p = sql, *flushed = sql;
    int maxp = 0;
#define FLUSH_TO(q)                                                                \
    do {                                                                           \
        if (b && corm__buf_put(b, a, flushed, (size_t)((q) - flushed)) < 0)        \
            return corm__err_nomem(err);                                           \
        flushed = (q);                                                             \
    } while (0)
    while (*p) {
        unsigned char c = (unsigned char)*p;
        bool after_ident = p > sql && ident_byte((unsigned char)p[-1]);
        if (c == '\'') {
            /* E'...' strings take backslash escapes. */
            bool esc = p > sql && (p[-1] == 'E' || p[-1] == 'e') &&
                       !(p - 1 > sql && ident_byte((unsigned char)p[-2]));
            p++;
            for (;;) {
                if (!*p)
                    return corm__err(err, CORM_EPROGRAMMING,
                                     "%s: unterminated string literal", what);
                if (esc && *p == '\\' && p[1]) {
                    p += 2;
                    continue;
                }
                if (*p == '\'') {
                    if (p[1] == '\'') {
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                p++;
            }
        } else if (c == '"') {
            p++;
            for (;;) {
                if (!*p)
                    return corm__err(err, CORM_EPROGRAMMING,
                                     "%s: unterminated quoted identifier", what);
                if (*p == '"') {
                    if (p[1] == '"') {
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                p++;
            }
        } else if (c == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (c == '/' && p[1] == '*') {
            int depth = 1;
            p += 2;
            while (depth > 0) {
                if (!*p)
                    return corm__err(err, CORM_EPROGRAMMING, "%s: unterminated comment", what);
                if (*p == '/' && p[1] == '*') {
                    depth++;
                    p += 2;
                } else if (*p == '*' && p[1] == '/') {
                    depth--;
                    p += 2;
                } else {
                    p++;
                }
            }
        } else if (c == '$' && !after_ident && isdigit((unsigned char)p[1])) {
            const char *start = p++;
            long n = 0;
            while (isdigit((unsigned char)*p)) {
                if (n < 100000)
                    n = n * 10 + (*p - '0');
                p++;
            }
            if (n < 1 || n > 65535)
                return corm__err(err, CORM_EPROGRAMMING, "%s: bad parameter number", what);
            if (n > maxp)
                maxp = (int)n;
            if (b) {
                FLUSH_TO(start);
                if (corm__buf_printf(b, a, "$%ld", n + offset) < 0)
                    return corm__err_nomem(err);
                flushed = p;
            }
        } else if (c == '$' && !after_ident) {
            /* $tag$ ... $tag$ */
            const char *t = p + 1;
            while (*t && *t != '$' && (isalnum((unsigned char)*t) || *t == '_' ||
                                       (unsigned char)*t >= 0x80))
                t++;
            if (*t == '$') {
                size_t taglen = (size_t)(t - p) + 1;
                const char *body = t + 1, *end = body;
                for (;;) {
                    end = strchr(end, '$');
                    if (!end)
                        return corm__err(err, CORM_EPROGRAMMING,
                                         "%s: unterminated dollar-quoted string", what);
                    if (!strncmp(end, p, taglen))
                        break;
                    end++;
                }
                p = end + taglen;
            } else {
                p++;
            }
        } else if (c == ';') {
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s: ';' is not allowed (one statement, no separators)", what);
        } else {
            p++;
        }
    }
    FLUSH_TO(p);
#undef FLUSH_TO
    if (max_param)
        *max_param = maxp;
    return CORM_OK;
}

int corm__sql_scan(const char *sql, const char *what, int *max_param, corm_error *err)
{
    return scan(sql, what, max_param, 0, NULL, NULL, err);
}

int corm__sql_renumber(corm__buf *b, const corm__alloc *a, const char *sql, int offset)
{
    return scan(sql, "SQL", NULL, offset, b, a, NULL);
}

/* Developer SQL in a definition: one expression, no parameters. */
static int check_def_sql(const char *sql, const char *what, corm_error *err)
{
    if (!sql)
        return corm__err(err, CORM_EMISUSE, "%s is NULL", what);
    const char *s = sql;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return corm__err(err, CORM_EPROGRAMMING, "%s is empty", what);
    if (!corm__utf8_valid(sql, strlen(sql)))
        return corm__err(err, CORM_EPROGRAMMING, "%s is not valid UTF-8", what);
    int maxp;
    int rc = corm__sql_scan(sql, what, &maxp, err);
    if (rc < 0)
        return rc;
    if (maxp > 0)
        return corm__err(err, CORM_EPROGRAMMING,
                         "%s: parameters ($%d) cannot appear in DDL", what, maxp);
    return CORM_OK;
}

/* ---- types ----------------------------------------------------------- */

enum { MOD_NONE, MOD_LEN, MOD_NUMERIC, MOD_PREC, MOD_ANY };

typedef struct builtin_type {
    const char *names;      /* aliases, '|'-separated, normalised (lowercase, one space) */
    const char *sql;        /* canonical */
    uint32_t oid, array_oid;
    int family;
    int mods;
    bool serial;
} builtin_type;

static const builtin_type builtins[] = {
    {"smallint|int2", "smallint", 21, 1005, CORM__F_INT, MOD_NONE, false},
    {"integer|int|int4", "integer", 23, 1007, CORM__F_INT, MOD_NONE, false},
    {"bigint|int8", "bigint", 20, 1016, CORM__F_INT, MOD_NONE, false},
    {"smallserial|serial2", "smallserial", 21, 1005, CORM__F_INT, MOD_NONE, true},
    {"serial|serial4", "serial", 23, 1007, CORM__F_INT, MOD_NONE, true},
    {"bigserial|serial8", "bigserial", 20, 1016, CORM__F_INT, MOD_NONE, true},
    {"real|float4", "real", 700, 1021, CORM__F_FLOAT, MOD_NONE, false},
    {"double precision|float8|float", "double precision", 701, 1022, CORM__F_FLOAT, MOD_NONE,
     false},
    {"numeric|decimal", "numeric", 1700, 1231, CORM__F_NUMERIC, MOD_NUMERIC, false},
    {"boolean|bool", "boolean", 16, 1000, CORM__F_BOOL, MOD_NONE, false},
    {"text", "text", 25, 1009, CORM__F_TEXT, MOD_NONE, false},
    {"varchar|character varying", "varchar", 1043, 1015, CORM__F_TEXT, MOD_LEN, false},
    {"char|character|bpchar", "char", 1042, 1014, CORM__F_TEXT, MOD_LEN, false},
    {"name", "name", 19, 1003, CORM__F_TEXT, MOD_NONE, false},
    {"bytea", "bytea", 17, 1001, CORM__F_BYTES, MOD_NONE, false},
    {"date", "date", 1082, 1182, CORM__F_DATE, MOD_NONE, false},
    {"time|time without time zone", "time", 1083, 1183, CORM__F_TIME, MOD_PREC, false},
    {"timetz|time with time zone", "timetz", 1266, 1270, CORM__F_TIMETZ, MOD_PREC, false},
    {"timestamp|timestamp without time zone", "timestamp", 1114, 1115, CORM__F_TIMESTAMP,
     MOD_PREC, false},
    {"timestamptz|timestamp with time zone", "timestamptz", 1184, 1185, CORM__F_TIMESTAMPTZ,
     MOD_PREC, false},
    {"interval", "interval", 1186, 1187, CORM__F_INTERVAL, MOD_PREC, false},
    {"uuid", "uuid", 2950, 2951, CORM__F_UUID, MOD_NONE, false},
    {"json", "json", 114, 199, CORM__F_JSON, MOD_NONE, false},
    {"jsonb", "jsonb", 3802, 3807, CORM__F_JSON, MOD_NONE, false},
    {"oid", "oid", 26, 1028, CORM__F_INT, MOD_NONE, false},
    {"inet", "inet", 869, 1041, CORM__F_OTHER, MOD_NONE, false},
    {"cidr", "cidr", 650, 651, CORM__F_OTHER, MOD_NONE, false},
    {"macaddr", "macaddr", 829, 1040, CORM__F_OTHER, MOD_NONE, false},
    {"money", "money", 790, 791, CORM__F_OTHER, MOD_NONE, false},
    {"xml", "xml", 142, 143, CORM__F_OTHER, MOD_NONE, false},
    {"tsvector", "tsvector", 3614, 3643, CORM__F_OTHER, MOD_NONE, false},
};

static const builtin_type *find_builtin(const char *norm)
{
    size_t n = strlen(norm);
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        const char *p = builtins[i].names;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == n && !memcmp(p, norm, n))
                return &builtins[i];
            p += len + (bar ? 1 : 0);
        }
    }
    return NULL;
}

uint32_t corm__array_oid(uint32_t elem_oid)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (builtins[i].oid == elem_oid && !builtins[i].serial)
            return builtins[i].array_oid;
    return 0;
}

static bool simple_ident(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '$'))
            return false;
    return true;
}

static const corm__utype *find_utype(const corm_registry *reg, const char *schema,
                                     size_t schemalen, const char *name, size_t namelen)
{
    const corm__utype *found = NULL;
    for (int i = 0; i < reg->nutypes; i++) {
        const corm__utype *u = reg->utypes[i];
        if (strlen(u->name) != namelen || memcmp(u->name, name, namelen))
            continue;
        if (schema) {
            if (!u->schema || strlen(u->schema) != schemalen ||
                memcmp(u->schema, schema, schemalen))
                continue;
        }
        if (found)
            return NULL; /* ambiguous without a schema */
        found = u;
    }
    return found;
}

/* Does another registry type share u's name (in another schema)? Then
 * the bare name is ambiguous. */
static bool find_utype_exact_dup(const corm_registry *reg, const corm__utype *u)
{
    for (int i = 0; i < reg->nutypes; i++)
        if (reg->utypes[i] != u && !strcmp(reg->utypes[i]->name, u->name))
            return true;
    return false;
}

/* Parses "12", "12,2", " 3 " into mods; returns the count or -1. */
static int parse_mods(const char *s, size_t n, long mods[2], bool allow_neg_second)
{
    int count = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && s[i] == ' ')
            i++;
        bool neg = false;
        if (i < n && s[i] == '-' && count == 1 && allow_neg_second) {
            neg = true;
            i++;
        }
        if (i >= n || !isdigit((unsigned char)s[i]))
            return -1;
        long v = 0;
        while (i < n && isdigit((unsigned char)s[i])) {
            if (v > 100000)
                return -1;
            v = v * 10 + (s[i] - '0');
            i++;
        }
        if (count == 2)
            return -1;
        mods[count++] = neg ? -v : v;
        while (i < n && s[i] == ' ')
            i++;
        if (i == n)
            return count;
        if (s[i] != ',')
            return -1;
        i++;
    }
}

int corm__type_parse(const corm_registry *reg, const char *text, corm__type *t, char *sqlbuf,
                     corm_error *err)
{
    memset(t, 0, sizeof *t);
    if (!text)
        return corm__err(err, CORM_EMISUSE, "type is NULL");
    size_t len = strlen(text);
    if (len == 0)
        return corm__err(err, CORM_EPROGRAMMING, "type is empty");
    if (len > CORM__TYPE_MAX - 32)
        return corm__err(err, CORM_EPROGRAMMING, "type \"%.20s...\" is too long", text);
    char work[CORM__TYPE_MAX];
    memcpy(work, text, len + 1);
    /* Tabs and newlines count as spaces. */
    for (size_t i = 0; i < len; i++)
        if (work[i] == '\t' || work[i] == '\n' || work[i] == '\r')
            work[i] = ' ';
    /* Trim, then take the [] suffixes off. */
    size_t b = 0, e = len;
    while (b < e && work[b] == ' ')
        b++;
    while (e > b && work[e - 1] == ' ')
        e--;
    int ndims = 0;
    while (e >= b + 2 && work[e - 1] == ']') {
        size_t k = e - 1;
        while (k > b && work[k - 1] == ' ')
            k--;
        if (k == b || work[k - 1] != '[')
            return corm__err(err, CORM_EPROGRAMMING,
                             "type \"%s\": write array types as name[]", text);
        e = k - 1;
        while (e > b && work[e - 1] == ' ')
            e--;
        ndims++;
    }
    if (ndims > 6)
        return corm__err(err, CORM_EPROGRAMMING, "type \"%s\": too many dimensions", text);
    /* One optional (modifiers) group, possibly before more words
     * ("timestamp(3) with time zone"). */
    const char *mods_s = NULL;
    size_t mods_n = 0;
    char name[CORM__TYPE_MAX];
    size_t nn = 0;
    for (size_t i = b; i < e; i++) {
        char ch = work[i];
        if (ch == '(') {
            if (mods_s)
                return corm__err(err, CORM_EPROGRAMMING, "type \"%s\": bad modifiers", text);
            size_t close = i + 1;
            while (close < e && work[close] != ')')
                close++;
            if (close == e)
                return corm__err(err, CORM_EPROGRAMMING, "type \"%s\": missing ')'", text);
            mods_s = work + i + 1;
            mods_n = close - i - 1;
            i = close;
            if (nn && name[nn - 1] != ' ')
                name[nn++] = ' ';
            continue;
        }
        if (ch == ')' || ch == '[' || ch == ']')
            return corm__err(err, CORM_EPROGRAMMING, "type \"%s\" is not a type name", text);
        if (ch == ' ' && nn && name[nn - 1] == ' ')
            continue;
        name[nn++] = ch;
    }
    while (nn && name[nn - 1] == ' ')
        nn--;
    name[nn] = 0;
    if (nn == 0)
        return corm__err(err, CORM_EPROGRAMMING, "type \"%s\" has no name", text);
    char norm[CORM__TYPE_MAX];
    for (size_t i = 0; i <= nn; i++)
        norm[i] = (char)tolower((unsigned char)name[i]);

    long mods[2] = {0, 0};
    int nmods = 0;
    if (mods_s) {
        const builtin_type *bt0 = find_builtin(norm);
        nmods = parse_mods(mods_s, mods_n, mods, bt0 && bt0->mods == MOD_NUMERIC);
        if (nmods < 0)
            return corm__err(err, CORM_EPROGRAMMING,
                             "type \"%s\": modifiers must be integers, e.g. numeric(12,2)", text);
    }

    const builtin_type *bt = find_builtin(norm);
    size_t o = 0;
    if (bt) {
        bool ok = true;
        switch (bt->mods) {
        case MOD_NONE:
            ok = nmods == 0;
            break;
        case MOD_LEN:
            ok = nmods == 0 || (nmods == 1 && mods[0] >= 1 && mods[0] <= 10485760);
            break;
        case MOD_NUMERIC:
            ok = nmods == 0 || (mods[0] >= 1 && mods[0] <= 1000 &&
                                (nmods == 1 || (mods[1] >= -1000 && mods[1] <= 1000)));
            break;
        case MOD_PREC:
            ok = nmods == 0 || (nmods == 1 && mods[0] >= 0 && mods[0] <= 6);
            break;
        }
        if (!ok)
            return corm__err(err, CORM_EPROGRAMMING, "type \"%s\": bad modifiers for %s", text,
                             bt->sql);
        if (bt->serial && ndims)
            return corm__err(err, CORM_EPROGRAMMING, "type \"%s\": no arrays of serial", text);
        o = (size_t)snprintf(sqlbuf, CORM__TYPE_MAX, "%s", bt->sql);
        t->oid = bt->oid;
        t->elem_oid = bt->oid;
        t->elem_array_oid = bt->array_oid;
        t->family = bt->family;
        t->serial = bt->serial;
    } else {
        /* Not built in: an enum or external type the registry knows, by
         * its exact name (any characters), or as schema.name. */
        const char *dot = strchr(name, '.');
        const corm__utype *u = NULL;
        for (int i = 0; reg && i < reg->nutypes && !u; i++) {
            const corm__utype *c = reg->utypes[i];
            if (!strcmp(c->name, name) && !find_utype_exact_dup(reg, c))
                u = c;
        }
        if (!u) {
            bool shaped = dot ? simple_ident(name, (size_t)(dot - name)) &&
                                    simple_ident(dot + 1, strlen(dot + 1))
                              : simple_ident(name, nn);
            if (!shaped)
                return corm__err(err, CORM_EPROGRAMMING, "unknown type \"%s\"", text);
            if (reg) {
                if (dot)
                    u = find_utype(reg, name, (size_t)(dot - name), dot + 1, strlen(dot + 1));
                else
                    u = find_utype(reg, NULL, 0, name, nn);
            }
            if (!u)
                return corm__err(err, CORM_EPROGRAMMING,
                                 "unknown type \"%s\" (declare enums with "
                                 "corm_registry_add_enum, other types with "
                                 "corm_registry_add_type)",
                                 text);
        }
        if (u->is_enum && nmods)
            return corm__err(err, CORM_EPROGRAMMING, "type \"%s\": an enum takes no modifiers",
                             text);
        o = (size_t)snprintf(sqlbuf, CORM__TYPE_MAX, "%s", u->sql);
        t->family = u->is_enum ? CORM__F_ENUM : CORM__F_OTHER;
        t->utype = u;
    }
    if (nmods == 1)
        o += (size_t)snprintf(sqlbuf + o, CORM__TYPE_MAX - o, "(%ld)", mods[0]);
    else if (nmods == 2)
        o += (size_t)snprintf(sqlbuf + o, CORM__TYPE_MAX - o, "(%ld,%ld)", mods[0], mods[1]);
    t->base_len = o;
    for (int i = 0; i < ndims; i++)
        o += (size_t)snprintf(sqlbuf + o, CORM__TYPE_MAX - o, "[]");
    t->ndims = ndims;
    if (ndims) {
        t->oid = t->elem_array_oid;
    }
    t->sql = sqlbuf;
    return CORM_OK;
}

/* ---- the registry ---------------------------------------------------- */

int corm_registry_new(corm_registry **out, const corm_options *opt, corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__alloc a;
    corm__alloc_init(&a, opt);
    corm_registry *reg = corm__calloc(&a, sizeof *reg);
    if (!reg)
        return corm__err_nomem(err);
    reg->alloc = a;
    reg->refs = 1;
    *out = reg;
    return CORM_OK;
}

void corm__registry_retain(corm_registry *reg)
{
    reg->refs++;
}

void corm__registry_release(corm_registry *reg)
{
    if (!reg || --reg->refs > 0)
        return;
    corm__alloc a = reg->alloc;
    corm__shape_cache_clear(reg);
    corm__free(&a, reg->buckets, reg->nbuckets * sizeof *reg->buckets);
    corm__region_free(&reg->arena, &a);
    corm__free(&a, reg, sizeof *reg);
}

void corm_registry_free(corm_registry *reg)
{
    if (!reg || reg->freed)
        return;
    reg->freed = true;
    /* Compiled shapes no query uses go now; queries and expressions still
     * alive keep the rest (and the models) until they are freed. */
    corm__registry_release(reg);
}

uint64_t corm__registry_compiles(const corm_registry *reg)
{
    return reg->compiles;
}

uint64_t corm__registry_cache_hits(const corm_registry *reg)
{
    return reg->cache_hits;
}

void corm__registry_verify_cache(corm_registry *reg, bool on)
{
    reg->verify_cache = on;
}

int corm_registry_nmodels(const corm_registry *reg)
{
    return reg ? reg->nmodels : 0;
}

corm_model *corm_registry_model(const corm_registry *reg, int i)
{
    if (!reg || i < 0 || i >= reg->nmodels)
        return NULL;
    return reg->models[i];
}

static bool same_opt(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

corm_model *corm_registry_find(const corm_registry *reg, const char *schema, const char *table)
{
    if (!reg || !table)
        return NULL;
    for (int i = 0; i < reg->nmodels; i++)
        if (!strcmp(reg->models[i]->table, table) && same_opt(reg->models[i]->schema, schema))
            return reg->models[i];
    return NULL;
}

static int add_utype(corm_registry *reg, const char *schema, const char *name, bool is_enum,
                     int nlabels, const char *const *labels, corm_error *err)
{
    corm__check(reg != NULL, err, "registry is NULL");
    corm__check(!reg->freed, err, "registry was freed");
    int rc;
    if (schema && (rc = check_name(schema, "schema name", err)) < 0)
        return rc;
    if ((rc = check_name(name, "type name", err)) < 0)
        return rc;
    for (int i = 0; i < reg->nutypes; i++)
        if (!strcmp(reg->utypes[i]->name, name) && same_opt(reg->utypes[i]->schema, schema))
            return corm__err(err, CORM_EPROGRAMMING, "type \"%s\" is already declared", name);
    if (find_builtin(name))
        return corm__err(err, CORM_EPROGRAMMING, "type \"%s\" is a built-in type name", name);
    if (is_enum) {
        corm__check(nlabels >= 0 && (nlabels == 0 || labels != NULL), err,
                    "labels are NULL");
        for (int i = 0; i < nlabels; i++) {
            if (!labels[i])
                return corm__err(err, CORM_EMISUSE, "enum \"%s\": label %d is NULL", name, i);
            if ((rc = corm__name_check(labels[i], strlen(labels[i]), "enum label", err)) < 0)
                return err_prefix(err, rc, "enum");
            for (int j = 0; j < i; j++)
                if (!strcmp(labels[i], labels[j]))
                    return corm__err(err, CORM_EPROGRAMMING,
                                     "enum \"%s\": label \"%s\" appears twice", name, labels[i]);
        }
    }
    const corm__alloc *a = &reg->alloc;
    corm__region *ar = &reg->arena;
    if (region_grow(ar, a, (void **)&reg->utypes, &reg->caputypes, reg->nutypes,
                   sizeof *reg->utypes) < 0)
        return corm__err_nomem(err);
    corm__utype *u = corm__region_alloc(ar, a, sizeof *u);
    if (!u)
        return corm__err_nomem(err);
    memset(u, 0, sizeof *u);
    u->schema = corm__region_strdup(ar, a, schema);
    u->name = corm__region_strdup(ar, a, name);
    corm__buf qb = {0};
    if ((schema && (corm__buf_ident(&qb, a, schema) < 0 || corm__buf_put(&qb, a, ".", 1) < 0)) ||
        corm__buf_ident(&qb, a, name) < 0) {
        corm__buf_free(&qb, a);
        return corm__err_nomem(err);
    }
    u->sql = corm__region_memdup(ar, a, qb.data, qb.len);
    corm__buf_free(&qb, a);
    u->is_enum = is_enum;
    u->nlabels = is_enum ? nlabels : 0;
    if (u->nlabels) {
        u->labels = corm__region_alloc(ar, a, (size_t)nlabels * sizeof *u->labels);
        if (!u->labels)
            return corm__err_nomem(err);
        for (int i = 0; i < nlabels; i++)
            if (!(u->labels[i] = corm__region_strdup(ar, a, labels[i])))
                return corm__err_nomem(err);
    }
    if ((schema && !u->schema) || !u->name || !u->sql)
        return corm__err_nomem(err);
    reg->utypes[reg->nutypes++] = u;
    return CORM_OK;
}

int corm_registry_add_enum(corm_registry *reg, const char *schema, const char *name,
                           int nlabels, const char *const *labels, corm_error *err)
{
    return add_utype(reg, schema, name, true, nlabels, labels, err);
}

int corm_registry_add_type(corm_registry *reg, const char *schema, const char *name,
                           corm_error *err)
{
    return add_utype(reg, schema, name, false, 0, NULL, err);
}

/* ---- models ---------------------------------------------------------- */

int corm_model_new(corm_model **out, corm_registry *reg, const char *schema, const char *table,
                   corm_error *err)
{
    corm__check(out != NULL, err, "out is NULL");
    *out = NULL;
    corm__check(reg != NULL, err, "registry is NULL");
    corm__check(!reg->freed, err, "registry was freed");
    int rc;
    if (schema && (rc = check_name(schema, "schema name", err)) < 0)
        return rc;
    if ((rc = check_name(table, "table name", err)) < 0)
        return rc;
    if (corm_registry_find(reg, schema, table))
        return corm__err(err, CORM_EPROGRAMMING, "model \"%s\" is already defined", table);
    const corm__alloc *a = &reg->alloc;
    if (region_grow(&reg->arena, a, (void **)&reg->models, &reg->capmodels, reg->nmodels,
                   sizeof *reg->models) < 0)
        return corm__err_nomem(err);
    corm_model *m = corm__region_alloc(&reg->arena, a, sizeof *m);
    if (!m)
        return corm__err_nomem(err);
    memset(m, 0, sizeof *m);
    m->reg = reg;
    m->schema = corm__region_strdup(&reg->arena, a, schema);
    m->table = corm__region_strdup(&reg->arena, a, table);
    if (!m->table || (schema && !m->schema))
        return corm__err_nomem(err);
    m->index = reg->nmodels;
    reg->models[reg->nmodels++] = m;
    *out = m;
    return CORM_OK;
}

#define MODEL_CHANGE_CHECK(m, err)                                                       \
    do {                                                                                 \
        corm__check((m) != NULL, err, "model is NULL");                                  \
        corm__check(!(m)->frozen, err,                                                   \
                    "the model is in use by a query or DDL and can no longer change");   \
    } while (0)

#define LABEL(m, buf) corm__model_label((m), (buf), sizeof(buf))

static int check_cols(const corm_model *m, int ncols, const int *cols, const char *what,
                      corm_error *err)
{
    char lb[160];
    if (ncols <= 0 || !cols)
        return corm__err(err, CORM_EMISUSE, "%s: %s needs at least one column", LABEL(m, lb),
                         what);
    for (int i = 0; i < ncols; i++) {
        if (cols[i] < 0 || cols[i] >= m->ncols)
            return corm__err(err, CORM_EMISUSE, "%s: %s: no column %d", LABEL(m, lb), what,
                             cols[i]);
        for (int j = 0; j < i; j++)
            if (cols[i] == cols[j])
                return corm__err(err, CORM_EPROGRAMMING, "%s: %s: column \"%s\" appears twice",
                                 LABEL(m, lb), what, m->cols[cols[i]].name);
    }
    return CORM_OK;
}

static int *copy_cols(corm_model *m, int ncols, const int *cols)
{
    int *p = corm__region_alloc(&m->reg->arena, &m->reg->alloc, (size_t)ncols * sizeof *p);
    if (p)
        memcpy(p, cols, (size_t)ncols * sizeof *p);
    return p;
}

int corm_model_add_column(corm_model *m, const char *name, const char *type, unsigned flags,
                          corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    char lb[160], prefix[256];
    int rc;
    if ((rc = check_name(name, "column name", err)) < 0)
        return err_prefix(err, rc, LABEL(m, lb));
    snprintf(prefix, sizeof prefix, "%s, column \"%s\"", LABEL(m, lb), name);
    if (flags & ~(unsigned)(CORM_COL_NULL | CORM_COL_PRIMARY_KEY | CORM_COL_UNIQUE |
                            CORM_COL_NO_AUTO))
        return corm__err(err, CORM_EMISUSE, "%s: unknown flags 0x%x", prefix, flags);
    if (corm_model_column_index(m, name) >= 0)
        return corm__err(err, CORM_EPROGRAMMING, "%s is defined twice", prefix);
    if ((flags & CORM_COL_NULL) && (flags & CORM_COL_PRIMARY_KEY))
        return corm__err(err, CORM_EPROGRAMMING, "%s: a primary key column cannot be nullable",
                         prefix);
    corm__type t;
    char sqlbuf[CORM__TYPE_MAX];
    if ((rc = corm__type_parse(m->reg, type, &t, sqlbuf, err)) < 0)
        return err_prefix(err, rc, prefix);
    if (t.serial && (flags & CORM_COL_NULL))
        return corm__err(err, CORM_EPROGRAMMING, "%s: a serial column cannot be nullable",
                         prefix);
    const corm__alloc *a = &m->reg->alloc;
    corm__region *ar = &m->reg->arena;
    if (region_grow(ar, a, (void **)&m->cols, &m->capcols, m->ncols, sizeof *m->cols) < 0)
        return corm__err_nomem(err);
    if (flags & CORM_COL_PRIMARY_KEY) {
        int *pk = corm__region_alloc(ar, a, (size_t)(m->npk + 1) * sizeof *pk);
        if (!pk)
            return corm__err_nomem(err);
        if (m->npk)
            memcpy(pk, m->pk, (size_t)m->npk * sizeof *pk);
        pk[m->npk] = m->ncols;
        m->pk = pk;
        m->npk++;
    }
    corm__column *c = &m->cols[m->ncols];
    memset(c, 0, sizeof *c);
    c->name = corm__region_strdup(ar, a, name);
    c->type = t;
    c->type.sql = corm__region_strdup(ar, a, sqlbuf);
    c->flags = flags;
    if (!c->name || !c->type.sql) {
        if (flags & CORM_COL_PRIMARY_KEY)
            m->npk--;
        return corm__err_nomem(err);
    }
    return m->ncols++;
}

int corm_model_set_primary_key(corm_model *m, int ncols, const int *cols, corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    int rc = check_cols(m, ncols, cols, "primary key", err);
    if (rc < 0)
        return rc;
    char lb[160];
    for (int i = 0; i < ncols; i++)
        if (m->cols[cols[i]].flags & CORM_COL_NULL)
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s, column \"%s\": a primary key column cannot be nullable",
                             LABEL(m, lb), m->cols[cols[i]].name);
    int *pk = copy_cols(m, ncols, cols);
    if (!pk)
        return corm__err_nomem(err);
    for (int i = 0; i < m->ncols; i++)
        m->cols[i].flags &= ~(unsigned)CORM_COL_PRIMARY_KEY;
    for (int i = 0; i < ncols; i++)
        m->cols[cols[i]].flags |= CORM_COL_PRIMARY_KEY;
    m->pk = pk;
    m->npk = ncols;
    return CORM_OK;
}

static int family_accepts(int family, corm_kind kind)
{
    switch (kind) {
    case CORM_NULL:
    case CORM_TEXT:
        return 1;
    case CORM_BOOL:
        return family == CORM__F_BOOL;
    case CORM_INT:
        return family == CORM__F_INT || family == CORM__F_FLOAT || family == CORM__F_NUMERIC ||
               family == CORM__F_OTHER;
    case CORM_FLOAT:
    case CORM_NUMERIC:
        return family == CORM__F_FLOAT || family == CORM__F_NUMERIC || family == CORM__F_OTHER;
    case CORM_BYTES:
        return family == CORM__F_BYTES;
    case CORM_UUID:
        return family == CORM__F_UUID;
    case CORM_JSON:
        return family == CORM__F_JSON;
    default:
        return 0;
    }
}

/* Renders a constant as a SQL literal (DDL cannot take parameters). */
static int render_constant(corm__buf *b, const corm__alloc *a, const corm_value *v,
                           corm_error *err)
{
    int rc = CORM_OK;
    switch (v->kind) {
    case CORM_NULL:
        rc = corm__buf_puts(b, a, "NULL");
        break;
    case CORM_BOOL:
        rc = corm__buf_puts(b, a, v->v.b ? "true" : "false");
        break;
    case CORM_INT:
        rc = corm__buf_printf(b, a, "%lld", (long long)v->v.i);
        break;
    case CORM_FLOAT:
        if (isnan(v->v.f))
            rc = corm__buf_puts(b, a, "'NaN'");
        else if (isinf(v->v.f))
            rc = corm__buf_puts(b, a, v->v.f > 0 ? "'Infinity'" : "'-Infinity'");
        else
            rc = corm__buf_printf(b, a, "%.17g", v->v.f);
        break;
    case CORM_NUMERIC: {
        const char *s = v->v.str.ptr;
        size_t n = v->v.str.len;
        bool ok = n > 0 && n < 1000;
        for (size_t i = 0; i < n && ok; i++)
            ok = isdigit((unsigned char)s[i]) || strchr("+-.eE", s[i]) != NULL;
        if (!ok && !((n == 3 && !memcmp(s, "NaN", 3)) || (n == 8 && !memcmp(s, "Infinity", 8)) ||
                     (n == 9 && !memcmp(s, "-Infinity", 9))))
            return corm__err(err, CORM_EDATA, "not a numeric value");
        rc = corm__buf_literal(b, a, s, n, false);
        break;
    }
    case CORM_TEXT:
    case CORM_JSON:
        if (memchr(v->v.str.ptr, 0, v->v.str.len))
            return corm__err(err, CORM_EDATA, "text contains a NUL byte");
        if (!corm__utf8_valid(v->v.str.ptr, v->v.str.len))
            return corm__err(err, CORM_EDATA, "text is not valid UTF-8");
        rc = corm__buf_literal(b, a, v->v.str.ptr, v->v.str.len, false);
        break;
    case CORM_BYTES: {
        static const char hex[] = "0123456789abcdef";
        rc = corm__buf_puts(b, a, "E'\\\\x");
        for (size_t i = 0; i < v->v.str.len && rc == CORM_OK; i++) {
            unsigned char c = (unsigned char)v->v.str.ptr[i];
            char h[2] = {hex[c >> 4], hex[c & 15]};
            rc = corm__buf_put(b, a, h, 2);
        }
        if (rc == CORM_OK)
            rc = corm__buf_puts(b, a, "'::bytea");
        break;
    }
    case CORM_UUID: {
        const uint8_t *u = v->v.uuid;
        rc = corm__buf_printf(b, a,
                              "'%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x'",
                              u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
                              u[11], u[12], u[13], u[14], u[15]);
        break;
    }
    default:
        return corm__err(err, CORM_EDATA,
                         "a constant default of this kind is not supported; give a server "
                         "expression with corm_model_set_default_sql");
    }
    return rc < 0 ? corm__err_nomem(err) : CORM_OK;
}

static int check_col(const corm_model *m, int col, corm_error *err)
{
    char lb[160];
    if (col < 0 || col >= m->ncols)
        return corm__err(err, CORM_EMISUSE, "%s: no column %d", LABEL(m, lb), col);
    return CORM_OK;
}

int corm_model_set_default(corm_model *m, int col, const corm_value *v, corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    corm__check(v != NULL, err, "value is NULL");
    int rc = check_col(m, col, err);
    if (rc < 0)
        return rc;
    corm__column *c = &m->cols[col];
    char lb[160], prefix[256];
    snprintf(prefix, sizeof prefix, "%s, column \"%s\"", LABEL(m, lb), c->name);
    if (c->type.serial)
        return corm__err(err, CORM_EPROGRAMMING, "%s: a serial column has its own default",
                         prefix);
    if (v->kind == CORM_NULL && !(c->flags & CORM_COL_NULL))
        return corm__err(err, CORM_EPROGRAMMING, "%s: NULL default for a NOT NULL column",
                         prefix);
    if (c->type.ndims == 0 && !family_accepts(c->type.family, v->kind))
        return corm__err(err, CORM_EPROGRAMMING, "%s: the default's kind does not fit type %s",
                         prefix, c->type.sql);
    const corm__alloc *a = &m->reg->alloc;
    corm__buf b = {0};
    rc = render_constant(&b, a, v, err);
    if (rc < 0) {
        corm__buf_free(&b, a);
        return err_prefix(err, rc, prefix);
    }
    const char *s = corm__region_memdup(&m->reg->arena, a, b.data, b.len);
    corm__buf_free(&b, a);
    if (!s)
        return corm__err_nomem(err);
    c->default_sql = s;
    return CORM_OK;
}

int corm_model_set_default_sql(corm_model *m, int col, const char *sql, corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    int rc = check_col(m, col, err);
    if (rc < 0)
        return rc;
    corm__column *c = &m->cols[col];
    char lb[160], prefix[256];
    snprintf(prefix, sizeof prefix, "%s, column \"%s\"", LABEL(m, lb), c->name);
    if (c->type.serial)
        return corm__err(err, CORM_EPROGRAMMING, "%s: a serial column has its own default",
                         prefix);
    if ((rc = check_def_sql(sql, "default expression", err)) < 0)
        return err_prefix(err, rc, prefix);
    const char *s = corm__region_strdup(&m->reg->arena, &m->reg->alloc, sql);
    if (!s)
        return corm__err_nomem(err);
    c->default_sql = s;
    return CORM_OK;
}

static int check_opt_name(const corm_model *m, const char *name, const char *what,
                          corm_error *err)
{
    if (!name)
        return CORM_OK;
    char lb[160];
    int rc = check_name(name, what, err);
    return rc < 0 ? err_prefix(err, rc, LABEL(m, lb)) : CORM_OK;
}

int corm_model_add_unique(corm_model *m, const char *name, int ncols, const int *cols,
                          corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    int rc;
    if ((rc = check_opt_name(m, name, "constraint name", err)) < 0 ||
        (rc = check_cols(m, ncols, cols, "unique constraint", err)) < 0)
        return rc;
    const corm__alloc *a = &m->reg->alloc;
    if (region_grow(&m->reg->arena, a, (void **)&m->uniques, &m->capuniques, m->nuniques,
                   sizeof *m->uniques) < 0)
        return corm__err_nomem(err);
    corm__unique *u = &m->uniques[m->nuniques];
    u->name = corm__region_strdup(&m->reg->arena, a, name);
    u->ncols = ncols;
    u->cols = copy_cols(m, ncols, cols);
    if (!u->cols || (name && !u->name))
        return corm__err_nomem(err);
    m->nuniques++;
    return CORM_OK;
}

int corm_model_add_check(corm_model *m, const char *name, const char *sql, corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    char lb[160];
    int rc;
    if ((rc = check_opt_name(m, name, "constraint name", err)) < 0)
        return rc;
    if ((rc = check_def_sql(sql, "check constraint", err)) < 0)
        return err_prefix(err, rc, LABEL(m, lb));
    const corm__alloc *a = &m->reg->alloc;
    if (region_grow(&m->reg->arena, a, (void **)&m->checks, &m->capchecks, m->nchecks,
                   sizeof *m->checks) < 0)
        return corm__err_nomem(err);
    corm__check *c = &m->checks[m->nchecks];
    c->name = corm__region_strdup(&m->reg->arena, a, name);
    c->sql = corm__region_strdup(&m->reg->arena, a, sql);
    if (!c->sql || (name && !c->name))
        return corm__err_nomem(err);
    m->nchecks++;
    return CORM_OK;
}

/* Do cols (as a set) form target's primary key or a unique constraint? */
static bool cols_unique(const corm_model *t, int n, const int *cols)
{
    if (n == 1 && (t->cols[cols[0]].flags & CORM_COL_UNIQUE))
        return true;
    if (t->npk == n) {
        bool all = true;
        for (int i = 0; i < n && all; i++) {
            bool found = false;
            for (int j = 0; j < n; j++)
                found |= t->pk[j] == cols[i];
            all = found;
        }
        if (all)
            return true;
    }
    for (int u = 0; u < t->nuniques; u++) {
        if (t->uniques[u].ncols != n)
            continue;
        bool all = true;
        for (int i = 0; i < n && all; i++) {
            bool found = false;
            for (int j = 0; j < n; j++)
                found |= t->uniques[u].cols[j] == cols[i];
            all = found;
        }
        if (all)
            return true;
    }
    return false;
}

int corm_model_add_foreign_key(corm_model *m, const char *name, int ncols, const int *cols,
                               const corm_model *target, const int *target_cols, int on_delete,
                               int on_update, corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    corm__check(target != NULL, err, "target model is NULL");
    corm__check(target->reg == m->reg, err, "target model is in another registry");
    corm__check(on_delete >= CORM_FK_NO_ACTION && on_delete <= CORM_FK_SET_DEFAULT, err,
                "bad ON DELETE action");
    corm__check(on_update >= CORM_FK_NO_ACTION && on_update <= CORM_FK_SET_DEFAULT, err,
                "bad ON UPDATE action");
    int rc;
    char lb[160], tb[160];
    if ((rc = check_opt_name(m, name, "constraint name", err)) < 0 ||
        (rc = check_cols(m, ncols, cols, "foreign key", err)) < 0)
        return rc;
    if (!target_cols) {
        if (target->npk == 0)
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s, column \"%s\": the referenced %s has no primary key "
                             "(define it first)",
                             LABEL(m, lb), m->cols[cols[0]].name, LABEL(target, tb));
        if (target->npk != ncols)
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s, column \"%s\": %d column(s) cannot reference the %d-column "
                             "primary key of %s",
                             LABEL(m, lb), m->cols[cols[0]].name, ncols, target->npk,
                             LABEL(target, tb));
        target_cols = target->pk;
    } else {
        for (int i = 0; i < ncols; i++)
            if (target_cols[i] < 0 || target_cols[i] >= target->ncols)
                return corm__err(err, CORM_EMISUSE, "%s: no column %d", LABEL(target, tb),
                                 target_cols[i]);
        if (!cols_unique(target, ncols, target_cols))
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s, column \"%s\": the referenced columns of %s are neither its "
                             "primary key nor unique",
                             LABEL(m, lb), m->cols[cols[0]].name, LABEL(target, tb));
    }
    for (int i = 0; i < ncols; i++) {
        const corm__column *c = &m->cols[cols[i]], *tc = &target->cols[target_cols[i]];
        if (c->type.family != tc->type.family || c->type.ndims != tc->type.ndims ||
            (c->type.utype && c->type.utype != tc->type.utype))
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s, column \"%s\" (%s) cannot reference %s column \"%s\" (%s)",
                             LABEL(m, lb), c->name, c->type.sql, LABEL(target, tb), tc->name,
                             tc->type.sql);
        if ((on_delete == CORM_FK_SET_NULL || on_update == CORM_FK_SET_NULL) &&
            !(c->flags & CORM_COL_NULL))
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s, column \"%s\": ON DELETE/UPDATE SET NULL needs a nullable "
                             "column",
                             LABEL(m, lb), c->name);
    }
    const corm__alloc *a = &m->reg->alloc;
    if (region_grow(&m->reg->arena, a, (void **)&m->fks, &m->capfks, m->nfks, sizeof *m->fks) <
        0)
        return corm__err_nomem(err);
    corm__fk *fk = &m->fks[m->nfks];
    memset(fk, 0, sizeof *fk);
    fk->name = corm__region_strdup(&m->reg->arena, a, name);
    fk->ncols = ncols;
    fk->cols = copy_cols(m, ncols, cols);
    fk->target = target;
    fk->target_cols = copy_cols(m, ncols, target_cols);
    fk->on_delete = on_delete;
    fk->on_update = on_update;
    if (!fk->cols || !fk->target_cols || (name && !fk->name))
        return corm__err_nomem(err);
    m->nfks++;
    return CORM_OK;
}

/* "table_col1_col2_idx", shortened with a hash when past 63 bytes. */
static char *index_name(corm_model *m, int ncols, const int *cols)
{
    const corm__alloc *a = &m->reg->alloc;
    corm__buf b = {0};
    int rc = corm__buf_puts(&b, a, m->table);
    for (int i = 0; i < ncols && rc == CORM_OK; i++) {
        rc = corm__buf_puts(&b, a, "_");
        if (rc == CORM_OK)
            rc = corm__buf_puts(&b, a, m->cols[cols[i]].name);
    }
    if (rc == CORM_OK)
        rc = corm__buf_puts(&b, a, "_idx");
    if (rc < 0) {
        corm__buf_free(&b, a);
        return NULL;
    }
    size_t n = b.len;
    if (n > CORM__NAME_MAX) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < b.len; i++)
            h = (h ^ (unsigned char)b.data[i]) * 16777619u;
        size_t keep = CORM__NAME_MAX - 9;
        /* Do not cut a UTF-8 sequence. */
        while (keep > 0 && ((unsigned char)b.data[keep] & 0xC0) == 0x80)
            keep--;
        snprintf(b.data + keep, b.cap - keep, "_%08x", (unsigned)h);
        n = keep + 9;
    }
    char *s = corm__region_memdup(&m->reg->arena, a, b.data, n);
    corm__buf_free(&b, a);
    return s;
}

int corm_model_add_index(corm_model *m, const char *name, int ncols, const int *cols,
                         unsigned flags, const char *method, const char *where_sql,
                         corm_error *err)
{
    MODEL_CHANGE_CHECK(m, err);
    char lb[160];
    int rc;
    if ((rc = check_opt_name(m, name, "index name", err)) < 0 ||
        (rc = check_cols(m, ncols, cols, "index", err)) < 0)
        return rc;
    if (flags & ~(unsigned)CORM_INDEX_UNIQUE)
        return corm__err(err, CORM_EMISUSE, "%s: unknown index flags 0x%x", LABEL(m, lb), flags);
    if (method) {
        size_t n = strlen(method);
        bool ok = n > 0 && n <= CORM__NAME_MAX && (islower((unsigned char)method[0]) ||
                                                   method[0] == '_');
        for (size_t i = 0; i < n && ok; i++)
            ok = islower((unsigned char)method[i]) || isdigit((unsigned char)method[i]) ||
                 method[i] == '_';
        if (!ok)
            return corm__err(err, CORM_EPROGRAMMING,
                             "%s: index method \"%s\" is not a name such as btree or gin",
                             LABEL(m, lb), method);
    }
    if (where_sql && (rc = check_def_sql(where_sql, "index predicate", err)) < 0)
        return err_prefix(err, rc, LABEL(m, lb));
    const corm__alloc *a = &m->reg->alloc;
    corm__region *ar = &m->reg->arena;
    if (region_grow(ar, a, (void **)&m->indexes, &m->capindexes, m->nindexes,
                   sizeof *m->indexes) < 0)
        return corm__err_nomem(err);
    corm__index *ix = &m->indexes[m->nindexes];
    memset(ix, 0, sizeof *ix);
    ix->name = name ? corm__region_strdup(ar, a, name) : index_name(m, ncols, cols);
    ix->ncols = ncols;
    ix->cols = copy_cols(m, ncols, cols);
    ix->flags = flags;
    ix->method = corm__region_strdup(ar, a, method);
    ix->where_sql = corm__region_strdup(ar, a, where_sql);
    if (!ix->name || !ix->cols || (method && !ix->method) || (where_sql && !ix->where_sql))
        return corm__err_nomem(err);
    for (int i = 0; i < m->nindexes; i++)
        if (!strcmp(m->indexes[i].name, ix->name))
            return corm__err(err, CORM_EPROGRAMMING, "%s: index \"%s\" is defined twice",
                             LABEL(m, lb), ix->name);
    m->nindexes++;
    return CORM_OK;
}

/* ---- reading models -------------------------------------------------- */

bool corm__column_identity(const corm_model *m, int col)
{
    const corm__column *c = &m->cols[col];
    return m->npk == 1 && m->pk[0] == col && c->type.family == CORM__F_INT &&
           c->type.ndims == 0 && !c->type.serial && !c->default_sql &&
           !(c->flags & CORM_COL_NO_AUTO) && c->type.oid != 26;
}

const char *corm__column_default(const corm_model *m, int col)
{
    const corm__column *c = &m->cols[col];
    if (c->default_sql)
        return c->default_sql;
    if (m->npk == 1 && m->pk[0] == col && c->type.family == CORM__F_UUID && c->type.ndims == 0 &&
        !(c->flags & CORM_COL_NO_AUTO))
        return "gen_random_uuid()";
    return NULL;
}

corm_registry *corm_model_registry(const corm_model *m)
{
    return m ? m->reg : NULL;
}

const char *corm_model_table(const corm_model *m)
{
    return m ? m->table : NULL;
}

const char *corm_model_schema(const corm_model *m)
{
    return m ? m->schema : NULL;
}

int corm_model_ncolumns(const corm_model *m)
{
    return m ? m->ncols : 0;
}

int corm_model_column_index(const corm_model *m, const char *name)
{
    if (!m || !name)
        return -1;
    for (int i = 0; i < m->ncols; i++)
        if (!strcmp(m->cols[i].name, name))
            return i;
    return -1;
}

const char *corm_model_column_name(const corm_model *m, int col)
{
    return m && col >= 0 && col < m->ncols ? m->cols[col].name : NULL;
}

const char *corm_model_column_type(const corm_model *m, int col)
{
    return m && col >= 0 && col < m->ncols ? m->cols[col].type.sql : NULL;
}

uint32_t corm_model_column_oid(const corm_model *m, int col)
{
    return m && col >= 0 && col < m->ncols ? m->cols[col].type.oid : 0;
}

unsigned corm_model_column_flags(const corm_model *m, int col)
{
    if (!m || col < 0 || col >= m->ncols)
        return 0;
    unsigned f = m->cols[col].flags;
    if (corm__column_identity(m, col))
        f |= CORM_COL_IDENTITY | CORM_COL_HAS_DEFAULT;
    if (corm__column_default(m, col) || m->cols[col].type.serial)
        f |= CORM_COL_HAS_DEFAULT;
    return f;
}

int corm_model_primary_key(const corm_model *m, const int **cols)
{
    if (cols)
        *cols = m ? m->pk : NULL;
    return m ? m->npk : 0;
}
