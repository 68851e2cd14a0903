-- db:transaction: commit, rollback on error, nested savepoints, and a
-- failed statement rolling its level back.
local T = require "testlib"
local cm = require "cormorant"
local TBL = T.table_name("lua_test")

local function body(db)
  assert(db:exec("DROP TABLE IF EXISTS " .. TBL))
  assert(db:exec("CREATE TABLE " .. TBL .. " (id int PRIMARY KEY, note text)"))
  local function ids()
    local rows = assert(db:query("SELECT id FROM " .. TBL .. " ORDER BY id"))
    local t = {}
    for i, r in ipairs(rows) do t[i] = r.id end
    return table.concat(t, ",")
  end

  T.case("commit", function()
    local ok, a, b = db:transaction(function(tx, x)
      assert(tx:exec("INSERT INTO " .. TBL .. " VALUES (1, $1)", x))
      T.eq(tx:depth(), 1, "depth")
      return "a", "b"
    end, "one")
    T.eq(ok, true, "committed")
    T.eq(a, "a", "fn's results follow")
    T.eq(b, "b", "fn's second result")
    T.eq(ids(), "1", "row visible")
  end)

  T.case("an error inside rolls back and returns nil, err", function()
    local ok, err = db:transaction(function(tx)
      assert(tx:exec("INSERT INTO " .. TBL .. " VALUES (2, 'two')"))
      error("boom")
    end)
    T.eq(ok, nil, "rolled back")
    assert(tostring(err):find("boom"), tostring(err))
    T.eq(ids(), "1", "row gone")
    -- a raised error object comes back as it is
    ok, err = db:transaction(function(tx)
      assert(tx:exec("INSERT INTO " .. TBL .. " VALUES (1, 'dup')"))
    end)
    T.eq(ok, nil, "duplicate")
    T.eq(err.class, "integrity", "the engine's error object")
  end)

  T.case("returning nil, err rolls back", function()
    local ok, err = db:transaction(function(tx)
      assert(tx:exec("INSERT INTO " .. TBL .. " VALUES (3, 'three')"))
      return nil, "changed my mind"
    end)
    T.eq(ok, nil, "rolled back")
    T.eq(err, "changed my mind", "the returned error")
    T.eq(ids(), "1", "row gone")
  end)

  T.case("a failed statement, even if ignored, rolls the level back", function()
    local ok, err = db:transaction(function(tx)
      assert(tx:exec("INSERT INTO " .. TBL .. " VALUES (4, 'four')"))
      local none = tx:query("SELECT 1/0")   -- ignored by the caller
      T.eq(none, nil, "failed")
    end)
    T.eq(ok, nil, "not committed")
    T.eq(err.class, "data", "the statement's error")
    T.eq(ids(), "1", "nothing committed")
  end)

  T.case("nested transactions are savepoints", function()
    local ok, err = db:transaction(function(tx)
      assert(tx:exec("INSERT INTO " .. TBL .. " VALUES (5, 'outer')"))
      local iok, ierr = tx:transaction(function(tx2)
        T.eq(tx2:depth(), 2, "savepoint depth")
        assert(tx2:exec("INSERT INTO " .. TBL .. " VALUES (6, 'inner, rolled back')"))
        error("inner failure")
      end)
      T.eq(iok, nil, "inner rolled back")
      assert(tostring(ierr):find("inner failure"))
      T.eq(tx:depth(), 1, "back at depth 1")
      local iok2, ierr2 = tx:transaction(function(tx2)
        assert(tx2:exec("INSERT INTO " .. TBL .. " VALUES (7, 'inner, kept')"))
        local i3 = tx2:transaction(function(tx3)
          return tx3:exec("INSERT INTO " .. TBL .. " VALUES (7, 'duplicate')")
        end)
        T.eq(i3, nil, "innermost failed on its own")
        return "kept"
      end)
      T.eq(iok2, true, tostring(ierr2))
      T.eq(ierr2, "kept", "inner result")
      -- an error inside a savepoint leaves the outer transaction usable
      local iok3 = tx:transaction(function(tx2) return tx2:query("SELECT 1/0") end)
      T.eq(iok3, nil, "savepoint with a failed statement")
      assert(tx:query("SELECT 1"))
      return true
    end)
    T.eq(ok, true, tostring(err))
    T.eq(ids(), "1,5,7", "outer and kept inner committed")
  end)

  T.case("db calls inside the transaction's function use its connection", function()
    local ok, err = db:transaction(function(tx)
      local pid = assert(tx:query("SELECT pg_backend_pid() AS p"))[1].p
      for _ = 1, 5 do
        T.eq(assert(db:query("SELECT pg_backend_pid() AS p"))[1].p, pid, "same backend")
      end
      assert(db:exec("INSERT INTO " .. TBL .. " VALUES (50, 'through db')"))
      local iok = db:transaction(function(tx2)
        T.eq(tx2, tx, "nested through db: the same transaction")
        T.eq(tx2:depth(), 2, "a savepoint")
        assert(db:exec("INSERT INTO " .. TBL .. " VALUES (51, 'inner')"))
        error("undo the inner one")
      end)
      T.eq(iok, nil, "inner rolled back")
      error("undo everything")
    end)
    T.eq(ok, nil, "rolled back")
    assert(tostring(err):find("undo everything"))
    T.eq(ids(), "1,5,7", "nothing from inside remains")
    -- outside the function, db goes back to the pool
    assert(db:transaction(function() end))
  end)

  T.case("isolation options reach the server", function()
    local ok, err = db:transaction(function(tx)
      local rows = assert(tx:query("SHOW transaction_isolation"))
      T.eq(rows[1].transaction_isolation, "read committed", "default")
    end)
    assert(ok, err)
    ok, err = db:transaction({ isolation = "serializable", read_only = true }, function(tx, x)
      T.eq(x, "arg", "arguments after fn")
      local rows = assert(tx:query("SHOW transaction_isolation"))
      T.eq(rows[1].transaction_isolation, "serializable", "isolation")
      local none, e = tx:exec("INSERT INTO " .. TBL .. " VALUES (99, 'ro')")
      T.eq(none, nil, "read only")
      T.eq(e.sqlstate, "25006", "read-only transaction")
      return nil, e
    end, "arg")
    T.eq(ok, nil, "rolled back")
    T.raises(function() db:transaction({ isolation = "sloppy" }, function() end) end, "invalid option")
  end)

  T.case("the connection goes back to the pool clean", function()
    for _ = 1, 5 do
      local ok = db:transaction(function(tx)
        assert(tx:exec("INSERT INTO " .. TBL .. " VALUES (100, 'x')"))
        error("abort")
      end)
      T.eq(ok, nil, "aborted")
    end
    local rows = assert(db:query("SELECT count(*) AS n FROM " .. TBL .. " WHERE id = 100"))
    T.eq(rows[1].n, 0, "nothing leaked")
    T.eq(ids(), "1,5,7", "unchanged")
  end)

  assert(db:exec("DROP TABLE " .. TBL))
end

-- Blocking, then the same inside run.
local db = assert(cm.connect(T.url, { max_size = 2 }))
body(db)
db:close()
cm.run(function()
  local db2 = assert(cm.connect(T.url, { max_size = 2 }))
  body(db2)
  db2:close()
end)
print("transaction_test: all passed on " .. T.runtime)
