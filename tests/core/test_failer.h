/*
 * test_failer.h - a failing allocator for out-of-memory tests: fails
 * request number fail_at (and, when sticky, every later one), and keeps a
 * size header on every block so a free or realloc passing the wrong old
 * size is counted. Include after stdlib.h/stddef.h.
 */
#ifndef TEST_FAILER_H
#define TEST_FAILER_H

#include <stddef.h>
#include <stdlib.h>

typedef struct failer {
    long count;          /* allocation requests seen (new_size > 0) */
    long fail_at;        /* fail request number fail_at (1-based); 0: never */
    int sticky;          /* once failed, fail every later request */
    int failures;
    long live_blocks;
    size_t live_bytes;
    int size_errors;
} failer;

typedef union hdr {
    size_t size;
    max_align_t align;
} hdr;

static __attribute__((unused)) void *failer_alloc(void *ud, void *ptr, size_t old, size_t n)
{
    failer *f = ud;
    hdr *h = ptr ? (hdr *)ptr - 1 : NULL;
    if (h && h->size != old)
        f->size_errors++;
    if (n == 0) {
        if (h) {
            f->live_blocks--;
            f->live_bytes -= h->size;
            free(h);
        }
        return NULL;
    }
    f->count++;
    if ((f->fail_at && f->count == f->fail_at) || (f->sticky && f->failures)) {
        f->failures++;
        return NULL;   /* ptr stays valid */
    }
    size_t had = h ? h->size : 0;
    hdr *nh = realloc(h, sizeof(hdr) + n);
    if (!nh)
        return NULL;
    if (!h)
        f->live_blocks++;
    f->live_bytes = f->live_bytes - had + n;
    nh->size = n;
    return nh + 1;
}

#endif
