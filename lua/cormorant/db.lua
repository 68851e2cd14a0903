-- db.lua - databases (a pool of connections) and transactions over
-- cormorant.core: connect, query, exec, transaction. Every call waits
-- through wait.lua: it yields under cormorant.run and blocks elsewhere.
local core = require "cormorant.core"
local wait = require "cormorant.wait"

local M = {}

local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

-- The wait loop of ARCHITECTURE.md: the yield happens here, in Lua.
local function await(req, err)
  if not req then
    return nil, err
  end
  while not req:done() do
    wait.wait(req)
    req:step()
  end
  return req:take()
end
M.await = await

local DB = {}
DB.__index = DB
M.DB = DB

local Tx = {}
Tx.__index = Tx
M.Tx = Tx

local function checkdb(self, name)
  if getmetatable(self) ~= DB then
    error("cormorant: db:" .. name .. " called without a database (use ':')", 3)
  end
  local pool = self._pool
  if not pool or pool:closed() then
    error("cormorant: attempt to use a closed database", 3)
  end
  return pool
end

-- The transaction each coroutine is inside (per database), so that
-- db:query/db:exec called from a transaction's function (by the user or by
-- models through the default database) run on the transaction's connection.
local MAIN = {}   -- key for the main thread (LuaJIT's coroutine.running() is nil there)
local current_tx = setmetatable({}, { __mode = "k" })

local function current(self)
  local by_db = current_tx[coroutine.running() or MAIN]
  return by_db and by_db[self]
end

local function set_current(db, tx)
  local co = coroutine.running() or MAIN
  local by_db = current_tx[co]
  if not by_db then
    by_db = {}
    current_tx[co] = by_db
  end
  local prev = by_db[db]
  by_db[db] = tx
  return prev
end

local function checksql(sql, name)
  if type(sql) ~= "string" then
    error("bad argument #1 to '" .. name .. "' (string expected, got " .. type(sql) .. ")", 3)
  end
end

-- connect(conninfo [, opts]) -> db | nil, err. Waits until the first
-- connection is ready, so a server that cannot be reached gives nil, err
-- (class "connection"). opts: max_size, min_size, pipeline_depth,
-- connect_timeout, acquire_timeout and query_timeout (seconds),
-- prepared_statements, statement_cache_size.
function M.connect(conninfo, opts)
  if type(conninfo) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(conninfo) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'connect' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local pool, err = core.pool(conninfo, opts)
  if not pool then
    return nil, err
  end
  local acquire_timeout = opts.acquire_timeout
  if acquire_timeout ~= nil and type(acquire_timeout) ~= "number" then
    error("option 'acquire_timeout' must be a number of seconds", 2)
  end
  local conn
  conn, err = await(pool:acquire())
  if not conn then
    pool:close()
    return nil, err
  end
  conn:release()
  return setmetatable({ _pool = pool, _acquire_timeout = acquire_timeout }, DB)
end

-- db:query(sql, ...) -> rows, affected | nil, err. rows is a list of
-- tables keyed by column name; NULL columns are absent. Streamed: rows
-- become tables while the rest are still arriving.
function DB:query(sql, ...)
  local pool = checkdb(self, "query")
  checksql(sql, "query")
  local tx = current(self)
  if tx then
    return tx:query(sql, ...)
  end
  return await(pool:stream(sql, ...))
end

-- db:run(q [, mt [, clean [, model]]]) -> rows, affected | nil, err: a built engine
-- query (cormorant.core select/insert/update/delete) through the same
-- requests as db:query, on the transaction's connection when called
-- inside one. Rows are decoded in C as they arrive (q:stream, see query.lua).
local function run_on(target, q, mt, clean, model)
  local req, err = q:stream(target, mt, clean, model)
  if not req then
    return nil, err
  end
  while not req:done() do
    wait.wait(req)
    req:step()
  end
  return q:take(req)
end

function DB:run(q, mt, clean, model)
  local pool = checkdb(self, "run")
  local tx = current(self)
  if tx then
    return tx:run(q, mt, clean, model)
  end
  return run_on(pool, q, mt, clean, model)
end

-- db:create_tables(Model, ... [, { if_not_exists = true }]) -> true | nil, err
-- db:drop_tables(Model, ... [, { if_exists = true, cascade = true }])
-- The engine's DDL (enums, tables in dependency order, indexes), run in
-- one transaction.
local function ddl(self, kind, ...)
  checkdb(self, kind .. "_tables")
  local n = select("#", ...)
  local opts = n > 0 and select(n, ...) or nil
  local models = {}
  if type(opts) == "table" and not opts._m then
    n = n - 1
  else
    opts = {}
  end
  for i = 1, n do
    local model = select(i, ...)
    if type(model) ~= "table" or not model._m then
      error("bad argument #" .. i .. " to '" .. kind .. "_tables' (model expected)", 3)
    end
    models[i] = model._m
  end
  local flags = {}
  for _, f in ipairs { "if_not_exists", "if_exists", "cascade" } do
    if opts[f] then flags[#flags + 1] = f end
  end
  local stmts, err = core.ddl(kind, models, unpack(flags))
  if not stmts then
    return nil, err
  end
  local ok, terr = self:transaction(function(tx)
    for _, sql in ipairs(stmts) do
      local _, e = tx:exec(sql)
      if e then
        return nil, e
      end
    end
  end)
  if not ok then
    return nil, terr
  end
  return true
end

function DB:create_tables(...) return ddl(self, "create", ...) end
function DB:drop_tables(...) return ddl(self, "drop", ...) end

-- db:exec(sql, ...) -> affected rows (0 when the statement reports none)
function DB:exec(sql, ...)
  checkdb(self, "exec")
  checksql(sql, "exec")
  local rows, affected = self:query(sql, ...)
  if not rows then
    return nil, affected
  end
  return affected or 0
end

-- The pollable protocol of the pool itself, for loops that drive it.
function DB:pollfd() return checkdb(self, "pollfd"):pollfd() end
function DB:events() return "r" end
function DB:timeout() return checkdb(self, "timeout"):timeout() end
function DB:step() return checkdb(self, "step"):step() end

-- db:set_query_timeout(seconds | nil): a deadline for every statement from
-- now on; one that passes fails with class "timeout" (the server is asked to
-- stop the statement) and the database stays usable.
function DB:set_query_timeout(seconds)
  checkdb(self, "set_query_timeout"):set_query_timeout(seconds)
end

-- db:size() -> connections open or opening, and of them idle
function DB:size()
  return checkdb(self, "size"):size()
end

function DB:close()
  if self._pool then
    self._pool:close()
    self._pool = nil
  end
end
DB.__close = DB.close

function DB:closed()
  return not self._pool or self._pool:closed()
end

function DB:__tostring()
  return "cormorant.db (" .. (self._pool and tostring(self._pool) or "closed") .. ")"
end

-- One level of a transaction: begin (or savepoint), run fn, then commit
-- when it returned normally, or roll back when it raised, returned
-- nil/false with an error, or a statement of this level failed (the
-- server cannot commit then).
local function run_level(tx, opts, fn, ...)
  local conn = tx._conn
  local ok, err = await(conn:begin(opts))
  if not ok then
    return nil, err
  end
  local level = tx._level + 1
  tx._level = level
  local prev = set_current(tx._db, tx)
  local r = pack(pcall(fn, tx, ...))
  set_current(tx._db, prev)
  tx._level = level - 1
  local failed = tx._failed[level]
  tx._failed[level] = nil
  local userfail = r[1] and not r[2] and r.n >= 3 and r[3] ~= nil
  if r[1] and not userfail and not failed then
    local done, cerr, cmd = await(conn:commit())
    if not done then
      return nil, cerr
    end
    if cmd == "ROLLBACK" then  -- the server refused to commit an aborted transaction
      return nil, core.error("transaction", "the transaction was rolled back by the server")
    end
    return true, unpack(r, 2, r.n)
  end
  local _, rerr = await(conn:rollback())
  if not r[1] then
    return nil, r[2]
  elseif userfail then
    return nil, r[3]
  elseif failed then
    return nil, failed
  end
  return nil, rerr
end

-- db:transaction([opts,] fn, ...) -> true, fn's results | nil, err.
-- fn(tx, ...) runs on one connection lent by the pool; tx:query/tx:exec/
-- tx:transaction run inside it (a nested transaction is a savepoint), and
-- so do db:query/db:exec/db:transaction called from fn's coroutine. Tasks
-- spawned from fn use the pool, not the transaction.
-- opts: isolation ("read committed", "repeatable read", "serializable"),
-- read_only, deferrable.
local function transaction(self, opts, fn, ...)
  local pool = checkdb(self, "transaction")
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
  end
  local conn, err = await(pool:acquire(self._acquire_timeout))
  if not conn then
    return nil, err
  end
  local tx = setmetatable({ _conn = conn, _db = self, _level = 0, _failed = {} }, Tx)
  local r = pack(pcall(run_level, tx, opts, fn, ...))
  tx._conn = nil
  conn:release()   -- rolls back whatever is still open
  if not r[1] then
    error(r[2], 0)
  end
  return unpack(r, 2, r.n)
end

function DB:transaction(fn, ...)
  checkdb(self, "transaction")
  local tx = current(self)
  if tx then   -- already inside one in this coroutine: a savepoint
    if type(fn) == "table" then
      error("cormorant: a nested transaction cannot take options", 2)
    end
    return tx:transaction(fn, ...)
  end
  if type(fn) == "table" then
    return transaction(self, fn, ...)
  end
  return transaction(self, nil, fn, ...)
end

local function checktx(self, name)
  if getmetatable(self) ~= Tx then
    error("cormorant: tx:" .. name .. " called without a transaction (use ':')", 3)
  end
  local conn = self._conn
  if not conn then
    error("cormorant: attempt to use a finished transaction", 3)
  end
  return conn
end

function Tx:query(sql, ...)
  local conn = checktx(self, "query")
  checksql(sql, "query")
  local rows, affected, cmd = await(conn:stream(sql, ...))
  if not rows and self._level > 0 and not self._failed[self._level] then
    self._failed[self._level] = affected
  end
  return rows, affected, cmd
end

function Tx:run(q, mt, clean, model)
  local conn = checktx(self, "run")
  local rows, affected = run_on(conn, q, mt, clean, model)
  if not rows and self._level > 0 and not self._failed[self._level] then
    self._failed[self._level] = affected
  end
  return rows, affected
end

function Tx:exec(sql, ...)
  local rows, affected = self:query(sql, ...)
  if not rows then
    return nil, affected
  end
  return affected or 0
end

-- tx:transaction(fn, ...) - a savepoint: its failure rolls back only
-- this level, and the outer transaction goes on.
function Tx:transaction(fn, ...)
  checktx(self, "transaction")
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
  end
  return run_level(self, nil, fn, ...)
end

function Tx:depth()
  return checktx(self, "depth"):depth()
end

return M
