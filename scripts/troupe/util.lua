-- util.lua (troupe.util): the small helpers more than one module of the library uses.

local util = {}

-- Raises "<what> must be a <want>, got <type>" unless v is nil or of type want.
function util.check_type(v, want, what, level)
  if v ~= nil and type(v) ~= want then
    error(("%s must be a %s, got %s"):format(what, want, type(v)), level + 1)
  end
end

-- The check of a definition table's keys: util.fields{ "a", "b" }(t, "troupe.x", level) raises
-- "troupe.x: unknown field 'k' (known: a, b)" at a key not in the list.
function util.fields(names)
  local known = {}
  for _, n in ipairs(names) do known[n] = true end
  local list = table.concat(names, ", ")
  return function(t, what, level)
    for k in pairs(t) do
      if not known[k] then
        error(("%s: unknown field '%s' (known: %s)"):format(what, tostring(k), list), level + 1)
      end
    end
  end
end

-- "a, b, c" ("(none)" for an empty list)
function util.name_list(names)
  if #names == 0 then return "(none)" end
  return table.concat(names, ", ")
end

-- A copy of v that shares no table with it; metatables are kept (JSON array marks).
local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  local mt = rawgetmetatable(v)
  if mt ~= nil then setmetatable(c, mt) end -- keeps JSON array marks
  return c
end
util.deep_copy = deep_copy

return util
