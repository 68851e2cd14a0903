-- wait.lua - how a cormorant call waits for a pollable request: the one
-- function to swap for another scheduler (cqueues, luv, OpenResty, ...).
--
-- Every blocking-looking call in cormorant is, in Lua:
--     while not req:done() do wait.wait(req); req:step() end
-- `req` speaks cqueues' pollable protocol: req:pollfd(), req:events()
-- ("r"), req:timeout() (seconds or nil). wait.wait(req) must return when
-- the fd is ready or the timeout has passed (returning early is harmless).
--
-- By default: inside a task of cormorant.run, yield the request to the
-- built-in scheduler; anywhere else, block in poll(2). To plug in cqueues
-- (tests/lua/cqueues_test.lua does this):
--     local wait = require "cormorant.wait"
--     local default = wait.wait
--     wait.wait = function(req)
--       local _, inside = cqueues.running()
--       if inside then return cqueues.poll(req) end
--       return default(req)
--     end
local core = require "cormorant.core"

local M = {}

-- Coroutines driven by cormorant's own scheduler (sched.lua) -> true.
M.owned = setmetatable({}, { __mode = "k" })

local poll1 = core.poll1

-- Blocks the whole process until req's fd is ready or its timeout passes.
function M.block(req)
  return poll1(req:pollfd(), req:events(), req:timeout())
end

local running, yield, owned = coroutine.running, coroutine.yield, M.owned

function M.wait(req)
  local co = running()   -- LuaJIT: nil on the main thread
  if co and owned[co] then
    return yield(req)
  end
  return M.block(req)
end

return M
