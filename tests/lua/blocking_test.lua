-- Outside cm.run every call blocks: plain scripts just work, also from a
-- coroutine the scheduler does not own.
local T = require "testlib"
local cm = require "cormorant"

T.case("plain script", function()
  local db = assert(cm.connect(T.url, { max_size = 2 }))
  T.eq(cm.default(), db, "the first connect is the default")
  local rows = assert(db:query("SELECT $1::int8 + 1 AS n, 'x'::text AS s", 41))
  T.eq(rows[1].n, 42, "n")
  T.eq(rows[1].s, "x", "s")
  T.eq(assert(db:exec("SELECT 1 UNION SELECT 2")), 2, "exec count")
  local other = assert(cm.connect(T.url, { max_size = 1 }))
  T.eq(cm.default(), db, "the default stays")
  T.eq(assert(other:query("SELECT 2 AS n"))[1].n, 2, "second database")
  other:close()
  assert(db:transaction(function(tx)
    T.eq(assert(tx:query("SELECT 3 AS n"))[1].n, 3, "transaction outside run")
  end))
  db:close()
  T.eq(cm.default(), nil, "no default once closed")
end)

T.case("from a coroutine not run by cormorant", function()
  local db = assert(cm.connect(T.url))
  local co = coroutine.wrap(function()
    coroutine.yield(assert(db:query("SELECT 5 AS n"))[1].n)
  end)
  T.eq(co(), 5, "blocked instead of yielding to a stranger")
  db:close()
end)

T.case("a slow query blocks in poll, not in a busy loop", function()
  local db = assert(cm.connect(T.url))
  local c0, t0 = os.clock(), cm.core.now()
  assert(db:query("SELECT pg_sleep(0.3)"))
  local wall, cpu = cm.core.now() - t0, os.clock() - c0
  assert(wall >= 0.29, "waited for the server")
  assert(cpu < 0.15, "cpu time while blocked: " .. cpu)
  db:close()
end)

T.case("the same code inside run", function()
  cm.run(function()
    local db = assert(cm.connect(T.url, { max_size = 2 }))
    T.eq(assert(db:query("SELECT $1::int8 + 1 AS n", 41))[1].n, 42, "inside run")
    db:close()
  end)
  T.eq(cm.run(function(a, b) return a + b, "two" end, 1, 2), 3, "run returns fn's results")
end)

print("blocking_test: all passed on " .. T.runtime)
