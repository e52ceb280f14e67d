// model_call.h: the two halves of a model call that host.chat (model_call.cpp) and
// host.stream (model_stream.cpp) share: preparing the call and settling its completion.
#pragma once

#include <cstdint>
#include <lua.hpp>
#include <memory>
#include <string>

#include "plugin/plugin_instance.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

// A model call about to start (host.chat, host.stream).
struct ChatCall {
  std::shared_ptr<PluginInstance> provider;
  std::string key;   // the step key it took
  std::string body;  // the request JSON for the plugin
  StepRecord step;   // started, not finished
  // A resumed run's call its journal answers (Core::served_step): nothing is started then.
  const StepRecord* served = nullptr;
};

// Reads (agent, "provider/model", role|nil, request) at stack slots 1..4, takes the task's next
// step key and emits step.started — or, when the run's journal answers the call, sets served
// and emits nothing. Raises (at the workflow's line) on a malformed model, an
// unknown provider or a request that cannot be JSON; nothing has started then.
ChatCall prepare_chat(lua_State* L, Core* core, Task* t);

// Settles a finished model call into its step: latency, status, tokens, the redacted response
// (also left in result->result_json). Returns false for a failed call, with the one-line
// error text for Lua in *error_text.
bool settle_chat(StepRecord* step, CallResult* result, uint64_t t0, std::string* error_text);

// A served call's result as the plugin would have given it: result_json for a success; status,
// error, retryable and retry_after_ms for a failure (whose *error_text is set as settle_chat
// sets it). False for a failure.
bool served_result(const StepRecord& rec, CallResult* result, std::string* error_text);

}  // namespace troupe::rt
