// run_json.h: the JSON form of recorded runs, steps and events — one form for every way in
// (`troupe --json runs|show|events`, Python's Host.runs/show/events, later the HTTP API).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "store/store.h"

namespace troupe {

// A stored JSON text as a value: null for "", the text itself when it is not JSON or nests
// deeper than anything troupe writes (a store written by another program must not make a
// reader recurse without bound).
nlohmann::json stored_json(const std::string& text);

// {id, workflow, source, status, created_ms, finished_ms, duration_ms, input, output, error}
nlohmann::json run_json(const RunRecord& run);

// {step_key, kind, agent, model, status, error, input_tokens, output_tokens, latency_ms,
//  started_ms, finished_ms, request, response}
nlohmann::json step_json(const StepRecord& step);

// {seq, ts_ms, type, run_id, step_key, data}
nlohmann::json event_json(const EventRecord& event);

}  // namespace troupe
