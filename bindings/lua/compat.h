/*
 * compat.h - the differences between Lua 5.4 and LuaJIT 2.1 (Lua 5.1 API
 * plus some 5.2 additions), in one place, as luasocket's compat.h does.
 * Plain Lua 5.1 headers compile too (for a module then loaded by LuaJIT).
 */
#ifndef LCORM_COMPAT_H
#define LCORM_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <stdint.h>

#if LUA_VERSION_NUM >= 503
#define LCORM_HAS_INTEGERS 1
#else
#define LCORM_HAS_INTEGERS 0
#endif

#if LUA_VERSION_NUM < 502
/* LuaJIT has luaL_setfuncs, luaL_testudata, luaL_setmetatable, lua_tointegerx
 * (its 5.2 extensions) but not these. */
#define lua_rawlen(L, i) lua_objlen(L, (i))
static inline int lcorm_absindex(lua_State *L, int i)
{
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define lua_absindex(L, i) lcorm_absindex(L, (i))

#ifndef luaL_newlib
/* Plain Lua 5.1 headers (LuaRocks' default for --lua-version 5.1): the 5.2
 * functions LuaJIT exports are missing there, so provide them here; the
 * module built this way also loads into LuaJIT, which shares the ABI. */
static inline void lcorm_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup, "too many upvalues");
    for (; l->name; l++) {
        for (int i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, nup) lcorm_setfuncs(L, (l), (nup))
#define luaL_newlibtable(L, l) lua_createtable(L, 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))

static inline void lcorm_setmetatable(lua_State *L, const char *tname)
{
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}
#define luaL_setmetatable(L, t) lcorm_setmetatable(L, (t))

static inline void *lcorm_testudata(lua_State *L, int i, const char *tname)
{
    void *p = lua_touserdata(L, i);
    if (!p || !lua_getmetatable(L, i))
        return NULL;
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2))
        p = NULL;
    lua_pop(L, 2);
    return p;
}
#define luaL_testudata(L, i, t) lcorm_testudata(L, (i), (t))

static inline lua_Integer lcorm_tointegerx(lua_State *L, int i, int *isnum)
{
    if (isnum)
        *isnum = lua_isnumber(L, i);
    return lua_tointeger(L, i);
}
#define lua_tointegerx(L, i, n) lcorm_tointegerx(L, (i), (n))
#endif /* !luaL_newlib */
#endif

#if LUA_VERSION_NUM >= 504
#define lcorm_newuserdata(L, size) lua_newuserdatauv(L, (size), 0)
#else
#define lcorm_newuserdata(L, size) lua_newuserdata(L, (size))
#endif

/* LuaJIT's type tag for FFI cdata (lj_obj.h LJ_TCDATA as lua_type sees it);
 * Lua 5.4 has no such type, so the value never matches there. */
#define LCORM_TCDATA 10

/* Doubles hold every integer of magnitude up to 2^53 exactly. */
#define LCORM_EXACT_DOUBLE_MAX INT64_C(9007199254740992)

/*
 * Is the value at i an integer, and which? On Lua 5.4 only integer
 * subtypes count (2.0 is a float, bound as float8). LuaJIT has only
 * doubles, so an integral double within +-2^53 counts as an integer,
 * which is what a LuaJIT user means by `41`.
 */
static inline int lcorm_tointeger(lua_State *L, int i, int64_t *out)
{
#if LCORM_HAS_INTEGERS
    if (!lua_isinteger(L, i))
        return 0;
    *out = (int64_t)lua_tointeger(L, i);
    return 1;
#else
    lua_Number n = lua_tonumber(L, i);
    if (n != n || n < -(lua_Number)LCORM_EXACT_DOUBLE_MAX ||
        n > (lua_Number)LCORM_EXACT_DOUBLE_MAX)
        return 0;
    int64_t v = (int64_t)n;
    if ((lua_Number)v != n)
        return 0;
    *out = v;
    return 1;
#endif
}

/* Pushes a 64-bit integer exactly if the runtime can (Lua 5.4 always; on
 * LuaJIT when |v| <= 2^53) and returns 1; returns 0 and pushes nothing
 * when the caller must use another representation. */
static inline int lcorm_pushint64(lua_State *L, int64_t v)
{
#if LCORM_HAS_INTEGERS
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
#else
    if (v < -LCORM_EXACT_DOUBLE_MAX || v > LCORM_EXACT_DOUBLE_MAX)
        return 0;
    lua_pushnumber(L, (lua_Number)v);
    return 1;
#endif
}

#endif /* LCORM_COMPAT_H */
