-- Handles and their release: requests dropped in flight, lent connections
-- never given back, pools closed with work pending or just collected.
-- Run under valgrind too (test_lua.py), where nothing may leak.
local T = require "testlib"
local cm = require "cormorant"
local core = cm.core

local function await(req)
  while not req:done() do cm.wait.wait(req); req:step() end
  return req:take()
end

T.case("requests dropped while in flight", function()
  local pool = assert(core.pool(T.url, { max_size = 2 }))
  for i = 1, 200 do
    pool:submit("SELECT $1::int8 AS v", i)          -- never taken
  end
  local err_req = pool:submit("SELECT 1/0")          -- an error nobody reads
  err_req = nil
  collectgarbage("collect")
  local rows = assert(await(pool:submit("SELECT 42 AS v")))
  T.eq(rows[1].v, 42, "the pool goes on")
  for _ = 1, 50 do pool:submit("SELECT pg_sleep(0.01)") end
  collectgarbage("collect")
  pool:close()                                        -- abandoned ones still pending
end)

T.case("done but never taken, and acquires dropped", function()
  local pool = assert(core.pool(T.url, { max_size = 2 }))
  local reqs = {}
  for i = 1, 20 do reqs[i] = pool:submit("SELECT $1::int8 AS v", i) end
  for i = 1, 20 do while not reqs[i]:done() do cm.wait.wait(reqs[i]); reqs[i]:step() end end
  reqs = nil
  local acq = pool:acquire()
  acq = nil                                           -- the connection comes back
  collectgarbage("collect")
  local a2 = pool:acquire()
  local conn = assert(await(a2))
  local c2 = assert(await(pool:acquire()))            -- both connections lendable again
  conn:release()
  c2 = nil                                            -- collected: released by __gc
  collectgarbage("collect")
  local c3 = assert(await(pool:acquire()))
  local c4 = assert(await(pool:acquire()))
  c3:release(); c4:release()
  pool:close()
end)

T.case("a lent connection with a transaction open goes back rolled back", function()
  local pool = assert(core.pool(T.url, { max_size = 1 }))
  local conn = assert(await(pool:acquire()))
  assert(await(conn:begin()))
  assert(await(conn:submit("CREATE TEMP TABLE lost (x int)")))
  T.eq(conn:depth(), 1, "in a transaction")
  T.eq(conn:pollfd(), pool:pollfd(), "a lent connection polls as its pool")
  T.eq(conn:events(), "r", "events")
  conn:step()
  conn:release()
  T.raises(function() conn:submit("SELECT 1") end, "released connection")
  conn = assert(await(pool:acquire()))
  T.eq(conn:depth(), 0, "clean")
  local none, err = await(conn:submit("SELECT * FROM lost"))
  T.eq(none, nil, "the table was rolled back")
  T.eq(err.sqlstate, "42P01", "undefined table")
  conn:release()
  pool:close()
end)

T.case("pools collected without close, with objects outliving them", function()
  local req, conn
  do
    local pool = assert(core.pool(T.url, { max_size = 2 }))
    req = pool:submit("SELECT 7 AS v")
    conn = assert(await(pool:acquire()))
  end
  collectgarbage("collect")                           -- the pool userdata is gone
  T.eq(assert(await(req))[1].v, 7, "the request still completes")
  T.eq(assert(await(conn:submit("SELECT 8 AS v")))[1].v, 8, "the connection still works")
  req, conn = nil, nil
  collectgarbage("collect")                           -- now the engine's pool closes
end)

T.case("databases in to-be-closed variables (Lua 5.4)", function()
  if _VERSION ~= "Lua 5.4" or T.jit then
    return
  end
  local chunk = assert(load([[
    local cm, url = ...
    local db <close> = assert(cm.connect(url))
    assert(db:query("SELECT 1"))
    return db
  ]]))
  local db = chunk(cm, T.url)
  T.eq(db:closed(), true, "closed on scope exit")
end)

print("lifecycle_test: all passed on " .. T.runtime)
