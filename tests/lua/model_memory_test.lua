-- Memory stays flat across 100,000 model fetches (instances decoded in C
-- with their change-tracking snapshots, saves, lookups): the Lua heap after
-- a full collection and the process's resident size, compared between two
-- equal halves after a warm-up.
local T = require "testlib"
local cm = require "cormorant"

local function rss_kb()
  local f = io.open("/proc/self/statm")
  if not f then return nil end
  local _, resident = f:read("*l"):match("(%d+)%s+(%d+)")
  f:close()
  return tonumber(resident) * 4
end

local function heap_kb()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

local db = assert(cm.connect(T.url, { max_size = 4 }))
local Row = cm.model(T.table_name("mrow"), {
  { "id", "bigint", primary_key = true },
  { "name", "text" },
  { "n", "bigint" },
  { "note", "text", null = true },
  { "at", "timestamptz", default = cm.sql "now()" },
})
assert(db:create_tables(Row))
for i = 1, 20 do assert(Row:create { name = "row " .. i, n = i * 1000 }) end

-- n fetches (10 rows each, as instances), spread over 8 tasks, with gets,
-- filters, counts, a save and a not_found among them.
local function batch(n)
  local tasks = 8
  local per = math.floor(n / tasks)
  cm.run(function()
    for t = 1, tasks do
      cm.spawn(function()
        for i = 1, per do
          local k = i % 20
          if k == 0 then
            local none, err = Row:get { id = -i }
            assert(none == nil and err.class == "not_found")
          elseif k == 1 then
            local r = assert(Row:get { id = t })
            r.note = "seen " .. i
            assert(r:save())
          elseif k == 2 then
            assert(Row:select():filter { n__gte = 5000 }:count() == 16)
          else
            local rows = assert(Row:select():where(Row.id:le(10)):order_by(Row.id):all())
            assert(#rows == 10 and rows[1].name == "row 1")
          end
        end
      end)
    end
  end)
end

T.case("100,000 model fetches in flat memory", function()
  batch(20000)                                     -- warm-up
  local h0, r0 = heap_kb(), rss_kb()
  batch(40000)
  local h1, r1 = heap_kb(), rss_kb()
  batch(40000)
  local h2, r2 = heap_kb(), rss_kb()
  print(string.format("# Lua heap KiB: %.0f %.0f %.0f; RSS KiB: %s %s %s", h0, h1, h2,
    tostring(r0), tostring(r1), tostring(r2)))
  -- The heap after a full collection must not grow with the work done:
  -- allow slack for interned strings and table sizes, not per-row growth
  -- (a leak of one table per fetched row would be megabytes).
  assert(h2 - h1 < 256, string.format("Lua heap grew by %.0f KiB in the second half", h2 - h1))
  assert(h2 - h0 < 512, string.format("Lua heap grew by %.0f KiB overall", h2 - h0))
  if r0 then
    assert(r2 - r1 < 4096, string.format("RSS grew by %d KiB in the second half", r2 - r1))
  end
end)

assert(db:drop_tables(Row))
print("done")
