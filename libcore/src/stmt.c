/*
 * stmt.c - per-connection cache of prepared statements, keyed by SQL text
 * and parameter types, bounded, least recently used evicted first.
 */
#include "corm_int.h"

#include <stdio.h>
#include <string.h>

struct corm__stmt {
    corm__stmt *lru_prev, *lru_next;   /* most recently used first */
    corm__stmt *chain;                 /* hash bucket */
    uint64_t hash;
    uint64_t id;
    char name[24];
    size_t keylen;
    char key[];                        /* keylen bytes */
};

static uint64_t hash_key(const char *k, size_t n)
{
    /* FNV-1a: short keys, no adversary, one pass. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void lru_unlink(corm_conn *c, corm__stmt *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        c->stmt_lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        c->stmt_lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push_front(corm_conn *c, corm__stmt *s)
{
    s->lru_prev = NULL;
    s->lru_next = c->stmt_lru_head;
    if (c->stmt_lru_head)
        c->stmt_lru_head->lru_prev = s;
    c->stmt_lru_head = s;
    if (!c->stmt_lru_tail)
        c->stmt_lru_tail = s;
}

static corm__stmt **bucket(corm_conn *c, uint64_t h)
{
    return &c->stmt_table[h & (c->stmt_table_size - 1)];
}

corm__stmt *corm__stmt_lookup(corm_conn *c, const char *key, size_t keylen)
{
    if (!c->stmt_table)
        return NULL;
    uint64_t h = hash_key(key, keylen);
    for (corm__stmt *s = *bucket(c, h); s; s = s->chain) {
        if (s->hash == h && s->keylen == keylen && !memcmp(s->key, key, keylen)) {
            if (c->stmt_lru_head != s) {
                lru_unlink(c, s);
                lru_push_front(c, s);
            }
            return s;
        }
    }
    return NULL;
}

static void unlink_and_free(corm_conn *c, corm__stmt *s)
{
    corm__stmt **pp = bucket(c, s->hash);
    while (*pp != s)
        pp = &(*pp)->chain;
    *pp = s->chain;
    lru_unlink(c, s);
    c->nstmts--;
    corm__free(&c->alloc, s, sizeof *s + s->keylen);
}

corm__stmt *corm__stmt_add(corm_conn *c, const char *key, size_t keylen, char *evicted)
{
    evicted[0] = 0;
    if (!c->stmt_table) {
        size_t n = 16;
        while (n < (size_t)c->opt.statement_cache_size * 2)
            n *= 2;
        c->stmt_table = corm__calloc(&c->alloc, n * sizeof *c->stmt_table);
        if (!c->stmt_table)
            return NULL;
        c->stmt_table_size = n;
    }
    corm__stmt *s = corm__malloc(&c->alloc, sizeof *s + keylen);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->hash = hash_key(key, keylen);
    s->id = ++c->stmt_counter;
    snprintf(s->name, sizeof s->name, "corm_%llu", (unsigned long long)s->id);
    s->keylen = keylen;
    memcpy(s->key, key, keylen);
    corm__stmt **b = bucket(c, s->hash);
    s->chain = *b;
    *b = s;
    lru_push_front(c, s);
    c->nstmts++;
    if (c->nstmts > c->opt.statement_cache_size) {
        corm__stmt *old = c->stmt_lru_tail;
        snprintf(evicted, 32, "%s", old->name);
        unlink_and_free(c, old);
    }
    return s;
}

const char *corm__stmt_name(const corm__stmt *s)
{
    return s->name;
}

uint64_t corm__stmt_id(const corm__stmt *s)
{
    return s->id;
}

void corm__stmt_forget_id(corm_conn *c, const char *key, size_t keylen, uint64_t id,
                          char *name_out)
{
    name_out[0] = 0;
    if (!c->stmt_table)
        return;
    uint64_t h = hash_key(key, keylen);
    for (corm__stmt *s = *bucket(c, h); s; s = s->chain) {
        if (s->id == id) {
            snprintf(name_out, 32, "%s", s->name);
            unlink_and_free(c, s);
            return;
        }
    }
}

void corm__stmt_forget(corm_conn *c, corm__stmt *s)
{
    unlink_and_free(c, s);
}

void corm__stmt_free_all(corm_conn *c)
{
    while (c->stmt_lru_head)
        unlink_and_free(c, c->stmt_lru_head);
    corm__free(&c->alloc, c->stmt_table, c->stmt_table_size * sizeof *c->stmt_table);
    c->stmt_table = NULL;
    c->stmt_table_size = 0;
}
