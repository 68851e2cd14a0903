/*
 * blog.c - Cormorant from C: users and posts on one connection.
 *
 *   cc blog.c $(pkg-config --cflags --libs corm) -o blog
 *   DATABASE_URL=postgresql://localhost/postgres ./blog
 */
#include <corm.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, corm_error *err)
{
    fprintf(stderr, "%s: [%s] %s\n", what, corm_errname(err->code), err->message);
    if (err->detail)
        fprintf(stderr, "  detail: %s\n", err->detail);
    corm_error_clear(err);
    return 1;
}

/* Called once per pipelined insert, in the order they were submitted. */
static void post_inserted(void *ud, corm_result *res, const corm_error *err)
{
    int *count = ud;
    if (err)
        fprintf(stderr, "insert failed: %s\n", err->message);
    else
        *count += (int)corm_result_affected(res);
}

int main(void)
{
    const char *url = getenv("DATABASE_URL");
    corm_error err = CORM_ERROR_INIT;
    corm_conn *db;
    if (corm_conn_connect(&db, url ? url : "postgresql:///postgres", NULL, &err) < 0)
        return fail("connect", &err);

    const char *schema[] = {
        "DROP TABLE IF EXISTS blog_post, blog_user",
        "CREATE TABLE blog_user (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " name varchar(30) NOT NULL UNIQUE)",
        "CREATE TABLE blog_post (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " user_id bigint NOT NULL REFERENCES blog_user ON DELETE CASCADE,"
        " title text NOT NULL)",
    };
    for (size_t i = 0; i < sizeof schema / sizeof *schema; i++)
        if (corm_conn_exec_sql(db, schema[i], NULL, &err) < 0)
            return fail("schema", &err);

    /* Insert a user; parameters are bound, never spliced into the SQL. */
    corm_query *q;
    corm_result *res;
    int64_t user_id;
    if (corm_query_sql(&q, "INSERT INTO blog_user (name) VALUES ($1) RETURNING id", &err) < 0 ||
        corm_query_bind_text(q, "Gemini", -1, &err) < 0 || corm_conn_exec(db, q, &res, &err) < 0)
        return fail("insert user", &err);
    corm_result_get_int64(res, 0, 0, &user_id, &err);
    corm_result_free(res);

    /* The same name again breaks the UNIQUE constraint: an integrity error. */
    if (corm_conn_exec(db, q, NULL, &err) < 0) {
        printf("duplicate user refused: %s (%s, SQLSTATE %s)\n", err.message,
               corm_errname(err.code), err.sqlstate);
        corm_error_clear(&err);
    }
    corm_query_free(q);

    /* Three posts pipelined: submitted at once, completed in order. */
    const char *titles[] = {"hello", "pipelines", "binary rows"};
    int inserted = 0;
    if (corm_query_sql(&q, "INSERT INTO blog_post (user_id, title) VALUES ($1, $2)", &err) < 0)
        return fail("prepare", &err);
    for (int i = 0; i < 3; i++) {
        corm_query_clear_params(q);
        if (corm_query_bind_int64(q, user_id, &err) < 0 ||
            corm_query_bind_text(q, titles[i], -1, &err) < 0 ||
            corm_conn_submit(db, q, post_inserted, &inserted, NULL, &err) < 0)
            return fail("submit post", &err);
    }
    corm_query_free(q);
    if (corm_conn_drain(db, &err) < 0)
        return fail("drain", &err);
    printf("inserted %d posts\n", inserted);

    /* Read them back, typed. */
    if (corm_query_sql(&q,
                       "SELECT p.id, u.name, p.title FROM blog_post p"
                       " JOIN blog_user u ON u.id = p.user_id WHERE u.id = $1 ORDER BY p.id",
                       &err) < 0 ||
        corm_query_bind_int64(q, user_id, &err) < 0 || corm_conn_exec(db, q, &res, &err) < 0)
        return fail("select", &err);
    corm_query_free(q);
    for (int row = 0; row < corm_result_nrows(res); row++) {
        int64_t id;
        const char *name, *title;
        if (corm_result_get_int64(res, row, 0, &id, &err) < 0 ||
            corm_result_get_text(res, row, 1, &name, NULL, &err) < 0 ||
            corm_result_get_text(res, row, 2, &title, NULL, &err) < 0)
            return fail("read row", &err);
        printf("post %lld by %s: %s\n", (long long)id, name, title);
    }
    corm_result_free(res);

    corm_conn_exec_sql(db, "DROP TABLE blog_post, blog_user", NULL, NULL);
    corm_conn_close(db);
    return 0;
}
