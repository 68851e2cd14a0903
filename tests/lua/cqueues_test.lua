-- Driving cormorant from another event loop: cqueues (Debian: lua-cqueues).
-- The whole integration is the replacement of wait.wait below; requests
-- are pollable (:pollfd/:events/:timeout), which is what cqueues.poll takes.
-- Exits 77 (skipped) when cqueues is not installed.
local T = require "testlib"
local ok, cqueues = pcall(require, "cqueues")
if not ok then
  print("cqueues_test: lua-cqueues is not installed; skipped")
  os.exit(77)
end
local cm = require "cormorant"

-- The adapter: inside a cqueues coroutine, let cqueues wait; elsewhere,
-- keep cormorant's default (yield under cm.run, else block).
local wait = require "cormorant.wait"
local default_wait = wait.wait
wait.wait = function(req)
  local _, inside = cqueues.running()
  if inside then
    return cqueues.poll(req)
  end
  return default_wait(req)
end

T.case("queries from cqueues coroutines pipeline side by side", function()
  local db = assert(cm.connect(T.url, { max_size = 10, pipeline_depth = 1 }))  -- blocks: outside the loop
  local cq = cqueues.new()
  local got = {}
  local t0 = cm.core.now()
  for i = 1, 8 do
    cq:wrap(function()
      local rows = assert(db:query("SELECT $1::int8 AS i, pg_sleep(0.2)", i))
      got[i] = rows[1].i
    end)
  end
  cq:wrap(function()
    assert(db:transaction(function(tx)
      assert(tx:query("SELECT pg_sleep(0.1)"))
    end))
    got.tx = true
  end)
  assert(cq:loop())
  local wall = cm.core.now() - t0
  for i = 1, 8 do
    T.eq(got[i], i, "task " .. i)
  end
  T.eq(got.tx, true, "transaction")
  assert(wall < 1.2, "overlapped: " .. wall .. " s")
  -- a timer of cqueues' own runs while a query waits
  local ticks = 0
  cq:wrap(function()
    for _ = 1, 3 do cqueues.sleep(0.05); ticks = ticks + 1 end
  end)
  cq:wrap(function() assert(db:query("SELECT pg_sleep(0.3)")) end)
  assert(cq:loop())
  T.eq(ticks, 3, "the loop kept running")
  db:close()
end)

wait.wait = default_wait
print("cqueues_test: all passed on " .. T.runtime)
