/*
 * test_model.c - the model registry: type parsing and OIDs, validation
 * errors that name the model and column, keys and implied defaults, DDL
 * text (golden), and DDL run against PostgreSQL, hostile names included.
 */
#define CTEST_MAIN
#include "ctest.h"
#include "test_helpers.h"

#include "test_sql_fixture.h"

static corm_registry *new_reg(void)
{
    corm_registry *reg = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_registry_new(&reg, NULL, &err), &err);
    return reg;
}

static corm_model *new_model(corm_registry *reg, const char *schema, const char *table)
{
    corm_model *m = NULL;
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_model_new(&m, reg, schema, table, &err), &err);
    return m;
}

/* ---- types ------------------------------------------------------------ */

TEST(types_canonical_and_oids)
{
    static const struct {
        const char *in, *sql;
        uint32_t oid;
    } cases[] = {
        {"bigint", "bigint", 20},
        {"int8", "bigint", 20},
        {"INTEGER", "integer", 23},
        {"int", "integer", 23},
        {"int4", "integer", 23},
        {"smallint", "smallint", 21},
        {"varchar(30)", "varchar(30)", 1043},
        {"character varying(30)", "varchar(30)", 1043},
        {"Character  Varying", "varchar", 1043},
        {"char(3)", "char(3)", 1042},
        {"numeric(12,2)", "numeric(12,2)", 1700},
        {"numeric( 12 , 2 )", "numeric(12,2)", 1700},
        {"decimal(5)", "numeric(5)", 1700},
        {"numeric(10,-2)", "numeric(10,-2)", 1700},
        {"numeric", "numeric", 1700},
        {"timestamptz", "timestamptz", 1184},
        {"timestamp with time zone", "timestamptz", 1184},
        {"timestamp(3) with time zone", "timestamptz(3)", 1184},
        {"timestamp without time zone", "timestamp", 1114},
        {"time(0)", "time(0)", 1083},
        {"time with time zone", "timetz", 1266},
        {"double precision", "double precision", 701},
        {"float8", "double precision", 701},
        {"real", "real", 700},
        {"boolean", "boolean", 16},
        {"bool", "boolean", 16},
        {"text", "text", 25},
        {"text[]", "text[]", 1009},
        {" text [ ] ", "text[]", 1009},
        {"bigint[][]", "bigint[][]", 1016},
        {"varchar(10)[]", "varchar(10)[]", 1015},
        {"uuid", "uuid", 2950},
        {"uuid[]", "uuid[]", 2951},
        {"json", "json", 114},
        {"jsonb", "jsonb", 3802},
        {"bytea", "bytea", 17},
        {"date", "date", 1082},
        {"interval", "interval", 1186},
        {"inet", "inet", 869},
        {"serial", "serial", 23},
        {"bigserial", "bigserial", 20},
        {"mood", "\"mood\"", 0},
        {"mood[]", "\"mood\"[]", 0},
        {"citext", "\"citext\"", 0},
        {"ext.vec(3)", "\"ext\".\"vec\"(3)", 0},
    };
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    const char *labels[] = {"a", "b"};
    CHECK_OK(corm_registry_add_enum(reg, NULL, "mood", 2, labels, &err), &err);
    CHECK_OK(corm_registry_add_type(reg, NULL, "citext", &err), &err);
    CHECK_OK(corm_registry_add_type(reg, "ext", "vec", &err), &err);
    corm_model *m = new_model(reg, NULL, "t");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%zu", i);
        int c = corm_model_add_column(m, name, cases[i].in, 0, &err);
        CHECK_MSG(c >= 0, "%s: %s", cases[i].in, err.message);
        CHECK_MSG(!strcmp(corm_model_column_type(m, c), cases[i].sql), "%s -> %s, want %s",
                  cases[i].in, corm_model_column_type(m, c), cases[i].sql);
        CHECK_MSG(corm_model_column_oid(m, c) == cases[i].oid, "%s: oid %u, want %u",
                  cases[i].in, corm_model_column_oid(m, c), cases[i].oid);
    }
    CHECK_EQ_INT(corm_model_ncolumns(m), (int)(sizeof cases / sizeof cases[0]));
    CHECK_EQ_INT(corm_model_column_index(m, "c3"), 3);
    CHECK_EQ_INT(corm_model_column_index(m, "nope"), -1);
    CHECK(corm_model_column_name(m, 99) == NULL);
    corm_registry_free(reg);
}

TEST(types_invalid)
{
    static const char *bad[] = {
        "varchr(30)", "varchar(0)", "varchar(a)", "numeric(1,2,3)", "text(5)",
        "int[", "text]", "text[][", "timestamp(7)", "serial[]", "mood(3)",
        "bigint; DROP TABLE x", "", "   ", "text)", "a b c", "(5)", "text[5]",
        "nosuch.type", "numeric(0)", "varchar(30", "bigint(8)", "ext.vec.x",
    };
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    const char *labels[] = {"a"};
    CHECK_OK(corm_registry_add_enum(reg, NULL, "mood", 1, labels, &err), &err);
    corm_model *m = new_model(reg, NULL, "things");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = corm_model_add_column(m, "col", bad[i], 0, &err);
        CHECK_MSG(rc == CORM_EPROGRAMMING, "type \"%s\" accepted (%d)", bad[i], rc);
        CHECK_MSG(strstr(err.message, "model \"things\", column \"col\"") != NULL,
                  "message does not name the column: %s", err.message);
    }
    CHECK_EQ_INT(corm_model_ncolumns(m), 0);
    CHECK_ERR(corm_model_add_column(m, "col", NULL, 0, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    corm_registry_free(reg);
}

/* ---- validation -------------------------------------------------------- */

#define EXPECT(call, code, fragment)                                                 \
    do {                                                                             \
        int rc_ = (call);                                                            \
        CHECK_MSG(rc_ == (code), "%s returned %d, want %s: %s", #call, rc_, #code,   \
                  err.message ? err.message : "");                                   \
        CHECK_MSG(strstr(err.message, (fragment)) != NULL, "%s: message \"%s\" lacks \"%s\"", \
                  #call, err.message, (fragment));                                   \
    } while (0)

TEST(validation_errors_name_model_and_column)
{
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    corm_model *a = new_model(reg, NULL, "authors"), *b = new_model(reg, NULL, "books");
    corm_model *m = NULL;
    EXPECT(corm_model_new(&m, reg, NULL, "authors", &err), CORM_EPROGRAMMING, "\"authors\"");
    CHECK(m == NULL);
    int aid = corm_model_add_column(a, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    int aname = corm_model_add_column(a, "name", "text", 0, &err);
    int anick = corm_model_add_column(a, "nick", "text", CORM_COL_UNIQUE, &err);
    CHECK(aid == 0 && aname == 1 && anick == 2);
    EXPECT(corm_model_add_column(a, "name", "text", 0, &err), CORM_EPROGRAMMING,
           "model \"authors\", column \"name\" is defined twice");
    EXPECT(corm_model_add_column(a, "k", "text", CORM_COL_PRIMARY_KEY | CORM_COL_NULL, &err),
           CORM_EPROGRAMMING, "column \"k\": a primary key column cannot be nullable");
    EXPECT(corm_model_add_column(a, "s", "serial", CORM_COL_NULL, &err), CORM_EPROGRAMMING,
           "column \"s\"");
    EXPECT(corm_model_add_column(a, "f", "text", 0x4000, &err), CORM_EMISUSE, "flags");

    corm_value t = {.kind = CORM_BOOL, .v.b = true}, nul = {.kind = CORM_NULL};
    EXPECT(corm_model_set_default(a, aid, &t, &err), CORM_EPROGRAMMING,
           "model \"authors\", column \"id\": the default's kind does not fit type bigint");
    EXPECT(corm_model_set_default(a, aname, &nul, &err), CORM_EPROGRAMMING,
           "column \"name\": NULL default for a NOT NULL column");
    EXPECT(corm_model_set_default_sql(a, aname, "now(); DROP TABLE x", &err), CORM_EPROGRAMMING,
           "column \"name\": default expression: ';'");
    EXPECT(corm_model_set_default_sql(a, aname, "$1", &err), CORM_EPROGRAMMING, "parameters");
    EXPECT(corm_model_set_default(a, 9, &t, &err), CORM_EMISUSE, "no column 9");
    EXPECT(corm_model_add_check(a, NULL, "length(name) > 0; --", &err), CORM_EPROGRAMMING,
           "model \"authors\": check constraint");
    EXPECT(corm_model_add_check(a, NULL, "'open", &err), CORM_EPROGRAMMING, "unterminated");
    int none[] = {0};
    EXPECT(corm_model_add_unique(a, NULL, 0, none, &err), CORM_EMISUSE, "at least one column");
    int twice[] = {aname, aname};
    EXPECT(corm_model_add_unique(a, NULL, 2, twice, &err), CORM_EPROGRAMMING,
           "column \"name\" appears twice");
    EXPECT(corm_model_add_index(a, NULL, 1, &aname, 0, "GIN; x", NULL, &err), CORM_EPROGRAMMING,
           "index method");
    CHECK_OK(corm_model_add_index(a, "ix", 1, &aname, 0, NULL, NULL, &err), &err);
    EXPECT(corm_model_add_index(a, "ix", 1, &anick, 0, NULL, NULL, &err), CORM_EPROGRAMMING,
           "index \"ix\" is defined twice");

    /* Foreign keys. */
    int bid = corm_model_add_column(b, "id", "uuid", CORM_COL_PRIMARY_KEY, &err);
    int bauthor = corm_model_add_column(b, "author_id", "text", 0, &err);
    int bauthor2 = corm_model_add_column(b, "author2", "bigint", 0, &err);
    int bauthor3 = corm_model_add_column(b, "author3", "bigint", CORM_COL_NULL, &err);
    CHECK(bid >= 0 && bauthor >= 0 && bauthor2 >= 0 && bauthor3 >= 0);
    corm_model *c = new_model(reg, NULL, "nokey");
    int cid = corm_model_add_column(c, "id", "bigint", 0, &err);
    EXPECT(corm_model_add_foreign_key(b, NULL, 1, &bauthor2, c, NULL, 0, 0, &err),
           CORM_EPROGRAMMING, "the referenced model \"nokey\" has no primary key");
    EXPECT(corm_model_add_foreign_key(b, NULL, 1, &bauthor2, c, &cid, 0, 0, &err),
           CORM_EPROGRAMMING, "neither its primary key nor unique");
    EXPECT(corm_model_add_foreign_key(b, NULL, 1, &bauthor, a, NULL, 0, 0, &err),
           CORM_EPROGRAMMING,
           "model \"books\", column \"author_id\" (text) cannot reference model \"authors\" "
           "column \"id\" (bigint)");
    EXPECT(corm_model_add_foreign_key(b, NULL, 1, &bauthor2, a, NULL, CORM_FK_SET_NULL, 0, &err),
           CORM_EPROGRAMMING, "column \"author2\": ON DELETE/UPDATE SET NULL needs a nullable");
    int two[] = {bauthor2, bauthor3};
    EXPECT(corm_model_add_foreign_key(b, NULL, 2, two, a, NULL, 0, 0, &err), CORM_EPROGRAMMING,
           "2 column(s) cannot reference the 1-column primary key");
    EXPECT(corm_model_add_foreign_key(b, NULL, 1, &bauthor2, a, NULL, 9, 0, &err), CORM_EMISUSE,
           "ON DELETE");
    CHECK_OK(corm_model_add_foreign_key(b, NULL, 1, &bauthor3, a, NULL, CORM_FK_SET_NULL,
                                        CORM_FK_CASCADE, &err),
             &err);
    /* A unique column can be referenced. */
    CHECK_OK(corm_model_add_column(b, "nick", "text", CORM_COL_NULL, &err), &err);
    int bnick = corm_model_column_index(b, "nick");
    CHECK_OK(corm_model_add_foreign_key(b, "by_nick", 1, &bnick, a, &anick, 0, 0, &err), &err);

    /* Registry types. */
    const char *dup[] = {"x", "x"};
    EXPECT(corm_registry_add_enum(reg, NULL, "e", 2, dup, &err), CORM_EPROGRAMMING,
           "label \"x\" appears twice");
    EXPECT(corm_registry_add_enum(reg, NULL, "text", 1, dup, &err), CORM_EPROGRAMMING,
           "built-in");
    char longlabel[70];
    memset(longlabel, 'l', 64);
    longlabel[64] = 0;
    const char *ll[] = {longlabel};
    EXPECT(corm_registry_add_enum(reg, NULL, "e", 1, ll, &err), CORM_EPROGRAMMING, "63");
    CHECK_OK(corm_registry_add_enum(reg, NULL, "e", 1, dup, &err), &err);
    EXPECT(corm_registry_add_type(reg, NULL, "e", &err), CORM_EPROGRAMMING, "already declared");
    corm_error_clear(&err);
    corm_registry_free(reg);
}

TEST(keys_identity_and_implied_defaults)
{
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    corm_model *a = new_model(reg, NULL, "a");
    int id = corm_model_add_column(a, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    int name = corm_model_add_column(a, "name", "text", CORM_COL_NULL, &err);
    unsigned fl = corm_model_column_flags(a, id);
    CHECK(fl & CORM_COL_PRIMARY_KEY);
    CHECK(fl & CORM_COL_IDENTITY);
    CHECK(fl & CORM_COL_HAS_DEFAULT);
    CHECK_EQ_INT(corm_model_column_flags(a, name), CORM_COL_NULL);
    const int *pk = NULL;
    CHECK_EQ_INT(corm_model_primary_key(a, &pk), 1);
    CHECK_EQ_INT(pk[0], id);

    corm_model *u = new_model(reg, NULL, "u");
    int uid = corm_model_add_column(u, "id", "uuid", CORM_COL_PRIMARY_KEY, &err);
    CHECK_EQ_INT(corm_model_column_flags(u, uid) & (CORM_COL_IDENTITY | CORM_COL_HAS_DEFAULT),
                 CORM_COL_HAS_DEFAULT);
    CHECK_STR(corm__column_default(u, uid), "gen_random_uuid()");

    corm_model *n = new_model(reg, NULL, "n");
    int nid = corm_model_add_column(n, "id", "integer", CORM_COL_PRIMARY_KEY | CORM_COL_NO_AUTO,
                                    &err);
    CHECK_EQ_INT(corm_model_column_flags(n, nid) & CORM_COL_HAS_DEFAULT, 0);

    /* Composite keys get no identity; the order given is kept. */
    corm_model *c = new_model(reg, NULL, "c");
    int x = corm_model_add_column(c, "x", "bigint", CORM_COL_PRIMARY_KEY, &err);
    int y = corm_model_add_column(c, "y", "bigint", CORM_COL_PRIMARY_KEY, &err);
    CHECK_EQ_INT(corm_model_primary_key(c, &pk), 2);
    CHECK_EQ_INT(corm_model_column_flags(c, x) & CORM_COL_IDENTITY, 0);
    int yx[] = {y, x};
    CHECK_OK(corm_model_set_primary_key(c, 2, yx, &err), &err);
    CHECK_EQ_INT(corm_model_primary_key(c, &pk), 2);
    CHECK_EQ_INT(pk[0], y);
    CHECK_OK(corm_model_set_primary_key(c, 1, &x, &err), &err);
    CHECK(corm_model_column_flags(c, x) & CORM_COL_IDENTITY);
    CHECK_EQ_INT(corm_model_column_flags(c, y) & CORM_COL_PRIMARY_KEY, 0);
    /* A default replaces the identity. */
    corm_value v = {.kind = CORM_INT, .v.i = 7};
    CHECK_OK(corm_model_set_default(c, x, &v, &err), &err);
    CHECK_EQ_INT(corm_model_column_flags(c, x) & CORM_COL_IDENTITY, 0);
    CHECK(corm_model_column_flags(c, x) & CORM_COL_HAS_DEFAULT);

    CHECK(corm_registry_find(reg, NULL, "c") == c);
    CHECK(corm_registry_find(reg, "s", "c") == NULL);
    CHECK_EQ_INT(corm_registry_nmodels(reg), 4);
    CHECK(corm_registry_model(reg, 0) == a);
    CHECK(corm_model_registry(a) == reg);
    CHECK_STR(corm_model_table(a), "a");
    CHECK(corm_model_schema(a) == NULL);
    corm_registry_free(reg);
}

/* ---- DDL text ----------------------------------------------------------- */

static void check_ddl(const corm_ddl *d, const char *const *want, int n)
{
    for (int i = 0; i < n && i < corm_ddl_count(d); i++)
        CHECK_MSG(!strcmp(corm_ddl_statement(d, i), want[i]),
                  "statement %d differs:\n   got: %s\n  want: %s", i, corm_ddl_statement(d, i),
                  want[i]);
    CHECK_EQ_INT(corm_ddl_count(d), n);
}

#define USERS_TABLE                                                                       \
    "\"users\" (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL, \"name\" "       \
    "varchar(30) NOT NULL UNIQUE, \"email\" text, \"mood\" \"mood\", \"score\" "          \
    "numeric(12,2) NOT NULL DEFAULT 0, \"created\" timestamptz NOT NULL DEFAULT now(), "  \
    "PRIMARY KEY (\"id\"))"
#define POSTS_TABLE                                                                       \
    "\"posts\" (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL, \"user_id\" "    \
    "bigint NOT NULL, \"title\" text NOT NULL, \"likes\" integer NOT NULL DEFAULT 0, "    \
    "\"tags\" text[], PRIMARY KEY (\"id\"), FOREIGN KEY (\"user_id\") REFERENCES "        \
    "\"users\" (\"id\") ON DELETE CASCADE)"
#define CATS_TABLE                                                                        \
    "\"categories\" (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL, "           \
    "\"parent_id\" bigint, \"name\" text NOT NULL, PRIMARY KEY (\"id\"), FOREIGN KEY "    \
    "(\"parent_id\") REFERENCES \"categories\" (\"id\") ON DELETE SET NULL)"

TEST(ddl_create_and_drop_text)
{
    fx f;
    fx_init(&f, NULL);
    corm_error err = CORM_ERROR_INIT;
    corm_ddl *d = NULL;
    CHECK_OK(corm_ddl_create(&d, f.reg, 0, NULL, 0, &err), &err);
    const char *want[] = {
        "CREATE TYPE \"mood\" AS ENUM ('happy', 'sad', 'ok')",
        "CREATE TABLE " USERS_TABLE,
        "CREATE TABLE " POSTS_TABLE,
        "CREATE TABLE " CATS_TABLE,
    };
    check_ddl(d, want, 4);
    corm_ddl_free(d);
    /* Creating freezes the models. */
    CHECK_ERR(corm_model_add_column(f.users, "x", "text", 0, &err), CORM_EMISUSE, &err);

    CHECK_OK(corm_ddl_create(&d, f.reg, 0, NULL, CORM_DDL_IF_NOT_EXISTS, &err), &err);
    const char *want2[] = {
        "DO $corm$ BEGIN CREATE TYPE \"mood\" AS ENUM ('happy', 'sad', 'ok'); EXCEPTION WHEN "
        "duplicate_object THEN NULL; END $corm$",
        "CREATE TABLE IF NOT EXISTS " USERS_TABLE,
        "CREATE TABLE IF NOT EXISTS " POSTS_TABLE,
        "CREATE TABLE IF NOT EXISTS " CATS_TABLE,
    };
    check_ddl(d, want2, 4);
    corm_ddl_free(d);

    /* A subset: only what posts needs (users must exist already). */
    const corm_model *only[] = {f.posts};
    CHECK_OK(corm_ddl_create(&d, f.reg, 1, only, 0, &err), &err);
    const char *want3[] = {"CREATE TABLE " POSTS_TABLE};
    check_ddl(d, want3, 1);
    corm_ddl_free(d);

    CHECK_OK(corm_ddl_drop(&d, f.reg, 0, NULL, 0, &err), &err);
    const char *want4[] = {"DROP TABLE \"categories\", \"posts\", \"users\"", "DROP TYPE \"mood\""};
    check_ddl(d, want4, 2);
    corm_ddl_free(d);
    CHECK_OK(corm_ddl_drop(&d, f.reg, 1, only, CORM_DDL_IF_EXISTS | CORM_DDL_CASCADE, &err),
             &err);
    const char *want5[] = {"DROP TABLE IF EXISTS \"posts\" CASCADE"};
    check_ddl(d, want5, 1);
    corm_ddl_free(d);

    CHECK_ERR(corm_ddl_create(&d, f.reg, 0, NULL, CORM_DDL_CASCADE, &err), CORM_EMISUSE, &err);
    CHECK(d == NULL);
    const corm_model *twice[] = {f.posts, f.posts};
    CHECK_ERR(corm_ddl_create(&d, f.reg, 2, twice, 0, &err), CORM_EMISUSE, &err);
    corm_error_clear(&err);
    fx_free(&f);
}

TEST(ddl_dependency_order_cycles_constraints_indexes)
{
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    /* Defined child first: created parent first. */
    corm_model *child = new_model(reg, "s", "child"), *parent = new_model(reg, "s", "parent");
    int pid = corm_model_add_column(parent, "id", "uuid", CORM_COL_PRIMARY_KEY, &err);
    int pcode = corm_model_add_column(parent, "code", "text", 0, &err);
    int pflag = corm_model_add_column(parent, "flag", "boolean", 0, &err);
    int pratio = corm_model_add_column(parent, "ratio", "double precision", CORM_COL_NULL, &err);
    int pnote = corm_model_add_column(parent, "note", "text", CORM_COL_NULL, &err);
    int pblob = corm_model_add_column(parent, "blob", "bytea", CORM_COL_NULL, &err);
    corm_value vt = {.kind = CORM_BOOL, .v.b = true}, vr = {.kind = CORM_FLOAT, .v.f = 0.5};
    corm_value vn = {.kind = CORM_TEXT}, vb = {.kind = CORM_BYTES}, vnull = {.kind = CORM_NULL};
    vn.v.str.ptr = "O'Reilly \\ $x \xc3\xa9";
    vn.v.str.len = strlen(vn.v.str.ptr);
    vb.v.str.ptr = "\x00\xff";
    vb.v.str.len = 2;
    CHECK_OK(corm_model_set_default(parent, pflag, &vt, &err), &err);
    CHECK_OK(corm_model_set_default(parent, pratio, &vr, &err), &err);
    CHECK_OK(corm_model_set_default(parent, pnote, &vn, &err), &err);
    CHECK_OK(corm_model_set_default(parent, pblob, &vb, &err), &err);
    CHECK_OK(corm_model_set_default(parent, pratio, &vnull, &err), &err);
    CHECK_OK(corm_model_set_default(parent, pratio, &vr, &err), &err);
    CHECK_OK(corm_model_add_unique(parent, "parent_code_key", 1, &pcode, &err), &err);
    CHECK_OK(corm_model_add_check(parent, NULL, "length(code) > 0", &err), &err);
    CHECK_OK(corm_model_add_check(parent, "ratio_ok", "ratio BETWEEN 0 AND 1", &err), &err);
    int ca = corm_model_add_column(child, "a", "integer", 0, &err);
    int cb = corm_model_add_column(child, "b", "integer", 0, &err);
    int cparent = corm_model_add_column(child, "parent_id", "uuid", CORM_COL_NULL, &err);
    int ctags = corm_model_add_column(child, "tags", "text[]", CORM_COL_NULL, &err);
    int ab[] = {ca, cb};
    CHECK_OK(corm_model_set_primary_key(child, 2, ab, &err), &err);
    CHECK_OK(corm_model_add_foreign_key(child, "child_parent_fk", 1, &cparent, parent, &pid,
                                        CORM_FK_SET_NULL, CORM_FK_RESTRICT, &err),
             &err);
    CHECK_OK(corm_model_add_index(child, NULL, 2, (int[]){cb, ca}, 0, NULL, NULL, &err), &err);
    CHECK_OK(corm_model_add_index(child, "child_tags", 1, &ctags, 0, "gin", "tags IS NOT NULL",
                                  &err),
             &err);
    CHECK_OK(corm_model_add_index(parent, "parent_lower_code", 1, &pcode, CORM_INDEX_UNIQUE,
                                  NULL, NULL, &err),
             &err);
    (void)pratio;
    corm_ddl *d = NULL;
    CHECK_OK(corm_ddl_create(&d, reg, 0, NULL, 0, &err), &err);
    const char *want[] = {
        "CREATE TABLE \"s\".\"parent\" (\"id\" uuid NOT NULL DEFAULT gen_random_uuid(), \"code\" "
        "text NOT NULL, \"flag\" boolean NOT NULL DEFAULT true, \"ratio\" double precision "
        "DEFAULT 0.5, \"note\" text DEFAULT E'O\\'Reilly \\\\ $x \\u00E9', \"blob\" bytea "
        "DEFAULT E'\\\\x00ff'::bytea, PRIMARY KEY (\"id\"), CONSTRAINT \"parent_code_key\" "
        "UNIQUE (\"code\"), CHECK (length(code) > 0), CONSTRAINT \"ratio_ok\" CHECK (ratio "
        "BETWEEN 0 AND 1))",
        "CREATE TABLE \"s\".\"child\" (\"a\" integer NOT NULL, \"b\" integer NOT NULL, "
        "\"parent_id\" uuid, \"tags\" text[], PRIMARY KEY (\"a\", \"b\"), CONSTRAINT "
        "\"child_parent_fk\" FOREIGN KEY (\"parent_id\") REFERENCES \"s\".\"parent\" (\"id\") "
        "ON DELETE SET NULL ON UPDATE RESTRICT)",
        "CREATE UNIQUE INDEX \"parent_lower_code\" ON \"s\".\"parent\" (\"code\")",
        "CREATE INDEX \"child_b_a_idx\" ON \"s\".\"child\" (\"b\", \"a\")",
        "CREATE INDEX \"child_tags\" ON \"s\".\"child\" USING gin (\"tags\") WHERE tags IS NOT "
        "NULL",
    };
    check_ddl(d, want, 5);
    corm_ddl_free(d);
    corm_registry_free(reg);

    /* A cycle: one foreign key waits for ALTER TABLE. */
    reg = new_reg();
    corm_model *x = new_model(reg, NULL, "x"), *y = new_model(reg, NULL, "y");
    corm_model_add_column(x, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    corm_model_add_column(y, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    int xy = corm_model_add_column(x, "y_id", "bigint", CORM_COL_NULL, &err);
    int yx = corm_model_add_column(y, "x_id", "bigint", CORM_COL_NULL, &err);
    CHECK_OK(corm_model_add_foreign_key(x, NULL, 1, &xy, y, NULL, 0, 0, &err), &err);
    CHECK_OK(corm_model_add_foreign_key(y, NULL, 1, &yx, x, NULL, 0, 0, &err), &err);
    CHECK_OK(corm_ddl_create(&d, reg, 0, NULL, CORM_DDL_IF_NOT_EXISTS, &err), &err);
    const char *want2[] = {
        "CREATE TABLE IF NOT EXISTS \"y\" (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY NOT "
        "NULL, \"x_id\" bigint, PRIMARY KEY (\"id\"))",
        "CREATE TABLE IF NOT EXISTS \"x\" (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY NOT "
        "NULL, \"y_id\" bigint, PRIMARY KEY (\"id\"), FOREIGN KEY (\"y_id\") REFERENCES \"y\" "
        "(\"id\"))",
        "DO $corm$ BEGIN ALTER TABLE \"y\" ADD CONSTRAINT \"y_x_id_fkey\" FOREIGN KEY "
        "(\"x_id\") REFERENCES \"x\" (\"id\"); EXCEPTION WHEN duplicate_object THEN NULL; END "
        "$corm$",
    };
    check_ddl(d, want2, 3);
    corm_ddl_free(d);
    CHECK_OK(corm_ddl_drop(&d, reg, 0, NULL, 0, &err), &err);
    const char *want3[] = {"DROP TABLE \"x\", \"y\""};
    check_ddl(d, want3, 1);
    corm_ddl_free(d);
    corm_registry_free(reg);
}

TEST(ddl_long_generated_names_and_dollar_tags)
{
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    char t[64];
    memset(t, 't', 60);
    t[60] = 0;
    corm_model *m = new_model(reg, NULL, t);
    int c = corm_model_add_column(m, "some_column", "text", 0, &err);
    CHECK_OK(corm_model_add_index(m, NULL, 1, &c, 0, NULL, NULL, &err), &err);
    const char *labels[] = {"$corm$", "a$corm0$b"};
    CHECK_OK(corm_registry_add_enum(reg, NULL, "$corm$", 2, labels, &err), &err);
    CHECK_OK(corm_model_add_column(m, "e", "$corm$", 0, &err), &err);
    corm_ddl *d = NULL;
    CHECK_OK(corm_ddl_create(&d, reg, 0, NULL, CORM_DDL_IF_NOT_EXISTS, &err), &err);
    CHECK_EQ_INT(corm_ddl_count(d), 3);
    /* The type's name holds "$corm$": the tag avoids it; labels escape '$'. */
    CHECK_STR(corm_ddl_statement(d, 0),
              "DO $corm1$ BEGIN CREATE TYPE \"$corm$\" AS ENUM (E'\\u0024corm\\u0024', "
              "E'a\\u0024corm0\\u0024b'); EXCEPTION WHEN duplicate_object THEN NULL; END $corm1$");
    const char *ix = corm_ddl_statement(d, 2);
    /* "CREATE INDEX IF NOT EXISTS \"<63 bytes>\" ON ..." */
    const char *q1 = strchr(ix, '"'), *q2 = strchr(q1 + 1, '"');
    CHECK_EQ_INT(q2 - q1 - 1, 63);
    corm_ddl_free(d);
    corm_registry_free(reg);
}

/* ---- DDL on the server ---------------------------------------------------- */

static void drop_schema(corm_conn *c, const char *schema)
{
    th_execf(c, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
}

static void run_ddl(corm_conn *c, corm_ddl *d)
{
    corm_error err = CORM_ERROR_INIT;
    CHECK_OK(corm_ddl_exec(c, d, &err), &err);
    corm_ddl_free(d);
}

TEST(ddl_runs_on_server)
{
    corm_conn *c = th_connect();
    char schema[64];
    th_name(schema, sizeof schema, c, "ddl");
    drop_schema(c, schema);
    th_execf(c, "CREATE SCHEMA \"%s\"", schema);
    fx f;
    fx_init(&f, schema);
    corm_error err = CORM_ERROR_INIT;
    int tags = f.p_tags;
    (void)tags;
    corm_ddl *d = NULL;
    CHECK_OK(corm_ddl_create(&d, f.reg, 0, NULL, 0, &err), &err);
    run_ddl(c, d);
    CHECK_EQ_INT(th_intf(c,
                         "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                         "'%s'",
                         schema),
                 3);
    CHECK_EQ_INT(th_intf(c,
                         "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                         "'%s' AND table_name = 'users'",
                         schema),
                 6);
    CHECK_EQ_INT(th_intf(c,
                         "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                         "'%s' AND table_name = 'users' AND column_name = 'id' AND "
                         "is_identity = 'YES'",
                         schema),
                 1);
    /* Running it again fails as a whole and leaves nothing half done. */
    CHECK_OK(corm_ddl_create(&d, f.reg, 0, NULL, 0, &err), &err);
    CHECK_ERR(corm_ddl_exec(c, d, &err), CORM_EPROGRAMMING, &err);
    corm_ddl_free(d);
    CHECK_EQ_INT(corm_conn_in_transaction(c), 0);
    /* IF NOT EXISTS runs any number of times. */
    for (int i = 0; i < 2; i++) {
        CHECK_OK(corm_ddl_create(&d, f.reg, 0, NULL, CORM_DDL_IF_NOT_EXISTS, &err), &err);
        run_ddl(c, d);
    }
    /* Defaults and the foreign key work as declared. */
    th_execf(c, "INSERT INTO \"%s\".users (name) VALUES ('ann')", schema);
    th_execf(c, "INSERT INTO \"%s\".posts (user_id, title) SELECT id, 't' FROM \"%s\".users",
             schema, schema);
    CHECK_EQ_INT(th_intf(c, "SELECT likes + score::int FROM \"%s\".posts, \"%s\".users", schema,
                         schema),
                 0);
    th_execf(c, "DELETE FROM \"%s\".users", schema);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM \"%s\".posts", schema), 0);
    CHECK_OK(corm_ddl_drop(&d, f.reg, 0, NULL, 0, &err), &err);
    run_ddl(c, d);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = "
                            "t.typnamespace WHERE n.nspname = '%s'",
                         schema),
                 0);
    corm_error_clear(&err);
    fx_free(&f);
    drop_schema(c, schema);
    corm_conn_close(c);
}

TEST(ddl_cycles_indexes_on_server)
{
    corm_conn *c = th_connect();
    char schema[64];
    th_name(schema, sizeof schema, c, "cyc");
    drop_schema(c, schema);
    th_execf(c, "CREATE SCHEMA \"%s\"", schema);
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    corm_model *x = new_model(reg, schema, "x"), *y = new_model(reg, schema, "y");
    corm_model_add_column(x, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    corm_model_add_column(y, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    int xy = corm_model_add_column(x, "y_id", "bigint", CORM_COL_NULL, &err);
    int yx = corm_model_add_column(y, "x_id", "bigint", CORM_COL_NULL, &err);
    int xtags = corm_model_add_column(x, "tags", "text[]", CORM_COL_NULL, &err);
    CHECK_OK(corm_model_add_foreign_key(x, NULL, 1, &xy, y, NULL, 0, 0, &err), &err);
    CHECK_OK(corm_model_add_foreign_key(y, NULL, 1, &yx, x, NULL, CORM_FK_SET_NULL, 0, &err),
             &err);
    CHECK_OK(corm_model_add_index(x, NULL, 1, &xtags, 0, "gin", "tags IS NOT NULL", &err), &err);
    int both[] = {xy, xtags};
    CHECK_OK(corm_model_add_index(x, "x_uniq", 2, both, CORM_INDEX_UNIQUE, NULL, NULL, &err),
             &err);
    for (int i = 0; i < 2; i++) {
        corm_ddl *d = NULL;
        CHECK_OK(corm_ddl_create(&d, reg, 0, NULL, CORM_DDL_IF_NOT_EXISTS, &err), &err);
        run_ddl(c, d);
    }
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND "
                            "connamespace = '%s'::regnamespace",
                         schema),
                 2);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM pg_indexes WHERE schemaname = '%s' AND "
                            "indexdef LIKE '%%USING gin%%WHERE%%'",
                         schema),
                 1);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM pg_indexes WHERE schemaname = '%s' AND "
                            "indexname = 'x_uniq' AND indexdef LIKE 'CREATE UNIQUE%%'",
                         schema),
                 1);
    corm_ddl *d = NULL;
    CHECK_OK(corm_ddl_drop(&d, reg, 0, NULL, 0, &err), &err);
    run_ddl(c, d);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM pg_class WHERE relnamespace = "
                            "'%s'::regnamespace",
                         schema),
                 0);
    corm_registry_free(reg);
    drop_schema(c, schema);
    corm_conn_close(c);
}

TEST(ddl_hostile_names_and_labels_on_server)
{
    corm_conn *c = th_connect();
    char schema[64], victim[96];
    th_name(schema, sizeof schema, c, "evil");
    drop_schema(c, schema);
    th_execf(c, "CREATE SCHEMA \"%s\"", schema);
    snprintf(victim, sizeof victim, "\"%s\".victim", schema);
    th_execf(c, "CREATE TABLE %s (x int)", victim);
    corm_registry *reg = new_reg();
    corm_error err = CORM_ERROR_INIT;
    const char *labels[] = {"it's", "back\\slash", "$corm$", "caf\xc3\xa9", "\xe2\x98\x83",
                            "two\nlines", "\"quoted\"", "x'); DROP TABLE victim; --"};
    int nl = (int)(sizeof labels / sizeof labels[0]);
    CHECK_OK(corm_registry_add_enum(reg, schema, "we\"ird enum", nl, labels, &err), &err);
    const char *table = "x\"; DROP TABLE victim; --";
    corm_model *m = new_model(reg, schema, table);
    int id = corm_model_add_column(m, "id", "bigint", CORM_COL_PRIMARY_KEY, &err);
    int col = corm_model_add_column(m, "a\"b; --", "text", 0, &err);
    int e = corm_model_add_column(m, "e", "we\"ird enum", CORM_COL_NULL, &err);
    CHECK(id >= 0 && col >= 0 && e >= 0);
    corm_value dv = {.kind = CORM_TEXT};
    const char *dtext = "O'Reilly'); DROP TABLE victim; -- \\ $$ $corm$ \xe2\x82\xac";
    dv.v.str.ptr = dtext;
    dv.v.str.len = strlen(dtext);
    CHECK_OK(corm_model_set_default(m, col, &dv, &err), &err);
    CHECK_OK(corm_model_add_index(m, "i\"x", 1, &col, 0, NULL, NULL, &err), &err);
    for (int i = 0; i < 2; i++) {
        corm_ddl *d = NULL;
        CHECK_OK(corm_ddl_create(&d, reg, 0, NULL, i ? CORM_DDL_IF_NOT_EXISTS : 0, &err), &err);
        run_ddl(c, d);
    }
    /* The victim survives; names and labels are exactly as given. */
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", victim), 0);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM pg_class WHERE relname = "
                            "'x\"; DROP TABLE victim; --'"),
                 1);
    corm_result *r = NULL;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT enumlabel FROM pg_enum WHERE enumtypid = '\"%s\".\"we\"\"ird enum\"'::regtype "
             "ORDER BY enumsortorder",
             schema);
    CHECK_OK(corm_conn_exec_sql(c, sql, &r, &err), &err);
    CHECK_EQ_INT(corm_result_nrows(r), nl);
    for (int i = 0; i < nl; i++) {
        const char *s;
        size_t n;
        CHECK_OK(corm_result_get_text(r, i, 0, &s, &n, &err), &err);
        CHECK_MSG(n == strlen(labels[i]) && !memcmp(s, labels[i], n), "label %d: %.*s", i,
                  (int)n, s);
    }
    corm_result_free(r);
    /* The default reads back exactly. */
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\".\"x\"\"; DROP TABLE victim; --\" DEFAULT VALUES "
                              "RETURNING \"a\"\"b; --\"",
             schema);
    CHECK_OK(corm_conn_exec_sql(c, sql, &r, &err), &err);
    const char *s;
    size_t n;
    CHECK_OK(corm_result_get_text(r, 0, 0, &s, &n, &err), &err);
    CHECK_EQ_INT(n, strlen(dtext));
    CHECK_MEM(s, dtext, n);
    corm_result_free(r);
    corm_ddl *d = NULL;
    CHECK_OK(corm_ddl_drop(&d, reg, 0, NULL, 0, &err), &err);
    run_ddl(c, d);
    CHECK_EQ_INT(th_intf(c, "SELECT count(*) FROM %s", victim), 0);
    corm_registry_free(reg);
    drop_schema(c, schema);
    corm_conn_close(c);
}
