/*
 * Shared by bench/floor.c and bench/cbench.c: argument parsing, the clock,
 * the row structs every C runner decodes into, JSON output.
 *
 *   PROG --url URL --sizes JSON [--workloads W1,W2,W3,W4]
 *
 * (the same arguments bench/pybench.py takes; bench/run.py passes them).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define W1_SQL "SELECT id, name, email, age, score, active, created_at, balance, uuid, tags " \
               "FROM bench_rows"
#define W2_SQL "SELECT id, name, email, age, score, active, created_at, balance, uuid, tags " \
               "FROM bench_rows WHERE id = $1"
#define W4_USERS_SQL "SELECT id, name, email, created_at FROM users ORDER BY id LIMIT $1"
#define W4_POSTS_SQL "SELECT id, user_id, title, body, created_at FROM posts " \
                     "WHERE user_id = ANY($1::int8[])"
#define MAX_RUNS 64

/* One bench_rows row as native C values. Strings point into the result
 * they came from (NUL-terminated there); numeric is its decimal text. */
typedef struct bench_row {
    int64_t id;
    const char *name;
    const char *email;
    int32_t age;
    double score;
    bool active;
    int64_t created_at; /* microseconds since 2000-01-01 UTC */
    char balance[32];   /* numeric(12,2) as text */
    uint8_t uuid[16];
    const char *tags;   /* jsonb text */
    size_t tags_len;
} bench_row;

typedef struct bench_post {
    int64_t id, user_id;
    const char *title, *body;
    int64_t created_at;
    struct bench_post *next; /* the user's next post */
} bench_post;

typedef struct bench_user {
    int64_t id;
    const char *name, *email;
    int64_t created_at;
    bench_post *posts;
    int nposts;
} bench_user;

typedef struct bench_args {
    const char *url;
    long rows, users, lookups, w4_users, runs, warmup;
    char workloads[64];
} bench_args;

static inline void die(const char *what, const char *msg)
{
    fprintf(stderr, "%s: %s\n", what, msg ? msg : "");
    exit(1);
}

static inline long json_int(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        die("--sizes lacks", key);
    p = strchr(p + strlen(pat), ':');
    if (!p)
        die("--sizes: bad JSON near", key);
    return strtol(p + 1, NULL, 10);
}

static inline void parse_args(int argc, char **argv, bench_args *a)
{
    memset(a, 0, sizeof *a);
    a->url = getenv("DATABASE_URL");
    const char *sizes = "{\"rows\": 100000, \"users\": 10000, \"lookups\": 10000, "
                        "\"w4_users\": 1000, \"runs\": 5, \"warmup\": 1}";
    snprintf(a->workloads, sizeof a->workloads, "W1,W2,W3,W4");
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            a->url = argv[i + 1];
        else if (!strcmp(argv[i], "--sizes"))
            sizes = argv[i + 1];
        else if (!strcmp(argv[i], "--workloads"))
            snprintf(a->workloads, sizeof a->workloads, "%s", argv[i + 1]);
        else
            die("unknown argument", argv[i]);
    }
    if (!a->url)
        die("no --url", "and no DATABASE_URL");
    a->rows = json_int(sizes, "rows");
    a->users = json_int(sizes, "users");
    a->lookups = json_int(sizes, "lookups");
    a->w4_users = json_int(sizes, "w4_users");
    a->runs = json_int(sizes, "runs");
    a->warmup = json_int(sizes, "warmup");
    if (a->runs < 1 || a->runs > MAX_RUNS)
        die("runs out of range", NULL);
}

static inline bool wants(const bench_args *a, const char *w)
{
    return strstr(a->workloads, w) != NULL;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void emit(const char *system, const char *workload, const char *variant,
                 const double *times, int n, long rows, const char *note)
{
    printf("{\"system\": \"%s\", \"lang\": \"c\", \"workload\": \"%s\", \"variant\": \"%s\", "
           "\"rows\": %ld, \"note\": \"%s\", \"times\": [",
           system, workload, variant, rows, note);
    for (int i = 0; i < n; i++)
        printf("%s%.9f", i ? ", " : "", times[i]);
    printf("]}\n");
    fflush(stdout);
}

/* W2's id for lookup k. */
static inline int64_t lookup_id(long k, long rows)
{
    return (int64_t)(((long long)k * 7919) % rows) + 1;
}

/* The int8[] parameter of W4 in text form: "{1,2,...}" (caller frees). */
static inline char *id_array_text(const bench_user *u, long n)
{
    char *s = malloc((size_t)n * 21 + 3), *p = s;
    if (!s)
        die("out of memory", NULL);
    *p++ = '{';
    for (long i = 0; i < n; i++)
        p += sprintf(p, "%s%lld", i ? "," : "", (long long)u[i].id);
    *p++ = '}';
    *p = 0;
    return s;
}

/* Attaches posts to users (users sorted by id, as W4_USERS_SQL returns
 * them): a binary search per post. Returns the number attached. */
static inline long group_posts(bench_user *users, long nusers, bench_post *posts, long nposts)
{
    long attached = 0;
    for (long i = nposts - 1; i >= 0; i--) {
        long lo = 0, hi = nusers - 1;
        while (lo <= hi) {
            long mid = (lo + hi) / 2;
            if (users[mid].id < posts[i].user_id)
                lo = mid + 1;
            else if (users[mid].id > posts[i].user_id)
                hi = mid - 1;
            else {
                posts[i].next = users[mid].posts;
                users[mid].posts = &posts[i];
                users[mid].nposts++;
                attached++;
                break;
            }
        }
    }
    return attached;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
