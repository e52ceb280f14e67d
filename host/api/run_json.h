// run_json.h: the JSON form of recorded runs, steps and events — one form for every way in
// (`troupe --json runs|show|events`, Python's Host.runs/show/events, later the HTTP API).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "store/store.h"

namespace troupe {

// A stored JSON text as a value: null for "", the text itself when it is not JSON or nests
// deeper than anything troupe writes (a store written by another program must not make a
// reader recurse without bound).
nlohmann::json stored_json(const std::string& text);

// {id, workflow, source, status, created_ms, finished_ms, duration_ms, input, output, error,
//  epoch, owner, lease_until_ms, wake_ms, script_hash, cost_usd (the sum of its priced steps),
//  unpriced_steps}
nlohmann::json run_json(const RunRecord& run);

// {step_key, kind, agent, model, status, error, input_tokens, output_tokens,
//  cached_input_tokens, reasoning_tokens, cache_write_tokens, cost_usd (null when not priced),
//  unpriced, latency_ms, started_ms, finished_ms, request, response, epoch, attempts}
nlohmann::json step_json(const StepRecord& step);

// {attempt, model, status, error, retry_after_ms, delay_ms, started_ms, finished_ms, latency_ms}
nlohmann::json attempt_json(const AttemptRecord& attempt);

// The steps in the order given, each with "failed_attempts": the attempts of it that failed and
// were tried again (a list, empty for a step tried once); then each step that has failed
// attempts but no record yet, as {step_key, kind: "", model, status: "retrying", attempts,
// failed_attempts}.
nlohmann::json steps_json(const std::vector<StepRecord>& steps,
                          const std::vector<AttemptRecord>& attempts);

// {run_id, workflow, reason, step_key, error, attempts, dead_ms}; with the run's attempts, also
// "failed_attempts": those of its failed step.
nlohmann::json dead_letter_json(const DeadLetterRecord& dead,
                                const std::vector<AttemptRecord>* attempts = nullptr);

// {seq, ts_ms, type, run_id, step_key, data}
nlohmann::json event_json(const EventRecord& event);

}  // namespace troupe
