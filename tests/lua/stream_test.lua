-- Streamed results: rows become tables while the rest arrive (db:query,
-- tx:query, model queries, pool:stream/conn:stream). Complete and in
-- order, also with requests pipelined on one connection; an error mid-way
-- gives nil, err and leaves the connection usable; abandoned streams free
-- what they held.
local T = require "testlib"
local cm = require "cormorant"
local core = cm.core
local wait = require "cormorant.wait"

local db = assert(cm.connect(T.url, { max_size = 1 }))

local MANY = [[SELECT i, md5(i::text) AS h, CASE WHEN i % 3 = 0 THEN NULL ELSE i * 2 END AS d,
  json_build_object('i', i, 'a', json_build_array(i, 'x')) AS j
  FROM generate_series(1, $1::int4) i ORDER BY i]]
local MIDWAY = "SELECT CASE WHEN i = 2000 THEN 1/(i-i) ELSE i END AS v FROM generate_series(1, 4000) i"

local function check_many(rows, n, what)
  T.eq(#rows, n, what .. ": row count")
  for i = 1, n, 997 do
    local r = rows[i]
    T.eq(r.i, i, what .. ": row " .. i .. " in order")
    local d = nil
    if i % 3 ~= 0 then d = i * 2 end
    T.eq(r.d, d, what .. ": NULL absent, else the value")
    T.eq(r.j.i, i, what .. ": json")
    T.eq(r.j.a[2], "x", what .. ": json array")
  end
  T.eq(rows[n].i, n, what .. ": last row")
  T.eq(#rows[n].h, 32, what .. ": text")
end

local function usable(where)
  local rows = assert(where:query("SELECT 41 + 1 AS n"))
  T.eq(rows[1].n, 42, "connection usable afterwards")
end

T.case("many rows, complete and in order (blocking)", function()
  local rows, affected, cmd = db:query(MANY, 30000)
  check_many(assert(rows, tostring(affected)), 30000, "blocking")
  T.eq(affected, 30000, "affected count from the final result")
  T.eq(cmd, "SELECT 30000", "command tag")
  local none = assert(db:query("SELECT 1 AS x WHERE false"))
  T.eq(#none, 0, "no rows: an empty list")
end)

T.case("streams pipelined on one connection, under cm.run", function()
  local got = {}
  cm.run(function()
    for t = 1, 4 do
      cm.spawn(function()
        local rows = assert(db:query(MANY, 5000 * t))
        got[t] = rows
      end)
    end
  end)
  for t = 1, 4 do check_many(got[t], 5000 * t, "task " .. t) end
end)

T.case("an error mid-stream: nil, err, and the connection stays usable", function()
  local rows, err = db:query(MIDWAY)
  T.eq(rows, nil, "no rows")
  T.eq(err.class, "data", "class")
  T.eq(err.sqlstate, "22012", "division by zero")
  usable(db)
  cm.run(function()
    local r2, e2 = db:query(MIDWAY)
    T.eq(r2, nil, "no rows (cm.run)")
    T.eq(e2.sqlstate, "22012", "division by zero (cm.run)")
    usable(db)
  end)
  -- In a transaction: the statement fails, so does the transaction.
  local ok, terr = db:transaction(function(tx)
    local r3, e3 = tx:query(MIDWAY)
    T.eq(r3, nil, "no rows (transaction)")
    T.eq(e3.sqlstate, "22012", "division by zero (transaction)")
  end)
  T.eq(ok, nil, "the transaction is rolled back")
  T.eq(terr.sqlstate, "22012", "with the statement's error")
  usable(db)
end)

T.case("a failing conversion mid-stream is the query's error", function()
  local n = 0
  cm.set_json_decoder(function(txt)
    n = n + 1
    if n == 1500 then error("decoder gave up") end
    return txt
  end)
  local rows, err = db:query(MANY, 3000)
  cm.set_json_decoder(nil)
  T.eq(rows, nil, "no rows")
  assert(tostring(err):find("decoder gave up", 1, true), tostring(err))
  usable(db)
end)

T.case("a conversion hook cannot wait for a query of its own", function()
  cm.set_json_decoder(function(txt)
    assert(db:query("SELECT 1 AS one"))
    return txt
  end)
  local rows, err = db:query([[SELECT '{"a": 1}'::jsonb AS j]])
  cm.set_json_decoder(nil)
  T.eq(rows, nil, "no rows")
  assert(tostring(err):find("inside its own step", 1, true), tostring(err))
  usable(db)
end)

T.case("core: pool:stream and conn:stream, abandoned and cancelled streams", function()
  local pool = db._pool
  local req = assert(pool:stream("SELECT i FROM generate_series(1, 20000) i"))
  while not req:done() do wait.wait(req); req:step() end
  local rows, affected = req:take()
  T.eq(#rows, 20000, "pool:stream")
  T.eq(affected, 20000, "affected")
  -- Dropped while rows arrive: its userdata goes, the engine finishes it.
  for _ = 1, 3 do
    local r = assert(pool:stream(MANY, 20000))
    for _ = 1, 5 do wait.wait(r); r:step() end
    r:close()
  end
  -- Cancelled mid-way.
  local c = assert(pool:stream(MANY, 200000))
  for _ = 1, 5 do wait.wait(c); c:step() end
  c:cancel()
  local none, cerr = c:take()
  T.eq(none, nil, "cancelled: no rows")
  T.eq(cerr.class, "cancelled", "cancelled")
  usable(db)
  -- On a lent connection.
  local conn = assert(cm.await(pool:acquire()))
  local lr = assert(cm.await(conn:stream("SELECT i FROM generate_series(1, 3000) i")))
  T.eq(#lr, 3000, "conn:stream")
  T.eq(lr[3000].i, 3000, "conn:stream in order")
  conn:release()
end)

T.case("streaming keeps memory flat", function()
  local function heap()
    collectgarbage("collect"); collectgarbage("collect")
    return collectgarbage("count")
  end
  local function round()
    for _ = 1, 5 do
      assert(db:query(MANY, 4000))
      assert(not db:query(MIDWAY))
      local r = assert(db._pool:stream(MANY, 4000))
      r:step()
      r:close()
    end
  end
  round()
  local before = heap()
  round()
  round()
  local after = heap()
  assert(after - before < 256, string.format("Lua heap grew by %.0f KiB", after - before))
end)

db:close()
print("stream_test: all passed on " .. T.runtime)
