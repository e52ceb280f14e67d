// prim_sandbox.cpp: the primitives the sandbox (_runtime.lua) and the library build a run's
// environment on — log, the journaled clock, the per-run random stream, coroutines owned by
// their task, limits seen from Lua, modules from the library or the workflow's folder, JSON.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json_text.h"
#include "core/log.h"
#include "runtime/json_lua.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

namespace {

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

int module_error(lua_State* L, const std::string& message) {
  lua_pushnil(L);
  lua_pushlstring(L, message.data(), message.size());
  return 2;
}

}  // namespace

// host.log(level, message)
int prim_log(lua_State* L) {
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
             json_text(nlohmann::json{{"level", level}, {"message", std::string(msg, len)}}));
  const std::string& stopped = core->kill_reason(*t->run);  // a limit on events or bytes
  if (!stopped.empty()) return luaL_error(L, "%s", stopped.c_str());
  return 0;
}

// host.now() -> seconds since the epoch; journaled as a step so a replay sees the same time.
int prim_now(lua_State* L) {
  Core* core = core_of(L);
  Task* t = task_of(L);
  Run& run = *t->run;
  std::string key = t->key(++t->ordinal);
  if (const StepRecord* rec = core->served_step(L, run, key, StepCall{"now", "", "", ""})) {
    nlohmann::json response = nlohmann::json::parse(rec->response_json, nullptr, false);
    int64_t ms = response.is_object() ? response.value("unix_ms", int64_t{0}) : 0;
    lua_pushnumber(L, static_cast<double>(ms) / 1000.0);
    return 1;
  }
  int64_t ms = unix_ms();
  if (core->store) {
    StepRecord step;
    step.run_id = run.id;
    step.step_key = key;
    step.kind = "now";
    step.request_json = "{}";
    step.response_json = nlohmann::json{{"unix_ms", ms}}.dump();
    step.status = "succeeded";
    step.started_ms = step.finished_ms = ms;
    if (!core->charge_store(run, true, step.step_key.size() + step.response_json.size() + 2)) {
      return luaL_error(L, "%s", run.kill_reason.c_str());
    }
    core->store->record_step(step);
  }
  lua_pushnumber(L, static_cast<double>(ms) / 1000.0);
  return 1;
}

// host.patched(id) -> bool: troupe.patched — whether this run takes the new code path of a
// change guarded by `id`. A run that reaches the patch for the first time with nothing recorded
// after this point takes it (and the journal keeps a marker, so a later resume does again); a
// resumed run whose journal goes on past this point without the marker was recorded by the old
// code, and keeps the old path. The marker takes no ordinal: adding a patch shifts no key.
int prim_patched(lua_State* L) {
  Core* core = core_of(L);
  Task* t = task_of(L);
  std::string id = luaL_checkstring(L, 1);
  Run& run = *t->run;
  std::string marker = t->key(t->ordinal) + "#patch:" + id;
  bool recorded = run.journal.count(marker) > 0;
  bool old_path = !recorded && run.journal.count(t->key(t->ordinal + 1)) > 0;
  if (!recorded && !old_path && core->store) {
    StepRecord step;
    step.run_id = run.id;
    step.step_key = marker;
    step.kind = "patch";
    step.agent = id;
    step.request_json = "{}";
    step.response_json = "{}";
    step.status = "succeeded";
    step.started_ms = step.finished_ms = unix_ms();
    run.journal.emplace(marker, step);  // asked again in this run: the same answer
    core->store->record_step(step);
  }
  lua_pushboolean(L, !old_path);
  return 1;
}

// host.random([m [, n]]): math.random with a per-run, deterministic stream.
int prim_random(lua_State* L) {
  uint64_t x = next_random(task_of(L)->rng);
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

int prim_randomseed(lua_State* L) {
  seed_rng(task_of(L)->rng, static_cast<uint64_t>(luaL_optinteger(L, 1, 0)));
  return 0;
}

// host.killed() -> the reason a limit stopped this run, or nil
int prim_killed(lua_State* L) {
  Core* core = core_of(L);
  Task* t = core->task_of_thread(L);
  if (t == nullptr) return 0;
  const std::string& reason = core->kill_reason(*t->run);
  if (reason.empty()) return 0;
  lua_pushlstring(L, reason.data(), reason.size());
  return 1;
}

// host.yielded() -> whether the coroutine just resumed yielded for the host (see _runtime.lua)
int prim_yielded(lua_State* L) {
  Task* t = core_of(L)->task_of_thread(L);
  lua_pushboolean(L, t != nullptr && t->host_yield);
  return 1;
}

int prim_is_task_thread(lua_State* L) {
  Task* t = core_of(L)->task_of_thread(L);
  lua_pushboolean(L, t != nullptr && t->co == L);
  return 1;
}

// host.co_create(fn): a user coroutine that belongs to the calling task.
int prim_co_create(lua_State* L) {
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
int prim_co_adopt(lua_State* L) {
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

int prim_run_env(lua_State* L) {
  Run& run = *task_of(L)->run;
  lua_rawgeti(L, LUA_REGISTRYINDEX, run.env_ref);
  return 1;
}

int prim_memory_kb(lua_State* L) {
  Core* core = core_of(L);
  Task* t = core->task_of_thread(L);
  uint64_t used = t ? core->memory.used(t->run->mem_slot) : core->memory.total();
  lua_pushnumber(L, static_cast<lua_Number>(used) / 1024.0);
  return 1;
}

int prim_builtin_source(lua_State* L) {
  const std::string* src = builtin_script(luaL_checkstring(L, 1));
  if (src == nullptr) return 0;
  lua_pushlstring(L, src->data(), src->size());
  return 1;
}

// host.find_module(name) -> source, chunkname | nil, message: a module from the workflow's
// own folder only.
int prim_find_module(lua_State* L) {
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

int prim_set_workflow(lua_State* L) {
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

int prim_default_model(lua_State* L) {
  lua_pushstring(L, core_of(L)->default_model.c_str());
  return 1;
}

int prim_mark_array(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua::push_array_mt(L);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

int prim_json_encode(lua_State* L) {
  luaL_checkany(L, 1);
  std::string out, error;
  if (!lua::to_json(L, 1, &out, &error))
    return luaL_error(L, "troupe.json.encode: %s", error.c_str());
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int prim_json_decode(lua_State* L) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, 1, &len);
  std::string error;
  if (!lua::push_json(L, std::string_view(s, len), &error)) {
    return luaL_error(L, "troupe.json.decode: %s", error.c_str());
  }
  return 1;
}

}  // namespace troupe::rt
