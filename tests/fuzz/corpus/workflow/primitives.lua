-- input: {"who": "ada", "n": 3, "list": [1, 2, 3]}
local troupe = require("troupe")
return troupe.workflow{ name = "primitives", run = function(input)
  local a = troupe.agent{ name = "a", model = "mock/m", system = "be brief" }
  local r1, r2 = troupe.parallel(function() return a:ask("hi " .. input.who) end,
                                 function() return #troupe.map(input.list, function(x) return x * 2 end) end)
  local s = troupe.json.encode({ r1 = r1, r2 = r2, e = troupe.array(), n = troupe.json.decode("[1,null,2]") })
  troupe.log("encoded", s)
  troupe.log.warn(troupe.now())
  local ok, errs = troupe.validate({ type = "object", required = { "x" } }, { y = 1 })
  local okh, herr = pcall(troupe.http.get, "http://example.invalid/page")
  troupe.sleep(0)
  local t = setmetatable({}, { __index = function(_, k) return k end, __tostring = function() return "t" end })
  local co = coroutine.wrap(function(x) coroutine.yield(x + 1); return x end)
  return { s = s, ok = ok, errs = errs, okh = okh, herr = tostring(herr), t = tostring(t), c = co(1),
           m = string.format("%5.2f", math.pi), g = string.gsub("a,b,c", ",", ";") }
end }
