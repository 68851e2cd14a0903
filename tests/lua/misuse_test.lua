-- Misuse raises (wrong argument types, closed objects); expected failure
-- returns nil, err.
local T = require "testlib"
local cm = require "cormorant"

local db = assert(cm.connect(T.url, { max_size = 2 }))

T.case("wrong argument types raise", function()
  T.raises(function() db:query(42) end, "string expected")
  T.raises(function() db:query() end, "string expected")
  T.raises(function() db.query("SELECT 1") end, "use ':'")
  T.raises(function() db:query("SELECT $1", {}) end, "cannot bind a table")
  T.raises(function() db:query("SELECT $1", print) end, "cannot bind a function")
  T.raises(function() db:exec(nil) end, "string expected")
  T.raises(function() db:transaction("not a function") end, "function expected")
  T.raises(function() cm.connect(42) end, "string expected")
  T.raises(function() cm.connect(T.url, "opts") end, "table expected")
  T.raises(function() cm.connect(T.url, { max_size = "four" }) end, "max_size")
  T.raises(function() cm.connect(T.url, { max_size = 0 }) end, "max_size")
  T.raises(function() cm.connect(T.url, { connect_timeout = -1 }) end, "connect_timeout")
end)

T.case("scheduler misuse raises", function()
  T.raises(function() cm.spawn(function() end) end, "not inside cormorant.run")
  T.raises(function() cm.run(42) end, "function is expected")
end)

T.case("errors inside run propagate out of run", function()
  T.raises(function()
    cm.run(function()
      cm.spawn(function() error("task failed") end)
      cm.sleep(0.01)
    end)
  end, "task failed")
  T.raises(function() cm.run(function() error("main failed") end) end, "main failed")
end)

T.case("waiting on nothing is reported, not a hang", function()
  T.raises(function()
    cm.run(function()
      coroutine.yield({ pollfd = function() return nil end, events = function() return "r" end,
                        timeout = function() return nil end })
    end)
  end, "no fd and no timeout")
end)

T.case("a finished transaction cannot be used", function()
  local saved
  assert(db:transaction(function(tx) saved = tx end))
  T.raises(function() saved:query("SELECT 1") end, "finished transaction")
end)

T.case("a closed database raises", function()
  local other = assert(cm.connect(T.url, { max_size = 1 }))
  other:close()
  T.eq(other:closed(), true, "closed")
  T.raises(function() other:query("SELECT 1") end, "closed database")
  T.raises(function() other:transaction(function() end) end, "closed database")
  other:close()   -- twice is fine
end)

T.case("the core classes check their handles", function()
  local core = cm.core
  local pool = assert(core.pool(T.url, { max_size = 1 }))
  local req = pool:submit("SELECT 1 AS one")
  T.raises(function() req:take() end, "not done")
  while not req:done() do cm.wait.wait(req); req:step() end
  T.eq(req:take()[1].one, 1, "take")
  T.raises(function() req:take() end, "already taken")
  req:close()
  T.raises(function() req:done() end, "closed request")
  T.raises(function() pool.submit(42, "x") end, "cormorant.pool expected")
  pool:close()
  T.raises(function() pool:submit("SELECT 1") end, "closed pool")
  T.eq(tostring(pool), "cormorant.pool (closed)", "tostring")
end)

T.case("requests pending when the pool closes complete as cancelled", function()
  local core = cm.core
  local pool = assert(core.pool(T.url, { max_size = 1 }))
  local req = pool:submit("SELECT pg_sleep(10)")
  pool:close()
  T.eq(req:done(), true, "done")
  local none, err = req:take()
  T.eq(none, nil, "no rows")
  T.eq(err.class, "cancelled", "class")
end)

db:close()
print("misuse_test: all passed on " .. T.runtime)
