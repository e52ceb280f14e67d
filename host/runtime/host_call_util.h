// host_call_util.h: helpers shared by the files that implement `host.*` primitives
// (host_calls.cpp, host_stream.cpp, host_tools.cpp, host_schema.cpp, host_http.cpp).
//
// Every primitive is registered by push_host_api (host_calls.cpp) with the Core as its one
// upvalue.
#pragma once

#include <cstdint>
#include <functional>
#include <lua.hpp>
#include <memory>
#include <string>

#include "plugin/plugin_instance.h"
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

// Suspends the task for a host call it started; Core::schedule resumes it.
int yield_for_host(lua_State* L, Task* t);

// Pushes a troupe error table {status, message, retryable, retry_after_ms, step_key, text}.
void push_error_table(lua_State* co, const char* status, const std::string& message, bool retryable,
                      uint32_t retry_after_ms, const std::string& step_key,
                      const std::string& text);

// A model call about to start (host.chat, host.stream).
struct ChatCall {
  std::shared_ptr<PluginInstance> provider;
  std::string key;   // the step key it took
  std::string body;  // the request JSON for the plugin
  StepRecord step;   // started, not finished
};

// Reads (agent, "provider/model", role|nil, request) at stack slots 1..4, takes the task's next
// step key and emits step.started. Raises (at the workflow's line) on a malformed model, an
// unknown provider or a request that cannot be JSON; nothing has started then.
ChatCall prepare_chat(lua_State* L, Core* core, Task* t);

// Settles a finished model call into its step: latency, status, tokens, the redacted response
// (also left in result->result_json). Returns false for a failed call, with the one-line
// error text for Lua in *error_text.
bool settle_chat(StepRecord* step, CallResult* result, uint64_t t0, std::string* error_text);

// The metatables of the handles host.stream and host.tool_step return (push_host_api).
void register_stream_type(lua_State* L);
void register_tool_step_type(lua_State* L);

// Primitives defined outside host_calls.cpp, registered by push_host_api.
int host_stream(lua_State* L);         // host_stream.cpp
int host_stream_next(lua_State* L);    // host_stream.cpp
int host_tool_step(lua_State* L);      // host_tools.cpp
int host_tool_done(lua_State* L);      // host_tools.cpp
int host_validate(lua_State* L);       // host_schema.cpp
int host_http(lua_State* L);           // host_http.cpp
int host_external_tool(lua_State* L);  // host_external_tools.cpp

}  // namespace troupe::rt
