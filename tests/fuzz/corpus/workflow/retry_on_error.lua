-- retry_on_error.lua: example — catch a failed model call with pcall, inspect the error table
-- (status, retryable, retry_after_ms), wait with troupe.sleep, and retry (here on another model).
--
--   troupe run scripts/workflows/retry_on_error.lua
--
-- The first attempt uses "mock/error-rate-limited", which the offline mock always answers with
-- a retryable rate_limited error (retry_after_ms = 1000), so the failure path runs offline.
local troupe = require("troupe")

local MODELS = { "mock/error-rate-limited", "openai/gpt-4o" } -- attempt 1, attempts 2 and later
local MAX_ATTEMPTS = 4
local MAX_WAIT_S = 30

-- Asks `prompt` with up to MAX_ATTEMPTS attempts; returns the answer and the attempt number.
-- Errors that retrying cannot fix (auth, invalid_argument, ...) are raised again at once.
local function ask_with_retry(prompt)
  for attempt = 1, MAX_ATTEMPTS do
    local agent = troupe.agent{
      name = "writer", role = "documenter", model = MODELS[math.min(attempt, #MODELS)],
    }
    local ok, result = pcall(agent.ask, agent, prompt)
    if ok then return result, attempt end

    local err = result
    if type(err) ~= "table" then error(err, 0) end -- not a failed call: a bug in the script
    troupe.log.warn(("attempt %d (%s) failed at step %s: status=%s retryable=%s retry_after_ms=%d: %s")
                    :format(attempt, agent.model, err.step_key, err.status, tostring(err.retryable),
                            err.retry_after_ms, err.message))
    if not err.retryable or attempt == MAX_ATTEMPTS then error(err, 0) end

    -- Honour the provider's Retry-After when it gives one; otherwise back off exponentially,
    -- with jitter (math.random draws from a stream seeded per run).
    local wait = err.retry_after_ms > 0 and err.retry_after_ms / 1000
                 or 2 ^ (attempt - 1) * (0.5 + math.random() / 2)
    wait = math.min(wait, MAX_WAIT_S)
    troupe.log(("waiting %.1f s before attempt %d"):format(wait, attempt + 1))
    troupe.sleep(wait)
  end
end

return troupe.workflow{
  name = "retry_on_error",
  description = "Retries a model call after a retryable error, honouring retry_after_ms.",
  run = function(input)
    local prompt = input.prompt or "Write a two-sentence description of the troupe retry example."
    local answer, attempts = ask_with_retry(prompt)
    return { answer = answer, attempts = attempts }
  end,
}
