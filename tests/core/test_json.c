/*
 * test_json.c - corm_json_parse without a server: what a sink hears for
 * valid documents (escapes, surrogates, numbers, nesting), the errors for
 * malformed ones, depth, a sink that stops, and misuse.
 */
#define CTEST_MAIN
#include "ctest.h"

#include "corm.h"

#include <stdlib.h>
#include <string.h>

/* A sink that writes one token per event, space-separated:
 *   n  T  F  #text (number; "i" appended for integers)  s<bytes>  k<bytes>
 *   [  ]  {  }
 * Bytes outside printable ASCII appear as \xHH. */
typedef struct trace {
    char out[8192];
    size_t len;
    int stop_after;   /* >0: fail with -77 at that event */
    int events;
} trace;

static int add(trace *t, const char *s, size_t n)
{
    if (t->stop_after && ++t->events >= t->stop_after)
        return -77;
    CHECK(t->len + n * 4 + 2 < sizeof t->out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '\\')
            t->len += (size_t)sprintf(t->out + t->len, "\\x%02x", ch);
        else
            t->out[t->len++] = (char)ch;
    }
    t->out[t->len++] = ' ';
    t->out[t->len] = 0;
    return 0;
}

static int tagged(trace *t, char tag, const char *s, size_t n)
{
    char buf[4096];
    CHECK(n + 2 < sizeof buf);
    buf[0] = tag;
    memcpy(buf + 1, s, n);
    return add(t, buf, n + 1);
}

static int on_null(void *ud) { return add(ud, "n", 1); }
static int on_bool(void *ud, int v) { return add(ud, v ? "T" : "F", 1); }
static int on_number(void *ud, const char *s, size_t n, int integer)
{
    char buf[512];
    CHECK(n + 3 < sizeof buf);
    buf[0] = '#';
    memcpy(buf + 1, s, n);
    if (integer)
        buf[++n] = 'i';
    return add(ud, buf, n + 1);
}
static int on_string(void *ud, const char *s, size_t n) { return tagged(ud, 's', s, n); }
static int on_key(void *ud, const char *s, size_t n) { return tagged(ud, 'k', s, n); }
static int on_begin_array(void *ud) { return add(ud, "[", 1); }
static int on_end_array(void *ud) { return add(ud, "]", 1); }
static int on_begin_object(void *ud) { return add(ud, "{", 1); }
static int on_end_object(void *ud) { return add(ud, "}", 1); }

static const corm_json_sink sink = {
    on_null, on_bool, on_number, on_string, on_begin_array, on_end_array, on_begin_object,
    on_key, on_end_object,
};

/* The trace of text, or "!" followed by the error message. */
static const char *run(trace *t, const char *text, size_t len)
{
    memset(t, 0, sizeof *t);
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_json_parse(text, len, &sink, t, &err);
    if (rc < 0) {
        CHECK_EQ_INT(rc, CORM_EDATA);
        CHECK(err.message != NULL);
        snprintf(t->out, sizeof t->out, "!%s", err.message);
        corm_error_clear(&err);
    } else {
        CHECK_EQ_INT(rc, CORM_OK);
        CHECK(err.code == 0);
        if (t->len)
            t->out[--t->len] = 0; /* the last space */
    }
    return t->out;
}

static const char *parse(trace *t, const char *text)
{
    return run(t, text, strlen(text));
}

TEST(scalars)
{
    trace t;
    CHECK_STR(parse(&t, "null"), "n");
    CHECK_STR(parse(&t, "true"), "T");
    CHECK_STR(parse(&t, " false \n"), "F");
    CHECK_STR(parse(&t, "0"), "#0i");
    CHECK_STR(parse(&t, "-12"), "#-12i");
    CHECK_STR(parse(&t, "12345678901234567890123"), "#12345678901234567890123i");
    CHECK_STR(parse(&t, "1.5"), "#1.5");
    CHECK_STR(parse(&t, "-0.0e+10"), "#-0.0e+10");
    CHECK_STR(parse(&t, "2E-3"), "#2E-3");
    CHECK_STR(parse(&t, "\"\""), "s");
    CHECK_STR(parse(&t, "\"plain text\""), "splain text");
}

TEST(containers)
{
    trace t;
    CHECK_STR(parse(&t, "[]"), "[ ]");
    CHECK_STR(parse(&t, "{}"), "{ }");
    CHECK_STR(parse(&t, "[ [ ] , { } ]"), "[ [ ] { } ]");
    CHECK_STR(parse(&t, "{\"b\": true, \"n\": 1, \"s\": \"tag1\"}"),
              "{ kb T kn #1i ks stag1 }");
    CHECK_STR(parse(&t, "{\"a\":[1,{\"b\":null},\"x\"],\"c\":{}}"),
              "{ ka [ #1i { kb n } sx ] kc { } }");
    CHECK_STR(parse(&t, "\t[\r\n1 ,\n2 ]\t"), "[ #1i #2i ]");
    /* Duplicate keys are reported as they come; the front end decides. */
    CHECK_STR(parse(&t, "{\"a\":1,\"a\":2}"), "{ ka #1i ka #2i }");
}

TEST(escapes)
{
    trace t;
    CHECK_STR(parse(&t, "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\""),
              "sa\"b\\x5cc/d\\x08\\x0c\\x0a\\x0d\\x09");
    CHECK_STR(parse(&t, "\"\\u0041\\u00e9\\u20AC\""), "sA\\xc3\\xa9\\xe2\\x82\\xac");
    /* A surrogate pair is one code point, U+1F600. */
    CHECK_STR(parse(&t, "\"\\ud83d\\ude00\""), "s\\xf0\\x9f\\x98\\x80");
    /* NUL is kept, with the length saying where the string ends. */
    CHECK_STR(parse(&t, "\"a\\u0000b\""), "sa\\x00b");
    CHECK_STR(parse(&t, "{\"k\\u00e9y\":1}"), "{ kk\\xc3\\xa9y #1i }");
    /* UTF-8 passes through as is. */
    CHECK_STR(parse(&t, "\"\xc3\xa9t\xc3\xa9\""), "s\\xc3\\xa9t\\xc3\\xa9");
}

/* Checks the one string of a document: n newlines. */
static int expect_newlines(void *ud, const char *s, size_t n)
{
    CHECK_EQ_INT(n, *(size_t *)ud);
    for (size_t i = 0; i < n; i++)
        CHECK(s[i] == '\n');
    *(size_t *)ud = 0;
    return 0;
}

TEST(long_escaped_string)
{
    /* Longer than the reader's inline buffer: it must grow, and free. */
    size_t n = 5000;
    char *text = malloc(n * 2 + 2);
    CHECK(text != NULL);
    char *p = text;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        *p++ = '\\';
        *p++ = 'n';
    }
    *p++ = '"';
    corm_json_sink one = sink;
    one.string = expect_newlines;
    size_t want = n;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_json_parse(text, (size_t)(p - text), &one, &want, &err), &err);
    CHECK_EQ_INT(want, 0);
    free(text);
}

TEST(malformed)
{
    static const char *bad[] = {
        "", "   ", "nul", "nulls", "tru", "True", "NaN", "Infinity", "-", "01", "1.", ".5",
        "1e", "1e+", "+1", "--1", "[", "]", "[1", "[1,]", "[,1]", "{", "{\"a\"}", "{\"a\":}",
        "{\"a\":1,}", "{a:1}", "{\"a\" 1}", "{,}", "[1 2]", "{\"a\":1 \"b\":2}", "\"abc",
        "\"a\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\ud83d\"", "\"\\ud83dx\"",
        "\"\\ud83d\\u0041\"", "\"\\ude00\"", "\"tab\there\"", "1 2", "[] []", "{}x",
        "/* c */ 1", "[1,2,3]]", "'a'",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        trace t;
        const char *out = parse(&t, bad[i]);
        CHECK_MSG(out[0] == '!', "accepted %s: %s", bad[i], out);
        CHECK_MSG(strstr(out, "invalid JSON at offset") != NULL, "%s: %s", bad[i], out);
    }
    /* A NUL byte inside the given length is not whitespace. */
    trace t;
    CHECK(run(&t, "1\0", 2)[0] == '!');
    CHECK(run(&t, "\"a\0b\"", 5)[0] == '!');
    /* The offset names where it went wrong. */
    CHECK_STR(parse(&t, "[1, 2, x]"), "!invalid JSON at offset 7: unexpected character");
}

TEST(depth)
{
    size_t deep = CORM_JSON_MAX_DEPTH;
    char *text = malloc(2 * deep + 2);
    CHECK(text != NULL);
    for (size_t i = 0; i < deep; i++) {
        text[i] = '[';
        text[deep + i] = ']';
    }
    corm_error err = CORM_ERROR_INIT;
    trace *t = calloc(1, sizeof *t);
    CHECK(t != NULL);
    /* Exactly the limit is fine. */
    CHECK_OK(corm_json_parse(text, 2 * deep, &sink, t, &err), &err);
    /* One more level is refused, not recursed into. */
    char *deeper = malloc(2 * deep + 4);
    CHECK(deeper != NULL);
    deeper[0] = '[';
    memcpy(deeper + 1, text, 2 * deep);
    deeper[2 * deep + 1] = ']';
    memset(t, 0, sizeof *t);
    CHECK_ERR(corm_json_parse(deeper, 2 * deep + 2, &sink, t, &err), CORM_EDATA, &err);
    CHECK(strstr(err.message, "nested too deeply") != NULL);
    corm_error_clear(&err);
    free(deeper);
    free(text);
    free(t);
}

TEST(sink_stops_the_parse)
{
    for (int stop = 1; stop <= 6; stop++) {
        trace t;
        memset(&t, 0, sizeof t);
        t.stop_after = stop;
        corm_error err = CORM_ERROR_INIT;
        const char *doc = "{\"a\": [1, \"two\", null], \"b\": true}";
        /* The sink's own value comes back, err untouched. */
        CHECK_EQ_INT(corm_json_parse(doc, strlen(doc), &sink, &t, &err), -77);
        CHECK(err.code == 0 && err.message == NULL);
        CHECK_EQ_INT(t.events, stop);
    }
}

TEST(misuse)
{
    corm_error err = CORM_ERROR_INIT;
    trace t;
    memset(&t, 0, sizeof t);
    CHECK_ERR(corm_json_parse("1", 1, NULL, &t, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_json_sink partial = sink;
    partial.key = NULL;
    CHECK_ERR(corm_json_parse("1", 1, &partial, &t, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    CHECK_ERR(corm_json_parse(NULL, 1, &sink, &t, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    /* NULL text of length 0 is the empty document: malformed, not misuse. */
    CHECK_ERR(corm_json_parse(NULL, 0, &sink, &t, &err), CORM_EDATA, &err);
    corm_error_clear(&err);
    /* err may be NULL. */
    CHECK_EQ_INT(corm_json_parse("[", 1, &sink, &t, NULL), CORM_EDATA);
}
