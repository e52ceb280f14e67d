-- durable_50.lua: 50 journaled steps for the crash-and-resume test (resume_kill_test.cpp) —
-- sequential model calls, sleeps, a map and parallel branches, a tool loop, the clock and
-- random numbers, each of which a resumed run must serve from its journal or redo exactly.
local troupe = require("troupe")

local add = troupe.tool{
  name = "add",
  description = "Adds two numbers",
  parameters = {
    type = "object",
    properties = { a = { type = "number" }, b = { type = "number" } },
    required = { "a", "b" },
  },
  run = function(args) return args.a + args.b end,
}

return troupe.workflow{
  name = "durable_50",
  run = function(input)
    local writer = troupe.agent{ name = "writer", model = "openai/gpt-4o-mini" }
    -- Branches running at once share no history: what one sees of another's exchanges would
    -- depend on which finished first, which a resumed run cannot reproduce (docs/durability.md).
    local worker = troupe.agent{ name = "worker", model = "openai/gpt-4o-mini", history = false }
    -- Seeded streams: every run draws the same numbers (unseeded, each run's own), so that all
    -- runs end with the same output; each branch draws from a stream of its own.
    math.randomseed(7)
    local out = {}
    for i = 1, 10 do -- 10 steps
      out[#out + 1] = writer:ask("part " .. i .. " seed " .. math.random(1000))
    end
    troupe.sleep(0.02) -- 1
    local items = troupe.map({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, function(i) -- 10
      math.randomseed(i)
      return worker:ask("item " .. i .. " roll " .. math.random(6))
    end, { concurrency = 4 })
    for _, r in ipairs(items) do out[#out + 1] = r end
    local branches = { troupe.parallel( -- 3 × (3 calls + 1 sleep) = 12
      function()
        local a = worker:ask("left 1"); troupe.sleep(0.01)
        return a .. worker:ask("left 2") .. worker:ask("left 3")
      end,
      function()
        local a = worker:ask("middle 1"); troupe.sleep(0.01)
        return a .. worker:ask("middle 2") .. worker:ask("middle 3")
      end,
      function()
        local a = worker:ask("right 1"); troupe.sleep(0.01)
        return a .. worker:ask("right 2") .. worker:ask("right 3")
      end) }
    for _, r in ipairs(branches) do out[#out + 1] = r end
    local calc = troupe.agent{ name = "calc", model = "openai/gpt-4o-mini", tools = { add } }
    out[#out + 1] = calc:run("compute 1 + 2") -- 3: a call, the tool, the answer
    out[#out + 1] = tostring(troupe.now() > 0) -- 1
    for i = 1, 13 do -- 13
      out[#out + 1] = writer:ask("final " .. i .. " " .. out[i]:sub(1, 20))
    end
    return out
  end,
}
