local troupe = require("troupe")
local weather = troupe.tool{ name = "weather", description = "the weather in a city",
  parameters = { type = "object", properties = { city = { type = "string" } }, required = { "city" } },
  run = function(args) return { city = args.city, temp = 21 } end }
return troupe.workflow{ name = "sltoo", run = function(input)
  local a = troupe.agent{ name = "planner", model = "mock/m", tools = { weather }, max_tokens = 50 }
  local out = a:run("what is the weather in Osÿÿÿ`)
  local typed = a:ask("give me a number", { schema = { type = "object", properties = { n = { type = "integer" } } } })
  for piece in a:stream("tell me a story") do troupe.log(piece) end
  return { out = out, typed = typed }
end }
