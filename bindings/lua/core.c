/*
 * core.c - luaopen_cormorant_core: the classes' metatables in the registry,
 * module state, and the small helpers the pure-Lua scheduler needs
 * (poll(2) over a list of fds, a monotonic clock).
 */
#include "lcorm.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* core.now() - monotonic seconds, for timeouts. */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static short poll_events(lua_State *L, int idx)
{
    const char *e = lua_tostring(L, idx);
    short ev = 0;
    if (e) {
        if (strchr(e, 'r'))
            ev |= POLLIN;
        if (strchr(e, 'w'))
            ev |= POLLOUT;
        if (strchr(e, 'p'))
            ev |= POLLPRI;
    }
    return ev;
}

static int timeout_ms(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return -1;
    lua_Number t = luaL_checknumber(L, idx);
    if (!(t > 0))
        return 0;
    if (t * 1000.0 >= (lua_Number)INT32_MAX)
        return INT32_MAX;
    return (int)(t * 1000.0 + 0.999);
}

/*
 * core.poll(fds, events, timeout [, ready]) - blocks in poll(2) until one of
 * fds (a list of integers) is ready for its events ("r", "w", "rw": a list
 * parallel to fds) or timeout seconds pass (nil: no limit). Sets ready[i]
 * (a table, new if not given) to true or false; returns the number ready
 * and the table. An interrupted poll counts as a timeout.
 */
static int l_poll(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    int ms = timeout_ms(L, 3);
    if (lua_isnoneornil(L, 4)) {
        lua_settop(L, 3);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_settop(L, 4);
    }
    int n = (int)lua_rawlen(L, 1);
    struct pollfd stackfds[64];
    struct pollfd *fds = stackfds;
    if (n > 64) {
        fds = lua_newuserdata(L, (size_t)n * sizeof *fds);   /* collected with the call */
    }
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        lua_rawgeti(L, 2, i + 1);
        int isnum;
        lua_Integer fd = lua_tointegerx(L, -2, &isnum);
        if (!isnum)
            return luaL_error(L, "fds[%d] is not an integer", i + 1);
        fds[i].fd = (int)fd;
        fds[i].events = poll_events(L, -1);
        fds[i].revents = 0;
        lua_pop(L, 2);
    }
    int rc = poll(fds, (nfds_t)n, ms);
    if (rc < 0 && errno != EINTR)
        return luaL_error(L, "poll: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        lua_pushboolean(L, rc > 0 && fds[i].revents != 0);
        lua_rawseti(L, 4, i + 1);
    }
    lua_pushinteger(L, rc > 0 ? rc : 0);
    lua_pushvalue(L, 4);
    return 2;
}

/* core.poll1(fd, events, timeout) - poll(2) on one fd; true when ready. */
static int l_poll1(lua_State *L)
{
    struct pollfd p;
    p.fd = (int)luaL_checkinteger(L, 1);
    p.events = poll_events(L, 2);
    p.revents = 0;
    int rc = poll(&p, p.fd >= 0 ? 1 : 0, timeout_ms(L, 3));
    if (rc < 0 && errno != EINTR)
        return luaL_error(L, "poll: %s", strerror(errno));
    lua_pushboolean(L, rc > 0);
    return 1;
}

/*
 * core.set_hook(name, fn) - the Lua layer's conversion hooks, kept in the
 * registry's module state: "int64" (LuaJIT: 8 native-endian bytes -> int64_t
 * cdata), "cdata" (LuaJIT: int64 cdata parameter -> decimal text), "json"
 * (JSON text -> Lua value, replacing the built-in reader; false: keep the
 * text). nil removes a hook.
 */
static int l_set_hook(lua_State *L)
{
    static const char *const names[] = {"int64", "cdata", "json", NULL};
    int which = luaL_checkoption(L, 1, NULL, names);
    bool text = which == 2 && lua_type(L, 2) == LUA_TBOOLEAN && !lua_toboolean(L, 2);
    if (!lua_isnil(L, 2) && !text)
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, LCORM_STATE);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, names[which]);
    return 0;
}

static const luaL_Reg funcs[] = {
    {"pool", lcorm_pool_new}, {"poll", l_poll},         {"poll1", l_poll1},
    {"now", l_now},           {"set_hook", l_set_hook}, {"bytea", lcorm_bytea},
    {NULL, NULL}};

int luaopen_cormorant_core(lua_State *L)
{
    lcorm_open_conn(L);
    luaL_newmetatable(L, LCORM_BYTEA);
    lua_pushliteral(L, LCORM_BYTEA);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    lua_newtable(L);   /* module state */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_setfield(L, LUA_REGISTRYINDEX, LCORM_STATE);

    luaL_newlib(L, funcs);
    lcorm_open_errors(L);
    lcorm_open_model(L);
    lcorm_open_query(L);
    /* core.null: NULL items of arrays; the same value as cjson.null. */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushstring(L, corm_version());
    lua_setfield(L, -2, "engine_version");
#if LCORM_HAS_INTEGERS
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "has_integers");
#ifdef LCORM_HAVE_ARRAYS
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "has_arrays");
    return 1;
}
