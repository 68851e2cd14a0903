-- Every column type through a model: create, read back with get, filter on
-- it, update it with save, and NULL; defaults (constant and cm.sql), enums,
-- arrays, json, exact int8 and numeric.
local T = require "testlib"
local cm = require "cormorant"

local db = assert(cm.connect(T.url, { max_size = 2 }))
local has_cjson = pcall(require, "cjson")
local mood = cm.enum(T.table_name("mood"), { "happy", "sad", "ok" })

local Thing = cm.model(T.table_name("thing"), {
  { "id", "bigint", primary_key = true },
  { "i2", "smallint", null = true },
  { "i4", "integer", null = true },
  { "i8", "bigint", null = true },
  { "f4", "real", null = true },
  { "f8", "double precision", null = true },
  { "num", "numeric(12,2)", null = true },
  { "bool", "boolean", null = true },
  { "txt", "text", null = true },
  { "vc", "varchar(10)", null = true },
  { "ch", "char(3)", null = true },
  { "bin", "bytea", null = true },
  { "d", "date", null = true },
  { "t", "time", null = true },
  { "ttz", "timetz", null = true },
  { "ts", "timestamp", null = true },
  { "tstz", "timestamptz", null = true },
  { "iv", "interval", null = true },
  { "u", "uuid", null = true },
  { "js", "json", null = true },
  { "jsb", "jsonb", null = true },
  { "tags", "text[]", null = true },
  { "nums", "bigint[]", null = true },
  { "grid", "integer[][]", null = true },
  { "m", mood, null = true },
  { "moods", mood .. "[]", null = true },
  { "created", "timestamptz", default = cm.sql "now()" },
  { "status", "text", default = "new" },
  { "score", "integer", default = 7 },
})

assert(db:create_tables(Thing))

-- value in, value out (as_out: the form it comes back in, when it differs)
local cases = {
  { "i2", -32768 }, { "i4", 2147483647 }, { "i8", 42 },
  { "f4", 1.5 }, { "f8", -0.125 },
  { "num", "12345.67" }, { "num", 3.5, "3.50" },
  { "bool", true }, { "bool", false },
  { "txt", "héllo, 'quoted' \"world\"" }, { "txt", "" },
  { "vc", "abcdéfghij" }, { "ch", "ab", "ab " },
  { "bin", "\0\1\2\255 bytes" },
  { "d", "2024-05-06" }, { "d", "infinity" },
  { "t", "13:45:07.25" }, { "ttz", "13:45:00+02" },
  { "ts", "2024-05-06 13:45:00.123456" },
  { "tstz", "2024-05-06 13:45:00+02", "2024-05-06 11:45:00+00" },
  { "iv", "1 year 2 mons 3 days 04:05:06.5", "P1Y2M3DT4H5M6.5S" },
  { "u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
  { "tags", { "a", "b c", "" } }, { "tags", {} },
  { "nums", { 1, -2, 3 } },
  { "grid", { { 1, 2 }, { 3, 4 } } },
  { "m", "sad" },
  { "moods", { "happy", "ok" } }, { "moods", { "sad", cm.null } },
}
if has_cjson then
  cases[#cases + 1] = { "jsb", { a = 1, b = { true, "x" } } }
  cases[#cases + 1] = { "js", { k = "v" } }
else
  -- Written as JSON text (encoding a table needs lua-cjson); always read
  -- back as tables (the binding's own JSON reader).
  cases[#cases + 1] = { "jsb", '{"a": 1}', { a = 1 } }
  cases[#cases + 1] = { "js", '{"k":"v"}', { k = "v" } }
end

local function same(a, b)
  if type(a) ~= type(b) then
    return false
  end
  if type(a) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function show(v)
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x) end
  return "{" .. table.concat(parts, ",") .. "}"
end

T.case("every type through create, get, filter and save", function()
  for _, c in ipairs(cases) do
    local field, v, out = c[1], c[2], c[3]
    if out == nil then out = v end
    local t = assert(Thing:create { [field] = v })
    local got = assert(Thing:get { id = t.id })
    local value = got[field]
    if not same(value, out) then
      error(string.format("%s: sent %s, got %s", field, show(v), show(value)))
    end
    T.eq(same(t[field], value), true, field .. ": create's RETURNING gives the same value")
    -- filter on it (scalars)
    if type(v) ~= "table" and field ~= "js" then
      local rows = assert(Thing:filter { [field] = v, id = t.id })
      T.eq(#rows, 1, "filter on " .. field)
    end
    -- NULL through save
    got[field] = nil
    assert(got:save())
    local again = assert(Thing:get { id = t.id })
    T.eq(again[field], nil, field .. " set to NULL")
    -- and back through save
    again[field] = v
    assert(again:save())
    T.eq(same(assert(Thing:get { id = t.id })[field], out), true, field .. " saved back")
  end
end)

T.case("defaults: constant and cm.sql", function()
  local t = assert(Thing:create {})
  T.eq(t.status, "new", "constant text default")
  T.eq(t.score, 7, "constant integer default")
  assert(type(t.created) == "string" and t.created:find("^%d%d%d%d%-%d%d%-%d%d "), "now() default")
end)

T.case("exact int8 and numeric", function()
  local big = "9007199254740993"   -- 2^53 + 1: a double would round it
  local t
  if cm.int64 then
    t = assert(Thing:create { i8 = cm.int64(big) })
    T.eq(type(t.i8), "cdata", "LuaJIT: int64 cdata beyond 2^53")
    T.eq(tostring(t.i8), big .. "LL", "exact")
    T.eq(#assert(Thing:filter { i8 = cm.int64(big) }), 1, "filter with cdata")
  else
    t = assert(Thing:create { i8 = math.tointeger(big) })
    T.eq(t.i8, 9007199254740993, "Lua 5.4 integer")
  end
  t = assert(Thing:create { i8 = big })   -- a decimal string works on both
  T.eq(tostring(t.i8):gsub("LL$", ""), big, "from a string")
  local n = assert(Thing:create { num = "0.10" })
  T.eq(n.num, "0.10", "numeric stays exact text")
  T.eq(assert(Thing:select():where(Thing.num:eq "0.1"):count()) >= 1, true, "numeric compare")
end)

T.case("enum and array values are checked before sending", function()
  local none, err = Thing:create { m = "angry" }
  T.eq(none, nil, "not a label")
  T.eq(err.class, "data", "class")
  none, err = Thing:create { tags = "not a list" }
  T.eq(err.class, "data", "array wants a table")
  none, err = Thing:create { nums = { 1, "x" } }
  T.eq(err.class, "data", "array items checked")
  none, err = Thing:create { bool = "yes" }
  T.eq(err.class, "data", "boolean wants a boolean")
  none, err = Thing:create { f8 = "1.5" }
  T.eq(err.class, "data", "float wants a number")
end)

T.case("arrays with NULL items, lookups on arrays", function()
  local t = assert(Thing:create { tags = { "a", cm.null, "c" } })
  local got = assert(Thing:get { id = t.id })
  T.eq(got.tags[2], cm.null, "NULL item")
  T.eq(got.tags[3], "c", "after the NULL")
end)

assert(db:drop_tables(Thing))
print("done")
