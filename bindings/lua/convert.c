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

/* "2024-05-06"; *bc tells whether " BC" must follow the whole value. */
static int fmt_date(char *buf, size_t n, int64_t days_since_2000, bool *bc)
{
    int64_t y;
    int m, d;
    civil_from_days(days_since_2000 + PG_EPOCH_DAYS, &y, &m, &d);
    *bc = y <= 0;
    if (*bc)
        y = 1 - y;
    return snprintf(buf, n, "%04lld-%02d-%02d", (long long)y, m, d);
}

/* "13:45:07" or "13:45:07.25" (fraction without trailing zeros). */
static int fmt_time(char *buf, size_t n, int64_t usec)
{
    int64_t s = usec / USEC_PER_SEC, f = usec % USEC_PER_SEC;
    int len = snprintf(buf, n, "%02lld:%02lld:%02lld", (long long)(s / 3600),
                       (long long)(s / 60 % 60), (long long)(s % 60));
    if (f) {
        char frac[8];
        snprintf(frac, sizeof frac, "%06lld", (long long)f);
        for (int i = 5; i > 0 && frac[i] == '0'; i--)
            frac[i] = 0;
        len += snprintf(buf + len, n - (size_t)len, ".%s", frac);
    }
    return len;
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

static void push_timestamp(lua_State *L, int64_t usec, bool utc)
{
    if (usec == CORM_TIMESTAMP_INFINITY || usec == CORM_TIMESTAMP_NEG_INFINITY) {
        lua_pushstring(L, usec > 0 ? "infinity" : "-infinity");
        return;
    }
    char buf[80];
    bool bc;
    int64_t days = floor_div(usec, USEC_PER_DAY);
    int len = fmt_date(buf, sizeof buf, days, &bc);
    buf[len++] = ' ';
    len += fmt_time(buf + len, sizeof buf - (size_t)len, usec - days * USEC_PER_DAY);
    if (utc)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "+00");
    if (bc)
        snprintf(buf + len, sizeof buf - (size_t)len, " BC");
    lua_pushstring(L, buf);
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

/* ---- cells -------------------------------------------------------------- */

void lcorm_cvt_init(lua_State *L, lcorm_cvt *cvt)
{
    luaL_checkstack(L, 4, NULL);
    lua_getfield(L, LUA_REGISTRYINDEX, LCORM_STATE);
    lua_getfield(L, -1, "int64");
    lua_getfield(L, -2, "json");
    lua_getfield(L, -3, "null");
    lua_remove(L, -4);
    int top = lua_gettop(L);
    cvt->int64_fn = lua_isfunction(L, top - 2) ? top - 2 : 0;
    cvt->json_fn = lua_isfunction(L, top - 1) ? top - 1 : 0;
    cvt->null_idx = top;
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
                lua_pushvalue(L, cvt->null_idx);
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
        } else {
            lua_pushlstring(L, v->v.str.ptr ? v->v.str.ptr : "", v->v.str.len);
        }
        return 1;
    case CORM_DATE:
        push_date(L, v->v.i);
        return 1;
    case CORM_TIME: {
        char buf[40];
        fmt_time(buf, sizeof buf, v->v.i);
        lua_pushstring(L, buf);
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
        push_timestamp(L, v->v.i, false);
        return 1;
    case CORM_TIMESTAMPTZ:
        push_timestamp(L, v->v.i, true);
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

int lcorm_push_rows(lua_State *L, const corm_result *r, corm_error *err)
{
    int nrows = corm_result_nrows(r), ncols = corm_result_ncols(r);
    int base = lua_gettop(L);
    luaL_checkstack(L, ncols + 8, "too many columns");
    lcorm_cvt cvt;
    lcorm_cvt_init(L, &cvt);
    /* Field names interned once per result, then reused by every row. */
    int names = lua_gettop(L) + 1;
    for (int c = 0; c < ncols; c++) {
        const char *name = corm_result_colname(r, c);
        lua_pushstring(L, name ? name : "?column?");
    }
    lua_createtable(L, nrows > 0 ? nrows : 0, 0);
    for (int row = 0; row < nrows; row++) {
        lua_createtable(L, 0, ncols);
        for (int c = 0; c < ncols; c++) {
            corm_value v;
            if (corm_result_get(r, row, c, &v, err) < 0)
                goto fail;
            if (v.kind == CORM_NULL)
                continue;
            lua_pushvalue(L, names + c);
            if (!lcorm_push_value(L, &cvt, &v, err))
                goto fail;
            lua_rawset(L, -3);
        }
        lua_rawseti(L, -2, row + 1);
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 1;
fail:
    lua_settop(L, base);
    return 0;
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
