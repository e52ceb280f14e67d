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

-- The library's metatables are shared by every run: each hides itself (__metatable) and no
-- __index leads back to it, so a workflow can neither read nor change it; the library
-- recognises its objects with rawgetmetatable (given by _runtime.lua).

-- Errors of host calls are tables {status=, message=, retryable=, retry_after_ms=, step_key=}
-- that print as one line.
local Error = {
  __name = "troupe.error",
  __tostring = function(e) return e.text or tostring(e.message) end,
  __metatable = false,
}
local function raise(e, level)
  if type(e) == "table" then setmetatable(e, Error) end
  error(e, level and level + 1 or 0)
end

---------------------------------------------------------------------------------------------
-- Workflows

local Workflow = { __name = "troupe.workflow", __metatable = false }

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

function troupe.is_workflow(v) return type(v) == "table" and rawgetmetatable(v) == Workflow end

---------------------------------------------------------------------------------------------
-- Agents

local Agent = {} -- the methods
local AgentMT = { __name = "troupe.agent", __index = Agent, __metatable = false }

local Tool = {}
local ToolMT = { __name = "troupe.tool", __index = Tool, __metatable = false }

local function check_type(v, want, what, level)
  if v ~= nil and type(v) ~= want then
    error(("%s must be a %s, got %s"):format(what, want, type(v)), level + 1)
  end
end

-- "a, b, c" ("(none)" for an empty list)
local function name_list(names)
  if #names == 0 then return "(none)" end
  return table.concat(names, ", ")
end

---------------------------------------------------------------------------------------------
-- Tools

local TOOL_FIELDS = { name = true, description = true, parameters = true, run = true }

--- troupe.tool{ name =, description =, parameters = <JSON Schema of the arguments>,
---              run = function(args) ... end }
function troupe.tool(def)
  if type(def) ~= "table" then
    error("troupe.tool expects a table { name = ..., description = ..., parameters = ..., run = ... }", 2)
  end
  for k in pairs(def) do
    if not TOOL_FIELDS[k] then
      error(("troupe.tool: unknown field '%s' (known: name, description, parameters, run)")
            :format(tostring(k)), 2)
    end
  end
  local name = def.name
  -- The strictest rule among the vendors (OpenAI's and Anthropic's function names), so a tool
  -- works with every provider; ASCII only, whatever the C locale says a letter is.
  if type(name) ~= "string" or #name < 1 or #name > 64 or name:find("[^A-Za-z0-9_%-]") then
    error("troupe.tool: 'name' must be 1 to 64 ASCII letters, digits, '_' or '-' (got " ..
          (type(name) == "string" and ("'" .. name .. "'") or type(name)) .. ")", 2)
  end
  check_type(def.description, "string", "troupe.tool '" .. name .. "': 'description'", 2)
  if type(def.run) ~= "function" then
    error("troupe.tool '" .. name .. "': 'run' must be a function(args)", 2)
  end
  local parameters = def.parameters
  if parameters == nil then parameters = { type = "object", properties = {} } end
  if type(parameters) ~= "table" or parameters.type ~= "object" then
    error("troupe.tool '" .. name .. "': 'parameters' must be a JSON Schema (a table) with " ..
          "type = \"object\"", 2)
  end
  local ok, err = pcall(host.validate, parameters, {})
  if not ok then error("troupe.tool '" .. name .. "': 'parameters': " .. tostring(err), 2) end
  return setmetatable({
    name = name, description = def.description or "", parameters = parameters, run = def.run,
  }, ToolMT)
end

ToolMT.__tostring = function(self) return "tool " .. self.name end

--- troupe.host_tool(name) -> tool: a tool implemented by the program that embeds troupe (a
--- Python function registered with @host.tool); its description and parameters come from there.
local function host_tool(name, level)
  if type(name) ~= "string" then
    error("troupe.host_tool expects the name of a tool registered by the host (a string)", level + 1)
  end
  local info, why = host.external_tool(name)
  if not info then error("troupe.host_tool: " .. why, level + 1) end
  return troupe.tool{
    name = info.name, description = info.description, parameters = info.parameters,
    run = function(args)
      local ok, text = host.external_tool(name, args)
      if not ok then error(text, 0) end
      return text
    end,
  }
end

function troupe.host_tool(name)
  local tool = host_tool(name, 2) -- not a tail call: the error level counts this frame
  return tool
end

---------------------------------------------------------------------------------------------

--- troupe.agent{ name =, model = "provider/model", system =, role =, temperature =,
---               max_tokens =, tools = { tool, ... }, history = true | false }
local AGENT_FIELDS = { name = true, model = true, system = true, role = true, temperature = true,
                       max_tokens = true, tools = true, history = true }

function troupe.agent(spec)
  if type(spec) ~= "table" then error("troupe.agent expects a table { name = ..., model = ... }", 2) end
  for k in pairs(spec) do
    if not AGENT_FIELDS[k] then
      error(("troupe.agent: unknown field '%s' (known: name, model, system, role, temperature, " ..
             "max_tokens, tools, history)"):format(tostring(k)), 2)
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
  check_type(spec.tools, "table", "troupe.agent: 'tools'", 2)
  check_type(spec.history, "boolean", "troupe.agent: 'history'", 2)
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
  local tools, by_name, specs = {}, {}, nil
  for i, t in ipairs(spec.tools or {}) do
    if type(t) == "string" then -- a host tool, by name
      local info, why = host.external_tool(t)
      if not info then error(("troupe.agent: tools[%d] is a string, but %s"):format(i, why), 2) end
      t = host_tool(t, 2)
    end
    if rawgetmetatable(t) ~= ToolMT then
      error(("troupe.agent: tools[%d] is a %s, expected a tool made with troupe.tool{...} " ..
             "or the name of a host tool")
            :format(i, type(t)), 2)
    end
    if by_name[t.name] then error(("troupe.agent: two tools are named '%s'"):format(t.name), 2) end
    by_name[t.name] = t
    tools[i] = t
    specs = specs or {}
    specs[i] = { name = t.name, description = t.description, parameters = t.parameters }
  end
  return setmetatable({
    name = spec.name or spec.role or "agent",
    model = model,
    system = system,
    role = spec.role,
    temperature = spec.temperature,
    max_tokens = spec.max_tokens,
    tools = tools,
    _tools = by_name,
    _tool_specs = specs,
    _keep_history = spec.history ~= false,
    _history = {},
  }, AgentMT)
end

local function check_self(self, method)
  if rawgetmetatable(self) ~= AgentMT then
    error(("call agent:%s(...) with a colon"):format(method), 3)
  end
end

-- Options each method accepts; a misspelt option is an error rather than silently ignored.
local CALL_OPTIONS = { temperature = true, max_tokens = true, stop = true, tool_choice = true,
                       schema = true, schema_name = true }
local OPTIONS = {
  chat = CALL_OPTIONS,
  stream = CALL_OPTIONS,
  ask = { temperature = true, max_tokens = true, stop = true, tool_choice = true, schema = true,
          schema_name = true, retries = true },
  run = { temperature = true, max_tokens = true, stop = true, tool_choice = true,
          max_turns = true },
}

local function check_opts(self, opts, method, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("options must be a table, got " .. type(opts), level + 1) end
  local known = OPTIONS[method]
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(("agent:%s: unknown option '%s' (known: %s)"):format(method, tostring(k),
            name_list(names)), level + 1)
    end
  end
  check_type(opts.temperature, "number", "option 'temperature'", level + 1)
  if opts.max_tokens ~= nil and (math.type(opts.max_tokens) ~= "integer" or opts.max_tokens <= 0) then
    error("option 'max_tokens' must be a positive integer", level + 1)
  end
  check_type(opts.stop, "table", "option 'stop'", level + 1)
  check_type(opts.schema, "table", "option 'schema'", level + 1)
  check_type(opts.schema_name, "string", "option 'schema_name'", level + 1)
  local choice = opts.tool_choice
  if choice ~= nil and choice ~= "auto" and choice ~= "none" and choice ~= "required" then
    local name = type(choice) == "table" and choice.name or choice
    if type(name) ~= "string" or not self._tools[name] then
      local names = {}
      for i, t in ipairs(self.tools) do names[i] = t.name end
      error(("option 'tool_choice' must be \"auto\", \"none\", \"required\" or the name of one " ..
             "of the agent's tools (%s)"):format(name_list(names)), level + 1)
    end
  end
  if opts.retries ~= nil and (math.type(opts.retries) ~= "integer" or opts.retries < 0) then
    error("option 'retries' must be an integer >= 0", level + 1)
  end
  if opts.max_turns ~= nil and (math.type(opts.max_turns) ~= "integer" or opts.max_turns < 1) then
    error("option 'max_turns' must be an integer >= 1", level + 1)
  end
  return opts
end

local function copy_message(m)
  local c = {}
  for k, v in pairs(m) do c[k] = v end
  if c.content == nil then c.content = "" end
  return c
end

-- The caller's part of an exchange: a prompt (one user message) or a list of messages. The
-- first system message of a list replaces the agent's system prompt for this call; it is
-- returned apart and never enters the history.
local function input_messages(prompt, level)
  local exchange, system = {}, nil
  if type(prompt) == "string" then
    exchange[1] = { role = "user", content = prompt }
  elseif type(prompt) == "table" then
    if #prompt == 0 then error("the message list is empty", level + 1) end
    for i, m in ipairs(prompt) do
      if type(m) ~= "table" or type(m.role) ~= "string" then
        error(("message %d must be a table with a 'role' and 'content'"):format(i), level + 1)
      end
      if m.role == "system" and system == nil then
        system = m.content
      else
        exchange[#exchange + 1] = copy_message(m)
      end
    end
  else
    error("expected a prompt (string) or a list of messages, got " .. type(prompt), level + 1)
  end
  return exchange, system
end

-- The history as it is now: what a call that starts now sees, whatever other calls on the same
-- agent append meanwhile.
local function snapshot(self)
  if not self._keep_history then return {} end
  return table.move(self._history, 1, #self._history, 1, {})
end

-- A finished exchange joins the history (system messages never do).
local function commit(self, exchange)
  if not self._keep_history then return end
  local h = self._history
  for _, m in ipairs(exchange) do
    if m.role ~= "system" then h[#h + 1] = m end
  end
end

local function assistant_message(res)
  local m = { role = "assistant", content = res.text or "" }
  if type(res.tool_calls) == "table" and #res.tool_calls > 0 then m.tool_calls = res.tool_calls end
  return m
end

local function tool_choice_value(choice)
  if choice == nil or choice == "auto" or choice == "none" or choice == "required" then return choice end
  if type(choice) == "table" then return { name = choice.name } end
  return { name = choice }
end

local function request_for(self, system, base, exchange, opts, tool_choice)
  local messages = {}
  system = system or self.system
  if system then messages[1] = { role = "system", content = system } end
  table.move(base, 1, #base, #messages + 1, messages)
  table.move(exchange, 1, #exchange, #messages + 1, messages)
  local req = {
    messages = messages,
    temperature = opts.temperature or self.temperature,
    max_tokens = opts.max_tokens or self.max_tokens,
    stop = opts.stop,
  }
  if self._tool_specs then
    req.tools = self._tool_specs
    req.tool_choice = tool_choice_value(tool_choice)
  end
  if opts.schema then
    req.response_format = { type = "json_schema", name = opts.schema_name or "output",
                            schema = opts.schema }
  end
  return req
end

local function call_model(self, req)
  local ok, res = host.chat(self.name, self.model, self.role, req)
  if not ok then raise(res, 3) end
  return res
end

--- agent:chat(prompt_or_messages [, opts]) -> { text, tool_calls, usage, model, finish_reason, ... }
function Agent:chat(prompt, opts)
  check_self(self, "chat")
  opts = check_opts(self, opts, "chat", 2)
  local exchange, system = input_messages(prompt, 2)
  local res = call_model(self, request_for(self, system, snapshot(self), exchange, opts,
                                           opts.tool_choice))
  exchange[#exchange + 1] = assistant_message(res)
  commit(self, exchange)
  return res
end

-- The answer of a structured call as a value, or nil and the list of what is wrong with it.
local function parse_output(text, schema)
  local body = text:match("^%s*```[%w_-]*%s*\n(.-)\n?%s*```%s*$") or text -- a fenced block
  local ok, value = pcall(host.json_decode, body)
  if not ok then
    local why = tostring(value):gsub("^troupe%.json%.decode: ", "")
    return nil, { "the answer is not valid JSON: " .. why }
  end
  local valid, errors = host.validate(schema, value)
  if not valid then return nil, errors end
  return value
end

local function ask_structured(self, prompt, opts)
  local schema = opts.schema
  local ok, err = pcall(host.validate, schema, host.null)
  if not ok then error("agent:ask: option 'schema': " .. tostring(err), 3) end
  local retries = opts.retries or 2
  local exchange, system = input_messages(prompt, 3)
  local base = snapshot(self)
  local attempt = table.move(exchange, 1, #exchange, 1, {})
  local problems
  for _ = 1, retries + 1 do
    local res = call_model(self, request_for(self, system, base, attempt, opts, opts.tool_choice))
    local value
    value, problems = parse_output(res.text or "", schema)
    if problems == nil then
      exchange[#exchange + 1] = assistant_message(res)
      commit(self, exchange)
      return value, res
    end
    -- Show the model its answer and what is wrong with it, and ask again.
    attempt[#attempt + 1] = { role = "assistant", content = res.text or "" }
    attempt[#attempt + 1] = { role = "user", content =
      "Your answer does not match the required JSON Schema:\n- " .. table.concat(problems, "\n- ") ..
      "\nReply again with only the corrected JSON value, no other text." }
  end
  error(("agent '%s': the answer did not match the schema after %d attempt%s: %s"):format(
    self.name, retries + 1, retries == 0 and "" or "s", table.concat(problems, "; ")), 3)
end

--- agent:ask(prompt_or_messages [, opts]) -> text   (with opts.schema: the decoded value)
function Agent:ask(prompt, opts)
  check_self(self, "ask")
  opts = check_opts(self, opts, "ask", 2)
  if opts.schema then return ask_structured(self, prompt, opts) end
  local exchange, system = input_messages(prompt, 2)
  local res = call_model(self, request_for(self, system, snapshot(self), exchange, opts,
                                           opts.tool_choice))
  exchange[#exchange + 1] = assistant_message(res)
  commit(self, exchange)
  return res.text
end

--- for ev in agent:stream(prompt_or_messages [, opts]) do ... end
--- Events: text_delta, reasoning_delta, tool_call_delta, then one usage event (with response).
function Agent:stream(prompt, opts)
  check_self(self, "stream")
  opts = check_opts(self, opts, "stream", 2)
  local exchange, system = input_messages(prompt, 2)
  local handle = host.stream(self.name, self.model, self.role,
                             request_for(self, system, snapshot(self), exchange, opts,
                                         opts.tool_choice))
  local finished = false
  local function next_event()
    if finished then return nil end
    local ok, ev = host.stream_next(handle)
    if not ok then
      finished = true
      raise(ev, 2)
    end
    if ev == nil or ev.type == "usage" then finished = true end
    if ev and ev.type == "usage" then
      exchange[#exchange + 1] = assistant_message(ev.response)
      commit(self, exchange)
    end
    return ev
  end
  -- The handle is the generic for's closing value: leaving the loop early cancels the call.
  return next_event, nil, nil, handle
end

--- agent:reset() forgets the conversation; agent:history() -> a copy of it
function Agent:reset()
  check_self(self, "reset")
  self._history = {}
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  local mt = rawgetmetatable(v)
  if mt ~= nil then setmetatable(c, mt) end -- keeps JSON array marks
  return c
end

function Agent:history()
  check_self(self, "history")
  return troupe.array(deep_copy(self._history))
end

-- What a tool's return value says to the model: strings as they are, tables as JSON.
local function result_text(v)
  local t = type(v)
  if t == "string" then return true, v end
  if t == "nil" then return true, "" end
  if t == "number" or t == "boolean" then return true, tostring(v) end
  if t == "table" then
    local ok, s = pcall(host.json_encode, v)
    if ok then return true, s end
    return false, "the tool's result cannot be sent as JSON: " .. tostring(s):gsub("^troupe%.json%.encode: ", "")
  end
  return false, "the tool returned a " .. t .. ", which cannot be sent to the model"
end

local function error_text(e)
  if type(e) == "table" and rawgetmetatable(e) == Error then return tostring(e) end
  if type(e) == "table" and e.message then return tostring(e.message) end
  return tostring(e)
end

-- One tool call: a step of its own; whatever goes wrong becomes the text the model reads
-- ("error: ..."), and the step's error.
local function run_tool_call(self, call)
  local name = type(call.name) == "string" and call.name or tostring(call.name)
  local step <close> = host.tool_step(self.name, name, call.id, call.arguments)
  local tool, result, problem = self._tools[name], nil, nil
  if not tool then
    local names = {}
    for i, t in ipairs(self.tools) do names[i] = t.name end
    problem = ("there is no tool named '%s' (available: %s)"):format(name, name_list(names))
  elseif type(call.arguments) ~= "table" then
    problem = ("the arguments of tool '%s' must be a JSON object"):format(name)
  else
    local valid, errors = host.validate(tool.parameters, call.arguments)
    if not valid then
      problem = ("invalid arguments for tool '%s': %s"):format(name, table.concat(errors, "; "))
    else
      local ran, value = pcall(tool.run, deep_copy(call.arguments))
      if not ran then
        problem = ("tool '%s' failed: %s"):format(name, error_text(value))
      else
        local ok, text = result_text(value)
        if ok then result = text else problem = ("tool '%s': %s"):format(name, text) end
      end
    end
  end
  if problem then
    host.tool_done(step, false, problem)
    return "error: " .. problem
  end
  host.tool_done(step, true, result)
  return result
end

--- agent:run(task [, { max_turns = 8, tool_choice = ... }]) -> text, response
--- Calls the model, runs the tools it asks for (a turn's calls at the same time), sends the
--- results back, until it answers without tool calls.
function Agent:run(task, opts)
  check_self(self, "run")
  opts = check_opts(self, opts, "run", 2)
  local max_turns = opts.max_turns or 8
  local exchange, system = input_messages(task, 2)
  local base = snapshot(self)
  local asked = {}
  for turn = 1, max_turns do
    -- tool_choice applies to the first turn only: "required" on every turn would never end.
    local res = call_model(self, request_for(self, system, base, exchange, opts,
                                             turn == 1 and opts.tool_choice or nil))
    local calls = res.tool_calls or {}
    exchange[#exchange + 1] = assistant_message(res)
    if #calls == 0 then
      commit(self, exchange)
      return res.text, res
    end
    for i, c in ipairs(calls) do
      if type(c.id) ~= "string" or c.id == "" then c.id = ("call_%d_%d"):format(turn, i) end
      asked[#asked + 1] = tostring(c.name)
    end
    local results
    if #calls == 1 then
      results = { run_tool_call(self, calls[1]) }
    else
      results = troupe.map(calls, function(c) return run_tool_call(self, c) end)
    end
    for i, c in ipairs(calls) do
      exchange[#exchange + 1] = { role = "tool", tool_call_id = c.id, content = results[i] }
    end
  end
  error(("agent:run: agent '%s' still asked for tools after max_turns = %d model calls (last: %s); " ..
         "raise max_turns or narrow the task"):format(self.name, max_turns, asked[#asked] or "?"), 2)
end

AgentMT.__tostring = function(self) return ("agent %s (%s)"):format(self.name, self.model) end

--- troupe.validate(schema, value) -> true | false, { "path: problem", ... }
function troupe.validate(schema, value)
  if type(schema) ~= "table" then
    error("troupe.validate: the schema must be a table (a JSON Schema), got " .. type(schema), 2)
  end
  local ok, valid, errors = pcall(host.validate, schema, value)
  if not ok then error(valid, 2) end
  if valid then return true end
  return false, errors
end

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
-- HTTP: troupe.http.request/get/post over the primitive host.http (host_http.cpp), a step.

local HTTP_FIELDS = { url = true, method = true, headers = true, body = true, timeout = true,
                      redirects = true, max_bytes = true }

local function http_call(req)
  for k in pairs(req) do
    if not HTTP_FIELDS[k] then
      error(("troupe.http: unknown field '%s' (known: url, method, headers, body, timeout, " ..
             "redirects, max_bytes)"):format(tostring(k)), 3)
    end
  end
  local ok, res = host.http(req)
  if not ok then raise(res, 3) end
  return res
end

local function http_options(url, opts, what)
  if type(url) ~= "string" then error(what .. " expects a URL (a string), got " .. type(url), 3) end
  if opts ~= nil and type(opts) ~= "table" then error(what .. ": options must be a table", 3) end
  local req = {}
  for k, v in pairs(opts or {}) do req[k] = v end
  req.url = url
  return req
end

troupe.http = {
  --- troupe.http.request{ url =, method =, headers =, body =, timeout = } -> { status, headers, body, url }
  request = function(req)
    if type(req) ~= "table" then error("troupe.http.request expects a table { url = ..., ... }", 2) end
    return http_call(req)
  end,
  --- troupe.http.get(url [, opts]) -> response
  get = function(url, opts)
    local req = http_options(url, opts, "troupe.http.get")
    req.method = "GET"
    return http_call(req)
  end,
  --- troupe.http.post(url, body [, opts]) -> response; a table body is sent as JSON
  post = function(url, body, opts)
    local req = http_options(url, opts, "troupe.http.post")
    req.method = "POST"
    if type(body) == "table" then
      local headers, typed = {}, false
      for k, v in pairs(req.headers or {}) do
        headers[k] = v
        if type(k) == "string" and k:lower() == "content-type" then typed = true end
      end
      if not typed then headers["Content-Type"] = "application/json" end
      req.headers, body = headers, host.json_encode(body)
    end
    req.body = body
    return http_call(req)
  end,
}

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
