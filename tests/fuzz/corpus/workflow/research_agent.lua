-- input: {"question": "what is a write-ahead log?"}
-- research_agent.lua: example — an agent with tools (a calculator and a page fetcher) that
-- answers a question by calling them until it can reply, via agent:run.
--
--   troupe run scripts/workflows/research_agent.lua \
--     --input '{"question": "What is 17% of 2,340? Cite https://example.org/page", "model": "openai/gpt-4o-mini"}'
--
-- Offline (no API key) the mock answers; against a real model the model decides which tools to
-- call. Each tool call is a recorded step (`troupe show <run>`), and the calls of one turn run
-- at the same time.
local troupe = require("troupe")

---------------------------------------------------------------------------------------------
-- calculator: + - * / % ^ and parentheses over decimal numbers, without load() (which the
-- sandbox forbids anyway): a small recursive-descent parser.

local function evaluate(expression)
  local pos, text = 1, expression:gsub(",", "") -- "2,340" is a number to people
  local function skip() pos = text:find("%S", pos) or #text + 1 end
  local function fail(what) error(("%s at character %d of '%s'"):format(what, pos, expression), 0) end
  local expr
  local function atom()
    skip()
    local c = text:sub(pos, pos)
    if c == "(" then
      pos = pos + 1
      local v = expr()
      skip()
      if text:sub(pos, pos) ~= ")" then fail("expected ')'") end
      pos = pos + 1
      return v
    elseif c == "-" or c == "+" then
      pos = pos + 1
      local v = atom()
      return c == "-" and -v or v
    end
    local number = text:match("^%d*%.?%d+", pos) or text:match("^%d+%.?", pos)
    if not number then fail(c == "" and "unexpected end" or ("unexpected '" .. c .. "'")) end
    pos = pos + #number
    skip()
    if text:sub(pos, pos) == "%" and not text:find("^%s*[%d(]", pos + 1) then -- "17%" = 0.17
      pos = pos + 1
      return tonumber(number) / 100
    end
    return tonumber(number)
  end
  local function power()
    local base = atom()
    skip()
    if text:sub(pos, pos) == "^" then
      pos = pos + 1
      return base ^ power() -- right-associative
    end
    return base
  end
  local function term()
    local v = power()
    while true do
      skip()
      local op = text:sub(pos, pos)
      if op ~= "*" and op ~= "/" and op ~= "%" then return v end
      pos = pos + 1
      local rhs = power()
      if op == "*" then v = v * rhs elseif op == "/" then v = v / rhs else v = math.fmod(v, rhs) end
    end
  end
  expr = function()
    local v = term()
    while true do
      skip()
      local op = text:sub(pos, pos)
      if op ~= "+" and op ~= "-" then return v end
      pos = pos + 1
      local rhs = term()
      v = op == "+" and v + rhs or v - rhs
    end
  end
  local value = expr()
  skip()
  if pos <= #text then fail("unexpected '" .. text:sub(pos, pos) .. "'") end
  if value ~= value or value == math.huge or value == -math.huge then fail("not a finite number") end
  return value
end

local calculator = troupe.tool{
  name = "calculator",
  description = "Evaluates an arithmetic expression exactly: + - * / ^, parentheses, decimals, " ..
                "and percentages like 17% (= 0.17). Use it for every calculation.",
  parameters = {
    type = "object",
    properties = {
      expression = { type = "string", description = "e.g. \"17% * 2340\" or \"(3 + 4) ^ 2\"" },
    },
    required = { "expression" },
    additionalProperties = false,
  },
  run = function(args)
    local value = evaluate(args.expression)
    if math.type(value) == "float" and value == math.floor(value) and math.abs(value) < 2^53 then
      value = math.tointeger(value)
    end
    return { expression = args.expression, value = value }
  end,
}

---------------------------------------------------------------------------------------------
-- fetch_page: GET a page through the host's HTTP client and hand the model its text.

local function page_text(html, limit)
  local text = html:gsub("<script.-</script>", " "):gsub("<style.-</style>", " ")
  text = text:gsub("<[^>]*>", " "):gsub("&nbsp;", " "):gsub("&amp;", "&"):gsub("&lt;", "<")
             :gsub("&gt;", ">"):gsub("%s+", " ")
  text = text:match("^%s*(.-)%s*$")
  if #text > limit then text = text:sub(1, limit) .. " [...]" end
  return text
end

local fetch_page = troupe.tool{
  name = "fetch_page",
  description = "Fetches a web page (http or https) and returns its text without markup, " ..
                "at most 4000 characters.",
  parameters = {
    type = "object",
    properties = { url = { type = "string", pattern = "^https?://", description = "the page's URL" } },
    required = { "url" },
    additionalProperties = false,
  },
  run = function(args)
    local res = troupe.http.get(args.url, { timeout = 15 })
    if res.status ~= 200 then error(("HTTP %d from %s"):format(res.status, args.url), 0) end
    return page_text(res.body, 4000)
  end,
}

---------------------------------------------------------------------------------------------

return troupe.workflow{
  name = "research_agent",
  description = "Answers a question with a tool-using agent (calculator, fetch_page).",
  run = function(input)
    local question = input.question
    if type(question) ~= "string" or question == "" then
      error("input.question must be a non-empty string", 0)
    end
    local researcher = troupe.agent{
      name = "researcher",
      model = input.model, -- nil: the host's default model
      system = "You are a careful research assistant. Use fetch_page to read the pages the " ..
               "question mentions and calculator for every calculation; never guess a number. " ..
               "Answer in at most five sentences and name the pages you used.",
      tools = { calculator, fetch_page },
    }
    local answer = researcher:run(question, { max_turns = input.max_turns or 6 })
    return { question = question, answer = answer }
  end,
}
