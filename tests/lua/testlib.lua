-- testlib.lua - the little the Lua tests share: the server URL, checks
-- that say what differed, and named cases. A failed check raises, so the
-- script exits non-zero.
local T = {}

T.url = assert(os.getenv("DATABASE_URL"), "DATABASE_URL is not set")
T.jit = rawget(_G, "jit") ~= nil
T.runtime = T.jit and jit.version or _VERSION

-- A table name of our own, so both runtimes (and parallel runs) can share a
-- database.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
function T.table_name(prefix)
  return string.format("%s_%s_%d_%d", prefix, T.jit and "jit" or "54", os.time() % 100000,
    math.random(1, 1e6))
end

local function show(v)
  if type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

function T.eq(got, want, what)
  if got ~= want then
    error(string.format("%s: expected %s (%s), got %s (%s)", what or "value", show(want),
      type(want), show(got), type(got)), 2)
  end
end

function T.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then
    error("expected an error" .. (pattern and (" matching " .. pattern) or ""), 2)
  end
  if pattern and not tostring(err):find(pattern) then
    error(string.format("error %q does not match %q", tostring(err), pattern), 2)
  end
  return err
end

local ncases = 0
function T.case(name, fn)
  ncases = ncases + 1
  local t0 = os.clock()
  fn()
  io.write(string.format("ok %d - %s (%.2fs cpu)\n", ncases, name, os.clock() - t0))
  io.flush()
end

return T
