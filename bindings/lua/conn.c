/*
 * conn.c - the pollable classes over the engine: cormorant.pool (a
 * corm_pool), cormorant.conn (a connection the pool lends for a
 * transaction) and cormorant.request (one submitted statement or acquire).
 *
 * Driving. A pool reports its member sockets through corm_pool_set_watch;
 * the binding mirrors them into one epoll instance per pool, so a pool and
 * all its requests present a single file descriptor: `:pollfd()` is the
 * epoll fd, `:events()` is always "r" (it is readable when any member
 * socket is ready), `:timeout()` is corm_pool_timeout in seconds, and
 * `:step()` steps the members epoll reports ready (corm_pool_step). Any
 * loop that speaks cqueues' pollable protocol can wait on it. Linux only.
 *
 * Completion. The engine's done callbacks only take ownership of the
 * result (corm_result_take) or copy the error and mark the request done;
 * they never touch the lua_State. A request's state is plain C memory: if
 * its userdata is collected while the request is in flight, the state is
 * marked abandoned and freed by the callback.
 *
 * Streaming. A streamed statement's rows become Lua tables while the rest
 * are still arriving, so conversion overlaps the server's work and no
 * result ever holds all rows. The engine hands batches over only from
 * inside a step, and every step is made from a Lua call (req:step(),
 * pool:step(), a submit on a lent connection), so the box remembers the
 * thread making that call for its duration; the rows callback builds on
 * that thread, under lua_pcall (a Lua error must never unwind through the
 * engine), into a state table anchored in the registry by the request.
 * Which coroutine steps does not matter: they share the registry.
 */
#include "lcorm.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* ---- the shared box ----------------------------------------------------- */

static void box_unref(lcorm_box *b)
{
    if (--b->refs > 0)
        return;
    if (b->pool) {
        corm_pool *p = b->pool;
        b->pool = NULL;
        corm_pool_close(p);   /* abandoned requests are freed by their callbacks */
    }
    if (b->epfd >= 0)
        close(b->epfd);
    free(b->deferred);
    free(b);
}

/* Watch callback: keeps the epoll set equal to the pool's member sockets. */
static void on_watch(void *ud, int fd, int events)
{
    lcorm_box *b = ud;
    if (!events) {
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);   /* may be gone already */
        return;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (events & CORM_READ ? EPOLLIN : 0) | (events & CORM_WRITE ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
        epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Gives back connections whose acquire was abandoned; done after a step,
 * never from inside the engine's callback. */
static void release_deferred(lcorm_box *b)
{
    while (b->ndeferred > 0) {
        corm_conn *c = b->deferred[--b->ndeferred];
        if (b->pool)
            corm_pool_release(b->pool, c, NULL);
    }
}

/* Steps every member epoll reports ready, or the pool's deadlines. */
static void box_step(lua_State *L, lcorm_box *b)
{
    if (!b->pool)
        return;
    /* Streamed rows are converted inside the step; a conversion hook that
     * waits for a query of its own would step again and never see it. */
    if (b->stepping)
        luaL_error(L, "cannot step a pool from inside its own step "
                      "(a conversion hook that runs queries?)");
    struct epoll_event evs[32];
    int n = epoll_wait(b->epfd, evs, 32, 0);
    lua_State *outer = b->L;
    b->L = L;
    b->stepping++;
    for (int i = 0; i < n && b->pool; i++)
        corm_pool_step(b->pool, evs[i].data.fd, NULL);
    if (n <= 0 && b->pool)
        corm_pool_step(b->pool, -1, NULL);
    b->stepping--;
    b->L = outer;
    release_deferred(b);
}

static void push_timeout(lua_State *L, int ms)
{
    if (ms < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, ms / 1000.0);
}

/* ---- requests ----------------------------------------------------------- */

enum { REQ_QUERY = 0, REQ_ACQUIRE = 1 };

typedef struct lcorm_req {
    lcorm_box *box;
    int kind;
    bool done;
    bool abandoned;        /* its userdata is gone; the callback frees it */
    corm_request_id id;
    corm_result *res;      /* owned once done */
    corm_conn *conn;       /* REQ_ACQUIRE: the lent connection, until taken */
    corm_error err;
    /* Streamed statements only: */
    int st;                /* registry ref of the state table, or LUA_NOREF */
    bool failed;           /* a batch could not be converted: err says why */
    int ncols;             /* -1 until the first batch fixes the row shape */
    int qncols;            /* columns the query's model mapping names, or -1 */
    int nfields;
    int *fields;           /* qncols of them, or NULL (lcorm_shape) */
    unsigned char *rawarr;
    lua_Integer nrows;
    struct lcorm_memo memo;   /* the converter's scratch, kept from batch to batch */
} lcorm_req;

/* Slots of a streamed request's state table. */
enum { ST_FN = 1, ST_ROWS, ST_MT, ST_CLEAN, ST_INT64, ST_JSON, ST_READER, ST_NAMES };

typedef struct {
    lcorm_req *r;          /* NULL: closed */
} lcorm_requd;

static void req_free(lcorm_req *r)
{
    corm_result_free(r->res);
    corm_error_clear(&r->err);
    free(r->fields);
    free(r);
}

static void on_done(void *ud, corm_result *res, const corm_error *err)
{
    lcorm_req *r = ud;
    if (r->abandoned) {
        req_free(r);   /* the engine frees the borrowed result */
        return;
    }
    r->done = true;
    if (r->failed)
        return;        /* the conversion error is the request's outcome */
    if (err)
        corm_error_copy(&r->err, err);
    else
        r->res = corm_result_take(res);
}

static void stream_fail(lcorm_req *r, int code, const char *msg)
{
    corm_error tmp = CORM_ERROR_INIT;
    tmp.code = code;
    tmp.message = (char *)msg;   /* borrowed; corm_error_copy duplicates it */
    corm_error_copy(&r->err, &tmp);
    r->failed = true;
}

/* The first batch fixes the keys: the model mapping's when the result has
 * the columns the query announced, else the result's column names. */
static void stream_shape(lua_State *L, lcorm_req *r, const corm_result *res, int st)
{
    int ncols = corm_result_ncols(res);
    bool mapped = ncols == r->qncols;
    if (!mapped) {
        free(r->fields);
        r->fields = NULL;
        r->rawarr = NULL;
    }
    luaL_checkstack(L, 2, NULL);
    for (int c = 0; c < ncols; c++) {
        if (mapped) {
            lua_rawgeti(L, st, ST_NAMES + c);
            bool named = lua_type(L, -1) == LUA_TSTRING;
            lua_pop(L, 1);
            if (named)
                continue;
        }
        const char *name = corm_result_colname(res, c);
        lua_pushstring(L, name ? name : "?column?");
        lua_rawseti(L, st, ST_NAMES + c);
    }
    r->ncols = ncols;
}

/* Converts one batch (lua_pcall'd from on_rows): state table, request and
 * batch at 1, 2 and 3. A conversion failure marks the request failed. */
static int stream_batch(lua_State *L)
{
    lcorm_req *r = lua_touserdata(L, 2);
    const corm_result *res = lua_touserdata(L, 3);
    if (r->ncols < 0)
        stream_shape(L, r, res, 1);
    int ncols = r->ncols;
    luaL_checkstack(L, ncols + 16, "too many columns");
    lua_rawgeti(L, 1, ST_ROWS);
    int list = lua_gettop(L);
    lua_rawgeti(L, 1, ST_MT);
    lua_rawgeti(L, 1, ST_CLEAN);
    lua_rawgeti(L, 1, ST_INT64);
    lua_rawgeti(L, 1, ST_JSON);
    lua_rawgeti(L, 1, ST_READER);
    lcorm_cvt cvt;
    lcorm_cvt_from(L, &cvt, list + 3, list + 4, list + 5);
    lcorm_shape sh = {ncols, list + 6, r->fields, r->rawarr, r->nfields,
                      lua_isnil(L, list + 1) ? 0 : list + 1, lua_isnil(L, list + 2) ? 0 : list + 2};
    for (int c = 0; c < ncols; c++)
        lua_rawgeti(L, 1, ST_NAMES + c);
    cvt.memo = r->memo;
    corm_error err = CORM_ERROR_INIT;
    int ok = lcorm_append_rows(L, &cvt, &sh, res, list, &r->nrows, &err);
    r->memo = cvt.memo;
    if (!ok) {
        corm_error_clear(&r->err);
        r->err = err;   /* moved */
        r->failed = true;
    }
    return 0;
}

static void on_rows(void *ud, const corm_result *rows)
{
    lcorm_req *r = ud;
    if (r->abandoned || r->failed)
        return;    /* nobody will read them, or the outcome is settled */
    lua_State *L = r->box->L;
    if (!L || r->st == LUA_NOREF) {
        stream_fail(r, CORM_EMISUSE, "rows arrived outside a step made from Lua");
        return;
    }
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8)) {
        stream_fail(r, CORM_ENOMEM, "no Lua stack space for a row");
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->st);
    lua_rawgeti(L, -1, ST_FN);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, r);
    lua_pushlightuserdata(L, (void *)rows);
    int rc = lua_pcall(L, 3, 0, 0);
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        stream_fail(r, rc == LUA_ERRMEM ? CORM_ENOMEM : CORM_EDATA,
                    msg ? msg : "error converting a row");
    }
    lua_settop(L, top);
}

static void defer_release(lcorm_box *b, corm_conn *c)
{
    if (b->ndeferred == b->capdeferred) {
        int cap = b->capdeferred ? b->capdeferred * 2 : 4;
        corm_conn **d = realloc(b->deferred, (size_t)cap * sizeof *d);
        if (!d)
            return;   /* the pool closes it with the pool; nothing leaks */
        b->deferred = d;
        b->capdeferred = cap;
    }
    b->deferred[b->ndeferred++] = c;
}

static void on_acquire(void *ud, corm_conn *conn, const corm_error *err)
{
    lcorm_req *r = ud;
    if (r->abandoned) {
        if (conn)
            defer_release(r->box, conn);
        req_free(r);
        return;
    }
    r->done = true;
    r->conn = conn;
    if (err)
        corm_error_copy(&r->err, err);
}

/* Pushes a new request userdata in the closed state, then gives it its
 * state; raises on memory errors before any engine resource exists. */
static lcorm_req *req_new(lua_State *L, lcorm_box *b, int kind)
{
    lcorm_requd *u = lcorm_newuserdata(L, sizeof *u);
    u->r = NULL;
    luaL_setmetatable(L, LCORM_REQUEST);
    lcorm_req *r = calloc(1, sizeof *r);
    if (!r)
        luaL_error(L, "not enough memory");
    r->box = b;
    r->kind = kind;
    r->err = (corm_error)CORM_ERROR_INIT;
    r->st = LUA_NOREF;
    r->ncols = -1;
    r->qncols = -1;
    b->refs++;
    u->r = r;
    return r;
}

/*
 * Makes the request r (its userdata on top, still marked done so that a
 * memory error here frees it) streamed: builds its state table from *so
 * (metatable, snapshot table and model mapping, or all absent) and the
 * conversion hooks of the moment. May raise.
 */
static void stream_setup(lua_State *L, lcorm_req *r, const lcorm_stream *so)
{
    static const lcorm_stream plain = {0, 0, -1, 0, NULL, NULL, 0};
    if (!so)
        so = &plain;
    int nnames = so->qncols > 0 ? so->qncols : 0;
    luaL_checkstack(L, 4, NULL);
    lua_createtable(L, ST_NAMES - 1 + nnames, 0);
    lua_pushcfunction(L, stream_batch);
    lua_rawseti(L, -2, ST_FN);
    lua_newtable(L);
    lua_rawseti(L, -2, ST_ROWS);
    if (so->mt) {
        lua_pushvalue(L, so->mt);
        lua_rawseti(L, -2, ST_MT);
    }
    if (so->clean) {
        lua_pushvalue(L, so->clean);
        lua_rawseti(L, -2, ST_CLEAN);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, LCORM_STATE);
    lua_getfield(L, -1, "int64");
    lua_rawseti(L, -3, ST_INT64);
    lua_getfield(L, -1, "json");
    lua_rawseti(L, -3, ST_JSON);
    lua_pop(L, 1);
    lcorm_push_json_reader(L);
    lua_rawseti(L, -2, ST_READER);
    for (int c = 0; c < nnames; c++) {
        lua_pushvalue(L, so->names + c);
        lua_rawseti(L, -2, ST_NAMES + c);
    }
    r->st = luaL_ref(L, LUA_REGISTRYINDEX);
    r->qncols = so->qncols;
    r->nfields = so->nfields;
    if (nnames && so->fields) {
        r->fields = malloc((size_t)nnames * (sizeof(int) + 1));
        if (!r->fields)
            luaL_error(L, "not enough memory");
        r->rawarr = (unsigned char *)(r->fields + nnames);
        memcpy(r->fields, so->fields, (size_t)nnames * sizeof(int));
        memcpy(r->rawarr, so->rawarr, (size_t)nnames);
    }
}

static lcorm_req *checkreq(lua_State *L)
{
    lcorm_requd *u = luaL_checkudata(L, 1, LCORM_REQUEST);
    if (!u->r)
        luaL_error(L, "attempt to use a closed request");
    return u->r;
}

/* The one release function of a request (__gc, __close, :close()). */
static int req_release(lua_State *L)
{
    lcorm_requd *u = luaL_checkudata(L, 1, LCORM_REQUEST);
    lcorm_req *r = u->r;
    if (!r)
        return 0;
    u->r = NULL;
    lcorm_box *b = r->box;
    if (r->st != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, r->st);   /* the rows, if any, go with it */
        r->st = LUA_NOREF;
    }
    if (!r->done && b->pool) {
        r->abandoned = true;   /* the engine still holds r: its callback frees it */
    } else {
        if (r->conn && b->pool)
            corm_pool_release(b->pool, r->conn, NULL);
        req_free(r);
    }
    box_unref(b);
    return 0;
}

static int req_done(lua_State *L)
{
    lcorm_req *r = checkreq(L);
    lua_pushboolean(L, r->done || !r->box->pool);
    return 1;
}

static int req_pollfd(lua_State *L)
{
    lcorm_req *r = checkreq(L);
    lua_pushinteger(L, r->box->pool ? r->box->epfd : -1);
    return 1;
}

static int l_events(lua_State *L)
{
    lua_pushliteral(L, "r");
    return 1;
}

static int req_timeout(lua_State *L)
{
    lcorm_req *r = checkreq(L);
    /* 0 inside a step too: the waiter then steps at once, which raises. */
    push_timeout(L, r->done || !r->box->pool || r->box->stepping
                        ? 0 : corm_pool_timeout(r->box->pool));
    return 1;
}

/* :step() - makes all progress possible without blocking; returns done. */
static int req_step(lua_State *L)
{
    lcorm_req *r = checkreq(L);
    if (!r->done)
        box_step(L, r->box);
    lua_pushboolean(L, r->done || !r->box->pool);
    return 1;
}

static int push_conn(lua_State *L, lcorm_box *b, corm_conn **c);

/*
 * :take() - the outcome, once: for a statement `rows, affected, command`
 * (rows a list of tables keyed by column name; affected nil when the
 * statement reports none), for an acquire a cormorant.conn; else nil, err.
 */
static int req_take(lua_State *L)
{
    lcorm_req *r = checkreq(L);
    if (!r->done) {
        if (r->box->pool)
            return luaL_error(L, "request is not done");
        corm_error e = CORM_ERROR_INIT;
        e.code = CORM_ECANCELLED;
        e.message = (char *)"pool closed";
        lcorm_push_error(L, &e);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (r->err.code) {
        lua_pushnil(L);
        lcorm_push_error(L, &r->err);   /* r keeps owning err until collected */
        return 2;
    }
    if (r->kind == REQ_ACQUIRE) {
        if (!r->conn)
            return luaL_error(L, "connection already taken");
        return push_conn(L, r->box, &r->conn);
    }
    if (!r->res)
        return luaL_error(L, "result already taken");
    corm_error err = CORM_ERROR_INIT;
    if (r->st != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->st);
        lua_rawgeti(L, -1, ST_ROWS);
        lua_remove(L, -2);
        luaL_unref(L, LUA_REGISTRYINDEX, r->st);
        r->st = LUA_NOREF;
    } else if (!lcorm_push_rows(L, r->res, &err)) {
        return lcorm_fail(L, &err);
    }
    int64_t affected = corm_result_affected(r->res);
    if (affected >= 0)
        lua_pushinteger(L, (lua_Integer)affected);
    else
        lua_pushnil(L);
    const char *cmd = corm_result_command(r->res);
    lua_pushstring(L, cmd ? cmd : "");
    corm_result_free(r->res);
    r->res = NULL;
    return 3;
}

/* :cancel() - true if the request was still pending and is now cancelled. */
static int req_cancel(lua_State *L)
{
    lcorm_req *r = checkreq(L);
    if (r->done || !r->box->pool) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int rc = r->kind == REQ_ACQUIRE ? corm_pool_cancel_acquire(r->box->pool, r->id, NULL)
                                    : corm_pool_cancel(r->box->pool, r->id, NULL);
    release_deferred(r->box);
    lua_pushboolean(L, rc == 1);
    return 1;
}

static int req_tostring(lua_State *L)
{
    lcorm_requd *u = luaL_checkudata(L, 1, LCORM_REQUEST);
    if (!u->r)
        lua_pushliteral(L, "cormorant.request (closed)");
    else
        lua_pushfstring(L, "cormorant.request (%s%s)", u->r->kind == REQ_ACQUIRE ? "acquire, " : "",
                        u->r->done ? "done" : "pending");
    return 1;
}

/* ---- lent connections --------------------------------------------------- */

typedef struct {
    lcorm_box *box;        /* NULL: released */
    corm_conn *c;
} lcorm_connud;

/* Moves *c into a new conn userdata (created closed first). */
static int push_conn(lua_State *L, lcorm_box *b, corm_conn **c)
{
    lcorm_connud *u = lcorm_newuserdata(L, sizeof *u);
    u->box = NULL;
    u->c = NULL;
    luaL_setmetatable(L, LCORM_CONN);
    u->box = b;
    u->c = *c;
    *c = NULL;
    b->refs++;
    return 1;
}

static lcorm_connud *checkconn(lua_State *L)
{
    lcorm_connud *u = luaL_checkudata(L, 1, LCORM_CONN);
    if (!u->box)
        luaL_error(L, "attempt to use a released connection");
    if (!u->box->pool)
        luaL_error(L, "attempt to use a connection of a closed pool");
    return u;
}

/* The one release function of a lent connection: gives it back to the pool
 * (which rolls back a transaction left open). */
static int conn_release(lua_State *L)
{
    lcorm_connud *u = luaL_checkudata(L, 1, LCORM_CONN);
    lcorm_box *b = u->box;
    if (!b)
        return 0;
    u->box = NULL;
    /* Collected while rows were being converted inside a step: give it
     * back after the step, as the engine's callbacks may not. */
    if (b->pool && u->c && b->stepping)
        defer_release(b, u->c);
    else if (b->pool && u->c)
        corm_pool_release(b->pool, u->c, NULL);
    u->c = NULL;
    box_unref(b);
    return 0;
}

/* After a submit on a lent connection: let the pool report the member's
 * wanted events again (a partial flush wants write), outside any callback. */
static void conn_sync(lua_State *L, lcorm_box *b)
{
    if (b->pool && !b->stepping) {
        b->L = L;
        b->stepping++;
        corm_pool_step(b->pool, -1, NULL);
        b->stepping--;
        b->L = NULL;
        release_deferred(b);
    }
}

/* conn:submit(sql, ...) -> request | nil, err; conn:stream(sql, ...) the
 * same, streamed (rows converted as they arrive). */
static int conn_send(lua_State *L, bool stream)
{
    lcorm_connud *u = checkconn(L);
    const char *sql = luaL_checkstring(L, 2);
    int top = lua_gettop(L);
    lcorm_check_params(L, 3, top);
    lcorm_req *r = req_new(L, u->box, REQ_QUERY);
    if (stream) {
        r->done = true;
        stream_setup(L, r, NULL);
        r->done = false;
    }
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    int rc = corm_query_sql(&q, sql, &err);
    if (rc == CORM_OK)
        rc = lcorm_bind_params(L, 3, top, q, &err);
    if (rc == CORM_OK && u->box->query_timeout_ms > 0)
        rc = corm_query_set_timeout(q, u->box->query_timeout_ms, &err);
    if (rc == CORM_OK)
        rc = stream ? corm_conn_submit_stream(u->c, q, on_rows, on_done, r, &r->id, &err)
                    : corm_conn_submit(u->c, q, on_done, r, &r->id, &err);
    corm_query_free(q);
    if (rc < 0) {
        r->done = true;   /* never submitted: nothing will call back */
        return lcorm_fail(L, &err);
    }
    conn_sync(L, u->box);
    return 1;
}

static int conn_submit(lua_State *L) { return conn_send(L, false); }
static int conn_stream(lua_State *L) { return conn_send(L, true); }

enum { TXN_BEGIN, TXN_COMMIT, TXN_ROLLBACK };

static int conn_txn(lua_State *L, int what)
{
    lcorm_connud *u = checkconn(L);
    corm_txn_options opt = {CORM_ISOLATION_DEFAULT, false, false};
    bool has_opt = false;
    if (what == TXN_BEGIN && !lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        static const char *const levels[] = {"default", "read committed", "repeatable read",
                                             "serializable", NULL};
        lua_getfield(L, 2, "isolation");
        opt.isolation = luaL_checkoption(L, -1, "default", levels);
        lua_getfield(L, 2, "read_only");
        opt.read_only = lua_toboolean(L, -1);
        lua_getfield(L, 2, "deferrable");
        opt.deferrable = lua_toboolean(L, -1);
        lua_pop(L, 3);
        has_opt = true;
    }
    lcorm_req *r = req_new(L, u->box, REQ_QUERY);
    corm_error err = CORM_ERROR_INIT;
    int rc;
    if (what == TXN_BEGIN)
        rc = corm_conn_begin(u->c, has_opt ? &opt : NULL, on_done, r, &err);
    else if (what == TXN_COMMIT)
        rc = corm_conn_commit(u->c, on_done, r, &err);
    else
        rc = corm_conn_rollback(u->c, on_done, r, &err);
    if (rc < 0) {
        r->done = true;
        return lcorm_fail(L, &err);
    }
    conn_sync(L, u->box);
    return 1;
}

static int conn_begin(lua_State *L) { return conn_txn(L, TXN_BEGIN); }
static int conn_commit(lua_State *L) { return conn_txn(L, TXN_COMMIT); }
static int conn_rollback(lua_State *L) { return conn_txn(L, TXN_ROLLBACK); }

static int conn_depth(lua_State *L)
{
    lua_pushinteger(L, corm_conn_txn_depth(checkconn(L)->c));
    return 1;
}

static int conn_backend_pid(lua_State *L)
{
    lua_pushinteger(L, corm_conn_backend_pid(checkconn(L)->c));
    return 1;
}

/* The pollable protocol of a lent connection is its pool's. */
static int conn_pollfd(lua_State *L)
{
    lua_pushinteger(L, checkconn(L)->box->epfd);
    return 1;
}

static int conn_timeout(lua_State *L)
{
    push_timeout(L, corm_pool_timeout(checkconn(L)->box->pool));
    return 1;
}

static int conn_step(lua_State *L)
{
    box_step(L, checkconn(L)->box);
    return 0;
}

static int conn_tostring(lua_State *L)
{
    lcorm_connud *u = luaL_checkudata(L, 1, LCORM_CONN);
    if (!u->box)
        lua_pushliteral(L, "cormorant.conn (released)");
    else
        lua_pushfstring(L, "cormorant.conn (%p)", (void *)u->c);
    return 1;
}

/* ---- the pool ----------------------------------------------------------- */

typedef struct {
    lcorm_box *box;        /* NULL: closed */
} lcorm_poolud;

static lcorm_box *checkpool(lua_State *L)
{
    lcorm_poolud *u = luaL_checkudata(L, 1, LCORM_POOL);
    if (!u->box || !u->box->pool)
        luaL_error(L, "attempt to use a closed pool");
    return u->box;
}

static int opt_int(lua_State *L, int t, const char *key, int dflt, int min)
{
    lua_getfield(L, t, key);
    int v = dflt;
    if (!lua_isnil(L, -1)) {
        int64_t n = 0;
        if (lua_type(L, -1) != LUA_TNUMBER || !lcorm_tointeger(L, -1, &n) || n < min ||
            n > INT32_MAX)
            luaL_error(L, "option '%s' must be an integer >= %d", key, min);
        v = (int)n;
    }
    lua_pop(L, 1);
    return v;
}

/* Seconds (a number) to milliseconds; 0 or absent keeps dflt. */
static int opt_seconds(lua_State *L, int t, const char *key, int dflt)
{
    lua_getfield(L, t, key);
    int v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) >= 0) ||
            lua_tonumber(L, -1) > INT32_MAX / 1000)
            luaL_error(L, "option '%s' must be a number of seconds >= 0", key);
        v = (int)ceil(lua_tonumber(L, -1) * 1000.0);
    }
    lua_pop(L, 1);
    return v;
}

/*
 * core.pool(conninfo [, opts]) -> pool | nil, err. Does not block. opts:
 * min_size, max_size, pipeline_depth, connect_timeout and query_timeout
 * (seconds), prepared_statements (boolean), statement_cache_size.
 */
int lcorm_pool_new(lua_State *L)
{
    const char *conninfo = luaL_checkstring(L, 1);
    corm_options opt;
    corm_options_init(&opt);
    int query_timeout_ms = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opt.pool_min_size = opt_int(L, 2, "min_size", opt.pool_min_size, 0);
        opt.pool_max_size = opt_int(L, 2, "max_size", opt.pool_max_size, 1);
        if (opt.pool_min_size > opt.pool_max_size)
            opt.pool_min_size = opt.pool_max_size;
        opt.pool_pipeline_depth = opt_int(L, 2, "pipeline_depth", opt.pool_pipeline_depth, 1);
        opt.connect_timeout_ms = opt_seconds(L, 2, "connect_timeout", opt.connect_timeout_ms);
        query_timeout_ms = opt_seconds(L, 2, "query_timeout", 0);
        opt.statement_cache_size =
            opt_int(L, 2, "statement_cache_size", opt.statement_cache_size, 0);
        lua_getfield(L, 2, "prepared_statements");
        if (!lua_isnil(L, -1))
            opt.prepared_statements = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    /* Userdata first, closed, so a memory error leaves nothing half-built. */
    lcorm_poolud *u = lcorm_newuserdata(L, sizeof *u);
    u->box = NULL;
    luaL_setmetatable(L, LCORM_POOL);
    lcorm_box *b = calloc(1, sizeof *b);
    if (!b)
        return luaL_error(L, "not enough memory");
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        free(b);
        return luaL_error(L, "epoll_create1: %s", strerror(errno));
    }
    b->refs = 1;
    b->query_timeout_ms = query_timeout_ms;
    u->box = b;
    corm_error err = CORM_ERROR_INIT;
    corm_pool *p = NULL;
    if (corm_pool_open(&p, conninfo, &opt, &err) < 0) {
        u->box = NULL;
        box_unref(b);
        return lcorm_fail(L, &err);
    }
    b->pool = p;
    corm_pool_set_watch(p, on_watch, b);
    return 1;
}

/* The one release function of a pool (__gc, __close). Requests and lent
 * connections still alive keep the engine's pool open until they go. */
static int pool_gc(lua_State *L)
{
    lcorm_poolud *u = luaL_checkudata(L, 1, LCORM_POOL);
    lcorm_box *b = u->box;
    if (b) {
        u->box = NULL;
        box_unref(b);
    }
    return 0;
}

/* :close() - closes at once: pending requests complete with "cancelled". */
static int pool_close(lua_State *L)
{
    lcorm_poolud *u = luaL_checkudata(L, 1, LCORM_POOL);
    lcorm_box *b = u->box;
    if (!b)
        return 0;
    if (b->stepping)
        return luaL_error(L, "cannot close a pool while it is being stepped");
    if (b->pool) {
        corm_pool *p = b->pool;
        b->pool = NULL;
        b->ndeferred = 0;   /* closing the pool closes those connections */
        corm_pool_close(p);
    }
    return pool_gc(L);
}

static int pool_closed(lua_State *L)
{
    lcorm_poolud *u = luaL_checkudata(L, 1, LCORM_POOL);
    lua_pushboolean(L, !u->box || !u->box->pool);
    return 1;
}

/* pool:submit(sql, ...) -> request | nil, err. Parameters: nil, boolean,
 * integer (int8), float (float8), string (untyped text), LuaJIT int64 cdata.
 * pool:stream(sql, ...): the same, streamed (rows converted as they arrive). */
static int pool_send(lua_State *L, bool stream)
{
    lcorm_box *b = checkpool(L);
    const char *sql = luaL_checkstring(L, 2);
    int top = lua_gettop(L);
    lcorm_check_params(L, 3, top);
    lcorm_req *r = req_new(L, b, REQ_QUERY);
    if (stream) {
        r->done = true;
        stream_setup(L, r, NULL);
        r->done = false;
    }
    corm_error err = CORM_ERROR_INIT;
    corm_query *q = NULL;
    int rc = corm_query_sql(&q, sql, &err);
    if (rc == CORM_OK)
        rc = lcorm_bind_params(L, 3, top, q, &err);
    if (rc == CORM_OK && b->query_timeout_ms > 0)
        rc = corm_query_set_timeout(q, b->query_timeout_ms, &err);
    if (rc == CORM_OK)
        rc = stream ? corm_pool_submit_stream(b->pool, q, on_rows, on_done, r, &r->id, &err)
                    : corm_pool_submit(b->pool, q, on_done, r, &r->id, &err);
    corm_query_free(q);
    if (rc < 0) {
        r->done = true;   /* never submitted: nothing will call back */
        return lcorm_fail(L, &err);
    }
    return 1;
}

static int pool_submit(lua_State *L) { return pool_send(L, false); }
static int pool_stream(lua_State *L) { return pool_send(L, true); }

/* pool:acquire([timeout_seconds]) -> request (whose take() gives a conn) */
static int pool_acquire(lua_State *L)
{
    lcorm_box *b = checkpool(L);
    lua_Number t = luaL_optnumber(L, 2, 0);
    int ms = t > 0 ? (t * 1000 > INT32_MAX ? INT32_MAX : (int)ceil(t * 1000)) : 0;
    lcorm_req *r = req_new(L, b, REQ_ACQUIRE);
    corm_error err = CORM_ERROR_INIT;
    if (corm_pool_acquire(b->pool, ms, on_acquire, r, &r->id, &err) < 0) {
        r->done = true;
        return lcorm_fail(L, &err);
    }
    return 1;
}

/* pool:set_query_timeout(seconds | nil) - the client-side deadline of every
 * statement submitted from now on: when it passes, the server is asked to
 * cancel it and the request fails with class "timeout". */
static int pool_set_query_timeout(lua_State *L)
{
    lcorm_box *b = checkpool(L);
    lua_Number t = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, t >= 0, 2, "timeout must be >= 0");
    b->query_timeout_ms = t > 0 ? (t * 1000 > INT32_MAX ? INT32_MAX : (int)ceil(t * 1000)) : 0;
    return 0;
}

static int pool_pollfd(lua_State *L)
{
    lua_pushinteger(L, checkpool(L)->epfd);
    return 1;
}

static int pool_timeout(lua_State *L)
{
    push_timeout(L, corm_pool_timeout(checkpool(L)->pool));
    return 1;
}

static int pool_step(lua_State *L)
{
    box_step(L, checkpool(L));
    return 0;
}

static int pool_size(lua_State *L)
{
    lcorm_box *b = checkpool(L);
    lua_pushinteger(L, corm_pool_size(b->pool));
    lua_pushinteger(L, corm_pool_idle(b->pool));
    return 2;
}

static int pool_tostring(lua_State *L)
{
    lcorm_poolud *u = luaL_checkudata(L, 1, LCORM_POOL);
    if (!u->box || !u->box->pool)
        lua_pushliteral(L, "cormorant.pool (closed)");
    else
        lua_pushfstring(L, "cormorant.pool (%d connections)", corm_pool_size(u->box->pool));
    return 1;
}

/* ---- for query.c: built queries through the same requests -------------- */

/* Submits q on the pool or lent connection at idx (the pool's query
 * timeout applies), streamed when so is given; pushes the request, or
 * nil, err. */
int lcorm_submit_query(lua_State *L, int idx, corm_query *q, const lcorm_stream *so)
{
    lcorm_box *b;
    corm_conn *c = NULL;
    lcorm_poolud *pu = luaL_testudata(L, idx, LCORM_POOL);
    if (pu) {
        if (!pu->box || !pu->box->pool)
            return luaL_error(L, "attempt to use a closed pool");
        b = pu->box;
    } else {
        lcorm_connud *cu = luaL_testudata(L, idx, LCORM_CONN);
        if (!cu)
            return luaL_argerror(L, idx, "cormorant.pool or cormorant.conn expected");
        if (!cu->box || !cu->box->pool)
            return luaL_error(L, "attempt to use a released connection");
        b = cu->box;
        c = cu->c;
    }
    lcorm_req *r = req_new(L, b, REQ_QUERY);
    if (so) {
        r->done = true;
        stream_setup(L, r, so);
        r->done = false;
    }
    corm_error err = CORM_ERROR_INIT;
    int rc = CORM_OK;
    if (b->query_timeout_ms > 0)
        rc = corm_query_set_timeout(q, b->query_timeout_ms, &err);
    if (rc == CORM_OK && so)
        rc = c ? corm_conn_submit_stream(c, q, on_rows, on_done, r, &r->id, &err)
               : corm_pool_submit_stream(b->pool, q, on_rows, on_done, r, &r->id, &err);
    else if (rc == CORM_OK)
        rc = c ? corm_conn_submit(c, q, on_done, r, &r->id, &err)
               : corm_pool_submit(b->pool, q, on_done, r, &r->id, &err);
    if (rc < 0) {
        r->done = true;   /* never submitted: nothing will call back */
        return lcorm_fail(L, &err);
    }
    if (c)
        conn_sync(L, b);
    return 1;
}

/* The result of the done statement request at idx, still owned by the
 * request (free it with lcorm_req_drop_result once decoded): returns 0 and
 * sets *res, or pushes nil, err and returns 2. Raises when not done. */
int lcorm_req_result(lua_State *L, int idx, corm_result **res)
{
    lcorm_requd *u = luaL_checkudata(L, idx, LCORM_REQUEST);
    lcorm_req *r = u->r;
    if (!r)
        return luaL_error(L, "attempt to use a closed request");
    if (!r->done && r->box->pool)
        return luaL_error(L, "request is not done");
    if (!r->done || r->err.code) {
        corm_error e = CORM_ERROR_INIT;
        e.code = CORM_ECANCELLED;
        e.message = (char *)"pool closed";
        lua_pushnil(L);
        lcorm_push_error(L, r->done ? &r->err : &e);
        return 2;
    }
    if (r->kind != REQ_QUERY || !r->res)
        return luaL_error(L, "result already taken");
    *res = r->res;
    return 0;
}

int lcorm_req_stream_rows(lua_State *L, int idx)
{
    lcorm_requd *u = luaL_checkudata(L, idx, LCORM_REQUEST);
    lcorm_req *r = u->r;
    if (!r || r->st == LUA_NOREF || !r->done || r->err.code || !r->res)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->st);
    lua_rawgeti(L, -1, ST_ROWS);
    lua_remove(L, -2);
    luaL_unref(L, LUA_REGISTRYINDEX, r->st);
    r->st = LUA_NOREF;
    return 1;
}

void lcorm_req_drop_result(lua_State *L, int idx)
{
    lcorm_requd *u = luaL_checkudata(L, idx, LCORM_REQUEST);
    if (u->r) {
        corm_result_free(u->r->res);
        u->r->res = NULL;
    }
}

/* ---- registration ------------------------------------------------------- */

static const luaL_Reg pool_methods[] = {
    {"submit", pool_submit},   {"stream", pool_stream},   {"acquire", pool_acquire}, {"close", pool_close},
    {"closed", pool_closed},   {"size", pool_size},       {"pollfd", pool_pollfd},
    {"set_query_timeout", pool_set_query_timeout},
    {"events", l_events},      {"timeout", pool_timeout}, {"step", pool_step},
    {NULL, NULL}};

static const luaL_Reg pool_meta[] = {
    {"__gc", pool_gc}, {"__close", pool_gc}, {"__tostring", pool_tostring}, {NULL, NULL}};

static const luaL_Reg conn_methods[] = {
    {"submit", conn_submit},     {"stream", conn_stream},   {"begin", conn_begin},     {"commit", conn_commit},
    {"rollback", conn_rollback}, {"depth", conn_depth},     {"backend_pid", conn_backend_pid},
    {"release", conn_release},   {"pollfd", conn_pollfd},   {"events", l_events},
    {"timeout", conn_timeout},   {"step", conn_step},       {NULL, NULL}};

static const luaL_Reg conn_meta[] = {
    {"__gc", conn_release}, {"__close", conn_release}, {"__tostring", conn_tostring},
    {NULL, NULL}};

static const luaL_Reg req_methods[] = {
    {"done", req_done},       {"step", req_step},     {"take", req_take},
    {"pollfd", req_pollfd},   {"events", l_events},   {"timeout", req_timeout},
    {"cancel", req_cancel},   {"close", req_release}, {NULL, NULL}};

static const luaL_Reg req_meta[] = {
    {"__gc", req_release}, {"__close", req_release}, {"__tostring", req_tostring},
    {NULL, NULL}};

static void new_class(lua_State *L, const char *name, const luaL_Reg *meta,
                      const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int lcorm_open_conn(lua_State *L)
{
    new_class(L, LCORM_POOL, pool_meta, pool_methods);
    new_class(L, LCORM_CONN, conn_meta, conn_methods);
    new_class(L, LCORM_REQUEST, req_meta, req_methods);
    return 0;
}
