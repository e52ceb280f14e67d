-- troupe: the workflow library — workflows, agents, parallel branches, sleeps and logs.
--
-- Every function that waits (agent:ask, troupe.parallel, troupe.sleep, ...) calls a primitive:
-- it suspends only the calling branch, and its result is journaled under a deterministic
-- step key before the branch continues.
--
-- This file assembles the public table from the library's modules, one job each (README.md
-- in this folder lists them). Workflows can require only `troupe` and `troupe.roles.*`
-- (_runtime.lua): the other modules are the library's own, reachable only through this table.
--
-- The library's metatables are shared by every run: each hides itself (__metatable) and no
-- __index leads back to it, so a workflow can neither read nor change it; the library
-- recognises its objects with rawgetmetatable (given by _runtime.lua). When a module loads,
-- _runtime.lua turns every table it exports into a read-only view: modules share their
-- metatables through functions (tool.is_tool), never as exported tables.
local host = ...
local workflow = require("troupe.workflow")
local tool = require("troupe.tool")
local agent = require("troupe.agent")
local json = require("troupe.json")
local parallel = require("troupe.parallel")
local clock = require("troupe.clock")
local outside = require("troupe.outside")

-- The fields are set in the order the library has always set them (what pairs(troupe) sees).
local troupe = {
  version = host.version,
  null = host.null,
}
troupe.workflow = workflow.workflow
troupe.is_workflow = workflow.is_workflow
troupe.tool = tool.tool
troupe.host_tool = tool.host_tool
troupe.agent = agent.agent
troupe.validate = json.validate
troupe.parallel = parallel.parallel
troupe.map = parallel.map
troupe.sleep = clock.sleep
troupe.http = require("troupe.http")
troupe.log = require("troupe.log")
troupe.now = clock.now
troupe.patched = workflow.patched
troupe.array = json.array
troupe.json = { encode = json.encode, decode = json.decode }
troupe.wait_signal = outside.wait_signal
troupe.approve = outside.approve

return troupe
