// prim_support.cpp: what every primitive stands on — finding the calling task, raising at the
// workflow's line, suspending a task until its primitive's work is done (and pushing the
// result from inside the resumed coroutine), error tables — and the table of primitives
// itself, handed to _runtime.lua.
#include "core/log.h"
#include "runtime/json_lua.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"
#include "troupe/plugin.h"

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

int suspend_task(lua_State* L, Task* t) {
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

void register_handle_type(lua_State* L, const char* name, lua_CFunction gc, lua_CFunction close) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

void push_primitives(lua_State* L, Core* core) {
  static const luaL_Reg functions[] = {
      {"chat", prim_chat},
      {"sleep", prim_sleep},
      {"parallel", prim_parallel},
      {"map", prim_map},
      {"log", prim_log},
      {"now", prim_now},
      {"patched", prim_patched},
      {"random", prim_random},
      {"randomseed", prim_randomseed},
      {"killed", prim_killed},
      {"yielded", prim_yielded},
      {"is_task_thread", prim_is_task_thread},
      {"co_create", prim_co_create},
      {"co_adopt", prim_co_adopt},
      {"run_env", prim_run_env},
      {"memory_kb", prim_memory_kb},
      {"builtin_source", prim_builtin_source},
      {"find_module", prim_find_module},
      {"set_workflow", prim_set_workflow},
      {"default_model", prim_default_model},
      {"mark_array", prim_mark_array},
      {"json_encode", prim_json_encode},
      {"json_decode", prim_json_decode},
      {"stream", prim_stream},
      {"stream_next", prim_stream_next},
      {"tool_step", prim_tool_step},
      {"tool_done", prim_tool_done},
      {"validate", prim_validate},
      {"http", prim_http},
      {"external_tool", prim_external_tool},
      {"wait_signal", prim_wait_signal},
      {"approve", prim_approve},
      {"check_retry", prim_check_retry},
      {"tool_retry", prim_tool_retry},
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
