/*
 * convert.c - corm_value <-> Lua values: parameters in, cells out, and the
 * one tight loop that turns a result into a list of row tables. All type
 * logic of the Lua binding lives here.
 *
 * Cells, by kind:
 *   bool -> boolean; int -> integer (LuaJIT: number when |v| <= 2^53, else
 *   the int64 hook's int64_t cdata); float -> number; text, bytea, enum and
 *   other undecoded types -> string; numeric -> exact decimal string;
 *   uuid -> "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"; json/jsonb -> the text,
 *   or what the JSON hook makes of it; arrays -> nested sequence tables
 *   with core.null for NULL items; NULL cells -> absent fields.
 *   Dates and times -> PostgreSQL's own ISO text, so they round-trip as
 *   parameters: date "2024-05-06", time "13:45:00.25", timetz
 *   "13:45:00+02", timestamp "2024-05-06 13:45:00.123456", timestamptz
 *   always in UTC "2024-05-06 11:45:00+00", BC years with a " BC" suffix,
 *   "infinity"/"-infinity"; interval as ISO 8601 "P1Y2M3DT4H5M6.5S".
 */
#include "lcorm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USEC_PER_SEC INT64_C(1000000)
#define USEC_PER_DAY INT64_C(86400000000)
/* Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define PG_EPOCH_DAYS 10957

static void set_error(corm_error *err, int code, const char *msg)
{
    corm_error tmp = CORM_ERROR_INIT;
    tmp.code = code;
    tmp.message = (char *)msg;   /* borrowed; corm_error_copy duplicates it */
    corm_error_copy(err, &tmp);
}

/* ---- calendar (Howard Hinnant's civil_from_days) ------------------------ */

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Writes v (0 <= v < 10^width) as exactly `width` digits; snprintf costs
 * more than the rest of a row's conversion, so the hot forms are by hand. */
static char *put_digits(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* "2024-05-06"; *bc tells whether " BC" must follow the whole value. */
static int fmt_date(char *buf, size_t n, int64_t days_since_2000, bool *bc)
{
    int64_t y;
    int m, d;
    civil_from_days(days_since_2000 + PG_EPOCH_DAYS, &y, &m, &d);
    *bc = y <= 0;
    if (*bc)
        y = 1 - y;
    if (y > 9999)
        return snprintf(buf, n, "%04lld-%02d-%02d", (long long)y, m, d);
    char *p = put_digits(buf, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p = 0;
    return (int)(p - buf);
}

/* "13:45:07" or "13:45:07.25" (fraction without trailing zeros). buf holds
 * at least 24 bytes; hours may exceed 24 (time '24:00:00'). */
static int fmt_time(char *buf, size_t n, int64_t usec)
{
    int64_t s = usec / USEC_PER_SEC, f = usec % USEC_PER_SEC;
    int64_t h = s / 3600;
    if (h > 99 || h < 0)
        return snprintf(buf, n, "%02lld:%02lld:%02lld", (long long)h,
                        (long long)(s / 60 % 60), (long long)(s % 60));
    char *p = put_digits(buf, h, 2);
    *p++ = ':';
    p = put_digits(p, s / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, s % 60, 2);
    if (f) {
        *p++ = '.';
        p = put_digits(p, f, 6);
        while (p[-1] == '0')
            p--;
    }
    *p = 0;
    return (int)(p - buf);
}

/* "+02", "+05:30", "-03:00:15": PostgreSQL's offset form (seconds east). */
static int fmt_zone(char *buf, size_t n, int32_t east)
{
    char sign = east < 0 ? '-' : '+';
    int32_t a = east < 0 ? -east : east;
    int len = snprintf(buf, n, "%c%02d", sign, (int)(a / 3600));
    if (a % 3600) {
        len += snprintf(buf + len, n - (size_t)len, ":%02d", (int)(a / 60 % 60));
        if (a % 60)
            len += snprintf(buf + len, n - (size_t)len, ":%02d", (int)(a % 60));
    }
    return len;
}

static void push_date(lua_State *L, int64_t days)
{
    if (days == CORM_DATE_INFINITY || days == CORM_DATE_NEG_INFINITY) {
        lua_pushstring(L, days > 0 ? "infinity" : "-infinity");
        return;
    }
    char buf[48];
    bool bc;
    int len = fmt_date(buf, sizeof buf, days, &bc);
    if (bc)
        snprintf(buf + len, sizeof buf - (size_t)len, " BC");
    lua_pushstring(L, buf);
}

/* Consecutive rows mostly share a day: its text is kept in memo. */
static void push_timestamp(lua_State *L, struct lcorm_memo *memo, int64_t usec, bool utc)
{
    if (usec == CORM_TIMESTAMP_INFINITY || usec == CORM_TIMESTAMP_NEG_INFINITY) {
        lua_pushstring(L, usec > 0 ? "infinity" : "-infinity");
        return;
    }
    char buf[80];
    int64_t days = floor_div(usec, USEC_PER_DAY);
    if (!memo->date_len || memo->day != days) {
        memo->date_len = fmt_date(memo->date, sizeof memo->date, days, &memo->date_bc);
        memo->day = days;
    }
    bool bc = memo->date_bc;
    int len = memo->date_len;
    memcpy(buf, memo->date, (size_t)len);
    buf[len++] = ' ';
    len += fmt_time(buf + len, sizeof buf - (size_t)len, usec - days * USEC_PER_DAY);
    if (utc) {
        memcpy(buf + len, "+00", 3);
        len += 3;
    }
    if (bc) {
        memcpy(buf + len, " BC", 3);
        len += 3;
    }
    lua_pushlstring(L, buf, (size_t)len);
}

/* ISO 8601 duration, as PostgreSQL's IntervalStyle iso_8601 prints it. */
static void push_interval(lua_State *L, int32_t months, int32_t days, int64_t usec)
{
    char buf[128];
    int len = 0;
    if (!months && !days && !usec) {
        lua_pushstring(L, "PT0S");
        return;
    }
    buf[len++] = 'P';
    if (months / 12)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%dY", (int)(months / 12));
    if (months % 12)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%dM", (int)(months % 12));
    if (days)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%dD", (int)days);
    if (usec) {
        int64_t h = usec / (3600 * USEC_PER_SEC);
        int64_t rest = usec % (3600 * USEC_PER_SEC);
        int64_t mi = rest / (60 * USEC_PER_SEC);
        int64_t s = rest % (60 * USEC_PER_SEC);   /* seconds in usec, signed */
        buf[len++] = 'T';
        if (h)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%lldH", (long long)h);
        if (mi)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%lldM", (long long)mi);
        if (s) {
            int64_t a = s < 0 ? -s : s;
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%lld", s < 0 ? "-" : "",
                            (long long)(a / USEC_PER_SEC));
            if (a % USEC_PER_SEC) {
                char frac[8];
                snprintf(frac, sizeof frac, "%06lld", (long long)(a % USEC_PER_SEC));
                for (int i = 5; i > 0 && frac[i] == '0'; i--)
                    frac[i] = 0;
                len += snprintf(buf + len, sizeof buf - (size_t)len, ".%s", frac);
            }
            buf[len++] = 'S';
        }
        buf[len] = 0;
    }
    lua_pushlstring(L, buf, (size_t)len);
}

static void push_uuid(lua_State *L, const uint8_t u[16])
{
    static const char hex[] = "0123456789abcdef";
    char buf[36];
    int j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[j++] = '-';
        buf[j++] = hex[u[i] >> 4];
        buf[j++] = hex[u[i] & 15];
    }
    lua_pushlstring(L, buf, sizeof buf);
}

/* ---- JSON ----------------------------------------------------------------- */

/*
 * json/jsonb built straight from the engine's one-pass reader: objects ->
 * tables, arrays -> sequences, null -> core.null (so arrays keep their
 * length), numbers -> integers when they are integers that fit (Lua 5.4),
 * else floats. An empty object and an empty array both become an empty
 * table: Lua tables do not tell them apart.
 *
 * Each container is on the stack while it is open; a finished value is
 * attached to the container below it (after the key, for an object).
 * Tables are sized from the last container of the same kind closed at the
 * same depth (cvt->memo.json_hint): the rows of a column tend to share a shape,
 * and growing a table from empty rehashes it at every power of two.
 */
typedef struct json_ctx {
    lua_State *L;
    int32_t *hint;                        /* LCORM_JSON_HINTS objects, then arrays */
    int depth;
    int32_t n[CORM_JSON_MAX_DEPTH + 1];   /* items so far in each open container */
    bool obj[CORM_JSON_MAX_DEPTH + 1];
} json_ctx;

#define JSON_ESTACK (-1000)   /* a sink's own failure: no stack space */

static void json_attach(json_ctx *j)
{
    int d = j->depth;
    if (d == 0)
        return;
    if (j->obj[d]) {
        lua_rawset(j->L, -3);
        j->n[d]++;
    } else {
        lua_rawseti(j->L, -2, ++j->n[d]);
    }
}

static int json_null(void *ud)
{
    json_ctx *j = ud;
    lua_pushlightuserdata(j->L, NULL);   /* core.null */
    json_attach(j);
    return 0;
}

static int json_boolean(void *ud, int value)
{
    json_ctx *j = ud;
    lua_pushboolean(j->L, value);
    json_attach(j);
    return 0;
}

static int json_number(void *ud, const char *text, size_t len, int integer)
{
    json_ctx *j = ud;
    if (integer) {
        bool neg = text[0] == '-';
#if LCORM_HAS_INTEGERS
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
#else
        uint64_t limit = (uint64_t)LCORM_EXACT_DOUBLE_MAX;   /* exact as a double */
#endif
        uint64_t v = 0;
        size_t i = neg;
        for (; i < len; i++) {
            unsigned d = (unsigned)(text[i] - '0');
            if (v > (limit - d) / 10)
                break;   /* out of range: a float, as Lua's own reader makes it */
            v = v * 10 + d;
        }
        if (i == len) {
#if LCORM_HAS_INTEGERS
            lua_pushinteger(j->L, neg ? (lua_Integer)(0 - v) : (lua_Integer)v);
#else
            lua_pushnumber(j->L, neg ? -(lua_Number)v : (lua_Number)v);
#endif
            json_attach(j);
            return 0;
        }
    }
    /* The text is not NUL-terminated where the number ends. */
    char buf[64];
    if (len < sizeof buf) {
        memcpy(buf, text, len);
        buf[len] = 0;
        lua_pushnumber(j->L, (lua_Number)strtod(buf, NULL));
    } else {
        lua_pushlstring(j->L, text, len);
        lua_Number x = lua_tonumber(j->L, -1);
        lua_pop(j->L, 1);
        lua_pushnumber(j->L, x);
    }
    json_attach(j);
    return 0;
}

static int json_string(void *ud, const char *s, size_t len)
{
    json_ctx *j = ud;
    lua_pushlstring(j->L, s, len);
    json_attach(j);
    return 0;
}

static int json_open(json_ctx *j, bool obj)
{
    if (!lua_checkstack(j->L, 4))
        return JSON_ESTACK;
    int d = ++j->depth;
    int32_t hint = d <= LCORM_JSON_HINTS ? j->hint[d - 1 + (obj ? 0 : LCORM_JSON_HINTS)] : 0;
    lua_createtable(j->L, obj ? 0 : hint, obj ? hint : 0);
    j->n[d] = 0;
    j->obj[d] = obj;
    return 0;
}

static int json_begin_array(void *ud) { return json_open(ud, false); }
static int json_begin_object(void *ud) { return json_open(ud, true); }

static int json_close(void *ud)
{
    json_ctx *j = ud;
    int d = j->depth--;
    /* Capped: one huge array must not make every later small one huge. */
    if (d <= LCORM_JSON_HINTS)
        j->hint[d - 1 + (j->obj[d] ? 0 : LCORM_JSON_HINTS)] = j->n[d] < 64 ? j->n[d] : 64;
    json_attach(j);
    return 0;
}

static int json_key(void *ud, const char *s, size_t len)
{
    json_ctx *j = ud;
    lua_pushlstring(j->L, s, len);
    return 0;
}

static const corm_json_sink json_sink = {
    json_null,       json_boolean,     json_number,       json_string, json_begin_array,
    json_close,      json_begin_object, json_key,         json_close,
};

/* Runs the reader over the text and context given as light userdata at 1
 * and 2 (the length at 3); leaves the value, or nil and the message. */
static int json_parse_here(lua_State *L)
{
    const char *text = lua_touserdata(L, 1);
    json_ctx *j = lua_touserdata(L, 2);
    size_t len = (size_t)lua_tointeger(L, 3);
    lua_settop(L, 0);
    j->L = L;
    j->depth = 0;
    corm_error err = CORM_ERROR_INIT;
    int rc = corm_json_parse(text, len, &json_sink, j, &err);
    if (rc == CORM_OK)
        return 1;
    lua_settop(L, 0);
    lua_pushnil(L);
    lua_pushstring(L, rc == JSON_ESTACK ? "JSON nested too deeply for the Lua stack"
                                        : err.message ? err.message : corm_strerror(rc));
    corm_error_clear(&err);
    return 2;
}

/*
 * Pushes the value of JSON text, or returns 0 with *err filled. The reader
 * runs under lua_pcall: a Lua memory error raised from a sink would
 * otherwise jump over the reader's own cleanup.
 */
static int push_json(lua_State *L, const lcorm_cvt *cvt, const char *text, size_t len,
                     corm_error *err)
{
    json_ctx j;
    j.hint = ((lcorm_cvt *)cvt)->memo.json_hint;   /* scratch (lcorm_cvt.memo) */
    luaL_checkstack(L, 4, NULL);
    if (cvt->json_reader)
        lua_pushvalue(L, cvt->json_reader);   /* LuaJIT allocates each pushed C function */
    else
        lua_pushcfunction(L, json_parse_here);
    lua_pushlightuserdata(L, (void *)(text ? text : ""));
    lua_pushlightuserdata(L, &j);
    lua_pushinteger(L, (lua_Integer)len);
    int rc = lua_pcall(L, 3, 2, 0);
    if (rc == 0 && !lua_isnil(L, -2)) {
        lua_pop(L, 1);
        return 1;
    }
    const char *msg = lua_tostring(L, -1);
    set_error(err, rc == LUA_ERRMEM ? CORM_ENOMEM : CORM_EDATA, msg ? msg : "JSON error");
    lua_pop(L, rc == 0 ? 2 : 1);   /* nil and the message, or the error object */
    return 0;
}

/* ---- cells -------------------------------------------------------------- */

void lcorm_cvt_init(lua_State *L, lcorm_cvt *cvt)
{
    luaL_checkstack(L, 4, NULL);
    lua_getfield(L, LUA_REGISTRYINDEX, LCORM_STATE);
    lua_getfield(L, -1, "int64");
    lua_getfield(L, -2, "json");
    lua_remove(L, -3);
    lcorm_push_json_reader(L);
    lcorm_cvt_from(L, cvt, lua_gettop(L) - 2, lua_gettop(L) - 1, lua_gettop(L));
}

void lcorm_push_json_reader(lua_State *L)
{
    lua_pushcfunction(L, json_parse_here);
}

void lcorm_cvt_from(lua_State *L, lcorm_cvt *cvt, int int64_idx, int json_idx, int reader_idx)
{
    cvt->json_reader = reader_idx;
    cvt->int64_fn = lua_isfunction(L, int64_idx) ? int64_idx : 0;
    cvt->json_fn = lua_isfunction(L, json_idx) ? json_idx : 0;
    cvt->json_text = lua_type(L, json_idx) == LUA_TBOOLEAN && !lua_toboolean(L, json_idx);
    memset(&cvt->memo, 0, sizeof cvt->memo);
}

static int push_int(lua_State *L, const lcorm_cvt *cvt, int64_t i, corm_error *err)
{
    if (lcorm_pushint64(L, i))
        return 1;
    /* LuaJIT, beyond 2^53: the Lua layer's hook turns the 8 native-endian
     * bytes into an int64_t cdata, so the value is never rounded. */
    if (!cvt->int64_fn) {
        set_error(err, CORM_EDATA, "integer beyond 2^53 and no int64 conversion (ffi) available");
        return 0;
    }
    lua_pushvalue(L, cvt->int64_fn);
    lua_pushlstring(L, (const char *)&i, sizeof i);
    lua_call(L, 1, 1);
    return 1;
}

#ifdef LCORM_HAVE_ARRAYS
static int push_array_level(lua_State *L, const lcorm_cvt *cvt, corm_array *a, int dim,
                            corm_error *err)
{
    int n = a->dims[dim];
    luaL_checkstack(L, 4, NULL);
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        if (dim + 1 < a->ndim) {
            if (!push_array_level(L, cvt, a, dim + 1, err))
                goto fail;
        } else {
            corm_value item;
            int rc = corm_array_next(a, &item, err);
            if (rc == 0)
                set_error(err, CORM_EDATA, "array has fewer items than its dimensions");
            if (rc != 1)
                goto fail;
            if (item.kind == CORM_NULL)
                lua_pushlightuserdata(L, NULL);   /* core.null */
            else if (!lcorm_push_value(L, cvt, &item, err))
                goto fail;
        }
        lua_rawseti(L, -2, i);
    }
    return 1;
fail:
    lua_pop(L, 1);
    return 0;
}

int lcorm_push_array(lua_State *L, const lcorm_cvt *cvt, const corm_value *v, corm_error *err)
{
    corm_array a;
    if (corm_array_init(&a, v, err) < 0)
        return 0;
    if (a.ndim == 0) {
        lua_newtable(L);
        return 1;
    }
    return push_array_level(L, cvt, &a, 0, err);
}
#endif

int lcorm_push_value(lua_State *L, const lcorm_cvt *cvt, const corm_value *v, corm_error *err)
{
    switch (v->kind) {
    case CORM_NULL:
        lua_pushnil(L);
        return 1;
    case CORM_BOOL:
        lua_pushboolean(L, v->v.b);
        return 1;
    case CORM_INT:
        return push_int(L, cvt, v->v.i, err);
    case CORM_FLOAT:
        lua_pushnumber(L, (lua_Number)v->v.f);
        return 1;
    case CORM_TEXT:
    case CORM_BYTES:
    case CORM_NUMERIC:
        lua_pushlstring(L, v->v.str.ptr ? v->v.str.ptr : "", v->v.str.len);
        return 1;
    case CORM_JSON:
        if (cvt->json_fn) {
            lua_pushvalue(L, cvt->json_fn);
            lua_pushlstring(L, v->v.str.ptr ? v->v.str.ptr : "", v->v.str.len);
            lua_call(L, 1, 1);
        } else if (cvt->json_text) {
            lua_pushlstring(L, v->v.str.ptr ? v->v.str.ptr : "", v->v.str.len);
        } else {
            return push_json(L, cvt, v->v.str.ptr, v->v.str.len, err);
        }
        return 1;
    case CORM_DATE:
        push_date(L, v->v.i);
        return 1;
    case CORM_TIME: {
        char buf[40];
        int len = fmt_time(buf, sizeof buf, v->v.i);
        lua_pushlstring(L, buf, (size_t)len);
        return 1;
    }
    case CORM_TIMETZ: {
        char buf[64];
        int len = fmt_time(buf, sizeof buf, v->v.tz.usec);
        fmt_zone(buf + len, sizeof buf - (size_t)len, v->v.tz.zone);
        lua_pushstring(L, buf);
        return 1;
    }
    case CORM_TIMESTAMP:
        push_timestamp(L, &((lcorm_cvt *)cvt)->memo, v->v.i, false);
        return 1;
    case CORM_TIMESTAMPTZ:
        push_timestamp(L, &((lcorm_cvt *)cvt)->memo, v->v.i, true);
        return 1;
    case CORM_INTERVAL:
        push_interval(L, v->v.interval.months, v->v.interval.days, v->v.interval.usec);
        return 1;
    case CORM_UUID:
        push_uuid(L, v->v.uuid);
        return 1;
    case CORM_ARRAY:
#ifdef LCORM_HAVE_ARRAYS
        return lcorm_push_array(L, cvt, v, err);
#else
        lua_pushlstring(L, v->v.array.ptr, v->v.array.len);
        return 1;
#endif
    case CORM_RAW:
        lua_pushlstring(L, v->v.str.ptr ? v->v.str.ptr : "", v->v.str.len);
        return 1;
    default:
        set_error(err, CORM_EDATA, "value of a kind the Lua binding does not know");
        return 0;
    }
}

/* ---- rows --------------------------------------------------------------- */

int lcorm_append_rows(lua_State *L, const lcorm_cvt *cvt, const lcorm_shape *sh,
                      const corm_result *r, int list, lua_Integer *n, corm_error *err)
{
    int nrows = corm_result_nrows(r), ncols = sh->ncols;
    luaL_checkstack(L, 8, NULL);
    for (int row = 0; row < nrows; row++) {
        if (sh->clean) {
            /* instances: the snapshot of the fields as loaded beside the row */
            lua_createtable(L, 0, ncols);
            lua_createtable(L, sh->nfields, 0);
        } else {
            lua_createtable(L, 0, ncols);
        }
        for (int c = 0; c < ncols; c++) {
            corm_value v;
            if (corm_result_get(r, row, c, &v, err) < 0)
                goto fail;
            if (v.kind == CORM_NULL)
                continue;
            lua_pushvalue(L, sh->names + c);
#ifdef LCORM_HAVE_ARRAYS
            if (v.kind == CORM_RAW && sh->rawarr && sh->rawarr[c]) {
                if (!lcorm_push_array(L, cvt, &v, err))
                    goto fail;
            } else
#endif
            if (!lcorm_push_value(L, cvt, &v, err))
                goto fail;
            if (sh->clean && sh->fields && sh->fields[c]) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, -4, sh->fields[c]);   /* snapshot by field position */
            }
            lua_rawset(L, sh->clean ? -4 : -3);
        }
        if (sh->clean) {
            lua_pushvalue(L, -2);   /* row */
            lua_insert(L, -2);      /* row, row, clean */
            lua_rawset(L, sh->clean);
        }
        if (sh->mt) {
            lua_pushvalue(L, sh->mt);
            lua_setmetatable(L, -2);
        }
        lua_rawseti(L, list, (int)++*n);
    }
    return 1;
fail:
    lua_pop(L, sh->clean ? 2 : 1);
    return 0;
}

int lcorm_push_rows(lua_State *L, const corm_result *r, corm_error *err)
{
    int nrows = corm_result_nrows(r), ncols = corm_result_ncols(r);
    int base = lua_gettop(L);
    luaL_checkstack(L, ncols + 8, "too many columns");
    lcorm_cvt cvt;
    lcorm_cvt_init(L, &cvt);
    /* Field names interned once per result, then reused by every row. */
    lcorm_shape sh = {ncols, lua_gettop(L) + 1, NULL, NULL, 0, 0, 0};
    for (int c = 0; c < ncols; c++) {
        const char *name = corm_result_colname(r, c);
        lua_pushstring(L, name ? name : "?column?");
    }
    lua_createtable(L, nrows > 0 ? nrows : 0, 0);
    lua_Integer n = 0;
    if (!lcorm_append_rows(L, &cvt, &sh, r, lua_gettop(L), &n, err)) {
        lua_settop(L, base);
        return 0;
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 1;
}

/* ---- parameters ----------------------------------------------------------- */

static bool is_bytea(lua_State *L, int i)
{
    if (!lua_istable(L, i) || !lua_getmetatable(L, i))
        return false;
    luaL_getmetatable(L, LCORM_BYTEA);
    bool yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

int lcorm_bytea(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    luaL_setmetatable(L, LCORM_BYTEA);
    return 1;
}

void lcorm_check_params(lua_State *L, int first, int last)
{
    for (int i = first; i <= last; i++) {
        switch (lua_type(L, i)) {
        case LUA_TNIL:
        case LUA_TBOOLEAN:
        case LUA_TNUMBER:
        case LUA_TSTRING:
            break;
        case LCORM_TCDATA:
            /* LuaJIT int64_t/uint64_t cdata: the Lua layer's hook gives its
             * exact decimal text, bound untyped like any string. */
            lua_getfield(L, LUA_REGISTRYINDEX, LCORM_STATE);
            lua_getfield(L, -1, "cdata");
            lua_remove(L, -2);
            if (!lua_isfunction(L, -1))
                luaL_argerror(L, i, "cannot bind cdata");
            lua_pushvalue(L, i);
            lua_call(L, 1, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, i, "cannot bind this cdata");
            lua_replace(L, i);
            break;
        case LUA_TTABLE:
            if (is_bytea(L, i)) {
                lua_rawgeti(L, i, 1);
                bool ok = lua_type(L, -1) == LUA_TSTRING;
                lua_pop(L, 1);
                if (ok)
                    break;
            }
            /* fall through */
        default:
            luaL_argerror(L, i, lua_pushfstring(L, "cannot bind a %s as a parameter",
                                                luaL_typename(L, i)));
        }
    }
}

int lcorm_bind_params(lua_State *L, int first, int last, corm_query *q, corm_error *err)
{
    for (int i = first; i <= last; i++) {
        int rc;
        int64_t n;
        switch (lua_type(L, i)) {
        case LUA_TNIL:
            rc = corm_query_bind_null(q, err);
            break;
        case LUA_TBOOLEAN:
            rc = corm_query_bind_bool(q, lua_toboolean(L, i), err);
            break;
        case LUA_TNUMBER:
            if (lcorm_tointeger(L, i, &n))
                rc = corm_query_bind_int64(q, n, err);
            else
                rc = corm_query_bind_double(q, (double)lua_tonumber(L, i), err);
            break;
        case LUA_TTABLE: { /* core.bytea (lcorm_check_params made sure) */
            size_t len;
            lua_rawgeti(L, i, 1);   /* anchored in the table while we bind */
            const char *p = lua_tolstring(L, -1, &len);
            rc = corm_query_bind_bytes(q, p, len, err);
            lua_pop(L, 1);
            break;
        }
        default: { /* a string (lcorm_check_params made sure) */
            corm_value v;
            memset(&v, 0, sizeof v);
            v.kind = CORM_TEXT;
            v.oid = 0;   /* untyped: the server infers the type from the SQL */
            v.v.str.ptr = lua_tolstring(L, i, &v.v.str.len);
            rc = corm_query_bind(q, &v, err);
            break;
        }
        }
        if (rc < 0)
            return rc;
    }
    return CORM_OK;
}

/* ---- values for models and expressions ----------------------------------- */

static bool is_null_sentinel(lua_State *L, int i)
{
    return lua_type(L, i) == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == NULL;
}

/* A scalar (not a table other than core.bytea) into *out; raises otherwise. */
static void to_scalar(lua_State *L, int i, corm_value *out)
{
    int64_t n;
    memset(out, 0, sizeof *out);
    switch (lua_type(L, i)) {
    case LUA_TNIL:
        out->kind = CORM_NULL;
        return;
    case LUA_TLIGHTUSERDATA:
        if (is_null_sentinel(L, i)) {
            out->kind = CORM_NULL;
            return;
        }
        break;
    case LUA_TBOOLEAN:
        out->kind = CORM_BOOL;
        out->v.b = lua_toboolean(L, i);
        return;
    case LUA_TNUMBER:
        if (lcorm_tointeger(L, i, &n)) {
            out->kind = CORM_INT;
            out->v.i = n;
        } else {
            out->kind = CORM_FLOAT;
            out->v.f = (double)lua_tonumber(L, i);
        }
        return;
    case LUA_TSTRING:
        out->kind = CORM_TEXT;
        out->v.str.ptr = lua_tolstring(L, i, &out->v.str.len);
        return;
    case LCORM_TCDATA:
        lcorm_check_params(L, i, i);   /* replaces the cdata by its decimal text */
        out->kind = CORM_TEXT;
        out->v.str.ptr = lua_tolstring(L, i, &out->v.str.len);
        return;
    case LUA_TTABLE:
        if (is_bytea(L, i)) {
            lua_rawgeti(L, i, 1);   /* anchored in the bytea table */
            if (lua_type(L, -1) == LUA_TSTRING) {
                out->kind = CORM_BYTES;
                out->v.str.ptr = lua_tolstring(L, -1, &out->v.str.len);
                lua_pop(L, 1);
                return;
            }
            lua_pop(L, 1);
        }
        break;
    default:
        break;
    }
    luaL_error(L, "cannot send a %s as a value", luaL_typename(L, i));
}

static bool is_array_table(lua_State *L, int i)
{
    return lua_type(L, i) == LUA_TTABLE && !is_bytea(L, i);
}

/* Fills items (row-major) from the nested table at i, checking that it is
 * rectangular along dims. */
static void fill_items(lua_State *L, int i, int dim, int ndim, const int32_t *dims,
                       corm_value *items, size_t *k)
{
    i = lua_absindex(L, i);
    if ((int32_t)lua_rawlen(L, i) != dims[dim])
        luaL_error(L, "array is not rectangular (dimension %d)", dim + 1);
    for (int32_t j = 1; j <= dims[dim]; j++) {
        luaL_checkstack(L, 4, NULL);
        lua_rawgeti(L, i, j);
        if (dim + 1 < ndim) {
            if (!is_array_table(L, -1))
                luaL_error(L, "array is not rectangular (dimension %d)", dim + 2);
            fill_items(L, -1, dim + 1, ndim, dims, items, k);
            lua_pop(L, 1);
        } else {
            if (is_array_table(L, -1))
                luaL_error(L, "array is not rectangular (dimension %d)", dim + 1);
            int t = lua_type(L, -1);
            /* strings stay anchored by the table they are in; converted cdata
             * text stays on the stack */
            to_scalar(L, lua_gettop(L), &items[(*k)++]);
            if (t != LCORM_TCDATA)
                lua_pop(L, 1);
        }
    }
}

void lcorm_to_value(lua_State *L, int idx, corm_value *out)
{
    idx = lua_absindex(L, idx);
    if (!is_array_table(L, idx)) {
        to_scalar(L, idx, out);
        return;
    }
    /* The shape follows the first item of each level. */
    int32_t *dims = lcorm_newuserdata(L, sizeof(int32_t) * CORM_ARRAY_MAXDIM);
    int ndim = 0;
    size_t count = 1;
    lua_pushvalue(L, idx);
    while (is_array_table(L, -1)) {
        int32_t n = (int32_t)lua_rawlen(L, -1);
        if (ndim == CORM_ARRAY_MAXDIM)
            luaL_error(L, "array has more than %d dimensions", CORM_ARRAY_MAXDIM);
        dims[ndim++] = n;
        if (n == 0)
            break;
        count *= (size_t)n;
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    memset(out, 0, sizeof *out);
    out->kind = CORM_ARRAY_ITEMS;
    if (dims[ndim - 1] == 0) {
        out->v.items.ndim = 0;   /* empty array */
        out->v.items.dims = dims;
        return;
    }
    corm_value *items = lcorm_newuserdata(L, count * sizeof *items);
    size_t k = 0;
    fill_items(L, idx, 0, ndim, dims, items, &k);
    out->v.items.items = items;
    out->v.items.dims = dims;
    out->v.items.ndim = ndim;
}
