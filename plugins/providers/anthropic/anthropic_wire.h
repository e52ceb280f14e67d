// anthropic_wire.h: pure translation between troupe's normalized chat shapes and Anthropic's
// Messages API (POST {base_url}/v1/messages). No HTTP here: unit-tested on its own.
//
// What the translation has to bridge:
//   - system messages become the top-level "system"; the API wants user/assistant turns
//     alternating, so consecutive messages of one role are merged (tool results are user
//     content blocks, so an assistant turn's results land in ONE user message)
//   - tool names and tool-use ids must match ^[a-zA-Z0-9_-]{1,64}$ / ^[a-zA-Z0-9_-]+$ on this
//     wire; troupe's names may contain '.', so they are renamed for the wire and renamed back
//     in the answer (WireContext)
//   - there is no JSON mode: response_format becomes one extra tool that the model is forced
//     to call, and that call's input comes back as the answer's text
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/call_error.h"
#include "common/chat_call.h"
#include "common/chat_response.h"
#include "common/event_sink.h"
#include "common/sse_parser.h"

namespace troupe::anthropic {

inline constexpr const char* kVendor = "anthropic";
inline constexpr const char* kDefaultBaseUrl = "https://api.anthropic.com";
inline constexpr const char* kDefaultVersion = "2023-06-01";
inline constexpr int64_t kDefaultMaxTokens = 4096;

struct RequestOptions {
  bool stream = false;                             // ask for SSE ("stream": true)
  int64_t default_max_tokens = kDefaultMaxTokens;  // max_tokens is required by the API
};

// What the answer's decoding needs to know about the request that was sent.
struct WireContext {
  // Wire tool name -> troupe's tool name, for every tool name that differs on the wire.
  std::map<std::string, std::string> renamed_tools;
  // The wire name of the forced tool standing in for response_format; "" = none.
  std::string structured_tool;
  // The tool's input schema wraps a schema that is not an object (a tool's input must be
  // one) as {"value": <schema>}: the answer is the input's "value".
  bool structured_wrapped = false;

  // troupe's name for a tool name the vendor sent.
  std::string tool_name(const std::string& wire_name) const;
};

// Normalized request (chat_request.schema.json, parsed) -> the request body (and the context
// to decode its answer with). metadata is never sent. A request it cannot express fails with
// INVALID_ARGUMENT.
std::optional<kit::CallError> build_request_body(const nlohmann::json& request,
                                                 const RequestOptions& options,
                                                 nlohmann::json* body, WireContext* context);

// end_turn/stop_sequence/pause_turn/null -> stop, max_tokens and
// model_context_window_exceeded -> length, tool_use -> tool_calls, refusal -> content_filter,
// anything else -> error.
std::string map_stop_reason(const nlohmann::json& reason);

// {"input_tokens","cache_read_input_tokens","cache_creation_input_tokens","output_tokens"} ->
// Usage: input counts all three input fields, cached the cache reads, cache_write the cache
// writes. Missing counts are 0.
kit::Usage parse_usage(const nlohmann::json& usage);

// A complete (non-streamed) 2xx body -> the normalized response. A body that is not a message
// fails with TRANSPORT (retryable); a {"type":"error"} body maps by its error type.
std::optional<kit::CallError> parse_response(std::string_view body, const WireContext& context,
                                             kit::ChatResponse* out);

// Decodes the Messages SSE stream: message_start (model, input usage), content_block_start /
// _delta / _stop (text_delta, input_json_delta, thinking_delta -> reasoning), message_delta
// (stop_reason, output usage), message_stop (the end marker), ping, error.
class StreamDecoder : public kit::StreamDecoder {
 public:
  explicit StreamDecoder(WireContext context) : context_(std::move(context)) {}

  std::optional<kit::CallError> on_sse(const kit::SseEvent& event, kit::EventSink& sink) override;
  bool done() const override { return done_; }
  std::optional<kit::CallError> finish(kit::ChatResponse* out) override;

 private:
  enum class BlockKind { text, tool_use, structured, thinking, other };
  struct Block {
    BlockKind kind = BlockKind::other;
    int tool_index = 0;  // tool_use: its position among this turn's tool calls
  };

  void block_start(const nlohmann::json& event, kit::EventSink& sink);
  void block_delta(const nlohmann::json& event, kit::EventSink& sink);
  void take_usage(const nlohmann::json& usage, kit::EventSink& sink);
  std::optional<kit::CallError> end_of_message(kit::EventSink& sink);

  WireContext context_;
  bool done_ = false;
  kit::ChatResponse response_;
  std::string stop_reason_;
  std::map<int64_t, Block> blocks_;  // by the stream's content block index
  int tool_count_ = 0;
  kit::ToolCallAccumulator tools_;
  bool structured_called_ = false;
  std::string structured_json_;  // the forced tool's input JSON, as streamed
  // Usage fields as reported so far (message_delta may repeat or update message_start's).
  nlohmann::json usage_ = nlohmann::json::object();
};

}  // namespace troupe::anthropic
