-- json.lua (troupe.json): JSON values — troupe.json.encode/decode, troupe.array (marks a table
-- as a JSON array) and troupe.validate (JSON Schema) — over the host's JSON primitives
-- (host/runtime/json_lua.cpp, prim_schema.cpp).
local host = ...

local json = {}

function json.encode(v) return host.json_encode(v) end
function json.decode(s) return host.json_decode(s) end

--- troupe.array(t) marks t as a JSON array (useful for empty lists)
function json.array(t)
  t = t or {}
  return host.mark_array(t)
end

--- troupe.validate(schema, value) -> true | false, { "path: problem", ... }
function json.validate(schema, value)
  if type(schema) ~= "table" then
    error("troupe.validate: the schema must be a table (a JSON Schema), got " .. type(schema), 2)
  end
  local ok, valid, errors = pcall(host.validate, schema, value)
  if not ok then error(valid, 2) end
  if valid then return true end
  return false, errors
end

return json
