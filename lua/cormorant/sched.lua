-- sched.lua - cormorant's built-in scheduler: run(fn) and spawn(fn) over
-- poll(2). Tasks are coroutines that yield pollable objects (wait.lua);
-- a task is resumed when its object is done (objects with :done()), or
-- when its fd is ready or its timeout passes (any other pollable).
local core = require "cormorant.core"
local wait = require "cormorant.wait"

local M = {}

local owned = wait.owned
local create, resume, status, running =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.running
local now, poll = core.now, core.poll
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

local Scheduler = {}
Scheduler.__index = Scheduler

local function new_scheduler()
  return setmetatable({ ready = {}, waiting = {}, ntasks = 0 }, Scheduler)
end

function Scheduler:add(fn, ...)
  local args = pack(...)
  local task = { sched = self }
  task.co = create(function() return fn(unpack(args, 1, args.n)) end)
  owned[task.co] = self
  self.ntasks = self.ntasks + 1
  self.ready[#self.ready + 1] = task
  return task
end

-- A task failed: stop the run and raise its error where run() was called.
local function fail(task, err)
  if type(err) == "string" then
    err = debug.traceback(task.co, err)
  end
  error(err, 0)
end

function Scheduler:step_task(task)
  local res = pack(resume(task.co))
  if not res[1] then
    owned[task.co] = nil
    self.ntasks = self.ntasks - 1
    fail(task, res[2])
  end
  if status(task.co) == "dead" then
    owned[task.co] = nil
    self.ntasks = self.ntasks - 1
    if task.main then
      self.results = res
    end
    return
  end
  local obj = res[2]
  if obj == nil then   -- a plain yield: run again after the others
    self.ready[#self.ready + 1] = task
  else
    task.obj = obj
    self.waiting[#self.waiting + 1] = task
  end
end

local function is_done(obj)
  local done = obj.done
  return done ~= nil and done(obj)
end

-- Waits for I/O or timeouts, steps each ready fd once, and moves the tasks
-- that can go on to the ready list.
function Scheduler:poll()
  local waiting = self.waiting
  local fds, evs, byfd, stepper = {}, {}, {}, {}
  local tmo
  local moved = false
  for i = 1, #waiting do
    local task = waiting[i]
    local obj = task.obj
    if is_done(obj) then
      moved = true
    else
      local fd = obj:pollfd()
      if fd and fd >= 0 then
        local k = byfd[fd]
        local ev = obj:events() or "r"
        if not k then
          k = #fds + 1
          byfd[fd] = k
          fds[k], evs[k], stepper[k] = fd, ev, obj
        elseif evs[k] ~= ev then
          evs[k] = "rw"
        end
      end
      local t = obj:timeout()
      if t and (not tmo or t < tmo) then
        tmo = t
      end
    end
  end
  if moved then
    tmo = 0
  elseif #fds == 0 and not tmo then
    error("cormorant.run: every task waits for something that has no fd and no timeout", 0)
  end
  local t0 = now()
  local _, ready = poll(fds, evs, tmo)
  local elapsed = now() - t0
  -- Step each ready fd once, through the first object waiting on it.
  for k = 1, #fds do
    if ready[k] and stepper[k].step then
      stepper[k]:step()
    end
  end
  local keep = {}
  for i = 1, #waiting do
    local task = waiting[i]
    local obj = task.obj
    local go
    if obj.done then
      go = obj:done()
      if not go then
        local t = obj:timeout()
        if t and t <= elapsed then   -- a deadline passed: let the engine act
          obj:step()
          go = obj:done()
        end
      end
    else
      local fd = obj:pollfd()
      local t = obj:timeout()
      go = (fd and byfd[fd] and ready[byfd[fd]]) or (t and t <= elapsed)
    end
    if go then
      task.obj = nil
      self.ready[#self.ready + 1] = task
    else
      keep[#keep + 1] = task
    end
  end
  self.waiting = keep
end

function Scheduler:loop()
  while self.ntasks > 0 do
    local ready = self.ready
    if #ready > 0 then
      self.ready = {}
      for i = 1, #ready do
        self:step_task(ready[i])
      end
    elseif #self.waiting > 0 then
      self:poll()
    else
      break
    end
  end
end

local function current()
  local co = running()
  return co and owned[co]
end

-- run(fn, ...) - runs fn as a task and returns its results once it and
-- every task spawned under it have finished. An error in any task stops
-- the run and is raised here. Called from inside a task, fn just runs.
function M.run(fn, ...)
  assert(type(fn) == "function", "cormorant.run: a function is expected")
  if current() then
    return fn(...)
  end
  local s = new_scheduler()
  s:add(fn, ...).main = true
  s:loop()
  local res = s.results
  return unpack(res, 2, res.n)
end

-- spawn(fn, ...) - starts fn as a task beside the current one.
function M.spawn(fn, ...)
  assert(type(fn) == "function", "cormorant.spawn: a function is expected")
  local s = current()
  if not s then
    error("cormorant.spawn: not inside cormorant.run", 2)
  end
  s:add(fn, ...)
end

-- sleep(seconds) - inside run, lets other tasks go on meanwhile.
local Timer = {}
Timer.__index = Timer
function Timer:pollfd() return nil end
function Timer:events() return nil end
function Timer:timeout() return math.max(0, self.at - now()) end
function Timer:done() return now() >= self.at end
function Timer:step() return self:done() end

function M.sleep(seconds)
  local timer = setmetatable({ at = now() + (seconds or 0) }, Timer)
  while not timer:done() do
    if current() then
      coroutine.yield(timer)
    else
      poll({}, {}, timer:timeout())
    end
  end
end

return M
