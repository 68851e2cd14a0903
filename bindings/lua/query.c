/*
 * query.c - cormorant.expr and cormorant.query: userdata over the engine's
 * corm_expr and built corm_query, and the decoding of a built query's rows
 * straight into tables carrying a model's metatable. SQL text, parameter
 * typing and result-column mapping are the engine's.
 */
#include "lcorm.h"

#include <string.h>

typedef struct {
    corm_expr *e;         /* NULL: freed */
    unsigned flags;       /* ORDER BY flags (asc/desc/nulls) carried along */
} lcorm_exprud;

typedef struct {
    corm_query *q;        /* NULL: freed */
} lcorm_queryud;

/* ---- expressions -------------------------------------------------------- */

static int expr_gc(lua_State *L)
{
    lcorm_exprud *u = luaL_checkudata(L, 1, LCORM_EXPR);
    corm_expr_free(u->e);
    u->e = NULL;
    return 0;
}

int lcorm_expr_slot(lua_State *L)
{
    lcorm_exprud *u = lcorm_newuserdata(L, sizeof *u);
    u->e = NULL;
    u->flags = 0;
    luaL_setmetatable(L, LCORM_EXPR);
    return lua_gettop(L);
}

int lcorm_expr_fill(lua_State *L, int slot, corm_expr *e, unsigned flags)
{
    lcorm_exprud *u = lua_touserdata(L, slot);
    u->e = e;
    u->flags = flags;
    lua_pushvalue(L, slot);
    return 1;
}

corm_expr *lcorm_testexpr(lua_State *L, int idx)
{
    lcorm_exprud *u = luaL_testudata(L, idx, LCORM_EXPR);
    return u ? u->e : NULL;
}

corm_expr *lcorm_checkexpr(lua_State *L, int idx)
{
    lcorm_exprud *u = luaL_checkudata(L, idx, LCORM_EXPR);
    if (!u->e)
        luaL_argerror(L, idx, "freed expression");
    return u->e;
}

unsigned lcorm_expr_flags(lua_State *L, int idx)
{
    lcorm_exprud *u = luaL_testudata(L, idx, LCORM_EXPR);
    return u ? u->flags : 0;
}

static corm_query *checkquery(lua_State *L, int idx)
{
    lcorm_queryud *u = luaL_checkudata(L, idx, LCORM_QUERY);
    if (!u->q)
        luaL_argerror(L, idx, "freed query");
    return u->q;
}

/* Pushes the new expression made by rc/e into its slot, or nil, err. */
static int expr_result(lua_State *L, int slot, int rc, corm_expr *e, unsigned flags,
                       corm_error *err)
{
    if (rc < 0)
        return lcorm_fail(L, err);
    return lcorm_expr_fill(L, slot, e, flags);
}

/* lhs op rhs: rhs an expression (corm_expr_op) or a value bound typed like
 * lhs (corm_expr_cmp). eq(nil) and ne(nil) are IS [NOT] NULL. */
static int cmp(lua_State *L, int op)
{
    corm_expr *lhs = lcorm_checkexpr(L, 1);
    luaL_checkany(L, 2);
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    corm_expr *rhs = lcorm_testexpr(L, 2);
    int rc;
    if (rhs) {
        rc = corm_expr_op(&e, op, lhs, rhs, &err);
    } else if (lua_isnil(L, 2) && (op == CORM_EQ || op == CORM_NE)) {
        rc = corm_expr_is_null(&e, lhs, op == CORM_NE, &err);
    } else {
        corm_value v;
        lcorm_to_value(L, 2, &v);
        rc = corm_expr_cmp(&e, lhs, op, &v, &err);
    }
    return expr_result(L, slot, rc, e, 0, &err);
}

#define CMP(name, op) \
    static int e_##name(lua_State *L) { return cmp(L, op); }
CMP(eq, CORM_EQ)
CMP(ne, CORM_NE)
CMP(lt, CORM_LT)
CMP(le, CORM_LE)
CMP(gt, CORM_GT)
CMP(ge, CORM_GE)
CMP(like, CORM_LIKE)
CMP(ilike, CORM_ILIKE)
CMP(not_like, CORM_NOT_LIKE)
CMP(not_ilike, CORM_NOT_ILIKE)
CMP(contains, CORM_CONTAINS)
CMP(icontains, CORM_ICONTAINS)
CMP(startswith, CORM_STARTSWITH)
CMP(istartswith, CORM_ISTARTSWITH)
CMP(endswith, CORM_ENDSWITH)
CMP(iendswith, CORM_IENDSWITH)
CMP(add, CORM_ADD)
CMP(sub, CORM_SUB)
CMP(mul, CORM_MUL)
CMP(div, CORM_DIV)
CMP(mod, CORM_MOD)
CMP(concat, CORM_CONCAT)

/* x:in_({values...} | subquery), x:not_in(...): one array parameter. */
static int in_list(lua_State *L, bool negate)
{
    corm_expr *lhs = lcorm_checkexpr(L, 1);
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    lcorm_queryud *sub = luaL_testudata(L, 2, LCORM_QUERY);
    if (sub) {
        int rc = corm_expr_in_query(&e, lhs, checkquery(L, 2), negate, &err);
        return expr_result(L, slot, rc, e, 0, &err);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_rawlen(L, 2);
    corm_value *vals = lua_newuserdata(L, sizeof *vals * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        int t = lua_type(L, -1);
        if (t == LUA_TTABLE)
            return luaL_argerror(L, 2, "in_ takes a list of scalar values");
        lcorm_to_value(L, lua_gettop(L), &vals[i]);
        if (t != LCORM_TCDATA)
            lua_pop(L, 1);   /* strings stay anchored in the list */
        luaL_checkstack(L, 2, NULL);
    }
    int rc = corm_expr_in(&e, lhs, n, vals, negate, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

static int e_in(lua_State *L) { return in_list(L, false); }
static int e_not_in(lua_State *L) { return in_list(L, true); }

/* x:between(lo, hi), x:not_between(lo, hi): lo and hi values or exprs. */
static int between(lua_State *L, bool negate)
{
    corm_expr *x = lcorm_checkexpr(L, 1);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    /* convert both first: lcorm_to_value may raise */
    corm_value vlo, vhi;
    corm_expr *xlo = lcorm_testexpr(L, 2), *xhi = lcorm_testexpr(L, 3);
    if (!xlo)
        lcorm_to_value(L, 2, &vlo);
    if (!xhi)
        lcorm_to_value(L, 3, &vhi);
    corm_error err = CORM_ERROR_INIT;
    int slot = lcorm_expr_slot(L);
    corm_expr *lo = NULL, *hi = NULL, *e = NULL;
    int rc = CORM_OK;
    lo = xlo ? corm_expr_ref(xlo) : NULL;
    if (!xlo)
        rc = corm_expr_value_for(&lo, x, &vlo, &err);
    if (rc == CORM_OK) {
        hi = xhi ? corm_expr_ref(xhi) : NULL;
        if (!xhi)
            rc = corm_expr_value_for(&hi, x, &vhi, &err);
    }
    if (rc == CORM_OK)
        rc = corm_expr_between(&e, x, lo, hi, negate, &err);
    corm_expr_free(lo);
    corm_expr_free(hi);
    return expr_result(L, slot, rc, e, 0, &err);
}

static int e_between(lua_State *L) { return between(L, false); }
static int e_not_between(lua_State *L) { return between(L, true); }

static int e_is_null(lua_State *L)
{
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_is_null(&e, lcorm_checkexpr(L, 1), false, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

static int e_is_not_null(lua_State *L)
{
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_is_null(&e, lcorm_checkexpr(L, 1), true, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

/* Ordering: the same expression carrying ORDER BY flags. */
static int with_flags(lua_State *L, unsigned set, unsigned clear)
{
    lcorm_exprud *u = luaL_checkudata(L, 1, LCORM_EXPR);
    corm_expr *e = lcorm_checkexpr(L, 1);
    int slot = lcorm_expr_slot(L);
    return lcorm_expr_fill(L, slot, corm_expr_ref(e), (u->flags & ~clear) | set);
}

static int e_asc(lua_State *L) { return with_flags(L, 0, CORM_DESC); }
static int e_desc(lua_State *L) { return with_flags(L, CORM_DESC, 0); }
static int e_nulls_first(lua_State *L) { return with_flags(L, CORM_NULLS_FIRST, CORM_NULLS_LAST); }
static int e_nulls_last(lua_State *L) { return with_flags(L, CORM_NULLS_LAST, CORM_NULLS_FIRST); }

/* a:and_(b, ...), a:or_(b, ...); also core.and_(a, b, ...), core.or_(...) */
static int combine(lua_State *L, bool is_and)
{
    int n = lua_gettop(L);
    luaL_argcheck(L, n >= 1, 1, "expression expected");
    for (int i = 1; i <= n; i++)
        lcorm_checkexpr(L, i);
    int slot = lcorm_expr_slot(L);
    corm_expr *acc = corm_expr_ref(lcorm_checkexpr(L, 1));
    corm_error err = CORM_ERROR_INIT;
    int rc = CORM_OK;
    for (int i = 2; i <= n && rc == CORM_OK; i++) {
        corm_expr *next = NULL;
        rc = is_and ? corm_expr_and(&next, acc, lcorm_checkexpr(L, i), &err)
                    : corm_expr_or(&next, acc, lcorm_checkexpr(L, i), &err);
        corm_expr_free(acc);
        acc = next;
    }
    return expr_result(L, slot, rc, acc, 0, &err);
}

static int e_and(lua_State *L) { return combine(L, true); }
static int e_or(lua_State *L) { return combine(L, false); }

static int e_not(lua_State *L)
{
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_not(&e, lcorm_checkexpr(L, 1), &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

static int e_cast(lua_State *L)
{
    corm_expr *x = lcorm_checkexpr(L, 1);
    const char *type = luaL_checkstring(L, 2);
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_cast(&e, x, type, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

static int e_tostring(lua_State *L)
{
    lua_pushfstring(L, "cormorant.expr (%p)", lua_touserdata(L, 1));
    return 1;
}

/* core.value(v [, like]) -> a bound parameter (typed like `like`) */
static int l_value(lua_State *L)
{
    corm_value v;
    lcorm_to_value(L, 1, &v);
    corm_expr *like = lua_isnoneornil(L, 2) ? NULL : lcorm_checkexpr(L, 2);
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = like ? corm_expr_value_for(&e, like, &v, &err)
                  : corm_expr_value(&e, lcorm_registry(L), &v, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

/* core.agg(name, expr|nil [, distinct]) -> count(*), sum(x), ... */
static int l_agg(lua_State *L)
{
    static const char *const names[] = {"count", "sum", "avg", "min", "max", NULL};
    int agg = luaL_checkoption(L, 1, NULL, names) + CORM_COUNT;
    corm_expr *arg = lua_isnoneornil(L, 2) ? NULL : lcorm_checkexpr(L, 2);
    unsigned flags = lua_toboolean(L, 3) ? CORM_AGG_DISTINCT : 0;
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_agg(&e, lcorm_registry(L), agg, arg, flags, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

/* core.func(name, args...) -> name(args...): args exprs or values */
static int l_func(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int n = lua_gettop(L) - 1;
    corm_registry *reg = lcorm_registry(L);
    corm_value *vals = lua_newuserdata(L, sizeof *vals * (size_t)(n ? n : 1));
    corm_expr **args = lua_newuserdata(L, sizeof *args * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++)
        if (!lcorm_testexpr(L, i + 2))
            lcorm_to_value(L, i + 2, &vals[i]);
    corm_error err = CORM_ERROR_INIT;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us references */
    int rc = CORM_OK;
    int made = 0;
    for (; made < n && rc == CORM_OK; made++) {
        corm_expr *x = lcorm_testexpr(L, made + 2);
        args[made] = NULL;
        if (x)
            args[made] = corm_expr_ref(x);
        else
            rc = corm_expr_value(&args[made], reg, &vals[made], &err);
    }
    corm_expr *e = NULL;
    if (rc == CORM_OK)
        rc = corm_expr_func(&e, reg, name, n, (const corm_expr *const *)args, &err);
    for (int i = 0; i < made; i++)
        corm_expr_free(args[i]);
    return expr_result(L, slot, rc, e, 0, &err);
}

/* core.raw(sql, values...) -> a SQL fragment with $1.. bound to values */
static int l_raw(lua_State *L)
{
    const char *sql = luaL_checkstring(L, 1);
    int n = lua_gettop(L) - 1;
    corm_value *vals = lua_newuserdata(L, sizeof *vals * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++)
        lcorm_to_value(L, i + 2, &vals[i]);
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_raw(&e, lcorm_registry(L), sql, n, vals, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

/* core.ident(qualifier|nil, name) -> "qualifier"."name" */
static int l_ident(lua_State *L)
{
    const char *q = luaL_optstring(L, 1, NULL);
    const char *name = luaL_checkstring(L, 2);
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_ident(&e, lcorm_registry(L), q, name, &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

/* core.exists(query) -> EXISTS (query) */
static int l_exists(lua_State *L)
{
    corm_expr *e = NULL;
    int slot = lcorm_expr_slot(L);   /* before the engine hands us e */
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_expr_exists(&e, checkquery(L, 1), &err);
    return expr_result(L, slot, rc, e, 0, &err);
}

/* core.is_expr(v) -> true for expressions */
static int l_is_expr(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, LCORM_EXPR) != NULL);
    return 1;
}

/* ---- queries ------------------------------------------------------------ */

static int query_gc(lua_State *L)
{
    lcorm_queryud *u = luaL_checkudata(L, 1, LCORM_QUERY);
    corm_query_free(u->q);
    u->q = NULL;
    return 0;
}

static lcorm_queryud *new_query(lua_State *L)
{
    lcorm_queryud *u = lcorm_newuserdata(L, sizeof *u);
    u->q = NULL;
    luaL_setmetatable(L, LCORM_QUERY);
    return u;
}

/* core.select(model [, alias]) / insert(model) / update(model) / delete(model)
 * / core.query() -> query | nil, err */
static int make_query(lua_State *L, int kind)
{
    corm_model *m = kind ? lcorm_checkmodel(L, 1) : NULL;
    const char *alias = kind == CORM_QUERY_SELECT ? luaL_optstring(L, 2, NULL) : NULL;
    corm_registry *reg = kind ? NULL : lcorm_registry(L);
    lcorm_queryud *u = new_query(L);
    corm_error err = CORM_ERROR_INIT;
    int rc;
    switch (kind) {
    case CORM_QUERY_SELECT: rc = corm_query_select(&u->q, m, alias, &err); break;
    case CORM_QUERY_INSERT: rc = corm_query_insert(&u->q, m, &err); break;
    case CORM_QUERY_UPDATE: rc = corm_query_update(&u->q, m, &err); break;
    case CORM_QUERY_DELETE: rc = corm_query_delete(&u->q, m, &err); break;
    default: rc = corm_query_new(&u->q, reg, &err); break;
    }
    if (rc < 0)
        return lcorm_fail(L, &err);
    return 1;
}

static int l_select(lua_State *L) { return make_query(L, CORM_QUERY_SELECT); }
static int l_insert(lua_State *L) { return make_query(L, CORM_QUERY_INSERT); }
static int l_update(lua_State *L) { return make_query(L, CORM_QUERY_UPDATE); }
static int l_delete(lua_State *L) { return make_query(L, CORM_QUERY_DELETE); }
static int l_query(lua_State *L) { return make_query(L, 0); }

/* Every clause method returns the query itself, or nil, err. */
static int self_or_fail(lua_State *L, int rc, corm_error *err)
{
    if (rc < 0)
        return lcorm_fail(L, err);
    lua_settop(L, 1);
    return 1;
}

#define CLAUSE_EXPR(name, call)                                     \
    static int q_##name(lua_State *L)                               \
    {                                                               \
        corm_query *q = checkquery(L, 1);                           \
        corm_expr *e = lcorm_checkexpr(L, 2);                       \
        corm_error err = CORM_ERROR_INIT;                           \
        return self_or_fail(L, call, &err);                         \
    }
CLAUSE_EXPR(where, corm_query_where(q, e, &err))
CLAUSE_EXPR(group_by, corm_query_group_by(q, e, &err))
CLAUSE_EXPR(having, corm_query_having(q, e, &err))
CLAUSE_EXPR(distinct_on, corm_query_distinct_on(q, e, &err))
CLAUSE_EXPR(order_by, corm_query_order_by(q, e, lcorm_expr_flags(L, 2), &err))

static int q_select_expr(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    corm_expr *e = lcorm_checkexpr(L, 2);
    const char *alias = luaL_optstring(L, 3, NULL);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_select_expr(q, e, alias, &err), &err);
}

static int q_select_all(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    corm_model *m = lcorm_checkmodel(L, 2);
    const char *alias = luaL_optstring(L, 3, NULL);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_select_all(q, m, alias, &err), &err);
}

static int q_distinct(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_distinct(q, &err), &err);
}

static int64_t check_count(lua_State *L, int idx)
{
    int64_t n = 0;
    if (lua_type(L, idx) != LUA_TNUMBER || !lcorm_tointeger(L, idx, &n) || n < 0)
        luaL_argerror(L, idx, "non-negative integer expected");
    return n;
}

static int q_limit(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    int64_t n = check_count(L, 2);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_limit(q, n, &err), &err);
}

static int q_offset(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    int64_t n = check_count(L, 2);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_offset(q, n, &err), &err);
}

/* q:join(model, "inner"|"left" [, on_expr [, alias]]) */
static int q_join(lua_State *L)
{
    static const char *const types[] = {"inner", "left", NULL};
    corm_query *q = checkquery(L, 1);
    corm_model *m = lcorm_checkmodel(L, 2);
    int type = luaL_checkoption(L, 3, "inner", types) + CORM_JOIN_INNER;
    corm_expr *on = lua_isnoneornil(L, 4) ? NULL : lcorm_checkexpr(L, 4);
    const char *alias = luaL_optstring(L, 5, NULL);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_join(q, type, m, alias, on, &err), &err);
}

/* q:lock("update"|"no key update"|"share"|"key share" [, "nowait"|"skip locked"]) */
static int q_lock(lua_State *L)
{
    static const char *const modes[] = {"update", "no key update", "share", "key share", NULL};
    static const char *const waits[] = {"wait", "nowait", "skip locked", NULL};
    corm_query *q = checkquery(L, 1);
    unsigned mode = (unsigned)luaL_checkoption(L, 2, "update", modes) + CORM_FOR_UPDATE;
    int w = luaL_checkoption(L, 3, "wait", waits);
    if (w == 1)
        mode |= CORM_LOCK_NOWAIT;
    else if (w == 2)
        mode |= CORM_LOCK_SKIP_LOCKED;
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_lock(q, mode, &err), &err);
}

/* q:values(model, row): one INSERT row from the table row, keyed by field
 * name; absent fields are DEFAULT, core.null is NULL. Unknown keys are not
 * looked at (the Lua layer checks them). */
static int q_values(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    corm_model *m = lcorm_checkmodel(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    int ncols = corm_model_ncolumns(m);
    int *cols = lua_newuserdata(L, sizeof(int) * (size_t)(ncols ? ncols : 1));
    corm_value *vals = lua_newuserdata(L, sizeof *vals * (size_t)(ncols ? ncols : 1));
    int n = 0;
    for (int c = 0; c < ncols; c++) {
        luaL_checkstack(L, 4, NULL);
        lua_getfield(L, 3, corm_model_column_name(m, c));
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        lcorm_to_value(L, lua_gettop(L), &vals[n]);   /* leaves it anchored */
        cols[n++] = c;
    }
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_query_values(q, n, cols, vals, &err);
    if (rc < 0)
        return lcorm_fail(L, &err);
    lua_settop(L, 1);
    return 1;
}

/* q:set(col, value | expr) */
static int q_set(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    int col = (int)luaL_checkinteger(L, 2);
    luaL_checkany(L, 3);
    corm_error err = CORM_ERROR_INIT;
    corm_expr *e = lcorm_testexpr(L, 3);
    if (e)
        return self_or_fail(L, corm_query_set(q, col, e, &err), &err);
    corm_value v;
    lcorm_to_value(L, 3, &v);
    int rc = corm_query_set_value(q, col, &v, &err);
    if (rc < 0)
        return lcorm_fail(L, &err);
    lua_settop(L, 1);
    return 1;
}

/* q:on_conflict({cols}, "nothing"|"update") */
static int q_on_conflict(lua_State *L)
{
    static const char *const actions[] = {"nothing", "update", NULL};
    corm_query *q = checkquery(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int action = luaL_checkoption(L, 3, "nothing", actions) + CORM_CONFLICT_NOTHING;
    int n = (int)lua_rawlen(L, 2);
    int *cols = lua_newuserdata(L, sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        cols[i] = (int)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_query_on_conflict(q, n, cols, action, &err);
    if (rc < 0)
        return lcorm_fail(L, &err);
    lua_settop(L, 1);
    return 1;
}

/* q:returning([expr [, alias]]): no expr -> RETURNING every column */
static int q_returning(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    corm_error err = CORM_ERROR_INIT;
    if (lua_isnoneornil(L, 2))
        return self_or_fail(L, corm_query_returning_all(q, &err), &err);
    corm_expr *e = lcorm_checkexpr(L, 2);
    const char *alias = luaL_optstring(L, 3, NULL);
    return self_or_fail(L, corm_query_returning(q, e, alias, &err), &err);
}

/* q:with(name, sub [, "recursive"]) */
static int q_with(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    const char *name = luaL_checkstring(L, 2);
    corm_query *sub = checkquery(L, 3);
    unsigned flags = lua_toboolean(L, 4) ? CORM_CTE_RECURSIVE : 0;
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_with(q, name, 0, NULL, sub, flags, &err), &err);
}

/* q:from_cte(name [, alias]) / q:from_query(sub, alias) */
static int q_from_cte(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const char *alias = luaL_optstring(L, 3, NULL);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_from_cte(q, name, alias, &err), &err);
}

static int q_from_query(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    corm_query *sub = checkquery(L, 2);
    const char *alias = luaL_checkstring(L, 3);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_from_query(q, sub, alias, &err), &err);
}

/* q:combine("union"|"union all"|"intersect"|"except", other) */
static int q_combine(lua_State *L)
{
    static const char *const ops[] = {"union", "union all", "intersect", "except", NULL};
    corm_query *q = checkquery(L, 1);
    int op = luaL_checkoption(L, 2, NULL, ops) + CORM_UNION;
    corm_query *other = checkquery(L, 3);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_combine(q, op, other, &err), &err);
}

/* q:compile() -> q | nil, err;  q:text() -> SQL | nil */
static int q_compile(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    corm_error err = CORM_ERROR_INIT;
    return self_or_fail(L, corm_query_compile(q, &err), &err);
}

static int q_text(lua_State *L)
{
    const char *t = corm_query_text(checkquery(L, 1));
    if (t)
        lua_pushstring(L, t);
    else
        lua_pushnil(L);
    return 1;
}

static int q_nparams(lua_State *L)
{
    lua_pushinteger(L, corm_query_nparams(checkquery(L, 1)));
    return 1;
}

/* q:submit(pool | conn) -> request | nil, err (the same requests as raw SQL) */
static int q_submit(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    return lcorm_submit_query(L, 2, q, NULL);
}

/*
 * The keys and model mapping of q's ncols result columns: pushes one key
 * per column (false where only the result knows the name) and fills
 * fields[c] (1 + the field of `own` column c fills, or 0) and rawarr[c]
 * (1: raw bytes of an array of a type not built in). Columns are mapped
 * only when the result has the columns the query announced (mapped).
 */
static void push_mapping(lua_State *L, corm_query *q, const corm_model *own, int ncols,
                         bool mapped, int *fields, unsigned char *rawarr)
{
    luaL_checkstack(L, ncols + 8, "too many columns");
    for (int c = 0; c < ncols; c++) {
        const char *name = NULL;
        fields[c] = 0;
        rawarr[c] = 0;
        if (mapped) {
            const corm_model *m = NULL;
            int f = corm_query_column_field(q, c, &m);
            if (f >= 0 && m && m == own) {
                fields[c] = f + 1;
#ifdef LCORM_HAVE_ARRAYS
                /* An array of a type not built in (an enum array) arrives
                 * as raw bytes: the model says it is an array. */
                const char *t = corm_model_column_type(m, f);
                size_t tl = t ? strlen(t) : 0;
                if (corm_model_column_oid(m, f) == 0 && tl > 2 && !strcmp(t + tl - 2, "[]"))
                    rawarr[c] = 1;
#endif
            }
            name = fields[c] ? corm_model_column_name(m, f) : corm_query_column_name(q, c);
        }
        if (name)
            lua_pushstring(L, name);
        else
            lua_pushboolean(L, 0);
    }
}

/* Checks q:take/q:stream's optional mt, clean, model at first..first+2. */
static const corm_model *check_shape_args(lua_State *L, int first)
{
    if (!lua_isnoneornil(L, first))
        luaL_checktype(L, first, LUA_TTABLE);
    if (!lua_isnoneornil(L, first + 1))
        luaL_checktype(L, first + 1, LUA_TTABLE);
    return lua_isnoneornil(L, first + 2) ? NULL : lcorm_checkmodel(L, first + 2);
}

/*
 * q:stream(pool | conn [, mt [, clean [, model]]]) -> request | nil, err:
 * q:submit, streamed: the rows are decoded while they arrive, as q:take
 * would decode them with the same mt, clean and model; take them with
 * q:take(req).
 */
static int q_stream(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    const corm_model *own = check_shape_args(L, 3);
    lua_settop(L, 5);
    corm_error err = CORM_ERROR_INIT;
    if (corm_query_compile(q, &err) < 0)   /* the column mapping comes from compiling */
        return lcorm_fail(L, &err);
    int qncols = corm_query_ncolumns(q);
    if (qncols < 0)
        qncols = 0;
    int *fields = lua_newuserdata(L, (sizeof(int) + 1) * (size_t)(qncols ? qncols : 1));
    unsigned char *rawarr = (unsigned char *)(fields + qncols);
    int names = lua_gettop(L) + 1;
    push_mapping(L, q, own, qncols, true, fields, rawarr);
    lcorm_stream so = {lua_isnil(L, 3) ? 0 : 3, lua_isnil(L, 4) ? 0 : 4, qncols, names,
                       fields, rawarr, own ? corm_model_ncolumns(own) : 0};
    return lcorm_submit_query(L, 2, q, &so);
}

/*
 * q:take(req [, mt [, clean [, model]]]) -> rows, affected | nil, err.
 * Decodes the done request's rows in one C loop: row tables keyed by the
 * field of `model` the engine maps each result column to
 * (corm_query_column_field), other columns (computed, or of joined models)
 * by their alias or name; names interned once per result, NULL
 * cells absent, each row given metatable mt. When clean (a table) is given,
 * clean[row] = the snapshot of the row's fields of `model` as loaded, a
 * sequence by field position (1 + column index; NULL fields are holes),
 * for changed-field tracking. Frees the result. For a request made by
 * q:stream the rows are already decoded (mt, clean and model are those
 * given to q:stream).
 */
static int q_take(lua_State *L)
{
    corm_query *q = checkquery(L, 1);
    const corm_model *own = check_shape_args(L, 3);
    lua_settop(L, 5);
    corm_result *r = NULL;
    int nret = lcorm_req_result(L, 2, &r);
    if (nret)
        return nret;
    if (!lcorm_req_stream_rows(L, 2)) {
        int ncols = corm_result_ncols(r);
        lcorm_cvt cvt;
        lcorm_cvt_init(L, &cvt);
        int *fields = lua_newuserdata(L, (sizeof(int) + 1) * (size_t)(ncols ? ncols : 1));
        unsigned char *rawarr = (unsigned char *)(fields + ncols);
        int names = lua_gettop(L) + 1;
        push_mapping(L, q, own, ncols, corm_query_ncolumns(q) == ncols, fields, rawarr);
        for (int c = 0; c < ncols; c++) {
            if (lua_type(L, names + c) != LUA_TSTRING) {
                const char *name = corm_result_colname(r, c);
                lua_pushstring(L, name ? name : "?column?");
                lua_replace(L, names + c);
            }
        }
        lcorm_shape sh = {ncols, names, fields, rawarr, own ? corm_model_ncolumns(own) : 0,
                          lua_isnil(L, 3) ? 0 : 3, lua_isnil(L, 4) ? 0 : 4};
        int nrows = corm_result_nrows(r);
        lua_createtable(L, nrows > 0 ? nrows : 0, 0);
        lua_Integer n = 0;
        corm_error err = CORM_ERROR_INIT;
        if (!lcorm_append_rows(L, &cvt, &sh, r, lua_gettop(L), &n, &err)) {
            lcorm_req_drop_result(L, 2);
            return lcorm_fail(L, &err);
        }
    }
    int64_t affected = corm_result_affected(r);
    lcorm_req_drop_result(L, 2);
    if (affected >= 0)
        lua_pushinteger(L, (lua_Integer)affected);
    else
        lua_pushnil(L);
    return 2;
}

static int q_tostring(lua_State *L)
{
    lcorm_queryud *u = luaL_checkudata(L, 1, LCORM_QUERY);
    const char *t = u->q ? corm_query_text(u->q) : NULL;
    lua_pushfstring(L, "cormorant.query (%s)", t ? t : "not compiled");
    return 1;
}

static const luaL_Reg expr_methods[] = {
    {"eq", e_eq}, {"ne", e_ne}, {"lt", e_lt}, {"le", e_le}, {"gt", e_gt}, {"ge", e_ge},
    {"like", e_like}, {"ilike", e_ilike}, {"not_like", e_not_like}, {"not_ilike", e_not_ilike},
    {"contains", e_contains}, {"icontains", e_icontains}, {"startswith", e_startswith},
    {"istartswith", e_istartswith}, {"endswith", e_endswith}, {"iendswith", e_iendswith},
    {"add", e_add}, {"sub", e_sub}, {"mul", e_mul}, {"div", e_div}, {"mod", e_mod},
    {"concat", e_concat}, {"in_", e_in}, {"not_in", e_not_in}, {"between", e_between},
    {"not_between", e_not_between}, {"is_null", e_is_null}, {"is_not_null", e_is_not_null},
    {"asc", e_asc}, {"desc", e_desc}, {"nulls_first", e_nulls_first},
    {"nulls_last", e_nulls_last}, {"and_", e_and}, {"or_", e_or}, {"not_", e_not},
    {"cast", e_cast}, {NULL, NULL}};

static const luaL_Reg query_methods[] = {
    {"where", q_where}, {"group_by", q_group_by}, {"having", q_having},
    {"distinct_on", q_distinct_on}, {"order_by", q_order_by}, {"select_expr", q_select_expr},
    {"select_all", q_select_all}, {"distinct", q_distinct}, {"limit", q_limit},
    {"offset", q_offset}, {"join", q_join}, {"lock", q_lock}, {"values", q_values},
    {"set", q_set}, {"on_conflict", q_on_conflict}, {"returning", q_returning},
    {"with", q_with}, {"from_cte", q_from_cte}, {"from_query", q_from_query},
    {"combine", q_combine}, {"compile", q_compile}, {"text", q_text}, {"nparams", q_nparams},
    {"submit", q_submit}, {"stream", q_stream}, {"take", q_take}, {"free", query_gc}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"select", l_select}, {"insert", l_insert}, {"update", l_update}, {"delete", l_delete},
    {"query", l_query},   {"value", l_value},   {"agg", l_agg},       {"func", l_func},
    {"raw", l_raw},       {"ident", l_ident},   {"exists", l_exists}, {"and_", e_and},
    {"or_", e_or},        {"not_", e_not},      {"is_expr", l_is_expr},
    {NULL, NULL}};

int lcorm_open_query(lua_State *L)
{
    luaL_newmetatable(L, LCORM_EXPR);
    lua_pushcfunction(L, expr_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, e_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    luaL_setfuncs(L, expr_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, LCORM_QUERY);
    lua_pushcfunction(L, query_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, query_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, q_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    luaL_setfuncs(L, query_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
    return 0;
}
