-- 1,000 coroutines creating and fetching model instances over a pool of 3
-- connections: every task gets its own rows back, requests pipeline.
local T = require "testlib"
local cm = require "cormorant"

local db = assert(cm.connect(T.url, { max_size = 3 }))
local Item = cm.model(T.table_name("citem"), {
  { "id", "bigint", primary_key = true },
  { "task", "integer", index = true },
  { "label", "text" },
})
assert(db:create_tables(Item))

T.case("1,000 tasks create and fetch", function()
  local done = 0
  cm.run(function()
    for t = 1, 1000 do
      cm.spawn(function()
        local a = assert(Item:create { task = t, label = "first " .. t })
        local b = Item.new { task = t, label = "second" }
        assert(b:save())
        local mine = assert(Item:select():where(Item.task:eq(t)):order_by(Item.id):all())
        T.eq(#mine, 2, "task " .. t .. " sees its two rows")
        T.eq(mine[1].id, a.id, "first row")
        T.eq(mine[2].label, "second", "second row")
        mine[2].label = "changed " .. t
        assert(mine[2]:save())
        T.eq(assert(Item:get { id = b.id }).label, "changed " .. t, "saved")
        done = done + 1
      end)
    end
  end)
  T.eq(done, 1000, "every task finished")
  T.eq(assert(Item:count()), 2000, "rows")
  local size = db:size()
  assert(size <= 3, "pool stayed within max_size: " .. size)
end)

T.case("1,000 tasks each in a transaction", function()
  cm.run(function()
    for t = 1, 1000 do
      cm.spawn(function()
        local ok, err = db:transaction(function()
          assert(Item:create { task = -t, label = "tx" })
          if t % 2 == 0 then error("roll back " .. t) end
        end)
        assert((ok == true) == (t % 2 == 1), tostring(err))
      end)
    end
  end)
  T.eq(assert(Item:select():filter { task__lt = 0 }:count()), 500, "odd tasks committed")
end)

assert(db:drop_tables(Item))
print("done")
