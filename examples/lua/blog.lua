-- blog.lua - Cormorant from Lua: users and posts as models.
--
--   make build
--   export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"
--   LUA_CPATH="$PWD/build/lua/5.4/?.so;;" DATABASE_URL=postgresql://localhost/postgres lua5.4 examples/lua/blog.lua
--   (or LUA_CPATH="$PWD/build/lua/jit/?.so;;" ... luajit examples/lua/blog.lua)
local cm = require "cormorant"

local User = cm.model("blog_user", {
  { "id",    "bigint", primary_key = true },          -- identity
  { "name",  "varchar(30)" },
  { "email", "text", null = true, unique = true },
})
local Post = cm.model("blog_post", {
  { "id",      "bigint", primary_key = true },
  { "user_id", "bigint", references = User, on_delete = "cascade" },
  { "title",   "text" },
  { "likes",   "integer", default = 0 },
  { "created", "timestamptz", default = cm.sql "now()" },
})

cm.run(function()
  local db = assert(cm.connect(os.getenv("DATABASE_URL") or "postgresql://localhost/postgres"))
  assert(db:drop_tables(User, Post, { if_exists = true }))
  assert(db:create_tables(User, Post))

  -- Users: create inserts and fills id; new + save does the same.
  local ada = assert(User:create { name = "Ada", email = "ada@example.org" })
  local bob = User.new { name = "Bob" }
  assert(bob:save())
  print(("users: %s (id %s), %s (id %s)"):format(ada.name, ada.id, bob.name, bob.id))

  -- Posts from tasks side by side: their INSERTs pipeline on the pool.
  local written = 0
  for i = 1, 5 do
    cm.spawn(function()
      local author = i % 2 == 1 and ada or bob
      assert(Post:create { user_id = author.id, title = "Post #" .. i, likes = i * 10 })
      written = written + 1
    end)
  end
  while written < 5 do cm.sleep(0.001) end

  -- Queries: expressions, lookups, aggregates.
  local popular = assert(Post:select():where(Post.likes:ge(30)):order_by(Post.likes:desc()):all())
  for _, p in ipairs(popular) do print(("popular: %-8s %d likes"):format(p.title, p.likes)) end
  local adas = assert(Post:filter { user_id = ada.id, title__startswith = "Post" })
  print("posts by Ada: " .. #adas)
  print("likes in all: " .. assert(Post:select():sum(Post.likes)))

  -- Save sends only what changed: here, one column.
  local p = assert(Post:get { title = "Post #1" })
  p.likes = p.likes + 1
  assert(p:save())
  print(("%s now has %d likes"):format(p.title, p.likes))

  -- A transaction: an error inside rolls everything back.
  local ok, err = db:transaction(function()
    assert(Post:create { user_id = bob.id, title = "draft" })
    error("changed my mind")
  end)
  print("transaction rolled back: " .. tostring(not ok), "drafts: " .. #assert(Post:filter { title = "draft" }))

  -- Expected failures are values, not exceptions.
  local none, nerr = User:get { name = "Nobody" }
  print("get Nobody -> " .. nerr.class)
  local dup, derr = User:create { name = "Ada again", email = "ada@example.org" }
  print("duplicate email -> " .. derr.class)

  -- Deleting a user cascades to their posts.
  assert(bob:delete())
  print("posts left after deleting Bob: " .. assert(Post:count()))

  assert(db:drop_tables(User, Post))
end)
print("blog done (" .. (rawget(_G, "jit") and jit.version or _VERSION) .. ")")
