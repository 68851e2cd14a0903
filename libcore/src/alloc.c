/*
 * alloc.c - the per-handle allocator, byte buffers, and the clock.
 */
#include "corm_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *default_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    (void)ud;
    (void)old_size;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, new_size);
}

void corm__alloc_init(corm__alloc *a, const corm_options *opt)
{
    if (opt && opt->alloc) {
        a->fn = opt->alloc;
        a->ud = opt->alloc_ud;
    } else {
        a->fn = default_alloc;
        a->ud = NULL;
    }
}

void *corm__malloc(const corm__alloc *a, size_t n)
{
    return n ? a->fn(a->ud, NULL, 0, n) : NULL;
}

void *corm__calloc(const corm__alloc *a, size_t n)
{
    void *p = corm__malloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *corm__realloc(const corm__alloc *a, void *p, size_t old, size_t n)
{
    return a->fn(a->ud, p, old, n);
}

void corm__free(const corm__alloc *a, void *p, size_t n)
{
    if (p)
        a->fn(a->ud, p, n, 0);
}

char *corm__strdup(const corm__alloc *a, const char *s, size_t *size_out)
{
    size_t n = strlen(s) + 1;
    char *d = corm__malloc(a, n);
    if (d)
        memcpy(d, s, n);
    if (size_out)
        *size_out = d ? n : 0;
    return d;
}

int corm__buf_reserve(corm__buf *b, const corm__alloc *a, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return CORM_ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return CORM_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = corm__realloc(a, b->data, b->cap, cap);
    if (!d)
        return CORM_ENOMEM;
    b->data = d;
    b->cap = cap;
    return CORM_OK;
}

int corm__buf_put(corm__buf *b, const corm__alloc *a, const void *p, size_t n)
{
    if (corm__buf_reserve(b, a, n) < 0)
        return CORM_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return CORM_OK;
}

void corm__buf_free(corm__buf *b, const corm__alloc *a)
{
    corm__free(a, b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

int64_t corm__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void corm_options_init(corm_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->size = sizeof *opt;
    opt->connect_timeout_ms = 10000;
    opt->prepared_statements = 1;
    opt->statement_cache_size = 256;
    opt->pool_min_size = 1;
    opt->pool_max_size = 10;
    opt->pool_pipeline_depth = 16;
}
