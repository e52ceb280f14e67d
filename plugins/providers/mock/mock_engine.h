// mock_logic.h: the mock provider's pure logic — settings, rule matching, replies, usage.
//
// Nothing here talks to the host: the plugin (mock_provider.cpp) asks Engine::plan() what a
// call should do and then carries it out with timers and stream events. Keeping the
// decisions here lets unit tests pin them without loading a .so. Only the status codes come
// from plugin.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mock_scan.h"
#include "troupe/plugin.h"

namespace troupe::mock {

// A tool call the mock answers with. arguments_json is a JSON object's text.
struct ToolCall {
  std::string id;  // "call_1", "call_2", ... (assigned per response)
  std::string name;
  std::string arguments_json = "{}";
};

// An error the mock completes a call with.
struct Failure {
  troupe_status_t status = TROUPE_INTERNAL;
  std::string message;
  bool retryable = false;
  uint32_t retry_after_ms = 0;
};

// One entry of settings.rules. A rule applies to a call when every condition it has holds
// (a rule with neither `match` nor `model` applies to every call) and, with `times`, only
// to its first `times` applications.
struct Rule {
  std::optional<std::string> match;  // substring of the last user message (case-sensitive)
  std::optional<std::string> model;  // exact model name
  std::optional<std::string> reply;  // reply text (else the default reply)
  std::vector<ToolCall> tool_calls;  // returned when the request offers tools
  std::optional<Failure> error;      // complete with this error instead
  std::optional<uint32_t> latency_ms;
  std::optional<uint64_t> times;
  // Tool-call turns this rule returns its tool_calls for, counted since the last user message
  // (1: only the first; more keeps an agent loop going, e.g. to hit max_turns).
  uint64_t tool_turns = 1;
  // The first invalid_json applications of the rule answer with text that is not valid JSON
  // (for re-ask tests of structured output); later ones answer normally.
  uint64_t invalid_json = 0;
};

struct Settings {
  uint32_t latency_ms = 0;
  uint32_t stream_chunk_chars = 12;
  std::vector<Rule> rules;
};

// Parses the instance settings (a JSON object; "" counts as {}). Throws
// std::invalid_argument naming the offending field, e.g. "mock: rules[1].error.status:
// unknown status \"slow\"". Unknown top-level keys are ignored; unknown rule keys are not.
Settings parse_settings(std::string_view json);

// The parts of a chat request (chat_request.schema.json) the mock looks at.
struct Message {
  std::string role;
  std::string content;
  std::string name;
  std::string tool_call_id;
  std::vector<ToolCall> tool_calls;  // assistant messages
};

struct ChatRequest {
  std::string model;
  std::vector<Message> messages;
  bool has_tools = false;
  std::string response_schema_json;  // response_format.schema, "" when not asked for
  std::string agent;                 // metadata.agent
  std::string role;                  // metadata.role
};

// Throws std::invalid_argument naming what is wrong with the request.
ChatRequest parse_request(std::string_view json);

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

// Pure helpers, exposed for tests.
uint64_t count_chars(std::string_view utf8);  // UTF-8 code points
uint64_t tokens_for_chars(uint64_t chars);    // ceil(chars / 4)
// Splits text into pieces of at most chunk_chars code points, never inside a code point.
std::vector<std::string> split_chunks(std::string_view text, size_t chunk_chars);
// The failures the model names error-rate-limited, error-server, error-timeout and
// error-auth inject; nullopt for any other model.
std::optional<Failure> injected_failure(std::string_view model);
// The deterministic reply when no rule gives one: its persona comes from metadata.role, then
// metadata.agent, then the system prompt's first sentence; it quotes the last user message's
// first line and key words, and names the files, functions and risky lines it finds there
// (see mock_scan.h; key_words() is declared there).
std::string default_reply(const ChatRequest& request);
// The persona a role name, agent name or sentence reads as: "security", "devops", "migrator",
// "analyst", "architect", "reviewer", "tester", "writer", "planner", "coder" or "generic".
// The first persona word decides; in a compound ("code reviewer", "qa_lead", "devops
// engineer") its most specific part does.
std::string persona_name(std::string_view role_or_sentence);
// A JSON value that follows a JSON Schema (its text): every declared property, enums and
// consts honoured, one item per array (or minItems), bounds respected, local $refs followed.
// Deterministic; "{}" when the schema cannot be read.
std::string sample_json(std::string_view schema_json);

}  // namespace troupe::mock
