// prim_waits.cpp: the primitives that suspend a task on the loop — host.sleep (a timer, a
// step), host.parallel and host.map (a join of branch tasks, scheduler.cpp runs them).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

// Sleeps this long or longer leave a pending record when they start, so that a resumed run
// waits only for what was left of them.
constexpr double kDurableSleepSeconds = 1.0;

// host.sleep(seconds) -> true
int prim_sleep(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "troupe.sleep");
  double seconds = luaL_checknumber(L, 1);
  if (!(seconds >= 0) || seconds > 365.0 * 24 * 3600) {
    return luaL_error(L, "troupe.sleep: %f is not a number of seconds between 0 and a year",
                      seconds);
  }
  Run& run = *t->run;
  std::string key = t->key(++t->ordinal);
  // A changed duration is not a different step: the sleep is the same wait, made longer or
  // shorter, and a resumed run keeps the deadline it recorded.
  const StepRecord* rec = core->served_step(L, run, key, StepCall{"sleep", "", "", ""});
  if (rec && rec->status != "pending") {
    core->serve(core->shared(t), key, [](lua_State* co) {
      lua_pushboolean(co, 1);
      return 1;
    });
    return suspend_task(L, t);
  }
  int64_t started_ms = unix_ms();
  auto ms = static_cast<int64_t>(std::ceil(seconds * 1000.0));
  int64_t until_ms = started_ms + ms;
  if (rec) {  // it had started before the run stopped: the deadline stands
    started_ms = rec->started_ms;
    nlohmann::json pending = nlohmann::json::parse(rec->response_json, nullptr, false);
    if (pending.is_object()) until_ms = pending.value("until_ms", until_ms);
  } else {
    core->emit(run, "step.started", key,
               nlohmann::json{{"kind", "sleep"}, {"seconds", seconds}}.dump());
  }
  std::string request = nlohmann::json{{"seconds", seconds}}.dump();
  if (!rec && seconds >= kDurableSleepSeconds && core->store) {
    StepRecord pending;
    pending.run_id = run.id;
    pending.step_key = key;
    pending.kind = "sleep";
    pending.request_json = request;
    pending.response_json = nlohmann::json{{"until_ms", until_ms}}.dump();  // the deadline
    pending.status = "pending";
    pending.started_ms = started_ms;
    core->store->record_step(pending);
  }
  std::weak_ptr<Task> weak = core->shared(t);
  Liveness::Watch token = core->alive.watch();
  uint64_t t0 = EventLoop::now_ns();
  // A live sleep is timed on the monotonic clock (a wall-clock jump does not stretch it); a
  // resumed one waits for what is left until its recorded deadline, never more than it asked.
  uint64_t delay =
      static_cast<uint64_t>(rec ? std::clamp<int64_t>(until_ms - unix_ms(), 0, ms) : ms);
  // The closure stays small (thousands of runs may sleep at once): the step is built when the
  // timer fires.
  EventLoop::Id timer = core->loop.add_timer(
      delay, [core, weak, token, key, request = std::move(request), started_ms, t0]() {
        if (token.gone()) return;
        auto task = weak.lock();
        if (!task || task->finished) return;
        task->cancel_op = nullptr;
        task->park_until_ms = 0;
        StepRecord step;
        step.run_id = task->run->id;
        step.step_key = key;
        step.kind = "sleep";
        step.request_json = request;
        step.started_ms = started_ms;
        step.finished_ms = unix_ms();
        step.latency_us = static_cast<int64_t>((EventLoop::now_ns() - t0) / 1000);
        step.status = "succeeded";
        step.response_json = "{}";
        core->finish_step(task, std::move(step), [](lua_State* co) {
          lua_pushboolean(co, 1);
          return 1;
        });
      });
  t->cancel_op = [core, timer] { core->loop.cancel_timer(timer); };
  // A long wait need not hold the run in memory: once every branch waits like this, it parks.
  if (core->store && delay >= core->options.park_after_ms) {
    t->park_until_ms = until_ms;
    core->consider_parking(run.id);
  }
  return suspend_task(L, t);
}

// host.parallel(f1, f2, ...) -> true, r1, r2, ... | false, error
int prim_parallel(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "troupe.parallel");
  int n = lua_gettop(L);
  if (n == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  Run& run = *t->run;
  auto join = std::make_unique<Join>();
  join->step_key = t->key(++t->ordinal);
  join->total = join->started = n;
  lua_createtable(L, n, 0);
  join->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (int i = 1; i <= n; ++i) {
    auto child = core->new_task(run, t, i, join->step_key + "." + std::to_string(i), L);
    lua_pushvalue(L, i);
    lua_xmove(L, child->co, 1);
    join->children.push_back(std::move(child));
  }
  core->emit(run, "join.started", join->step_key,
             nlohmann::json{{"kind", "parallel"}, {"branches", n}}.dump());
  t->join = std::move(join);
  for (auto& child : t->join->children)
    core->schedule(child, nullptr);  // each child calls its function (start_args 0)
  return suspend_task(L, t);
}

// host.map(list, fn, concurrency) -> true, results | false, error
int prim_map(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "troupe.map");
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_Integer concurrency = luaL_optinteger(L, 3, 0);
  lua_Integer n = luaL_len(L, 1);
  if (n <= 0) {
    lua_pushboolean(L, 1);
    lua_createtable(L, 0, 0);
    lua::push_array_mt(L);
    lua_setmetatable(L, -2);
    return 2;
  }
  if (n > 1000000)
    return luaL_error(L, "troupe.map: %d items is more than the 1000000 allowed", (int)n);
  Run& run = *t->run;
  auto join = std::make_unique<Join>();
  join->step_key = t->key(++t->ordinal);
  join->is_map = true;
  join->total = static_cast<int>(n);
  join->concurrency =
      (concurrency <= 0 || concurrency > n) ? static_cast<int>(n) : static_cast<int>(concurrency);
  lua_createtable(L, static_cast<int>(n), 0);
  lua::push_array_mt(L);
  lua_setmetatable(L, -2);
  join->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 2);
  join->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);
  join->list_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  core->emit(
      run, "join.started", join->step_key,
      nlohmann::json{{"kind", "map"}, {"branches", n}, {"concurrency", join->concurrency}}.dump());
  int first = join->concurrency;
  t->join = std::move(join);
  for (int i = 0; i < first; ++i)
    core->start_map_branch(*t, L);
  return suspend_task(L, t);
}

}  // namespace troupe::rt
