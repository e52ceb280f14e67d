// primitives.h: the primitives — the C functions of the `host` table the troupe Lua library
// is built on — and what their files share (prim_support.cpp defines the helpers).
//
// push_primitives registers every primitive with the Core as its one upvalue. A primitive
// that waits takes the calling task's next step key, starts the work, and suspends the task
// (suspend_task); the work's completion journals the step and resumes the task with
// (true, result...) or (false, error).
#pragma once

#include <cstdint>
#include <lua.hpp>
#include <string>

#include "runtime/runtime_internal.h"

namespace troupe::rt {

// The Core of a primitive (its first upvalue).
Core* core_of(lua_State* L);

// The task running this coroutine; raises when called outside a running workflow.
Task* task_of(lua_State* L);

// Like task_of, for calls that wait: raises a clear error where the coroutine cannot yield
// (inside a metamethod, a table.sort comparator, a string.gsub callback).
Task* waiting_task_of(lua_State* L, const char* what);

// Raises msg positioned at the workflow's own line (primitive <- troupe library <- workflow).
int user_error(lua_State* L, const std::string& msg);

// Suspends the task until the work its primitive started is done; Core::schedule resumes it
// and the result (Task::pending) is pushed from inside the coroutine.
int suspend_task(lua_State* L, Task* t);

// Pushes a troupe error table {status, message, retryable, retry_after_ms, step_key, text}.
void push_error_table(lua_State* co, const char* status, const std::string& message, bool retryable,
                      uint32_t retry_after_ms, const std::string& step_key,
                      const std::string& text);

// The retry policy at stack slot idx as a workflow writes it (run_retry.cpp): nil keeps base,
// false tries once, a table {attempts, initial, backoff, max, jitter, non_retryable} (seconds)
// changes the fields it names. Raises "<who>: retry...: ..." on anything else; reads raw.
RetryPolicy read_retry(lua_State* L, int idx, const RetryPolicy& base, const char* who);

// Registers the hidden metatable `name` of a handle (a userdata) a primitive returns: its
// __gc and __close end the work the handle stands for.
void register_handle_type(lua_State* L, const char* name, lua_CFunction gc, lua_CFunction close);

// The handles host.stream and host.tool_step return (registered by push_primitives).
void register_stream_type(lua_State* L);
void register_tool_step_type(lua_State* L);

// The primitives, by file; push_primitives (prim_support.cpp) registers them as host.<name>.
int prim_chat(lua_State* L);           // model_call.cpp
int prim_stream(lua_State* L);         // model_stream.cpp
int prim_stream_next(lua_State* L);    // model_stream.cpp
int prim_sleep(lua_State* L);          // prim_waits.cpp
int prim_parallel(lua_State* L);       // prim_waits.cpp
int prim_map(lua_State* L);            // prim_waits.cpp
int prim_tool_step(lua_State* L);      // prim_tools.cpp
int prim_tool_done(lua_State* L);      // prim_tools.cpp
int prim_external_tool(lua_State* L);  // prim_external_tools.cpp
int prim_validate(lua_State* L);       // prim_schema.cpp
int prim_http(lua_State* L);           // prim_http.cpp
int prim_wait_signal(lua_State* L);    // prim_outside.cpp
int prim_approve(lua_State* L);        // prim_outside.cpp
int prim_check_retry(lua_State* L);    // run_retry.cpp
int prim_tool_retry(lua_State* L);     // prim_tools.cpp
int prim_log(lua_State* L);            // prim_sandbox.cpp, from here on
int prim_now(lua_State* L);
int prim_patched(lua_State* L);
int prim_random(lua_State* L);
int prim_randomseed(lua_State* L);
int prim_killed(lua_State* L);
int prim_yielded(lua_State* L);
int prim_is_task_thread(lua_State* L);
int prim_co_create(lua_State* L);
int prim_co_adopt(lua_State* L);
int prim_run_env(lua_State* L);
int prim_memory_kb(lua_State* L);
int prim_builtin_source(lua_State* L);
int prim_find_module(lua_State* L);
int prim_set_workflow(lua_State* L);
int prim_default_model(lua_State* L);
int prim_mark_array(lua_State* L);
int prim_json_encode(lua_State* L);
int prim_json_decode(lua_State* L);

}  // namespace troupe::rt
