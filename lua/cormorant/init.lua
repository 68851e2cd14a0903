-- cormorant - an async ORM for PostgreSQL over libcorm: the public API.
--
--   local cm = require "cormorant"
--   cm.run(function()
--     local db = assert(cm.connect(os.getenv("DATABASE_URL"), { max_size = 4 }))
--     local rows = assert(db:query("SELECT $1::int8 + 1 AS n", 41))
--   end)
--
-- Inside cm.run calls yield to the built-in scheduler; elsewhere they block.
local core = require "cormorant.core"
local wait = require "cormorant.wait"
local sched = require "cormorant.sched"
local db = require "cormorant.db"
local model = require "cormorant.model"

local M = {
  _VERSION = "cormorant 0.1 (libcorm " .. core.engine_version .. ")",
  core = core,
  wait = wait,
  null = core.null,      -- NULL items of arrays and JSON null (the same value as cjson.null)
  run = sched.run,
  spawn = sched.spawn,
  sleep = sched.sleep,
  await = db.await,
  bytea = core.bytea,    -- cm.bytea(s): bind a string as bytea (strings bind as text)
}

-- LuaJIT: int8 values beyond 2^53 arrive as int64_t cdata (exact), and
-- int64_t/uint64_t cdata can be passed as parameters.
if not core.has_integers then
  local ok, ffi = pcall(require, "ffi")
  if ok then
    local int64_box = ffi.typeof("int64_t[1]")
    core.set_hook("int64", function(bytes)
      local box = int64_box()
      ffi.copy(box, bytes, 8)
      return box[0]
    end)
    local int64_t, uint64_t = ffi.typeof("int64_t"), ffi.typeof("uint64_t")
    core.set_hook("cdata", function(v)
      if ffi.istype(int64_t, v) or ffi.istype(uint64_t, v) then
        return (tostring(v):gsub("U?LL$", ""))
      end
      return nil
    end)
    -- cm.int64("9007199254740993") -> an exact int64_t cdata
    M.int64 = function(v)
      if type(v) == "string" then
        local neg, digits = v:match("^%s*(-?)(%d+)%s*$")
        if not digits then
          error("cormorant.int64: not an integer: " .. v, 2)
        end
        local r = int64_t(0)
        for i = 1, #digits do
          r = r * 10 + (digits:byte(i) - 48)
        end
        return neg == "-" and -r or r
      end
      return int64_t(v)
    end
  end
end

-- json/jsonb columns: built into tables by the binding (the engine's JSON
-- reader). cm.set_json_decoder(fn) decodes the text with fn instead,
-- cm.set_json_decoder(false) keeps the text, cm.set_json_decoder(nil) goes
-- back to the built-in reader.
function M.set_json_decoder(fn)
  if fn ~= nil and fn ~= false and type(fn) ~= "function" then
    error("bad argument #1 to 'set_json_decoder' (function, false or nil expected, got "
          .. type(fn) .. ")", 2)
  end
  core.set_hook("json", fn)
end

-- connect(conninfo [, opts]) -> db | nil, err. The first database
-- connected becomes the default (cm.default()).
local default
function M.connect(conninfo, opts)
  local d, err = db.connect(conninfo, opts)
  if d and (not default or default:closed()) then
    default = d
  end
  return d, err
end

function M.default()
  if default and default:closed() then
    default = nil
  end
  return default
end

-- Models and queries (model.lua, query.lua); models use cm.default()
-- unless given a database with Model:using(db).
M.model = model.model
M.enum = model.enum
M.sql = model.sql
model.default_db = M.default
M.and_ = core.and_      -- cm.and_(e1, e2, ...), cm.or_(...), cm.not_(e)
M.or_ = core.or_
M.not_ = core.not_
M.value = core.value    -- a bound value as an expression
M.raw = core.raw        -- cm.raw("lower($1)", v): a developer-written SQL fragment
M.func = core.func      -- cm.func("lower", User.name)
M.exists = function(q)  -- cm.exists(Model:select():where(...))
  local built, err = q:build()
  if not built then error(err, 2) end
  return core.exists(built)
end
function M.count(e, distinct) return core.agg("count", e, distinct) end
function M.sum(e) return core.agg("sum", e) end
function M.avg(e) return core.agg("avg", e) end
function M.min(e) return core.agg("min", e) end
function M.max(e) return core.agg("max", e) end

M.error = core.error
M.is_error = core.is_error

return M
