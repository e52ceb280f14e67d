-- input: {"topics": ["backpressure", "idempotency"]}
-- fanout_map.lua: example — one agent call per topic with troupe.map (at most 3 at once), then a
-- summary of all the notes by a second agent.
--
--   troupe run scripts/workflows/fanout_map.lua
--   troupe run scripts/workflows/fanout_map.lua --input '{"topics": ["backpressure", "idempotency"]}'
local troupe = require("troupe")

local DEFAULT_TOPICS = {
  "write-ahead logging",
  "circuit breakers",
  "token-bucket rate limiting",
  "idempotency keys",
  "exponential backoff with jitter",
}

-- An agent with its own system prompt instead of a built-in role. history = false: each topic
-- is explained on its own, not as the next turn of a conversation about the earlier ones.
local explainer = troupe.agent{
  name = "explainer",
  model = "openai/gpt-4o-mini",
  system = "You explain one concept from distributed systems to an experienced colleague in at " ..
           "most three sentences: what it is, the problem it solves, and its main trade-off. " ..
           "No preamble.",
  max_tokens = 200,
  history = false,
}
local editor = troupe.agent{ name = "editor", model = "anthropic/claude-sonnet-4-5", role = "documenter" }

return troupe.workflow{
  name = "fanout_map",
  description = "Explains a list of topics in parallel (3 at a time) and summarises the notes.",
  run = function(input)
    local topics = input.topics or DEFAULT_TOPICS
    if type(topics) ~= "table" or #topics == 0 then
      error("input.topics must be a non-empty list of strings", 0)
    end
    troupe.log(("explaining %d topics, at most 3 at a time"):format(#topics))

    -- fn(item, index) runs as its own branch; the results come back in the list's order,
    -- whatever order the calls finish in.
    local notes = troupe.map(topics, function(topic, i)
      local text = explainer:ask("Explain: " .. tostring(topic))
      return { topic = topic, note = text, position = i }
    end, { concurrency = 3 })

    local material = {}
    for _, n in ipairs(notes) do material[#material + 1] = ("### %s\n%s"):format(n.topic, n.note) end
    local summary = editor:ask(
      "Summarise these notes as a one-paragraph introduction for a reliability handbook:\n\n" ..
      table.concat(material, "\n\n"))

    -- A table is printed by `troupe run` as JSON.
    return { summary = summary, notes = notes }
  end,
}
