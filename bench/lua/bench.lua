-- The workloads for one Lua system, on whichever runtime runs this script
-- (lua5.4 or luajit). Started by bench/run.py:
--
--   lua5.4 bench/lua/bench.lua cormorant|luasql --url URL --sizes JSON [--workloads W1,...]
--
-- Prints one JSON line per measurement. Exit status 3: the system's
-- library is not installed. The clock is cqueues.monotime() (lua-cqueues,
-- which scripts/install-deps.sh installs); the collector runs between
-- runs and is stopped while the clock runs.

local SQL = {
  W1 = "SELECT id, name, email, age, score, active, created_at, balance, uuid, tags FROM bench_rows",
  W2 = "SELECT id, name, email, age, score, active, created_at, balance, uuid, tags FROM bench_rows WHERE id = $1",
  W4_USERS = "SELECT id, name, email, created_at FROM users ORDER BY id LIMIT $1",
  W4_POSTS = "SELECT id, user_id, title, body, created_at FROM posts WHERE user_id = ANY($1::int8[])",
}
local COLUMNS = { "id", "name", "email", "age", "score", "active", "created_at", "balance", "uuid", "tags" }
local W3_BATCH = 1000      -- rows a statement for LuaSQL's literal INSERTs
local W3_PARAM_BATCH = 500 -- for Cormorant's bound INSERTs: 5,000 parameters, under
                           -- LuaJIT's limit on unpack()ed arguments

local RUNTIME = jit and "luajit" or "lua5.4"

-- ---- arguments ----
local system = arg[1]
local opts = { workloads = "W1,W2,W3,W4,W5" }
do
  local i = 2
  while arg[i] do
    opts[arg[i]:gsub("^%-%-", "")] = arg[i + 1]
    i = i + 2
  end
end
local function size(key)
  local v = opts.sizes:match('"' .. key .. '"%s*:%s*(%d+)')
  return assert(tonumber(v), "--sizes lacks " .. key)
end
local S = {
  rows = size("rows"), users = size("users"), lookups = size("lookups"),
  w4_users = size("w4_users"), runs = size("runs"), warmup = size("warmup"),
}
local function wants(w) return opts.workloads:find(w, 1, true) ~= nil end

local ok, cqueues = pcall(require, "cqueues")
if not ok then
  io.stderr:write("lua-cqueues is needed for the clock (cqueues.monotime)\n")
  os.exit(3)
end
local now = cqueues.monotime

-- ---- output ----
local function jstr(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function emit(rec)
  local parts = {}
  for k, v in pairs(rec) do
    local val
    if type(v) == "table" then
      local xs = {}
      for i, x in ipairs(v) do xs[i] = string.format("%.9f", x) end
      val = "[" .. table.concat(xs, ", ") .. "]"
    elseif type(v) == "number" then
      val = string.format("%d", v)
    else
      val = jstr(v)
    end
    parts[#parts + 1] = jstr(k) .. ": " .. val
  end
  io.write("{" .. table.concat(parts, ", ") .. "}\n")
  io.flush()
end

-- ---- the timing loop ----
local function timed(fn, check, before)
  local times = {}
  for i = 1, S.warmup + S.runs do
    if before then before() end
    collectgarbage("collect")
    collectgarbage("collect")
    collectgarbage("stop")
    local t0 = now()
    local result = fn()
    local dt = now() - t0
    collectgarbage("restart")
    check(result)
    result = nil
    if i > S.warmup then times[#times + 1] = dt end
  end
  collectgarbage("collect")
  return times
end

local function expect(cond, msg)
  if not cond then error(msg, 2) end
end

local function lookup_ids()
  local ids = {}
  for k = 0, S.lookups - 1 do ids[k + 1] = (k * 7919) % S.rows + 1 end
  return ids
end

local function is_int(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

-- Which of W1's columns are not the native Lua value (integer, number,
-- string, boolean, jsonb as a table)?
local function type_note(row)
  local bad = {}
  local want = { id = "int", name = "string", email = "string", age = "int", score = "number",
                 active = "boolean", created_at = "string", balance = "string",
                 uuid = "string", tags = "table" }
  for _, c in ipairs(COLUMNS) do
    local v, w = row[c], want[c]
    local good
    if w == "int" then good = is_int(v) else good = type(v) == w end
    if not good then bad[#bad + 1] = c .. " as " .. type(v) end
  end
  if #bad == 0 then return "" end
  return "not converted: " .. table.concat(bad, ", ")
end

-- ---- systems ----
local systems = {}

systems.cormorant = function()
  local ok_cm, cm = pcall(require, "cormorant")
  if not ok_cm then
    io.stderr:write("cormorant not found: " .. tostring(cm) .. "\n")
    os.exit(3)
  end
  local db = assert(cm.connect(opts.url, { max_size = 1 }))
  local s = { name = "Cormorant", version = cm._VERSION or "", db = db }
  s.w1_variant = "db:query → row tables"
  s.w1_note = "timestamptz and numeric as strings (the binding's documented forms)"
  function s.w1() return assert(db:query(SQL.W1)) end
  s.w2_variant = "db:query, one connection"
  function s.w2(ids)
    local found = 0
    for i = 1, #ids do
      local rows = assert(db:query(SQL.W2, ids[i]))
      if rows[1] then found = found + 1 end
    end
    return found
  end
  s.w2_tasks = { 8, 64 }
  function s.w2_concurrent(ids, n)
    local found = 0
    cm.run(function()
      for t = 1, n do
        cm.spawn(function()
          for k = t, #ids, n do
            local rows = assert(db:query(SQL.W2, ids[k]))
            if rows[1] then found = found + 1 end
          end
        end)
      end
    end)
    return found
  end
  s.w2_concurrent_variant = function(n) return n .. " tasks (cm.spawn), one connection" end
  s.w3_variant = "multi-row INSERT, 500 rows a statement, one transaction"
  s.w3_note = "no COPY or bulk insert in Cormorant yet; tags sent as JSON text"
  local sql_cache = {}
  local function insert_sql(n)
    if sql_cache[n] then return sql_cache[n] end
    local ph, k = {}, 1
    for r = 1, n do
      local cols = {}
      for c = 1, #COLUMNS do cols[c] = "$" .. k; k = k + 1 end
      ph[r] = "(" .. table.concat(cols, ", ") .. ")"
    end
    sql_cache[n] = "INSERT INTO bench_insert (" .. table.concat(COLUMNS, ", ") .. ") VALUES "
      .. table.concat(ph, ", ")
    return sql_cache[n]
  end
  local _, cjson = pcall(require, "cjson")
  function s.w3_objects(rows)
    -- host objects: the row tables of W1, with tags back as JSON text
    local batches = {}
    for k = 1, #rows, W3_PARAM_BATCH do
      local args, n = {}, 0
      local last = math.min(k + W3_PARAM_BATCH - 1, #rows)
      for r = k, last do
        local row = rows[r]
        for _, c in ipairs(COLUMNS) do
          local v = row[c]
          if c == "tags" and type(v) == "table" then v = cjson.encode(v) end
          n = n + 1
          args[n] = v
        end
      end
      batches[#batches + 1] = { insert_sql(last - k + 1), args, n }
    end
    return batches
  end
  local unpack = table.unpack or unpack
  function s.w3(batches)
    assert(db:transaction(function(tx)
      for _, b in ipairs(batches) do assert(tx:exec(b[1], unpack(b[2], 1, b[3]))) end
    end))
  end
  function s.exec(sql) return assert(db:exec(sql)) end
  function s.count(sql)
    local rows = assert(db:query(sql))
    for _, v in pairs(rows[1]) do return v end
  end
  s.w4_variant = "two queries + tables grouped by hand"
  s.w4_note = "int8[] parameter sent as its text form"
  function s.w4(n)
    local users = assert(db:query(SQL.W4_USERS, n))
    local ids, by_id = {}, {}
    for i, u in ipairs(users) do
      ids[i] = tostring(u.id)
      u.posts = {}
      by_id[u.id] = u
    end
    local posts = assert(db:query(SQL.W4_POSTS, "{" .. table.concat(ids, ",") .. "}"))
    for _, p in ipairs(posts) do
      local u = by_id[p.user_id]
      u.posts[#u.posts + 1] = p
    end
    return users
  end
  return s
end

systems.luasql = function()
  local ok_l, driver = pcall(require, "luasql.postgres")
  if not ok_l then
    io.stderr:write("luasql.postgres not found (Debian: lua-sql-postgres)\n")
    os.exit(3)
  end
  local ok_j, cjson = pcall(require, "cjson")
  if not ok_j then
    io.stderr:write("lua-cjson is needed to decode jsonb for LuaSQL\n")
    os.exit(3)
  end
  local env = assert(driver.postgres())
  -- LuaSQL takes a libpq conninfo string as its first argument.
  local con = assert(env:connect(opts.url))
  local s = { name = "LuaSQL", version = driver._VERSION or "" }
  local decode = cjson.decode
  local tonumber, floor = tonumber, math.floor
  local toint = math.tointeger or function(x) return x end
  -- full decode: numbers, booleans and JSON from LuaSQL's strings
  local function conv(row)
    row.id = toint(tonumber(row.id))
    row.age = toint(tonumber(row.age))
    row.score = tonumber(row.score)
    row.active = row.active == "t"
    row.tags = decode(row.tags)
    return row
  end
  local function fetch_all(sql, convert)
    local cur = assert(con:execute(sql))
    local rows, n = {}, 0
    local row = cur:fetch({}, "a")
    while row do
      n = n + 1
      rows[n] = convert(row)
      row = cur:fetch({}, "a")
    end
    cur:close()
    return rows
  end
  s.w1_variant = "cursor:fetch({}, \"a\") + tonumber/boolean/cjson"
  s.w1_note = "text protocol; timestamptz and numeric stay strings"
  function s.w1() return fetch_all(SQL.W1, conv) end
  s.w2_variant = "con:execute, one connection"
  s.w2_note = "no parameters in LuaSQL: the id is formatted into the SQL (unprepared)"
  local W2_PREFIX = SQL.W2:gsub("%$1$", "")
  function s.w2(ids)
    local found = 0
    for i = 1, #ids do
      local cur = assert(con:execute(W2_PREFIX .. string.format("%d", ids[i])))
      local row = cur:fetch({}, "a")
      cur:close()
      if row then
        conv(row)
        found = found + 1
      end
    end
    return found
  end
  s.w2_tasks = {}
  s.w3_variant = "multi-row INSERT of escaped literals, 1,000 rows a statement, one transaction"
  s.w3_note = "no parameters or COPY in LuaSQL"
  local encode = cjson.encode
  function s.w3_objects(rows) return rows end
  local function lit(v) return "'" .. con:escape(v) .. "'" end
  function s.w3(rows)
    con:setautocommit(false)
    local head = "INSERT INTO bench_insert (" .. table.concat(COLUMNS, ", ") .. ") VALUES "
    for k = 1, #rows, W3_BATCH do
      local vals = {}
      for r = k, math.min(k + W3_BATCH - 1, #rows) do
        local row = rows[r]
        vals[#vals + 1] = string.format("(%d, %s, %s, %d, %.17g, %s, %s, %s, %s, %s)",
          row.id, lit(row.name), lit(row.email), row.age, row.score,
          row.active and "true" or "false", lit(row.created_at), row.balance,
          lit(row.uuid), lit(encode(row.tags)))
      end
      assert(con:execute(head .. table.concat(vals, ", ")))
    end
    assert(con:commit())
    con:setautocommit(true)
  end
  function s.exec(sql) return assert(con:execute(sql)) end
  function s.count(sql)
    local cur = assert(con:execute(sql))
    local v = cur:fetch()
    cur:close()
    return toint(tonumber(v))
  end
  s.w4_variant = "two queries + tables grouped by hand"
  s.w4_note = "no parameters in LuaSQL: the ids are formatted into the SQL"
  local function conv_user(u)
    u.id = toint(tonumber(u.id))
    return u
  end
  local function conv_post(p)
    p.id = toint(tonumber(p.id))
    p.user_id = toint(tonumber(p.user_id))
    return p
  end
  function s.w4(n)
    local users = fetch_all(SQL.W4_USERS:gsub("%$1", string.format("%d", n)), conv_user)
    local ids, by_id = {}, {}
    for i, u in ipairs(users) do
      ids[i] = string.format("%d", u.id)
      u.posts = {}
      by_id[u.id] = u
    end
    local sql = SQL.W4_POSTS:gsub("%$1", "'{" .. table.concat(ids, ",") .. "}'")
    local posts = fetch_all(sql, conv_post)
    for _, p in ipairs(posts) do
      local u = by_id[p.user_id]
      u.posts[#u.posts + 1] = p
    end
    return users
  end
  local _ = floor
  return s
end

-- Cormorant with model instances (cm.model), where the models exist: the
-- rows system with W1, W2, W3 and W4 done through models.
systems["cormorant-models"] = function()
  local s = systems.cormorant()
  local cm = require "cormorant"
  if not cm.model then
    io.stderr:write("this cormorant has no models (cm.model)\n")
    os.exit(3)
  end
  local db = s.db
  local row_cols = {
    { "id", "bigint", primary_key = true }, { "name", "text" }, { "email", "varchar(64)" },
    { "age", "integer" }, { "score", "double precision" }, { "active", "boolean" },
    { "created_at", "timestamptz" }, { "balance", "numeric(12,2)" }, { "uuid", "uuid" },
    { "tags", "jsonb" },
  }
  local Row = cm.model("bench_rows", row_cols)
  local Ins = cm.model("bench_insert", row_cols)
  local User = cm.model("users", {
    { "id", "bigint", primary_key = true }, { "name", "text" }, { "email", "varchar(64)" },
    { "created_at", "timestamptz" },
  })
  local Post = cm.model("posts", {
    { "id", "bigint", primary_key = true }, { "user_id", "bigint", references = User },
    { "title", "text" }, { "body", "text" }, { "created_at", "timestamptz" },
  })
  for _, m in ipairs { Row, Ins, User, Post } do m:using(db) end
  s.name = "Cormorant (models)"
  s.w1_variant = "Model:all() → instances"
  function s.w1() return assert(Row:all()) end
  s.w2_variant = "Model:get{id=…}, one connection"
  local function lookup(id)
    local r = Row:get { id = id }
    return r ~= nil
  end
  function s.w2(ids)
    local found = 0
    for i = 1, #ids do if lookup(ids[i]) then found = found + 1 end end
    return found
  end
  function s.w2_concurrent(ids, n)
    local found = 0
    cm.run(function()
      for t = 1, n do
        cm.spawn(function()
          for k = t, #ids, n do if lookup(ids[k]) then found = found + 1 end end
        end)
      end
    end)
    return found
  end
  s.w3_variant = "Model:bulk_create, 500 rows a statement (INSERT … RETURNING), one transaction"
  s.w3_note = "no COPY in the engine yet"
  function s.w3_objects(rows)
    local batches = {}
    for k = 1, #rows, W3_PARAM_BATCH do
      local b = {}
      for r = k, math.min(k + W3_PARAM_BATCH - 1, #rows) do
        local src, o = rows[r], {}
        for _, c in ipairs(COLUMNS) do o[c] = src[c] end
        b[#b + 1] = o
      end
      batches[#batches + 1] = b
    end
    return batches
  end
  function s.w3(batches)
    assert(db:transaction(function()
      for _, b in ipairs(batches) do assert(Ins:bulk_create(b)) end
    end))
  end
  s.w4_variant = "two model queries grouped by hand"
  s.w4_note = "no relation prefetch yet"
  function s.w4(n)
    local users = assert(User:select():order_by(User.id):limit(n):all())
    local ids, by_id = {}, {}
    for i, u in ipairs(users) do
      ids[i] = u.id
      by_id[u.id] = {}
    end
    local posts = assert(Post:select():filter { user_id__in = ids }:all())
    for _, p in ipairs(posts) do
      local l = by_id[p.user_id]
      l[#l + 1] = p
    end
    local out = {}
    for i, u in ipairs(users) do out[i] = { user = u, posts = by_id[u.id] } end
    return out
  end
  return s
end

-- ---- run ----
local make = systems[system]
if not make then
  io.stderr:write("unknown system " .. tostring(system) .. "\n")
  os.exit(2)
end
local s = make()
local base = { system = s.name, lang = RUNTIME, version = s.version }
local function rec(t)
  for k, v in pairs(base) do t[k] = v end
  return t
end

local src = s.w1()
expect(#src == S.rows, "W1: " .. #src .. " rows, want " .. S.rows)
local note1 = type_note(src[1])
local function check_rows(rows) expect(#rows == S.rows, "W1: wrong row count " .. #rows) end

if wants("W1") then
  local times = timed(s.w1, check_rows)
  local note = note1
  if s.w1_note ~= "" then note = (note ~= "" and note .. "; " or "") .. s.w1_note end
  emit(rec { workload = "W1", variant = s.w1_variant, times = times, rows = S.rows, note = note })
end

if wants("W2") then
  local ids = lookup_ids()
  local function c2(found) expect(found == #ids, "W2: " .. tostring(found) .. " found") end
  local times = timed(function() return s.w2(ids) end, c2)
  emit(rec { workload = "W2", variant = s.w2_variant, times = times, rows = #ids,
             note = s.w2_note or "" })
  for _, n in ipairs(s.w2_tasks) do
    times = timed(function() return s.w2_concurrent(ids, n) end, c2)
    emit(rec { workload = "W2", key = "W2/" .. n, variant = s.w2_concurrent_variant(n),
               times = times, rows = #ids, note = "one pool with max_size=1" })
  end
end

if wants("W3") then
  local objs
  local times = timed(function() s.w3(objs); objs = nil; return true end, function() end,
    function()
      s.exec("TRUNCATE bench_insert")
      objs = s.w3_objects(src)
    end)
  local n = s.count("SELECT count(*) FROM bench_insert")
  expect(n == S.rows, "W3: " .. tostring(n) .. " rows in bench_insert")
  emit(rec { workload = "W3", variant = s.w3_variant, times = times, rows = S.rows,
             note = s.w3_note or "" })
end
src = nil

if wants("W4") then
  local function c4(users)
    expect(#users == S.w4_users, "W4: " .. #users .. " users")
    local n = 0
    for _, u in ipairs(users) do n = n + #u.posts end
    expect(n == 10 * S.w4_users, "W4: " .. n .. " posts")
  end
  local times = timed(function() return s.w4(S.w4_users) end, c4)
  emit(rec { workload = "W4", variant = s.w4_variant, times = times, rows = 11 * S.w4_users,
             note = s.w4_note or "" })
end

if wants("W5") then
  collectgarbage("collect")
  collectgarbage("collect")
  local before = collectgarbage("count")
  local rows = s.w1()
  collectgarbage("collect")
  collectgarbage("collect")
  local held = collectgarbage("count") - before
  check_rows(rows)
  emit(rec { workload = "W5", variant = s.w1_variant, held_kib = math.floor(held), rows = S.rows,
             note = "Lua heap (collectgarbage \"count\"), not RSS" })
  rows = nil
end
