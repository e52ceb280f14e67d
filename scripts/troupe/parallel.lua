-- parallel.lua (troupe.parallel): branches — troupe.parallel(f1, f2, ...) and
-- troupe.map(list, fn) — on the host calls host.parallel and host.map, which run each branch
-- as a task of its own and join them.
local host = ...
local unwrap = require("troupe.errors").unwrap

local parallel = {}

--- troupe.parallel(f1, f2, ...) -> r1, r2, ...   (each branch's first result, in order)
--- A failing branch cancels the others and fails the join with that branch's error.
function parallel.parallel(...)
  for i = 1, select("#", ...) do
    local f = select(i, ...)
    if type(f) ~= "function" then
      error(("troupe.parallel: argument %d is a %s, expected a function"):format(i, type(f)), 2)
    end
  end
  return unwrap(host.parallel(...))
end

--- troupe.map(list, fn [, { concurrency = n }]) -> { fn(list[1], 1), fn(list[2], 2), ... }
function parallel.map(list, fn, opts)
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

return parallel
