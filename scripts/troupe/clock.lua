-- clock.lua (troupe.clock): the run's time — troupe.now() and troupe.sleep(seconds), both
-- journaled, so a resumed run sees the same times and does not sleep again.
local host = ...
local unwrap = require("troupe.errors").unwrap

local clock = {}

--- troupe.now() -> seconds since the epoch (journaled: a resumed run sees the same time)
function clock.now() return host.now() end

--- troupe.sleep(seconds)
function clock.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("troupe.sleep expects a number of seconds >= 0", 2)
  end
  return unwrap(host.sleep(seconds))
end

return clock
