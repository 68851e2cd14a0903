/*
 * corm.h - the public C API of libcorm, the engine of Cormorant.
 *
 * This header is the reference manual. It is ordered like one: version,
 * status codes and errors, allocator and options, values, queries,
 * connections and their non-blocking driving, submitting, results,
 * transactions, the pool, and the blocking helpers.
 *
 * Conventions that hold everywhere:
 *  - A function that can fail returns int: CORM_OK (0) on success, a negative
 *    CORM_E* code on failure, and fills the caller's corm_error when one is
 *    given (NULL is allowed where you do not want the details). Positive
 *    returns exist only where a function documents them as a count or mask.
 *  - Handles are opaque. A constructor `corm_x_open/new(&out, ...)` leaves
 *    *out == NULL on failure, with nothing to free.
 *  - Input is copied: strings and parameters handed in are copied before the
 *    call returns. Output is borrowed for the span each function states.
 *  - Nothing here blocks unless its comment says "Blocks". No function keeps
 *    global mutable state; handles are not thread-safe (one thread, one event
 *    loop drives a connection or pool at a time).
 */
#ifndef CORM_H
#define CORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CORM_API __declspec(dllexport)
#elif defined(__GNUC__)
#define CORM_API __attribute__((visibility("default")))
#else
#define CORM_API
#endif

/* ------------------------------------------------------------------------
 * Version
 * ---------------------------------------------------------------------- */

#define CORM_VERSION_MAJOR 0
#define CORM_VERSION_MINOR 1
#define CORM_VERSION_PATCH 0
#define CORM_VERSION_NUM \
    (CORM_VERSION_MAJOR * 10000 + CORM_VERSION_MINOR * 100 + CORM_VERSION_PATCH)

/* Feature macros: present when the feature is in this header. */
#define CORM_HAS_PIPELINING 1
#define CORM_HAS_POOL 1

/* The version of the library linked at run time, e.g. "0.1.0". */
CORM_API const char *corm_version(void);
/* CORM_VERSION_NUM of the library linked at run time. */
CORM_API int corm_version_num(void);

/* ------------------------------------------------------------------------
 * Status codes and errors
 * ---------------------------------------------------------------------- */

/*
 * Every error class, from one table: code, lowercase name (used as the Lua
 * `err.class` and to derive the Python exception), description.
 * Append only; values are stable.
 */
#define CORM_ERRNO_MAP(XX)                                                   \
    XX(CONNECTION, -1, "connection", "connection failed or was lost")        \
    XX(TIMEOUT, -2, "timeout", "timed out")                                  \
    XX(CANCELLED, -3, "cancelled", "cancelled")                              \
    XX(INTEGRITY, -4, "integrity", "integrity constraint violated")          \
    XX(DATA, -5, "data", "invalid or out-of-range data")                     \
    XX(PROGRAMMING, -6, "programming", "error in the SQL or its use")        \
    XX(MISUSE, -7, "misuse", "API misuse")                                   \
    XX(NOMEM, -8, "nomem", "out of memory")                                  \
    XX(INTERNAL, -9, "internal", "internal error")                           \
    XX(OPERATIONAL, -10, "operational", "server-side operational error")     \
    XX(TRANSACTION, -11, "transaction", "transaction conflict; retry")        \
    XX(NOTFOUND, -12, "not_found", "no row found")                           \
    XX(MULTIPLE, -13, "multiple_found", "more than one row found")

enum corm_status {
    CORM_OK = 0,
#define CORM__XX(name, value, lname, desc) CORM_E##name = value,
    CORM_ERRNO_MAP(CORM__XX)
#undef CORM__XX
    CORM__ELAST = -14
};

/*
 * Details of a failure. Caller-owned: declare one with CORM_ERROR_INIT, pass
 * its address, read it, then release its strings with corm_error_clear().
 * Filling an error that already holds one first clears the old one.
 * `message` is never NULL once code != 0; detail and hint may be NULL.
 * The strings are allocated with malloc, independent of any handle, so an
 * error may outlive the handle that produced it.
 */
typedef struct corm_error {
    int code;            /* CORM_OK or a CORM_E* code: the class of failure */
    char sqlstate[6];    /* five characters and NUL; "" if not from the server */
    char *message;       /* what went wrong */
    char *detail;        /* server's DETAIL, or NULL */
    char *hint;          /* server's HINT, or NULL */
    unsigned flags_;     /* private: which strings are heap-owned */
    void *reserved_[2];  /* private */
} corm_error;

#define CORM_ERROR_INIT {0, {0, 0, 0, 0, 0, 0}, NULL, NULL, NULL, 0u, {NULL, NULL}}

/* Frees the strings of *err and resets it to CORM_ERROR_INIT. NULL is a no-op. */
CORM_API void corm_error_clear(corm_error *err);
/* Deep-copies src into *dst (clearing dst first). Returns CORM_OK or CORM_ENOMEM
 * (in which case dst holds src's code, sqlstate and a static message). */
CORM_API int corm_error_copy(corm_error *dst, const corm_error *src);
/* The description of a code ("connection failed or was lost"); never NULL. */
CORM_API const char *corm_strerror(int code);
/* The lowercase class name of a code ("integrity"); "ok" for 0; never NULL. */
CORM_API const char *corm_errname(int code);
/* The class that libcorm gives a server error with this SQLSTATE
 * (e.g. "23505" -> CORM_EINTEGRITY). Pure function. */
CORM_API int corm_error_class_of_sqlstate(const char *sqlstate);

/* ------------------------------------------------------------------------
 * Allocator and options
 * ---------------------------------------------------------------------- */

/*
 * Allocator, Lua's lua_Alloc shape: new_size == 0 frees ptr and returns NULL;
 * otherwise (re)allocates and returns NULL on failure, leaving ptr intact.
 * It covers libcorm's own memory; libpq allocates with malloc.
 */
typedef void *corm_alloc_fn(void *ud, void *ptr, size_t old_size, size_t new_size);

/* Receives the server's notices and warnings (NOTICE, WARNING, ...), e.g.
 * "table does not exist, skipping". Borrowed strings, valid during the call. */
typedef void corm_notice_fn(void *ud, const char *severity, const char *sqlstate,
                            const char *message);

/*
 * Options for a connection or a pool. Initialise with corm_options_init() and
 * change fields; the struct is copied by the call that takes it.
 */
typedef struct corm_options {
    size_t size;               /* sizeof(corm_options), set by corm_options_init */
    corm_alloc_fn *alloc;      /* NULL: malloc/realloc/free */
    void *alloc_ud;
    int connect_timeout_ms;    /* 0: none. Default 10000. */
    /* Server-side prepared statements. 1 (default): each distinct SQL text is
     * prepared once per connection and kept in an LRU cache. 0: unnamed
     * statements only, as PgBouncer in transaction mode requires. */
    int prepared_statements;
    int statement_cache_size;  /* LRU capacity per connection; default 256 */
    /* Pool only. */
    int pool_min_size;         /* connections kept open; default 1 */
    int pool_max_size;         /* upper bound; default 10 */
    /* Requests routed to one pooled connection before the pool prefers to open
     * another (while below max_size). Default 16. */
    int pool_pipeline_depth;
    /* Where server notices go; NULL (default): dropped, never printed. */
    corm_notice_fn *notice;
    void *notice_ud;
    void *reserved_[8];
} corm_options;

/* Fills *opt with the defaults above. */
CORM_API void corm_options_init(corm_options *opt);

/* ------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

/* The kind of a corm_value: the host-neutral form of one cell or parameter. */
typedef enum corm_kind {
    CORM_NULL = 0,
    CORM_BOOL,        /* v.b */
    CORM_INT,         /* v.i: int2, int4, int8, oid */
    CORM_FLOAT,       /* v.f: float4, float8 (NaN and infinities included) */
    CORM_TEXT,        /* v.str: text, varchar, char(n), name, "char", json (text) */
    CORM_BYTES,       /* v.str: bytea */
    CORM_NUMERIC,     /* v.str: exact decimal string, e.g. "-12.50", "NaN", "Infinity" */
    CORM_DATE,        /* v.i: days since 2000-01-01 (PostgreSQL epoch) */
    CORM_TIME,        /* v.i: microseconds since midnight */
    CORM_TIMETZ,      /* v.tz: microseconds since midnight, zone offset in seconds */
    CORM_TIMESTAMP,   /* v.i: microseconds since 2000-01-01 00:00 (no zone) */
    CORM_TIMESTAMPTZ, /* v.i: microseconds since 2000-01-01 00:00 UTC */
    CORM_INTERVAL,    /* v.interval */
    CORM_UUID,        /* v.uuid: 16 bytes */
    CORM_JSON,        /* v.str: JSON text (json and jsonb) */
    CORM_ARRAY,       /* v.array: an array's wire bytes; walk it with corm_array_init */
    CORM_RAW,         /* v.str: bytes of a type libcorm does not decode; oid says which */
    CORM_ARRAY_ITEMS, /* v.items: an array parameter built from C values (bind only) */
    CORM__KIND_LAST
} corm_kind;

/* Infinite dates and timestamps, as PostgreSQL sends them. */
#define CORM_TIMESTAMP_INFINITY INT64_MAX
#define CORM_TIMESTAMP_NEG_INFINITY INT64_MIN
#define CORM_DATE_INFINITY INT32_MAX
#define CORM_DATE_NEG_INFINITY INT32_MIN

/* Most dimensions an array can have (PostgreSQL's MAXDIM). */
#define CORM_ARRAY_MAXDIM 6

/*
 * One cell or parameter. Strings are not NUL-terminated in general, though
 * every string decoded from a result is followed by a NUL byte (libpq's, or
 * libcorm's for numeric text), so v.str.ptr is also a C string there.
 *
 * Decoding, per type:
 *  - text, varchar, bpchar, name, unknown: CORM_TEXT. char(n) keeps the
 *    server's blank padding. "char" is CORM_TEXT of one byte, or of zero
 *    bytes for the NUL "char".
 *  - numeric: CORM_NUMERIC, the text PostgreSQL itself prints ("0.00",
 *    "0.00000000000000000001", "NaN", "Infinity", "-Infinity"). The text is
 *    stored in the result and lives as long as it: each corm_result_get of
 *    a numeric cell adds its text to the result's memory.
 *  - date: CORM_DATE; time: CORM_TIME; timestamp(tz): CORM_TIMESTAMP(TZ);
 *    infinities are CORM_DATE_(NEG_)INFINITY and CORM_TIMESTAMP_(NEG_)INFINITY.
 *    corm_date_to_civil and corm_timestamp_to_civil give the calendar.
 *  - timetz: CORM_TIMETZ, v.tz.zone in seconds east of UTC (+02 is 7200;
 *    PostgreSQL's own wire field counts west, libcorm converts).
 *  - json: CORM_JSON (the text); jsonb: CORM_JSON (the text after the
 *    version byte).
 *  - arrays of the types above (and int2vector, oidvector): CORM_ARRAY.
 *  - enums and every other type: CORM_RAW with the type's oid. An enum's
 *    binary form is its label's text, so C users may treat the bytes of an
 *    enum column as text. An array of enums arrives as CORM_RAW too (its
 *    type oid is not built in): corm_array_init accepts it.
 *
 * Binding (corm_query_bind): `oid` names the wire type, 0 picks the kind's
 * default (bool, int8, float8, text (untyped: the server infers), bytea,
 * numeric, date, time, timetz, timestamp, timestamptz, interval, uuid,
 * jsonb). A value that does not fit the type fails with CORM_EDATA: an
 * integer out of the type's range, a float that overflows float4 or is not
 * integral for an integer type, malformed numeric text, text with a NUL
 * byte, a date or timestamp out of PostgreSQL's range. Conversions that are
 * exact are allowed: an integer to numeric, float4/8 (when exact); a float
 * to numeric (its shortest round-trip decimal) or to an integer type (when
 * integral). CORM_TEXT with a non-text oid is sent as text for the server
 * to parse, so a CORM_TEXT with oid 0 can bind an enum, or anything else
 * whose text form you hold.
 *
 * Layout: CORM_ARRAY_ITEMS and array.ctx_ were added in 0.1; the union is
 * four words (corm_value is 40 bytes on LP64).
 */
typedef struct corm_value {
    corm_kind kind;
    uint32_t oid;          /* the PostgreSQL type; as a parameter, 0 = default for kind */
    union {
        bool b;
        int64_t i;
        double f;
        struct { const char *ptr; size_t len; } str;   /* not NUL-terminated */
        struct { int64_t usec; int32_t zone; } tz;     /* zone: seconds east of UTC */
        struct { int64_t usec; int32_t days; int32_t months; } interval;
        uint8_t uuid[16];
        /* CORM_ARRAY: the wire bytes (header, then elements). ctx_ is
         * private: the result's storage for element text. As a parameter
         * the bytes are sent as they are (after a structural check). */
        struct { const char *ptr; size_t len; uint32_t elem_oid; const void *ctx_; } array;
        /*
         * CORM_ARRAY_ITEMS, parameters only: ndim (0..CORM_ARRAY_MAXDIM)
         * dimensions of dims[i] items each, lower bounds lbounds[i] (NULL:
         * all 1), items in row-major order (the last subscript varies
         * fastest), NULL elements as CORM_NULL items. elem_oid is the
         * element type; 0 takes it from the value's oid (an array type) or
         * else from the first non-NULL item's kind (text if all are NULL).
         * The array type sent is `oid`, else the built-in array of elem_oid,
         * else 0 (the server infers it; e.g. an array of an enum). Items of
         * kind CORM_TEXT whose elem_oid is not built in (an enum) are sent as
         * their bytes, which is an enum's binary form. Every item must fit
         * elem_oid, as a scalar would; items are encoded at bind time.
         */
        struct {
            const struct corm_value *items;
            const int32_t *dims;
            const int32_t *lbounds;
            int32_t ndim;
            uint32_t elem_oid;
        } items;
    } v;
} corm_value;

/* Well-known type OIDs (pg_type.oid), so C users need no catalog. */
#define CORM_OID_BOOL 16
#define CORM_OID_BYTEA 17
#define CORM_OID_CHAR 18
#define CORM_OID_NAME 19
#define CORM_OID_INT8 20
#define CORM_OID_INT2 21
#define CORM_OID_INT2VECTOR 22
#define CORM_OID_INT4 23
#define CORM_OID_TEXT 25
#define CORM_OID_OID 26
#define CORM_OID_OIDVECTOR 30
#define CORM_OID_JSON 114
#define CORM_OID_FLOAT4 700
#define CORM_OID_FLOAT8 701
#define CORM_OID_UNKNOWN 705
#define CORM_OID_BPCHAR 1042
#define CORM_OID_VARCHAR 1043
#define CORM_OID_DATE 1082
#define CORM_OID_TIME 1083
#define CORM_OID_TIMESTAMP 1114
#define CORM_OID_TIMESTAMPTZ 1184
#define CORM_OID_INTERVAL 1186
#define CORM_OID_TIMETZ 1266
#define CORM_OID_NUMERIC 1700
#define CORM_OID_UUID 2950
#define CORM_OID_JSONB 3802
/* Their array types. */
#define CORM_OID_JSON_ARRAY 199
#define CORM_OID_BOOL_ARRAY 1000
#define CORM_OID_BYTEA_ARRAY 1001
#define CORM_OID_CHAR_ARRAY 1002
#define CORM_OID_NAME_ARRAY 1003
#define CORM_OID_INT2_ARRAY 1005
#define CORM_OID_INT4_ARRAY 1007
#define CORM_OID_TEXT_ARRAY 1009
#define CORM_OID_BPCHAR_ARRAY 1014
#define CORM_OID_VARCHAR_ARRAY 1015
#define CORM_OID_INT8_ARRAY 1016
#define CORM_OID_FLOAT4_ARRAY 1021
#define CORM_OID_FLOAT8_ARRAY 1022
#define CORM_OID_OID_ARRAY 1028
#define CORM_OID_TIMESTAMP_ARRAY 1115
#define CORM_OID_DATE_ARRAY 1182
#define CORM_OID_TIME_ARRAY 1183
#define CORM_OID_TIMESTAMPTZ_ARRAY 1185
#define CORM_OID_INTERVAL_ARRAY 1187
#define CORM_OID_NUMERIC_ARRAY 1231
#define CORM_OID_TIMETZ_ARRAY 1270
#define CORM_OID_UUID_ARRAY 2951
#define CORM_OID_JSONB_ARRAY 3807

/*
 * A walk over a decoded array: its shape, and its elements one at a time.
 * Caller-owned (declare one on the stack); holds nothing to free. It
 * borrows the value's bytes: valid while the result they came from lives.
 */
typedef struct corm_array {
    int ndim;                            /* 0 for an empty array */
    uint32_t elem_oid;                   /* the elements' type */
    int32_t dims[CORM_ARRAY_MAXDIM];     /* items along each dimension */
    int32_t lbounds[CORM_ARRAY_MAXDIM];  /* first subscript of each (usually 1) */
    size_t nitems;                       /* product of dims; 0 when empty */
    bool has_nulls;                      /* the server's flag: some item is NULL */
    /* private */
    const char *body_, *end_, *pos_;
    size_t next_;
    void (*decode_)(void);
    const void *ctx_;
    void *reserved_[2];
} corm_array;

/*
 * Reads the header of array v (CORM_ARRAY, or CORM_RAW holding an array of
 * a type not built in, such as an enum array) and checks the whole layout:
 * CORM_EDATA for malformed bytes, CORM_EMISUSE when v is neither kind.
 * Then a->ndim, dims, lbounds, nitems describe the array.
 */
CORM_API int corm_array_init(corm_array *a, const corm_value *v, corm_error *err);
/*
 * Decodes the next item, in row-major order (the last subscript varies
 * fastest), into *out, as a cell of type a->elem_oid would decode (NULL
 * items as CORM_NULL). Returns 1 with an item, 0 after the last one,
 * CORM_EDATA for an item that does not decode (the walk may continue past
 * it). Strings point into the result, as for corm_result_get.
 */
CORM_API int corm_array_next(corm_array *a, corm_value *out, corm_error *err);
/*
 * Decodes item i (0 <= i < nitems, row-major) into *out. Walking forward
 * is O(1) per item; going back restarts from the first item. Returns
 * CORM_OK, CORM_EMISUSE for i out of range, CORM_EDATA as corm_array_next.
 */
CORM_API int corm_array_get(corm_array *a, size_t i, corm_value *out, corm_error *err);

/*
 * JSON text (CORM_JSON values: json, and jsonb after its version byte) read
 * in one pass and reported to a sink, from which a front end builds its
 * own values (Python dicts, Lua tables) without an intermediate tree.
 *
 * Every callback returns 0 to go on; a negative value stops the parse and
 * corm_json_parse returns it unchanged (err untouched), so a sink can
 * report its own failure. Strings and keys are unescaped UTF-8 (\u0000
 * gives a NUL byte; surrogate pairs are joined), valid for the call only;
 * numbers are their JSON text, with integer set when it has neither
 * fraction nor exponent (the front end chooses the host type and range).
 */
#define CORM_JSON_MAX_DEPTH 1000
typedef struct corm_json_sink {
    int (*null)(void *ud);
    int (*boolean)(void *ud, int value);
    int (*number)(void *ud, const char *text, size_t len, int integer);
    int (*string)(void *ud, const char *s, size_t len);
    int (*begin_array)(void *ud);
    int (*end_array)(void *ud);
    int (*begin_object)(void *ud);
    int (*key)(void *ud, const char *s, size_t len); /* then the member's value */
    int (*end_object)(void *ud);
} corm_json_sink;

/*
 * Reads one JSON value (RFC 8259, strictly: no NaN, no comments, no
 * trailing commas; surrounding whitespace allowed). CORM_OK; CORM_EDATA
 * naming the offset for malformed text, a lone surrogate escape or nesting
 * deeper than CORM_JSON_MAX_DEPTH; CORM_ENOMEM; a callback's own negative
 * value. Callbacks may already have run when it fails.
 */
CORM_API int corm_json_parse(const char *text, size_t len, const corm_json_sink *sink,
                             void *ud, corm_error *err);

/*
 * A calendar date and time of day, for C users converting CORM_DATE,
 * CORM_TIMESTAMP and CORM_TIMESTAMPTZ (the latter is UTC). The calendar is
 * proleptic Gregorian, as PostgreSQL's; years are astronomical: 0 is 1 BC,
 * -1 is 2 BC (PostgreSQL prints year y <= 0 as "1-y BC").
 */
typedef struct corm_datetime {
    int32_t year;
    int32_t month;   /* 1..12 */
    int32_t day;     /* 1..31 */
    int32_t hour;    /* 0..23 */
    int32_t minute;  /* 0..59 */
    int32_t second;  /* 0..59 */
    int32_t usec;    /* 0..999999 */
} corm_datetime;

/* Days since 2000-01-01 to a calendar date (time fields zero). CORM_EDATA
 * for the infinities and days outside PostgreSQL's date range
 * (4714-11-24 BC .. 5874897-12-31). Pure. */
CORM_API int corm_date_to_civil(int64_t days, corm_datetime *out, corm_error *err);
/* A calendar date (time fields ignored) to days since 2000-01-01.
 * CORM_EDATA for an invalid date or one outside PostgreSQL's range. */
CORM_API int corm_date_from_civil(const corm_datetime *dt, int64_t *days, corm_error *err);
/* Microseconds since 2000-01-01 00:00 to a calendar date and time.
 * CORM_EDATA for the infinities and values outside PostgreSQL's timestamp
 * range (4714-11-24 00:00 BC .. 294276-12-31 23:59:59.999999). Pure. */
CORM_API int corm_timestamp_to_civil(int64_t usec, corm_datetime *out, corm_error *err);
/* A calendar date and time to microseconds since 2000-01-01 00:00.
 * CORM_EDATA for invalid fields or a value outside the timestamp range. */
CORM_API int corm_timestamp_from_civil(const corm_datetime *dt, int64_t *usec,
                                       corm_error *err);

/* ------------------------------------------------------------------------
 * Queries
 *
 * A corm_query is a statement and its bound parameters. Parameters are
 * encoded in binary into the query's own buffer when bound; submitting
 * copies what the request needs, so a query may be freed, re-bound or
 * submitted again as soon as a submit call returns.
 * ---------------------------------------------------------------------- */

typedef struct corm_query corm_query;

/* Creates a query from SQL text with $1..$n placeholders. The text is copied.
 * Fails with CORM_EMISUSE for NULL or empty SQL. Free with corm_query_free(). */
CORM_API int corm_query_sql(corm_query **out, const char *sql, corm_error *err);
/* Frees q. NULL is a no-op. */
CORM_API void corm_query_free(corm_query *q);

/* Append the next parameter ($1, then $2, ...). A value whose C type cannot
 * be represented in the requested oid fails with CORM_EDATA, naming the
 * parameter, and leaves the query's parameters as they were. */
CORM_API int corm_query_bind_null(corm_query *q, corm_error *err);
CORM_API int corm_query_bind_bool(corm_query *q, bool v, corm_error *err);
CORM_API int corm_query_bind_int64(corm_query *q, int64_t v, corm_error *err);
CORM_API int corm_query_bind_double(corm_query *q, double v, corm_error *err);
/* Text of len bytes (len < 0: up to NUL). Sent as type text. */
CORM_API int corm_query_bind_text(corm_query *q, const char *s, ptrdiff_t len,
                                  corm_error *err);
CORM_API int corm_query_bind_bytes(corm_query *q, const void *p, size_t len,
                                   corm_error *err);
/* Binds any value. v->oid chooses the wire type (0: the default for the kind:
 * bool, int8, float8, text, bytea, numeric, ...). */
CORM_API int corm_query_bind(corm_query *q, const corm_value *v, corm_error *err);
/* Number of parameters bound so far. */
CORM_API int corm_query_nparams(const corm_query *q);
/* Drops every bound parameter, keeping the statement, to bind anew. A
 * no-op on a built query, whose parameters belong to its expressions. */
CORM_API void corm_query_clear_params(corm_query *q);
/* A client-side deadline for each request made from this query: when it
 * passes, the server is asked to cancel the statement and the request
 * completes with CORM_ETIMEOUT. 0 (default): none. */
CORM_API int corm_query_set_timeout(corm_query *q, int timeout_ms, corm_error *err);
/* The SQL text of q (borrowed, valid while q lives and is unchanged). A
 * built query (see "Building queries") is compiled first; NULL when it
 * cannot compile (corm_query_compile() says why). */
CORM_API const char *corm_query_text(const corm_query *q);

/* ------------------------------------------------------------------------
 * Models and columns
 *
 * A registry holds the models of one application, and the enum and
 * external types their columns use, so that foreign keys can name other
 * models and DDL can order tables. A model is a table: a name (and
 * schema), ordered columns with PostgreSQL types, a primary key, unique
 * and check constraints, indexes and foreign keys. Define a model fully,
 * then use it: the first query or DDL built from a model freezes it, and
 * changing it afterwards fails with CORM_EMISUSE.
 *
 * Errors: a bad definition (invalid or duplicate name, unknown or malformed
 * type, inconsistent key or constraint) fails with CORM_EPROGRAMMING and a
 * message naming the model and the column; NULL handles, column indexes out
 * of range and changes to a frozen model fail with CORM_EMISUSE.
 *
 * Names (schemas, tables, columns, types, constraints, indexes, aliases,
 * CTE names) are 1 to 63 bytes of valid UTF-8; PostgreSQL silently
 * truncates longer names, so libcorm refuses them. Names are always
 * double-quoted in SQL (with " doubled), so any character is safe and case
 * is kept. Names are C strings: a binding holding a string with a length
 * checks it with corm_check_name(), which refuses an embedded NUL.
 *
 * SQL text given in a definition (a default expression, a CHECK, a partial
 * index's WHERE) is the developer's own and is copied into DDL as it is:
 * never pass user input there. It may not contain ';' outside quotes, or
 * $n parameters.
 *
 * A registry and everything built from it (models, expressions, queries)
 * must be used by one thread at a time.
 * ---------------------------------------------------------------------- */

#define CORM_HAS_MODELS 1

typedef struct corm_registry corm_registry;
typedef struct corm_model corm_model;

/* Creates an empty registry. opt (may be NULL) supplies the allocator used
 * for the registry, its models, and the expressions and queries built from
 * them. Free with corm_registry_free(). */
CORM_API int corm_registry_new(corm_registry **out, const corm_options *opt, corm_error *err);
/* Releases the registry and its models. Queries and expressions built from
 * it keep it alive until they are freed too. NULL is a no-op. */
CORM_API void corm_registry_free(corm_registry *reg);
/* Declares an enum type (CREATE TYPE ... AS ENUM) that columns may name as
 * their type, e.g. "mood" or "mood[]". schema may be NULL. Labels are
 * copied; each is a name (1..63 bytes, distinct). */
CORM_API int corm_registry_add_enum(corm_registry *reg, const char *schema, const char *name,
                                    int nlabels, const char *const *labels, corm_error *err);
/* Declares a type created outside the registry (an extension's citext,
 * hstore, vector) so columns may use it; DDL neither creates nor drops it.
 * Values for it are sent as text for the server to parse. */
CORM_API int corm_registry_add_type(corm_registry *reg, const char *schema, const char *name,
                                    corm_error *err);
/* Models in definition order (borrowed from reg). */
CORM_API int corm_registry_nmodels(const corm_registry *reg);
CORM_API corm_model *corm_registry_model(const corm_registry *reg, int i);
/* The model of table (schema may be NULL), or NULL. */
CORM_API corm_model *corm_registry_find(const corm_registry *reg, const char *schema,
                                        const char *table);
/* Checks len bytes at name as a name: CORM_OK, or CORM_EPROGRAMMING for an
 * empty name, one longer than 63 bytes, invalid UTF-8, or an embedded NUL. */
CORM_API int corm_check_name(const char *name, size_t len, corm_error *err);

/* Defines the model of table `table` in schema `schema` (NULL: the search
 * path) in reg. The model belongs to reg (*out is borrowed; it lives as
 * long as the registry). CORM_EPROGRAMMING when reg has that table already. */
CORM_API int corm_model_new(corm_model **out, corm_registry *reg, const char *schema,
                            const char *table, corm_error *err);

enum corm_column_flags {
    CORM_COL_NULL = 1u << 0,        /* nullable (columns are NOT NULL by default) */
    CORM_COL_PRIMARY_KEY = 1u << 1, /* part of the primary key (in column order) */
    CORM_COL_UNIQUE = 1u << 2,      /* UNIQUE */
    /* No implied default: a single-column integer primary key is otherwise
     * GENERATED BY DEFAULT AS IDENTITY, and a uuid one DEFAULT
     * gen_random_uuid(). */
    CORM_COL_NO_AUTO = 1u << 3,
    /* Reported by corm_model_column_flags(), never given: */
    CORM_COL_IDENTITY = 1u << 8,    /* an identity column */
    CORM_COL_HAS_DEFAULT = 1u << 9, /* the server fills it when an INSERT omits it */
};

/*
 * Appends a column. type is PostgreSQL type text: a built-in type by any of
 * its names ("bigint", "int8", "varchar(30)", "character varying(30)",
 * "numeric(12,2)", "timestamptz", "timestamp(3) with time zone", "uuid",
 * "jsonb", "bytea", ...), optionally an array ("text[]", "bigint[][]"), or
 * an enum or external type declared in the registry. The type is checked
 * (unknown names and bad modifiers fail) and kept in canonical form with
 * its OID, so values are bound with the right wire type.
 * Returns the column's index (>= 0), or a negative CORM_E* code.
 */
CORM_API int corm_model_add_column(corm_model *m, const char *name, const char *type,
                                   unsigned flags, corm_error *err);
/* A constant default (NULL, bool, integer, float, numeric, text, json,
 * bytes, uuid), written into DDL as a literal. CORM_EPROGRAMMING when its
 * kind does not fit the column (or NULL for a NOT NULL column). */
CORM_API int corm_model_set_default(corm_model *m, int col, const corm_value *v,
                                    corm_error *err);
/* A server-side default expression, e.g. "now()" or "gen_random_uuid()". */
CORM_API int corm_model_set_default_sql(corm_model *m, int col, const char *sql,
                                        corm_error *err);
/* Sets the primary key to these columns, in this order (replacing the one
 * given by CORM_COL_PRIMARY_KEY flags). */
CORM_API int corm_model_set_primary_key(corm_model *m, int ncols, const int *cols,
                                        corm_error *err);
/* UNIQUE (cols...); name may be NULL (the server names it). */
CORM_API int corm_model_add_unique(corm_model *m, const char *name, int ncols, const int *cols,
                                   corm_error *err);
/* CHECK (sql); name may be NULL. sql is developer-written SQL. */
CORM_API int corm_model_add_check(corm_model *m, const char *name, const char *sql,
                                  corm_error *err);

enum corm_fk_action {
    CORM_FK_NO_ACTION = 0,
    CORM_FK_RESTRICT,
    CORM_FK_CASCADE,
    CORM_FK_SET_NULL,
    CORM_FK_SET_DEFAULT,
};

/*
 * FOREIGN KEY (cols...) REFERENCES target (target_cols...) with ON DELETE /
 * ON UPDATE actions (enum corm_fk_action). target_cols NULL: target's
 * primary key, which must then be defined already. The referenced columns
 * must be target's primary key or unique; column types must match in
 * kind (an integer column references an integer column); SET NULL needs
 * nullable columns. target may be m itself. name may be NULL.
 * Foreign keys also give joins their ON condition (corm_query_join).
 */
CORM_API int corm_model_add_foreign_key(corm_model *m, const char *name, int ncols,
                                        const int *cols, const corm_model *target,
                                        const int *target_cols, int on_delete, int on_update,
                                        corm_error *err);

enum corm_index_flags { CORM_INDEX_UNIQUE = 1u << 0 };

/* CREATE [UNIQUE] INDEX name ON table USING method (cols...) WHERE where_sql.
 * name NULL: "<table>_<col>..._idx"; method NULL: the default (btree), else
 * a lowercase access method name such as "gin"; where_sql NULL: a full
 * index, else the developer-written predicate of a partial index. */
CORM_API int corm_model_add_index(corm_model *m, const char *name, int ncols, const int *cols,
                                  unsigned flags, const char *method, const char *where_sql,
                                  corm_error *err);

/* Reading a model. Strings are borrowed from the registry. */
CORM_API corm_registry *corm_model_registry(const corm_model *m);
CORM_API const char *corm_model_table(const corm_model *m);
CORM_API const char *corm_model_schema(const corm_model *m);     /* NULL when none */
CORM_API int corm_model_ncolumns(const corm_model *m);
/* The index of the column called name, or -1. */
CORM_API int corm_model_column_index(const corm_model *m, const char *name);
CORM_API const char *corm_model_column_name(const corm_model *m, int col);
/* The canonical type text ("varchar(30)", "bigint[]", "\"mood\""). */
CORM_API const char *corm_model_column_type(const corm_model *m, int col);
/* The type's OID for built-in types (and their arrays), 0 for enums and
 * external types. */
CORM_API uint32_t corm_model_column_oid(const corm_model *m, int col);
/* CORM_COL_* flags as given, plus CORM_COL_IDENTITY / CORM_COL_HAS_DEFAULT. */
CORM_API unsigned corm_model_column_flags(const corm_model *m, int col);
/* The primary key: returns its column count and points *cols (may be NULL)
 * at its column indexes (borrowed). */
CORM_API int corm_model_primary_key(const corm_model *m, const int **cols);

/* ------------------------------------------------------------------------
 * Building queries
 *
 * A built query is an AST: made with corm_query_select/insert/update/
 * delete/new, given clauses by the calls below, and compiled to SQL with
 * $n parameters when it is submitted (or by corm_query_compile). Values are
 * never written into SQL text: every value is encoded when its expression
 * is made and bound as a parameter when the expression joins the query, so
 * a parameter's number follows the order of the calls, not the SQL text.
 * Names are always double-quoted.
 *
 * Compiled SQL is cached in the registry by query shape (everything but the
 * values), so building the same query again, e.g. a lookup in a loop, does
 * no compile work and reuses the prepared statement of its SQL text.
 *
 * Ownership: clause calls take their own reference on the expressions and
 * queries given to them (the caller still frees its own). A query used
 * inside another (subquery, CTE, set operation, FROM) is frozen from then
 * on: changing it fails with CORM_EMISUSE. Every built query is freed with
 * corm_query_free(). corm_query_bind*() are for raw-SQL queries only
 * (CORM_EMISUSE on a built one): use corm_expr_raw() to mix SQL text and
 * values into a built query.
 *
 * Errors: CORM_EMISUSE for NULL or foreign handles (an expression from
 * another registry), a clause the query's kind has not (ON CONFLICT on a
 * SELECT) or a clause given twice (LIMIT); CORM_EPROGRAMMING for what
 * cannot make valid SQL (a join with no single foreign key to follow, a
 * column whose model is not in the query, found at compile time);
 * CORM_EDATA for a value its column's type cannot hold.
 * ---------------------------------------------------------------------- */

typedef struct corm_expr corm_expr;

enum corm_query_kind {
    CORM_QUERY_RAW = 0,   /* corm_query_sql */
    CORM_QUERY_SELECT = 1,
    CORM_QUERY_INSERT = 2,
    CORM_QUERY_UPDATE = 3,
    CORM_QUERY_DELETE = 4,
};

/* SELECT <every column of m> FROM m [AS alias]. The first
 * corm_query_select_expr/select_all call replaces the default column list.
 * alias may be NULL. Free with corm_query_free(). */
CORM_API int corm_query_select(corm_query **out, const corm_model *m, const char *alias,
                               corm_error *err);
/* A SELECT with no FROM yet (of expressions, or FROM a CTE or subquery). */
CORM_API int corm_query_new(corm_query **out, corm_registry *reg, corm_error *err);
/* INSERT INTO m; rows come from corm_query_values. */
CORM_API int corm_query_insert(corm_query **out, const corm_model *m, corm_error *err);
/* UPDATE m SET ...; set with corm_query_set / corm_query_set_value. */
CORM_API int corm_query_update(corm_query **out, const corm_model *m, corm_error *err);
/* DELETE FROM m. */
CORM_API int corm_query_delete(corm_query **out, const corm_model *m, corm_error *err);
/* One of enum corm_query_kind. */
CORM_API int corm_query_kind(const corm_query *q);

/* SELECT list. select_expr adds e [AS alias] (alias may be NULL);
 * select_all adds every column of the FROM/JOIN item of model m (alias
 * picks one when m appears twice; NULL otherwise). */
CORM_API int corm_query_select_expr(corm_query *q, const corm_expr *e, const char *alias,
                                    corm_error *err);
CORM_API int corm_query_select_all(corm_query *q, const corm_model *m, const char *alias,
                                   corm_error *err);
/* SELECT DISTINCT; and DISTINCT ON (e, ...), one call per expression. */
CORM_API int corm_query_distinct(corm_query *q, corm_error *err);
CORM_API int corm_query_distinct_on(corm_query *q, const corm_expr *e, corm_error *err);

/* FROM items for a query made with corm_query_new: a model, a CTE of this
 * query (by name), or a subquery (alias required). Only one FROM item; add
 * more with joins. */
CORM_API int corm_query_from(corm_query *q, const corm_model *m, const char *alias,
                             corm_error *err);
CORM_API int corm_query_from_cte(corm_query *q, const char *name, const char *alias,
                                 corm_error *err);
CORM_API int corm_query_from_query(corm_query *q, corm_query *sub, const char *alias,
                                   corm_error *err);

enum corm_join_type { CORM_JOIN_INNER = 1, CORM_JOIN_LEFT = 2 };

/* [INNER|LEFT] JOIN m [AS alias] ON on. on NULL: the ON condition follows
 * the one foreign key between m and an item already in the query (either
 * direction); none or several is CORM_EPROGRAMMING. */
CORM_API int corm_query_join(corm_query *q, int type, const corm_model *m, const char *alias,
                             const corm_expr *on, corm_error *err);
/* [INNER|LEFT] JOIN cte_name [AS alias] ON on (on required). */
CORM_API int corm_query_join_cte(corm_query *q, int type, const char *name, const char *alias,
                                 const corm_expr *on, corm_error *err);

/* WHERE e; several calls are ANDed. SELECT, UPDATE, DELETE. */
CORM_API int corm_query_where(corm_query *q, const corm_expr *e, corm_error *err);
/* GROUP BY e, ...; HAVING e (ANDed). */
CORM_API int corm_query_group_by(corm_query *q, const corm_expr *e, corm_error *err);
CORM_API int corm_query_having(corm_query *q, const corm_expr *e, corm_error *err);

enum corm_order_flags {
    CORM_ASC = 0,
    CORM_DESC = 1u << 0,
    CORM_NULLS_FIRST = 1u << 1,
    CORM_NULLS_LAST = 1u << 2,
};

/* ORDER BY e [ASC|DESC] [NULLS FIRST|LAST], one call per key. */
CORM_API int corm_query_order_by(corm_query *q, const corm_expr *e, unsigned flags,
                                 corm_error *err);
/* LIMIT and OFFSET, bound as parameters (so every limit shares one
 * statement). Each may be given once; n >= 0. */
CORM_API int corm_query_limit(corm_query *q, int64_t n, corm_error *err);
CORM_API int corm_query_offset(corm_query *q, int64_t n, corm_error *err);

enum corm_lock_mode {
    CORM_FOR_UPDATE = 1,
    CORM_FOR_NO_KEY_UPDATE = 2,
    CORM_FOR_SHARE = 3,
    CORM_FOR_KEY_SHARE = 4,
    /* or'ed with one of the above: */
    CORM_LOCK_NOWAIT = 1u << 4,
    CORM_LOCK_SKIP_LOCKED = 1u << 5,
};

/* FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE [NOWAIT | SKIP LOCKED]. */
CORM_API int corm_query_lock(corm_query *q, unsigned mode, corm_error *err);

enum corm_cte_flags {
    CORM_CTE_RECURSIVE = 1u << 0,    /* WITH RECURSIVE (for the whole WITH) */
    CORM_CTE_MATERIALIZED = 1u << 1,
    CORM_CTE_NOT_MATERIALIZED = 1u << 2,
};

/* WITH name [(cols...)] AS (sub). cols may be NULL (ncols 0). sub may be
 * any built query (a data-modifying CTE with RETURNING too). A recursive
 * CTE's sub is a UNION [ALL] whose second part reads the CTE by name
 * (corm_query_from_cte / corm_query_join_cte). */
CORM_API int corm_query_with(corm_query *q, const char *name, int ncols,
                             const char *const *cols, corm_query *sub, unsigned flags,
                             corm_error *err);

enum corm_setop { CORM_UNION = 1, CORM_UNION_ALL, CORM_INTERSECT, CORM_EXCEPT };

/* q UNION [ALL] / INTERSECT / EXCEPT other. q's ORDER BY, LIMIT and OFFSET
 * apply to the combined result. */
CORM_API int corm_query_combine(corm_query *q, int op, corm_query *other, corm_error *err);

/* INSERT: adds one row, values[i] for column cols[i]; columns a row leaves
 * out are DEFAULT (several rows make one multi-row VALUES). Each value is
 * encoded for its column's type now (CORM_EDATA naming the column when it
 * does not fit). A row with no values inserts DEFAULT VALUES. */
CORM_API int corm_query_values(corm_query *q, int n, const int *cols, const corm_value *values,
                               corm_error *err);

enum corm_conflict_action { CORM_CONFLICT_NOTHING = 1, CORM_CONFLICT_UPDATE = 2 };

/* INSERT ... ON CONFLICT [(cols...)] DO NOTHING | DO UPDATE. DO UPDATE needs
 * conflict columns; its SET list comes from corm_query_set (use
 * corm_expr_excluded for EXCLUDED."col"), or, when none is given, sets
 * every inserted column outside the conflict columns to EXCLUDED. */
CORM_API int corm_query_on_conflict(corm_query *q, int ncols, const int *cols, int action,
                                    corm_error *err);
/* SET "col" = e (UPDATE, or an upsert's DO UPDATE). */
CORM_API int corm_query_set(corm_query *q, int col, const corm_expr *e, corm_error *err);
/* SET "col" = value, encoded for the column's type. */
CORM_API int corm_query_set_value(corm_query *q, int col, const corm_value *v,
                                  corm_error *err);
/* RETURNING e [AS alias] / every column of the target (INSERT, UPDATE,
 * DELETE). */
CORM_API int corm_query_returning(corm_query *q, const corm_expr *e, const char *alias,
                                  corm_error *err);
CORM_API int corm_query_returning_all(corm_query *q, corm_error *err);

/*
 * Compiles q now, or finds its shape in the registry's cache. Submitting
 * compiles implicitly; call this to see errors early, or to read the text
 * and result columns. Raw-SQL queries compile trivially.
 */
CORM_API int corm_query_compile(corm_query *q, corm_error *err);

/*
 * The result columns of a compiled query (its SELECT list or RETURNING),
 * resolved once per shape, so a front end fills objects by position:
 * column i fills field corm_query_column_field(q, i, &m) of model m, or
 * nothing (-1, m NULL) for a computed column. A computed column whose alias
 * is the name of a column of the query's first model maps to that column.
 * Before compiling, or for raw SQL: ncolumns is -1.
 */
CORM_API int corm_query_ncolumns(const corm_query *q);
/* The alias or column name of result column i (borrowed), or NULL. */
CORM_API const char *corm_query_column_name(const corm_query *q, int i);
CORM_API int corm_query_column_field(const corm_query *q, int i, const corm_model **model);

/* ------------------------------------------------------------------------
 * Expressions
 *
 * Expressions are immutable trees, reference counted: each constructor
 * returns a new reference (*out) that the caller frees with
 * corm_expr_free(); expressions given as arguments are referenced, not
 * taken, so one expression may appear in many places and many queries.
 * Values are copied and encoded at once. All expressions of one query
 * come from the query's registry.
 * ---------------------------------------------------------------------- */

enum corm_op {
    CORM_EQ = 1, CORM_NE, CORM_LT, CORM_LE, CORM_GT, CORM_GE,
    CORM_LIKE, CORM_ILIKE, CORM_NOT_LIKE, CORM_NOT_ILIKE,
    CORM_ADD, CORM_SUB, CORM_MUL, CORM_DIV, CORM_MOD, CORM_CONCAT,
    /* corm_expr_cmp only: the text value is matched literally (its % _ \
     * escaped) as a substring, prefix or suffix, with LIKE or ILIKE. */
    CORM_CONTAINS, CORM_ICONTAINS, CORM_STARTSWITH, CORM_ISTARTSWITH,
    CORM_ENDSWITH, CORM_IENDSWITH,
};

/* Drops a reference. NULL is a no-op. */
CORM_API void corm_expr_free(corm_expr *e);
/* Adds a reference; returns e. */
CORM_API corm_expr *corm_expr_ref(corm_expr *e);

/* Column col of model m, of the FROM/JOIN item with this alias (NULL: the
 * one item of model m in scope, innermost query first). */
CORM_API int corm_expr_column(corm_expr **out, const corm_model *m, int col,
                              const char *alias, corm_error *err);
/* EXCLUDED."col" inside an upsert's DO UPDATE. */
CORM_API int corm_expr_excluded(corm_expr **out, const corm_model *m, int col,
                                corm_error *err);
/* "qualifier"."name" (qualifier may be NULL): a CTE column, or an output
 * alias in ORDER BY. */
CORM_API int corm_expr_ident(corm_expr **out, corm_registry *reg, const char *qualifier,
                             const char *name, corm_error *err);
/* A bound parameter: v encoded now, with v->oid or the kind's default type. */
CORM_API int corm_expr_value(corm_expr **out, corm_registry *reg, const corm_value *v,
                             corm_error *err);
/* A bound parameter typed like `like` (a column: its type; e.g. an int4
 * column binds int4, a uuid column parses text as a uuid). */
CORM_API int corm_expr_value_for(corm_expr **out, const corm_expr *like, const corm_value *v,
                                 corm_error *err);
/* lhs op value: the value is bound, typed like lhs when lhs is a column.
 * op: comparisons, LIKE family, CORM_CONTAINS family (text values). */
CORM_API int corm_expr_cmp(corm_expr **out, const corm_expr *lhs, int op, const corm_value *v,
                           corm_error *err);
/* a op b for two expressions (comparisons, LIKE family, arithmetic, ||). */
CORM_API int corm_expr_op(corm_expr **out, int op, const corm_expr *a, const corm_expr *b,
                          corm_error *err);
CORM_API int corm_expr_and(corm_expr **out, const corm_expr *a, const corm_expr *b,
                           corm_error *err);
CORM_API int corm_expr_or(corm_expr **out, const corm_expr *a, const corm_expr *b,
                          corm_error *err);
CORM_API int corm_expr_not(corm_expr **out, const corm_expr *a, corm_error *err);
/* a IS NULL, or a IS NOT NULL when negate. */
CORM_API int corm_expr_is_null(corm_expr **out, const corm_expr *a, bool negate,
                               corm_error *err);
/* x [NOT] BETWEEN lo AND hi. */
CORM_API int corm_expr_between(corm_expr **out, const corm_expr *x, const corm_expr *lo,
                               const corm_expr *hi, bool negate, corm_error *err);
/*
 * lhs IN (values...) as lhs = ANY($n), or NOT IN as lhs <> ALL($n): the n
 * values are bound as ONE array parameter, so every list length shares one
 * statement. Elements are typed like lhs (a column), else by their kind.
 * n == 0 is allowed (IN: false; NOT IN: true).
 */
CORM_API int corm_expr_in(corm_expr **out, const corm_expr *lhs, size_t n,
                          const corm_value *values, bool negate, corm_error *err);
/* lhs [NOT] IN (sub). */
CORM_API int corm_expr_in_query(corm_expr **out, const corm_expr *lhs, corm_query *sub,
                                bool negate, corm_error *err);
/* EXISTS (sub); negate with corm_expr_not. */
CORM_API int corm_expr_exists(corm_expr **out, corm_query *sub, corm_error *err);
/* (sub) as a scalar value. */
CORM_API int corm_expr_subquery(corm_expr **out, corm_query *sub, corm_error *err);

enum corm_agg { CORM_COUNT = 1, CORM_SUM, CORM_AVG, CORM_MIN, CORM_MAX };
enum corm_agg_flags { CORM_AGG_DISTINCT = 1u << 0 };

/* count(*) (arg NULL), count/sum/avg/min/max([DISTINCT] arg). */
CORM_API int corm_expr_agg(corm_expr **out, corm_registry *reg, int agg, const corm_expr *arg,
                           unsigned flags, corm_error *err);
/* name(args...): any function (lower, coalesce, now, row_number, ...).
 * name is [schema.]function, letters, digits and _ (written unquoted when
 * all lowercase, quoted otherwise). */
CORM_API int corm_expr_func(corm_expr **out, corm_registry *reg, const char *name, int nargs,
                            const corm_expr *const *args, corm_error *err);
/* CAST(x AS type), type as for corm_model_add_column. */
CORM_API int corm_expr_cast(corm_expr **out, const corm_expr *x, const char *type,
                            corm_error *err);
/* x with an ordering (CORM_DESC, CORM_NULLS_*), for OVER's ORDER BY. */
CORM_API int corm_expr_order(corm_expr **out, const corm_expr *x, unsigned flags,
                             corm_error *err);
/* fn OVER (PARTITION BY partition... ORDER BY order...): a window function
 * (fn from corm_expr_func or corm_expr_agg). order items may be
 * corm_expr_order expressions. */
CORM_API int corm_expr_over(corm_expr **out, const corm_expr *fn, int npartition,
                            const corm_expr *const *partition, int norder,
                            const corm_expr *const *order, corm_error *err);
/*
 * A raw SQL fragment, the escape hatch: sql uses $1..$nparams for the
 * values given, which are bound like any other (renumbered into the
 * query's numbering). The fragment is written in parentheses. It may not
 * contain ';' or unterminated quotes or comments, or $n past nparams.
 * sql is the developer's: never put user input in it, bind it instead.
 */
CORM_API int corm_expr_raw(corm_expr **out, corm_registry *reg, const char *sql, int nparams,
                           const corm_value *params, corm_error *err);

/* ------------------------------------------------------------------------
 * DDL
 *
 * The statements that create or drop models' tables, as SQL text for the
 * caller to run (or corm_ddl_exec to run them).
 * ---------------------------------------------------------------------- */

typedef struct corm_ddl corm_ddl;

enum corm_ddl_flags {
    CORM_DDL_IF_NOT_EXISTS = 1u << 0, /* create: skip what exists */
    CORM_DDL_IF_EXISTS = 1u << 1,     /* drop: skip what is missing */
    CORM_DDL_CASCADE = 1u << 2,       /* drop: CASCADE */
};

/*
 * CREATE TYPE for the enums the models use, then CREATE TABLE for each
 * model (columns, defaults, primary key, unique, check and foreign keys)
 * in dependency order (referenced tables first; foreign keys in a cycle
 * are added by ALTER TABLE after the tables), then CREATE INDEX. models
 * NULL (n 0): every model of reg. Freezes the models. Free the result
 * with corm_ddl_free().
 */
CORM_API int corm_ddl_create(corm_ddl **out, corm_registry *reg, int n,
                             const corm_model *const *models, unsigned flags, corm_error *err);
/* DROP TABLE of the models (referencing tables first), then DROP TYPE of
 * the enums only they use. models NULL (n 0): every model of reg. */
CORM_API int corm_ddl_drop(corm_ddl **out, corm_registry *reg, int n,
                           const corm_model *const *models, unsigned flags, corm_error *err);
/* Statements in order; each is borrowed from d. */
CORM_API int corm_ddl_count(const corm_ddl *d);
CORM_API const char *corm_ddl_statement(const corm_ddl *d, int i);
CORM_API void corm_ddl_free(corm_ddl *d);
/* Blocks: runs every statement of d on c in order, inside one transaction
 * (unless c is in one already); stops at the first failure and rolls back. */
struct corm_conn; /* corm_conn, under Connections below */
CORM_API int corm_ddl_exec(struct corm_conn *c, const corm_ddl *d, corm_error *err);

/* ------------------------------------------------------------------------
 * Results
 *
 * A result holds every row of one statement in binary format. A result
 * passed to a completion callback is borrowed until the callback returns,
 * unless the callback calls corm_result_take(), after which the caller owns
 * it and frees it with corm_result_free().
 * ---------------------------------------------------------------------- */

typedef struct corm_result corm_result;

CORM_API int corm_result_nrows(const corm_result *r);
CORM_API int corm_result_ncols(const corm_result *r);
/* Column name (borrowed from r), or NULL when col is out of range. */
CORM_API const char *corm_result_colname(const corm_result *r, int col);
/* Column type OID, or 0 when col is out of range. */
CORM_API uint32_t corm_result_coltype(const corm_result *r, int col);
/* Index of the column named name, or -1. */
CORM_API int corm_result_colindex(const corm_result *r, const char *name);
/* Rows affected by INSERT/UPDATE/DELETE (or returned by SELECT); -1 if n/a. */
CORM_API int64_t corm_result_affected(const corm_result *r);
/* The command tag, e.g. "INSERT 0 1" (borrowed). */
CORM_API const char *corm_result_command(const corm_result *r);
/* 1 if the cell is NULL, 0 if not, CORM_EMISUSE for a bad row/col. */
CORM_API int corm_result_isnull(const corm_result *r, int row, int col);
/* Decodes one cell into *out with the decoder chosen for its column. Strings
 * and bytes point into r and live as long as r. CORM_EMISUSE for a bad
 * row/col; CORM_EDATA for bytes that do not decode as the column's type. */
CORM_API int corm_result_get(const corm_result *r, int row, int col, corm_value *out,
                             corm_error *err);
/* Typed access. Each fails with CORM_EDATA if the cell is NULL or its column
 * type does not convert losslessly (an int8 into int64 does; a float8 into
 * int64 does not); corm_result_get_text accepts any text-like column. */
CORM_API int corm_result_get_int64(const corm_result *r, int row, int col, int64_t *out,
                                   corm_error *err);
CORM_API int corm_result_get_double(const corm_result *r, int row, int col, double *out,
                                    corm_error *err);
CORM_API int corm_result_get_bool(const corm_result *r, int row, int col, bool *out,
                                  corm_error *err);
CORM_API int corm_result_get_text(const corm_result *r, int row, int col, const char **out,
                                  size_t *len, corm_error *err);
CORM_API int corm_result_get_bytes(const corm_result *r, int row, int col,
                                   const void **out, size_t *len, corm_error *err);

/* From inside a completion callback: keep r past the callback. Returns r. */
CORM_API corm_result *corm_result_take(corm_result *r);
/* Frees a result obtained from corm_result_take() or a blocking helper. */
CORM_API void corm_result_free(corm_result *r);

/* ------------------------------------------------------------------------
 * Mapping rows into structs
 *
 * The C front end's fastest path: describe a struct once with a table of
 * fields (a result column, a C type, offsetof), then decode every row of
 * a result straight into an array of those structs.
 *
 *     struct user { int64_t id; const char *name; bool email_is_null;
 *                   const char *email; };
 *     static const corm_field user_fields[] = {
 *         CORM_FIELD("id", CORM_C_INT64, struct user, id),
 *         CORM_FIELD("name", CORM_C_TEXT, struct user, name),
 *         CORM_FIELD_NULL("email", CORM_C_TEXT, struct user, email, email_is_null),
 *     };
 *     corm_map *map;
 *     corm_map_new(&map, sizeof(struct user), NULL, &err);
 *     corm_map_add_fields(map, user_fields, 3, &err);
 *     ...
 *     struct user *users; size_t n;
 *     corm_result_map_alloc(res, map, (void **)&users, &n, &err);
 *
 * Columns named in fields are looked up (exactly, case included) once per
 * call, and each field's decoding is chosen then from the column's type,
 * so one map serves any result whose columns it names, in any order.
 * A column's type must convert losslessly into its field:
 *
 *   C type           columns
 *   CORM_C_INT16     int2; int4, int8, oid when the value fits (per cell)
 *   CORM_C_INT32     int2, int4; int8, oid when the value fits
 *   CORM_C_INT64     int2, int4, int8, oid
 *   CORM_C_FLOAT     float4; float8 when exact as a float (NaN and the
 *                    infinities are); integers within +-2^24
 *   CORM_C_DOUBLE    float4, float8; int2, int4; int8 within +-2^53
 *   CORM_C_BOOL      bool
 *   CORM_C_TEXT      text, varchar, char(n), name, "char", unknown, json,
 *                    jsonb (its text), numeric (its exact decimal text)
 *   CORM_C_BYTES     bytea, the text types above but numeric and jsonb,
 *                    and any type libcorm does not decode (an enum: its
 *                    label) as its wire bytes
 *   CORM_C_USEC      timestamp, timestamptz (microseconds since 2000-01-01,
 *                    CORM_TIMESTAMP_(NEG_)INFINITY), time (since midnight)
 *   CORM_C_DAYS      date (days since 2000-01-01, CORM_DATE_(NEG_)INFINITY)
 *   CORM_C_UUID      uuid
 *   CORM_C_INTERVAL  interval
 *   CORM_C_VALUE     any column, as corm_result_get decodes it
 *
 * Anything else (a float8 into an int64, a numeric into a double, text
 * into an int) fails with CORM_EDATA naming the column, its type and the
 * field's, before any row is written; a value that does not fit (an int8
 * of 2^40 into an int32) fails with CORM_EDATA naming the column and row.
 *
 * Strings: CORM_C_TEXT writes a `const char *` to a NUL-terminated string
 * and CORM_C_BYTES a `const void *`; both point into memory owned by the
 * result and live as long as it. Numeric text is made by the call and
 * added to the result's memory (each call adds it again). A `size_t`
 * length field is optional for text (it spares a strlen) and required for
 * bytes.
 *
 * NULL: a field with a null flag (a `bool`) gets true and a zeroed value
 * (NULL pointer, length 0); without one a NULL cell fails with CORM_EDATA
 * naming the column and row, unless the field has CORM_FIELD_NULL_ZERO, in
 * which case it is zeroed. A CORM_C_VALUE field takes NULL as CORM_NULL.
 * ---------------------------------------------------------------------- */

#define CORM_HAS_STRUCT_MAP 1

/* The C type of a mapped field (corm_field.type). Append only. */
enum corm_ctype {
    CORM_C_INT16 = 1, /* int16_t */
    CORM_C_INT32,     /* int32_t */
    CORM_C_INT64,     /* int64_t */
    CORM_C_FLOAT,     /* float */
    CORM_C_DOUBLE,    /* double */
    CORM_C_BOOL,      /* bool */
    CORM_C_TEXT,      /* const char *, NUL-terminated (optional size_t length) */
    CORM_C_BYTES,     /* const void * (size_t length required) */
    CORM_C_USEC,      /* int64_t microseconds: timestamp, timestamptz, time */
    CORM_C_DAYS,      /* int32_t days: date */
    CORM_C_UUID,      /* uint8_t[16] */
    CORM_C_INTERVAL,  /* corm_interval */
    CORM_C_VALUE,     /* corm_value */
    CORM__C_LAST
};

/* An interval, as in corm_value: microseconds, days and months, kept apart
 * as PostgreSQL keeps them. */
typedef struct corm_interval {
    int64_t usec;
    int32_t days;
    int32_t months;
} corm_interval;

enum corm_field_flags {
    CORM_FIELD_HAS_LEN = 1u << 0,  /* len_offset names a size_t length */
    CORM_FIELD_HAS_NULL = 1u << 1, /* null_offset names a bool "is null" flag */
    CORM_FIELD_NULL_ZERO = 1u << 2 /* a NULL cell writes a zero value, no error */
};

/*
 * One field of a mapped struct. Fill it with the CORM_FIELD* macros below,
 * or by hand (designated initializers; unused members zero).
 */
typedef struct corm_field {
    const char *column; /* result column name (copied); NULL: use col */
    int col;            /* result column index, when column is NULL */
    int type;           /* enum corm_ctype */
    size_t offset;      /* offsetof(struct, member) */
    size_t size;        /* sizeof the member, checked against type; 0: unchecked */
    size_t len_offset;  /* with CORM_FIELD_HAS_LEN: offsetof a size_t */
    size_t null_offset; /* with CORM_FIELD_HAS_NULL: offsetof a bool */
    unsigned flags;     /* enum corm_field_flags */
} corm_field;

#define CORM__MEMBER_SIZE(T, m) sizeof(((T *)0)->m)
/* Column `column` into member m of struct type T, as C type `ctype`. */
#define CORM_FIELD(column, ctype, T, m) \
    {(column), 0, (ctype), offsetof(T, m), CORM__MEMBER_SIZE(T, m), 0, 0, 0u}
/* ... with a bool member null_m set when the cell is NULL. */
#define CORM_FIELD_NULL(column, ctype, T, m, null_m)                              \
    {(column), 0, (ctype), offsetof(T, m), CORM__MEMBER_SIZE(T, m), 0,            \
     offsetof(T, null_m), CORM_FIELD_HAS_NULL}
/* ... where a NULL cell leaves m zero (0, false, NULL), with no flag. */
#define CORM_FIELD_ZERO(column, ctype, T, m) \
    {(column), 0, (ctype), offsetof(T, m), CORM__MEMBER_SIZE(T, m), 0, 0, CORM_FIELD_NULL_ZERO}
/* Text or bytes into m, with its length into the size_t member len_m. */
#define CORM_FIELD_LEN(column, ctype, T, m, len_m)                                \
    {(column), 0, (ctype), offsetof(T, m), CORM__MEMBER_SIZE(T, m), offsetof(T, len_m), \
     0, CORM_FIELD_HAS_LEN}
/* ... with a length and a null flag. */
#define CORM_FIELD_LEN_NULL(column, ctype, T, m, len_m, null_m)                   \
    {(column), 0, (ctype), offsetof(T, m), CORM__MEMBER_SIZE(T, m), offsetof(T, len_m), \
     offsetof(T, null_m), CORM_FIELD_HAS_LEN | CORM_FIELD_HAS_NULL}
/* Column index col (0-based) instead of a name, with the given flags
 * (CORM_FIELD_NULL_ZERO or 0). */
#define CORM_FIELD_AT(col, ctype, T, m, flags) \
    {NULL, (col), (ctype), offsetof(T, m), CORM__MEMBER_SIZE(T, m), 0, 0, (flags)}

/* A description of a struct: built once, reused across results. Not
 * thread-safe (a call writes its column plan into the map). */
typedef struct corm_map corm_map;

/*
 * Creates an empty map for structs of struct_size bytes (sizeof, > 0).
 * opt (may be NULL) supplies the allocator. Free with corm_map_free().
 */
CORM_API int corm_map_new(corm_map **out, size_t struct_size, const corm_options *opt,
                          corm_error *err);
/*
 * Appends a field (its column name is copied). CORM_EMISUSE for an unknown
 * type, a member that does not fit the struct, a size that does not match
 * the type, a negative column index, bytes without a length, or a length
 * or null flag outside the struct. CORM_ENOMEM.
 */
CORM_API int corm_map_add_field(corm_map *m, const corm_field *f, corm_error *err);
/* corm_map_add_field for n fields in order; on failure the map keeps the
 * fields before the one that failed. */
CORM_API int corm_map_add_fields(corm_map *m, const corm_field *fields, size_t n,
                                 corm_error *err);
/* Number of fields. */
CORM_API size_t corm_map_nfields(const corm_map *m);
/* Frees m. NULL is a no-op. */
CORM_API void corm_map_free(corm_map *m);

/*
 * Decodes rows 0 .. min(count, nrows) - 1 of r into rows[0], rows[1], ...,
 * stride bytes apart (0: the map's struct size; otherwise at least that),
 * and sets *written (if not NULL) to the number of rows written. Compare it
 * with corm_result_nrows(r) when count may be short. Only the fields'
 * members (values, lengths, null flags) are written. Allocates nothing
 * except numeric text (in r's memory).
 * Errors: CORM_EMISUSE (NULL r or m, NULL rows with count > 0, a bad
 * stride, an unknown column name or index out of range), CORM_EDATA (a
 * column that does not convert, a NULL without a flag, a value that does
 * not fit, malformed bytes), CORM_ENOMEM (numeric text). After an error in
 * a row, *written rows are complete and the rest are unspecified.
 */
CORM_API int corm_result_map(const corm_result *r, corm_map *m, void *rows, size_t count,
                             size_t stride, size_t *written, corm_error *err);
/*
 * As corm_result_map, for every row of r into an array of structs (the
 * map's struct size apart) allocated in memory owned by r, zeroed first,
 * freed with r: *rows and *nrows receive it (NULL and 0 for no rows, and on
 * failure). The array may be used as long as r lives; never free it.
 */
CORM_API int corm_result_map_alloc(corm_result *r, corm_map *m, void **rows, size_t *nrows,
                                   corm_error *err);

/* ------------------------------------------------------------------------
 * Connections
 *
 * A connection is opened without blocking, then driven by the host: watch
 * corm_conn_fd() for the events corm_conn_events() asks for, wake up after
 * corm_conn_timeout() milliseconds at the latest, and call corm_conn_step().
 * Requests may be submitted at once, even while connecting; they are sent
 * when the connection is ready and run in libpq's pipeline mode, many in
 * flight at a time, completing in submission order.
 * ---------------------------------------------------------------------- */

typedef struct corm_conn corm_conn;

enum corm_events { CORM_READ = 1, CORM_WRITE = 2 };

enum corm_conn_state {
    CORM_CONN_CONNECTING = 1, /* handshake under way */
    CORM_CONN_READY = 2,      /* open; requests run */
    CORM_CONN_BROKEN = 3,     /* failed or lost; every request has failed */
};

/*
 * Starts connecting to `conninfo`, a URL (postgresql://user@host:port/db?...)
 * or a key=value string, as libpq accepts. Does not block (host name lookup
 * aside, as in libpq: give hostaddr= or an IP to avoid it). opt may be NULL
 * for defaults. On success *out is a connection in state CONNECTING, READY
 * or (if the server refused at once) BROKEN, which step() reports.
 * Fails with CORM_ECONNECTION if the connection cannot even be started,
 * CORM_EMISUSE for NULL arguments or bad options, CORM_ENOMEM.
 * Close with corm_conn_close().
 */
CORM_API int corm_conn_open(corm_conn **out, const char *conninfo, const corm_options *opt,
                            corm_error *err);
/*
 * Closes c: every request still pending completes with CORM_ECANCELLED
 * (their callbacks run inside this call), the server is told goodbye, and
 * all memory of c is freed. Called from inside one of c's callbacks, the
 * close is deferred until that callback returns. NULL is a no-op.
 */
CORM_API void corm_conn_close(corm_conn *c);

/* The socket to watch, or -1 when there is none (broken, closed). The
 * socket can change while connecting (libpq tries hosts in turn): read it
 * again after every step. */
CORM_API int corm_conn_fd(const corm_conn *c);
/* What the engine waits for: a mask of CORM_READ | CORM_WRITE (0 when it
 * waits for nothing). READ is set whenever the connection is open, so a
 * host can keep one persistent reader and add a writer only while WRITE is
 * set. */
CORM_API int corm_conn_events(const corm_conn *c);
/* Milliseconds until the engine's next deadline (connect or request
 * timeout), 0 if one has passed, -1 if there is none. */
CORM_API int corm_conn_timeout(const corm_conn *c);
/*
 * Makes all the progress possible without blocking: advances the handshake,
 * sends buffered output, reads input, completes requests in order (their
 * callbacks run inside this call), and acts on passed deadlines. Call it
 * when the socket is ready or a deadline passes; spurious calls are harmless.
 * Returns CORM_OK, or CORM_ECONNECTION (with details) when the connection
 * broke now, after failing each pending request with the same error.
 * CORM_EMISUSE when called from inside one of c's callbacks.
 */
CORM_API int corm_conn_step(corm_conn *c, corm_error *err);
/* One of enum corm_conn_state. */
CORM_API int corm_conn_state(const corm_conn *c);
/* Requests submitted and not yet completed. */
CORM_API int corm_conn_pending(const corm_conn *c);
/* 1 while an explicit transaction is open (begun and not yet committed or
 * rolled back, as far as submitted requests say), else 0. */
CORM_API int corm_conn_in_transaction(const corm_conn *c);
/* The backend's process id (for pg_terminate_backend and logs), 0 if none. */
CORM_API int corm_conn_backend_pid(const corm_conn *c);
/* Prepared statements currently in c's cache. */
CORM_API int corm_conn_cached_statements(const corm_conn *c);

/*
 * Completion callback. Exactly one call per successful submit, with either
 * res (borrowed until return; err is NULL) or err (borrowed until return;
 * res is NULL). From inside it you may submit, cancel and close.
 */
typedef void corm_done_fn(void *ud, corm_result *res, const corm_error *err);

/* Request identifiers, unique per connection (and per pool). Never 0. */
typedef uint64_t corm_request_id;

/*
 * Submits q on c with binary parameters and binary results. Does not block.
 * On success the request joins the pipeline, `done` will be called exactly
 * once (from corm_conn_step, corm_conn_cancel or corm_conn_close, never from
 * inside this call), and *id (if id is not NULL) identifies it.
 * An error in one request affects no other: each has its own sync point.
 * Fails without calling done: CORM_EMISUSE (NULL arguments), CORM_ECONNECTION
 * (c is broken), CORM_ENOMEM.
 */
CORM_API int corm_conn_submit(corm_conn *c, const corm_query *q, corm_done_fn *done, void *ud,
                              corm_request_id *id, corm_error *err);
/* corm_conn_submit of SQL text without parameters. */
CORM_API int corm_conn_submit_sql(corm_conn *c, const char *sql, corm_done_fn *done, void *ud,
                                  corm_request_id *id, corm_error *err);
/*
 * Rows of a streamed request, handed over while the rest are still on the
 * way, so the caller turns them into its own objects while the server
 * works. rows is borrowed for the call: read it with the corm_result_*
 * getters (row numbers start at 0 in every batch), never free or take it.
 * From inside it you may submit, cancel (this request too: no batch
 * follows then) and close.
 */
typedef void corm_rows_fn(void *ud, const corm_result *rows);
/*
 * corm_conn_submit, streamed: `rows` runs for each batch of rows as they
 * arrive (one row a batch with libpq before 17), in order, then `done` as
 * for corm_conn_submit, whose result then has the statement's columns and
 * affected count but no rows (they were all handed to `rows`). On an error
 * `done` gets it after whatever batches came before it: the caller drops
 * them. A streamed request is retried after a stale prepared statement
 * only while no row has been handed over.
 */
CORM_API int corm_conn_submit_stream(corm_conn *c, const corm_query *q, corm_rows_fn *rows,
                                     corm_done_fn *done, void *ud, corm_request_id *id,
                                     corm_error *err);
/*
 * Cancels request id: its callback runs now with CORM_ECANCELLED. If the
 * server is executing it, the server is asked to stop it (the request's
 * later result is discarded); if it is waiting behind others, it is stopped
 * when it starts. A request the server had already finished may still have
 * taken effect. The connection stays usable and no other request is
 * affected. Returns 1 if id was pending and is now cancelled, 0 if it was
 * no longer pending (already completed), CORM_EMISUSE for a NULL handle.
 */
CORM_API int corm_conn_cancel(corm_conn *c, corm_request_id id, corm_error *err);

/* ------------------------------------------------------------------------
 * Transactions
 *
 * Transactions are requests like any other, submitted in order on one
 * connection. corm_conn_begin() opens a transaction, or a savepoint when one
 * is already open; commit and rollback close the innermost level.
 * ---------------------------------------------------------------------- */

enum corm_isolation {
    CORM_ISOLATION_DEFAULT = 0,
    CORM_READ_COMMITTED = 1,
    CORM_REPEATABLE_READ = 2,
    CORM_SERIALIZABLE = 3,
};

typedef struct corm_txn_options {
    int isolation;   /* enum corm_isolation */
    bool read_only;
    bool deferrable; /* only meaningful with SERIALIZABLE and read_only */
} corm_txn_options;

/* Begins a transaction (opt may be NULL), or a savepoint when one is open
 * (then opt must be NULL or all defaults: CORM_EMISUSE otherwise). */
CORM_API int corm_conn_begin(corm_conn *c, const corm_txn_options *opt, corm_done_fn *done,
                             void *ud, corm_error *err);
/* Commits the transaction, or releases the innermost savepoint.
 * CORM_EMISUSE when no transaction is open. */
CORM_API int corm_conn_commit(corm_conn *c, corm_done_fn *done, void *ud, corm_error *err);
/* Rolls back the transaction, or to the innermost savepoint (and releases
 * it). CORM_EMISUSE when no transaction is open. */
CORM_API int corm_conn_rollback(corm_conn *c, corm_done_fn *done, void *ud, corm_error *err);
/* Nesting depth: 0 outside a transaction, 1 inside, 2+ inside savepoints. */
CORM_API int corm_conn_txn_depth(const corm_conn *c);

/* ------------------------------------------------------------------------
 * Streaming large results
 *
 * A cursor reads a query's rows in batches through a server-side cursor
 * (DECLARE ... CURSOR / FETCH), so memory stays bounded whatever the row
 * count, and the reader sets the pace: each batch is asked for, which is
 * what an `async for` or a Lua iterator needs. A cursor lives inside a
 * transaction; when none is open on the connection, opening the cursor
 * begins one and closing it commits it. On a pool, acquire a connection
 * for the cursor's lifetime.
 * ---------------------------------------------------------------------- */

typedef struct corm_cursor corm_cursor;

/*
 * Declares a cursor for q (its parameters are copied) on c, fetching
 * batch_rows rows per batch (>= 1). Does not block: the declaration is a
 * pipelined request whose outcome reaches `done` (a command result on
 * success; a syntax error in q arrives here). Batches may be fetched at
 * once, without waiting for it. Free with corm_cursor_free() after closing.
 */
CORM_API int corm_cursor_open(corm_cursor **out, corm_conn *c, const corm_query *q,
                              int batch_rows, corm_done_fn *done, void *ud, corm_error *err);
/*
 * Asks for the next batch: `done` gets a result of up to batch_rows rows,
 * in binary format like any other; a batch with fewer rows is the last
 * (corm_cursor_exhausted then returns 1), one with none means no more.
 * CORM_EMISUSE after close.
 */
CORM_API int corm_cursor_fetch(corm_cursor *cur, corm_done_fn *done, void *ud,
                               corm_request_id *id, corm_error *err);
/* 1 once a batch came back short (no rows left), else 0. */
CORM_API int corm_cursor_exhausted(const corm_cursor *cur);
/*
 * Closes the cursor on the server and, if opening it began the
 * transaction, commits (or, after an error, rolls back) that transaction.
 * `done` gets the CLOSE's outcome. The handle stays valid for
 * corm_cursor_free(). Idempotent: a second close calls nothing and returns
 * CORM_OK without calling done.
 */
CORM_API int corm_cursor_close(corm_cursor *cur, corm_done_fn *done, void *ud,
                               corm_error *err);
/* Frees cur. A cursor never closed is closed without a callback first
 * (its transaction committed if it began it). NULL is a no-op. */
CORM_API void corm_cursor_free(corm_cursor *cur);
/* Blocking helper: the next batch into *out (caller frees it); *out has no
 * rows at the end. */
CORM_API int corm_cursor_fetch_wait(corm_cursor *cur, corm_result **out, corm_error *err);

/* ------------------------------------------------------------------------
 * Bulk writes: COPY FROM STDIN in binary format
 *
 * Rows are encoded by the same codecs as parameters and streamed to the
 * server in chunks of about 64 KiB, so memory stays bounded whatever the
 * row count. libpq runs COPY outside pipeline mode: a copy waits for the
 * requests submitted before it, and those submitted after it wait for it.
 * ---------------------------------------------------------------------- */

typedef struct corm_copy corm_copy;

/*
 * Starts COPY [schema.]table (columns...) FROM STDIN (FORMAT binary) on c.
 * oids[i] is the type of column i, exactly (binary COPY has no
 * conversions: an int4 column needs CORM_OID_INT4; an enum column takes its
 * label as CORM_TEXT with the enum's oid). Names are quoted; bad names fail
 * with CORM_EPROGRAMMING. `done` gets the outcome once the copy ends: a
 * result whose corm_result_affected() is the number of rows stored, or the
 * server's error naming the failing line ("... (COPY t, line 3, column k)").
 * The caller owns *out and frees it with corm_copy_free() (after done, or
 * before to abandon the copy). Does not block.
 */
CORM_API int corm_copy_open(corm_copy **out, corm_conn *c, const char *schema,
                            const char *table, const char *const *columns,
                            const uint32_t *oids, int ncolumns, corm_done_fn *done, void *ud,
                            corm_error *err);
/* Encodes one row (ncolumns values; their oid fields are ignored) and sends
 * it when a chunk is full. A value that does not fit its column's type
 * fails with CORM_EDATA and the row is not added. CORM_ECANCELLED once the
 * server has refused the copy (its error reaches done). Does not block. */
CORM_API int corm_copy_put(corm_copy *cp, const corm_value *values, corm_error *err);
/* 1 when more rows may be put without growing memory; 0 while a chunk
 * waits for the socket (wait for CORM_WRITE, step, then put again). */
CORM_API int corm_copy_ready(const corm_copy *cp);
/* Rows put so far. */
CORM_API int64_t corm_copy_rows(const corm_copy *cp);
/* Ends the data; the outcome reaches done from a later step. */
CORM_API int corm_copy_end(corm_copy *cp, corm_error *err);
/* Ends the copy as failed: the server stores nothing and done gets its
 * error (CORM_ECANCELLED class from the server's 57014). */
CORM_API int corm_copy_abort(corm_copy *cp, const char *reason, corm_error *err);
/* Frees cp; an unfinished copy is abandoned (aborted). NULL is a no-op. */
CORM_API void corm_copy_free(corm_copy *cp);
/* Blocking helpers: put a row, first waiting while chunks are in flight;
 * end and wait until done has run. */
CORM_API int corm_copy_put_wait(corm_copy *cp, const corm_value *values, corm_error *err);
CORM_API int corm_copy_end_wait(corm_copy *cp, corm_error *err);

/* ------------------------------------------------------------------------
 * The pool
 *
 * A pool keeps between min and max connections to one server. Requests
 * submitted to the pool share its connections and pipeline on them;
 * corm_pool_acquire() lends one connection exclusively (for a transaction)
 * and corm_pool_release() gives it back clean. Broken connections are
 * discarded and replaced.
 *
 * Driving: the pool reports each member connection's socket and wanted
 * events through a watch callback (libcurl's multi-socket shape). Call
 * corm_pool_step(pool, fd) when that socket is ready, and
 * corm_pool_step(pool, -1) when corm_pool_timeout() has passed.
 * ---------------------------------------------------------------------- */

typedef struct corm_pool corm_pool;

/* Told when a member's socket or wanted events change: events is a mask of
 * CORM_READ | CORM_WRITE, or 0 when the socket must no longer be watched
 * (the connection is gone or the fd changed). Called from inside pool
 * functions; it must not call back into the pool. */
typedef void corm_watch_fn(void *ud, int fd, int events);

/* Creates a pool and starts opening opt->pool_min_size connections. Does not
 * block. Errors as for corm_conn_open. Free with corm_pool_close(). */
CORM_API int corm_pool_open(corm_pool **out, const char *conninfo, const corm_options *opt,
                            corm_error *err);
/* Closes every connection (pending requests and waiting acquires complete with
 * CORM_ECANCELLED) and frees the pool. Lent connections are closed too: the
 * pool owns them. Deferred when called from a callback. NULL is a no-op. */
CORM_API void corm_pool_close(corm_pool *p);
/* Sets the watch callback and reports every current socket to it. */
CORM_API void corm_pool_set_watch(corm_pool *p, corm_watch_fn *fn, void *ud);
/* Steps the member whose socket is fd (-1: none), then acts on deadlines and
 * keeps the pool at its minimum size. Never blocks. Returns CORM_OK; a
 * member that broke is reported to its requests, not here. */
CORM_API int corm_pool_step(corm_pool *p, int fd, corm_error *err);
/* Milliseconds until the pool's next deadline, 0 if passed, -1 if none. */
CORM_API int corm_pool_timeout(const corm_pool *p);
/* Submits q on a shared connection: the least loaded ready one, or a new one
 * when all are busy and the pool is below max_size. Lent connections are
 * never used. Completion as for corm_conn_submit; *id can be given to
 * corm_pool_cancel. */
CORM_API int corm_pool_submit(corm_pool *p, const corm_query *q, corm_done_fn *done, void *ud,
                              corm_request_id *id, corm_error *err);
/* corm_pool_submit, streamed: as corm_conn_submit_stream. */
CORM_API int corm_pool_submit_stream(corm_pool *p, const corm_query *q, corm_rows_fn *rows,
                                     corm_done_fn *done, void *ud, corm_request_id *id,
                                     corm_error *err);
/* Cancels a request submitted with corm_pool_submit (as corm_conn_cancel). */
CORM_API int corm_pool_cancel(corm_pool *p, corm_request_id id, corm_error *err);

/* Called with a lent connection, or with conn NULL and err set
 * (CORM_ETIMEOUT when no connection became free in time, CORM_ECANCELLED,
 * CORM_ECONNECTION when the server cannot be reached). */
typedef void corm_acquire_fn(void *ud, corm_conn *conn, const corm_error *err);
/*
 * Asks for a connection for exclusive use. Callers are served first come,
 * first served; timeout_ms <= 0 waits forever. The callback runs from a
 * later corm_pool_step (or at once from this call if a connection is free).
 * The connection stays the pool's: give it back with corm_pool_release(),
 * never close it. *id (if not NULL) identifies the wait for
 * corm_pool_cancel_acquire.
 */
CORM_API int corm_pool_acquire(corm_pool *p, int timeout_ms, corm_acquire_fn *cb, void *ud,
                               corm_request_id *id, corm_error *err);
/* Withdraws a waiting acquire; its callback runs now with CORM_ECANCELLED.
 * Returns 1 if it was waiting, 0 if not. */
CORM_API int corm_pool_cancel_acquire(corm_pool *p, corm_request_id id, corm_error *err);
/* Gives back a lent connection. A transaction left open is rolled back
 * before anyone else can have the connection; a broken one is discarded.
 * CORM_EMISUSE if conn is not a connection this pool lent. */
CORM_API int corm_pool_release(corm_pool *p, corm_conn *conn, corm_error *err);
/* Connections open or opening, and of them idle (ready, unlent, no requests). */
CORM_API int corm_pool_size(const corm_pool *p);
CORM_API int corm_pool_idle(const corm_pool *p);

/* ------------------------------------------------------------------------
 * Blocking helpers
 *
 * Built from the non-blocking calls above (poll() on the socket, then step),
 * as libpq builds PQexec from PQsendQuery. For simple C programs and tests;
 * they must not be called from inside a callback (CORM_EMISUSE).
 * ---------------------------------------------------------------------- */

/* Blocks until c's socket is ready or timeout_ms passes (-1: no limit, also
 * capped by the engine's own deadlines), then steps once. */
CORM_API int corm_conn_wait(corm_conn *c, int timeout_ms, corm_error *err);
/* Blocks: opens a connection and waits until it is ready. */
CORM_API int corm_conn_connect(corm_conn **out, const char *conninfo, const corm_options *opt,
                               corm_error *err);
/* Blocks: runs q and returns its result through *out (caller frees with
 * corm_result_free). Other requests on c progress meanwhile. */
CORM_API int corm_conn_exec(corm_conn *c, const corm_query *q, corm_result **out,
                            corm_error *err);
/* Blocks: corm_conn_exec of SQL text without parameters. out may be NULL to
 * discard the result. */
CORM_API int corm_conn_exec_sql(corm_conn *c, const char *sql, corm_result **out,
                                corm_error *err);
/* Blocks until every request on c has completed, the engine's own included
 * (a cursor's COMMIT, a statement's DEALLOCATE). */
CORM_API int corm_conn_drain(corm_conn *c, corm_error *err);
/* Blocks until some pool socket is ready or timeout_ms passes, then steps. */
CORM_API int corm_pool_wait(corm_pool *p, int timeout_ms, corm_error *err);
/* Blocks: corm_pool_submit and wait for the result (caller frees it). */
CORM_API int corm_pool_exec(corm_pool *p, const corm_query *q, corm_result **out,
                            corm_error *err);
/* Blocks: acquire a connection, waiting at most timeout_ms (<= 0: forever). */
CORM_API int corm_pool_acquire_wait(corm_pool *p, int timeout_ms, corm_conn **out,
                                    corm_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CORM_H */
