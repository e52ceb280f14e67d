// chat_response.h: the normalized chat response (sdk/schemas/chat_response.schema.json) and
// the pieces a vendor decoder builds it from.
//
//   ChatResponse r;             // fill text, tool_calls, finish_reason, usage, model
//   r.to_json_text();           // what Call::finish() takes
//
// ToolCallAccumulator collects streamed tool-call deltas by index (id and name usually come on
// the first piece, the arguments JSON in pieces, calls of one turn may interleave) and turns
// them into ToolCalls with parsed arguments at the end of the stream.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/call_error.h"

namespace troupe::kit {

// Token counts. input includes cached_input and cache_write; output includes reasoning (the
// vendor mappers make it so); total is input + output.
struct Usage {
  int64_t input = 0;
  int64_t output = 0;
  int64_t cached_input = 0;
  int64_t reasoning = 0;
  int64_t cache_write = 0;  // tokens written to the vendor's prompt cache (Anthropic)

  // All five fields: {"input_tokens","output_tokens","cached_input_tokens",
  // "reasoning_tokens","total_tokens"}, and "cache_write_tokens" when there were any.
  nlohmann::json to_json() const;
};

struct ToolCall {
  std::string id;
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();  // always an object
};

struct ChatResponse {
  std::string text;
  std::vector<ToolCall> tool_calls;
  std::string finish_reason = "stop";  // stop | length | tool_calls | content_filter | error
  Usage usage;
  std::string model;
  std::string request_id;  // omitted from the JSON when empty

  nlohmann::json to_json() const;
  // The JSON text; invalid UTF-8 (which a vendor could put in a header) becomes U+FFFD.
  std::string to_json_text() const;
};

// Parses a tool call's arguments text: "" (and whitespace) is {}, else it must be a JSON
// object. On failure returns the contract's error: TROUPE_TRANSPORT, retryable,
// "<vendor>: tool call '<name>' has arguments that are not JSON".
std::optional<CallError> parse_tool_arguments(std::string_view vendor, std::string_view name,
                                              std::string_view text, nlohmann::json* out);

// The same for arguments a vendor sends already parsed (gemini, ollama): must be an object
// (null counts as {}).
std::optional<CallError> check_tool_arguments(std::string_view vendor, std::string_view name,
                                              const nlohmann::json& value, nlohmann::json* out);

// Arguments a vendor may send in either form: a string is parse_tool_arguments()'s text,
// anything else check_tool_arguments()'s value (openai and ollama, whose compatible servers
// differ).
std::optional<CallError> read_tool_arguments(std::string_view vendor, std::string_view name,
                                             const nlohmann::json& value, nlohmann::json* out);

class ToolCallAccumulator {
 public:
  // A streamed piece of tool call `index`. id and name are kept from the first piece that has
  // them (empty = not in this piece); arguments pieces are appended.
  void add(int index, std::string_view id, std::string_view name, std::string_view arguments);

  bool empty() const { return calls_.empty(); }
  size_t size() const { return calls_.size(); }

  // The calls in index order with parsed arguments. A call without an id gets "call_<n>"
  // (n = its 1-based position). Fails like parse_tool_arguments().
  std::optional<CallError> finish(std::string_view vendor, std::vector<ToolCall>* out) const;

 private:
  struct Pending {
    std::string id;
    std::string name;
    std::string arguments;
  };
  std::map<int, Pending> calls_;
};

}  // namespace troupe::kit
