-- outside.lua (troupe.outside): waiting for the world outside the run — troupe.wait_signal
-- (a signal sent with `troupe signal`) and troupe.approve (a person's decision with
-- `troupe approve`, or the default at the deadline). Both are durable: the run may be parked
-- while it waits and resumed by a worker (docs/durability.md).
local host = ...
local util = require("troupe.util")

local outside = {}

--- troupe.wait_signal(name [, timeout_s]) -> data | nil, "timeout"
--- Takes the oldest signal `name` sent to this run that no earlier wait took (signals sent
--- before the wait are buffered); each signal is delivered once.
function outside.wait_signal(name, timeout)
  if type(name) ~= "string" or name == "" then
    error("troupe.wait_signal expects a signal name (a non-empty string)", 2)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("troupe.wait_signal: the timeout must be a number of seconds >= 0", 2)
  end
  local ok, data = host.wait_signal(name, timeout)
  if not ok then return nil, data end
  return data
end

local check_fields = util.fields{ "title", "details", "choices", "default", "timeout", "escalate" }

--- troupe.approve{ title =, details =, choices = {"approve", "reject"}, timeout = s,
---                 default = choice, escalate = { { after = s, webhook = url }, ... } }
--- -> { choice, by, comment, at, defaulted }
--- Parks the run until someone decides (troupe approve RUN KEY --choice C); at the deadline
--- the default is applied and recorded as such. Escalation tiers fire in order at their times:
--- an event (approval.escalated), a log line, and a signed webhook POST when one is given.
function outside.approve(spec)
  if type(spec) ~= "table" then
    error("troupe.approve expects a table { title = ..., choices = ..., ... }", 2)
  end
  check_fields(spec, "troupe.approve", 2)
  if type(spec.title) ~= "string" or spec.title == "" then
    error("troupe.approve: 'title' must be a non-empty string", 2)
  end
  util.check_type(spec.details, "string", "troupe.approve: 'details'", 2)
  local choices = spec.choices or { "approve", "reject" }
  if type(choices) ~= "table" or #choices == 0 then
    error("troupe.approve: 'choices' must be a non-empty list of strings", 2)
  end
  local known = {}
  for i, c in ipairs(choices) do
    if type(c) ~= "string" or c == "" then
      error(("troupe.approve: choice %d must be a non-empty string"):format(i), 2)
    end
    known[c] = true
  end
  if spec.timeout ~= nil then
    if type(spec.timeout) ~= "number" or spec.timeout < 0 then
      error("troupe.approve: 'timeout' must be a number of seconds >= 0", 2)
    end
    if not known[spec.default] then
      error("troupe.approve: a timeout needs a 'default' that is one of the choices", 2)
    end
  elseif spec.default ~= nil and not known[spec.default] then
    error("troupe.approve: 'default' must be one of the choices", 2)
  end
  local tiers = {}
  for i, tier in ipairs(spec.escalate or {}) do
    if type(tier) ~= "table" or type(tier.after) ~= "number" or tier.after < 0 then
      error(("troupe.approve: escalate[%d] must be { after = seconds [, webhook = url] }"):format(i), 2)
    end
    if tier.webhook ~= nil and type(tier.webhook) ~= "string" then
      error(("troupe.approve: escalate[%d].webhook must be a URL"):format(i), 2)
    end
    tiers[i] = { after = tier.after, webhook = tier.webhook }
  end
  table.sort(tiers, function(a, b) return a.after < b.after end)
  local ok, decision = host.approve({
    title = spec.title, details = spec.details or "", choices = choices,
    default = spec.default, timeout = spec.timeout, escalate = tiers,
  })
  if not ok then error(decision, 0) end
  return decision
end

return outside
