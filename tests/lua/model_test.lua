-- Models: the README example as written, instances (create, new/save,
-- changed-field tracking, delete, refresh), get's errors, bad input
-- refused before anything is sent, transactions with models, DDL.
local T = require "testlib"
local cm = require "cormorant"

local db = assert(cm.connect(T.url, { max_size = 4 }))   -- the models' default database
local user_t, post_t = T.table_name("muser"), T.table_name("mpost")

local User = cm.model(user_t, {
  { "id",    "bigint", primary_key = true },        -- identity
  { "name",  "varchar(30)" },
  { "email", "text", null = true },
})
local Post = cm.model(post_t, {
  { "id",      "bigint", primary_key = true },
  { "user_id", "bigint", references = User, on_delete = "cascade" },
  { "title",   "text" },
})

-- Statements that reached the server for our tables, from pg_stat_statements
-- if present; else we count with a statement-level trigger below.
local function drop()
  db:drop_tables(User, Post, { if_exists = true })
end

T.case("README example", function()
  cm.run(function()
    assert(db:create_tables(User, Post))
    local u = assert(User:create { name = "Gemini" })                 -- u.id is filled
    T.eq(type(u.id) == "number" or type(u.id) == "cdata", true, "u.id filled")
    T.eq(u.name, "Gemini", "name")
    T.eq(u.email, nil, "NULL email is absent")
    T.eq(getmetatable(u) ~= nil, true, "instance has the model's metatable")
    local v = User.new { name = "Ada" }; assert(v:save())
    assert(v.id and v.id ~= u.id, "v.id filled by the INSERT ... RETURNING")
    local users = assert(User:select():where(User.name:eq "Gemini"):order_by(User.id):limit(10):all())
    T.eq(#users, 1, "select where")
    T.eq(users[1].id, u.id, "same row")
    local same = assert(User:filter { name = "Gemini", id__gte = 1 })
    T.eq(#same, 1, "filter")
    local none, err = User:get { id = -1 }                            -- nil, err with err.class == "not_found"
    T.eq(none, nil, "get of nothing")
    T.eq(err.class, "not_found", "not_found")
    T.eq(cm.is_error(err), true, "an error object")
    assert(db:transaction(function()                                  -- commits; an error inside rolls back
      assert(Post:create { user_id = u.id, title = "hello" })         -- and returns nil, err; nested = savepoint
    end))
    T.eq(Post:count(), 1, "post committed")
    local rows = assert(db:query("SELECT $1::int8 + 1 AS n", 41))     -- rows[1].n == 42
    T.eq(rows[1].n, 42, "raw query")
  end)
end)

T.case("get: multiple_found, and found", function()
  assert(User:create { name = "Twin" })
  assert(User:create { name = "Twin" })
  local none, err = User:get { name = "Twin" }
  T.eq(none, nil, "two rows")
  T.eq(err.class, "multiple_found", "multiple_found")
  local g = assert(User:get { name = "Gemini" })
  T.eq(g.name, "Gemini", "get one")
end)

T.case("save sends only the changed fields", function()
  -- A trigger records which columns each UPDATE assigned a different value
  -- to... that cannot see an unchanged SET; instead record the UPDATE's
  -- target list through a concurrent change: another connection changes
  -- email after we loaded the row; our save of name only must keep it.
  local u = assert(User:create { name = "Track", email = "old@x" })
  T.eq(next(u:changed()), nil, "nothing changed after loading")
  assert(db:exec(string.format('UPDATE %q SET email = $1 WHERE id = $2', user_t), "new@x", u.id))
  u.name = "Tracked"
  local ch = u:changed()
  T.eq(ch.name, true, "name changed")
  T.eq(ch.email, nil, "email not changed")
  assert(u:save())
  T.eq(u.email, "new@x", "save refreshed the row from RETURNING; email kept the concurrent value")
  local again = assert(User:get { id = u.id })
  T.eq(again.name, "Tracked", "name saved")
  T.eq(again.email, "new@x", "email untouched by the UPDATE")
  -- setting a field to nil writes NULL
  again.email = nil
  assert(again:save())
  T.eq(assert(User:get { id = u.id }).email, nil, "NULL saved")
  -- a save with no change sends nothing: prove it with a closed database
  local d2 = assert(cm.connect(T.url))
  User:using(d2)
  d2:close()
  assert(again:save(), "no change: no statement")
  T.raises(function() again.name = "x"; again:save() end, "closed")
  again.name = "Tracked"
  User:using(nil)
end)

T.case("the UPDATE's SET list holds the changed columns only", function()
  -- A row trigger that raises when email is assigned at all.
  assert(db:exec(string.format([[
    CREATE OR REPLACE FUNCTION %s_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'email was in the SET list'; END $$]], user_t)))
  assert(db:exec(string.format([[CREATE TRIGGER guard BEFORE UPDATE OF email ON %q
    FOR EACH ROW EXECUTE FUNCTION %s_guard()]], user_t, user_t)))
  local u = assert(User:create { name = "Guarded", email = "e@x" })
  u.name = "Guarded2"
  assert(u:save())                           -- UPDATE OF email does not fire: email not in SET
  u.email = "f@x"
  local ok, err = u:save()
  T.eq(ok, nil, "email in SET fires the trigger")
  assert(tostring(err):find("email was in the SET list"), tostring(err))
  assert(db:exec(string.format("DROP TRIGGER guard ON %q", user_t)))
end)

T.case("delete and refresh", function()
  local u = assert(User:create { name = "Gone" })
  local copy = assert(User:get { id = u.id })
  assert(db:exec(string.format('UPDATE %q SET name = $1 WHERE id = $2', user_t), "Back", u.id))
  assert(copy:refresh())
  T.eq(copy.name, "Back", "refresh reloads")
  assert(u:delete())
  local none, err = User:get { id = u.id }
  T.eq(err and err.class, "not_found", "deleted")
  local again, aerr = copy:delete()
  T.eq(again, nil, "second delete")
  T.eq(aerr.class, "not_found", "second delete: not_found")
  -- a deleted instance saves as new again
  assert(u:save())
  assert(User:get { id = u.id })
end)

T.case("bad input is refused before anything is sent", function()
  -- With a closed database, anything sent would raise "closed database".
  local d2 = assert(cm.connect(T.url))
  User:using(d2)
  d2:close()
  local function refused(cls, fn)
    local ok, r, err = pcall(fn)
    assert(ok, "raised instead of returning nil, err: " .. tostring(r))
    T.eq(r, nil, "refused")
    T.eq(err.class, cls, "class of " .. tostring(err))
  end
  refused("data", function() return User:create { name = 5 } end)                 -- wrong type
  refused("data", function() return User:create { name = true } end)
  refused("data", function() return User:create { name = string.rep("x", 31) } end) -- varchar(30)
  refused("programming", function() return User:create { name = "x", nick = "y" } end)  -- unknown
  refused("data", function() return User:create { email = "x" } end)              -- name missing
  refused("data", function() return User:create { name = cm.null } end)          -- NULL for NOT NULL
  refused("data", function() return User:filter { id = "abc" } end)
  refused("data", function() return User:filter { id = {} } end)
  refused("programming", function() return User:filter { nick = 1 } end)
  refused("programming", function() return User:filter { id__near = 1 } end)
  refused("data", function() return User:select():update { name = false } end)
  refused("programming", function() return User.new { nick = 1 } end)
  local bad = User.new { name = 1.5 }
  refused("data", function() return bad:save() end)
  User:using(nil)
  -- misuse raises
  T.raises(function() User:create("x") end, "table expected")
  T.raises(function() User:filter(nil) end, "table expected")
  T.raises(function() User:select():where("x") end, "expression expected")
  T.raises(function() User:select():limit(-1) end, "non%-negative")
  T.raises(function() User.name:eq(function() end) end, "cannot send")
  T.raises(function() User.save() end)
  T.raises(function() cm.model(user_t .. "x", { { "id" } }) end, "needs a name and a type")
  T.raises(function() cm.model(user_t .. "y", { { "id", "bigint" }, { "id", "text" } }) end, "id")
  T.raises(function() cm.model(user_t .. "z", { { "id", "no_such_type" } }) end, "no_such_type")
end)

T.case("transactions with models: rollback on error, savepoints", function()
  local before = assert(Post:count())
  local u = assert(User:create { name = "Tx" })
  local ok, err = db:transaction(function()
    assert(Post:create { user_id = u.id, title = "rolled back" })
    error("boom")
  end)
  T.eq(ok, nil, "raised inside: rolled back")
  assert(tostring(err):find("boom"))
  T.eq(assert(Post:count()), before, "nothing committed")
  -- a failing statement inside rolls back too, with its error
  ok, err = db:transaction(function()
    assert(Post:create { user_id = u.id, title = "a" })
    local p, perr = Post:create { user_id = -42, title = "no such user" }   -- FK violation
    assert(not p)
    return nil, perr
  end)
  T.eq(ok, nil, "failed statement")
  T.eq(err.class, "integrity", "foreign key violation class")
  T.eq(assert(Post:count()), before, "nothing committed")
  -- nested: the savepoint fails alone
  assert(db:transaction(function()
    assert(Post:create { user_id = u.id, title = "kept" })
    local sok = db:transaction(function()
      assert(Post:create { user_id = u.id, title = "dropped" })
      error("inner")
    end)
    assert(not sok)
  end))
  T.eq(assert(Post:count()), before + 1, "outer committed, savepoint rolled back")
  T.eq(#assert(Post:filter { title = "dropped" }), 0, "savepoint's row gone")
  -- on_delete cascade
  assert(u:delete())
  T.eq(#assert(Post:filter { user_id = u.id }), 0, "posts cascaded")
end)

T.case("blocking outside cm.run, DDL errors", function()
  local u = assert(User:create { name = "Blocking" })
  T.eq(assert(User:get { id = u.id }).name, "Blocking", "blocking calls work")
  local ok, err = db:create_tables(User)      -- exists already
  T.eq(ok, nil, "create twice")
  T.eq(err.class, "programming", "duplicate table: " .. tostring(err))
  assert(db:create_tables(User, Post, { if_not_exists = true }))
end)

T.case("uuid and composite keys, schema, model options", function()
  local schema = T.table_name("msch")
  assert(db:exec(string.format("CREATE SCHEMA %q", schema)))
  local Doc = cm.model("doc", {
    { "id", "uuid", primary_key = true },                  -- DEFAULT gen_random_uuid()
    { "slug", "text", max_length = 8 },
    { "rank", "integer", default = 0 },
  }, { schema = schema, unique = { { "slug" } }, checks = { "rank >= 0" },
       indexes = { { "rank", "slug" } } })
  local Tag = cm.model("tag", {
    { "doc_id", "uuid", references = Doc, on_delete = "cascade", on_update = "cascade" },
    { "name", "text" },
    { "weight", "real", null = true },
  }, { schema = schema, primary_key = { "doc_id", "name" } })
  assert(db:create_tables(Doc, Tag))
  local d = assert(Doc:create { slug = "intro" })
  assert(d.id:find("^%x+%-%x+%-%x+%-%x+%-%x+$"), "uuid filled by the server: " .. tostring(d.id))
  local none, err = Doc:create { slug = "too-long-slug" }
  T.eq(err.class, "data", "max_length checked before sending")
  none, err = Doc:create { slug = "neg", rank = -1 }
  T.eq(err.class, "integrity", "check constraint")
  local t = assert(Tag:create { doc_id = d.id, name = "a", weight = 0.5 })
  assert(Tag:create { doc_id = d.id, name = "b" })
  t.weight = 2
  assert(t:save())                                          -- WHERE on both key columns
  T.eq(assert(Tag:get { doc_id = d.id, name = "a" }).weight, 2, "composite key save")
  T.eq(assert(Tag:get { doc_id = d.id, name = "b" }).weight, nil, "other row untouched")
  t.name = "renamed"                                        -- a key column changes
  assert(t:save())
  T.eq(#assert(Tag:filter { name = "a" }), 0, "old key gone")
  T.eq(#assert(Tag:filter { name = "renamed" }), 1, "new key")
  assert(d:delete())
  T.eq(assert(Tag:count()), 0, "cascade across the schema")
  assert(db:drop_tables(Doc, Tag))
  assert(db:exec(string.format("DROP SCHEMA %q", schema)))
end)

drop()
print("done")
