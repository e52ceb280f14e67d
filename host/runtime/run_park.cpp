// run_park.cpp: parking — a run whose every live branch waits durably (a long troupe.sleep) is
// recorded as waiting until its earliest deadline and released from memory; a worker takes it
// again when it is due (Store::claimable_runs), resumes it, and the journal serves everything
// up to the waits, whose pending records keep their deadlines (docs/durability.md).
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/json_text.h"
#include "loop/event_loop.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {
namespace {

// Whether every live leaf under task waits durably; *wake gets the earliest deadline.
bool all_waiting(const Task& task, int64_t* wake) {
  if (task.finished) return true;
  if (task.join) {
    for (const auto& child : task.join->children) {
      if (child && !all_waiting(*child, wake)) return false;
    }
    return true;
  }
  if (task.park_until_ms == 0) return false;
  *wake = std::min(*wake, task.park_until_ms);
  return true;
}

}  // namespace

void Core::consider_parking(const std::string& run_id) {
  Liveness::Watch token = alive.watch();
  loop.post([this, token, run_id] {
    if (token.gone() || store == nullptr) return;
    auto it = runs.find(run_id);
    if (it == runs.end() || it->second->done || !it->second->root) return;
    Run& run = *it->second;
    int64_t wake = INT64_MAX;
    if (!all_waiting(*run.root, &wake)) return;
    park(run, wake == INT64_MAX ? 0 : wake);  // 0: until a signal or a decision makes it due
  });
}

void Core::park(Run& run, int64_t wake_ms) {
  run.done = true;
  if (run.kill_reason.empty()) run.kill_reason = "the run is parked";
  std::shared_ptr<Run> keep = runs.at(run.id);
  emit(run, "run.parked", "", json_text(nlohmann::json{{"wake_ms", wake_ms}}));
  release_run(run);
  Liveness::Watch token = alive.watch();
  EventLoop* lp = &loop;
  std::string id = run.id;
  store->park_run(id, wake_ms, [this, lp, token, keep](bool ok) {
    lp->post([this, token, keep, ok] {
      if (token.gone()) return;
      store->forget_run(keep->id);
      RunOutcome outcome{keep->id, keep->workflow, ok ? "waiting" : "failed", "",
                         ok ? "" : "the run could not be parked: " + store->last_error()};
      auto on_done = std::move(keep->on_done);
      if (on_done) on_done(outcome);
    });
  });
}

}  // namespace troupe::rt
