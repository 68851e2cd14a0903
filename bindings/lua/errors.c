/*
 * errors.c - corm_error -> Lua error object, the binding's one error
 * mapping (CPython _sqlite's _pysqlite_seterror shape). Classes are the
 * engine's CORM_ERRNO_MAP names, so Lua and Python cannot drift.
 */
#include "lcorm.h"

#include <string.h>

static void set_string(lua_State *L, const char *key, const char *s)
{
    if (s && *s) {
        lua_pushstring(L, s);
        lua_setfield(L, -2, key);
    }
}

void lcorm_push_error(lua_State *L, const corm_error *err)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, corm_errname(err->code));
    lua_setfield(L, -2, "class");
    lua_pushinteger(L, err->code);
    lua_setfield(L, -2, "code");
    set_string(L, "sqlstate", err->sqlstate);
    set_string(L, "message", err->message ? err->message : corm_strerror(err->code));
    set_string(L, "detail", err->detail);
    set_string(L, "hint", err->hint);
    luaL_setmetatable(L, LCORM_ERROR);
}

static int push_error_p(lua_State *L)
{
    lcorm_push_error(L, lua_touserdata(L, 1));
    return 1;
}

int lcorm_fail(lua_State *L, corm_error *err)
{
    if (err->code == CORM_EMISUSE) {
        lua_pushstring(L, err->message ? err->message : "API misuse");
        corm_error_clear(err);
        return lua_error(L);
    }
    /* Build the object in protected mode so that a memory error cannot leak
     * the error's strings. */
    lua_pushcfunction(L, push_error_p);
    lua_pushlightuserdata(L, err);
    int rc = lua_pcall(L, 1, 1, 0);
    corm_error_clear(err);
    if (rc != 0)
        return lua_error(L);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

static const char *field(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);   /* the string stays anchored in the table */
    return s;
}

/* "data error [22012]: division by zero", then DETAIL and HINT lines. */
static int error_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *cls = field(L, 1, "class");
    const char *state = field(L, 1, "sqlstate");
    const char *msg = field(L, 1, "message");
    const char *detail = field(L, 1, "detail");
    const char *hint = field(L, 1, "hint");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, cls ? cls : "unknown");
    luaL_addstring(&b, " error");
    if (state) {
        luaL_addstring(&b, " [");
        luaL_addstring(&b, state);
        luaL_addstring(&b, "]");
    }
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, msg ? msg : "(no message)");
    if (detail) {
        luaL_addstring(&b, "\nDETAIL: ");
        luaL_addstring(&b, detail);
    }
    if (hint) {
        luaL_addstring(&b, "\nHINT: ");
        luaL_addstring(&b, hint);
    }
    luaL_pushresult(&b);
    return 1;
}

/* core.error(class, message [, detail [, hint]]): an error object made in
 * Lua (e.g. "not_found"), through the same function as engine errors. */
static int l_error(lua_State *L)
{
    const char *cls = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    const char *detail = luaL_optstring(L, 3, NULL);
    const char *hint = luaL_optstring(L, 4, NULL);
    int code = 0;
    for (int c = -1; c > CORM__ELAST; c--)
        if (!strcmp(corm_errname(c), cls)) {
            code = c;
            break;
        }
    if (!code)
        return luaL_argerror(L, 1, "unknown error class");
    corm_error e = CORM_ERROR_INIT;
    e.code = code;
    /* Borrowed strings: lcorm_push_error copies them into Lua. */
    e.message = (char *)msg;
    e.detail = (char *)detail;
    e.hint = (char *)hint;
    lcorm_push_error(L, &e);
    return 1;
}

/* core.is_error(v): true for error objects. */
static int l_is_error(lua_State *L)
{
    int yes = 0;
    if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, LCORM_ERROR);
        yes = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    lua_pushboolean(L, yes);
    return 1;
}

void lcorm_open_errors(lua_State *L)
{
    luaL_newmetatable(L, LCORM_ERROR);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, LCORM_ERROR);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    /* The module table is at the top: add the functions. */
    lua_pushcfunction(L, l_error);
    lua_setfield(L, -2, "error");
    lua_pushcfunction(L, l_is_error);
    lua_setfield(L, -2, "is_error");
    /* core.error_classes[-code] = class name, from the engine's table */
    lua_newtable(L);
    for (int c = -1; c > CORM__ELAST; c--) {
        lua_pushstring(L, corm_errname(c));
        lua_rawseti(L, -2, -c);
    }
    lua_setfield(L, -2, "error_classes");
}
