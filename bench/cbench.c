/*
 * Cormorant's C API on the workloads: mapped structs (a corm_map decoding
 * every row of a result straight into an array of C structs) for reads and
 * binary COPY from those structs for W3, against the same columns and
 * conversions as the floor (bench/floor.c).
 *
 *   W1  corm_conn_exec, then corm_result_map_alloc into an array of structs;
 *       also the older path, corm_result_get per cell, as a second system
 *   W2  one corm_query, parameters cleared and rebound per lookup, the row
 *       mapped into a struct
 *   W3  binary COPY (corm_copy_put_wait per row) from W1's structs
 *   W4  two queries mapped into bench_user / bench_post, grouped by hand
 *
 * Only the workload is on the clock; results are freed after it stops.
 * Prints JSON lines (see bench_common.h).
 */
#include "bench_common.h"

#include <corm.h>

#define SYSTEM "Cormorant C"
#define SYSTEM_CELL "Cormorant C (per cell)"

static corm_conn *conn;
static corm_error err = CORM_ERROR_INIT;

static void check(int rc, const char *what)
{
    if (rc < 0)
        die(what, err.message ? err.message : corm_strerror(rc));
}

/* One bench_rows row as the map fills it. Unlike bench_row, numeric's text
 * is a pointer (the map makes it in the result's memory, there is no inline
 * buffer type), and every string keeps its length so W3's COPY needs no
 * strlen, which the floor pays. */
typedef struct crow {
    int64_t id;
    const char *name;
    size_t name_len;
    const char *email;
    size_t email_len;
    int32_t age;
    double score;
    bool active;
    int64_t created_at; /* microseconds since 2000-01-01 UTC */
    const char *balance; /* numeric(12,2) as its decimal text */
    size_t balance_len;
    uint8_t uuid[16];
    const char *tags; /* jsonb text */
    size_t tags_len;
} crow;

static const corm_field crow_fields[] = {
    CORM_FIELD("id", CORM_C_INT64, crow, id),
    CORM_FIELD_LEN("name", CORM_C_TEXT, crow, name, name_len),
    CORM_FIELD_LEN("email", CORM_C_TEXT, crow, email, email_len),
    CORM_FIELD("age", CORM_C_INT32, crow, age),
    CORM_FIELD("score", CORM_C_DOUBLE, crow, score),
    CORM_FIELD("active", CORM_C_BOOL, crow, active),
    CORM_FIELD("created_at", CORM_C_USEC, crow, created_at),
    CORM_FIELD_LEN("balance", CORM_C_TEXT, crow, balance, balance_len),
    CORM_FIELD("uuid", CORM_C_UUID, crow, uuid),
    CORM_FIELD_LEN("tags", CORM_C_TEXT, crow, tags, tags_len),
};

static const corm_field user_fields[] = {
    CORM_FIELD("id", CORM_C_INT64, bench_user, id),
    CORM_FIELD("name", CORM_C_TEXT, bench_user, name),
    CORM_FIELD("email", CORM_C_TEXT, bench_user, email),
    CORM_FIELD("created_at", CORM_C_USEC, bench_user, created_at),
};

static const corm_field post_fields[] = {
    CORM_FIELD("id", CORM_C_INT64, bench_post, id),
    CORM_FIELD("user_id", CORM_C_INT64, bench_post, user_id),
    CORM_FIELD("title", CORM_C_TEXT, bench_post, title),
    CORM_FIELD("body", CORM_C_TEXT, bench_post, body),
    CORM_FIELD("created_at", CORM_C_USEC, bench_post, created_at),
};

static corm_map *new_map(size_t size, const corm_field *fields, size_t n)
{
    corm_map *m;
    check(corm_map_new(&m, size, NULL, &err), "corm_map_new");
    check(corm_map_add_fields(m, fields, n, &err), "corm_map_add_fields");
    return m;
}

#define NEW_MAP(T, fields) new_map(sizeof(T), fields, sizeof fields / sizeof *fields)

static corm_result *exec(corm_query *q)
{
    corm_result *res;
    check(corm_conn_exec(conn, q, &res, &err), "corm_conn_exec");
    return res;
}

/* ---- W1, mapped ---- */

/* The rows live in res's memory: freeing res frees them. */
static crow *w1(corm_query *q, corm_map *map, corm_result **keep, long *n)
{
    corm_result *res = exec(q);
    void *rows;
    size_t nrows;
    check(corm_result_map_alloc(res, map, &rows, &nrows, &err), "corm_result_map_alloc");
    *keep = res;
    *n = (long)nrows;
    return rows;
}

/* ---- W1, per cell (what C users had before mapped structs) ---- */

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

static bench_row *w1_cells(corm_query *q, corm_result **keep, long *n)
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

/* ---- W3: binary COPY ---- */

static const char *const copy_cols[] = {"id",     "name",       "email",   "age",  "score",
                                        "active", "created_at", "balance", "uuid", "tags"};
/* Binary COPY converts nothing, so each oid is the column's exact type
 * (email is varchar, tags jsonb). */
static const uint32_t copy_oids[] = {
    CORM_OID_INT8,    CORM_OID_TEXT, CORM_OID_VARCHAR,     CORM_OID_INT4,
    CORM_OID_FLOAT8,  CORM_OID_BOOL, CORM_OID_TIMESTAMPTZ, CORM_OID_NUMERIC,
    CORM_OID_UUID,    CORM_OID_JSONB,
};

typedef struct copy_outcome {
    bool done;
    int64_t rows;
    corm_error err;
} copy_outcome;

static void copy_done(void *ud, corm_result *res, const corm_error *e)
{
    copy_outcome *o = ud;
    o->done = true;
    if (e)
        corm_error_copy(&o->err, e);
    else
        o->rows = corm_result_affected(res);
}

static void w3(const crow *rows, long n)
{
    copy_outcome out = {false, -1, CORM_ERROR_INIT};
    corm_copy *cp;
    check(corm_copy_open(&cp, conn, NULL, "bench_insert", copy_cols, copy_oids, 10, copy_done,
                         &out, &err),
          "corm_copy_open");
    /* Kinds never change between rows: set them once, then only payloads. */
    corm_value v[10];
    memset(v, 0, sizeof v);
    static const corm_kind kinds[10] = {
        CORM_INT,  CORM_TEXT,        CORM_TEXT,    CORM_INT,  CORM_FLOAT,
        CORM_BOOL, CORM_TIMESTAMPTZ, CORM_NUMERIC, CORM_UUID, CORM_JSON,
    };
    for (int c = 0; c < 10; c++)
        v[c].kind = kinds[c];
    int put_rc = CORM_OK;
    for (long i = 0; i < n && put_rc == CORM_OK; i++) {
        const crow *r = &rows[i];
        v[0].v.i = r->id;
        v[1].v.str.ptr = r->name;
        v[1].v.str.len = r->name_len;
        v[2].v.str.ptr = r->email;
        v[2].v.str.len = r->email_len;
        v[3].v.i = r->age;
        v[4].v.f = r->score;
        v[5].v.b = r->active;
        v[6].v.i = r->created_at;
        v[7].v.str.ptr = r->balance;
        v[7].v.str.len = r->balance_len;
        memcpy(v[8].v.uuid, r->uuid, 16);
        v[9].v.str.ptr = r->tags;
        v[9].v.str.len = r->tags_len;
        /* A refused copy fails every later put; the server's reason only
         * reaches copy_done, once the copy has ended. */
        put_rc = corm_copy_put_wait(cp, v, &err);
    }
    check(corm_copy_end_wait(cp, &err), "corm_copy_end_wait");
    corm_copy_free(cp);
    if (!out.done || out.err.code)
        die("W3 COPY", out.err.message ? out.err.message : "no outcome");
    check(put_rc, "corm_copy_put_wait");
    if (out.rows != n)
        die("W3", "wrong COPY count");
}

/* ---- W4 ---- */

typedef struct w4_out {
    corm_result *ures, *pres;
    bench_user *users; /* both arrays live in their result's memory */
    bench_post *posts;
    long nusers, nposts, attached;
} w4_out;

static void w4(corm_query *uq, corm_query *pq, corm_map *umap, corm_map *pmap, long nusers,
               w4_out *o)
{
    void *p;
    size_t n;
    corm_query_clear_params(uq);
    check(corm_query_bind_int64(uq, nusers, &err), "bind");
    o->ures = exec(uq);
    /* map_alloc zeroes the array, so posts/nposts start empty for grouping */
    check(corm_result_map_alloc(o->ures, umap, &p, &n, &err), "corm_result_map_alloc");
    o->users = p;
    o->nusers = (long)n;
    char *ids = id_array_text(o->users, o->nusers);
    corm_value v;
    memset(&v, 0, sizeof v);
    v.kind = CORM_TEXT; /* untyped text: the server reads it as int8[] */
    v.v.str.ptr = ids;
    v.v.str.len = strlen(ids);
    corm_query_clear_params(pq);
    check(corm_query_bind(pq, &v, &err), "bind");
    o->pres = exec(pq);
    free(ids);
    check(corm_result_map_alloc(o->pres, pmap, &p, &n, &err), "corm_result_map_alloc");
    o->posts = p;
    o->nposts = (long)n;
    o->attached = group_posts(o->users, o->nusers, o->posts, o->nposts);
}

int main(int argc, char **argv)
{
    bench_args a;
    parse_args(argc, argv, &a);
    check(corm_conn_connect(&conn, a.url, NULL, &err), "corm_conn_connect");
    int total = (int)(a.warmup + a.runs);
    double times[MAX_RUNS] = {0};
    /* Same conversions as the floor, so the same note. */
    char note[128];
    snprintf(note, sizeof note, "libcorm %s; numeric to text, jsonb left as text", corm_version());

    corm_map *rmap = NEW_MAP(crow, crow_fields);
    corm_query *q1;
    check(corm_query_sql(&q1, W1_SQL, &err), "corm_query_sql");
    /* W1's rows are also W3's source. */
    corm_result *src_res;
    long nsrc;
    crow *src = w1(q1, rmap, &src_res, &nsrc);
    if (nsrc != a.rows || src[0].id != 1 || src[0].name_len != 20 || src[0].email_len != 24 ||
        strlen(src[0].name) != 20)
        die("W1", "wrong rows");

    if (wants(&a, "W1")) {
        for (int i = 0; i < total; i++) {
            corm_result *res;
            long n;
            double t0 = now_s();
            w1(q1, rmap, &res, &n);
            double dt = now_s() - t0;
            if (n != a.rows)
                die("W1", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
            corm_result_free(res);
        }
        emit(SYSTEM, "W1", "corm_conn_exec + corm_result_map_alloc (mapped structs)", times,
             (int)a.runs, a.rows, note);

        for (int i = 0; i < total; i++) {
            corm_result *res;
            long n;
            double t0 = now_s();
            bench_row *rows = w1_cells(q1, &res, &n);
            double dt = now_s() - t0;
            if (n != a.rows)
                die("W1", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
            free(rows);
            corm_result_free(res);
        }
        emit(SYSTEM_CELL, "W1", "corm_conn_exec + corm_result_get per cell", times, (int)a.runs,
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
                crow row;
                size_t got;
                check(corm_result_map(res, rmap, &row, 1, 0, &got, &err), "corm_result_map");
                if (got == 1)
                    found += row.id == id;
                corm_result_free(res);
            }
            double dt = now_s() - t0;
            if (found != a.lookups)
                die("W2", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
        }
        corm_query_free(q);
        emit(SYSTEM, "W2", "corm_conn_exec + corm_result_map, sequential", times, (int)a.runs,
             a.lookups, "");
    }

    if (wants(&a, "W3")) {
        for (int i = 0; i < total; i++) {
            check(corm_conn_exec_sql(conn, "TRUNCATE bench_insert", NULL, &err), "TRUNCATE");
            double t0 = now_s();
            w3(src, nsrc);
            double dt = now_s() - t0;
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
        }
        corm_result *res;
        int64_t n;
        check(corm_conn_exec_sql(conn, "SELECT count(*) FROM bench_insert", &res, &err), "count");
        check(corm_result_get_int64(res, 0, 0, &n, &err), "count");
        corm_result_free(res);
        if (n != a.rows)
            die("W3", "wrong row count in bench_insert");
        emit(SYSTEM, "W3", "binary COPY from structs (corm_copy_put_wait)", times, (int)a.runs,
             a.rows, "");
    }
    corm_result_free(src_res);
    corm_query_free(q1);
    corm_map_free(rmap);

    if (wants(&a, "W4")) {
        corm_query *uq, *pq;
        check(corm_query_sql(&uq, W4_USERS_SQL, &err), "corm_query_sql");
        check(corm_query_sql(&pq, W4_POSTS_SQL, &err), "corm_query_sql");
        corm_map *umap = NEW_MAP(bench_user, user_fields);
        corm_map *pmap = NEW_MAP(bench_post, post_fields);
        for (int i = 0; i < total; i++) {
            w4_out o;
            double t0 = now_s();
            w4(uq, pq, umap, pmap, a.w4_users, &o);
            double dt = now_s() - t0;
            if (o.nusers != a.w4_users || o.nposts != 10 * a.w4_users ||
                o.attached != o.nposts)
                die("W4", "wrong row count");
            if (i >= a.warmup)
                times[i - a.warmup] = dt;
            corm_result_free(o.ures);
            corm_result_free(o.pres);
        }
        corm_map_free(umap);
        corm_map_free(pmap);
        corm_query_free(uq);
        corm_query_free(pq);
        emit(SYSTEM, "W4", "two queries, mapped structs grouped by hand", times, (int)a.runs,
             11 * a.w4_users, "int8[] parameter sent as untyped text");
    }
    corm_conn_close(conn);
    corm_error_clear(&err);
    return 0;
}
