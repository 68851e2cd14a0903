-- int8 exactness: Lua 5.4 integers; on LuaJIT numbers up to 2^53 and
-- int64_t cdata beyond, never a silently rounded double.
local T = require "testlib"
local cm = require "cormorant"

local db = assert(cm.connect(T.url, { max_size = 1 }))

local function one(sql, ...)
  local rows = assert(db:query("SELECT " .. sql .. " AS v", ...))
  return rows[1].v
end

T.case("2^53 + 1 comes back exact", function()
  local v = one("9007199254740993::int8")
  if T.jit then
    local ffi = require "ffi"
    T.eq(type(v), "cdata", "a cdata beyond 2^53")
    assert(ffi.istype("int64_t", v), "an int64_t")
    T.eq(tostring(v), "9007199254740993LL", "exact")
    assert(v == cm.int64("9007199254740993"), "equal to the parsed value")
    assert(v ~= cm.int64("9007199254740992"), "not 2^53")
  else
    T.eq(math.type(v), "integer", "an integer")
    T.eq(v, 9007199254740993, "exact")
    T.eq(tostring(v), "9007199254740993", "prints exactly")
  end
end)

T.case("the int64 range and 2^53 boundary", function()
  local function text(v)
    return (tostring(v):gsub("LL$", ""))
  end
  T.eq(text(one("9223372036854775807::int8")), "9223372036854775807", "max")
  T.eq(text(one("(-9223372036854775807 - 1)::int8")), "-9223372036854775808", "min")
  T.eq(one("9007199254740992::int8"), 9007199254740992, "2^53 is a plain number")
  T.eq(one("-9007199254740992::int8"), -9007199254740992, "-2^53 is a plain number")
  T.eq(text(one("-9007199254740993::int8")), "-9007199254740993", "-(2^53+1) exact")
  T.eq(type(one("12345::int8")), "number", "small values are numbers")
end)

T.case("exact values go back as parameters", function()
  local big = one("9007199254740993::int8")
  local back = one("$1::int8", big)
  T.eq(tostring(back), tostring(big), "round trip")
  T.eq(one("($1::int8 - 9007199254740992)::int4", big), 1, "the server sees the exact value")
  if T.jit then
    local ffi = require "ffi"
    T.eq(one("$1::numeric::text", ffi.new("uint64_t", 0) - 1),
      "18446744073709551615", "uint64_t cdata")
    T.raises(function() db:query("SELECT $1", ffi.new("int[1]")) end, "cannot bind")
  end
end)

T.case("arrays of int8 are exact too", function()
  if not cm.core.has_arrays then
    return
  end
  local a = one("ARRAY[9007199254740993, 1]::int8[]")
  T.eq((tostring(a[1]):gsub("LL$", "")), "9007199254740993", "array item")
  T.eq(a[2], 1, "small item")
end)

db:close()
print("bigint_test: all passed on " .. T.runtime)
