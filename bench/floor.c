/*
 * The floor: what a small C program over libpq with binary results costs
 * for each workload. Every column is decoded into a native C value (int64,
 * int32, double, bool, NUL-terminated strings pointing into the result,
 * microseconds, numeric as decimal text, uuid as 16 bytes, jsonb text).
 *
 *   W1  every row of bench_rows into an array of structs
 *   W2  lookups by primary key, prepared, sequential, one connection
 *   W3  binary COPY of bench_rows' contents, from C structs
 *   W4  users and their posts: two queries, structs, grouped by hand
 *
 * Only the workload is on the clock; results are freed after it stops.
 * Prints JSON lines (see bench_common.h).
 */
#include "bench_common.h"

#include <arpa/inet.h>
#include <libpq-fe.h>

#define SYSTEM "C floor (libpq binary)"

static PGconn *conn;

static void check_res(PGresult *res, ExecStatusType want, const char *what)
{
    if (PQresultStatus(res) != want)
        die(what, PQresultErrorMessage(res));
}

static uint16_t rd16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return ntohs(v);
}

static uint32_t rd32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static uint64_t rd64(const char *p)
{
    return ((uint64_t)rd32(p) << 32) | rd32(p + 4);
}

static double rdf64(const char *p)
{
    uint64_t u = rd64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* numeric's binary form into its text, as PostgreSQL prints it. */
static void numeric_text(const char *p, int len, char *out, size_t cap)
{
    if (len < 8)
        die("numeric", "short value");
    int ndigits = (int16_t)rd16(p), weight = (int16_t)rd16(p + 2);
    unsigned sign = rd16(p + 4), dscale = rd16(p + 6);
    const char *d = p + 8;
    char *o = out, *end = out + cap - 1;
    if (sign == 0xC000) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (sign == 0x4000)
        *o++ = '-';
    if (weight < 0) {
        *o++ = '0';
    } else {
        for (int i = 0; i <= weight && o + 4 < end; i++) {
            int dig = i < ndigits ? (int16_t)rd16(d + 2 * i) : 0;
            o += i == 0 ? sprintf(o, "%d", dig) : sprintf(o, "%04d", dig);
        }
    }
    if (dscale > 0 && o + 1 + dscale + 4 < end) {
        *o++ = '.';
        char *frac = o;
        for (int i = weight + 1; o - frac < (long)dscale; i++) {
            int dig = i >= 0 && i < ndigits ? (int16_t)rd16(d + 2 * i) : 0;
            o += sprintf(o, "%04d", dig);
        }
        o = frac + dscale;
    }
    *o = 0;
}

static void decode_row(const PGresult *res, int r, bench_row *row)
{
    row->id = (int64_t)rd64(PQgetvalue(res, r, 0));
    row->name = PQgetvalue(res, r, 1);
    row->email = PQgetvalue(res, r, 2);
    row->age = (int32_t)rd32(PQgetvalue(res, r, 3));
    row->score = rdf64(PQgetvalue(res, r, 4));
    row->active = PQgetvalue(res, r, 5)[0] != 0;
    row->created_at = (int64_t)rd64(PQgetvalue(res, r, 6));
    numeric_text(PQgetvalue(res, r, 7), PQgetlength(res, r, 7), row->balance,
                 sizeof row->balance);
    memcpy(row->uuid, PQgetvalue(res, r, 8), 16);
    const char *j = PQgetvalue(res, r, 9);
    if (j[0] != 1)
        die("jsonb", "unknown version");
    row->tags = j + 1;
    row->tags_len = (size_t)PQgetlength(res, r, 9) - 1;
}

/* Runs sql with params in binary, results in binary; one result. */
static PGresult *query(const char *sql, int n, const char *const *vals, const int *lens,
                       const int *fmts)
{
    if (!PQsendQueryParams(conn, sql, n, NULL, vals, lens, fmts, 1))
        die("PQsendQueryParams", PQerrorMessage(conn));
    PGresult *res = PQgetResult(conn), *extra;
    while ((extra = PQgetResult(conn)) != NULL)
        PQclear(extra);
    if (!res)
        die("query", PQerrorMessage(conn));
    check_res(res, PGRES_TUPLES_OK, sql);
    return res;
}

/* ---- W1 ---- */

static bench_row *w1(PGresult **keep, long *n)
{
    PGresult *res = query(W1_SQL, 0, NULL, NULL, NULL);
    int nrows = PQntuples(res);
    bench_row *rows = malloc(sizeof *rows * (size_t)(nrows ? nrows : 1));
    if (!rows)
        die("out of memory", NULL);
    for (int r = 0; r < nrows; r++)
        decode_row(res, r, &rows[r]);
    *keep = res;
    *n = nrows;
    return rows;
}

/* ---- W3: binary COPY ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            die("out of memory", NULL);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put16(buf *b, uint16_t v)
{
    v = htons(v);
    put(b, &v, 2);
}

static void put32(buf *b, uint32_t v)
{
    v = htonl(v);
    put(b, &v, 4);
}

static void put64(buf *b, uint64_t v)
{
    put32(b, (uint32_t)(v >> 32));
    put32(b, (uint32_t)v);
}

static void put_field(buf *b, const void *p, size_t n)
{
    put32(b, (uint32_t)n);
    put(b, p, n);
}

/* numeric text ("-1234.56") into its binary form. */
static void put_numeric(buf *b, const char *s)
{
    int neg = *s == '-';
    if (neg || *s == '+')
        s++;
    const char *dot = strchr(s, '.');
    size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
    const char *frac = dot ? dot + 1 : "";
    size_t flen = strlen(frac);
    int16_t digits[64];
    int nd = 0;
    /* integer groups of 4 from the right */
    int igroups = (int)((ilen + 3) / 4);
    for (int g = 0; g < igroups; g++) {
        int v = 0;
        long start = (long)ilen - 4L * (igroups - g);
        for (long k = start; k < start + 4; k++)
            v = v * 10 + (k >= 0 ? s[k] - '0' : 0);
        digits[nd++] = (int16_t)v;
    }
    int weight = igroups - 1;
    int fgroups = (int)((flen + 3) / 4);
    for (int g = 0; g < fgroups; g++) {
        int v = 0;
        for (size_t k = (size_t)g * 4; k < (size_t)g * 4 + 4; k++)
            v = v * 10 + (k < flen ? frac[k] - '0' : 0);
        digits[nd++] = (int16_t)v;
    }
    int first = 0;
    while (first < nd && digits[first] == 0) {
        first++;
        weight--;
    }
    while (nd > first && digits[nd - 1] == 0)
        nd--;
    int count = nd - first;
    if (count == 0)
        weight = 0;
    put32(b, (uint32_t)(8 + 2 * count));
    put16(b, (uint16_t)count);
    put16(b, (uint16_t)(int16_t)weight);
    put16(b, neg && count ? 0x4000 : 0);
    put16(b, (uint16_t)flen);
    for (int i = first; i < nd; i++)
        put16(b, (uint16_t)digits[i]);
}

static void w3(const bench_row *rows, long n, buf *b)
{
    PGresult *res = PQexec(conn, "COPY bench_insert (id, name, email, age, score, active, "
                                 "created_at, balance, uuid, tags) FROM STDIN (FORMAT binary)");
    check_res(res, PGRES_COPY_IN, "COPY");
    PQclear(res);
    b->len = 0;
    put(b, "PGCOPY\n\377\r\n\0", 11);
    put32(b, 0);
    put32(b, 0);
    for (long i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        put16(b, 10);
        put32(b, 8);
        put64(b, (uint64_t)r->id);
        put_field(b, r->name, strlen(r->name));
        put_field(b, r->email, strlen(r->email));
        put32(b, 4);
        put32(b, (uint32_t)r->age);
        uint64_t f;
        memcpy(&f, &r->score, 8);
        put32(b, 8);
        put64(b, f);
        put32(b, 1);
        char a = r->active;
        put(b, &a, 1);
        put32(b, 8);
        put64(b, (uint64_t)r->created_at);
        put_numeric(b, r->balance);
        put_field(b, r->uuid, 16);
        put32(b, (uint32_t)r->tags_len + 1);
        char ver = 1;
        put(b, &ver, 1);
        put(b, r->tags, r->tags_len);
        if (b->len >= 1 << 16) {
            if (PQputCopyData(conn, b->p, (int)b->len) != 1)
                die("PQputCopyData", PQerrorMessage(conn));
            b->len = 0;
        }
    }
    put16(b, 0xFFFF);
    if (PQputCopyData(conn, b->p, (int)b->len) != 1 || PQputCopyEnd(conn, NULL) != 1)
        die("PQputCopyEnd", PQerrorMessage(conn));
    res = PQgetResult(conn);
    check_res(res, PGRES_COMMAND_OK, "COPY end");
    if (strtol(PQcmdTuples(res), NULL, 10) != n)
        die("W3", "wrong COPY count");
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
}

static long count_table(const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    PGresult *res = query(sql, 0, NULL, NULL, NULL);
    long n = (long)rd64(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* ---- W4 ---- */

typedef struct w4_out {
    PGresult *ures, *pres;
    bench_user *users;
    bench_post *posts;
    long nusers, nposts, attached;
} w4_out;

static void w4(long nusers, w4_out *o)
{
    uint64_t be = 0;
    {
        uint64_t v = (uint64_t)nusers;
        uint32_t hi = htonl((uint32_t)(v >> 32)), lo = htonl((uint32_t)v);
        memcpy(&be, &hi, 4);
        memcpy((char *)&be + 4, &lo, 4);
    }
    const char *vals[1] = {(const char *)&be};
    int lens[1] = {8}, fmts[1] = {1};
    /* $1 of a LIMIT is int8 */
    o->ures = query(W4_USERS_SQL, 1, vals, lens, fmts);
    o->nusers = PQntuples(o->ures);
    o->users = calloc((size_t)(o->nusers ? o->nusers : 1), sizeof *o->users);
    for (long i = 0; i < o->nusers; i++) {
        o->users[i].id = (int64_t)rd64(PQgetvalue(o->ures, (int)i, 0));
        o->users[i].name = PQgetvalue(o->ures, (int)i, 1);
        o->users[i].email = PQgetvalue(o->ures, (int)i, 2);
        o->users[i].created_at = (int64_t)rd64(PQgetvalue(o->ures, (int)i, 3));
    }
    char *ids = id_array_text(o->users, o->nusers);
    const char *pv[1] = {ids};
    int pf[1] = {0};
    o->pres = query(W4_POSTS_SQL, 1, pv, NULL, pf);
    free(ids);
    o->nposts = PQntuples(o->pres);
    o->posts = calloc((size_t)(o->nposts ? o->nposts : 1), sizeof *o->posts);
    for (long i = 0; i < o->nposts; i++) {
        bench_post *p = &o->posts[i];
        p->id = (int64_t)rd64(PQgetvalue(o->pres, (int)i, 0));
        p->user_id = (int64_t)rd64(PQgetvalue(o->pres, (int)i, 1));
        p->title = PQgetvalue(o->pres, (int)i, 2);
        p->body = PQgetvalue(o->pres, (int)i, 3);
        p->created_at = (int64_t)rd64(PQgetvalue(o->pres, (int)i, 4));
    }
    o->attached = group_posts(o->users, o->nusers, o->posts, o->nposts);
}

static void w4_free(w4_out *o)
{
    PQclear(o->ures);
    PQclear(o->pres);
    free(o->users);
    free(o->posts);
}

int main(int argc, char **argv)
{
    bench_args a;
    parse_args(argc, argv, &a);
    conn = PQconnectdb(a.url);
    if (PQstatus(conn) != CONNECTION_OK)
        die("connect", PQerrorMessage(conn));
    int total = (int)(a.warmup + a.runs);
    double times[MAX_RUNS];

    /* W1's rows are also W3's source. */
    PGresult *src_res;
    long nsrc;
    bench_row *src = w1(&src_res, &nsrc);
    if (nsrc != a.rows)
        die("W1", "wrong row count");
    if (src[0].id != 1 || strlen(src[0].name) != 20 || strlen(src[0].email) != 24)
        die("W1", "unexpected first row");

    if (wants(&a, "W1")) {
        for (int i = 0; i < total; i++) {
            PGresult *res;
            long n;
            double t0 = now_s();
            bench_row *rows = w1(&res, &n);
            double dt = now_s() - t0;
            if (n != a.rows)
                die("W1", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
            free(rows);
            PQclear(res);
        }
        char note[160];
        snprintf(note, sizeof note, "libpq %d; numeric to text, jsonb left as text", PQlibVersion());
        emit(SYSTEM, "W1", "PQsendQueryParams, binary, structs", times, (int)a.runs, a.rows, note);
    }

    if (wants(&a, "W2")) {
        Oid types[1] = {20};
        PGresult *res = PQprepare(conn, "w2", W2_SQL, 1, types);
        check_res(res, PGRES_COMMAND_OK, "PQprepare");
        PQclear(res);
        for (int i = 0; i < total; i++) {
            long found = 0;
            double t0 = now_s();
            for (long k = 0; k < a.lookups; k++) {
                uint64_t id = (uint64_t)lookup_id(k, a.rows);
                uint32_t be[2] = {htonl((uint32_t)(id >> 32)), htonl((uint32_t)id)};
                const char *vals[1] = {(const char *)be};
                int lens[1] = {8}, fmts[1] = {1};
                res = PQexecPrepared(conn, "w2", 1, vals, lens, fmts, 1);
                check_res(res, PGRES_TUPLES_OK, "W2");
                if (PQntuples(res) == 1) {
                    bench_row row;
                    decode_row(res, 0, &row);
                    found += row.id == (int64_t)id;
                }
                PQclear(res);
            }
            double dt = now_s() - t0;
            if (found != a.lookups)
                die("W2", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
        }
        emit(SYSTEM, "W2", "PQexecPrepared, binary, sequential", times, (int)a.runs,
             a.lookups, "");
    }

    if (wants(&a, "W3")) {
        buf b = {0};
        for (int i = 0; i < total; i++) {
            PGresult *res = PQexec(conn, "TRUNCATE bench_insert");
            check_res(res, PGRES_COMMAND_OK, "TRUNCATE");
            PQclear(res);
            double t0 = now_s();
            w3(src, nsrc, &b);
            double dt = now_s() - t0;
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
        }
        if (count_table("bench_insert") != a.rows)
            die("W3", "wrong row count in bench_insert");
        free(b.p);
        emit(SYSTEM, "W3", "binary COPY from structs", times, (int)a.runs, a.rows, "");
    }
    free(src);
    PQclear(src_res);

    if (wants(&a, "W4")) {
        for (int i = 0; i < total; i++) {
            w4_out o;
            double t0 = now_s();
            w4(a.w4_users, &o);
            double dt = now_s() - t0;
            if (o.nusers != a.w4_users || o.nposts != 10 * a.w4_users ||
                o.attached != o.nposts)
                die("W4", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
            w4_free(&o);
        }
        emit(SYSTEM, "W4", "two queries, structs grouped by hand", times, (int)a.runs,
             11 * a.w4_users, "");
    }
    PQfinish(conn);
    return 0;
}
