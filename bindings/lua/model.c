/*
 * model.c - cormorant.model: a table definition in the engine's registry
 * (corm_model), one registry per Lua state. The binding only hands the
 * definition over; types, keys, defaults and DDL are the engine's.
 */
#include "lcorm.h"

#include <stdlib.h>
#include <string.h>

/* Where the state's one registry userdata lives (LCORM_REGISTRY names its
 * metatable). */
#define REGISTRY_KEY "cormorant.registry.instance"

typedef struct {
    corm_registry *reg;   /* NULL: freed */
} lcorm_regud;

typedef struct {
    corm_model *m;        /* borrowed from the registry, which outlives it */
} lcorm_modelud;

static int reg_gc(lua_State *L)
{
    lcorm_regud *u = luaL_checkudata(L, 1, LCORM_REGISTRY);
    if (u->reg) {
        corm_registry_free(u->reg);   /* live queries and expressions keep it alive */
        u->reg = NULL;
    }
    return 0;
}

corm_registry *lcorm_registry(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY);
    lcorm_regud *u = lua_touserdata(L, -1);
    lua_pop(L, 1);   /* anchored in the registry */
    if (u && u->reg)
        return u->reg;
    u = lcorm_newuserdata(L, sizeof *u);
    u->reg = NULL;
    luaL_setmetatable(L, LCORM_REGISTRY);
    corm_error err = CORM_ERROR_INIT;
    if (corm_registry_new(&u->reg, NULL, &err) < 0) {
        lua_pushfstring(L, "cannot create the model registry: %s",
                        err.message ? err.message : corm_strerror(err.code));
        corm_error_clear(&err);
        lua_error(L);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY);
    return u->reg;
}

corm_model *lcorm_checkmodel(lua_State *L, int idx)
{
    return ((lcorm_modelud *)luaL_checkudata(L, idx, LCORM_MODEL))->m;
}

/* Reads a list of 0-based column indexes into a scratch array left on the
 * stack; returns the count. */
static int check_cols(lua_State *L, int idx, const corm_model *m, int **out)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)lua_rawlen(L, idx);
    int *cols = lcorm_newuserdata(L, sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        int isnum;
        lua_Integer c = lua_tointegerx(L, -1, &isnum);
        if (!isnum || c < 0 || c >= corm_model_ncolumns(m))
            luaL_argerror(L, idx, "column indexes expected");
        cols[i] = (int)c;
        lua_pop(L, 1);
    }
    *out = cols;
    return n;
}

static int ok_or_fail(lua_State *L, int rc, corm_error *err)
{
    if (rc < 0)
        return lcorm_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.model(table [, schema]) -> model | nil, err */
static int l_model(lua_State *L)
{
    const char *table = luaL_checkstring(L, 1);
    const char *schema = luaL_optstring(L, 2, NULL);
    corm_registry *reg = lcorm_registry(L);
    lcorm_modelud *u = lcorm_newuserdata(L, sizeof *u);
    u->m = NULL;
    luaL_setmetatable(L, LCORM_MODEL);
    corm_error err = CORM_ERROR_INIT;
    if (corm_model_new(&u->m, reg, schema, table, &err) < 0)
        return lcorm_fail(L, &err);
    return 1;
}

/* core.enum(name, {labels...} [, schema]) -> true | nil, err */
static int l_enum(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *schema = luaL_optstring(L, 3, NULL);
    int n = (int)lua_rawlen(L, 2);
    const char **labels = lcorm_newuserdata(L, sizeof(char *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 2, "labels must be strings");
        labels[i] = lua_tostring(L, -1);   /* anchored in the table */
        lua_pop(L, 1);
    }
    corm_registry *reg = lcorm_registry(L);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_registry_add_enum(reg, schema, name, n, labels, &err), &err);
}

/* core.external_type(name [, schema]) -> true | nil, err */
static int l_external_type(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *schema = luaL_optstring(L, 2, NULL);
    corm_registry *reg = lcorm_registry(L);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_registry_add_type(reg, schema, name, &err), &err);
}

static const char *const flag_names[] = {"null", "primary_key", "unique", "no_auto", NULL};

/* m:add_column(name, type [, {null=, primary_key=, unique=, no_auto=}]) -> index | nil, err */
static int m_add_column(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const char *type = luaL_checkstring(L, 3);
    unsigned flags = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        for (int i = 0; flag_names[i]; i++) {
            lua_getfield(L, 4, flag_names[i]);
            if (lua_toboolean(L, -1))
                flags |= 1u << i;
            lua_pop(L, 1);
        }
    }
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_model_add_column(m, name, type, flags, &err);
    if (rc < 0)
        return lcorm_fail(L, &err);
    lua_pushinteger(L, rc);
    return 1;
}

/* m:set_default(col, value) -> true | nil, err */
static int m_set_default(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    int col = (int)luaL_checkinteger(L, 2);
    corm_value v;
    lcorm_to_value(L, 3, &v);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_model_set_default(m, col, &v, &err), &err);
}

/* m:set_default_sql(col, sql) -> true | nil, err */
static int m_set_default_sql(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    int col = (int)luaL_checkinteger(L, 2);
    const char *sql = luaL_checkstring(L, 3);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_model_set_default_sql(m, col, sql, &err), &err);
}

/* m:set_primary_key({cols}) */
static int m_set_primary_key(lua_State *L)
{
    lua_settop(L, 2);   /* scratch arrays go above the arguments */
    corm_model *m = lcorm_checkmodel(L, 1);
    int *cols;
    int n = check_cols(L, 2, m, &cols);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_model_set_primary_key(m, n, cols, &err), &err);
}

/* m:add_unique(name|nil, {cols}) */
static int m_add_unique(lua_State *L)
{
    lua_settop(L, 3);   /* scratch arrays go above the arguments */
    corm_model *m = lcorm_checkmodel(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    int *cols;
    int n = check_cols(L, 3, m, &cols);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_model_add_unique(m, name, n, cols, &err), &err);
}

/* m:add_check(name|nil, sql) */
static int m_add_check(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    const char *sql = luaL_checkstring(L, 3);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_model_add_check(m, name, sql, &err), &err);
}

static const char *const fk_actions[] = {"no action", "restrict", "cascade", "set null",
                                         "set default", NULL};

/* m:add_foreign_key(name|nil, {cols}, target [, {target cols}|nil, on_delete, on_update]) */
static int m_add_foreign_key(lua_State *L)
{
    lua_settop(L, 7);   /* scratch arrays go above the arguments */
    corm_model *m = lcorm_checkmodel(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    int *cols;
    int n = check_cols(L, 3, m, &cols);
    corm_model *target = lcorm_checkmodel(L, 4);
    int *tcols = NULL;
    if (!lua_isnoneornil(L, 5) && check_cols(L, 5, target, &tcols) != n)
        return luaL_argerror(L, 5, "as many target columns as columns expected");
    int on_delete = luaL_checkoption(L, 6, "no action", fk_actions);
    int on_update = luaL_checkoption(L, 7, "no action", fk_actions);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L,
                      corm_model_add_foreign_key(m, name, n, cols, target, tcols, on_delete,
                                                 on_update, &err),
                      &err);
}

/* m:add_index(name|nil, {cols} [, unique, method, where_sql]) */
static int m_add_index(lua_State *L)
{
    lua_settop(L, 6);   /* scratch arrays go above the arguments */
    corm_model *m = lcorm_checkmodel(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    int *cols;
    int n = check_cols(L, 3, m, &cols);
    unsigned flags = lua_toboolean(L, 4) ? CORM_INDEX_UNIQUE : 0;
    const char *method = luaL_optstring(L, 5, NULL);
    const char *where = luaL_optstring(L, 6, NULL);
    corm_error err = CORM_ERROR_INIT;
    return ok_or_fail(L, corm_model_add_index(m, name, n, cols, flags, method, where, &err),
                      &err);
}

static int m_table(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    lua_pushstring(L, corm_model_table(m));
    const char *schema = corm_model_schema(m);
    if (schema)
        lua_pushstring(L, schema);
    else
        lua_pushnil(L);
    return 2;
}

static int m_ncolumns(lua_State *L)
{
    lua_pushinteger(L, corm_model_ncolumns(lcorm_checkmodel(L, 1)));
    return 1;
}

static int check_col(lua_State *L, int idx, const corm_model *m)
{
    lua_Integer c = luaL_checkinteger(L, idx);
    luaL_argcheck(L, c >= 0 && c < corm_model_ncolumns(m), idx, "no such column");
    return (int)c;
}

/* m:column_info(i) -> name, type (canonical text), {null=, primary_key=,
 * unique=, identity=, has_default=} */
static int m_column_info(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    int c = check_col(L, 2, m);
    lua_pushstring(L, corm_model_column_name(m, c));
    lua_pushstring(L, corm_model_column_type(m, c));
    unsigned f = corm_model_column_flags(m, c);
    lua_createtable(L, 0, 5);
    lua_pushboolean(L, (f & CORM_COL_NULL) != 0);
    lua_setfield(L, -2, "null");
    lua_pushboolean(L, (f & CORM_COL_PRIMARY_KEY) != 0);
    lua_setfield(L, -2, "primary_key");
    lua_pushboolean(L, (f & CORM_COL_UNIQUE) != 0);
    lua_setfield(L, -2, "unique");
    lua_pushboolean(L, (f & CORM_COL_IDENTITY) != 0);
    lua_setfield(L, -2, "identity");
    lua_pushboolean(L, (f & CORM_COL_HAS_DEFAULT) != 0);
    lua_setfield(L, -2, "has_default");
    return 3;
}

/* m:primary_key() -> list of 0-based column indexes */
static int m_primary_key(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    const int *cols = NULL;
    int n = corm_model_primary_key(m, &cols);
    lua_createtable(L, n > 0 ? n : 0, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, cols[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* m:column(i [, alias]) -> expr of column i */
static int m_column(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    int c = check_col(L, 2, m);
    const char *alias = luaL_optstring(L, 3, NULL);
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    int slot = lcorm_expr_slot(L);
    if (corm_expr_column(&e, m, c, alias, &err) < 0)
        return lcorm_fail(L, &err);
    return lcorm_expr_fill(L, slot, e, 0);
}

/* m:excluded(i) -> EXCLUDED."col" (in an upsert's SET) */
static int m_excluded(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    int c = check_col(L, 2, m);
    corm_expr *e = NULL;
    corm_error err = CORM_ERROR_INIT;
    int slot = lcorm_expr_slot(L);
    if (corm_expr_excluded(&e, m, c, &err) < 0)
        return lcorm_fail(L, &err);
    return lcorm_expr_fill(L, slot, e, 0);
}

static int m_tostring(lua_State *L)
{
    corm_model *m = lcorm_checkmodel(L, 1);
    lua_pushfstring(L, "cormorant.model (%s)", corm_model_table(m));
    return 1;
}

/*
 * core.ddl(kind, {models...}, flags...) -> {statements...} | nil, err.
 * kind "create" (flags: "if_not_exists") or "drop" ("if_exists",
 * "cascade"). The statements are the engine's, in order; the Lua layer
 * runs them in one transaction.
 */
static int l_ddl(lua_State *L)
{
    static const char *const kinds[] = {"create", "drop", NULL};
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    luaL_checktype(L, 2, LUA_TTABLE);
    unsigned flags = 0;
    for (int i = 3; i <= lua_gettop(L); i++) {
        const char *f = luaL_checkstring(L, i);
        if (!strcmp(f, "if_not_exists"))
            flags |= CORM_DDL_IF_NOT_EXISTS;
        else if (!strcmp(f, "if_exists"))
            flags |= CORM_DDL_IF_EXISTS;
        else if (!strcmp(f, "cascade"))
            flags |= CORM_DDL_CASCADE;
        else
            return luaL_argerror(L, i, "unknown DDL flag");
    }
    int n = (int)lua_rawlen(L, 2);
    const corm_model **models = lcorm_newuserdata(L, sizeof(corm_model *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        models[i] = lcorm_checkmodel(L, -1);
        lua_pop(L, 1);
    }
    corm_registry *reg = lcorm_registry(L);
    lua_newtable(L);   /* the result, made before the engine's handle */
    corm_ddl *d = NULL;
    corm_error err = CORM_ERROR_INIT;
    int rc = kind == 0 ? corm_ddl_create(&d, reg, n, models, flags, &err)
                       : corm_ddl_drop(&d, reg, n, models, flags, &err);
    if (rc < 0)
        return lcorm_fail(L, &err);
    int count = corm_ddl_count(d);
    for (int i = 0; i < count; i++) {
        lua_pushstring(L, corm_ddl_statement(d, i));   /* may raise: memory only */
        lua_rawseti(L, -2, i + 1);
    }
    corm_ddl_free(d);
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"add_column", m_add_column},
    {"set_default", m_set_default},
    {"set_default_sql", m_set_default_sql},
    {"set_primary_key", m_set_primary_key},
    {"add_unique", m_add_unique},
    {"add_check", m_add_check},
    {"add_foreign_key", m_add_foreign_key},
    {"add_index", m_add_index},
    {"table", m_table},
    {"ncolumns", m_ncolumns},
    {"column_info", m_column_info},
    {"primary_key", m_primary_key},
    {"column", m_column},
    {"excluded", m_excluded},
    {NULL, NULL}};

static const luaL_Reg funcs[] = {{"model", l_model},
                                 {"enum", l_enum},
                                 {"external_type", l_external_type},
                                 {"ddl", l_ddl},
                                 {NULL, NULL}};

int lcorm_open_model(lua_State *L)
{
    luaL_newmetatable(L, LCORM_REGISTRY);
    lua_pushcfunction(L, reg_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, LCORM_MODEL);
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    luaL_setfuncs(L, model_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);   /* into the module table at the top */
    return 0;
}
