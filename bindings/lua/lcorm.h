/*
 * lcorm.h - class names and shared declarations of the Lua binding
 * (cormorant.core), built for Lua 5.4 and LuaJIT 2.1 from the same files.
 */
#ifndef LCORM_H
#define LCORM_H

#include <corm.h>
#include <stdbool.h>

#include "compat.h"

/* Registry names of the metatables, one per class (liolib's LUA_FILEHANDLE). */
#define LCORM_POOL "cormorant.pool"
#define LCORM_CONN "cormorant.conn"
#define LCORM_REQUEST "cormorant.request"
#define LCORM_ERROR "cormorant.error"
#define LCORM_BYTEA "cormorant.bytea"   /* core.bytea(s): a string to bind as bytea */
/* Registry table of module state: conversion hooks, the null sentinel. */
#define LCORM_STATE "cormorant.state"

/*
 * What the pool userdata and every request and lent connection made from it
 * share. Reference counted so that it outlives whichever of them is
 * collected last; the engine's pool stays open while anyone holds a
 * reference, unless it is closed explicitly. Plain C memory: engine
 * callbacks only ever touch this and lcorm_req, never the lua_State.
 */
typedef struct lcorm_box {
    corm_pool *pool;         /* NULL once closed */
    int epfd;                /* one pollable fd over every member socket */
    int refs;
    int stepping;            /* inside corm_pool_step */
    corm_conn **deferred;    /* lent connections to give back after a step */
    int ndeferred, capdeferred;
    int query_timeout_ms;    /* applied to every statement submitted; 0: none */
    lua_State *L;            /* the thread whose Lua call is stepping, or NULL */
} lcorm_box;

/* core.c: the module's entry point, the one exported symbol. */
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_cormorant_core(lua_State *L);

/* conn.c */
int lcorm_open_conn(lua_State *L);   /* registers pool, conn, request classes */
int lcorm_pool_new(lua_State *L);    /* core.pool(conninfo [, opts]) */
/*
 * Built queries (query.c) go through the same requests. A streamed one
 * builds its rows while they arrive, as lcorm_append_rows would: with the
 * metatable and snapshot table at stack indexes mt and clean (0: none),
 * and, when the result has the qncols columns the query announced, keys
 * from the qncols strings at stack index names.. and the model mapping
 * fields/rawarr (copied); otherwise keys are the result's column names.
 */
typedef struct lcorm_stream {
    int mt, clean;
    int qncols, names;
    const int *fields;
    const unsigned char *rawarr;
    int nfields;
} lcorm_stream;
int lcorm_submit_query(lua_State *L, int idx, corm_query *q, const lcorm_stream *so);
int lcorm_req_result(lua_State *L, int idx, corm_result **res);
/* For a streamed request done without error: pushes its rows and returns 1
 * (the result, for the affected count, stays until dropped); else 0. */
int lcorm_req_stream_rows(lua_State *L, int idx);
void lcorm_req_drop_result(lua_State *L, int idx);

/* model.c, query.c: models, expressions and built queries */
#define LCORM_MODEL "cormorant.model"
#define LCORM_EXPR "cormorant.expr"
#define LCORM_QUERY "cormorant.query"
#define LCORM_REGISTRY "cormorant.registry"
int lcorm_open_model(lua_State *L);  /* registers the classes, adds functions to the module table at -1 */
int lcorm_open_query(lua_State *L);
corm_registry *lcorm_registry(lua_State *L);   /* the state's one registry */
corm_model *lcorm_checkmodel(lua_State *L, int idx);
corm_expr *lcorm_checkexpr(lua_State *L, int idx);
corm_expr *lcorm_testexpr(lua_State *L, int idx);
/* An expression userdata is made empty first (lcorm_expr_slot pushes it and
 * returns its index), before the engine hands over an expression, so a
 * memory error cannot leak one; lcorm_expr_fill gives it e (owned from
 * then on) and ORDER BY flags (asc/desc), and pushes it again. */
int lcorm_expr_slot(lua_State *L);
int lcorm_expr_fill(lua_State *L, int slot, corm_expr *e, unsigned flags);
unsigned lcorm_expr_flags(lua_State *L, int idx);

/* convert.c */
#define LCORM_JSON_HINTS 8
typedef struct lcorm_cvt {
    int int64_fn;   /* stack index of the int64 hook (LuaJIT), or 0 */
    int json_fn;    /* stack index of the user's JSON decoder, or 0 */
    int json_text;  /* 1: json/jsonb stay text (the hook set to false) */
    int json_reader; /* stack index of lcorm_push_json_reader's function, or 0 */
    /* What the last values leave for the next ones of a result: sizes of
     * the last JSON objects, then arrays, closed at depths 1..; the last
     * timestamp's day and its text. Scratch, written under a const cvt. */
    struct lcorm_memo {
        int32_t json_hint[2 * LCORM_JSON_HINTS];
        int64_t day;
        int date_len;   /* 0: no day yet */
        bool date_bc;
        char date[32];
    } memo;
} lcorm_cvt;

/* Pushes the hooks and the JSON reader onto the stack and fills *cvt (3 slots). */
void lcorm_cvt_init(lua_State *L, lcorm_cvt *cvt);
/* Fills *cvt from values already on the stack: the int64 hook, the json
 * hook, the JSON reader (lcorm_push_json_reader; 0: none yet). */
void lcorm_cvt_from(lua_State *L, lcorm_cvt *cvt, int int64_idx, int json_idx, int reader_idx);
/* Pushes the C function that runs the JSON reader under lua_pcall. */
void lcorm_push_json_reader(lua_State *L);
/* Pushes v as a Lua value; returns 1, or 0 with *err filled (nothing pushed)
 * when the value cannot be converted. May raise on Lua memory errors. */
int lcorm_push_value(lua_State *L, const lcorm_cvt *cvt, const corm_value *v,
                     corm_error *err);
/* Pushes array v (CORM_ARRAY, or CORM_RAW holding an array of a type not
 * built in, such as an enum array) as nested tables; returns 1, or 0 with
 * *err filled. Only when built with array support (LCORM_HAVE_ARRAYS). */
int lcorm_push_array(lua_State *L, const lcorm_cvt *cvt, const corm_value *v, corm_error *err);
/*
 * How rows become tables: ncols keys at stack indexes names.. (interned
 * once per result, reused by every row); for model instances, fields[c]
 * (1 + the model field column c fills, or 0), rawarr[c] (1: raw bytes of
 * an array of a type not built in), the model's field count, and the stack
 * indexes of the metatable (mt) and of the snapshot table (clean), 0 when
 * absent. clean[row] = the fields as loaded, a sequence by field position.
 */
typedef struct lcorm_shape {
    int ncols;
    int names;
    const int *fields;
    const unsigned char *rawarr;
    int nfields;
    int mt, clean;
} lcorm_shape;
/* Appends the rows of r to the list at stack index list as items *n+1...,
 * advancing *n. Returns 1, or 0 with *err filled (the rows appended so far
 * stay). May raise on Lua memory errors. */
int lcorm_append_rows(lua_State *L, const lcorm_cvt *cvt, const lcorm_shape *sh,
                      const corm_result *r, int list, lua_Integer *n, corm_error *err);
/* Pushes the rows of r as a list of tables keyed by column name (NULL cells
 * absent). Returns 1, or 0 with *err filled (nothing pushed). */
int lcorm_push_rows(lua_State *L, const corm_result *r, corm_error *err);
/*
 * Parameters at stack positions first..last: checks their types (raises on a
 * type that cannot be bound) and replaces each LuaJIT cdata by the string the
 * cdata hook makes of it. Must run before any C resource is acquired, since
 * it may raise.
 */
void lcorm_check_params(lua_State *L, int first, int last);
/* core.bytea(s): wraps a string so that it binds as bytea. */
int lcorm_bytea(lua_State *L);
/*
 * The Lua value at idx as a corm_value for a column or expression, typed by
 * the engine from its column: nil and core.null -> NULL, boolean, integer,
 * float, string (text; the engine or server parses it for other types),
 * core.bytea, LuaJIT int64 cdata (its decimal text), a table -> an array
 * (nested tables for more dimensions, core.null items). May push scratch
 * values (anchoring strings and item arrays) onto the stack: call it before
 * acquiring C resources, and let the caller's return drop them. Raises for
 * values that cannot be sent.
 */
void lcorm_to_value(lua_State *L, int idx, corm_value *out);
/* Binds the checked parameters to q. Never raises. */
int lcorm_bind_params(lua_State *L, int first, int last, corm_query *q, corm_error *err);

/* errors.c */
void lcorm_open_errors(lua_State *L);
/* The one place a corm_error becomes a Lua error object (a table with class,
 * code, sqlstate, message, detail, hint and the cormorant.error metatable). */
void lcorm_push_error(lua_State *L, const corm_error *err);
/* Expected failure: pushes nil and the error object, returns 2 (luaL_fileresult
 * style). CORM_EMISUSE is raised instead, as misuse is. Clears *err. */
int lcorm_fail(lua_State *L, corm_error *err);

#endif /* LCORM_H */
