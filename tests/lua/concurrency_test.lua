-- run/spawn: tasks side by side, their requests pipelined on the pool.
local T = require "testlib"
local cm = require "cormorant"
local TBL = T.table_name("lua_test")

T.case("1,000 tasks over a pool of 4 each get their own result", function()
  local got, done = {}, 0
  local size
  cm.run(function()
    local db = assert(cm.connect(T.url, { max_size = 4 }))
    for i = 1, 1000 do
      cm.spawn(function()
        local rows = assert(db:query("SELECT $1::int8 AS v, pg_backend_pid() AS pid", i))
        got[i] = rows[1]
        done = done + 1
      end)
    end
    -- run waits for the spawned tasks after its own function returns;
    -- the database is closed when they are all done (below).
    cm.spawn(function()
      while done < 1000 do cm.sleep(0.005) end
      size = db:size()
      db:close()
    end)
  end)
  T.eq(done, 1000, "every task finished before run returned")
  local pids, npids = {}, 0
  for i = 1, 1000 do
    T.eq(got[i].v, i, "task " .. i .. "'s own result")
    if not pids[got[i].pid] then
      pids[got[i].pid] = true
      npids = npids + 1
    end
  end
  assert(size <= 4, "pool stayed within max_size: " .. tostring(size))
  assert(npids <= 4, "at most 4 backends served them: " .. npids)
  print("# served by " .. npids .. " connections")
end)

T.case("tasks overlap: 8 sleeps of 0.3 s take far less than 2.4 s", function()
  local t0 = cm.core.now()
  cm.run(function()
    local db = assert(cm.connect(T.url, { max_size = 8, pipeline_depth = 1 }))
    local n = 0
    for _ = 1, 8 do
      cm.spawn(function()
        assert(db:query("SELECT pg_sleep(0.3)"))
        n = n + 1
        if n == 8 then db:close() end
      end)
    end
  end)
  local wall = cm.core.now() - t0
  assert(wall < 1.5, "took " .. wall .. " s")
end)

T.case("transactions run side by side with queries", function()
  cm.run(function()
    local db = assert(cm.connect(T.url, { max_size = 3 }))
    assert(db:exec("CREATE TABLE IF NOT EXISTS " .. TBL .. " (task int, i int)"))
    assert(db:exec("DELETE FROM " .. TBL))
    local finished = 0
    for t = 1, 10 do
      cm.spawn(function()
        local ok, err = db:transaction(function(tx)
          for i = 1, 5 do
            assert(tx:exec("INSERT INTO " .. TBL .. " VALUES ($1, $2)", t, i))
            cm.sleep(0)
          end
          if t % 2 == 0 then error("rolled back on purpose") end
        end)
        if t % 2 == 0 then
          T.eq(ok, nil, "even tasks roll back")
          assert(tostring(err):find("on purpose"))
        else
          assert(ok, err)
        end
        finished = finished + 1
      end)
    end
    for _ = 1, 20 do
      cm.spawn(function() assert(db:query("SELECT 1")) end)
    end
    while finished < 10 do cm.sleep(0.01) end
    local rows = assert(db:query("SELECT count(*) AS n, sum(task % 2) AS odd FROM " .. TBL))
    T.eq(rows[1].n, 25, "five rows from each committed task")
    T.eq(rows[1].odd, 25, "only odd tasks committed")
    assert(db:exec("DROP TABLE " .. TBL))
    db:close()
  end)
end)

print("concurrency_test: all passed on " .. T.runtime)
