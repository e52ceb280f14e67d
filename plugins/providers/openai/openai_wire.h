// openai_wire.h: pure translation between troupe's normalized chat shapes and OpenAI's Chat
// Completions API (POST {base_url}/chat/completions), also spoken by OpenRouter, Groq, vLLM,
// llama.cpp server, LM Studio and Ollama's /v1. No HTTP here: unit-tested on its own.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/call_error.h"
#include "common/chat_call.h"
#include "common/chat_response.h"
#include "common/event_sink.h"
#include "common/sse_parser.h"

namespace troupe::openai {

inline constexpr const char* kVendor = "openai";
inline constexpr const char* kDefaultBaseUrl = "https://api.openai.com/v1";

struct RequestOptions {
  bool stream = false;        // ask for SSE ("stream": true)
  bool include_usage = true;  // with stream: "stream_options": {"include_usage": true}
  std::string max_tokens_param = "max_completion_tokens";  // or "max_tokens"
};

// The token-limit field a base_url takes: "max_completion_tokens" for api.openai.com (newer
// models refuse "max_tokens"), "max_tokens" elsewhere (most compatible servers know only it).
std::string default_max_tokens_param(std::string_view base_url);

// Normalized request (chat_request.schema.json, parsed) -> the request body. metadata is
// never sent. A request it cannot express fails with INVALID_ARGUMENT.
std::optional<kit::CallError> build_request_body(const nlohmann::json& request,
                                                 const RequestOptions& options,
                                                 nlohmann::json* body);

// stop/length/tool_calls/content_filter pass through, function_call -> tool_calls, null or
// absent -> stop, anything else -> error.
std::string map_finish_reason(const nlohmann::json& reason);

// {"prompt_tokens","completion_tokens","prompt_tokens_details":{"cached_tokens"},
//  "completion_tokens_details":{"reasoning_tokens"}} -> Usage. Missing counts are 0.
kit::Usage parse_usage(const nlohmann::json& usage);

// A complete (non-streamed) 2xx body -> the normalized response. A body that is not a chat
// completion fails with TRANSPORT (retryable); an {"error":...} body maps by its type/code.
std::optional<kit::CallError> parse_response(std::string_view body, kit::ChatResponse* out);

// Decodes a chat.completion.chunk SSE stream: content deltas, reasoning deltas (the
// reasoning_content / reasoning fields of compatible servers), tool-call deltas by index,
// the usage chunk (empty choices; also Groq's x_groq.usage), error chunks, "data: [DONE]".
class StreamDecoder : public kit::StreamDecoder {
 public:
  std::optional<kit::CallError> on_sse(const kit::SseEvent& event, kit::EventSink& sink) override;
  bool done() const override { return done_; }
  std::optional<kit::CallError> finish(kit::ChatResponse* out) override;

 private:
  void take_usage(const nlohmann::json& usage, kit::EventSink& sink);
  void take_delta(const nlohmann::json& choice, kit::EventSink& sink);

  bool done_ = false;
  bool refused_ = false;  // the model sent a refusal instead of content
  kit::ChatResponse response_;
  kit::ToolCallAccumulator tools_;
};

}  // namespace troupe::openai
