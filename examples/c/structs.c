/*
 * structs.c - Cormorant from C: rows decoded straight into an array of
 * structs, the C front end's fastest path.
 *
 *   cc structs.c $(pkg-config --cflags --libs corm) -o structs
 *   DATABASE_URL=postgresql://localhost/postgres ./structs
 */
#include <corm.h>

#include <stdio.h>
#include <stdlib.h>

struct user {
    int64_t id;
    const char *name;      /* points into the result: valid while it lives */
    double score;
    bool active;
    int64_t created_at_us; /* microseconds since 2000-01-01 UTC */
    bool email_is_null;
    const char *email;
};

/* Which column fills which member, as what C type. Columns are found by
 * name in each result, so the SELECT list may come in any order. */
static const corm_field user_fields[] = {
    CORM_FIELD("id", CORM_C_INT64, struct user, id),
    CORM_FIELD("name", CORM_C_TEXT, struct user, name),
    CORM_FIELD("score", CORM_C_DOUBLE, struct user, score),
    CORM_FIELD("active", CORM_C_BOOL, struct user, active),
    CORM_FIELD("created_at", CORM_C_USEC, struct user, created_at_us),
    CORM_FIELD_NULL("email", CORM_C_TEXT, struct user, email, email_is_null),
};

static int fail(const char *what, corm_error *err)
{
    fprintf(stderr, "%s: [%s] %s\n", what, corm_errname(err->code), err->message);
    corm_error_clear(err);
    return 1;
}

int main(void)
{
    const char *url = getenv("DATABASE_URL");
    corm_error err = CORM_ERROR_INIT;
    corm_conn *db;
    if (corm_conn_connect(&db, url ? url : "postgresql:///postgres", NULL, &err) < 0)
        return fail("connect", &err);

    if (corm_conn_exec_sql(db, "DROP TABLE IF EXISTS structs_user", NULL, &err) < 0 ||
        corm_conn_exec_sql(db,
                           "CREATE TABLE structs_user (id bigint GENERATED ALWAYS AS IDENTITY"
                           " PRIMARY KEY, name text NOT NULL, score float8 NOT NULL,"
                           " active bool NOT NULL, created_at timestamptz NOT NULL,"
                           " email text)",
                           NULL, &err) < 0)
        return fail("schema", &err);

    /* Insert a few users with bound parameters (a NULL email for one). */
    static const struct { const char *name; double score; bool active; const char *email; }
        people[] = {
            {"ada", 9.5, true, "ada@example.org"},
            {"brian", 7.25, false, NULL},
            {"grace", 8.75, true, "grace@example.org"},
        };
    corm_query *q;
    if (corm_query_sql(&q,
                       "INSERT INTO structs_user (name, score, active, created_at, email)"
                       " VALUES ($1, $2, $3, '2024-05-01 12:00:00+00'::timestamptz"
                       " + $4 * interval '1 hour', $5)",
                       &err) < 0)
        return fail("prepare insert", &err);
    for (int i = 0; i < 3; i++) {
        corm_query_clear_params(q);
        if (corm_query_bind_text(q, people[i].name, -1, &err) < 0 ||
            corm_query_bind_double(q, people[i].score, &err) < 0 ||
            corm_query_bind_bool(q, people[i].active, &err) < 0 ||
            corm_query_bind_int64(q, i, &err) < 0 ||
            (people[i].email ? corm_query_bind_text(q, people[i].email, -1, &err)
                             : corm_query_bind_null(q, &err)) < 0 ||
            corm_conn_exec(db, q, NULL, &err) < 0)
            return fail("insert", &err);
    }
    corm_query_free(q);

    /* Describe the struct once; the map serves every result after. */
    corm_map *map;
    if (corm_map_new(&map, sizeof(struct user), NULL, &err) < 0 ||
        corm_map_add_fields(map, user_fields, sizeof user_fields / sizeof *user_fields,
                            &err) < 0)
        return fail("map", &err);

    corm_result *res;
    if (corm_conn_exec_sql(db,
                           "SELECT id, name, score, active, created_at, email"
                           " FROM structs_user ORDER BY id",
                           &res, &err) < 0)
        return fail("select", &err);

    /* Every row into an array the result owns (freed with it). */
    struct user *users;
    size_t n;
    if (corm_result_map_alloc(res, map, (void **)&users, &n, &err) < 0)
        return fail("map rows", &err);
    for (size_t i = 0; i < n; i++) {
        const struct user *u = &users[i];
        corm_datetime t;
        corm_timestamp_to_civil(u->created_at_us, &t, NULL);
        printf("user %lld %-6s score %5.2f %-8s joined %04d-%02d-%02d %02d:%02d UTC  email %s\n",
               (long long)u->id, u->name, u->score, u->active ? "active" : "inactive",
               (int)t.year, (int)t.month, (int)t.day, (int)t.hour, (int)t.minute,
               u->email_is_null ? "(none)" : u->email);
    }
    corm_result_free(res);
    corm_map_free(map);

    corm_conn_exec_sql(db, "DROP TABLE structs_user", NULL, NULL);
    corm_conn_close(db);
    return 0;
}
