-- LuaRocks spec for the Lua front end of Cormorant. From a clone:
--   luarocks make lua/cormorant-scm-1.rockspec            (Lua 5.4)
--   luarocks --lua-version 5.1 make lua/cormorant-scm-1.rockspec   (LuaJIT)
-- It builds cormorant.core (with libcorm inside) against the headers of
-- the Lua that LuaRocks targets, through the top-level CMakeLists.txt.
rockspec_format = "3.0"
package = "cormorant"
version = "scm-1"
source = {
  url = "git+file:///work/main",   -- replace with the public repository once there is one
  branch = "main",
}
description = {
  summary = "Async ORM for PostgreSQL: coroutines over a C engine (libcorm) on libpq",
  detailed = [[
    Pipelined, pooled, binary-protocol PostgreSQL access for Lua 5.4 and
    LuaJIT: run/spawn coroutines (or any pollable-aware loop such as
    cqueues), blocking calls outside them, exact int8 and numeric, errors
    as objects with class, SQLSTATE, detail and hint.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  PQ = { library = "pq" },   -- headers are found by CMake (pkg-config or pg_config)
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CORM_BUILD_TESTS = "OFF",
    CORM_BUILD_EXAMPLES = "OFF",
    CORM_LUA_INCDIR = "$(LUA_INCDIR)",
    CORM_LUA_LMOD = "$(LUADIR)",
    CORM_LUA_CMOD = "$(LIBDIR)",
  },
}
