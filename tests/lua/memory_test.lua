-- Memory stays flat across 100,000 queries: the Lua heap after a full
-- collection, and the process's resident size (C memory: results, errors,
-- request states), compared between two equal halves after a warm-up.
local T = require "testlib"
local cm = require "cormorant"

local function rss_kb()
  local f = io.open("/proc/self/statm")
  if not f then
    return nil
  end
  local _, resident = f:read("*l"):match("(%d+)%s+(%d+)")
  f:close()
  return tonumber(resident) * 4   -- pages of 4 KiB
end

local function heap_kb()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

-- A mix of what a program does: rows, parameters, errors, transactions,
-- int8 beyond 2^53 (cdata on LuaJIT); tasks side by side.
local function batch(db, n)
  local tasks = 10
  local per = math.floor(n / tasks)
  cm.run(function()
    for t = 1, tasks do
      cm.spawn(function()
        for i = 1, per do
          local k = i % 50
          if k == 0 then
            local none, err = db:query("SELECT 1/0")
            assert(none == nil and err.class == "data")
          elseif k == 1 then
            assert(db:transaction(function(tx)
              assert(tx:query("SELECT $1::int8 AS v", i))
            end))
          else
            local rows = assert(db:query(
              "SELECT $1::int8 AS v, 'row ' || $2 AS s, 9007199254740993::int8 AS big, NULL::int AS z",
              i, t))
            assert(rows[1].v == i)
          end
        end
      end)
    end
  end)
end

T.case("100,000 queries in flat memory", function()
  local db = assert(cm.connect(T.url, { max_size = 4 }))
  batch(db, 20000)                       -- warm-up: pool, statement cache, allocator
  local h0, r0 = heap_kb(), rss_kb()
  batch(db, 40000)
  local h1, r1 = heap_kb(), rss_kb()
  batch(db, 40000)
  local h2, r2 = heap_kb(), rss_kb()
  print(string.format("# Lua heap KiB: %.0f %.0f %.0f; RSS KiB: %s %s %s", h0, h1, h2,
    tostring(r0), tostring(r1), tostring(r2)))
  assert(h2 - h0 < 512, "Lua heap grew by " .. (h2 - h0) .. " KiB")
  if r0 then
    -- A leak of even one small allocation per query would add several MiB
    -- per half; allocator noise is far below that.
    assert(r2 - r1 < 4096, "RSS grew by " .. (r2 - r1) .. " KiB in the second half")
  end
  db:close()
end)

print("memory_test: all passed on " .. T.runtime)
