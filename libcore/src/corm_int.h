/*
 * corm_int.h - private definitions shared by libcorm's sources: handle
 * structs, the allocator, byte buffers, error filling, codecs.
 */
#ifndef CORM_INT_H
#define CORM_INT_H

/* poll, clock_gettime, strncasecmp: POSIX.1-2008 on top of C11. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "corm.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdatomic.h>

#if defined(__GNUC__)
#define CORM__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CORM__PRINTF(f, a)
#endif

/* ---- allocator ------------------------------------------------------- */

typedef struct corm__alloc {
    corm_alloc_fn *fn;
    void *ud;
} corm__alloc;

void corm__alloc_init(corm__alloc *a, const corm_options *opt);
void *corm__malloc(const corm__alloc *a, size_t n);
void *corm__calloc(const corm__alloc *a, size_t n);
void *corm__realloc(const corm__alloc *a, void *p, size_t old, size_t n);
void corm__free(const corm__alloc *a, void *p, size_t n);
char *corm__strdup(const corm__alloc *a, const char *s, size_t *size_out);

/* ---- byte buffer ----------------------------------------------------- */

typedef struct corm__buf {
    char *data;
    size_t len, cap;
} corm__buf;

int corm__buf_reserve(corm__buf *b, const corm__alloc *a, size_t extra);
int corm__buf_put(corm__buf *b, const corm__alloc *a, const void *p, size_t n);
void corm__buf_free(corm__buf *b, const corm__alloc *a);

/* Big-endian reads and writes, the wire's byte order. */
static inline uint16_t corm__get_u16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint16_t)((u[0] << 8) | u[1]);
}
static inline uint32_t corm__get_u32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}
static inline uint64_t corm__get_u64(const char *p)
{
    return ((uint64_t)corm__get_u32(p) << 32) | corm__get_u32(p + 4);
}
static inline void corm__put_u16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}
static inline void corm__put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}
static inline void corm__put_u64(char *p, uint64_t v)
{
    corm__put_u32(p, (uint32_t)(v >> 32));
    corm__put_u32(p + 4, (uint32_t)v);
}

/* ---- errors ---------------------------------------------------------- */

/* Fill err (if not NULL) with code and a formatted message; returns code. */
int corm__err(corm_error *err, int code, const char *fmt, ...) CORM__PRINTF(3, 4);
int corm__errv(corm_error *err, int code, const char *fmt, va_list ap);
int corm__err_nomem(corm_error *err);
/* From a failed PGresult: class from SQLSTATE, message, detail, hint. */
int corm__err_from_result(corm_error *err, const PGresult *res, int fallback_code);
/* From PQerrorMessage(pg), trimmed, with the given class. */
int corm__err_from_conn(corm_error *err, const PGconn *pg, int code, const char *context);

/* Misuse guard: reports CORM_EMISUSE naming the function and condition. */
#define corm__check(cond, err, msg)                                               \
    do {                                                                         \
        if (!(cond))                                                             \
            return corm__err((err), CORM_EMISUSE, "%s: %s", __func__, (msg));   \
    } while (0)

/* Monotonic clock, milliseconds. */
int64_t corm__now_ms(void);

/* ---- codecs ---------------------------------------------------------- */

/*
 * Scratch storage for decoders whose output is not a view of the wire bytes
 * (numeric's decimal text). Owned by a corm_result and freed with it, so
 * what a decoder writes here lives exactly as long as the result's own
 * bytes. Bump allocation in blocks: nothing is freed one by one.
 */
typedef struct corm__arena_block corm__arena_block;
typedef struct corm__arena {
    corm__alloc alloc;
    corm__arena_block *head;    /* the block being filled, then older ones */
} corm__arena;

void corm__arena_init(corm__arena *ar, const corm__alloc *a);
/* n bytes that live until corm__arena_free; NULL on OOM or when ar is NULL
 * (a caller decoding without storage). */
void *corm__arena_alloc(corm__arena *ar, size_t n);
void corm__arena_free(corm__arena *ar);
/* Forgets everything allocated, keeping one block for reuse. */
void corm__arena_reset(corm__arena *ar);

/*
 * Decodes one binary cell of type `oid` into *out. Bounds-checked: malformed
 * bytes give CORM_EDATA, never a read past buf+len. Strings point into buf,
 * or into scratch for types whose text is computed (numeric); arrays keep
 * scratch so their elements can be decoded later. scratch may be NULL, in
 * which case those decoders fail with CORM_ENOMEM.
 */
typedef int corm__decode_fn(const char *buf, size_t len, uint32_t oid, corm_value *out,
                            corm__arena *scratch, corm_error *err);

/* The decoder for a type, chosen once per column. Never NULL: unknown types
 * get the raw decoder (CORM_RAW with the bytes). */
corm__decode_fn *corm__decoder_for(uint32_t oid);

/*
 * Encodes v for the wire, appending its bytes to *out. Sets *oid (the type
 * the server is told; 0 lets the server infer) and *format (1 binary, 0
 * text). *is_null is set for NULL, with nothing appended. CORM_EDATA when
 * the value does not fit the requested type. On failure *out may hold a
 * partial value past its old length: the caller truncates it. A text-format
 * value ends with a NUL byte, counted in what is appended, because libpq
 * reads text parameters as C strings.
 */
int corm__encode(const corm_value *v, corm__buf *out, const corm__alloc *a, uint32_t *oid,
                 int *format, bool *is_null, corm_error *err);

/* Element type of a built-in array type, or 0. */
uint32_t corm__array_elem_oid(uint32_t array_oid);
/* Array type of a built-in element type, or 0. */
uint32_t corm__array_oid_of(uint32_t elem_oid);

/* Per-type codecs, split by family (codec_numeric.c, codec_time.c,
 * codec_array.c); codec.c dispatches to them. */
corm__decode_fn corm__dec_numeric, corm__dec_date, corm__dec_time, corm__dec_timetz,
    corm__dec_timestamp, corm__dec_interval, corm__dec_array;
/* A decimal string (PostgreSQL's numeric input syntax) or an integer as
 * numeric's binary form; CORM_EDATA for malformed or unrepresentable text. */
int corm__enc_numeric_str(const char *s, size_t n, corm__buf *out, const corm__alloc *a,
                          corm_error *err);
int corm__enc_numeric_int(int64_t i, corm__buf *out, const corm__alloc *a, corm_error *err);
int corm__enc_time(const corm_value *v, corm__buf *out, const corm__alloc *a, uint32_t *oid,
                   corm_error *err);
int corm__enc_array(const corm_value *v, corm__buf *out, const corm__alloc *a, uint32_t *oid,
                    corm_error *err);
/* Appends the big-endian nbytes low bytes of v. */
int corm__put_be(corm__buf *out, const corm__alloc *a, uint64_t v, int nbytes,
                 corm_error *err);

/* ---- queries --------------------------------------------------------- */

struct corm_query {
    corm__alloc alloc;
    char *sql;
    size_t sql_size;         /* allocated bytes of sql, NUL included */
    int nparams, cap;
    uint32_t *oids;          /* cap entries */
    int32_t *lens;           /* -1 for NULL */
    int32_t *formats;
    size_t *offsets;         /* into data */
    corm__buf data;
    int timeout_ms;
    int placeholders;        /* highest $n in raw sql */
    /* A built query's AST and compiled shape (sql_int.h); NULL for raw SQL,
     * whose text is sql. A built query's sql stays NULL. */
    struct corm__built *built;
};

/* The SQL text to send for q, compiling a built query if needed (the text
 * is cached in q and borrowed by the caller until q changes). */
int corm__query_finalize(const corm_query *q, const char **sql, corm_error *err);
/* The highest $n placeholder in sql, outside literals, quoted names and
 * comments; 0 when there is none. */
int corm__sql_max_placeholder(const char *sql);
/* CORM_EMISUSE unless nparams matches sql's placeholders (given, or -1 to
 * scan sql). */
int corm__check_param_count(const char *sql, int placeholders, int nparams, corm_error *err);

/* Models, expressions, built queries (model.c, expr.c, sql.c, ddl.c). */
#include "sql_int.h"

/* ---- results --------------------------------------------------------- */

struct corm_result {
    corm__alloc alloc;
    PGresult *pg;
    int nrows, ncols;
    bool taken;              /* owned by the caller after corm_result_take */
    int64_t affected;
    corm__decode_fn **decoders; /* one per column, chosen from the OID once */
    corm__decode_fn *inline_decoders[16];
    /* Decoded text (numerics). corm_result_get is const: the arena is a
     * cache of derived output, written through a cast, never the rows. */
    corm__arena scratch;
};

/* Wraps pg (taking it); NULL on OOM (pg is then cleared). */
corm_result *corm__result_new(const corm__alloc *a, PGresult *pg);
/* Points r at pg, the next batch of the same statement (same columns, so
 * the decoders stay); r's previous PGresult and decoded text are freed. */
void corm__result_rebind(corm_result *r, PGresult *pg);

/* ---- requests and connections ---------------------------------------- */

enum {
    CORM__REQ_SENT = 1u << 0,       /* handed to libpq */
    CORM__REQ_ABANDONED = 1u << 1,  /* the caller was told; discard the outcome */
    CORM__REQ_CANCEL_SENT = 1u << 2,/* a server cancel was sent for it */
    CORM__REQ_INTERNAL = 1u << 3,   /* the engine's own (DEALLOCATE, ROLLBACK) */
    CORM__REQ_RETRIED = 1u << 4,    /* already retried once */
    CORM__REQ_PREPARE_FAILED = 1u << 5, /* its Parse failed: no statement */
    CORM__REQ_UNNAMED = 1u << 6,    /* never cached (text unique to one use) */
    CORM__REQ_COPY = 1u << 7,       /* a COPY: a barrier outside pipeline mode */
    CORM__REQ_SINGLE_ROW = 1u << 8, /* streamed: single-row mode was asked for */
    /* Was on the server when a cancel meant for an earlier request was
     * sent: that cancel may stop it instead, and then it is run again. */
    CORM__REQ_EXPOSED = 1u << 9,
    CORM__REQ_NO_CANCEL = 1u << 10, /* abandoned, but a cancel could stop another */
};

/* Effects of the engine's transaction calls, applied at submit time. */
enum { CORM__TXN_NONE = 0, CORM__TXN_BEGIN, CORM__TXN_END };

typedef struct corm__stmt corm__stmt;

typedef struct corm__req {
    struct corm__req *next;
    corm_request_id id;
    uint64_t seq;            /* order of submission on its connection */
    corm_done_fn *done;
    void *ud;
    unsigned flags;
    int64_t deadline;        /* monotonic ms; 0 = none */
    int ops;                 /* query results expected before the sync */
    int ops_seen;            /* query results received so far */
    uint64_t stmt_id;        /* prepared statement used (0: unnamed) */
    bool prepares;           /* this request sent the statement's Parse */
    corm_result *result;
    corm_error error;        /* first failure seen */
    corm_rows_fn *rows;      /* streamed: rows as they arrive (else NULL) */
    corm_result *view;       /* streamed: the batch being handed over */
    int64_t nstreamed;       /* streamed: rows handed over so far */
    corm_copy *copy;         /* CORM__REQ_COPY: the rows' source */
    /* What resending needs, in the same allocation. */
    size_t size;
    char *sql;
    size_t keylen;           /* sql, NUL, then the oids: the cache key */
    int nparams;
    uint32_t *oids;
    int32_t *lens;
    int32_t *formats;
    const char **values;
} corm__req;

/* Copies what q needs into a new request (not yet attached). */
int corm__req_new(corm__req **out, const corm__alloc *a, const corm_query *q,
                  const char *sql, corm_done_fn *done, void *ud, corm_error *err);
/* As corm__req_new, with prefix (if not NULL) put before the SQL text. */
int corm__req_new_ex(corm__req **out, const corm__alloc *a, const corm_query *q,
                     const char *sql, const char *prefix, corm_done_fn *done, void *ud,
                     corm_error *err);
void corm__req_free(const corm__alloc *a, corm__req *r);
/* Submits q (or sql) on c with request flags (CORM__REQ_INTERNAL, _UNNAMED). */
int corm__conn_submit_flags(corm_conn *c, const corm_query *q, const char *sql,
                            const char *prefix, unsigned flags, corm_done_fn *done, void *ud,
                            corm_request_id *id, corm_error *err);

typedef struct corm__cancel_job corm__cancel_job;

struct corm_conn {
    corm__alloc alloc;
    corm_options opt;
    PGconn *pg;
    int state;                  /* enum corm_conn_state */
    int fd;
    PostgresPollingStatusType poll;  /* while connecting */
    int64_t connect_deadline;
    bool want_write;
    corm_error broken_error;    /* why it broke */
    /* Requests: one FIFO; the sent ones come first, in server order. */
    corm__req *head, *tail;
    corm__req *unsent;          /* first request not yet handed to libpq */
    corm__req *held;            /* done, waiting for an earlier retried one */
    int nretrying;              /* requests sent again, not yet done */
    uint64_t push_seq;
    uint64_t cursor_counter;
    corm_copy *copy;            /* a COPY under way: pipeline mode is off */
    bool sending;               /* inside send_pending */
    int npending;               /* not abandoned, not internal */
    int nreqs;                  /* in the list */
    int ndeadlines;             /* requests with a deadline */
    corm_request_id own_next_id;
    corm_request_id *next_id;   /* own_next_id, or the pool's counter */
    bool awaiting_null;         /* a query result was read; libpq sends NULL next */
    /* Transactions. */
    int txn_depth;              /* through corm_conn_begin/commit/rollback */
    bool server_in_txn;         /* as the server's command tags say */
    /* Cancellation. A server cancel stops whatever the backend runs when
     * it arrives, and the postmaster signals the backend twice (pid and
     * process group), so one cancel can stop two statements. While one may
     * still arrive (its target still running, or the helper thread not yet
     * through), nothing more is sent: a backend that is idle when the
     * signal lands drops it. See cancel_abandoned_head(). */
    bool cancel_due;            /* an abandoned request may need a server cancel */
    bool cancel_target_open;    /* the cancelled request has not finished */
    corm__cancel_job *cancel_job; /* the last cancel sent, until it is through */
    /* Prepared statements. */
    corm__stmt *stmt_lru_head, *stmt_lru_tail;  /* most recent first */
    corm__stmt **stmt_table;
    size_t stmt_table_size;
    int nstmts;
    uint64_t stmt_counter;
    /* Re-entrancy. */
    int in_callback;
    bool close_requested;
    bool closing;               /* inside corm_conn_close: refuse new requests */
    bool fail_pending;
    bool broken_reported;
    bool was_ready;             /* the handshake completed once */       /* step has returned the breakage once */          /* broken outside step: fail requests at next step */
    void *pool_member;          /* back pointer owned by pool.c */
    /* Told, before any callback runs, that the socket fd is gone (closed
     * by libpq or about to be), so a watcher drops it before the number
     * can be reused. The pool sets it for its members. */
    void (*fd_gone)(void *ud, int fd);
    void *fd_gone_ud;
};

/* Creates a request from q (or sql) and pushes it on c. */
int corm__conn_submit_req(corm_conn *c, const corm_query *q, const char *sql,
                          corm_done_fn *done, void *ud, corm_request_id *id, corm_error *err);
/* Attaches r to c and sends it when c is ready. Takes r in every case: on
 * failure r has been completed with the error (done called). */
void corm__conn_push(corm_conn *c, corm__req *r);
/* Open a connection whose ids come from *id_counter (the pool's). */
int corm__conn_open(corm_conn **out, const char *conninfo, const corm_options *opt,
                    corm_request_id *id_counter, corm_error *err);
/* Finds a pending, not abandoned request by id (NULL if none). */
corm__req *corm__conn_find(corm_conn *c, corm_request_id id);
/* Completes the request now with err and marks it abandoned. */
void corm__conn_abandon(corm_conn *c, corm__req *r, const corm_error *err);
/* Frees c without running callbacks (they must all have run). */
void corm__conn_destroy(corm_conn *c);
/* Submits an internal statement (no caller): DEALLOCATE, ROLLBACK. */
int corm__conn_submit_internal(corm_conn *c, const char *sql, corm_error *err);
/* 1 if the server or the engine knows c is inside a transaction block. */
int corm__conn_txn_open(const corm_conn *c);

/* Statement cache (stmt.c). */
corm__stmt *corm__stmt_lookup(corm_conn *c, const char *key, size_t keylen);
/* Adds an entry for key; its name is written to name (>= 32 bytes). When the
 * cache overflows, the least recently used entry is evicted and its name
 * is written to evicted (else evicted[0] = 0). NULL on OOM. */
corm__stmt *corm__stmt_add(corm_conn *c, const char *key, size_t keylen, char *evicted);
const char *corm__stmt_name(const corm__stmt *s);
uint64_t corm__stmt_id(const corm__stmt *s);
/* Forgets the entry for key if it is still the one with this id. */
void corm__stmt_forget_id(corm_conn *c, const char *key, size_t keylen, uint64_t id, char *name_out);
void corm__stmt_forget(corm_conn *c, corm__stmt *s);
void corm__stmt_free_all(corm_conn *c);

/* Options: copy *opt (or defaults) into *dst and validate. */
int corm__options_resolve(corm_options *dst, const corm_options *opt, corm_error *err);
/* Connection life (conn.c, pipeline.c). */
void corm__conn_advance_connect(corm_conn *c);
void corm__conn_ready(corm_conn *c);
/* Marks c broken with why (class forced to CORM_ECONNECTION unless it is
 * a timeout), closes the socket and fails every request. */
void corm__conn_broken(corm_conn *c, const corm_error *why);
/* Gives up on c without running callbacks: it is marked broken and its
 * requests fail at the next step. For a connection that cannot be made
 * safe to reuse (e.g. no memory to roll its transaction back). */
void corm__conn_discard(corm_conn *c, const char *why);
/* Completes every request in the list with err (callbacks run) and empties it. */
void corm__conn_fail_all(corm_conn *c, const corm_error *err);
void corm__cancel_job_release(corm__cancel_job *job);

/* COPY (copy.c): start a queued copy at the head of an idle pipeline;
 * process its input (true once over and pipelining again); detach it from
 * its request when that is freed. */
bool corm__copy_start(corm_conn *c, corm__req *r);
bool corm__copy_process(corm_conn *c);
void corm__copy_detach(corm__req *r);

/* Cancellation (pipeline.c): ask the server to stop c's current statement,
 * from a helper thread, so the host loop never blocks on it. */
int corm__conn_send_cancel(corm_conn *c, corm_error *err);
/* True while the helper thread of c's last cancel has not finished. */
bool corm__conn_cancel_pending(const corm_conn *c);
/* True while c sends nothing because a cancel may still land. */
bool corm__conn_held_back(const corm_conn *c);

#endif /* CORM_INT_H */
