-- retry_on_error.lua: example — retries and a fallback. The writer's retry policy tries a failed
-- call again (each attempt journaled under the step's key, the provider's Retry-After
-- honoured); once its attempts run out, the script catches the error table with pcall and falls
-- back to another model.
--
--   troupe run scripts/workflows/retry_on_error.lua
--   troupe show <run id>         # the attempts, under their step
--
-- The writer uses "mock/error-rate-limited", which the offline mock always answers with a
-- retryable rate_limited error (retry_after_ms = 1000), so the failure path runs offline.
local troupe = require("troupe")

local writer = troupe.agent{
  name = "writer", role = "documenter", model = "mock/error-rate-limited",
  retry = { attempts = 2, initial = 0.5, non_retryable = { "invalid_argument" } },
}
local fallback = troupe.agent{ name = "fallback", role = "documenter", model = "openai/gpt-4o" }

return troupe.workflow{
  name = "retry_on_error",
  description = "Retries a model call under a policy, then falls back to another model.",
  run = function(input)
    local prompt = input.prompt or "Write a two-sentence description of the troupe retry example."
    local ok, result = pcall(writer.ask, writer, prompt)
    if ok then return { answer = result, model = writer.model } end

    local err = result
    if type(err) ~= "table" then error(err, 0) end -- not a failed call: a bug in the script
    -- Errors that another model cannot fix either (auth, a bad request) are raised again.
    if not err.retryable then error(err, 0) end
    troupe.log.warn(("%s gave up at step %s: status=%s retryable=%s retry_after_ms=%d: %s")
                    :format(writer.model, err.step_key, err.status, tostring(err.retryable),
                            err.retry_after_ms, err.message))
    return { answer = fallback:ask(prompt), model = fallback.model }
  end,
}
