-- log.lua (troupe.log): the run's log — troupe.log(...) records an event of the run (level
-- info); troupe.log.debug/info/warn/error(...) record one at that level.
local host = ...

local function logger(level)
  return function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    host.log(level, table.concat(parts, " "))
  end
end

return setmetatable({
  debug = logger("debug"), info = logger("info"), warn = logger("warn"), error = logger("error"),
}, { __call = function(_, ...) return logger("info")(...) end })
