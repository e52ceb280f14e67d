// run_resume.cpp: taking up a recorded run again — resume (the same run, by a new owner), fork
// and replay (a new run that reuses another's journal), and submit (a run queued for a worker,
// which later takes it with resume). docs/durability.md.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/json_text.h"
#include "core/log.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

std::string Core::resume(const ResumeSpec& spec, std::function<void(const RunOutcome&)> on_done,
                         std::string* error) {
  if (store == nullptr) {
    *error = "resume needs a store: this host keeps no journal";
    return "";
  }
  std::optional<RunRecord> record = store->get_run(spec.run_id);
  if (!record) {
    *error = "no run '" + spec.run_id + "' in the store";
    return "";
  }
  if (runs.count(record->id)) {
    *error = "run " + record->id + " is running in this process";
    return "";
  }
  bool ended = record->status == "succeeded" || record->status == "cancelled" ||
               (record->status == "failed" && !spec.retry_failed);
  if (ended) {
    *error = "run " + record->id + " cannot be resumed: it has ended (" + record->status + ")";
    return "";
  }
  // The script: the file again when it is still there (a changed one only when allowed), else
  // the text the store kept when the run started.
  RunSpec script;
  std::string current_hash;
  bool from_file = false;
  // A queued run has not started: it runs the script as it was submitted, kept by the store.
  std::optional<std::string> submitted;
  if (record->status == "queued" && !record->script_hash.empty())
    submitted = store->get_script(record->script_hash);
  if (!submitted && record->source != "<string>" && !record->source.empty()) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(record->source, ec)) {
      script.source_path = record->source;
      from_file = true;
    }
  }
  if (from_file) {
    std::string text;
    if (!read_file(script.source_path, &text, error)) return "";
    current_hash = sha256_hex(text);
    if (!record->script_hash.empty() && current_hash != record->script_hash &&
        !spec.allow_changed) {
      *error = "run " + record->id + ": its script " + record->source +
               " changed since the run started (sha256 " + record->script_hash.substr(0, 12) +
               "…, now " + current_hash.substr(0, 12) +
               "…); resume with --allow-changed to run the new script against the journal "
               "(every served step is still checked against the call it makes)";
      return "";
    }
  } else {
    std::optional<std::string> text = std::move(submitted);
    if (!text && !record->script_hash.empty()) text = store->get_script(record->script_hash);
    if (!text) {
      *error = "run " + record->id + ": its script " + record->source +
               " is gone and the store does not hold its text";
      return "";
    }
    script.source = std::move(*text);
    script.chunk_name = record->source;
  }

  ClaimOptions claim;
  claim.owner = owner;
  claim.now_ms = unix_ms();
  claim.lease_until_ms = claim.now_ms + options.lease_ms;
  // Its process died on this machine: no need to wait for its lease to run out.
  if (record->status == "running" && Store::owner_is_gone(record->owner))
    claim.now_ms = std::max(claim.now_ms, record->lease_until_ms + 1);
  claim.waiting_early = !spec.only_due;
  claim.failed = spec.retry_failed;
  std::string why;
  std::optional<RunRecord> taken = store->claim_run(record->id, claim, &why);
  if (!taken) {
    *error = "run " + record->id + " cannot be resumed: " + why;
    return "";
  }

  auto run = std::make_shared<Run>();
  run->core = this;
  run->id = taken->id;
  run->workflow = taken->workflow;
  run->source = taken->source;
  run->input_json = taken->input_json.empty() ? "{}" : taken->input_json;
  run->created_ms = taken->created_ms;
  run->epoch = taken->epoch;
  run->on_done = std::move(on_done);
  if (record->source != "<string>" && !record->source.empty()) {
    std::error_code ec;  // require() looks next to the workflow's file, even for kept text
    run->dir = std::filesystem::absolute(record->source, ec).parent_path().string();
  }
  std::vector<StepRecord> steps = store->get_steps(run->id);
  // The answers that resume tasks, in the order they were recorded: served in that order.
  std::sort(steps.begin(), steps.end(),
            [](const StepRecord& a, const StepRecord& b) { return a.seq < b.seq; });
  // Where each step stands in its retries: a resumed step goes on from its last attempt.
  for (const AttemptRecord& a : store->get_attempts(run->id)) {
    RetryState& state = run->retries[a.step_key];
    if (a.attempt < state.done) continue;
    state.done = a.attempt;
    state.wait_until_ms = a.finished_ms + a.delay_ms;
  }
  for (StepRecord& step : steps) {
    if (step.status == "cancelled") continue;
    if (spec.retry_failed && step.status == "failed") {
      // A dead letter re-driven: the failed step is tried again with its policy's attempts
      // anew, numbered after the ones it made, the last of which joins them in the journal.
      AttemptRecord last =
          attempt_of(step, step.attempts, step.error.substr(0, step.error.find(':')), step.error,
                     step.started_ms);
      store->record_attempt(last);
      run->retries[step.step_key] = RetryState{step.attempts, step.attempts, 0};
      continue;
    }
    // Answers that resume a task; not the clock or tool records (served in place), nor
    // escalations (no task waits on them).
    if (step.status != "pending" && step.kind != "now" && step.kind != "tool" &&
        step.kind != "escalation" && step.kind != "patch") {
      run->delivery_order.emplace(step.step_key, static_cast<uint32_t>(run->delivery_order.size()));
    }
    std::string key = step.step_key;
    run->journal.emplace(std::move(key), std::move(step));
  }
  std::string load_error;
  int chunk = load_chunk(script, &run->script_hash, &load_error);
  if (chunk != LUA_NOREF && !from_file) run->chunk_ref = chunk;
  nlohmann::json resumed = {{"epoch", run->epoch},
                            {"owner", owner},
                            {"journal_steps", run->journal.size()},
                            {"script_changed", run->script_hash != taken->script_hash}};
  emit(*run, "run.resumed", "", json_text(resumed));
  launch(run, chunk, std::move(load_error));
  return run->id;
}

std::string Core::fork(const ForkSpec& spec, std::function<void(const RunOutcome&)> on_done,
                       std::string* error) {
  if (store == nullptr) {
    *error = "fork and replay need a store: this host keeps no journal";
    return "";
  }
  std::optional<RunRecord> parent = store->get_run(spec.run_id);
  if (!parent) {
    *error = "no run '" + spec.run_id + "' in the store";
    return "";
  }
  std::vector<StepRecord> steps = store->get_steps(parent->id);
  std::sort(steps.begin(), steps.end(),
            [](const StepRecord& a, const StepRecord& b) { return a.seq < b.seq; });
  if (!spec.from_step.empty()) {
    auto last = std::find_if(steps.begin(), steps.end(),
                             [&](const StepRecord& s) { return s.step_key == spec.from_step; });
    if (last == steps.end()) {
      *error = "run " + parent->id + " has no step " + spec.from_step;
      return "";
    }
    steps.erase(last + 1, steps.end());  // the journal as it stood once that step was recorded
  }
  // The script: another one, else the recorded run's file if unchanged, else its kept text.
  RunSpec script;
  std::string source = parent->source;
  if (!spec.script_path.empty()) {
    script.source_path = spec.script_path;
    source = spec.script_path;
  } else {
    std::optional<std::string> text;
    std::string current;
    std::error_code ec;
    if (std::filesystem::is_regular_file(parent->source, ec) &&
        read_file(parent->source, &current, error) && sha256_hex(current) == parent->script_hash) {
      script.source_path = parent->source;
    } else if ((text = store->get_script(parent->script_hash))) {
      script.source = std::move(*text);
      script.chunk_name = parent->source;
    } else {
      *error = "run " + parent->id + ": its script " + parent->source +
               " is gone and the store does not hold its text";
      return "";
    }
  }
  auto run = std::make_shared<Run>();
  run->core = this;
  run->id = make_run_id();
  run->created_ms = unix_ms();
  run->on_done = std::move(on_done);
  run->workflow = parent->workflow;
  run->source = source;
  run->input_json = spec.input_json.empty() ? parent->input_json : log::redact(spec.input_json);
  run->offline = spec.offline;
  run->parent_run = parent->id;
  std::error_code ec;
  if (source != "<string>") {
    run->dir = std::filesystem::absolute(source, ec).parent_path().string();
  }
  std::string load_error;
  int chunk = load_chunk(script, &run->script_hash, &load_error);
  if (chunk != LUA_NOREF && script.source_path.empty()) run->chunk_ref = chunk;
  run->epoch = 1;
  std::string parent_step = spec.offline ? "(replay)" : spec.from_step;
  store->create_run({run->id, run->workflow, run->source, run->input_json, "running", "", "",
                     run->created_ms, 0, run->epoch, owner, unix_ms() + options.lease_ms, 0,
                     run->script_hash, parent->id, parent_step});
  for (StepRecord& step : steps) {
    if (step.status == "cancelled" || step.status == "pending") continue;
    step.run_id = run->id;
    // The reused steps become the new run's own record (show, a later resume), then are served.
    store->record_step(step);
    if (step.kind != "now" && step.kind != "tool" && step.kind != "escalation" &&
        step.kind != "patch") {
      run->delivery_order.emplace(step.step_key, static_cast<uint32_t>(run->delivery_order.size()));
    }
    std::string key = step.step_key;
    run->journal.emplace(std::move(key), std::move(step));
  }
  nlohmann::json forked = {{"parent", parent->id},
                           {"from_step", spec.from_step},
                           {"journal_steps", run->journal.size()},
                           {"offline", spec.offline}};
  emit(*run, spec.offline ? "run.replayed" : "run.forked", "", json_text(forked));
  launch(run, chunk, std::move(load_error));
  return run->id;
}

std::string Core::submit(const RunSpec& spec, std::string* error) {
  if (store == nullptr) {
    *error = "a queued run needs a store: this host keeps no journal";
    return "";
  }
  RunRecord record;
  int chunk = load_chunk(spec, &record.script_hash, error);
  if (chunk == LUA_NOREF) return "";
  if (spec.source_path.empty()) luaL_unref(L, LUA_REGISTRYINDEX, chunk);  // files stay cached
  record.id = make_run_id();
  record.created_ms = unix_ms();
  record.input_json = spec.input_json.empty() ? "{}" : log::redact(spec.input_json);
  record.status = "queued";
  if (!spec.source_path.empty()) {
    std::error_code ec;
    record.source = spec.source_path;
    record.workflow = std::filesystem::absolute(spec.source_path, ec).stem().string();
  } else {
    record.source = record.workflow = spec.chunk_name;
  }
  store->create_run(record);
  store->flush();  // queued means recorded: a worker may look at once
  if (!store->run_writes(record.id).error.empty()) {
    *error = store->run_writes(record.id).error;
    store->forget_run(record.id);
    return "";
  }
  store->forget_run(record.id);
  return record.id;
}

}  // namespace troupe::rt
