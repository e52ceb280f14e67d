// host_calls.cpp: the primitives the troupe Lua library is built on (the `host` table).
//
// Calls that wait (chat, sleep, parallel, map) take the next step key of the calling task,
// start the work, and yield the task's coroutine; the completion journals the step and
// resumes it with (true, result...) or (false, error).
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/log.h"
#include "loop/event_loop.h"
#include "plugin/plugin_instance.h"
#include "runtime/host_call_util.h"
#include "runtime/json_lua.h"
#include "runtime/runtime_internal.h"
#include "troupe/plugin.hpp"

namespace troupe::rt {

Core* core_of(lua_State* L) {
  return static_cast<Core*>(lua_touserdata(L, lua_upvalueindex(1)));
}

Task* task_of(lua_State* L) {
  Task* t = core_of(L)->task_of_thread(L);
  if (t == nullptr || t->finished)
    luaL_error(L, "troupe: this can only be used inside a running workflow");
  return t;
}

// The calls that wait must be able to yield: not from inside a metamethod, a table.sort
// comparator or a string.gsub callback, whose C caller cannot be suspended.
Task* waiting_task_of(lua_State* L, const char* what) {
  Task* t = task_of(L);
  if (!lua_isyieldable(L)) {
    luaL_error(L,
               "%s cannot wait here: it was called from a metamethod or a callback of a C "
               "function (table.sort, string.gsub, ...), which cannot be suspended",
               what);
  }
  return t;
}

// Raises msg positioned at the workflow's own line: host primitives are called from the troupe
// library (level 1), which the workflow called (level 2).
int user_error(lua_State* L, const std::string& msg) {
  luaL_where(L, 2);
  lua_pushlstring(L, msg.data(), msg.size());
  lua_concat(L, 2);
  return lua_error(L);
}

namespace {

// The continuation of every primitive that waits: it runs inside the coroutine when the host
// resumes it, and pushes what the host call returns (Task::pending). A raise while pushing
// (the run's memory is exhausted) is an error of the run, caught by lua_resume.
int deliver(lua_State* L, int, lua_KContext) {
  Task* t = core_of_state(L)->task_of_thread(L);
  if (t == nullptr || !t->pending) return 0;
  Pusher push = std::move(t->pending);
  t->pending = nullptr;
  return push(L);
}

}  // namespace

int yield_for_host(lua_State* L, Task* t) {
  t->host_yield = true;
  return lua_yieldk(L, 0, 0, &deliver);
}

void push_error_table(lua_State* co, const char* status, const std::string& message, bool retryable,
                      uint32_t retry_after_ms, const std::string& step_key,
                      const std::string& text) {
  lua_createtable(co, 0, 6);
  lua_pushstring(co, status);
  lua_setfield(co, -2, "status");
  lua_pushlstring(co, message.data(), message.size());
  lua_setfield(co, -2, "message");
  lua_pushboolean(co, retryable);
  lua_setfield(co, -2, "retryable");
  lua_pushinteger(co, retry_after_ms);
  lua_setfield(co, -2, "retry_after_ms");
  lua_pushlstring(co, step_key.data(), step_key.size());
  lua_setfield(co, -2, "step_key");
  lua_pushlstring(co, text.data(), text.size());
  lua_setfield(co, -2, "text");
}

ChatCall prepare_chat(lua_State* L, Core* core, Task* t) {
  std::string agent = luaL_checkstring(L, 1);
  std::string model = luaL_checkstring(L, 2);
  std::string role = luaL_optstring(L, 3, "");
  luaL_checktype(L, 4, LUA_TTABLE);
  size_t slash = model.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == model.size()) {
    user_error(L, "agent '" + agent + "': model '" + model + "' must be written as provider/model");
  }
  std::string provider_name = model.substr(0, slash);
  std::string error;
  ChatCall c;
  c.provider = core->providers.provider(provider_name, &error);
  if (!c.provider) user_error(L, "agent '" + agent + "': " + error);
  nlohmann::json request;
  if (!lua::to_json(L, 4, &request, &error, "request")) {
    user_error(L, "agent '" + agent + "': " + error);
  }

  Run& run = *t->run;
  c.key = t->key(++t->ordinal);
  request["model"] = model.substr(slash + 1);
  nlohmann::json meta = {{"agent", agent}, {"run_id", run.id}, {"step_key", c.key}};
  if (!role.empty()) meta["role"] = role;
  request["metadata"] = meta;
  // Invalid UTF-8 in a prompt or a tool result must not throw out of a Lua call.
  c.body = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);

  c.step.run_id = run.id;
  c.step.step_key = c.key;
  c.step.kind = "chat";
  c.step.agent = agent;
  c.step.model = model;
  c.step.request_json = c.body;  // the store's writer redacts every row it writes
  c.step.started_ms = unix_ms();
  core->emit(run, "step.started", c.key,
             nlohmann::json{{"kind", "chat"}, {"agent", agent}, {"model", model}}.dump(
                 -1, ' ', false, nlohmann::json::error_handler_t::replace));
  return c;
}

// The longest provider error message kept (start and end, see log::redact_cut).
constexpr size_t kMaxErrorBytes = 1024;

bool settle_chat(StepRecord* step, CallResult* result, uint64_t t0, std::string* error_text) {
  step->finished_ms = unix_ms();
  step->latency_us = static_cast<int64_t>((EventLoop::now_ns() - t0) / 1000);
  nlohmann::json response;
  if (result->status == TROUPE_OK) {
    response = nlohmann::json::parse(result->result_json, nullptr, false);
    if (!response.is_object()) {
      result->status = TROUPE_INTERNAL;
      result->error = "the provider returned a response that is not a JSON object";
    }
  }
  if (result->status == TROUPE_OK) {
    const nlohmann::json& usage = response.contains("usage") ? response["usage"] : nlohmann::json();
    if (usage.is_object()) {
      step->input_tokens = usage.value("input_tokens", int64_t{0});
      step->output_tokens = usage.value("output_tokens", int64_t{0});
    }
    step->status = "succeeded";
    // A plugin that echoes a key must not get it into the journal or the workflow. \u escapes
    // could spell a key in a form the redactor does not know: such JSON is rewritten first.
    if (result->result_json.find("\\u") != std::string::npos)
      result->result_json = response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    result->result_json = log::redact(result->result_json);
    step->response_json = result->result_json;
    return true;
  }
  // Plugins hand over vendor messages whole; the host cuts them, after redacting (0013).
  result->error = log::redact_cut(result->error, kMaxErrorBytes);
  const char* name = sdk::status_name(result->status);
  *error_text = "agent '" + step->agent + "' (" + step->model + ") step " + step->step_key + ": " +
                name + ": " + result->error;
  step->status = result->status == TROUPE_CANCELLED ? "cancelled" : "failed";
  step->error = std::string(name) + ": " + result->error;
  return false;
}

namespace {

// host.chat(agent, "provider/model", role|nil, request) -> true, response | false, error
int host_chat(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "agent:ask/chat");
  ChatCall c = prepare_chat(L, core, t);
  std::weak_ptr<Task> weak = core->shared(t);
  std::weak_ptr<bool> token = core->alive;
  uint64_t t0 = EventLoop::now_ns();
  CallHandlers handlers;
  handlers.on_complete = [core, weak, token, step = std::move(c.step),
                          t0](CallResult result) mutable {
    if (token.expired()) return;
    auto task = weak.lock();
    if (!task) return;
    task->cancel_op = nullptr;
    std::string text;
    Pusher push;
    if (settle_chat(&step, &result, t0, &text)) {
      push = [json = std::move(result.result_json)](lua_State* co) {
        std::string err;
        lua_pushboolean(co, 1);
        if (!lua::push_json(co, json, &err)) lua_pushnil(co);
        return 2;
      };
    } else {
      push = [result, text, key = step.step_key](lua_State* co) {
        lua_pushboolean(co, 0);
        push_error_table(co, sdk::status_name(result.status), result.error, result.retryable,
                         result.retry_after_ms, key, text);
        return 2;
      };
    }
    core->finish_step(task, std::move(step), std::move(push));
  };
  uint64_t call = c.provider->invoke("chat", c.body, false, core->options.limits.call_timeout_ms,
                                     std::move(handlers));
  t->cancel_op = [provider = c.provider, call] { provider->cancel(call); };
  return yield_for_host(L, t);
}

// host.sleep(seconds) -> true
int host_sleep(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "troupe.sleep");
  double seconds = luaL_checknumber(L, 1);
  if (!(seconds >= 0) || seconds > 365.0 * 24 * 3600) {
    return luaL_error(L, "troupe.sleep: %f is not a number of seconds between 0 and a year",
                      seconds);
  }
  Run& run = *t->run;
  std::string key = t->key(++t->ordinal);
  int64_t started_ms = unix_ms();
  core->emit(run, "step.started", key,
             nlohmann::json{{"kind", "sleep"}, {"seconds", seconds}}.dump());
  std::weak_ptr<Task> weak = core->shared(t);
  std::weak_ptr<bool> token = core->alive;
  uint64_t t0 = EventLoop::now_ns();
  auto ms = static_cast<uint64_t>(std::ceil(seconds * 1000.0));
  // The closure stays small (thousands of runs may sleep at once): the step is built when the
  // timer fires.
  EventLoop::Id timer =
      core->loop.add_timer(ms, [core, weak, token, key, seconds, started_ms, t0]() {
        if (token.expired()) return;
        auto task = weak.lock();
        if (!task || task->finished) return;
        task->cancel_op = nullptr;
        StepRecord step;
        step.run_id = task->run->id;
        step.step_key = key;
        step.kind = "sleep";
        step.request_json = nlohmann::json{{"seconds", seconds}}.dump();
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
  return yield_for_host(L, t);
}

// host.parallel(f1, f2, ...) -> true, r1, r2, ... | false, error
int host_parallel(lua_State* L) {
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
  return yield_for_host(L, t);
}

// host.map(list, fn, concurrency) -> true, results | false, error
int host_map(lua_State* L) {
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
  return yield_for_host(L, t);
}

// host.log(level, message)
int host_log(lua_State* L) {
  Core* core = core_of(L);
  std::string level = luaL_checkstring(L, 1);
  size_t len = 0;
  const char* msg = luaL_checklstring(L, 2, &len);
  Task* t = core->task_of_thread(L);
  if (t == nullptr) {
    log::info("lua", std::string(msg, len));
    return 0;
  }
  core->emit(*t->run, "log", "",
             nlohmann::json{{"level", level}, {"message", std::string(msg, len)}}.dump(
                 -1, ' ', false, nlohmann::json::error_handler_t::replace));
  const std::string& stopped = core->kill_reason(*t->run);  // a limit on events or bytes
  if (!stopped.empty()) return luaL_error(L, "%s", stopped.c_str());
  return 0;
}

// host.now() -> seconds since the epoch; journaled as a step so a replay sees the same time.
int host_now(lua_State* L) {
  Core* core = core_of(L);
  Task* t = task_of(L);
  Run& run = *t->run;
  int64_t ms = unix_ms();
  if (core->store) {
    StepRecord step;
    step.run_id = run.id;
    step.step_key = t->key(++t->ordinal);
    step.kind = "now";
    step.request_json = "{}";
    step.response_json = nlohmann::json{{"unix_ms", ms}}.dump();
    step.status = "succeeded";
    step.started_ms = step.finished_ms = ms;
    if (!core->charge_store(run, true, step.step_key.size() + step.response_json.size() + 2)) {
      return luaL_error(L, "%s", run.kill_reason.c_str());
    }
    core->store->record_step(step);
  } else {
    ++t->ordinal;
  }
  lua_pushnumber(L, static_cast<double>(ms) / 1000.0);
  return 1;
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t next_random(uint64_t* s) {  // xoshiro256**
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

// host.random([m [, n]]): math.random with a per-run, deterministic stream.
int host_random(lua_State* L) {
  Run& run = *task_of(L)->run;
  uint64_t x = next_random(run.rng);
  lua_Integer low, up;
  switch (lua_gettop(L)) {
    case 0:
      lua_pushnumber(L, static_cast<lua_Number>(x >> 11) * 0x1.0p-53);
      return 1;
    case 1:
      low = 1;
      up = luaL_checkinteger(L, 1);
      if (up == 0) {
        lua_pushinteger(L, static_cast<lua_Integer>(x));
        return 1;
      }
      break;
    case 2:
      low = luaL_checkinteger(L, 1);
      up = luaL_checkinteger(L, 2);
      break;
    default:
      return luaL_error(L, "wrong number of arguments");
  }
  luaL_argcheck(L, low <= up, 1, "interval is empty");
  uint64_t range = static_cast<uint64_t>(up) - static_cast<uint64_t>(low);
  uint64_t r = range == UINT64_MAX ? x : x % (range + 1);
  lua_pushinteger(L, static_cast<lua_Integer>(static_cast<uint64_t>(low) + r));
  return 1;
}

int host_randomseed(lua_State* L) {
  Run& run = *task_of(L)->run;
  seed_rng(run.rng, static_cast<uint64_t>(luaL_optinteger(L, 1, 0)));
  return 0;
}

// host.killed() -> the reason a limit stopped this run, or nil
int host_killed(lua_State* L) {
  Core* core = core_of(L);
  Task* t = core->task_of_thread(L);
  if (t == nullptr) return 0;
  const std::string& reason = core->kill_reason(*t->run);
  if (reason.empty()) return 0;
  lua_pushlstring(L, reason.data(), reason.size());
  return 1;
}

// host.yielded() -> whether the coroutine just resumed yielded for the host (see _runtime.lua)
int host_yielded(lua_State* L) {
  Task* t = core_of(L)->task_of_thread(L);
  lua_pushboolean(L, t != nullptr && t->host_yield);
  return 1;
}

int host_is_task_thread(lua_State* L) {
  Task* t = core_of(L)->task_of_thread(L);
  lua_pushboolean(L, t != nullptr && t->co == L);
  return 1;
}

// host.co_create(fn): a user coroutine that belongs to the calling task.
int host_co_create(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State* co = lua_newthread(L);
  thread_handle(co) = thread_handle(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  return 1;
}

// host.co_adopt(co, what): the task about to resume or close a user coroutine owns what runs
// inside it (host calls, instructions). A branch's own coroutine belongs to the host: no
// workflow code may resume or close it.
int host_co_adopt(lua_State* L) {
  Core* core = core_of(L);
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_State* co = lua_tothread(L, 1);
  Task* owner = core->task_of_thread(co);
  if (co != L && (owner != nullptr && owner->co == co)) {
    return luaL_error(L, "%s: this coroutine is a troupe branch; only the host resumes it",
                      luaL_optstring(L, 2, "coroutine.resume"));
  }
  thread_handle(co) = thread_handle(L);
  return 0;
}

int host_run_env(lua_State* L) {
  Run& run = *task_of(L)->run;
  lua_rawgeti(L, LUA_REGISTRYINDEX, run.env_ref);
  return 1;
}

int host_memory_kb(lua_State* L) {
  Core* core = core_of(L);
  Task* t = core->task_of_thread(L);
  uint64_t used = t ? core->memory.used(t->run->mem_slot) : core->memory.total();
  lua_pushnumber(L, static_cast<lua_Number>(used) / 1024.0);
  return 1;
}

int host_builtin_source(lua_State* L) {
  const std::string* src = builtin_script(luaL_checkstring(L, 1));
  if (src == nullptr) return 0;
  lua_pushlstring(L, src->data(), src->size());
  return 1;
}

int module_error(lua_State* L, const std::string& message) {
  lua_pushnil(L);
  lua_pushlstring(L, message.data(), message.size());
  return 2;
}

// host.find_module(name) -> source, chunkname | nil, message: a module from the workflow's
// own folder only.
int host_find_module(lua_State* L) {
  Run& run = *task_of(L)->run;
  std::string name = luaL_checkstring(L, 1);
  bool valid = !name.empty() && name.front() != '.' && name.back() != '.' &&
               name.find("..") == std::string::npos;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      valid = false;
  }
  if (!valid) {
    return module_error(
        L, "require('" + name +
               "'): module names may contain only letters, digits, '_', '-' and '.' "
               "(modules load only from the troupe library and the workflow's folder)");
  }
  if (run.dir.empty()) {
    return module_error(
        L, "require('" + name + "'): a workflow given as a string can only require troupe modules");
  }
  std::string rel = name;
  for (char& c : rel)
    if (c == '.') c = '/';
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = fs::weakly_canonical(run.dir, ec);
  fs::path file = fs::weakly_canonical(fs::path(run.dir) / (rel + ".lua"), ec);
  std::string dir_s = dir.string() + "/";
  if (file.string().compare(0, dir_s.size(), dir_s) != 0) {
    return module_error(
        L, "require('" + name + "'): the module resolves outside the workflow's folder");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return module_error(L, "require('" + name +
                               "'): module not found (looked in the troupe library and for " +
                               (fs::path(run.dir) / (rel + ".lua")).string() + ")");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string src = ss.str();
  lua_pushlstring(L, src.data(), src.size());
  lua_pushstring(L, ("@" + (fs::path(run.dir) / (rel + ".lua")).string()).c_str());
  return 2;
}

int host_set_workflow(lua_State* L) {
  Core* core = core_of(L);
  Run& run = *task_of(L)->run;
  const char* name = luaL_checkstring(L, 1);
  const char* durability = luaL_optstring(L, 2, nullptr);
  if (durability != nullptr) {
    run.durability = std::string_view(durability) == "async" ? Durability::async : Durability::sync;
  }
  if (run.workflow == name) return 0;
  run.workflow = name;
  if (core->store) core->store->set_run_workflow(run.id, run.workflow);
  return 0;
}

int host_default_model(lua_State* L) {
  lua_pushstring(L, core_of(L)->default_model.c_str());
  return 1;
}

int host_mark_array(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua::push_array_mt(L);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

int host_json_encode(lua_State* L) {
  luaL_checkany(L, 1);
  std::string out, error;
  if (!lua::to_json(L, 1, &out, &error))
    return luaL_error(L, "troupe.json.encode: %s", error.c_str());
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int host_json_decode(lua_State* L) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, 1, &len);
  std::string error;
  if (!lua::push_json(L, std::string_view(s, len), &error)) {
    return luaL_error(L, "troupe.json.decode: %s", error.c_str());
  }
  return 1;
}

}  // namespace

void push_host_api(lua_State* L, Core* core) {
  static const luaL_Reg functions[] = {
      {"chat", host_chat},
      {"sleep", host_sleep},
      {"parallel", host_parallel},
      {"map", host_map},
      {"log", host_log},
      {"now", host_now},
      {"random", host_random},
      {"randomseed", host_randomseed},
      {"killed", host_killed},
      {"yielded", host_yielded},
      {"is_task_thread", host_is_task_thread},
      {"co_create", host_co_create},
      {"co_adopt", host_co_adopt},
      {"run_env", host_run_env},
      {"memory_kb", host_memory_kb},
      {"builtin_source", host_builtin_source},
      {"find_module", host_find_module},
      {"set_workflow", host_set_workflow},
      {"default_model", host_default_model},
      {"mark_array", host_mark_array},
      {"json_encode", host_json_encode},
      {"json_decode", host_json_decode},
      {"stream", host_stream},
      {"stream_next", host_stream_next},
      {"tool_step", host_tool_step},
      {"tool_done", host_tool_done},
      {"validate", host_validate},
      {"http", host_http},
      {"external_tool", host_external_tool},
      {nullptr, nullptr},
  };
  register_stream_type(L);
  register_tool_step_type(L);
  lua_createtable(L, 0, 32);
  lua_pushlightuserdata(L, core);
  luaL_setfuncs(L, functions, 1);
  lua::push_null(L);
  lua_setfield(L, -2, "null");
  lua_pushstring(L, TROUPE_VERSION_STRING);
  lua_setfield(L, -2, "version");
}

}  // namespace troupe::rt
