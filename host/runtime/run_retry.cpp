// run_retry.cpp: retries — when a failed attempt of a step is tried again (the policy,
// core/retry_policy.h), the wait in between, and the attempt journaled under the step's key
// (docs/durability.md, "Retries"); and the policy as a workflow writes it (`retry = {...}`).
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

FirstAttempt Core::first_attempt(const Run& run, const std::string& key) const {
  FirstAttempt first;
  auto it = run.retries.find(key);
  if (it == run.retries.end()) return first;
  first.number = it->second.done + 1;
  first.base = it->second.base;
  first.wait_ms = std::max<int64_t>(it->second.wait_until_ms - unix_ms(), 0);
  return first;
}

EventLoop::Id Core::retry_later(Run& run, AttemptRecord failed, int base, const RetryPolicy& policy,
                                const AttemptFailure& failure, std::function<void()> again) {
  if (jitter_state_ == 0) {
    jitter_state_ = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count() ^ unix_ms());
  }
  uint64_t z = (jitter_state_ += 0x9e3779b97f4a7c15ull);  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  double unit = static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  int64_t delay = retry_delay_ms(policy, failed.attempt - base, failure, unit);
  if (delay < 0) return 0;
  failed.delay_ms = delay;
  failed.retry_after_ms = failure.retry_after_ms;
  failed.error = log::redact(failed.error);
  nlohmann::json data = {{"attempt", failed.attempt},
                         {"status", failed.status},
                         {"error", failed.error},
                         {"delay_ms", delay}};
  if (failure.retry_after_ms > 0) data["retry_after_ms"] = failure.retry_after_ms;
  if (!failed.model.empty()) data["model"] = failed.model;
  emit(run, "step.retrying", failed.step_key, json_text(data));
  if (store && charge_store(run, true, failed.error.size() + failed.step_key.size())) {
    store->record_attempt(failed);
  }
  Liveness::Watch token = alive.watch();
  return loop.add_timer(static_cast<uint64_t>(delay), [token, again = std::move(again)] {
    if (!token.gone()) again();
  });
}

AttemptRecord attempt_of(const StepRecord& step, int attempt, std::string status, std::string error,
                         int64_t started_ms) {
  AttemptRecord a;
  a.run_id = step.run_id;
  a.step_key = step.step_key;
  a.attempt = attempt;
  a.model = step.model;
  a.status = std::move(status);
  a.error = std::move(error);
  a.started_ms = started_ms;
  a.finished_ms = step.finished_ms;
  a.latency_us = step.latency_us;
  return a;
}

namespace {

// A number of seconds in a retry table, as milliseconds.
int64_t seconds_field(lua_State* L, int idx, const char* name, const char* who) {
  int ok = 0;
  lua_Number v = lua_tonumberx(L, idx, &ok);
  if (!ok || !(v >= 0) || v > 86'400) {
    luaL_error(L, "%s: retry.%s must be a number of seconds between 0 and 86400", who, name);
  }
  return static_cast<int64_t>(v * 1000.0 + 0.5);
}

}  // namespace

RetryPolicy read_retry(lua_State* L, int idx, const RetryPolicy& base, const char* who) {
  RetryPolicy policy = base;
  if (lua_isnoneornil(L, idx)) return policy;
  if (lua_isboolean(L, idx)) {
    if (!lua_toboolean(L, idx)) policy.attempts = 1;
    return policy;
  }
  if (!lua_istable(L, idx)) {
    luaL_error(L,
               "%s: retry must be a table {attempts=, initial=, backoff=, max=, jitter=, "
               "non_retryable=} or false, got %s",
               who, luaL_typename(L, idx));
  }
  idx = lua_absindex(L, idx);
  bool max_given = false;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char* key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    std::string k = key;
    if (k == "attempts") {
      if (!lua_isinteger(L, -1)) luaL_error(L, "%s: retry.attempts must be an integer", who);
      lua_Integer n = lua_tointeger(L, -1);
      policy.attempts = n < 0 || n > 1000 ? -1 : static_cast<int>(n);
    } else if (k == "initial") {
      policy.initial_ms = seconds_field(L, -1, "initial", who);
    } else if (k == "max") {
      policy.max_ms = seconds_field(L, -1, "max", who);
      max_given = true;
    } else if (k == "backoff" || k == "jitter") {
      int ok = 0;
      lua_Number v = lua_tonumberx(L, -1, &ok);
      if (!ok) luaL_error(L, "%s: retry.%s must be a number", who, key);
      (k == "backoff" ? policy.backoff : policy.jitter) = v;
    } else if (k == "non_retryable") {
      if (!lua_istable(L, -1)) {
        luaL_error(L, "%s: retry.non_retryable must be a list of status names", who);
      }
      policy.non_retryable.clear();
      auto n = static_cast<lua_Integer>(lua_rawlen(L, -1));
      for (lua_Integer i = 1; i <= n && i <= 64; ++i) {
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
          luaL_error(L, "%s: retry.non_retryable[%d] must be a status name", who,
                     static_cast<int>(i));
        }
        policy.non_retryable.emplace_back(lua_tostring(L, -1));
        lua_pop(L, 1);
      }
    } else {
      luaL_error(L,
                 "%s: unknown retry field '%s' (known: attempts, initial, backoff, max, "
                 "jitter, non_retryable)",
                 who, lua_type(L, -2) == LUA_TSTRING ? key : luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
  // Temporal's default maximum: a hundred times the initial wait.
  if (!max_given && policy.initial_ms != base.initial_ms) {
    policy.max_ms = std::min<int64_t>(policy.initial_ms * 100, 86'400'000);
  }
  if (std::string wrong = check_retry_policy(policy); !wrong.empty()) {
    luaL_error(L, "%s: retry: %s", who, wrong.c_str());
  }
  return policy;
}

// host.check_retry(policy, who) -> true: raises (at the workflow's line) what is wrong with a
// retry table, so that a definition (an agent, a tool) fails where it is written.
int prim_check_retry(lua_State* L) {
  Core* core = core_of(L);
  std::string who = luaL_optstring(L, 2, "retry");
  lua_settop(L, 1);
  std::string error;
  bool ok = core->protect(
      nullptr,
      [&](lua_State* s) {
        lua_pushvalue(L, 1);
        lua_xmove(L, s, 1);
        read_retry(s, -1, core->options.retry, who.c_str());
        lua_pop(s, 1);
      },
      &error);
  if (!ok) return user_error(L, error);
  lua_pushboolean(L, 1);
  return 1;
}

}  // namespace troupe::rt
