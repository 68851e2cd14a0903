-- query.lua - the query surface of models, over the engine's built queries
-- (cormorant.core select/insert/update/delete and expressions).
--
--   User:select():where(User.name:eq "x"):order_by(User.id:desc()):limit(10):all()
--
-- A Query records its clauses and builds one engine query per execution,
-- so the same Query can give :all(), :count(), :exists(), :update{...},
-- :delete() and the batches of :iter(). Clause methods add to the query and
-- return it. The engine compiles each query shape once and caches it, so
-- rebuilding costs no SQL work. Rows are decoded in C (query:take) straight
-- into instance tables carrying the model's metatable.
local core = require "cormorant.core"

local M = {}

local Query = {}
Query.__index = Query
M.Query = Query

local unpack = table.unpack or unpack

-- Set by model.lua: the model helpers the queries need.
M.hooks = {}

function M.new(model)
  return setmetatable({ model = model, ops = {}, n = 0 }, Query)
end

local isexpr = core.is_expr
M.isexpr = isexpr

local function checkexpr(v, name, level)
  if not isexpr(v) then
    error("bad argument to '" .. name .. "' (expression expected, got " .. type(v) .. ")",
      (level or 2) + 1)
  end
  return v
end

local function add(self, op, a, b, c)
  local n = self.n + 1
  self.ops[n] = { op, a, b, c }
  self.n = n
  return self
end

local function copy(self)
  local q = setmetatable({ model = self.model, ops = {}, n = self.n, cols = self.cols,
    db = self.db }, Query)
  for i = 1, self.n do q.ops[i] = self.ops[i] end
  return q
end
Query.clone = copy

function Query:where(e, ...)
  checkexpr(e, "where")
  for i = 1, select("#", ...) do
    checkexpr((select(i, ...)), "where")
  end
  if select("#", ...) > 0 then e = core.and_(e, ...) end
  return add(self, "where", e)
end

-- q:filter{ field = v, field__gte = v, ... }: Django lookups, ANDed.
function Query:filter(lookups)
  if type(lookups) ~= "table" then
    error("bad argument #1 to 'filter' (table expected, got " .. type(lookups) .. ")", 2)
  end
  local e, err = M.hooks.lookups(self.model, lookups)
  if not e then
    self.err = self.err or err
    return self
  end
  if e ~= true then add(self, "where", e) end
  return self
end

function Query:order_by(...)
  for i = 1, select("#", ...) do
    add(self, "order_by", checkexpr((select(i, ...)), "order_by"))
  end
  return self
end

function Query:group_by(...)
  for i = 1, select("#", ...) do
    add(self, "group_by", checkexpr((select(i, ...)), "group_by"))
  end
  return self
end

function Query:having(e) return add(self, "having", checkexpr(e, "having")) end

local function count_arg(n, name)
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    error("bad argument #1 to '" .. name .. "' (non-negative integer expected)", 3)
  end
  return n
end

function Query:limit(n) self.lim = count_arg(n, "limit"); return self end
function Query:offset(n) self.off = count_arg(n, "offset"); return self end

-- q:distinct() or q:distinct(expr, ...) for DISTINCT ON
function Query:distinct(...)
  if select("#", ...) == 0 then return add(self, "distinct") end
  for i = 1, select("#", ...) do
    add(self, "distinct_on", checkexpr((select(i, ...)), "distinct"))
  end
  return self
end

-- q:join(Model [, on_expr [, "inner"|"left"]]): on defaults to the one
-- foreign key between the models.
function Query:join(model, on, kind)
  if type(model) ~= "table" or not model._m then
    error("bad argument #1 to 'join' (model expected)", 2)
  end
  if on ~= nil then checkexpr(on, "join") end
  return add(self, "join", model._m, kind or "inner", on)
end
function Query:left_join(model, on) return self:join(model, on, "left") end

-- q:lock("update"|"share"|... [, "nowait"|"skip locked"])
function Query:lock(mode, wait) return add(self, "lock", mode or "update", wait) end

-- q:using(db): run on this database instead of the model's default.
function Query:using(db) self.db = db; return self end

-- Rebuilds the clauses onto engine query q; `what` leaves some out.
local function apply(self, q, plain)
  for i = 1, self.n do
    local op = self.ops[i]
    local name = op[1]
    if not (plain and (name == "order_by" or name == "distinct" or name == "distinct_on"
        or name == "lock")) then
      local ok, err
      if name == "join" then
        ok, err = q:join(op[2], op[3], op[4])
      elseif name == "distinct" then
        ok, err = q:distinct()
      elseif name == "lock" then
        ok, err = q:lock(op[2], op[3])
      else
        ok, err = q[name](q, op[2])
      end
      if not ok then return nil, err end
    end
  end
  return q
end

local function check_select_cols(self, q)
  if self.cols then
    for _, c in ipairs(self.cols) do
      local ok, err = q:select_expr(c[1], c[2])
      if not ok then return nil, err end
    end
  end
  return q
end

-- The engine query of a SELECT; opts.limit/offset override.
function Query:build(limit, offset)
  if self.err then return nil, self.err end
  local q, err = core.select(self.model._m)
  if not q then return nil, err end
  local ok
  ok, err = check_select_cols(self, q)
  if not ok then return nil, err end
  ok, err = apply(self, q)
  if not ok then return nil, err end
  limit = limit or self.lim
  offset = offset or self.off
  if limit then q:limit(limit) end
  if offset then q:offset(offset) end
  return q
end

-- Runs engine query q on the query's database; decodes into instances
-- (mt, clean) or plain tables.
local function run(self, q, mt, clean)
  local db = self.db or M.hooks.default_db(self.model)
  return db:run(q, mt, clean, self.model._m)
end
M.run = run

-- q:all() -> list of instances | nil, err
function Query:all()
  local q, err = self:build()
  if not q then return nil, err end
  local model = self.model
  local rows, aerr = run(self, q, model._mt, model._clean)
  if not rows then return nil, aerr end
  return rows
end
Query.__call = Query.all

-- q:dicts() -> list of plain tables (no metatable, no tracking)
function Query:dicts()
  local q, err = self:build()
  if not q then return nil, err end
  return run(self, q)
end

-- q:first() -> instance | nil (none) | nil, err
function Query:first()
  local q, err = self:build(1)
  if not q then return nil, err end
  local rows, rerr = run(self, q, self.model._mt, self.model._clean)
  if not rows then return nil, rerr end
  return rows[1]
end

-- q:get() -> the one instance | nil, err (class "not_found" or "multiple_found")
function Query:get()
  local q, err = self:build(2)
  if not q then return nil, err end
  local rows, rerr = run(self, q, self.model._mt, self.model._clean)
  if not rows then return nil, rerr end
  if #rows == 0 then
    return nil, core.error("not_found", "no " .. self.model._name .. " matches")
  elseif #rows > 1 then
    return nil, core.error("multiple_found", "more than one " .. self.model._name .. " matches")
  end
  return rows[1]
end

-- One value of an aggregate over the query (ordering and limits ignored).
local function scalar(self, agg, e, distinct)
  if self.err then return nil, self.err end
  local q, err = core.select(self.model._m)
  if not q then return nil, err end
  local a
  a, err = core.agg(agg, e, distinct)
  if not a then return nil, err end
  q:select_expr(a, "value")
  local ok
  ok, err = apply(self, q, true)
  if not ok then return nil, err end
  local rows, rerr = run(self, q)
  if not rows then return nil, rerr end
  return rows[1].value
end

-- q:count([expr [, distinct]]) -> integer
function Query:count(e, distinct)
  if e ~= nil then checkexpr(e, "count") end
  return scalar(self, "count", e, distinct)
end
function Query:sum(e) return scalar(self, "sum", checkexpr(e, "sum")) end
function Query:avg(e) return scalar(self, "avg", checkexpr(e, "avg")) end
function Query:min(e) return scalar(self, "min", checkexpr(e, "min")) end
function Query:max(e) return scalar(self, "max", checkexpr(e, "max")) end

-- q:exists() -> boolean
function Query:exists()
  if self.err then return nil, self.err end
  local q, err = core.select(self.model._m)
  if not q then return nil, err end
  q:select_expr(core.raw("1"), "one")
  local ok
  ok, err = apply(self, q, true)
  if not ok then return nil, err end
  q:limit(1)
  local rows, rerr = run(self, q)
  if not rows then return nil, rerr end
  return #rows > 0
end

-- q:returning(): :update{} and :delete() return the rows they changed
-- (instances, from RETURNING) instead of a count.
function Query:returning() self.ret = true; return self end

-- Runs an UPDATE or DELETE: the count, or with :returning() the rows.
local function run_write(self, q)
  if self.ret then
    q:returning()
    return run(self, q, self.model._mt, self.model._clean)
  end
  local rows, n = run(self, q)
  if not rows then return nil, n end
  return n or 0
end

-- q:update{ field = value | expr, ... } -> rows updated
function Query:update(values)
  if type(values) ~= "table" then
    error("bad argument #1 to 'update' (table expected, got " .. type(values) .. ")", 2)
  end
  if self.err then return nil, self.err end
  local model = self.model
  local vals, verr = M.hooks.check_values(model, values, "update")
  if not vals then return nil, verr end
  local q, err = core.update(model._m)
  if not q then return nil, err end
  local any = false
  for _, f in ipairs(model._fields) do
    local v = vals[f]
    if v ~= nil then
      any = true
      local ok, serr = q:set(model._index[f], v)
      if not ok then return nil, serr end
    end
  end
  if not any then return self.ret and {} or 0 end
  local ok
  ok, err = apply(self, q, true)
  if not ok then return nil, err end
  return run_write(self, q)
end

-- q:delete() -> rows deleted
function Query:delete()
  if self.err then return nil, self.err end
  local q, err = core.delete(self.model._m)
  if not q then return nil, err end
  local ok
  ok, err = apply(self, q, true)
  if not ok then return nil, err end
  return run_write(self, q)
end

-- for inst in q:iter([batch]) do ... end
-- Streams in batches of `batch` rows (default 500), so memory stays
-- bounded: by keyset on the primary key (WHERE pk > last ORDER BY pk
-- LIMIT batch) when the query has no ordering, limit or offset of its own
-- and the model has a one-column primary key, else by LIMIT/OFFSET over
-- the query's own ordering. Each batch is one statement, so rows changed
-- between batches may be seen or missed (no snapshot; run it inside
-- db:transaction with isolation "repeatable read" for one). An error
-- raises the error object.
function Query:iter(batch)
  batch = batch or 500
  count_arg(batch, "iter")
  if batch < 1 then error("bad argument #1 to 'iter' (batch must be >= 1)", 2) end
  local model = self.model
  local has_order = false
  for i = 1, self.n do
    if self.ops[i][1] == "order_by" then has_order = true end
  end
  local keyset = not has_order and not self.lim and not self.off and #model._pk == 1
  local rows, i, done = nil, 0, false
  local last, taken = nil, 0
  local pkname = model._pk[1]
  local pkcol = pkname and model[pkname]
  local function fetch()
    local q, err
    if keyset then
      local sub = copy(self)
      if last ~= nil then sub:where(pkcol:gt(last)) end
      sub:order_by(pkcol)
      q, err = sub:build(batch)
    else
      local want = batch
      if self.lim then
        want = math.min(batch, self.lim - taken)
        if want <= 0 then return {} end
      end
      q, err = self:build(want, (self.off or 0) + taken)
    end
    if not q then error(err, 0) end
    local r, rerr = run(self, q, model._mt, model._clean)
    if not r then error(rerr, 0) end
    return r
  end
  return function()
    if done then return nil end
    if not rows or i >= #rows then
      if rows and #rows < batch then done = true; return nil end
      rows, i = fetch(), 0
      if #rows == 0 then done = true; return nil end
      taken = taken + #rows
      if keyset then last = rows[#rows][pkname] end
    end
    i = i + 1
    return rows[i]
  end
end

-- Text of the SELECT this query runs (for debugging and tests).
function Query:sql()
  local q, err = self:build()
  if not q then return nil, err end
  local ok, cerr = q:compile()
  if not ok then return nil, cerr end
  return q:text()
end

-- ---- INSERT ----------------------------------------------------------------

local Insert = {}
Insert.__index = Insert
M.Insert = Insert

-- Model:insert(row | {rows...}) -> an Insert; :on_conflict(fields, action
-- [, update_fields]) then :all() (instances) or :exec() (count).
function M.insert(model, rows)
  return setmetatable({ model = model, rows = rows }, Insert)
end

function Insert:on_conflict(fields, action)
  self.conflict = { fields = fields or {}, action = action or "nothing" }
  return self
end

function Insert:using(db) self.db = db; return self end

function Insert:build(returning)
  local model = self.model
  local q, err = core.insert(model._m)
  if not q then return nil, err end
  for _, row in ipairs(self.rows) do
    local ok, verr = q:values(model._m, row)
    if not ok then return nil, verr end
  end
  if self.conflict then
    local cols = {}
    for i, f in ipairs(self.conflict.fields) do
      cols[i] = model._index[f]
      if not cols[i] then
        return nil, core.error("programming", "model " .. model._name .. " has no field " .. tostring(f))
      end
    end
    local ok, cerr = q:on_conflict(cols, self.conflict.action)
    if not ok then return nil, cerr end
  end
  if returning then q:returning() end
  return q
end

function Insert:all()
  local q, err = self:build(true)
  if not q then return nil, err end
  return run(self, q, self.model._mt, self.model._clean)
end

function Insert:exec()
  local q, err = self:build(false)
  if not q then return nil, err end
  local rows, n = run(self, q)
  if not rows then return nil, n end
  return n or 0
end

return M
