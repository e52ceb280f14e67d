-- tool.lua (troupe.tool): tools — troupe.tool{...}, troupe.host_tool(name) — and running one
-- call a model made to a tool, as a step of its own.
local host = ...
local errors = require("troupe.errors")
local util = require("troupe.util")

local Tool = {}
local ToolMT = { __name = "troupe.tool", __index = Tool, __metatable = false }

local tool = {}

local check_fields = util.fields{ "name", "description", "parameters", "run", "retry" }

--- troupe.tool{ name =, description =, parameters = <JSON Schema of the arguments>,
---              run = function(args) ... end,
---              retry = { attempts =, initial =, backoff =, max =, jitter =, non_retryable = } }
--- A tool with a retry policy that raises is run again after the policy's wait, each failed
--- attempt journaled under the tool call's step key; without one it is tried once.
local function new_tool(def)
  if type(def) ~= "table" then
    error("troupe.tool expects a table { name = ..., description = ..., parameters = ..., run = ... }", 2)
  end
  check_fields(def, "troupe.tool", 2)
  local name = def.name
  -- The strictest rule among the vendors (OpenAI's and Anthropic's function names), so a tool
  -- works with every provider; ASCII only, whatever the C locale says a letter is.
  if type(name) ~= "string" or #name < 1 or #name > 64 or name:find("[^A-Za-z0-9_%-]") then
    error("troupe.tool: 'name' must be 1 to 64 ASCII letters, digits, '_' or '-' (got " ..
          (type(name) == "string" and ("'" .. name .. "'") or type(name)) .. ")", 2)
  end
  util.check_type(def.description, "string", "troupe.tool '" .. name .. "': 'description'", 2)
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
  if def.retry ~= nil then host.check_retry(def.retry, "troupe.tool '" .. name .. "'") end
  return setmetatable({
    name = name, description = def.description or "", parameters = parameters, run = def.run,
    retry = def.retry,
  }, ToolMT)
end
tool.tool = new_tool

ToolMT.__tostring = function(self) return "tool " .. self.name end

-- Whether v was made by troupe.tool{...}.
function tool.is_tool(v) return rawgetmetatable(v) == ToolMT end

--- troupe.host_tool(name) -> tool: a tool implemented by the program that embeds troupe (a
--- Python function registered with @host.tool); its description and parameters come from there.
--- tool.from_host raises at `level` as error() counts it (troupe.agent's tools = { "name" }).
local function from_host(name, level)
  if type(name) ~= "string" then
    error("troupe.host_tool expects the name of a tool registered by the host (a string)", level + 1)
  end
  local info, why = host.external_tool(name)
  if not info then error("troupe.host_tool: " .. why, level + 1) end
  return new_tool{
    name = info.name, description = info.description, parameters = info.parameters,
    run = function(args)
      local ok, text = host.external_tool(name, args)
      if not ok then error(text, 0) end
      return text
    end,
  }
end
tool.from_host = from_host

function tool.host_tool(name)
  local t = from_host(name, 2) -- not a tail call: the error level counts this frame
  return t
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

-- One tool call of `agent` (its name, tools and _tools): a step of its own; whatever goes
-- wrong becomes the text the model reads ("error: ..."), and the step's error.
function tool.run_call(agent, call)
  local name = type(call.name) == "string" and call.name or tostring(call.name)
  local step <close> = host.tool_step(agent.name, name, call.id, call.arguments)
  local t, result, problem = agent._tools[name], nil, nil
  if not t then
    local names = {}
    for i, x in ipairs(agent.tools) do names[i] = x.name end
    problem = ("there is no tool named '%s' (available: %s)"):format(name, util.name_list(names))
  elseif type(call.arguments) ~= "table" then
    problem = ("the arguments of tool '%s' must be a JSON object"):format(name)
  else
    local valid, errs = host.validate(t.parameters, call.arguments)
    if not valid then
      problem = ("invalid arguments for tool '%s': %s"):format(name, table.concat(errs, "; "))
    else
      local ran, value = pcall(t.run, util.deep_copy(call.arguments))
      while not ran and host.tool_retry(step, errors.text(value), value, t.retry) do
        ran, value = pcall(t.run, util.deep_copy(call.arguments))
      end
      if not ran then
        problem = ("tool '%s' failed: %s"):format(name, errors.text(value))
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

return tool
