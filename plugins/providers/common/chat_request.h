// chat_request.h: the start and the early end of a provider's invoke() — accepting the "chat"
// operation, reading its request, failing the call with a CallError — the same words for every
// provider (the mock included).
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>
#include <troupe/plugin.hpp>

#include "common/call_error.h"

namespace troupe::kit {

// The first step of every provider's invoke(): true when the call's operation is "chat"; else
// fails the call with TROUPE_UNSUPPORTED ("<vendor>: unsupported operation \"x\" (only
// \"chat\")") and returns false. Loop thread.
bool accept_chat_operation(sdk::Call& call, std::string_view vendor);

// The call's request as a JSON object; else fails the call with TROUPE_INVALID_ARGUMENT
// ("<vendor>: the request is not a JSON object") and returns nullopt. Loop thread.
std::optional<nlohmann::json> parse_chat_request(sdk::Call& call, std::string_view vendor);

// Completes the call with this error.
void fail_call(sdk::Call& call, const CallError& error);

}  // namespace troupe::kit
