local troupe = require("troupe")
return troupe.workflow{ name = "wÿ", run = function(input)
  local a = troupe.agent{ name = "aÿ", model = "mock/mÿ" }
  return a:ask("hi")
end }
