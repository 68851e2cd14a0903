/*
 * sql_int.h - private structures of the model registry, expressions and
 * built queries (model.c, expr.c, sql.c, ddl.c). Included by corm_int.h.
 */
#ifndef CORM_SQL_INT_H
#define CORM_SQL_INT_H

/* PostgreSQL's NAMEDATALEN - 1: longer names are truncated by the server. */
#define CORM__NAME_MAX 63
/* Longest type text accepted ("numeric(12,2)[]", "timestamp(3) with time zone"). */
#define CORM__TYPE_MAX 160
/* Compiled shapes kept per registry before the oldest is evicted. */
#define CORM__SHAPE_CACHE_MAX 1024

/* ---- arena: many small allocations freed at once --------------------- */

typedef struct corm__rchunk corm__rchunk;

typedef struct corm__region {
    corm__rchunk *head;
    size_t next_size;
} corm__region;

void *corm__region_alloc(corm__region *ar, const corm__alloc *a, size_t n);
char *corm__region_strdup(corm__region *ar, const corm__alloc *a, const char *s);
char *corm__region_memdup(corm__region *ar, const corm__alloc *a, const void *p, size_t n);
void corm__region_free(corm__region *ar, const corm__alloc *a);

/* ---- names, quoting, SQL scanning ----------------------------------- */

/* 1..63 bytes, valid UTF-8 (len bytes at s; an embedded NUL is refused).
 * what says what the name is, for the message ("column name"). */
int corm__name_check(const char *s, size_t len, const char *what, corm_error *err);
/* Appends "s" with " doubled. */
int corm__buf_ident(corm__buf *b, const corm__alloc *a, const char *s);
/* Appends a string literal of len bytes that reads back exactly, written
 * in ASCII only (non-ASCII as \u escapes, E'' form when needed), so that
 * no client encoding can change its meaning. dollar_safe: also escape '$'
 * (for text inside a $tag$ body). The bytes must be valid UTF-8. */
int corm__buf_literal(corm__buf *b, const corm__alloc *a, const char *s, size_t len,
                      bool dollar_safe);
int corm__buf_puts(corm__buf *b, const corm__alloc *a, const char *s);
int corm__buf_printf(corm__buf *b, const corm__alloc *a, const char *fmt, ...)
    CORM__PRINTF(3, 4);
/* Valid UTF-8? */
bool corm__utf8_valid(const char *s, size_t len);

/* Scans SQL text written by the developer (a raw fragment, a CHECK, a
 * default expression, a partial index predicate): refuses unterminated
 * quotes and comments and ';' outside them, and reports the highest $n
 * used (0 if none) in *max_param. what names the text for messages. */
int corm__sql_scan(const char *sql, const char *what, int *max_param, corm_error *err);
/* Appends sql with every parameter $n renumbered to $(n + offset). */
int corm__sql_renumber(corm__buf *b, const corm__alloc *a, const char *sql, int offset);

/* ---- types ----------------------------------------------------------- */

enum corm__family {
    CORM__F_OTHER = 0,
    CORM__F_INT,
    CORM__F_FLOAT,
    CORM__F_NUMERIC,
    CORM__F_BOOL,
    CORM__F_TEXT,
    CORM__F_BYTES,
    CORM__F_DATE,
    CORM__F_TIME,
    CORM__F_TIMETZ,
    CORM__F_TIMESTAMP,
    CORM__F_TIMESTAMPTZ,
    CORM__F_INTERVAL,
    CORM__F_UUID,
    CORM__F_JSON,
    CORM__F_ENUM,
};

typedef struct corm__utype corm__utype;

typedef struct corm__type {
    const char *sql;        /* canonical SQL: "varchar(30)", "\"mood\"[]" */
    size_t base_len;        /* bytes of sql naming the element type (no []) */
    uint32_t oid;           /* of the whole type; 0 when not built in */
    uint32_t elem_oid;      /* of the element type (scalar: == oid); 0 unknown */
    uint32_t elem_array_oid;/* array type of the element type; 0 unknown */
    int ndims;              /* [] suffixes */
    int family;             /* of the element type */
    bool serial;            /* serial, bigserial, smallserial */
    const corm__utype *utype; /* registry type the element names, or NULL */
} corm__type;

/* Parses type text; the canonical SQL is written to sqlbuf (>= CORM__TYPE_MAX
 * bytes) and t->sql points there. reg resolves enum and external types. */
int corm__type_parse(const corm_registry *reg, const char *text, corm__type *t, char *sqlbuf,
                     corm_error *err);
/* The array type of a built-in element oid, or 0. */
uint32_t corm__array_oid(uint32_t elem_oid);

/* ---- the registry and models ----------------------------------------- */

struct corm__utype {
    const char *schema;     /* NULL: unqualified */
    const char *name;
    const char *sql;        /* quoted, schema-qualified when given */
    bool is_enum;
    int nlabels;
    const char **labels;
};

typedef struct corm__column {
    const char *name;
    corm__type type;
    unsigned flags;         /* CORM_COL_* given */
    const char *default_sql;/* DEFAULT clause text (literal or server expression) */
} corm__column;

typedef struct corm__unique {
    const char *name;       /* NULL: the server names it */
    int ncols;
    int *cols;
} corm__unique;

typedef struct corm__check {
    const char *name;
    const char *sql;
} corm__check;

typedef struct corm__fk {
    const char *name;
    int ncols;
    int *cols;
    const corm_model *target;
    int *target_cols;
    int on_delete, on_update;
} corm__fk;

typedef struct corm__index {
    const char *name;
    int ncols;
    int *cols;
    unsigned flags;
    const char *method;     /* NULL: btree */
    const char *where_sql;  /* partial index predicate, or NULL */
} corm__index;

struct corm_model {
    corm_registry *reg;
    int index;              /* in reg->models */
    bool frozen;            /* used by a query or DDL: no more changes */
    const char *schema;     /* NULL: the search path decides */
    const char *table;
    corm__column *cols;
    int ncols, capcols;
    int *pk;
    int npk;
    corm__unique *uniques;
    int nuniques, capuniques;
    corm__check *checks;
    int nchecks, capchecks;
    corm__fk *fks;
    int nfks, capfks;
    corm__index *indexes;
    int nindexes, capindexes;
};

typedef struct corm__shape corm__shape;

struct corm_registry {
    corm__alloc alloc;
    int refs;               /* 1 for the owner until freed, + queries, expressions */
    bool freed;             /* corm_registry_free was called */
    corm__region arena;      /* models, columns, types: live as long as the registry */
    corm_model **models;
    int nmodels, capmodels;
    corm__utype **utypes;
    int nutypes, caputypes;
    /* Compiled SQL by query shape. */
    corm__shape **buckets;
    size_t nbuckets;
    int nshapes;
    corm__shape *oldest, *newest;   /* insertion order, for eviction */
    uint64_t compiles, cache_hits;
    bool verify_cache;      /* tests: recompile on every hit and compare */
};

void corm__registry_retain(corm_registry *reg);
void corm__registry_release(corm_registry *reg);
/* Is col a single-column integer primary key that gets an identity? */
bool corm__column_identity(const corm_model *m, int col);
/* The DEFAULT text of a column (given or implied, e.g. gen_random_uuid()
 * for a uuid primary key), or NULL. */
const char *corm__column_default(const corm_model *m, int col);
/* Quoted table name, schema-qualified when the model has a schema. */
int corm__buf_table(corm__buf *b, const corm__alloc *a, const corm_model *m);
/* "model \"users\"" or "model \"s\".\"users\"" into buf (for messages). */
const char *corm__model_label(const corm_model *m, char *buf, size_t size);

/* Test hooks (internal, used by tests/core): real compilations so far, and
 * a switch that recompiles on every cache hit and checks the result. */
uint64_t corm__registry_compiles(const corm_registry *reg);
uint64_t corm__registry_cache_hits(const corm_registry *reg);
void corm__registry_verify_cache(corm_registry *reg, bool on);

/* ---- expressions ----------------------------------------------------- */

/* A bound value, encoded once; copied into a query when attached. */
typedef struct corm__param {
    uint32_t oid;
    int32_t format;
    int32_t len;            /* -1: NULL */
    char *data;
} corm__param;

enum corm__ekind {
    CORM__E_COLUMN = 1,
    CORM__E_EXCLUDED,
    CORM__E_IDENT,
    CORM__E_PARAM,
    CORM__E_BINARY,
    CORM__E_AND,
    CORM__E_OR,
    CORM__E_NOT,
    CORM__E_ISNULL,
    CORM__E_BETWEEN,
    CORM__E_IN_ARRAY,
    CORM__E_IN_QUERY,
    CORM__E_EXISTS,
    CORM__E_SUBQUERY,
    CORM__E_AGG,
    CORM__E_FUNC,
    CORM__E_CAST,
    CORM__E_ORDER,
    CORM__E_OVER,
    CORM__E_RAW,
};

/*
 * Expressions are immutable and reference counted; a parent holds a
 * reference on each child. Bound values are encoded when the node is made
 * and copied into a query's parameters when the expression is attached to
 * it; the compiler numbers them by walking the tree in the same order:
 * children first (in args order), then the subquery's, then own params.
 */
struct corm_expr {
    int refs;
    uint8_t kind;
    bool negate;            /* NOT IN, IS NOT NULL, NOT BETWEEN */
    int op;                 /* BINARY: corm_op; AGG: corm_agg; ORDER: flags; OVER: npartition */
    unsigned flags;         /* AGG: CORM_AGG_DISTINCT */
    corm_registry *reg;
    const corm_model *model;/* COLUMN, EXCLUDED */
    int col;
    corm__type *type;       /* CAST's type (owned) */
    char *s1, *s2;          /* COLUMN: alias; IDENT: qualifier, name; FUNC: name;
                               RAW: text; IN_ARRAY: cast type */
    corm_expr **args;
    int nargs;
    corm_query *sub;        /* IN_QUERY, EXISTS, SUBQUERY (a reference) */
    corm__param *params;    /* PARAM, IN_ARRAY: 1; RAW: nparams */
    int nparams;
};

/* The known column type of an expression (a column), or NULL. */
const corm__type *corm__expr_type(const corm_expr *e);
/* Encodes v for a parameter; t (may be NULL) is the type it is compared
 * with or stored into; label names it in errors ("users.age"). */
int corm__param_encode(const corm__alloc *a, const corm_value *v, const corm__type *t,
                       const char *label, corm__param *out, corm_error *err);
void corm__param_clear(const corm__alloc *a, corm__param *p);

/* ---- built queries --------------------------------------------------- */

/* An expression attached to a query, and the number of the query's
 * parameters bound before it (its values are $(base+1) ...). */
typedef struct corm__slot {
    corm_expr *e;
    int base;
} corm__slot;

enum { CORM__REL_MODEL = 1, CORM__REL_CTE, CORM__REL_QUERY };

typedef struct corm__rel {
    int kind;
    int join;               /* 0 for the first FROM item, else CORM_JOIN_* */
    const corm_model *model;
    const char *name;       /* CTE name */
    const char *alias;
    corm_query *sub;        /* REL_QUERY */
    int sub_base;
    corm__slot on;          /* explicit ON (e NULL when joined on a foreign key) */
    const corm__fk *fk;     /* ON from this foreign key... */
    int fk_child, fk_parent;/* ...between these relations (indexes) */
} corm__rel;

enum { CORM__ITEM_EXPR = 1, CORM__ITEM_ALL };

typedef struct corm__item {
    int kind;
    corm__slot s;           /* ITEM_EXPR */
    const char *alias;
    int rel;                /* ITEM_ALL: the relation whose columns are listed */
} corm__item;

typedef struct corm__order {
    corm__slot s;
    unsigned flags;
} corm__order;

typedef struct corm__cte {
    const char *name;
    int ncols;
    const char **cols;
    corm_query *sub;
    int base;
    unsigned flags;
} corm__cte;

typedef struct corm__setop {
    int op;
    corm_query *sub;
    int base;
} corm__setop;

typedef struct corm__assign {
    int col;
    corm__slot s;           /* e NULL: param is the value */
    int param;
} corm__assign;

typedef struct corm__built {
    corm_registry *reg;
    int refs;               /* the owner's + uses inside other queries */
    bool frozen;            /* used inside another query: no more changes */
    int kind;               /* CORM_QUERY_* */
    const corm_model *model;/* target (INSERT/UPDATE/DELETE) or first FROM model */
    corm__region arena;
    corm__rel *rels;
    int nrels, caprels;
    corm__item *items;      /* SELECT list or RETURNING */
    int nitems, capitems;
    bool distinct;
    corm__slot *distinct_on;
    int ndistinct_on, capdistinct_on;
    corm__slot *where;
    int nwhere, capwhere;
    corm__slot *group;
    int ngroup, capgroup;
    corm__slot *having;
    int nhaving, caphaving;
    corm__order *order;
    int norder, caporder;
    int limit_param, offset_param;  /* 0: none */
    unsigned lock;
    corm__cte *ctes;
    int nctes, capctes;
    bool recursive;
    corm__setop *setops;
    int nsetops, capsetops;
    /* INSERT: rows of param numbers, one per model column (0: DEFAULT). */
    int **rows;
    int nrows, caprows;
    int conflict;           /* 0, CORM_CONFLICT_NOTHING, CORM_CONFLICT_UPDATE */
    int *conflict_cols;
    int nconflict_cols;
    bool conflict_set;      /* corm_query_on_conflict was called */
    /* UPDATE SET, or the upsert's DO UPDATE SET. */
    corm__assign *sets;
    int nsets, capsets;
    /* Compiled: a shape-cache entry (referenced), or NULL. */
    corm__shape *shape;
} corm__built;

/* The compiled form of one query shape, shared by every query of that
 * shape through the registry's cache. */
typedef struct corm__outcol {
    const corm_model *model;
    int field;
    const char *name;       /* in the shape's allocation; NULL when unnamed */
} corm__outcol;

struct corm__shape {
    corm__shape *hnext;     /* hash chain */
    corm__shape *older, *newer;
    uint64_t hash;
    int refs;               /* the cache's + each query using it */
    bool cached;
    size_t size;            /* one allocation: struct, key, sql, columns, names */
    size_t keylen;
    char *key;
    char *sql;
    int ncols;
    corm__outcol *cols;
};

/* sql.c */
void corm__built_free(corm_query *q);
int corm__built_finalize(corm_query *q, const char **sql, corm_error *err);
void corm__shape_release(corm_registry *reg, corm__shape *s);
void corm__shape_cache_clear(corm_registry *reg);
/* Pushes one encoded parameter onto q (query.c); returns its number. */
int corm__query_push_param(corm_query *q, const corm__param *p, corm_error *err);

#endif /* CORM_SQL_INT_H */
