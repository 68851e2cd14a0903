/*
 * ctest.h - a tiny test harness for the C test programs in tests/core.
 *
 * Each tests/core/test_*.c is built into one program; pytest
 * (tests/core/test_c_programs.py) asks it for `--list` and runs each case
 * in its own process, plain, under ASan+UBSan and under valgrind.
 *
 *     #define CTEST_MAIN          // in exactly one file of the program
 *     #include "ctest.h"
 *     #include "corm.h"
 *
 *     TEST(strerror_never_null) {
 *         CHECK(corm_strerror(-999) != NULL);
 *         CHECK_STR(corm_errname(CORM_EINTEGRITY), "integrity");
 *     }
 *
 *     TEST(connect) {
 *         corm_error err = CORM_ERROR_INIT;
 *         corm_conn *c = NULL;
 *         CHECK_OK(corm_conn_connect(&c, ctest_dsn(), NULL, &err), &err);
 *         corm_conn_close(c);
 *     }
 *
 * Command line of a program:
 *     prog --list        case names, one per line, in source order
 *     prog NAME...       runs those cases
 *     prog               runs every case
 * Exit status: 0 all passed, 1 a case failed, 77 skipped (all skipped when
 * several ran), 2 usage error / unknown case.
 *
 * A failing CHECK prints file:line and what failed to stderr and ends the
 * case at once (longjmp back to the runner), so it works from helper
 * functions too. Whatever the case had allocated is then leaked: the case
 * has failed anyway, and the leak report is only noise after the failure.
 * SKIP(fmt, ...) ends the case as skipped (exit 77).
 *
 * Environment: ctest_dsn() returns DATABASE_URL or skips the case;
 * ctest_env(NAME) returns any variable or skips. Tests that stop and restart
 * the server use CORM_TEST_PGTMP (path to scripts/pgtmp) and CORM_TEST_PGDIR
 * (the cluster directory): ctest_env("CORM_TEST_PGTMP") skips when the
 * cluster is not one the test run owns.
 */
#ifndef CTEST_H
#define CTEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void ctest_fn(void);

/* Registers a case; called by the constructors that TEST() defines. */
void ctest_register(const char *name, ctest_fn *fn, const char *file, int line);
/* End the running case as failed / skipped. printf-style message. */
_Noreturn void ctest_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void ctest_skip_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* getenv(name), or skips the case when it is unset or empty. */
const char *ctest_env_(const char *file, int line, const char *name);
/* The name of the running case (NULL outside a case). */
const char *ctest_current(void);

#define ctest_env(name) ctest_env_(__FILE__, __LINE__, (name))
#define ctest_dsn() ctest_env_(__FILE__, __LINE__, "DATABASE_URL")

#define TEST(name)                                                         \
    static void ctest_case_##name(void);                                   \
    __attribute__((constructor)) static void ctest_register_##name(void)   \
    {                                                                      \
        ctest_register(#name, ctest_case_##name, __FILE__, __LINE__);      \
    }                                                                      \
    static void ctest_case_##name(void)

#define FAIL(...) ctest_fail_(__FILE__, __LINE__, __VA_ARGS__)
#define SKIP(...) ctest_skip_(__FILE__, __LINE__, __VA_ARGS__)

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond))                                                       \
            ctest_fail_(__FILE__, __LINE__, "CHECK(%s) failed", #cond);    \
    } while (0)

/* CHECK with a printf-style explanation. */
#define CHECK_MSG(cond, ...)                                               \
    do {                                                                   \
        if (!(cond))                                                       \
            ctest_fail_(__FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)

/* Integers of any type, compared as intmax_t; each side evaluated once. */
#define CHECK_EQ_INT(a, b)                                                 \
    do {                                                                   \
        intmax_t ctest_a_ = (intmax_t)(a), ctest_b_ = (intmax_t)(b);       \
        if (ctest_a_ != ctest_b_)                                          \
            ctest_fail_(__FILE__, __LINE__,                                \
                        "CHECK_EQ_INT(%s, %s) failed: %" PRIdMAX           \
                        " != %" PRIdMAX,                                   \
                        #a, #b, ctest_a_, ctest_b_);                       \
    } while (0)

/* NUL-terminated strings; NULL equals only NULL. */
#define CHECK_STR(a, b)                                                    \
    do {                                                                   \
        const char *ctest_a_ = (a), *ctest_b_ = (b);                       \
        if (ctest_a_ == NULL || ctest_b_ == NULL                           \
                ? ctest_a_ != ctest_b_                                     \
                : strcmp(ctest_a_, ctest_b_) != 0)                         \
            ctest_fail_(__FILE__, __LINE__,                                \
                        "CHECK_STR(%s, %s) failed: \"%s\" != \"%s\"",      \
                        #a, #b, ctest_a_ ? ctest_a_ : "(null)",            \
                        ctest_b_ ? ctest_b_ : "(null)");                   \
    } while (0)

/* len bytes at a and b are equal. */
#define CHECK_MEM(a, b, len)                                               \
    do {                                                                   \
        size_t ctest_n_ = (size_t)(len);                                   \
        if (memcmp((a), (b), ctest_n_) != 0)                               \
            ctest_fail_(__FILE__, __LINE__,                                \
                        "CHECK_MEM(%s, %s, %zu) failed", #a, #b, ctest_n_); \
    } while (0)

/*
 * expr returns a corm status: fails on a negative CORM_E* code and prints
 * the corm_error that errp points to (not NULL: pass the same &err that expr
 * fills). Zero and positive returns (counts, masks) pass.
 */
#define CHECK_OK(expr, errp)                                               \
    do {                                                                   \
        int ctest_rc_ = (int)(expr);                                       \
        if (ctest_rc_ < 0) {                                               \
            const char *ctest_msg_ = (errp)->message;                      \
            const char *ctest_st_ = (errp)->sqlstate;                      \
            ctest_fail_(__FILE__, __LINE__,                                \
                        "%s returned %d: %s%s%s%s", #expr, ctest_rc_,      \
                        ctest_msg_ ? ctest_msg_ : "(no message)",          \
                        ctest_st_[0] ? " [SQLSTATE " : "", ctest_st_,      \
                        ctest_st_[0] ? "]" : "");                          \
        }                                                                  \
    } while (0)

/* expr returns exactly the status code `code` (e.g. CORM_EMISUSE); errp as
 * for CHECK_OK. */
#define CHECK_ERR(expr, code, errp)                                        \
    do {                                                                   \
        int ctest_rc_ = (int)(expr), ctest_want_ = (int)(code);            \
        if (ctest_rc_ != ctest_want_) {                                    \
            const char *ctest_msg_ = (errp)->message;                      \
            ctest_fail_(__FILE__, __LINE__,                                \
                        "%s returned %d, expected %s (%d): %s", #expr,     \
                        ctest_rc_, #code, ctest_want_,                     \
                        ctest_msg_ ? ctest_msg_ : "(no message)");         \
        }                                                                  \
    } while (0)

/* ------------------------------------------------------------------------
 * Implementation and main(), in the one file that defines CTEST_MAIN.
 * ---------------------------------------------------------------------- */
#ifdef CTEST_MAIN

#ifndef CTEST_MAX_CASES
#define CTEST_MAX_CASES 1024
#endif

enum { CTEST_PASS = 0, CTEST_FAIL = 1, CTEST_SKIP = 77, CTEST_USAGE = 2 };

struct ctest_case {
    const char *name;
    ctest_fn *fn;
    const char *file;
    int line;
};

static struct ctest_case ctest_cases_[CTEST_MAX_CASES];
static int ctest_ncases_;
static jmp_buf ctest_jmp_;
static int ctest_status_;
static const char *ctest_running_;

void ctest_register(const char *name, ctest_fn *fn, const char *file, int line)
{
    if (ctest_ncases_ == CTEST_MAX_CASES) {
        fprintf(stderr, "ctest: more than %d cases; raise CTEST_MAX_CASES\n",
                CTEST_MAX_CASES);
        exit(CTEST_USAGE);
    }
    ctest_cases_[ctest_ncases_++] = (struct ctest_case){name, fn, file, line};
}

const char *ctest_current(void) { return ctest_running_; }

static void ctest_vreport_(const char *kind, const char *file, int line,
                           const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: %s: ", file, line, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

_Noreturn void ctest_fail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctest_vreport_("FAIL", file, line, fmt, ap);
    va_end(ap);
    if (!ctest_running_)
        exit(CTEST_FAIL);
    ctest_status_ = CTEST_FAIL;
    longjmp(ctest_jmp_, 1);
}

_Noreturn void ctest_skip_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    /* The runner (pytest) reads the reason from the "SKIP: " line. */
    fflush(stderr);
    printf("SKIP: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" (%s:%d)\n", file, line);
    fflush(stdout);
    if (!ctest_running_)
        exit(CTEST_SKIP);
    ctest_status_ = CTEST_SKIP;
    longjmp(ctest_jmp_, 1);
}

const char *ctest_env_(const char *file, int line, const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        ctest_skip_(file, line, "%s is not set", name);
    return v;
}

static int ctest_order_(const void *pa, const void *pb)
{
    const struct ctest_case *a = pa, *b = pb;
    int c = strcmp(a->file, b->file);
    return c ? c : (a->line > b->line) - (a->line < b->line);
}

/* Runs one case; returns CTEST_PASS, CTEST_FAIL or CTEST_SKIP. */
static int ctest_run_(const struct ctest_case *tc)
{
    ctest_status_ = CTEST_PASS;
    ctest_running_ = tc->name;
    /* ctest_fail_/ctest_skip_ set ctest_status_ and jump back here. */
    if (setjmp(ctest_jmp_) == 0)
        tc->fn();
    ctest_running_ = NULL;
    return ctest_status_;
}

int main(int argc, char **argv)
{
    /* Line-buffered even into a pipe, so output survives a crash. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    qsort(ctest_cases_, (size_t)ctest_ncases_, sizeof ctest_cases_[0], ctest_order_);
    for (int i = 1; i < ctest_ncases_; i++) {
        if (strcmp(ctest_cases_[i].name, ctest_cases_[i - 1].name) == 0) {
            fprintf(stderr, "ctest: case %s defined twice\n", ctest_cases_[i].name);
            return CTEST_USAGE;
        }
    }

    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ctest_ncases_; i++)
            printf("%s\n", ctest_cases_[i].name);
        return CTEST_PASS;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: %s [--list | CASE...]\n", argv[0]);
        return CTEST_PASS;
    }

    int ran = 0, failed = 0, skipped = 0;
    if (argc == 1) {
        for (int i = 0; i < ctest_ncases_; i++) {
            int st = ctest_run_(&ctest_cases_[i]);
            printf("%s %s\n", st == CTEST_PASS ? "ok  " : st == CTEST_SKIP ? "skip" : "FAIL",
                   ctest_cases_[i].name);
            ran++;
            failed += st == CTEST_FAIL;
            skipped += st == CTEST_SKIP;
        }
    } else {
        for (int a = 1; a < argc; a++) {
            const struct ctest_case *tc = NULL;
            for (int i = 0; i < ctest_ncases_ && !tc; i++)
                if (strcmp(ctest_cases_[i].name, argv[a]) == 0)
                    tc = &ctest_cases_[i];
            if (!tc) {
                fprintf(stderr, "ctest: no case named %s (try --list)\n", argv[a]);
                return CTEST_USAGE;
            }
            int st = ctest_run_(tc);
            if (argc > 2)
                printf("%s %s\n", st == CTEST_PASS ? "ok  " : st == CTEST_SKIP ? "skip" : "FAIL",
                       tc->name);
            ran++;
            failed += st == CTEST_FAIL;
            skipped += st == CTEST_SKIP;
        }
    }
    fflush(stdout);
    if (failed)
        return CTEST_FAIL;
    if (ran > 0 && skipped == ran)
        return CTEST_SKIP;
    return CTEST_PASS;
}

#endif /* CTEST_MAIN */
#endif /* CTEST_H */
