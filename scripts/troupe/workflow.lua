-- workflow.lua (troupe.workflow): troupe.workflow{...}, what a workflow script returns, and
-- troupe.patched(id), how a workflow changes safely while runs of its old version are in flight.
local host = ...

local Workflow = { __name = "troupe.workflow", __metatable = false }

local workflow = {}

--- troupe.workflow{ name = "...", run = function(input) ... end [, description = "..."]
---                  [, durability = "sync" | "async"] }   (default: the host's `durability`)
function workflow.workflow(def)
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

function workflow.is_workflow(v) return type(v) == "table" and rawgetmetatable(v) == Workflow end

--- troupe.patched(id) -> bool: true on the new code path of a change guarded by `id`; false
--- for a run recorded before the change, resumed now (Temporal's patching):
---   if troupe.patched("ask-twice") then ... new steps ... else ... old steps ... end
function workflow.patched(id)
  if type(id) ~= "string" or id == "" then
    error("troupe.patched expects the change's id (a non-empty string)", 2)
  end
  return host.patched(id)
end

return workflow
