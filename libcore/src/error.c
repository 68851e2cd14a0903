/*
 * error.c - error codes and their names, filling and clearing corm_error,
 * and the one place where a SQLSTATE is turned into an error class.
 */
#include "corm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OWN_MESSAGE = 1u, OWN_DETAIL = 2u, OWN_HINT = 4u };

const char *corm_strerror(int code)
{
    switch (code) {
    case CORM_OK:
        return "success";
#define XX(name, value, lname, desc) \
    case CORM_E##name:               \
        return desc;
        CORM_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *corm_errname(int code)
{
    switch (code) {
    case CORM_OK:
        return "ok";
#define XX(name, value, lname, desc) \
    case CORM_E##name:               \
        return lname;
        CORM_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown";
    }
}

void corm_error_clear(corm_error *err)
{
    if (!err)
        return;
    if (err->flags_ & OWN_MESSAGE)
        free(err->message);
    if (err->flags_ & OWN_DETAIL)
        free(err->detail);
    if (err->flags_ & OWN_HINT)
        free(err->hint);
    corm_error empty = CORM_ERROR_INIT;
    *err = empty;
}

/* Copies s into a heap string, or returns NULL (caller falls back). */
static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* The message when even the message could not be allocated. */
static void set_static_message(corm_error *err, int code)
{
    err->message = (char *)corm_strerror(code);
    err->flags_ &= ~OWN_MESSAGE;
}

int corm__errv(corm_error *err, int code, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    corm_error_clear(err);
    err->code = code;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (msg) {
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        err->message = msg;
        err->flags_ |= OWN_MESSAGE;
    } else {
        set_static_message(err, code);
    }
    return code;
}

int corm__err(corm_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    corm__errv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int corm__err_nomem(corm_error *err)
{
    if (err) {
        corm_error_clear(err);
        err->code = CORM_ENOMEM;
        set_static_message(err, CORM_ENOMEM);
    }
    return CORM_ENOMEM;
}

int corm_error_copy(corm_error *dst, const corm_error *src)
{
    if (!dst)
        return CORM_EMISUSE;
    corm_error_clear(dst);
    if (!src)
        return CORM_OK;
    dst->code = src->code;
    memcpy(dst->sqlstate, src->sqlstate, sizeof dst->sqlstate);
    int rc = CORM_OK;
    if (src->message) {
        dst->message = dup_or_null(src->message);
        if (dst->message)
            dst->flags_ |= OWN_MESSAGE;
        else {
            set_static_message(dst, src->code);
            rc = CORM_ENOMEM;
        }
    }
    if (src->detail) {
        dst->detail = dup_or_null(src->detail);
        if (dst->detail)
            dst->flags_ |= OWN_DETAIL;
        else
            rc = CORM_ENOMEM;
    }
    if (src->hint) {
        dst->hint = dup_or_null(src->hint);
        if (dst->hint)
            dst->flags_ |= OWN_HINT;
        else
            rc = CORM_ENOMEM;
    }
    return rc;
}

int corm_error_class_of_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return CORM_EINTERNAL;
    /* Exact codes first, where the class alone would mislead. */
    if (!strcmp(s, "57014"))
        return CORM_ECANCELLED;     /* query_canceled, also statement_timeout */
    if (!strcmp(s, "57P01") || !strcmp(s, "57P02") || !strcmp(s, "57P03") ||
        !strcmp(s, "57P04"))
        return CORM_ECONNECTION;    /* shutdown, crash, cannot connect now */
    if (!strcmp(s, "25P03"))
        return CORM_ETIMEOUT;       /* idle_in_transaction_session_timeout */
    if (!strcmp(s, "55P03"))
        return CORM_ETIMEOUT;       /* lock_not_available (lock_timeout, NOWAIT) */
    char c0 = s[0], c1 = s[1];
    switch (c0) {
    case '0':
        if (c1 == '8')
            return CORM_ECONNECTION;
        if (c1 == 'A')
            return CORM_EPROGRAMMING; /* feature not supported */
        if (c1 == 'B')
            return CORM_ETRANSACTION;
        return CORM_EOPERATIONAL;
    case '2':
        if (c1 == '1' || c1 == '4' || c1 == '6' || c1 == '5' || c1 == 'F')
            return CORM_EPROGRAMMING;
        if (c1 == '2')
            return CORM_EDATA;
        if (c1 == '3' || c1 == '7' || c1 == 'B')
            return CORM_EINTEGRITY;
        if (c1 == '8')
            return CORM_ECONNECTION;   /* invalid authorization */
        if (c1 == 'D')
            return CORM_ETRANSACTION;
        return CORM_EOPERATIONAL;
    case '3':
        if (c1 == 'B')
            return CORM_ETRANSACTION;
        if (c1 == 'D' || c1 == 'F')
            return CORM_EPROGRAMMING;  /* invalid catalog / schema name */
        return CORM_EOPERATIONAL;
    case '4':
        if (c1 == '0')
            return CORM_ETRANSACTION;  /* serialization failure, deadlock */
        if (c1 == '2')
            return CORM_EPROGRAMMING;  /* syntax error, undefined table, ... */
        if (c1 == '4')
            return CORM_EINTEGRITY;    /* with check option violation */
        return CORM_EOPERATIONAL;
    case 'X':
        return CORM_EINTERNAL;
    default:
        return CORM_EOPERATIONAL;
    }
}

/* Sets a heap-owned string field, trimming a trailing newline. */
static void set_field(corm_error *err, char **field, unsigned flag, const char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        n--;
    char *d = malloc(n + 1);
    if (!d)
        return;
    memcpy(d, s, n);
    d[n] = 0;
    *field = d;
    err->flags_ |= flag;
}

int corm__err_from_result(corm_error *err, const PGresult *res, int fallback_code)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int code = state ? corm_error_class_of_sqlstate(state) : fallback_code;
    if (!err)
        return code;
    corm_error_clear(err);
    err->code = code;
    if (state && strlen(state) == 5)
        memcpy(err->sqlstate, state, 6);
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg && res)
        msg = PQresultErrorMessage(res);
    if (msg && *msg)
        set_field(err, &err->message, OWN_MESSAGE, msg);
    if (!err->message)
        set_static_message(err, code);
    if (res) {
        set_field(err, &err->detail, OWN_DETAIL, PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
        set_field(err, &err->hint, OWN_HINT, PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
    }
    return code;
}

int corm__err_from_conn(corm_error *err, const PGconn *pg, int code, const char *context)
{
    const char *m = pg ? PQerrorMessage(pg) : NULL;
    size_t n = m ? strlen(m) : 0;
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    if (n)
        return corm__err(err, code, "%s: %.*s", context, (int)n, m);
    return corm__err(err, code, "%s", context);
}
