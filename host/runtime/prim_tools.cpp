// prim_tools.cpp: host.tool_step / host.tool_done — a tool call of agent:run as a journaled step.
//
// The Lua side (scripts/troupe/tool.lua) validates the arguments and runs the tool; these
// primitives give the call its step key and record it. tool_step returns a handle meant for a
// to-be-closed variable: if the branch is cancelled while the tool runs, closing the handle
// records the step as cancelled, so every tool call that started leaves a record.
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>

#include "core/digest.h"
#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {
namespace {

constexpr const char* kToolStepType = "troupe.tool_step";

struct ToolStep {
  Core* core = nullptr;
  Liveness::Watch token;
  std::string run_id;
  StepRecord step;
  uint64_t t0 = 0;
  bool done = false;
  // A resumed run's tool call its journal holds: the tool runs again (a Lua tool is workflow
  // code; what it does through the host is served step by step), and its record is kept.
  bool served = false;
  int attempt = 1;                 // the tool's current attempt (host.tool_retry)
  int64_t attempt_started_ms = 0;  // when it started
};

ToolStep& check_step(lua_State* L, int idx) {
  return *static_cast<ToolStep*>(luaL_checkudata(L, idx, kToolStepType));
}

void settle(ToolStep& ts, const std::string& status, const std::string& text) {
  ts.done = true;
  ts.step.finished_ms = unix_ms();
  ts.step.latency_us = static_cast<int64_t>((EventLoop::now_ns() - ts.t0) / 1000);
  ts.step.status = status;
  // Tool results go to the journal and to the model: a tool that echoes a key must not leak it.
  std::string clean = log::redact(text);
  if (status == "succeeded") {
    ts.step.response_json = json_text(nlohmann::json{{"result", clean}});
  } else {
    ts.step.error = clean;
  }
}

int tool_step_gc(lua_State* L) {
  check_step(L, 1).~ToolStep();
  return 0;
}

// Closing a step that did not finish: its branch was cancelled while the tool ran.
int tool_step_close(lua_State* L) {
  ToolStep& ts = check_step(L, 1);
  if (ts.done || ts.token.gone()) return 0;
  settle(ts, "cancelled", "cancelled: the branch stopped while the tool ran");
  auto it = ts.core->runs.find(ts.run_id);
  if (it != ts.core->runs.end()) ts.core->record_step(*it->second, ts.step, nullptr);
  return 0;
}

}  // namespace

void register_tool_step_type(lua_State* L) {
  register_handle_type(L, kToolStepType, tool_step_gc, tool_step_close);
}

// host.tool_step(agent, tool, call_id, arguments) -> handle, step_key: the tool call's step
// starts (its key is the calling task's next one).
int prim_tool_step(lua_State* L) {
  Core* core = core_of(L);
  Task* t = task_of(L);
  std::string agent = luaL_checkstring(L, 1);
  std::string tool = luaL_checkstring(L, 2);
  std::string call_id = luaL_optstring(L, 3, "");
  nlohmann::json arguments;
  std::string error;
  if (lua_isnoneornil(L, 4)) {
    arguments = nlohmann::json::object();
  } else if (!lua::to_json(L, 4, &arguments, &error, "arguments")) {
    arguments = "(not JSON: " + error + ")";
  }
  Run& run = *t->run;
  auto* ts = static_cast<ToolStep*>(lua_newuserdatauv(L, sizeof(ToolStep), 0));
  new (ts) ToolStep{};
  luaL_setmetatable(L, kToolStepType);
  ts->core = core;
  ts->token = core->alive.watch();
  ts->run_id = run.id;
  ts->t0 = EventLoop::now_ns();
  StepRecord& step = ts->step;
  step.run_id = run.id;
  step.step_key = t->key(++t->ordinal);
  step.kind = "tool";
  step.agent = tool;  // the tool's name shows where model calls show the agent's
  nlohmann::json request = {{"agent", agent}, {"tool", tool}, {"arguments", arguments}};
  if (!call_id.empty()) request["id"] = call_id;
  step.request_json = json_text(request);
  step.request_hash = sha256_hex(log::redact(step.request_json));
  lua_pushlstring(L, step.step_key.data(), step.step_key.size());
  if (core->served_step(L, run, step.step_key, StepCall{"tool", tool, "", step.request_hash})) {
    ts->served = true;
    return 2;
  }
  step.started_ms = ts->attempt_started_ms = unix_ms();
  core->emit(run, "step.started", step.step_key,
             json_text(nlohmann::json{
                 {"kind", "tool"}, {"agent", tool}, {"tool", tool}, {"caller", agent}}));
  return 2;
}

// host.tool_done(handle, ok, text) -> true: records the step (the result, or the error text
// when not ok) and resumes once it is journaled.
int prim_tool_done(lua_State* L) {
  Core* core = core_of(L);
  ToolStep& ts = check_step(L, 1);
  bool ok = lua_toboolean(L, 2);
  size_t len = 0;
  const char* text = luaL_checklstring(L, 3, &len);
  if (ts.done) return luaL_error(L, "troupe: this tool step is already recorded");
  Task* t = waiting_task_of(L, "a tool call");
  if (ts.served) {
    ts.done = true;
    lua_pushboolean(L, 1);
    return 1;
  }
  settle(ts, ok ? "succeeded" : "failed", std::string(text, len));
  ts.step.attempts = ts.attempt;
  core->finish_step(core->shared(t), ts.step, [](lua_State* co) {
    lua_pushboolean(co, 1);
    return 1;
  });
  return suspend_task(L, t);
}

namespace {

// Resumes a task waiting in host.tool_retry with true: the next attempt may start.
void retry_now(Core* core, const std::weak_ptr<Task>& weak) {
  auto task = weak.lock();
  if (!task || task->finished) return;
  task->cancel_op = nullptr;
  core->schedule(task, [](lua_State* co) {
    lua_pushboolean(co, 1);
    return 1;
  });
}

}  // namespace

// host.tool_retry(handle, error_text, error, retry) -> true | false: after an attempt of the tool
// raised `error`, whether to run it again — true once the policy's wait is over (the attempt
// is journaled under the tool's step key), false at once when the policy gives up. Without a
// policy a tool is tried once. A resumed run passes again through the attempts its journal
// holds without waiting (what they did through the host is served), except for what was left
// of the last wait.
int prim_tool_retry(lua_State* L) {
  Core* core = core_of(L);
  ToolStep& ts = check_step(L, 1);
  std::string text = luaL_checkstring(L, 2);
  if (lua_isnoneornil(L, 4) || ts.done) {
    lua_pushboolean(L, 0);
    return 1;
  }
  RetryPolicy policy = read_retry(L, 4, core->options.retry, "troupe.tool");
  AttemptFailure failure{"tool_error", true, 0};
  if (lua_istable(L, 3)) {  // a troupe error (a failed call inside the tool), raw reads only
    lua_pushliteral(L, "status");
    if (lua_rawget(L, 3) == LUA_TSTRING) failure.status = lua_tostring(L, -1);
    lua_pushliteral(L, "retryable");
    if (lua_rawget(L, 3) == LUA_TBOOLEAN) failure.retryable = lua_toboolean(L, -1);
    lua_pushliteral(L, "retry_after_ms");
    if (lua_rawget(L, 3) == LUA_TNUMBER)
      failure.retry_after_ms = static_cast<int64_t>(lua_tonumber(L, -1));
    lua_pop(L, 3);
  }
  Task* t = waiting_task_of(L, "a tool's retry");
  Run& run = *t->run;
  std::weak_ptr<Task> weak = core->shared(t);
  const int attempt = ts.attempt;
  EventLoop::Id timer = 0;
  auto it = run.retries.find(ts.step.step_key);
  if (it != run.retries.end() && attempt <= it->second.done) {
    // An attempt an earlier epoch made and journaled: only what was left of the last wait.
    int64_t left = attempt == it->second.done ? it->second.wait_until_ms - unix_ms() : 0;
    timer = core->loop.add_timer(static_cast<uint64_t>(std::max<int64_t>(left, 0)),
                                 [core, weak] { retry_now(core, weak); });
  } else {
    ts.step.finished_ms = unix_ms();
    ts.step.latency_us = static_cast<int64_t>((EventLoop::now_ns() - ts.t0) / 1000);
    AttemptRecord failed =
        attempt_of(ts.step, attempt, failure.status, log::redact(text), ts.attempt_started_ms);
    timer = core->retry_later(run, std::move(failed), 0, policy, failure,
                              [core, weak] { retry_now(core, weak); });
    if (timer == 0) {
      lua_pushboolean(L, 0);
      return 1;
    }
  }
  ++ts.attempt;
  ts.t0 = EventLoop::now_ns();
  ts.attempt_started_ms = unix_ms();
  t->cancel_op = [core, timer] { core->loop.cancel_timer(timer); };
  return suspend_task(L, t);
}

}  // namespace troupe::rt
