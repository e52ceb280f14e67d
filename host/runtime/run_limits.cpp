// run_limits.cpp: what a run may spend — instructions (the count hook, C work charged by the
// meters), journal rows, events and stored bytes, host memory held for it — and why it was
// stopped (kill_reason).
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

bool Core::charge_store(Run& run, bool is_step, uint64_t bytes) {
  if (run.done) return true;  // the run's own end, and steps settled after it, are recorded
  if (!run.kill_reason.empty()) return false;
  const RuntimeLimits& limits = options.limits;
  run.stored_bytes += bytes;
  if (is_step && ++run.recorded_steps > limits.max_steps) {
    run.kill_reason = "step limit exceeded: the run recorded more than " +
                      std::to_string(limits.max_steps) + " steps (limits.max_steps)";
  } else if (!is_step && ++run.events > limits.max_events) {
    run.kill_reason = "event limit exceeded: the run stored more than " +
                      std::to_string(limits.max_events) + " events, logs included " +
                      "(limits.max_events)";
  } else if (run.stored_bytes > limits.max_stored_bytes) {
    run.kill_reason = "store limit exceeded: the run stored more than " +
                      std::to_string(limits.max_stored_bytes >> 20) +
                      " MiB of steps and events (limits.max_stored_mb)";
  } else {
    return true;
  }
  stop_soon(run);
  return false;
}

void Core::charge_host_bytes(Run& run, int64_t delta) {
  run.host_bytes = delta < 0 && static_cast<uint64_t>(-delta) > run.host_bytes
                       ? 0
                       : run.host_bytes + static_cast<uint64_t>(delta);
  memory.set_reserved(run.mem_slot, run.host_bytes);
  if (delta > 0 && !run.done && run.kill_reason.empty() && !kill_reason(run).empty()) {
    stop_soon(run);
  }
}

void Core::stop_soon(Run& run) {
  Liveness::Watch token = alive.watch();
  loop.post([this, token, id = run.id] {
    if (token.gone()) return;
    auto it = runs.find(id);
    if (it != runs.end()) finish_run(*it->second, "failed", "", it->second->kill_reason);
  });
}

void Core::charge_instructions(lua_State* co, uint64_t units) {
  Task* t = task_of_thread(co);
  if (t == nullptr) {
    // A coroutine kept past the end of its branch runs only once adopted by a live task
    // (_runtime.lua); anything else is refused rather than charged to nobody.
    if (thread_handle(co) != 0) luaL_error(co, "troupe: this coroutine's branch has ended");
    return;
  }
  Run& run = *t->run;
  const RuntimeLimits& limits = options.limits;
  run.instructions += units;
  run.slice += units;
  run.unyielding = lua_isyieldable(co) ? 0 : run.unyielding + units;
  if (kill_reason(run).empty()) {
    if (run.instructions > limits.max_instructions) {
      run.kill_reason = "instruction limit exceeded: the run executed more than " +
                        std::to_string(limits.max_instructions) +
                        " Lua instructions (limits.max_instructions)";
    } else if (run.unyielding > limits.max_unyielding_instructions) {
      run.kill_reason =
          "the run computed more than " + std::to_string(limits.max_unyielding_instructions) +
          " instructions where it cannot be suspended (a table.sort comparator, a string.gsub "
          "callback, __tostring, __close, ...), keeping every other run waiting "
          "(limits.max_unyielding_instructions)";
    }
  }
  if (!run.kill_reason.empty()) luaL_error(co, "%s", run.kill_reason.c_str());
}

void Core::count_hook(lua_State* co, lua_Debug*) {
  Core* core = core_of_state(co);
  core->charge_instructions(co, kHookEvery);  // raises once the run is stopped
  Task* t = core->task_of_thread(co);
  if (t != nullptr && t->run->slice >= core->options.limits.slice_instructions &&
      lua_isyieldable(co)) {
    // Let other runs and the loop's I/O go first; the scheduler resumes us right after.
    t->host_yield = t->preempted = true;
    lua_yield(co, 0);
  }
}

const std::string& Core::kill_reason(Run& run) {
  if (!run.kill_reason.empty()) return run.kill_reason;
  const RuntimeLimits& limits = options.limits;
  if (memory.exhausted(run.mem_slot) ||
      memory.used(run.mem_slot) + run.host_bytes > limits.max_memory_bytes) {
    run.kill_reason = "memory limit exceeded: the run used more than " +
                      std::to_string(limits.max_memory_bytes >> 20) +
                      " MiB (Lua memory and the host buffers it holds; limits.max_memory_mb)";
  } else if (const char* why = interrupt_reason_.load(std::memory_order_acquire)) {
    run.cancelled = true;
    run.kill_reason = why;
  } else if (cancel_pending_.load(std::memory_order_acquire)) {
    std::lock_guard lock(cancel_mutex_);
    for (const auto& [id, reason] : cancel_requests_) {
      if (id == run.id) {
        run.cancelled = true;
        run.kill_reason = reason;
        break;
      }
    }
  }
  return run.kill_reason;
}

}  // namespace troupe::rt
