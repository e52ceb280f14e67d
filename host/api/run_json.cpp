// run_json.cpp: the JSON form of recorded runs, steps and events (run_json.h).
#include "api/run_json.h"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>

#include "config/document.h"
#include "runtime/json_lua.h"

namespace troupe {

using nlohmann::json;

json stored_json(const std::string& text) {
  if (text.empty()) return nullptr;
  DocumentLimits limits;
  limits.max_depth = lua::kMaxJsonDepth + 1;  // a run's output may wrap a 200-level input
  limits.max_values = SIZE_MAX;
  limits.record_marks = false;
  try {
    return read_json_document(text, limits).value;
  } catch (const DocumentError&) {
    return text;
  }
}

json run_json(const RunRecord& r) {
  json out = {{"id", r.id},
              {"workflow", r.workflow},
              {"source", r.source},
              {"status", r.status},
              {"created_ms", r.created_ms},
              {"finished_ms", r.finished_ms},
              {"duration_ms", r.finished_ms ? r.finished_ms - r.created_ms : 0},
              {"input", stored_json(r.input_json)},
              {"output", stored_json(r.output_json)},
              {"error", r.error.empty() ? json(nullptr) : json(r.error)},
              {"epoch", r.epoch},
              {"owner", r.owner.empty() ? json(nullptr) : json(r.owner)},
              {"lease_until_ms", r.lease_until_ms},
              {"wake_ms", r.wake_ms},
              {"script_hash", r.script_hash},
              {"cost_usd", r.cost_usd},
              {"unpriced_steps", r.unpriced_steps}};
  if (!r.parent_run.empty()) out["parent"] = {{"run_id", r.parent_run}, {"step", r.parent_step}};
  return out;
}

json step_json(const StepRecord& s) {
  return {{"step_key", s.step_key},
          {"kind", s.kind},
          {"agent", s.agent},
          {"model", s.model},
          {"status", s.status},
          {"error", s.error.empty() ? json(nullptr) : json(s.error)},
          {"input_tokens", s.input_tokens},
          {"output_tokens", s.output_tokens},
          {"cached_input_tokens", s.cached_input_tokens},
          {"reasoning_tokens", s.reasoning_tokens},
          {"cache_write_tokens", s.cache_write_tokens},
          {"cost_usd", s.cost_usd ? json(*s.cost_usd) : json(nullptr)},
          {"unpriced", s.unpriced},
          {"latency_ms", static_cast<double>(s.latency_us) / 1000.0},
          {"started_ms", s.started_ms},
          {"finished_ms", s.finished_ms},
          {"request", stored_json(s.request_json)},
          {"response", stored_json(s.response_json)},
          {"epoch", s.epoch},
          {"attempts", s.attempts}};
}

json attempt_json(const AttemptRecord& a) {
  return {{"attempt", a.attempt},
          {"model", a.model},
          {"status", a.status},
          {"error", a.error},
          {"retry_after_ms", a.retry_after_ms},
          {"delay_ms", a.delay_ms},
          {"started_ms", a.started_ms},
          {"finished_ms", a.finished_ms},
          {"latency_ms", static_cast<double>(a.latency_us) / 1000.0}};
}

json steps_json(const std::vector<StepRecord>& steps, const std::vector<AttemptRecord>& attempts) {
  std::map<std::string, json> failed;  // by step key, in the order they were written
  for (const AttemptRecord& a : attempts)
    failed[a.step_key].push_back(attempt_json(a));
  json out = json::array();
  for (const StepRecord& st : steps) {
    json step = step_json(st);
    auto it = failed.find(st.step_key);
    step["failed_attempts"] = it == failed.end() ? json::array() : std::move(it->second);
    if (it != failed.end()) failed.erase(it);
    out.push_back(std::move(step));
  }
  // Steps between two attempts (or cut short there by a crash) have no record of their own yet.
  for (auto& [key, list] : failed) {
    const json& last = list.back();
    out.push_back({{"step_key", key},
                   {"kind", ""},
                   {"model", last["model"]},
                   {"status", "retrying"},
                   {"attempts", last["attempt"]},
                   {"failed_attempts", std::move(list)}});
  }
  return out;
}

json dead_letter_json(const DeadLetterRecord& d, const std::vector<AttemptRecord>* attempts) {
  json out = {{"run_id", d.run_id},     {"workflow", d.workflow}, {"reason", d.reason},
              {"step_key", d.step_key}, {"error", d.error},       {"attempts", d.attempts},
              {"dead_ms", d.dead_ms}};
  if (attempts != nullptr) {
    out["failed_attempts"] = json::array();
    for (const AttemptRecord& a : *attempts) {
      if (a.step_key == d.step_key) out["failed_attempts"].push_back(attempt_json(a));
    }
  }
  return out;
}

json event_json(const EventRecord& e) {
  return {{"seq", e.seq},       {"ts_ms", e.ts_ms},       {"type", e.type},
          {"run_id", e.run_id}, {"step_key", e.step_key}, {"data", stored_json(e.data_json)}};
}

}  // namespace troupe
