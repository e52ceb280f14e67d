local troupe = require("troupe")
return troupe.workflow{ name = "failures", run = function(input)
  local a = troupe.agent{ name = "a", model = "mock/error-rate-limited" }
  local ok, e = pcall(a.ask, a, "x")
  local results = {}
  results[1] = pcall(function() return ("x"):rep(1 << 40) end)
  results[2] = pcall(function() local t = {} while true do t[#t + 1] = {} end end)
  results[3] = pcall(error, setmetatable({}, { __tostring = function() error("boom") end }))
  troupe.parallel(function() error({ code = 1 }) end, function() troupe.sleep(0.01) end)
  return { ok = ok, e = e, results = results }
end }
