-- _runtime.lua: builds the sandbox every run executes in, and the function that runs a workflow.
--
-- Loaded once per host with the full standard library and the host primitives (`host`). It
-- returns { new_env = ..., runner = ... }. Scripts never see this file's locals: each run gets
-- a fresh _ENV whose lookups fall through to a frozen base of safe functions, and each
-- library (string, table, ...) appears as a per-run proxy, so nothing one run writes can
-- reach another run.
local host = ...

local raw_pcall, raw_xpcall, raw_error, raw_load = pcall, xpcall, error, load
local raw_setmetatable, raw_type, raw_select, raw_tostring = setmetatable, type, select, tostring
local raw_rawget, raw_rawset, raw_next, raw_getmetatable = rawget, rawset, next, debug.getmetatable
local pack, unpack, concat = table.pack, table.unpack, table.concat
local co_resume, co_status, co_yield = coroutine.resume, coroutine.status, coroutine.yield
local co_running, co_isyieldable, co_close = coroutine.running, coroutine.isyieldable, coroutine.close
local os_time, os_date, os_clock, os_difftime = os.time, os.date, os.clock, os.difftime
local traceback = debug.traceback

-- string.dump would let a script hand-craft bytecode; remove it from the real library too
-- (the string metatable leads there) and hide the metatable itself.
local function no_dump()
  raw_error("string.dump is not available in a troupe workflow (bytecode cannot be loaded back)", 2)
end
string.dump = no_dump
getmetatable("").__metatable = false

-- A run stopped by a limit must stay stopped: pcall/xpcall re-raise once the host has
-- killed the run, so `while true do pcall(f) end` cannot outlive its budget.
local function pass(ok, ...)
  if not ok then
    local reason = host.killed()
    if reason then raw_error(reason, 0) end
  end
  return ok, ...
end

local function safe_pcall(f, ...) return pass(raw_pcall(f, ...)) end

local function safe_xpcall(f, handler, ...)
  return pass(raw_xpcall(f, function(e)
    if host.killed() then return e end
    return handler(e)
  end, ...))
end

-- Coroutines inside a run: host calls yield the run's own coroutine, so a yield that the host
-- asked for is passed up through any user coroutines in between, and its results passed back.
local co_adopt = host.co_adopt
local function resume_through(co, r)
  while co_status(co) == "suspended" and host.yielded() do
    local args = pack(co_yield())
    co_adopt(co)
    r = pack(co_resume(co, unpack(args, 1, args.n)))
  end
  return unpack(r, 1, r.n)
end

-- A coroutine runs only as part of the task that resumes (or closes) it: adopting it first
-- charges what it does to that task, and refuses a branch's own coroutine (host.co_adopt).
local coroutine_safe = {
  create = host.co_create,
  resume = function(co, ...)
    if raw_type(co) == "thread" then co_adopt(co, "coroutine.resume") end
    return resume_through(co, pack(co_resume(co, ...)))
  end,
  status = co_status,
  running = co_running,
  isyieldable = co_isyieldable,
  close = function(co)
    if raw_type(co) == "thread" then co_adopt(co, "coroutine.close") end
    return co_close(co)
  end,
  yield = function(...)
    if host.is_task_thread() then
      raw_error("coroutine.yield: a workflow's own coroutine cannot yield to the host; " ..
                "create a coroutine with coroutine.create/wrap", 2)
    end
    return co_yield(...)
  end,
}
coroutine_safe.wrap = function(f)
  local co = host.co_create(f)
  return function(...)
    local r = pack(coroutine_safe.resume(co, ...))
    if not r[1] then raw_error(r[2], 0) end
    return unpack(r, 2, r.n)
  end
end

local function safe_load(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then
    raw_error("load: only text chunks can be loaded in a workflow (mode 't')", 2)
  end
  if raw_type(chunk) == "string" and chunk:byte(1) == 27 then
    raw_error("load: binary chunks are not allowed in a workflow", 2)
  end
  return raw_load(chunk, name, "t", env == nil and host.run_env() or env)
end

local function safe_print(...)
  local n = raw_select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = raw_tostring((raw_select(i, ...))) end
  host.log("info", concat(parts, "\t"))
end

-- Finalizers would run at a time the collector picks: inside whichever run allocates then, and
-- with Lua's hooks off, outside every budget. A workflow cannot have them (as in Luau).
local function safe_setmetatable(t, mt)
  if raw_type(mt) == "table" and raw_rawget(mt, "__gc") ~= nil then
    raw_error("setmetatable: __gc (finalizers) are not available in a troupe workflow: they " ..
              "would run outside the run's limits, inside other runs", 2)
  end
  return raw_setmetatable(t, mt)
end

-- Tables the troupe library shares between runs reach workflows as read-only views: a write
-- anywhere inside them is an error, so no run can change what another run calls or reads.
local readonly_views = raw_setmetatable({}, { __mode = "k" }) -- table -> view
local is_view = raw_setmetatable({}, { __mode = "k" })        -- view -> true
local function readonly(t, name)
  local view = readonly_views[t]
  if view ~= nil then return view end
  local function wrap(k, v)
    if raw_type(v) == "table" then
      return readonly(v, name .. "." .. raw_tostring(k))
    end
    return v
  end
  local mt = {
    __index = function(_, k) return wrap(k, t[k]) end,
    __newindex = function(_, k)
      raw_error(("%s.%s cannot be changed: the troupe library is shared by every run and " ..
                 "read-only"):format(name, raw_tostring(k)), 2)
    end,
    __pairs = function()
      return function(_, k)
        local nk, nv = raw_next(t, k)
        return nk, wrap(nk, nv)
      end, nil, nil
    end,
    __len = function() return #t end,
    __metatable = false,
  }
  local inner = raw_getmetatable(t)
  if inner ~= nil and raw_rawget(inner, "__call") ~= nil then
    mt.__call = function(_, ...) return t(...) end
  end
  view = raw_setmetatable({}, mt)
  readonly_views[t] = view
  is_view[view] = true
  return view
end

-- rawset writes past __newindex: not into a shared view.
local function safe_rawset(t, k, v)
  if is_view[t] then
    raw_error("rawset: this table belongs to the troupe library, which is shared by every run " ..
              "and read-only", 2)
  end
  return raw_rawset(t, k, v)
end

local function safe_collectgarbage(opt)
  if opt == nil or opt == "count" then return host.memory_kb() end
  if opt == "isrunning" then return true end
  return 0 -- collection is the host's business: the heap is shared by all runs
end

-- os: only what is harmless; reading the clock is journaled by the host.
local os_safe = {
  clock = os_clock,
  difftime = os_difftime,
  time = function(t)
    if t == nil then return math.floor(host.now()) end
    return os_time(t)
  end,
  date = function(fmt, t)
    if t == nil then t = math.floor(host.now()) end
    return os_date(fmt, t)
  end,
}

local math_safe = {}
for k, v in pairs(math) do math_safe[k] = v end
math_safe.random = host.random
math_safe.randomseed = host.randomseed

local string_safe = {}
for k, v in pairs(string) do string_safe[k] = v end

-- Each library is exposed as an empty per-run table whose metatable reads the real one.
local function lib_mt(lib)
  return {
    __index = lib,
    __pairs = function() return next, lib, nil end,
    __metatable = false,
  }
end

-- What the sandbox leaves out answers with an explanation instead of "attempt to index nil".
local function absent(lib_name, lib)
  return {
    __index = function(_, key)
      local v = lib and lib[key]
      if v ~= nil then return v end
      raw_error(("%s.%s is not available in a troupe workflow (the sandbox has no %s)"):format(
        lib_name, raw_tostring(key),
        lib_name == "debug" and "debug library beyond traceback" or "file, process or environment access"), 2)
    end,
    __pairs = function() return next, lib or {}, nil end,
    __metatable = false,
  }
end

local LIB_MTS = {
  string = lib_mt(string_safe),
  table = lib_mt(table),
  math = lib_mt(math_safe),
  utf8 = lib_mt(utf8),
  os = absent("os", os_safe),
  coroutine = lib_mt(coroutine_safe),
  debug = absent("debug", { traceback = traceback }),
  io = absent("io", nil),
  package = absent("package", nil),
}

local BASE = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  select = select, tonumber = tonumber, tostring = tostring, type = type,
  rawequal = rawequal, rawlen = rawlen, rawget = rawget, rawset = safe_rawset,
  setmetatable = safe_setmetatable, getmetatable = getmetatable,
  pcall = safe_pcall, xpcall = safe_xpcall, load = safe_load, print = safe_print,
  collectgarbage = safe_collectgarbage, _VERSION = _VERSION,
}
-- The built-in modules' environment (shared, loaded once).
local BUILTIN_ENV_MT = { __index = BASE, __metatable = false }

-- A run's _ENV starts empty (thousands of runs may wait at once, each should cost little): a
-- library appears on first use as the run's own proxy, and a base function is copied in on
-- first use, so every later lookup of that name is a plain hit in the run's table.
local ENV_MT = {
  __index = function(env, name)
    local mt = LIB_MTS[name]
    local v
    if mt ~= nil then v = raw_setmetatable({}, mt) else v = BASE[name] end
    if v ~= nil then raw_rawset(env, name, v) end
    return v
  end,
  __metatable = false,
}

-- Built-in modules (troupe and its own modules troupe.agent, troupe.tool, ...; the roles
-- troupe.roles.*) load once, in the frozen base; every run sees troupe and the roles through a
-- proxy of its own.
local builtin = {}
local builtin_require
local function load_builtin(name)
  local mod = builtin[name]
  if mod == nil then
    local src = host.builtin_source(name)
    if src == nil then return nil end
    local env = raw_setmetatable({
      require = function(n) return builtin_require(n) end,
      string = string_safe, table = table, math = math_safe, utf8 = utf8, os = os_safe,
      coroutine = coroutine_safe,
      -- The library's own objects (agents, tools, errors) hide their metatables from
      -- workflows; the library still needs to recognise them.
      rawgetmetatable = raw_getmetatable,
    }, BUILTIN_ENV_MT)
    local f = assert(raw_load(src, "=[troupe] " .. name, "t", env))
    mod = f(host)
    if mod == nil then mod = true end
    if raw_type(mod) == "table" then
      for k, v in raw_next, mod do
        if raw_type(v) == "table" then mod[k] = readonly(v, name .. "." .. raw_tostring(k)) end
      end
    end
    builtin[name] = mod
  end
  return mod
end

builtin_require = function(name)
  local mod = load_builtin(name)
  if mod == nil then raw_error("module '" .. raw_tostring(name) .. "' not found", 2) end
  return mod
end

-- What a workflow may require of the built-in modules: the library and the roles. The
-- library's own modules (troupe.agent, troupe.errors, ...) reach workflows only through the
-- troupe table, so what they share with each other stays out of reach.
local function public_builtin(name)
  return name == "troupe" or name:sub(1, 13) == "troupe.roles."
end

-- One metatable per module, shared by the runs' proxies: a run costs one empty table per module.
local proxy_mts = {}
local function proxy(mod)
  if raw_type(mod) ~= "table" then return mod end
  local mt = proxy_mts[mod]
  if mt == nil then
    mt = lib_mt(mod)
    proxy_mts[mod] = mt
  end
  return raw_setmetatable({}, mt)
end

local function new_env()
  local env = raw_setmetatable({}, ENV_MT)
  env._G = env
  local loaded = {}
  env.require = function(name)
    if raw_type(name) ~= "string" then
      raw_error("require expects a module name (a string), got " .. raw_type(name), 2)
    end
    local mod = loaded[name]
    if mod ~= nil then return mod end
    if name == "troupe" or name:sub(1, 7) == "troupe." then
      if public_builtin(name) then mod = load_builtin(name) end
      if mod == nil then raw_error("require('" .. name .. "'): no such troupe module", 2) end
      mod = proxy(mod)
    else
      local src, chunkname = host.find_module(name)
      if src == nil then raw_error(chunkname, 2) end
      local f, err = raw_load(src, chunkname, "t", env)
      if not f then raw_error(err, 0) end
      loaded[name] = true -- guards against require cycles
      mod = f(name)
      if mod == nil then mod = true end
    end
    loaded[name] = mod
    return mod
  end
  return env
end

-- Runs one workflow: the script's chunk returns troupe.workflow{...}; its run(input) result
-- is the run's output.
local function runner(chunk, env, input)
  local wf = chunk(env)
  if not load_builtin("troupe").is_workflow(wf) then
    raw_error("the script must return troupe.workflow{ name = ..., run = function(input) ... end }" ..
              " (it returned " .. (wf == nil and "nothing" or "a " .. raw_type(wf)) .. ")", 0)
  end
  host.set_workflow(wf.name, wf.durability)
  return wf.run(input)
end

return { new_env = new_env, runner = runner, require = builtin_require }
