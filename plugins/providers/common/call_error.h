// call_error.h: a failed provider call — exactly what sdk::Call::fail() takes.
#pragma once

#include <troupe/plugin.h>

#include <cstdint>
#include <string>

namespace troupe::kit {

struct CallError {
  troupe_status_t status = TROUPE_INTERNAL;
  std::string message;  // starts with the vendor: "openai: ..."; never secrets or header values
  bool retryable = false;
  uint32_t retry_after_ms = 0;  // 0 = unknown
};

// A garbled or truncated response: TROUPE_TRANSPORT, retryable (the same call may well work).
inline CallError transport_error(std::string message) {
  return CallError{TROUPE_TRANSPORT, std::move(message), true, 0};
}

// A request the plugin cannot express for its vendor: TROUPE_INVALID_ARGUMENT, not retryable.
inline CallError invalid_argument(std::string message) {
  return CallError{TROUPE_INVALID_ARGUMENT, std::move(message), false, 0};
}

}  // namespace troupe::kit
