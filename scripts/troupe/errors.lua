-- errors.lua (troupe.errors): the error values of host calls and how the library raises them.
--
-- A host call that fails returns a table {status=, message=, retryable=, retry_after_ms=,
-- step_key=}; raised, it gets the hidden metatable below, so it prints as one line.

local Error = {
  __name = "troupe.error",
  __tostring = function(e) return e.text or tostring(e.message) end,
  __metatable = false,
}

local errors = {}

-- Raises e (an error table gets the error metatable) at `level` as error() counts it, or
-- without a position when level is nil.
function errors.raise(e, level)
  if type(e) == "table" then setmetatable(e, Error) end
  error(e, level and level + 1 or 0)
end

-- The results of a host call that returns ok, ...: the results, or its error raised as is.
function errors.unwrap(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

-- The text of any error value: an error table's line, another table's message, else tostring.
function errors.text(e)
  if type(e) == "table" and rawgetmetatable(e) == Error then return tostring(e) end
  if type(e) == "table" and e.message then return tostring(e.message) end
  return tostring(e)
end

return errors
