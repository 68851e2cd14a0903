/*
 * test_sql_oom.c - out of memory on every allocation path of the model
 * registry, expressions, the query builder and compiler, and DDL: a
 * failing allocator (fail the Nth request, N = 1, 2, ... until the whole
 * workload succeeds). Never a crash, CORM_ENOMEM returned, nothing leaked,
 * the sizes given back to the allocator always right.
 */
#define CTEST_MAIN
#include "ctest.h"

#include <stdlib.h>
#include <string.h>

#include "corm.h"
#include "corm_int.h"

#include "test_failer.h"

/* Everything below, in one registry; returns the first failure. */
#define TRY(call)                                                      \
    do {                                                               \
        rc = (call);                                                   \
        if (rc < 0)                                                    \
            goto done;                                                 \
    } while (0)

#define E(var, call) TRY(call); exprs[nexprs++] = (var)

static int workload(const corm_options *opt, corm_error *err, char *sql_out, size_t size)
{
    corm_registry *reg = NULL;
    corm_query *qs[16] = {0};
    corm_expr *exprs[64] = {0};
    corm_ddl *ddl = NULL;
    int nexprs = 0, rc = CORM_OK;
    corm_model *u = NULL, *p = NULL;
    TRY(corm_registry_new(&reg, opt, err));
    const char *labels[] = {"happy", "it's", "caf\xc3\xa9"};
    TRY(corm_registry_add_enum(reg, "s", "mood", 3, labels, err));
    TRY(corm_registry_add_type(reg, NULL, "citext", err));
    TRY(corm_model_new(&u, reg, "s", "users", err));
    int uid, uname, umood, uscore;
    TRY(uid = corm_model_add_column(u, "id", "bigint", CORM_COL_PRIMARY_KEY, err));
    TRY(uname = corm_model_add_column(u, "name", "varchar(30)", CORM_COL_UNIQUE, err));
    TRY(umood = corm_model_add_column(u, "mood", "mood", CORM_COL_NULL, err));
    TRY(uscore = corm_model_add_column(u, "score", "numeric(12,2)", 0, err));
    TRY(corm_model_add_column(u, "nick", "citext", CORM_COL_NULL, err));
    corm_value zero = {.kind = CORM_TEXT};
    zero.v.str.ptr = "0 \xe2\x82\xac";
    zero.v.str.len = strlen(zero.v.str.ptr);
    TRY(corm_model_set_default_sql(u, uscore, "0", err));
    TRY(corm_model_add_check(u, "pos", "score >= 0", err));
    TRY(corm_model_add_unique(u, NULL, 2, (int[]){uname, umood}, err));
    char longtable[64];
    memset(longtable, 'p', 62);
    longtable[62] = 0;
    TRY(corm_model_new(&p, reg, "s", longtable, err));
    int pid, puser, ptitle;
    TRY(pid = corm_model_add_column(p, "id", "uuid", CORM_COL_PRIMARY_KEY, err));
    TRY(puser = corm_model_add_column(p, "user_id", "bigint", 0, err));
    TRY(ptitle = corm_model_add_column(p, "title_with_a_long_name", "text", 0, err));
    TRY(corm_model_set_default(p, ptitle, &zero, err));
    TRY(corm_model_add_foreign_key(p, NULL, 1, &puser, u, NULL, CORM_FK_CASCADE, 0, err));
    TRY(corm_model_add_foreign_key(u, "back", 1, &uid, p, NULL, 0, 0, err) == CORM_EPROGRAMMING
            ? CORM_OK
            : CORM_EINTERNAL);
    TRY(corm_model_add_index(p, NULL, 2, (int[]){puser, ptitle}, 0, "gin", "title <> ''", err));
    (void)pid;

    /* A query with most constructs. */
    corm_expr *cid, *cname, *cmood, *cuser, *ctitle, *in, *like, *cnt, *sub, *w, *raw, *rn,
        *part, *sum, *ord;
    E(cid, corm_expr_column(&cid, u, uid, NULL, err));
    E(cname, corm_expr_column(&cname, u, uname, NULL, err));
    E(cmood, corm_expr_column(&cmood, u, umood, NULL, err));
    E(cuser, corm_expr_column(&cuser, p, puser, NULL, err));
    E(ctitle, corm_expr_column(&ctitle, p, ptitle, NULL, err));
    corm_value ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = (corm_value){.kind = CORM_INT, .v.i = i};
    E(in, corm_expr_in(&in, cid, 40, ids, false, err));
    corm_value moods[2] = {{.kind = CORM_TEXT}, {.kind = CORM_TEXT}};
    moods[0].v.str.ptr = "happy", moods[0].v.str.len = 5;
    moods[1].v.str.ptr = "it's", moods[1].v.str.len = 4;
    corm_expr *inm;
    E(inm, corm_expr_in(&inm, cmood, 2, moods, true, err));
    corm_value pat = {.kind = CORM_TEXT};
    pat.v.str.ptr = "50%_x";
    pat.v.str.len = 5;
    E(like, corm_expr_cmp(&like, cname, CORM_ICONTAINS, &pat, err));
    E(cnt, corm_expr_agg(&cnt, reg, CORM_COUNT, NULL, 0, err));
    TRY(corm_query_select(&qs[0], p, NULL, err));
    TRY(corm_query_select_expr(qs[0], cnt, NULL, err));
    corm_expr *corr;
    E(corr, corm_expr_op(&corr, CORM_EQ, cuser, cid, err));
    TRY(corm_query_where(qs[0], corr, err));
    E(sub, corm_expr_subquery(&sub, qs[0], err));
    E(raw, corm_expr_raw(&raw, reg, "$1 = $2 OR '$1' = 'x'", 2, ids, err));
    E(rn, corm_expr_func(&rn, reg, "row_number", 0, NULL, err));
    E(ord, corm_expr_order(&ord, cname, CORM_DESC, err));
    E(w, corm_expr_over(&w, rn, 1, (const corm_expr *const[]){cmood}, 1,
                        (const corm_expr *const[]){ord}, err));
    E(part, corm_expr_cast(&part, cid, "text", err));
    E(sum, corm_expr_and(&sum, in, like, err));
    TRY(corm_query_select(&qs[1], u, NULL, err));
    TRY(corm_query_join(qs[1], CORM_JOIN_LEFT, p, NULL, NULL, err));
    TRY(corm_query_select_all(qs[1], u, NULL, err));
    TRY(corm_query_select_expr(qs[1], sub, "n", err));
    TRY(corm_query_select_expr(qs[1], w, "rank", err));
    TRY(corm_query_select_expr(qs[1], part, "sid", err));
    TRY(corm_query_where(qs[1], sum, err));
    TRY(corm_query_where(qs[1], inm, err));
    TRY(corm_query_where(qs[1], raw, err));
    TRY(corm_query_order_by(qs[1], cname, CORM_NULLS_LAST, err));
    TRY(corm_query_limit(qs[1], 10, err));
    TRY(corm_query_offset(qs[1], 5, err));
    TRY(corm_query_lock(qs[1], CORM_FOR_UPDATE | CORM_LOCK_SKIP_LOCKED, err));
    TRY(corm_query_select(&qs[2], u, NULL, err));
    TRY(corm_query_select_expr(qs[2], cid, NULL, err));
    TRY(corm_query_with(qs[1], "c", 1, (const char *const[]){"id"}, qs[2], 0, err));
    TRY(corm_query_compile(qs[1], err));
    snprintf(sql_out, size, "%s", corm_query_text(qs[1]));
    /* The same shape again: from the cache. */
    TRY(corm_query_select(&qs[3], u, NULL, err));
    TRY(corm_query_where(qs[3], in, err));
    TRY(corm_query_compile(qs[3], err));
    TRY(corm_query_select(&qs[4], u, NULL, err));
    TRY(corm_query_where(qs[4], in, err));
    TRY(corm_query_compile(qs[4], err));
    /* INSERT many rows with upsert; UPDATE; DELETE. */
    TRY(corm_query_insert(&qs[5], u, err));
    for (int i = 0; i < 3; i++)
        TRY(corm_query_values(qs[5], 1, &uname, &pat, err));
    TRY(corm_query_on_conflict(qs[5], 1, &uname, CORM_CONFLICT_UPDATE, err));
    corm_expr *ex;
    E(ex, corm_expr_excluded(&ex, u, umood, err));
    TRY(corm_query_set(qs[5], umood, ex, err));
    TRY(corm_query_returning_all(qs[5], err));
    TRY(corm_query_compile(qs[5], err));
    TRY(corm_query_update(&qs[6], u, err));
    TRY(corm_query_set_value(qs[6], uname, &pat, err));
    TRY(corm_query_where(qs[6], like, err));
    TRY(corm_query_compile(qs[6], err));
    TRY(corm_query_delete(&qs[7], p, err));
    TRY(corm_query_where(qs[7], corr, err));
    TRY(corm_query_returning(qs[7], ctitle, "t", err));
    /* DDL both ways. */
    TRY(corm_ddl_create(&ddl, reg, 0, NULL, CORM_DDL_IF_NOT_EXISTS, err));
    corm_ddl_free(ddl);
    ddl = NULL;
    TRY(corm_ddl_drop(&ddl, reg, 0, NULL, CORM_DDL_CASCADE, err));
done:
    corm_ddl_free(ddl);
    for (int i = 0; i < nexprs; i++)
        corm_expr_free(exprs[i]);
    for (int i = 0; i < 16; i++)
        corm_query_free(qs[i]);
    corm_registry_free(reg);
    return rc;
}

TEST(every_allocation_can_fail)
{
    corm_error err = CORM_ERROR_INIT;
    char want[4096] = "", got[4096] = "";
    /* The reference run, with malloc. */
    CHECK_OK(workload(NULL, &err, want, sizeof want), &err);
    CHECK(strlen(want) > 100);
    long n;
    for (n = 1;; n++) {
        for (int sticky = 0; sticky < 2; sticky++) {
            failer f = {0};
            f.fail_at = n;
            f.sticky = sticky;
            corm_options opt;
            corm_options_init(&opt);
            opt.alloc = failer_alloc;
            opt.alloc_ud = &f;
            got[0] = 0;
            int rc = workload(&opt, &err, got, sizeof got);
            CHECK_MSG(f.live_blocks == 0 && f.live_bytes == 0,
                      "failing allocation %ld (sticky %d): %ld blocks (%zu bytes) never freed",
                      n, sticky, f.live_blocks, f.live_bytes);
            CHECK_MSG(f.size_errors == 0, "failing allocation %ld: %d frees with a wrong size",
                      n, f.size_errors);
            if (f.failures == 0) {
                CHECK_OK(rc, &err);
                CHECK_STR(got, want);
                goto finished;
            }
            CHECK_MSG(rc == CORM_ENOMEM || (rc == CORM_OK && !sticky),
                      "allocation %ld failing (sticky %d): %d (%s) %s", n, sticky, rc,
                      corm_errname(rc), err.message ? err.message : "");
            if (rc == CORM_OK)
                CHECK_STR(got, want); /* a failure absorbed (the cache) changes nothing */
            corm_error_clear(&err);
        }
    }
finished:
    printf("the workload makes %ld allocations; each failed in turn\n", n - 1);
    CHECK(n > 50);
    corm_error_clear(&err);
}
