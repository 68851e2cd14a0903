-- Errors: nil, err with class/sqlstate/message/detail/hint and a readable
-- tostring, for each class; a refused connection; misuse raises.
local T = require "testlib"
local cm = require "cormorant"

local db = assert(cm.connect(T.url, { max_size = 2 }))

local function check(err, class, sqlstate)
  assert(cm.is_error(err), "an error object, got " .. tostring(err))
  T.eq(err.class, class, "class")
  T.eq(err.sqlstate, sqlstate, "sqlstate")
  T.eq(type(err.message), "string", "message")
  T.eq(type(err.code), "number", "code")
  T.eq(cm.core.error_classes[-err.code], class, "code and class agree")
end

T.case("division by zero: data", function()
  local none, err = db:query("SELECT 1/0")
  T.eq(none, nil, "first result")
  check(err, "data", "22012")
  T.eq(err.message, "division by zero", "message")
  T.eq(tostring(err), "data error [22012]: division by zero", "tostring")
end)

T.case("unique violation: integrity, with detail", function()
  local ok, err = db:transaction(function(tx)
    assert(tx:exec("CREATE TEMP TABLE u (id int PRIMARY KEY)"))
    assert(tx:exec("INSERT INTO u VALUES (1)"))
    local none, e = tx:exec("INSERT INTO u VALUES (1)")
    T.eq(none, nil, "duplicate insert fails")
    check(e, "integrity", "23505")
    assert(e.detail:find("already exists"), "detail: " .. tostring(e.detail))
    assert(tostring(e):find("\nDETAIL: Key %(id%)=%(1%) already exists"), tostring(e))
    return nil, e
  end)
  T.eq(ok, nil, "transaction rolled back")
  check(err, "integrity", "23505")
end)

T.case("syntax and undefined function: programming, with hint", function()
  local _, err = db:query("SELEC 1")
  check(err, "programming", "42601")
  _, err = db:query("SELECT no_such_function(1)")
  check(err, "programming", "42883")
  assert(err.hint and err.hint:find("No function matches"), "hint: " .. tostring(err.hint))
  assert(tostring(err):find("\nHINT: No function matches"), tostring(err))
end)

T.case("server errors raised with a chosen SQLSTATE, DETAIL and HINT", function()
  local cases = {
    { "23503", "integrity" }, { "22P02", "data" }, { "40001", "transaction" },
    { "40P01", "transaction" }, { "57014", "cancelled" }, { "55P03", "timeout" },
    { "53300", "operational" }, { "42P01", "programming" },
  }
  for _, c in ipairs(cases) do
    local _, err = db:exec(string.format(
      "DO $$ BEGIN RAISE EXCEPTION 'raised %s' USING ERRCODE = '%s', " ..
      "DETAIL = 'the detail', HINT = 'the hint'; END $$", c[1], c[1]))
    check(err, c[2], c[1])
    T.eq(err.message, "raised " .. c[1], "message")
    T.eq(err.detail, "the detail", "detail")
    T.eq(err.hint, "the hint", "hint")
    T.eq(tostring(err), c[2] .. " error [" .. c[1] .. "]: raised " .. c[1] ..
      "\nDETAIL: the detail\nHINT: the hint", "tostring")
  end
end)

T.case("statement timeout: cancelled", function()
  local ok, err = db:transaction(function(tx)
    assert(tx:exec("SET LOCAL statement_timeout = 50"))
    return tx:query("SELECT pg_sleep(5)")
  end)
  T.eq(ok, nil, "rolled back")
  check(err, "cancelled", "57014")
end)

T.case("no free connection in time: timeout", function()
  local small = assert(cm.connect(T.url, { max_size = 1, acquire_timeout = 0.2 }))
  local err
  cm.run(function()
    local holding = true
    cm.spawn(function()
      assert(small:transaction(function()
        while holding do cm.sleep(0.02) end
      end))
    end)
    cm.sleep(0.05)
    local t0 = cm.core.now()
    local ok
    ok, err = small:transaction(function() end)
    T.eq(ok, nil, "second transaction gets no connection")
    assert(cm.core.now() - t0 < 3, "gave up near the acquire timeout")
    holding = false
  end)
  check(err, "timeout", nil)
  small:close()
end)

T.case("a statement past its deadline: timeout", function()
  local slow = assert(cm.connect(T.url, { max_size = 1, query_timeout = 0.2 }))
  local t0 = cm.core.now()
  local none, err = slow:query("SELECT pg_sleep(5)")
  T.eq(none, nil, "timed out")
  check(err, "timeout", nil)
  assert(cm.core.now() - t0 < 3, "gave up near the deadline")
  T.eq(assert(slow:query("SELECT 1 AS one"))[1].one, 1, "still usable")
  slow:set_query_timeout(nil)
  assert(slow:query("SELECT pg_sleep(0.3)"), "no deadline any more")
  cm.run(function()
    slow:set_query_timeout(0.1)
    local ok, e = slow:transaction(function(tx) return tx:query("SELECT pg_sleep(5)") end)
    T.eq(ok, nil, "timed out inside a transaction")
    check(e, "timeout", nil)
  end)
  slow:close()
end)

T.case("refused connection: connection", function()
  local none, err = cm.connect("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=5")
  T.eq(none, nil, "no database")
  check(err, "connection", nil)
  assert(tostring(err):find("^connection error: "), tostring(err))
  none, err = cm.connect("this is not a conninfo")
  T.eq(none, nil, "bad conninfo")
  check(err, "connection", nil)
end)

T.case("a backend terminated mid-transaction: connection, and the pool recovers", function()
  local victim = assert(cm.connect(T.url, { max_size = 2 }))
  local ok, err = victim:transaction(function(tx)
    local pid = assert(tx:query("SELECT pg_backend_pid() AS p"))[1].p
    assert(db:query("SELECT pg_terminate_backend($1::int4)", pid))
    return tx:query("SELECT 1")
  end)
  T.eq(ok, nil, "failed")
  check(err, "connection", err.sqlstate)
  assert(err.sqlstate == nil or err.sqlstate == "57P01", "sqlstate " .. tostring(err.sqlstate))
  for i = 1, 5 do
    T.eq(assert(victim:query("SELECT $1::int8 AS i", i))[1].i, i, "the pool replaced it")
  end
  victim:close()
end)

T.case("errors made in Lua", function()
  local e = cm.error("not_found", "no row found", "id = 1")
  check(e, "not_found", nil)
  T.eq(tostring(e), "not_found error: no row found\nDETAIL: id = 1", "tostring")
  T.raises(function() cm.error("no such class", "x") end, "unknown error class")
end)

T.case("the database stays usable after errors", function()
  for _ = 1, 20 do
    assert(not db:query("SELECT 1/0"))
  end
  T.eq(assert(db:query("SELECT 7 AS n"))[1].n, 7, "still fine")
end)

db:close()
print("errors_test: all passed on " .. T.runtime)
