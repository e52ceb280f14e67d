// chat_request.cpp: the start of a provider's invoke() (see chat_request.h).
#include "common/chat_request.h"

#include <string>

namespace troupe::kit {

bool accept_chat_operation(sdk::Call& call, std::string_view vendor) {
  if (call.operation() == "chat") return true;
  call.fail(TROUPE_UNSUPPORTED, std::string(vendor) + ": unsupported operation \"" +
                                    call.operation() + "\" (only \"chat\")");
  return false;
}

std::optional<nlohmann::json> parse_chat_request(sdk::Call& call, std::string_view vendor) {
  nlohmann::json request =
      nlohmann::json::parse(call.request(), nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) {
    call.fail(TROUPE_INVALID_ARGUMENT, std::string(vendor) + ": the request is not a JSON object");
    return std::nullopt;
  }
  return request;
}

void fail_call(sdk::Call& call, const CallError& error) {
  call.fail(error.status, error.message, error.retryable, error.retry_after_ms);
}

}  // namespace troupe::kit
