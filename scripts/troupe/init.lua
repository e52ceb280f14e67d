-- troupe: the workflow library — workflows, agents, parallel branches, sleeps and logs.
--
-- Every function that waits (agent:ask, troupe.parallel, troupe.sleep, ...) is a host call:
-- it suspends only the calling branch, and its result is journaled under a deterministic
-- step key before the branch continues.
local host = ...

local troupe = {
  version = host.version,
  null = host.null,
}

local function unwrap(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

-- Errors of host calls are tables {status=, message=, retryable=, retry_after_ms=, step_key=}
-- that print as one line.
local Error = {
  __name = "troupe.error",
  __tostring = function(e) return e.text or tostring(e.message) end,
}
local function raise(e, level)
  if type(e) == "table" then setmetatable(e, Error) end
  error(e, level and level + 1 or 0)
end

---------------------------------------------------------------------------------------------
-- Workflows

local Workflow = { __name = "troupe.workflow" }

--- troupe.workflow{ name = "...", run = function(input) ... end [, description = "..."]
---                  [, durability = "sync" | "async"] }   (default: the host's `durability`)
function troupe.workflow(def)
  if type(def) ~= "table" then
    error("troupe.workflow expects a table { name = ..., run = function(input) ... end }", 2)
  end
  if type(def.name) ~= "string" or def.name == "" then
    error("troupe.workflow: 'name' must be a non-empty string", 2)
  end
  if type(def.run) ~= "function" then
    error("troupe.workflow '" .. def.name .. "': 'run' must be a function(input)", 2)
  end
  if def.durability ~= nil and def.durability ~= "sync" and def.durability ~= "async" then
    error("troupe.workflow '" .. def.name .. "': 'durability' must be \"sync\" or \"async\"", 2)
  end
  return setmetatable({ name = def.name, run = def.run, description = def.description,
                        durability = def.durability }, Workflow)
end

function troupe.is_workflow(v) return type(v) == "table" and getmetatable(v) == Workflow end

---------------------------------------------------------------------------------------------
-- Agents

local Agent = { __name = "troupe.agent" }
Agent.__index = Agent

local function check_type(v, want, what, level)
  if v ~= nil and type(v) ~= want then
    error(("%s must be a %s, got %s"):format(what, want, type(v)), level + 1)
  end
end

--- troupe.agent{ name =, model = "provider/model", system =, role =, temperature =, max_tokens = }
local AGENT_FIELDS = { name = true, model = true, system = true, role = true, temperature = true,
                       max_tokens = true }

function troupe.agent(spec)
  if type(spec) ~= "table" then error("troupe.agent expects a table { name = ..., model = ... }", 2) end
  for k in pairs(spec) do
    if not AGENT_FIELDS[k] then
      error(("troupe.agent: unknown field '%s' (known: name, model, system, role, temperature, " ..
             "max_tokens)"):format(tostring(k)), 2)
    end
  end
  if spec.max_tokens ~= nil and (math.type(spec.max_tokens) ~= "integer" or spec.max_tokens <= 0) then
    error("troupe.agent: 'max_tokens' must be a positive integer", 2)
  end
  check_type(spec.name, "string", "troupe.agent: 'name'", 2)
  check_type(spec.model, "string", "troupe.agent: 'model'", 2)
  check_type(spec.system, "string", "troupe.agent: 'system'", 2)
  check_type(spec.role, "string", "troupe.agent: 'role'", 2)
  check_type(spec.temperature, "number", "troupe.agent: 'temperature'", 2)
  check_type(spec.max_tokens, "number", "troupe.agent: 'max_tokens'", 2)
  local model = spec.model or host.default_model()
  if not model:find("/", 1, true) then
    error(("troupe.agent: model '%s' must be written as provider/model, e.g. openai/gpt-4o"):format(model), 2)
  end
  local system = spec.system
  if spec.role then
    local ok, role = pcall(require, "troupe.roles." .. spec.role)
    if not ok or type(role) ~= "table" then
      error(("troupe.agent: unknown role '%s' (see scripts/troupe/roles/)"):format(spec.role), 2)
    end
    system = system or role.system
  end
  return setmetatable({
    name = spec.name or spec.role or "agent",
    model = model,
    system = system,
    role = spec.role,
    temperature = spec.temperature,
    max_tokens = spec.max_tokens,
  }, Agent)
end

local function messages_for(self, prompt, level)
  local messages = {}
  if self.system then messages[1] = { role = "system", content = self.system } end
  if type(prompt) == "string" then
    messages[#messages + 1] = { role = "user", content = prompt }
  elseif type(prompt) == "table" then
    for i, m in ipairs(prompt) do
      if type(m) ~= "table" or type(m.role) ~= "string" then
        error(("message %d must be a table with a 'role' and 'content'"):format(i), level + 1)
      end
      if m.role == "system" and messages[1] and messages[1].role == "system" then
        messages[1] = m -- an explicit system message replaces the agent's own
      else
        messages[#messages + 1] = m
      end
    end
    if #prompt == 0 then error("the message list is empty", level + 1) end
  else
    error("expected a prompt (string) or a list of messages, got " .. type(prompt), level + 1)
  end
  return messages
end

local function request_for(self, prompt, opts, level)
  opts = opts or {}
  if type(opts) ~= "table" then error("options must be a table, got " .. type(opts), level + 1) end
  return {
    messages = messages_for(self, prompt, level + 1),
    temperature = opts.temperature or self.temperature,
    max_tokens = opts.max_tokens or self.max_tokens,
    stop = opts.stop,
  }
end

--- agent:chat(prompt_or_messages [, opts]) -> { text, tool_calls, usage, model, finish_reason, ... }
function Agent:chat(prompt, opts)
  if getmetatable(self) ~= Agent then error("call agent:chat(...) with a colon", 2) end
  local req = request_for(self, prompt, opts, 2)
  local ok, res = host.chat(self.name, self.model, self.role, req, false)
  if not ok then raise(res, 2) end
  return res
end

--- agent:ask(prompt_or_messages [, opts]) -> text
function Agent:ask(prompt, opts)
  if getmetatable(self) ~= Agent then error("call agent:ask(...) with a colon", 2) end
  local req = request_for(self, prompt, opts, 2)
  local ok, res = host.chat(self.name, self.model, self.role, req, false)
  if not ok then raise(res, 2) end
  return res.text
end

function Agent:__tostring() return ("agent %s (%s)"):format(self.name, self.model) end

---------------------------------------------------------------------------------------------
-- Concurrency

--- troupe.parallel(f1, f2, ...) -> r1, r2, ...   (each branch's first result, in order)
--- A failing branch cancels the others and fails the join with that branch's error.
function troupe.parallel(...)
  for i = 1, select("#", ...) do
    local f = select(i, ...)
    if type(f) ~= "function" then
      error(("troupe.parallel: argument %d is a %s, expected a function"):format(i, type(f)), 2)
    end
  end
  return unwrap(host.parallel(...))
end

--- troupe.map(list, fn [, { concurrency = n }]) -> { fn(list[1], 1), fn(list[2], 2), ... }
function troupe.map(list, fn, opts)
  if type(list) ~= "table" then error("troupe.map: expected a list, got " .. type(list), 2) end
  if type(fn) ~= "function" then error("troupe.map: expected a function, got " .. type(fn), 2) end
  local concurrency = 0
  if opts ~= nil then
    if type(opts) ~= "table" then error("troupe.map: options must be a table", 2) end
    concurrency = opts.concurrency or 0
    if math.type(concurrency) ~= "integer" or concurrency < 0 then
      error("troupe.map: concurrency must be an integer >= 0 (0 = no limit)", 2)
    end
  end
  return unwrap(host.map(list, fn, concurrency))
end

--- troupe.sleep(seconds)
function troupe.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("troupe.sleep expects a number of seconds >= 0", 2)
  end
  return unwrap(host.sleep(seconds))
end

---------------------------------------------------------------------------------------------
-- Everything else

--- troupe.log(...) — an event of the run (level info); troupe.log.warn(...) etc. for others.
local function logger(level)
  return function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    host.log(level, table.concat(parts, " "))
  end
end
troupe.log = setmetatable({
  debug = logger("debug"), info = logger("info"), warn = logger("warn"), error = logger("error"),
}, { __call = function(_, ...) return logger("info")(...) end })

--- troupe.now() -> seconds since the epoch (journaled: a resumed run sees the same time)
function troupe.now() return host.now() end

--- troupe.array(t) marks t as a JSON array (useful for empty lists)
function troupe.array(t)
  t = t or {}
  return host.mark_array(t)
end

troupe.json = {
  encode = function(v) return host.json_encode(v) end,
  decode = function(s) return host.json_decode(s) end,
}

return troupe
