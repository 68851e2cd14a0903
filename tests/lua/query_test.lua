-- The query surface on models: every column operator and combinator,
-- every clause (where, order_by, limit, offset, distinct, group_by,
-- having, join, returning, on_conflict), count/exists/aggregates,
-- Django lookups, update/delete counts, upsert, first/get/dicts/iter.
local T = require "testlib"
local cm = require "cormorant"

local db = assert(cm.connect(T.url, { max_size = 4 }))

local Author = cm.model(T.table_name("qauthor"), {
  { "id", "bigint", primary_key = true },
  { "name", "text" },
  { "email", "text", null = true, unique = true },
  { "age", "integer", null = true, index = true },
})
local Book = cm.model(T.table_name("qbook"), {
  { "id", "bigint", primary_key = true },
  { "author_id", "bigint", references = Author, on_delete = "cascade" },
  { "title", "text" },
  { "pages", "integer", default = 100 },
}, { unique = { { "author_id", "title" } }, checks = { "pages > 0" },
     indexes = { { "title", "pages" } } })

assert(db:create_tables(Author, Book))

local names = { "Ann", "bob", "Cid", "dora", "Eve", "frank" }
local authors = {}
for i, n in ipairs(names) do
  authors[i] = assert(Author:create { name = n, email = n:lower() .. "@x.org",
    age = (i <= 5) and (20 + i * 5) or nil })
end
for i, a in ipairs(authors) do
  for j = 1, i do
    assert(Book:create { author_id = a.id, title = "Book " .. j, pages = 10 * j })
  end
end

local function ids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.name or r.title end
  return table.concat(out, ",")
end

local function q(...) return assert(Author:select():where(...):order_by(Author.id):all()) end

T.case("column operators", function()
  T.eq(ids(q(Author.name:eq "Ann")), "Ann", "eq")
  T.eq(#q(Author.name:ne "Ann"), 5, "ne")
  T.eq(ids(q(Author.age:lt(30))), "Ann", "lt")
  T.eq(ids(q(Author.age:le(30))), "Ann,bob", "le")
  T.eq(ids(q(Author.age:gt(40))), "Eve", "gt")
  T.eq(ids(q(Author.age:ge(40))), "dora,Eve", "ge")
  T.eq(ids(q(Author.name:in_ { "Ann", "Eve", "zed" })), "Ann,Eve", "in_")
  T.eq(#q(Author.name:in_ {}), 0, "in_ of nothing")
  T.eq(ids(q(Author.name:not_in { "Ann", "bob", "Cid", "dora" })), "Eve,frank", "not_in")
  T.eq(ids(q(Author.name:like "%o%")), "bob,dora", "like")
  T.eq(ids(q(Author.name:ilike "e%")), "Eve", "ilike")
  T.eq(ids(q(Author.age:between(30, 40))), "bob,Cid,dora", "between")
  T.eq(ids(q(Author.age:is_null())), "frank", "is_null")
  T.eq(#q(Author.age:is_not_null()), 5, "is_not_null")
  T.eq(ids(q(Author.name:contains "an")), "frank", "contains")
  T.eq(ids(q(Author.name:icontains "AN")), "Ann,frank", "icontains")
  T.eq(ids(q(Author.name:startswith "d")), "dora", "startswith")
  T.eq(ids(q(Author.name:contains "%")), "", "contains escapes %")
  T.eq(ids(q(Author.email:eq(nil))), "", "eq(nil) is IS NULL")
  T.eq(ids(q(Author.age:eq(Author.age))), "Ann,bob,Cid,dora,Eve", "column = column")
end)

T.case("and/or/not combinators", function()
  T.eq(ids(q(Author.age:gt(25):and_(Author.age:lt(40)))), "bob,Cid", "and_")
  T.eq(ids(q(cm.or_(Author.name:eq "Ann", Author.name:eq "Eve"))), "Ann,Eve", "cm.or_")
  T.eq(ids(q(Author.name:eq "Ann":or_(Author.age:is_null()))), "Ann,frank", "or_")
  T.eq(#q(cm.not_(Author.name:eq "Ann")), 5, "cm.not_")
  T.eq(ids(q(Author.age:ge(30), Author.age:le(35))), "bob,Cid", "where(a, b) ANDs")
  T.eq(ids(q(cm.and_(Author.age:ge(30), Author.age:le(35), Author.name:ne "bob"))), "Cid", "and_ of 3")
end)

T.case("functions, casts, arithmetic, raw fragments, values", function()
  T.eq(ids(q(cm.func("lower", Author.name):eq "ann")), "Ann", "cm.func")
  T.eq(ids(q(Author.age:cast("text"):eq "25")), "Ann", "cast")
  T.eq(ids(q(Author.age:add(5):eq(30))), "Ann", "add")
  T.eq(ids(q(Author.age:mul(2):ge(90))), "Eve", "mul")
  T.eq(ids(q(Author.name:concat("!"):eq "bob!")), "bob", "concat")
  T.eq(ids(q(cm.raw("length($1) = 3", "abc"):and_(Author.name:eq "Cid"))), "Cid", "raw with a bound value")
  T.eq(ids(q(Author.age:eq(cm.value(45)))), "Eve", "cm.value")
  local rows = assert(Author:select(Author.name, { cm.func("upper", Author.name), "shout" })
    :where(Author.id:eq(authors[1].id)):dicts())
  T.eq(rows[1].shout, "ANN", "computed column under its alias")
  T.eq(rows[1].name, "Ann", "and the field")
end)

T.case("order_by, limit, offset, distinct, first", function()
  local rows = assert(Author:select():order_by(Author.name:desc()):limit(2):all())
  T.eq(ids(rows), "frank,dora", "desc + limit")
  rows = assert(Author:select():order_by(Author.age:desc():nulls_last(), Author.id):offset(4):all())
  T.eq(ids(rows), "Ann,frank", "nulls last + offset")
  rows = assert(Author:select():order_by(Author.age:asc():nulls_first()):limit(1):all())
  T.eq(ids(rows), "frank", "nulls first")
  rows = assert(Book:select(Book.pages):distinct():order_by(Book.pages):all())
  T.eq(#rows, 6, "distinct pages")
  T.eq(rows[1].title, nil, "only the selected column")
  T.eq(rows[1].pages, 10, "selected column decoded by field")
  rows = assert(Book:select():distinct(Book.author_id):order_by(Book.author_id, Book.pages:desc()):all())
  T.eq(#rows, 6, "distinct on")
  T.eq(rows[6].pages, 60, "distinct on keeps the first of each")
  local first = assert(Author:select():order_by(Author.id):first())
  T.eq(first.name, "Ann", "first")
  T.eq(Author:select():where(Author.id:lt(0)):first(), nil, "first of none is nil")
end)

T.case("count, exists, aggregates, group_by, having", function()
  T.eq(assert(Author:count()), 6, "Model:count")
  T.eq(assert(Author:select():where(Author.age:gt(30)):count()), 3, "count where")
  T.eq(assert(Author:select():count(Author.age)), 5, "count(col) skips NULL")
  T.eq(assert(Author:select():where(Author.age:gt(30)):order_by(Author.id):limit(1):count()), 3,
    "count ignores ordering and limit")
  T.eq(assert(Author:select():where(Author.name:eq "Ann"):exists()), true, "exists")
  T.eq(Author:select():where(Author.name:eq "nobody"):exists(), false, "not exists")
  T.eq(assert(Author:select():sum(Author.age)), 175, "sum")
  T.eq(assert(Author:select():min(Author.age)), 25, "min")
  T.eq(assert(Author:select():max(Author.age)), 45, "max")
  T.eq(assert(Author:select():avg(Author.age)), "35.0000000000000000", "avg of integers is numeric text")
  local rows = assert(Book:select(Book.author_id, { cm.count(), "n" }, { cm.sum(Book.pages), "total" })
    :group_by(Book.author_id):having(cm.count():gt(4)):order_by(Book.author_id):dicts())
  T.eq(#rows, 2, "having count > 4")
  T.eq(rows[1].n, 5, "aggregate under its alias")
  T.eq(rows[2].total, 210, "sum under its alias")
  T.eq(getmetatable(rows[1]), nil, "dicts are plain tables")
end)

T.case("join", function()
  local rows = assert(Book:select():join(Author):where(Author.name:eq "bob"):order_by(Book.id):all())
  T.eq(ids(rows), "Book 1,Book 2", "join on the foreign key")
  rows = assert(Author:select():left_join(Book, Book.author_id:eq(Author.id)):where(Book.id:is_null()):all())
  T.eq(#rows, 0, "left join with explicit on")
  rows = assert(Book:select(Book.title, { Author.name, "author" }):join(Author)
    :where(Book.pages:eq(60)):dicts())
  T.eq(rows[1].author, "frank", "column of the joined model")
  -- a subquery in in_
  local young = assert(Author:select(Author.id):where(Author.age:lt(31)):build())
  rows = assert(Book:select():where(Book.author_id:in_(young)):all())
  T.eq(#rows, 3, "in_ subquery")
  rows = assert(Author:select():where(cm.exists(Book:select():where(Book.pages:gt(50))
    :where(Book.author_id:eq(Author.id))))):all()
  T.eq(ids(rows), "frank", "exists subquery")
end)

T.case("lookups", function()
  local function f(t) return ids(assert(Author:select():filter(t):order_by(Author.id):all())) end
  T.eq(f { name = "Ann" }, "Ann", "exact")
  T.eq(f { age__gt = 40 }, "Eve", "__gt")
  T.eq(f { age__gte = 40 }, "dora,Eve", "__gte")
  T.eq(f { age__lt = 30 }, "Ann", "__lt")
  T.eq(f { age__lte = 30 }, "Ann,bob", "__lte")
  T.eq(#assert(Author:filter { name__ne = "Ann" }), 5, "__ne")
  T.eq(f { name__in = { "bob", "Eve" } }, "bob,Eve", "__in")
  T.eq(f { name__contains = "o" }, "bob,dora", "__contains")
  T.eq(f { name__icontains = "E" }, "Eve", "__icontains")
  T.eq(f { name__startswith = "f" }, "frank", "__startswith")
  T.eq(f { age__isnull = true }, "frank", "__isnull true")
  T.eq(#assert(Author:filter { age__isnull = false }), 5, "__isnull false")
  T.eq(f { age__gte = 30, age__lte = 35 }, "bob,Cid", "two lookups on one field")
  T.eq(f { email = cm.null }, "", "NULL equality is IS NULL")
end)

T.case("update and delete return counts", function()
  T.eq(assert(Book:select():where(Book.pages:gt(40)):update { pages = 41 }), 3, "update count")
  T.eq(assert(Book:select():where(Book.pages:eq(41)):count()), 3, "updated")
  T.eq(assert(Book:select():where(Book.pages:eq(999)):update { pages = 1 }), 0, "update none")
  T.eq(assert(Book:select():where(Book.pages:eq(41)):update { pages = Book.pages:add(1) }), 3,
    "update with an expression")
  T.eq(assert(Book:select():where(Book.pages:eq(42)):delete()), 3, "delete count")
  T.eq(assert(Book:count()), 18, "deleted")
  local changed = assert(Book:select():where(Book.pages:eq(10)):returning():update { pages = 11 })
  T.eq(#changed, 6, "update returning: the rows")
  T.eq(changed[1].pages, 11, "with their new values")
  assert(getmetatable(changed[1]), "as instances")
  local gone = assert(Book:select():where(Book.pages:eq(11)):returning():delete())
  T.eq(#gone, 6, "delete returning")
  T.eq(assert(Book:count()), 12, "deleted")
end)

T.case("insert, on_conflict, upsert, bulk_create, returning", function()
  local a = authors[1]
  local rows = assert(Book:bulk_create { { author_id = a.id, title = "X" }, { author_id = a.id, title = "Y" } })
  T.eq(#rows, 2, "bulk_create returns instances")
  T.eq(rows[2].pages, 100, "default filled")
  -- duplicate (author_id, title): DO NOTHING
  T.eq(assert(Book:insert { author_id = a.id, title = "X" }:on_conflict({ "author_id", "title" }, "nothing"):exec()),
    0, "on conflict do nothing")
  local none, err = Book:create { author_id = a.id, title = "X" }
  T.eq(err.class, "integrity", "unique violation")
  local up = assert(Book:upsert({ author_id = a.id, title = "X", pages = 5 }, { "author_id", "title" }))
  T.eq(up.pages, 5, "upsert updated")
  T.eq(up.id, rows[1].id, "same row")
  local up2 = assert(Author:upsert({ name = "Zed", email = "zed@x.org" }, { "email" }))
  T.eq(up2.name, "Zed", "upsert inserted")
  local check, cerr = Book:create { author_id = a.id, title = "Z", pages = 0 }
  T.eq(cerr.class, "integrity", "check constraint")
end)

T.case("iter streams in batches", function()
  local n, seen = 0, {}
  for b in Book:select():iter(4) do
    n = n + 1
    assert(not seen[b.id], "no row twice")
    seen[b.id] = true
    assert(getmetatable(b), "instances")
  end
  T.eq(n, assert(Book:count()), "keyset iteration sees every row")
  local titles = {}
  for b in Book:select():where(Book.author_id:eq(authors[6].id)):order_by(Book.pages:desc()):limit(3):iter(2) do
    titles[#titles + 1] = b.pages
  end
  T.eq(#titles, 3, "offset iteration honours limit")
  T.eq(titles[1] >= titles[2] and titles[2] >= titles[3], true, "and ordering")
  local count = 0
  for _ in Author:select():where(Author.id:lt(0)):iter() do count = count + 1 end
  T.eq(count, 0, "empty iteration")
end)

T.case("built queries are cached by shape; sql text", function()
  local s1 = assert(Author:select():where(Author.name:eq "a"):limit(3):sql())
  local s2 = assert(Author:select():where(Author.name:eq "b"):limit(9):sql())
  T.eq(s1, s2, "same shape, same SQL")
  assert(not s1:find("'a'"), "values are bound, never in the SQL")
  -- errors found at compile time come back as nil, err
  local rows, err = Author:select():where(Book.pages:gt(1)):all()
  T.eq(rows, nil, "column of a model not in the query")
  T.eq(err.class, "programming", "class")
end)

assert(db:drop_tables(Author, Book))
print("done")
