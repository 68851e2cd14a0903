/*
 * Cormorant's C API on the workloads, with what it offers today: the
 * blocking helpers (corm_conn_exec) and corm_result_get per cell into the
 * same structs the floor fills (bench/floor.c). Mapped structs (a model
 * decoding straight into C structs) do not exist yet; when they do, they
 * become a second variant here.
 *
 *   W1  corm_conn_exec, then corm_result_get for every cell
 *   W2  one corm_query, parameters cleared and rebound per lookup
 *   W3  multi-row INSERT of 1,000 rows a statement in one transaction
 *       (libcorm has no COPY yet)
 *   W4  two queries, structs grouped by hand
 */
#include "bench_common.h"

#include <corm.h>

#define SYSTEM "Cormorant C"
#define W3_BATCH 1000

static corm_conn *conn;
static corm_error err = CORM_ERROR_INIT;

static void check(int rc, const char *what)
{
    if (rc < 0)
        die(what, err.message ? err.message : corm_strerror(rc));
}

static void get(const corm_result *r, int row, int col, corm_value *v)
{
    check(corm_result_get(r, row, col, v, &err), "corm_result_get");
}

static void decode_row(const corm_result *res, int r, bench_row *row)
{
    corm_value v;
    get(res, r, 0, &v);
    row->id = v.v.i;
    get(res, r, 1, &v);
    row->name = v.v.str.ptr;
    get(res, r, 2, &v);
    row->email = v.v.str.ptr;
    get(res, r, 3, &v);
    row->age = (int32_t)v.v.i;
    get(res, r, 4, &v);
    row->score = v.v.f;
    get(res, r, 5, &v);
    row->active = v.v.b;
    get(res, r, 6, &v);
    row->created_at = v.v.i;
    get(res, r, 7, &v);
    size_t n = v.v.str.len < sizeof row->balance ? v.v.str.len : sizeof row->balance - 1;
    memcpy(row->balance, v.v.str.ptr, n);
    row->balance[n] = 0;
    get(res, r, 8, &v);
    memcpy(row->uuid, v.v.uuid, 16);
    get(res, r, 9, &v);
    row->tags = v.v.str.ptr;
    row->tags_len = v.v.str.len;
}

static corm_result *exec(corm_query *q)
{
    corm_result *res;
    check(corm_conn_exec(conn, q, &res, &err), "corm_conn_exec");
    return res;
}

static bench_row *w1(corm_query *q, corm_result **keep, long *n)
{
    corm_result *res = exec(q);
    int nrows = corm_result_nrows(res);
    bench_row *rows = malloc(sizeof *rows * (size_t)(nrows ? nrows : 1));
    if (!rows)
        die("out of memory", NULL);
    for (int r = 0; r < nrows; r++)
        decode_row(res, r, &rows[r]);
    *keep = res;
    *n = nrows;
    return rows;
}

static char *insert_sql(int nrows)
{
    size_t cap = 128 + (size_t)nrows * 80;
    char *s = malloc(cap), *p = s;
    if (!s)
        die("out of memory", NULL);
    p += sprintf(p, "INSERT INTO bench_insert (id, name, email, age, score, active, created_at, "
                    "balance, uuid, tags) VALUES ");
    int k = 1;
    for (int r = 0; r < nrows; r++) {
        p += sprintf(p, "%s(", r ? ", " : "");
        for (int c = 0; c < 10; c++, k++)
            p += sprintf(p, "%s$%d", c ? ", " : "", k);
        *p++ = ')';
    }
    *p = 0;
    return s;
}

static void bind_row(corm_query *q, const bench_row *r)
{
    corm_value v;
    check(corm_query_bind_int64(q, r->id, &err), "bind");
    check(corm_query_bind_text(q, r->name, -1, &err), "bind");
    check(corm_query_bind_text(q, r->email, -1, &err), "bind");
    memset(&v, 0, sizeof v);
    v.kind = CORM_INT;
    v.oid = CORM_OID_INT4;
    v.v.i = r->age;
    check(corm_query_bind(q, &v, &err), "bind");
    check(corm_query_bind_double(q, r->score, &err), "bind");
    check(corm_query_bind_bool(q, r->active, &err), "bind");
    memset(&v, 0, sizeof v);
    v.kind = CORM_TIMESTAMPTZ;
    v.v.i = r->created_at;
    check(corm_query_bind(q, &v, &err), "bind");
    memset(&v, 0, sizeof v);
    v.kind = CORM_NUMERIC;
    v.v.str.ptr = r->balance;
    v.v.str.len = strlen(r->balance);
    check(corm_query_bind(q, &v, &err), "bind");
    memset(&v, 0, sizeof v);
    v.kind = CORM_UUID;
    memcpy(v.v.uuid, r->uuid, 16);
    check(corm_query_bind(q, &v, &err), "bind");
    memset(&v, 0, sizeof v);
    v.kind = CORM_JSON;
    v.v.str.ptr = r->tags;
    v.v.str.len = r->tags_len;
    check(corm_query_bind(q, &v, &err), "bind");
}

static void w3(const bench_row *rows, long n, corm_query *full, const char *full_sql)
{
    check(corm_conn_exec_sql(conn, "BEGIN", NULL, &err), "BEGIN");
    for (long k = 0; k < n; k += W3_BATCH) {
        long m = n - k < W3_BATCH ? n - k : W3_BATCH;
        corm_query *q = full;
        char *sql = NULL;
        if (m != W3_BATCH) {
            sql = insert_sql((int)m);
            check(corm_query_sql(&q, sql, &err), "corm_query_sql");
        }
        corm_query_clear_params(q);
        for (long i = 0; i < m; i++)
            bind_row(q, &rows[k + i]);
        corm_result *res = exec(q);
        if (corm_result_affected(res) != m)
            die("W3", "wrong insert count");
        corm_result_free(res);
        if (q != full) {
            corm_query_free(q);
            free(sql);
        }
    }
    check(corm_conn_exec_sql(conn, "COMMIT", NULL, &err), "COMMIT");
    (void)full_sql;
}

typedef struct w4_out {
    corm_result *ures, *pres;
    bench_user *users;
    bench_post *posts;
    long nusers, nposts, attached;
} w4_out;

static void w4(corm_query *uq, corm_query *pq, long nusers, w4_out *o)
{
    corm_value v;
    corm_query_clear_params(uq);
    check(corm_query_bind_int64(uq, nusers, &err), "bind");
    o->ures = exec(uq);
    o->nusers = corm_result_nrows(o->ures);
    o->users = calloc((size_t)(o->nusers ? o->nusers : 1), sizeof *o->users);
    for (int i = 0; i < (int)o->nusers; i++) {
        get(o->ures, i, 0, &v);
        o->users[i].id = v.v.i;
        get(o->ures, i, 1, &v);
        o->users[i].name = v.v.str.ptr;
        get(o->ures, i, 2, &v);
        o->users[i].email = v.v.str.ptr;
        get(o->ures, i, 3, &v);
        o->users[i].created_at = v.v.i;
    }
    char *ids = id_array_text(o->users, o->nusers);
    corm_query_clear_params(pq);
    memset(&v, 0, sizeof v);
    v.kind = CORM_TEXT; /* untyped text: the server reads it as int8[] */
    v.v.str.ptr = ids;
    v.v.str.len = strlen(ids);
    check(corm_query_bind(pq, &v, &err), "bind");
    o->pres = exec(pq);
    free(ids);
    o->nposts = corm_result_nrows(o->pres);
    o->posts = calloc((size_t)(o->nposts ? o->nposts : 1), sizeof *o->posts);
    for (int i = 0; i < (int)o->nposts; i++) {
        bench_post *p = &o->posts[i];
        get(o->pres, i, 0, &v);
        p->id = v.v.i;
        get(o->pres, i, 1, &v);
        p->user_id = v.v.i;
        get(o->pres, i, 2, &v);
        p->title = v.v.str.ptr;
        get(o->pres, i, 3, &v);
        p->body = v.v.str.ptr;
        get(o->pres, i, 4, &v);
        p->created_at = v.v.i;
    }
    o->attached = group_posts(o->users, o->nusers, o->posts, o->nposts);
}

int main(int argc, char **argv)
{
    bench_args a;
    parse_args(argc, argv, &a);
    check(corm_conn_connect(&conn, a.url, NULL, &err), "corm_conn_connect");
    int total = (int)(a.warmup + a.runs);
    double times[MAX_RUNS];
    char note[128];
    snprintf(note, sizeof note, "libcorm %s; per-cell corm_result_get (no mapped structs yet)",
             corm_version());

    corm_query *q1;
    check(corm_query_sql(&q1, W1_SQL, &err), "corm_query_sql");
    corm_result *src_res;
    long nsrc;
    bench_row *src = w1(q1, &src_res, &nsrc);
    if (nsrc != a.rows || src[0].id != 1 || strlen(src[0].name) != 20)
        die("W1", "wrong rows");

    if (wants(&a, "W1")) {
        for (int i = 0; i < total; i++) {
            corm_result *res;
            long n;
            double t0 = now_s();
            bench_row *rows = w1(q1, &res, &n);
            double dt = now_s() - t0;
            if (n != a.rows)
                die("W1", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
            free(rows);
            corm_result_free(res);
        }
        emit(SYSTEM, "W1", "corm_conn_exec + corm_result_get per cell", times, (int)a.runs,
             a.rows, note);
    }

    if (wants(&a, "W2")) {
        corm_query *q;
        check(corm_query_sql(&q, W2_SQL, &err), "corm_query_sql");
        for (int i = 0; i < total; i++) {
            long found = 0;
            double t0 = now_s();
            for (long k = 0; k < a.lookups; k++) {
                int64_t id = lookup_id(k, a.rows);
                corm_query_clear_params(q);
                check(corm_query_bind_int64(q, id, &err), "bind");
                corm_result *res = exec(q);
                if (corm_result_nrows(res) == 1) {
                    bench_row row;
                    decode_row(res, 0, &row);
                    found += row.id == id;
                }
                corm_result_free(res);
            }
            double dt = now_s() - t0;
            if (found != a.lookups)
                die("W2", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
        }
        corm_query_free(q);
        emit(SYSTEM, "W2", "corm_conn_exec, sequential", times, (int)a.runs, a.lookups, "");
    }

    if (wants(&a, "W3")) {
        char *sql = insert_sql(W3_BATCH);
        corm_query *q;
        check(corm_query_sql(&q, sql, &err), "corm_query_sql");
        for (int i = 0; i < total; i++) {
            check(corm_conn_exec_sql(conn, "TRUNCATE bench_insert", NULL, &err), "TRUNCATE");
            double t0 = now_s();
            w3(src, nsrc, q, sql);
            double dt = now_s() - t0;
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
        }
        corm_query_free(q);
        free(sql);
        corm_result *res;
        int64_t n;
        check(corm_conn_exec_sql(conn, "SELECT count(*) FROM bench_insert", &res, &err), "count");
        check(corm_result_get_int64(res, 0, 0, &n, &err), "count");
        corm_result_free(res);
        if (n != a.rows)
            die("W3", "wrong row count in bench_insert");
        emit(SYSTEM, "W3", "multi-row INSERT, 1,000 rows a statement", times, (int)a.runs,
             a.rows, "no COPY in libcorm yet");
    }
    free(src);
    corm_result_free(src_res);
    corm_query_free(q1);

    if (wants(&a, "W4")) {
        corm_query *uq, *pq;
        check(corm_query_sql(&uq, W4_USERS_SQL, &err), "corm_query_sql");
        check(corm_query_sql(&pq, W4_POSTS_SQL, &err), "corm_query_sql");
        for (int i = 0; i < total; i++) {
            w4_out o;
            double t0 = now_s();
            w4(uq, pq, a.w4_users, &o);
            double dt = now_s() - t0;
            if (o.nusers != a.w4_users || o.nposts != 10 * a.w4_users ||
                o.attached != o.nposts)
                die("W4", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
            corm_result_free(o.ures);
            corm_result_free(o.pres);
            free(o.users);
            free(o.posts);
        }
        corm_query_free(uq);
        corm_query_free(pq);
        emit(SYSTEM, "W4", "two queries, structs grouped by hand", times, (int)a.runs,
             11 * a.w4_users, "int8[] parameter sent as untyped text");
    }
    corm_conn_close(conn);
    corm_error_clear(&err);
    return 0;
}
