-- model.lua - models: cm.model(name, columns [, options]) over the engine's
-- registry (cormorant.core model), instances, and changed-field tracking.
--
--   local User = cm.model("user", {
--     { "id",    "bigint", primary_key = true },   -- identity
--     { "name",  "varchar(30)" },
--     { "email", "text", null = true },
--   })
--
-- A model is a Lua table: User.name is the column as an expression
-- (User.name:eq "x"), User.c.name too (when a field is named like a
-- method); User:select(), :filter{}, :get{}, :create{}, .new{} build on it.
--
-- Instances are plain tables holding their fields (NULL is an absent
-- field), with the model's metatable: reading a field is a plain table
-- read. Changed-field tracking: rows loaded from the database (decoded in
-- C) get a snapshot of their fields as loaded (a sequence by field
-- position, made in the same C loop as the row), kept in a weak-keyed
-- table (model._clean[inst]); inst:save() compares the fields with it and
-- UPDATEs only the fields that differ (a field holding a table, json or
-- an array, counts as changed whenever it is a table: tables can be
-- changed in place). An instance without a snapshot is new: save()
-- INSERTs it.
--
-- Names: instance methods (save, delete, refresh, changed, dict, model)
-- are found through the metatable only when the instance has no field of
-- that name, and model methods (select, filter, get, create, ...) win over
-- columns of the same name on the model table; `User.c.<field>` always
-- gives the column.
local core = require "cormorant.core"
local query = require "cormorant.query"

local M = {}

local unpack = table.unpack or unpack

-- cm.sql "now()": a server-side default expression (developer SQL).
local SQL = {}
SQL.__index = SQL
function M.sql(text)
  if type(text) ~= "string" then
    error("bad argument #1 to 'sql' (string expected, got " .. type(text) .. ")", 2)
  end
  return setmetatable({ text = text }, SQL)
end

-- cm.enum("mood", { "happy", "sad" } [, schema]) -> "mood", the type name
-- columns use ("mood" or "mood[]").
local enum_labels = {}
function M.enum(name, labels, schema)
  if type(name) ~= "string" or type(labels) ~= "table" then
    error("bad arguments to 'enum' (name and list of labels expected)", 2)
  end
  local ok, err = core.enum(name, labels, schema)
  if not ok then error(err, 2) end
  local set = {}
  for _, l in ipairs(labels) do set[l] = true end
  enum_labels['"' .. name:gsub('"', '""') .. '"'] = set
  return name
end

-- ---- value checks -----------------------------------------------------------
-- What Lua values a column takes, from the engine's canonical type text,
-- checked before anything is sent. The engine encodes the value for the
-- column's type; these checks only refuse Lua values of the wrong kind
-- early, with class "data", instead of a server error after a round trip.

local function kind_of(typ)
  local base, dims = typ:gsub("%[%]", "")
  local k
  if base == "bigint" or base == "integer" or base == "smallint" then k = "int"
  elseif base == "real" or base == "double precision" then k = "float"
  elseif base:find("^numeric") then k = "numeric"
  elseif base == "boolean" then k = "bool"
  elseif base == "text" or base:find("^varchar") or base:find("^char") then k = "text"
  elseif base == "bytea" then k = "bytea"
  elseif base == "json" or base == "jsonb" then k = "json"
  elseif base:find("^date") or base:find("^time") or base:find("^interval") or base == "uuid" then
    k = "string"
  elseif enum_labels[base] then k = "enum"
  else k = "any" end
  local maxlen = tonumber(base:match("^varchar%((%d+)%)")) or tonumber(base:match("^char%((%d+)%)"))
  return k, dims, maxlen, enum_labels[base]
end

local ulen = utf8 and utf8.len or function(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

local is_cdata = rawget(_G, "jit") and function(v) return type(v) == "cdata" end
  or function() return false end

local function data_err(model, field, msg)
  return core.error("data", model._name .. "." .. field .. ": " .. msg)
end

local json_encode
do
  local ok, cjson = pcall(require, "cjson")
  if ok and type(cjson) == "table" then json_encode = cjson.encode end
end

-- Checks one scalar v for column info ci; returns the value to send
-- (possibly converted: bytea wrapped, json encoded) or nil, err.
local function check_scalar(model, f, ci, v)
  if v == core.null then return v end
  local k, tv = ci.kind, type(v)
  if k == "int" then
    if tv == "number" then
      if v % 1 ~= 0 then return nil, data_err(model, f, "expected an integer, got " .. v) end
    elseif tv == "string" then
      if not v:find("^%s*[-+]?%d+%s*$") then
        return nil, data_err(model, f, "expected an integer, got string " .. string.format("%q", v))
      end
    elseif not is_cdata(v) then
      return nil, data_err(model, f, "expected an integer, got " .. tv)
    end
  elseif k == "float" then
    if tv ~= "number" and not is_cdata(v) then
      return nil, data_err(model, f, "expected a number, got " .. tv)
    end
  elseif k == "numeric" then
    if tv ~= "number" and tv ~= "string" and not is_cdata(v) then
      return nil, data_err(model, f, "expected a number or decimal string, got " .. tv)
    end
  elseif k == "bool" then
    if tv ~= "boolean" then return nil, data_err(model, f, "expected a boolean, got " .. tv) end
  elseif k == "text" or k == "string" then
    if tv ~= "string" then return nil, data_err(model, f, "expected a string, got " .. tv) end
    local max = ci.max_length
    if max and k == "text" and (ulen(v) or #v) > max then
      return nil, data_err(model, f, "longer than " .. max .. " characters")
    end
  elseif k == "enum" then
    if tv ~= "string" or not ci.labels[v] then
      return nil, data_err(model, f, "not a label of its enum: " .. tostring(v))
    end
  elseif k == "bytea" then
    if tv == "string" then return core.bytea(v) end
    if not (tv == "table" and getmetatable(v) == getmetatable(core.bytea(""))) then
      return nil, data_err(model, f, "expected a string of bytes, got " .. tv)
    end
  elseif k == "json" then
    if tv ~= "string" then
      if not json_encode then
        return nil, data_err(model, f, "a " .. tv .. " needs lua-cjson to be sent as JSON; pass JSON text")
      end
      local ok, text = pcall(json_encode, v)
      if not ok then return nil, data_err(model, f, "cannot encode as JSON: " .. tostring(text)) end
      return text
    end
  end
  return v
end

local function check_array(model, f, ci, v, depth)
  if type(v) ~= "table" or (getmetatable(v) and getmetatable(v) == getmetatable(core.bytea(""))) then
    return nil, data_err(model, f, "expected an array (a table), got " .. type(v))
  end
  local out = {}
  for i = 1, #v do
    local item, err
    if type(v[i]) == "table" and getmetatable(v[i]) == nil and depth > 1 then
      item, err = check_array(model, f, ci, v[i], depth - 1)
    else
      item, err = check_scalar(model, f, ci, v[i])
    end
    if item == nil then return nil, err end
    out[i] = item
  end
  return out
end

-- values (field -> value) checked for model; mode "insert" also refuses
-- a missing required field. Returns a new table of values to send, or
-- nil, err (class "programming" for an unknown field, "data" otherwise).
local function check_values(model, values, mode)
  local out = {}
  for k, v in pairs(values) do
    local ci = model._info[k]
    if not ci then
      return nil, core.error("programming", "model " .. model._name .. " has no field " .. tostring(k))
    end
    if v == core.null then
      if not ci.null then return nil, data_err(model, k, "NULL for a NOT NULL column") end
      out[k] = v
    elseif query.isexpr(v) and mode == "update" then
      out[k] = v
    else
      local sent, err
      if ci.dims > 0 then
        sent, err = check_array(model, k, ci, v, ci.dims)
      else
        sent, err = check_scalar(model, k, ci, v)
      end
      if sent == nil then return nil, err end
      out[k] = sent
    end
  end
  if mode == "insert" then
    for _, f in ipairs(model._fields) do
      local ci = model._info[f]
      if out[f] == nil and ci.required then
        return nil, data_err(model, f, "nil for a NOT NULL column without a default")
      end
    end
  end
  return out
end
M.check_values = check_values

-- ---- lookups ----------------------------------------------------------------

local ops = {
  eq = "eq", exact = "eq", ne = "ne", gt = "gt", gte = "ge", lt = "lt", lte = "le",
  contains = "contains", icontains = "icontains", startswith = "startswith",
  istartswith = "istartswith", endswith = "endswith", iendswith = "iendswith",
  like = "like", ilike = "ilike",
}

-- { name = "x", id__gte = 1, email__isnull = true, id__in = {1, 2} } ->
-- one expression (ANDed, in field order for a stable shape), or true for
-- none, or nil, err.
local function lookups(model, t)
  local parts = {}
  for key, v in pairs(t) do
    if type(key) ~= "string" then
      return nil, core.error("programming", "lookup keys are field names, got " .. type(key))
    end
    local f, op = key:match("^(.-)__(%a+)$")
    if not f or not model._info[f] then f, op = key, "eq" end
    local ci = model._info[f]
    if not ci then
      return nil, core.error("programming", "model " .. model._name .. " has no field " .. f)
    end
    local col = model._cols[f]
    local e, err
    if op == "isnull" then
      if type(v) ~= "boolean" then return nil, data_err(model, f, "__isnull takes a boolean") end
      e = v and col:is_null() or col:is_not_null()
    elseif op == "in" or op == "notin" then
      if type(v) ~= "table" then return nil, data_err(model, f, "__in takes a list") end
      local list = {}
      for i = 1, #v do
        local item
        item, err = check_scalar(model, f, ci, v[i])
        if item == nil then return nil, err end
        list[i] = item
      end
      e, err = (op == "in") and col:in_(list) or col:not_in(list)
    elseif ops[op] then
      local m = ops[op]
      if v == nil or v == core.null then
        if m ~= "eq" and m ~= "ne" then return nil, data_err(model, f, "NULL in a comparison") end
        e = (m == "eq") and col:is_null() or col:is_not_null()
      else
        local sent
        if m == "contains" or m == "icontains" or m:find("startswith") or m:find("endswith")
            or m:find("like") then
          if type(v) ~= "string" then return nil, data_err(model, f, "__" .. op .. " takes a string") end
          sent = v
        elseif ci.dims > 0 then
          sent, err = check_array(model, f, ci, v, ci.dims)
        else
          sent, err = check_scalar(model, f, ci, v)
        end
        if sent == nil then return nil, err end
        e, err = col[m](col, sent)
      end
    else
      return nil, core.error("programming", "unknown lookup __" .. op)
    end
    if not e then return nil, err end
    parts[#parts + 1] = { model._index[f], key, e }
  end
  if #parts == 0 then return true end
  table.sort(parts, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local exprs = {}
  for i, p in ipairs(parts) do exprs[i] = p[3] end
  if #exprs == 1 then return exprs[1] end
  return core.and_(unpack(exprs))
end
M.lookups = lookups

-- ---- models -----------------------------------------------------------------

local Model = {}     -- class methods (User:select(), User:create{}, ...)
Model.__index = Model
M.Model = Model

local Instance = {}  -- instance methods (inst:save(), ...)
M.Instance = Instance

M.default_db = function() return nil end

local function db_of(model)
  local db = model._db or M.default_db()
  if not db then
    error("cormorant: no database: connect first (cm.connect) or use Model:using(db)", 3)
  end
  return db
end
query.hooks.default_db = db_of
query.hooks.lookups = lookups
query.hooks.check_values = check_values

local fk_actions = { cascade = "cascade", restrict = "restrict", ["set null"] = "set null",
  set_null = "set null", ["set default"] = "set default", set_default = "set default",
  ["no action"] = "no action", no_action = "no action" }

local function defn_error(name, msg)
  error("cormorant.model " .. name .. ": " .. tostring(msg), 3)
end

-- cm.model(name, columns [, options]) -> Model. Raises on a bad definition
-- (the engine's message). Column entries: { name, type, primary_key=,
-- null=, default= (constant or cm.sql "..."), unique=, index=,
-- references= Model (its primary key) or { Model, "field" }, on_delete=,
-- on_update=, max_length=, auto= false (no identity/uuid default) }.
-- options: schema, primary_key = { fields }, unique = { { fields }... },
-- indexes = { { fields..., unique=, method=, where= }... }, checks = { sql
-- or { name=, sql } ... }.
function M.model(name, columns, options)
  if type(name) ~= "string" then
    error("bad argument #1 to 'model' (string expected, got " .. type(name) .. ")", 2)
  end
  if type(columns) ~= "table" then
    error("bad argument #2 to 'model' (table expected, got " .. type(columns) .. ")", 2)
  end
  options = options or {}
  local m, err = core.model(name, options.schema)
  if not m then defn_error(name, err) end
  local model = setmetatable({ _name = name, _m = m, _fields = {}, _index = {}, _info = {},
    _cols = {}, _pk = {}, _clean = setmetatable({}, { __mode = "k" }) }, Model)
  local fks = {}
  for i, c in ipairs(columns) do
    local cname, ctype = c[1], c[2]
    if type(cname) ~= "string" or type(ctype) ~= "string" then
      defn_error(name, "column " .. i .. " needs a name and a type")
    end
    local t = ctype
    if c.max_length and (t == "varchar" or t == "text") then t = "varchar(" .. c.max_length .. ")" end
    local idx
    idx, err = m:add_column(cname, t, { null = c.null, primary_key = c.primary_key,
      unique = c.unique, no_auto = c.auto == false })
    if not idx then defn_error(name, err) end
    if c.default ~= nil then
      local ok
      if getmetatable(c.default) == SQL then
        ok, err = m:set_default_sql(idx, c.default.text)
      else
        ok, err = m:set_default(idx, c.default)
      end
      if not ok then defn_error(name, err) end
    end
    if c.index then
      local ok
      ok, err = m:add_index(nil, { idx }, false)
      if not ok then defn_error(name, err) end
    end
    if c.references then
      fks[#fks + 1] = { idx, c }
    end
    model._fields[i] = cname
    model._index[cname] = idx
  end
  if options.primary_key then
    local cols = {}
    for i, f in ipairs(options.primary_key) do cols[i] = model._index[f] end
    local ok
    ok, err = m:set_primary_key(cols)
    if not ok then defn_error(name, err) end
  end
  for _, fk in ipairs(fks) do
    local idx, c = fk[1], fk[2]
    local target, tfield = c.references, nil
    if type(target) == "table" and getmetatable(target) ~= Model then
      target, tfield = target[1], target[2]
    end
    if getmetatable(target) ~= Model then
      defn_error(name, "references of " .. c[1] .. " must be a model")
    end
    local tcols = tfield and { target._index[tfield] } or nil
    local od = c.on_delete and fk_actions[c.on_delete]
    local ou = c.on_update and fk_actions[c.on_update]
    if (c.on_delete and not od) or (c.on_update and not ou) then
      defn_error(name, "unknown foreign key action for " .. c[1])
    end
    local ok
    ok, err = m:add_foreign_key(nil, { idx }, target._m, tcols, od, ou)
    if not ok then defn_error(name, err) end
  end
  local function cols_of(list)
    local cols = {}
    for i, f in ipairs(list) do
      cols[i] = model._index[f]
      if not cols[i] then defn_error(name, "no field " .. tostring(f)) end
    end
    return cols
  end
  for _, u in ipairs(options.unique or {}) do
    local ok
    ok, err = m:add_unique(u.name, cols_of(u))
    if not ok then defn_error(name, err) end
  end
  for _, ix in ipairs(options.indexes or {}) do
    local ok
    ok, err = m:add_index(ix.name, cols_of(ix), ix.unique, ix.method, ix.where)
    if not ok then defn_error(name, err) end
  end
  for _, ck in ipairs(options.checks or {}) do
    local ok
    if type(ck) == "string" then
      ok, err = m:add_check(nil, ck)
    else
      ok, err = m:add_check(ck.name, ck.sql or ck[1])
    end
    if not ok then defn_error(name, err) end
  end
  -- What each field takes, the columns as expressions, the primary key.
  model.c = {}
  for _, f in ipairs(model._fields) do
    local idx = model._index[f]
    local _, typ, flags = m:column_info(idx)
    local kind, dims, maxlen, labels = kind_of(typ)
    local c = columns[idx + 1]
    model._info[f] = { index = idx, type = typ, kind = kind, dims = dims, labels = labels,
      max_length = c.max_length or maxlen, null = flags.null,
      required = not flags.null and not flags.has_default and not flags.identity }
    local col = m:column(idx)
    model._cols[f] = col
    model.c[f] = col
    if rawget(Model, f) == nil and f:sub(1, 1) ~= "_" and f ~= "c" then
      model[f] = col
    end
  end
  for i, idx in ipairs(m:primary_key()) do
    model._pk[i] = model._fields[idx + 1]
  end
  -- The instances' metatable.
  model._mt = {
    __index = Instance,
    __tostring = function(inst)
      local parts = {}
      for _, f in ipairs(model._fields) do
        local v = rawget(inst, f)
        if v ~= nil then parts[#parts + 1] = f .. "=" .. tostring(v) end
      end
      return "<" .. name .. " " .. table.concat(parts, " ") .. ">"
    end,
    model = model,
  }
  return model
end

function Model:__tostring()
  return "cormorant.model " .. self._name
end

-- Model:using(db) -> the model's default database from now on.
function Model:using(db)
  self._db = db
  return self
end

-- Model:select([cols...]) -> Query. cols: column expressions, or
-- { expr, "alias" } pairs (computed columns land in the row under alias).
function Model:select(...)
  local q = query.new(self)
  local n = select("#", ...)
  if n > 0 then
    q.cols = {}
    for i = 1, n do
      local c = select(i, ...)
      if type(c) == "table" then
        q.cols[i] = { c[1], c[2] }
      else
        q.cols[i] = { c }
      end
      if not query.isexpr(q.cols[i][1]) then
        error("bad argument #" .. i .. " to 'select' (expression expected)", 2)
      end
    end
  end
  return q
end

function Model:where(...) return self:select():where(...) end

-- Model:filter{...} -> list of instances | nil, err
function Model:filter(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'filter' (table expected, got " .. type(t) .. ")", 2)
  end
  return self:select():filter(t):all()
end

-- Model:get{...} -> instance | nil, err ("not_found", "multiple_found")
function Model:get(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'get' (table expected, got " .. type(t) .. ")", 2)
  end
  return self:select():filter(t):get()
end

function Model:all() return self:select():all() end
function Model:count() return self:select():count() end

-- Model.new{...} -> a new instance (not saved) | nil, err
function Model.new(values)
  error("cormorant: call new on a model: User.new{...}", 2)
end

local function new_instance(model, values)
  if type(values) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(values) .. ")", 3)
  end
  local inst = {}
  for k, v in pairs(values) do
    if not model._info[k] then
      return nil, core.error("programming", "model " .. model._name .. " has no field " .. tostring(k))
    end
    if v ~= core.null then inst[k] = v end
  end
  return setmetatable(inst, model._mt)
end

-- Model:create{...} -> the inserted instance (fields the server filled
-- included) | nil, err
function Model:create(values)
  if type(values) ~= "table" then
    error("bad argument #1 to 'create' (table expected, got " .. type(values) .. ")", 2)
  end
  local vals, err = check_values(self, values, "insert")
  if not vals then return nil, err end
  local rows
  rows, err = query.insert(self, { vals }):using(self._db):all()
  if not rows then return nil, err end
  return rows[1]
end

-- Model:insert(row or {rows...}) -> Insert (:on_conflict(...), :all(), :exec())
function Model:insert(rows)
  if type(rows) ~= "table" then
    error("bad argument #1 to 'insert' (table expected, got " .. type(rows) .. ")", 2)
  end
  if rows[1] == nil then rows = { rows } end
  local checked = {}
  for i, r in ipairs(rows) do
    local vals, err = check_values(self, r, "insert")
    if not vals then
      local ins = query.insert(self, {})
      ins.build = function() return nil, err end
      return ins
    end
    checked[i] = vals
  end
  return query.insert(self, checked):using(self._db)
end

-- Model:upsert(values, conflict_fields) -> instance: INSERT ... ON CONFLICT
-- (fields) DO UPDATE SET every other given field to the new value.
function Model:upsert(values, conflict)
  if type(values) ~= "table" or type(conflict) ~= "table" then
    error("bad arguments to 'upsert' (values and conflict fields expected)", 2)
  end
  local rows, err = self:insert(values):on_conflict(conflict, "update"):all()
  if not rows then return nil, err end
  return rows[1]
end

-- Model:bulk_create{ rows... } -> list of instances
function Model:bulk_create(rows)
  return self:insert(rows):all()
end

-- ---- instances --------------------------------------------------------------

local function model_of(inst)
  local mt = getmetatable(inst)
  local model = type(mt) == "table" and rawget(mt, "model")
  if not model then
    error("cormorant: instance method called without an instance (use ':')", 3)
  end
  return model
end

-- Copies the fields of row (just loaded) into inst, and its snapshot.
local function adopt(model, inst, row)
  for _, f in ipairs(model._fields) do
    rawset(inst, f, rawget(row, f))
  end
  model._clean[inst] = model._clean[row]
  model._clean[row] = nil
end

local function pk_where(model, inst, clean)
  if #model._pk == 0 then
    return nil, core.error("programming", "model " .. model._name .. " has no primary key")
  end
  local exprs = {}
  for i, f in ipairs(model._pk) do
    local v = clean and clean[model._info[f].index + 1]
    if v == nil then v = rawget(inst, f) end
    if v == nil then
      return nil, core.error("programming", model._name .. "." .. f .. " (primary key) is nil")
    end
    exprs[i] = model._cols[f]:eq(v)
  end
  if #exprs == 1 then return exprs[1] end
  return core.and_(unpack(exprs))
end

-- inst:changed() -> { field = true, ... } of the fields save() would send
function Instance:changed()
  local model = model_of(self)
  local clean = model._clean[self]
  local out = {}
  for i, f in ipairs(model._fields) do
    local v = rawget(self, f)
    if not clean or v ~= clean[i] or type(v) == "table" then
      if clean or v ~= nil then out[f] = true end
    end
  end
  return out
end

-- inst:save() -> inst | nil, err. New instances are INSERTed (RETURNING
-- fills id and defaults); loaded ones UPDATE only the fields changed since
-- loading (none: nothing is sent).
function Instance:save()
  local model = model_of(self)
  local clean = model._clean[self]
  local db = model._db
  if not clean then
    local vals = {}
    for _, f in ipairs(model._fields) do vals[f] = rawget(self, f) end
    local err
    vals, err = check_values(model, vals, "insert")
    if not vals then return nil, err end
    local rows, ierr = query.insert(model, { vals }):using(db):all()
    if not rows then return nil, ierr end
    adopt(model, self, rows[1])
    return self
  end
  local changes, any = {}, false
  for i, f in ipairs(model._fields) do
    local v = rawget(self, f)
    if v ~= clean[i] or type(v) == "table" then
      changes[f] = v == nil and core.null or v
      any = true
    end
  end
  if not any then return self end
  local vals, err = check_values(model, changes, "update")
  if not vals then return nil, err end
  local where
  where, err = pk_where(model, self, clean)
  if not where then return nil, err end
  local q
  q, err = core.update(model._m)
  if not q then return nil, err end
  for f, v in pairs(vals) do
    local ok, serr = q:set(model._index[f], v)
    if not ok then return nil, serr end
  end
  q:where(where)
  q:returning()
  local rows, rerr = query.run({ model = model, db = db }, q, model._mt, model._clean)
  if not rows then return nil, rerr end
  if #rows == 0 then
    return nil, core.error("not_found", model._name .. " row to update is gone")
  end
  adopt(model, self, rows[1])
  return self
end

-- inst:delete() -> true | nil, err ("not_found" when the row is gone)
function Instance:delete()
  local model = model_of(self)
  local where, err = pk_where(model, self, model._clean[self])
  if not where then return nil, err end
  local n
  n, err = query.new(model):using(model._db):where(where):delete()
  if not n then return nil, err end
  model._clean[self] = nil
  if n == 0 then
    return nil, core.error("not_found", model._name .. " row to delete is gone")
  end
  return true
end

-- inst:refresh() -> inst | nil, err: reloads every field from the database
function Instance:refresh()
  local model = model_of(self)
  local where, err = pk_where(model, self, model._clean[self])
  if not where then return nil, err end
  local row
  row, err = query.new(model):using(model._db):where(where):get()
  if not row then return nil, err end
  adopt(model, self, row)
  return self
end

-- inst:dict() -> a plain table of the fields
function Instance:dict()
  local model = model_of(self)
  local out = {}
  for _, f in ipairs(model._fields) do out[f] = rawget(self, f) end
  return out
end

function Instance:model()
  return model_of(self)
end

-- Model.new must be reachable as User.new{...} (a dot call): each model
-- gets its own closure.
local model_ctor = M.model
function M.model(name, columns, options)
  local model = model_ctor(name, columns, options)
  rawset(model, "new", function(values) return new_instance(model, values) end)
  return model
end

return M
