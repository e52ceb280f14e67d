// run_json.cpp: the JSON form of recorded runs, steps and events (run_json.h).
#include "api/run_json.h"

#include <cstdint>
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
              {"script_hash", r.script_hash}};
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
          {"latency_ms", static_cast<double>(s.latency_us) / 1000.0},
          {"started_ms", s.started_ms},
          {"finished_ms", s.finished_ms},
          {"request", stored_json(s.request_json)},
          {"response", stored_json(s.response_json)},
          {"epoch", s.epoch}};
}

json event_json(const EventRecord& e) {
  return {{"seq", e.seq},       {"ts_ms", e.ts_ms},       {"type", e.type},
          {"run_id", e.run_id}, {"step_key", e.step_key}, {"data", stored_json(e.data_json)}};
}

}  // namespace troupe
