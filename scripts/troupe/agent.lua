-- agent.lua (troupe.agent): agents — troupe.agent{...} and its methods chat, ask (with
-- structured output), stream, run (the tool loop), reset and history — on the host calls
-- host.chat and host.stream. An agent keeps its conversation unless made with history = false.
local host = ...
local errors = require("troupe.errors")
local util = require("troupe.util")
local tool = require("troupe.tool")
local parallel = require("troupe.parallel")
local json = require("troupe.json")

local raise, check_type, name_list = errors.raise, util.check_type, util.name_list

local Agent = {} -- the methods
local AgentMT = { __name = "troupe.agent", __index = Agent, __metatable = false }

local agent = {}

--- troupe.agent{ name =, model = "provider/model", system =, role =, temperature =,
---               max_tokens =, tools = { tool, ... }, history = true | false,
---               retry = { attempts =, initial =, backoff =, max =, jitter =, non_retryable = }
---                       | false }
--- retry: how a failed model call is tried again (default: the host's `retry:` config, three
--- attempts); a call's own `retry` option replaces it.
local check_fields = util.fields{ "name", "model", "system", "role", "temperature", "max_tokens",
                                  "tools", "history", "retry" }

function agent.agent(spec)
  if type(spec) ~= "table" then error("troupe.agent expects a table { name = ..., model = ... }", 2) end
  check_fields(spec, "troupe.agent", 2)
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
  if spec.retry ~= nil then host.check_retry(spec.retry, "troupe.agent") end
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
      t = tool.from_host(t, 2)
    end
    if not tool.is_tool(t) then
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
    _retry = spec.retry,
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
                       schema = true, schema_name = true, retry = true }
local OPTIONS = {
  chat = CALL_OPTIONS,
  stream = CALL_OPTIONS,
  ask = { temperature = true, max_tokens = true, stop = true, tool_choice = true, schema = true,
          schema_name = true, retries = true, retry = true },
  run = { temperature = true, max_tokens = true, stop = true, tool_choice = true,
          max_turns = true, retry = true },
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
  if opts.retry ~= nil then host.check_retry(opts.retry, "agent:" .. method) end
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

-- The retry policy of a call: its own option, else the agent's (nil: the host's default).
local function retry_of(self, opts)
  if opts.retry ~= nil then return opts.retry end
  return self._retry
end

local function call_model(self, req, opts)
  local ok, res = host.chat(self.name, self.model, self.role, req, retry_of(self, opts))
  if not ok then raise(res, 3) end
  return res
end

--- agent:chat(prompt_or_messages [, opts]) -> { text, tool_calls, usage, model, finish_reason, ... }
function Agent:chat(prompt, opts)
  check_self(self, "chat")
  opts = check_opts(self, opts, "chat", 2)
  local exchange, system = input_messages(prompt, 2)
  local res = call_model(self, request_for(self, system, snapshot(self), exchange, opts,
                                           opts.tool_choice), opts)
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
  local valid, problems = host.validate(schema, value)
  if not valid then return nil, problems end
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
    local res = call_model(self, request_for(self, system, base, attempt, opts,
                                             opts.tool_choice), opts)
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
                                           opts.tool_choice), opts)
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
                                         opts.tool_choice), retry_of(self, opts))
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

function Agent:history()
  check_self(self, "history")
  return json.array(util.deep_copy(self._history))
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
                                             turn == 1 and opts.tool_choice or nil), opts)
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
      results = { tool.run_call(self, calls[1]) }
    else
      results = parallel.map(calls, function(c) return tool.run_call(self, c) end)
    end
    for i, c in ipairs(calls) do
      exchange[#exchange + 1] = { role = "tool", tool_call_id = c.id, content = results[i] }
    end
  end
  error(("agent:run: agent '%s' still asked for tools after max_turns = %d model calls (last: %s); " ..
         "raise max_turns or narrow the task"):format(self.name, max_turns, asked[#asked] or "?"), 2)
end

AgentMT.__tostring = function(self) return ("agent %s (%s)"):format(self.name, self.model) end

return agent
