-- Every supported type, out of the server and as parameters back in.
local T = require "testlib"
local cm = require "cormorant"
local core = cm.core

local db = assert(cm.connect(T.url, { max_size = 2 }))

local function one(sql, ...)
  local rows, err = db:query("SELECT " .. sql .. " AS v", ...)
  assert(rows, tostring(err))
  T.eq(#rows, 1, "row count of " .. sql)
  return rows[1].v
end

T.case("integers and floats", function()
  T.eq(one("1::int2"), 1, "int2")
  T.eq(one("-2::int4"), -2, "int4")
  T.eq(one("3::int8"), 3, "int8")
  T.eq(one("4::oid"), 4, "oid")
  T.eq(one("2147483647::int4"), 2147483647, "int4 max")
  if math.type then
    T.eq(math.type(one("5::int8")), "integer", "int8 is a Lua integer on 5.4")
    T.eq(math.type(one("1.5::float8")), "float", "float8 is a float")
  end
  T.eq(one("1.5::float4"), 1.5, "float4")
  T.eq(one("-0.25::float8"), -0.25, "float8")
  local nan = one("'NaN'::float8")
  assert(nan ~= nan, "NaN")
  T.eq(one("'Infinity'::float8"), math.huge, "infinity")
  T.eq(one("'-Infinity'::float8"), -math.huge, "-infinity")
end)

T.case("bool, text, bytea, numeric, uuid, raw", function()
  T.eq(one("true"), true, "true")
  T.eq(one("false"), false, "false")
  T.eq(one("'héllo'::text"), "héllo", "text")
  T.eq(one("'v'::varchar(5)"), "v", "varchar")
  T.eq(one("'ab'::char(3)"), "ab ", "char(n) keeps its padding")
  T.eq(one("'n'::name"), "n", "name")
  T.eq(one([['x'::"char"]]), "x", '"char"')
  T.eq(one([['\x00ff41'::bytea]]), "\0\255A", "bytea")
  T.eq(one("''::bytea"), "", "empty bytea")
  T.eq(one("'12.50'::numeric"), "12.50", "numeric keeps its scale")
  T.eq(one("'-0.00000000000000000001'::numeric"), "-0.00000000000000000001", "tiny numeric")
  T.eq(one("'123456789012345678901234567890.5'::numeric"), "123456789012345678901234567890.5",
    "huge numeric exact")
  T.eq(one("'NaN'::numeric"), "NaN", "numeric NaN")
  T.eq(one("'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "uuid")
  local point = one("'(1,2)'::point")
  T.eq(type(point), "string", "an undecoded type comes as its bytes")
  T.eq(#point, 16, "point's binary form")
end)

T.case("dates and times", function()
  T.eq(one("'2024-05-06'::date"), "2024-05-06", "date")
  T.eq(one("'0044-03-15 BC'::date"), "0044-03-15 BC", "BC date")
  T.eq(one("'infinity'::date"), "infinity", "date infinity")
  T.eq(one("'-infinity'::date"), "-infinity", "date -infinity")
  T.eq(one("'13:45:07'::time"), "13:45:07", "time")
  T.eq(one("'13:45:07.25'::time"), "13:45:07.25", "time with fraction")
  T.eq(one("'13:45:00+02'::timetz"), "13:45:00+02", "timetz")
  T.eq(one("'13:45:00-05:30'::timetz"), "13:45:00-05:30", "timetz half hour")
  T.eq(one("'2024-05-06 13:45:00.123456'::timestamp"), "2024-05-06 13:45:00.123456", "timestamp")
  T.eq(one("'1999-12-31 23:59:59'::timestamp"), "1999-12-31 23:59:59", "before the epoch")
  T.eq(one("'2024-05-06 13:45:00+02'::timestamptz"), "2024-05-06 11:45:00+00", "timestamptz in UTC")
  T.eq(one("'0001-01-01 00:00:00 BC'::timestamp"), "0001-01-01 00:00:00 BC", "BC timestamp")
  T.eq(one("'infinity'::timestamptz"), "infinity", "timestamptz infinity")
  T.eq(one("'1 year 2 mons 3 days 04:05:06.5'::interval"), "P1Y2M3DT4H5M6.5S", "interval")
  T.eq(one("'-1 day -00:00:01.5'::interval"), "P-1DT-1.5S", "negative interval")
  T.eq(one("'0'::interval"), "PT0S", "zero interval")
  -- The forms round-trip through parameters (bound as untyped text).
  for _, case in ipairs {
    { "date", "2024-05-06" }, { "time", "13:45:07.25" }, { "timetz", "13:45:00+02" },
    { "timestamp", "2024-05-06 13:45:00.123456" }, { "timestamptz", "2024-05-06 11:45:00+00" },
    { "interval", "P1Y2M3DT4H5M6.5S" }, { "date", "0044-03-15 BC" },
  } do
    T.eq(one("$1::" .. case[1], case[2]), case[2], case[1] .. " round trip")
  end
end)

T.case("json", function()
  -- Built into tables by the binding (the engine's JSON reader), json and
  -- jsonb alike; lua-cjson plays no part.
  for _, ty in ipairs { "json", "jsonb" } do
    local v = one(string.format([['{"a":1,"b":[true,null,false],"c":{"d":"e"}}'::%s]], ty))
    T.eq(type(v), "table", ty .. " object")
    T.eq(v.a, 1, ty .. " a")
    T.eq(#v.b, 3, ty .. " null keeps its place in an array")
    T.eq(v.b[1], true, ty .. " b[1]")
    T.eq(v.b[2], cm.null, ty .. " JSON null is cm.null")
    T.eq(v.b[3], false, ty .. " b[3]")
    T.eq(v.c.d, "e", ty .. " nested object")
  end
  -- Scalars at the top.
  T.eq(one([['"x"'::jsonb]]), "x", "string")
  T.eq(one([['null'::jsonb]]), cm.null, "null")
  T.eq(one([['true'::json]]), true, "true")
  T.eq(one([['3'::jsonb]]), 3, "integer")
  -- Escapes, \u escapes (a surrogate pair is one character) and NUL.
  local s = one([['"a\"b\\c\/d\n\t\u00e9\u20ac\ud83d\ude00"'::json]])
  T.eq(s, 'a"b\\c/d\n\t\195\169\226\130\172\240\159\152\128', "escapes to UTF-8")
  T.eq(one([['"a\u0000b"'::json]]), "a\0b", "\\u0000 is a NUL byte")
  T.eq(one([['{"k\u00e9y": 1}'::jsonb]])["k\195\169y"], 1, "escaped key")
  -- Numbers: integers stay integers on Lua 5.4 while they fit int64;
  -- beyond, and anything with a fraction or exponent, are floats.
  local n = one([['[0, -7, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1.5, -2e3, 1E2, 0.1]'::json]])
  T.eq(n[1], 0, "0")
  T.eq(n[2], -7, "-7")
  T.eq(n[6], 1.5, "1.5")
  T.eq(n[7], -2000, "-2e3")
  T.eq(n[8], 100, "1E2")
  T.eq(n[9], 0.1, "0.1")
  if math.type then
    T.eq(math.type(n[1]), "integer", "0 is an integer")
    T.eq(n[3], math.maxinteger, "int64 max")
    T.eq(n[4], math.mininteger, "int64 min")
    T.eq(math.type(n[5]), "float", "2^63 is a float")
    T.eq(n[5], 2.0^63, "2^63")
    T.eq(math.type(n[7]), "float", "an exponent makes a float")
    T.eq(math.type(n[8]), "float", "1E2 is a float")
  else
    T.eq(n[5], 2^63, "2^63 (a double on LuaJIT)")
  end
  -- An empty object and an empty array are both an empty table.
  local e = one([['{"o": {}, "a": []}'::jsonb]])
  T.eq(next(e.o), nil, "empty object")
  T.eq(next(e.a), nil, "empty array")
  -- Deep nesting and a long document (rows share a shape: sizes carried
  -- from row to row must not leak items between them).
  local deep = one(string.format("'%s1%s'::json", string.rep("[", 200), string.rep("]", 200)))
  for _ = 1, 200 do deep = deep[1] end
  T.eq(deep, 1, "200 levels")
  local rows = assert(db:query([[SELECT CASE WHEN i % 2 = 0
      THEN json_build_object('i', i, 'xs', json_build_array(i, i, i), 'long', repeat(chr(233), 300))
      ELSE json_build_object('j', i) END AS v FROM generate_series(1, 50) i ORDER BY i]]))
  for i, r in ipairs(rows) do
    if i % 2 == 0 then
      T.eq(r.v.i, i, "row " .. i)
      T.eq(#r.v.xs, 3, "row " .. i .. " array")
      T.eq(#r.v.long, 600, "row " .. i .. " long string")
      T.eq(r.v.j, nil, "row " .. i .. " no stray key")
    else
      T.eq(r.v.j, i, "row " .. i)
      T.eq(next(r.v, next(r.v)), nil, "row " .. i .. " one key")
    end
  end
  -- cm.set_json_decoder(false) keeps the text, a function decodes it
  -- instead, nil goes back to the built-in reader.
  cm.set_json_decoder(false)
  local ok, err = pcall(function()
    T.eq(one([['{"a":1}'::json]]), '{"a":1}', "json text")
    T.eq(one([['{"a":1}'::jsonb]]), '{"a": 1}', "jsonb text")
    cm.set_json_decoder(function(txt) return { decoded = txt } end)
    T.eq(one([['[1]'::jsonb]]).decoded, "[1]", "json through the decoder")
  end)
  cm.set_json_decoder(nil)
  assert(ok, err)
  T.eq(one([['[1]'::jsonb]])[1], 1, "built-in reader again")
  T.raises(function() cm.set_json_decoder(42) end, "function, false or nil expected")
end)

T.case("arrays", function()
  if not core.has_arrays then
    print("# arrays not decoded by this engine build; skipped")
    return
  end
  local a = one("ARRAY[1,2,NULL,4]::int8[]")
  T.eq(#a, 4, "array length")
  T.eq(a[1], 1, "a[1]")
  T.eq(a[3], cm.null, "NULL item is cm.null")
  T.eq(a[4], 4, "a[4]")
  local m = one("'{{a,b},{c,d}}'::text[]")
  T.eq(m[2][1], "c", "2-d array")
  T.eq(#one("'{}'::int4[]"), 0, "empty array")
  T.eq(one("ARRAY['2024-05-06'::date]")[1], "2024-05-06", "array of dates")
  T.eq(one("ARRAY['1.10'::numeric]")[1], "1.10", "array of numeric")
end)

T.case("NULL and rows", function()
  local rows = assert(db:query("SELECT NULL::int AS a, 1 AS b, NULL::text AS c"))
  T.eq(rows[1].a, nil, "NULL is nil")
  T.eq(rows[1].b, 1, "b")
  local n = 0
  for _ in pairs(rows[1]) do n = n + 1 end
  T.eq(n, 1, "NULL fields are absent")
  rows = assert(db:query("SELECT g AS i, 'r' || g AS s FROM generate_series(1, 500) g"))
  T.eq(#rows, 500, "500 rows")
  T.eq(rows[500].s, "r500", "last row")
  rows = assert(db:query("SELECT 1 AS x WHERE false"))
  T.eq(#rows, 0, "no rows")
  local _, affected, cmd = db:query("SELECT 1 UNION SELECT 2")
  T.eq(affected, 2, "SELECT reports its row count")
  T.eq(cmd, "SELECT 2", "command tag")
end)

T.case("parameters", function()
  T.eq(one("$1::int8 + 1", 41), 42, "integer")
  T.eq(one("$1::float8 * 2", 1.25), 2.5, "float")
  T.eq(one("$1::int4 IS NULL", nil), true, "nil")
  T.eq(one("$1::bool", true), true, "boolean")
  T.eq(one("NOT $1::bool", false), true, "false")
  T.eq(one("$1::text", "hello"), "hello", "string")
  T.eq(one("$1::int4 + 1", "41"), 42, "untyped text: the server infers int4")
  T.eq(one("$1::numeric", "12.50"), "12.50", "numeric from a string")
  local bin = "\0\1\255binary\0"
  T.eq(one("$1::bytea", cm.bytea(bin)), bin, "bytea with NUL bytes")
  T.eq(one("length($1)", cm.bytea(bin)), #bin, "bytea inferred")
  local none, err = db:query("SELECT $1::text", "a\0b")
  T.eq(none, nil, "text with a NUL byte")
  T.eq(err.class, "data", "is bad data")
  T.eq(one("$1::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "uuid")
  T.eq(one("$1::jsonb::text", '{"a":1}'), '{"a": 1}', "jsonb from a string")
  T.eq(one("$1::int8", -9007199254740992), -9007199254740992, "-2^53")
  T.eq(one("coalesce($1::text, $2::text, $3)", nil, nil, "third"), "third", "several")
  local rows = assert(db:query("SELECT $1::int4 AS a, $2::text AS b, $3::float8 AS c", 7, "x", 0.5))
  T.eq(rows[1].a + rows[1].c, 7.5, "mixed")
  if math.type then
    T.eq(math.type(one("$1::float8", 2.0)), "float", "2.0 binds as a float on 5.4")
  end
end)

db:close()
print("types_test: all passed on " .. T.runtime)
