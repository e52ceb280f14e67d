// mock_engine.h: the mock's decisions — what one call does (reply, fail or hang), with which
// text, tool calls, usage and latency.
//
// Nothing here talks to the host: the plugin (mock_provider.cpp) asks Engine::plan() what a
// call should do and then carries it out with timers and stream events. Keeping the
// decisions here lets unit tests pin them without loading a .so. plan() reads the request
// (mock_request.h), applies the settings' rules (mock_settings.h), and takes the text from a
// rule, a schema sample (mock_schema_sample.h) or the default reply (mock_replies.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mock_settings.h"

namespace troupe::mock {

struct Usage {
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
  uint64_t total_tokens() const { return input_tokens + output_tokens; }
};

// What one call does.
struct Outcome {
  enum class Kind { reply, fail, hang };
  Kind kind = Kind::reply;
  uint32_t latency_ms = 0;
  Failure failure;  // kind == fail
  // kind == reply:
  std::string text;
  std::vector<ToolCall> tool_calls;
  std::string finish_reason = "stop";
  Usage usage;
  std::string model;
  std::string request_id;

  std::string response_json() const;  // chat_response.schema.json
  std::string usage_json() const;     // the usage object alone (the USAGE stream event)
};

// The decisions of one mock instance. Counts rule applications and request ids, so one
// Engine per plugin instance; not thread-safe (the plugin uses it on the loop thread).
class Engine {
 public:
  explicit Engine(Settings settings);
  // Decides what the call with this request JSON does. Never throws for bad requests: they
  // become a TROUPE_INVALID_ARGUMENT outcome.
  Outcome plan(std::string_view request_json);
  const Settings& settings() const { return settings_; }

 private:
  Settings settings_;
  std::vector<uint64_t> rule_uses_;
  std::vector<uint64_t> invalid_json_uses_;
  uint64_t requests_ = 0;
};

// Usage tokens for a number of code points: ceil(chars / 4).
uint64_t tokens_for_chars(uint64_t chars);

// The failures the model names error-rate-limited, error-server, error-timeout and
// error-auth inject; nullopt for any other model.
std::optional<Failure> injected_failure(std::string_view model);

}  // namespace troupe::mock
