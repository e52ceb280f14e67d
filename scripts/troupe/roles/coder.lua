-- coder: an alias of the builder role, under the name most workflows use.
local builder = require("troupe.roles.builder")

return {
  name = "coder",
  description = builder.description,
  system = builder.system,
}
