// ollama_wire.h: pure translation between troupe's normalized chat shapes and Ollama's native
// chat API (POST {base_url}/api/chat, NDJSON stream). No HTTP here: unit-tested on its own.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/call_error.h"
#include "common/chat_call.h"
#include "common/chat_response.h"
#include "common/event_sink.h"

namespace troupe::ollama {

inline constexpr const char* kVendor = "ollama";
inline constexpr const char* kDefaultBaseUrl = "http://127.0.0.1:11434";

struct RequestOptions {
  bool stream = false;  // always sent explicitly: Ollama streams unless told "stream": false
  // From the plugin settings; null = not sent.
  nlohmann::json keep_alive;  // "5m", "1h", 300, -1 (keep loaded), 0 (unload after)
  nlohmann::json think;       // true / false, or "low" / "medium" / "high" (gpt-oss)
  // Extra model options from the settings (num_ctx, top_p, seed, ...); the request's own
  // temperature / max_tokens / stop win over the same keys here.
  nlohmann::json model_options = nlohmann::json::object();
};

// Normalized request (chat_request.schema.json, parsed) -> the /api/chat body. Tool calls
// carry their arguments as objects; a tool result names its tool in "tool_name" (its "name",
// else the name of the assistant tool call its tool_call_id answers). temperature,
// max_tokens (num_predict) and stop go into "options"; response_format's schema becomes
// "format". tool_choice: "none" sends no tools, {name} offers only that tool, "auto" and
// "required" send the tools as they are (Ollama cannot force a call). metadata is never
// sent. A request it cannot express fails with INVALID_ARGUMENT.
std::optional<kit::CallError> build_request_body(const nlohmann::json& request,
                                                 const RequestOptions& options,
                                                 nlohmann::json* body);

// done_reason -> normalized finish reason: "stop" and absent -> stop, "length" -> length,
// anything else -> error; tool_calls whenever the answer has tool calls.
std::string map_finish_reason(const nlohmann::json& done_reason, bool has_tool_calls);

// {"prompt_eval_count","eval_count"} -> Usage (Ollama reports no cached or reasoning counts).
kit::Usage parse_usage(const nlohmann::json& response);

// A complete (non-streamed) 2xx body -> the normalized response. A body that is not a chat
// response fails with TRANSPORT (retryable); an {"error":"..."} body maps like a stream error.
std::optional<kit::CallError> parse_response(std::string_view body, kit::ChatResponse* out);

// Decodes the NDJSON stream: message.content pieces (TEXT_DELTA), message.thinking
// (REASONING_DELTA), message.tool_calls (each arrives whole: one TOOL_CALL_DELTA with id,
// name and the full arguments JSON), the last line with "done": true (finish reason and
// counts: USAGE), and {"error":"..."} lines, which fail the call.
class StreamDecoder : public kit::StreamDecoder {
 public:
  std::optional<kit::CallError> on_line(std::string_view line, kit::EventSink& sink) override;
  bool done() const override { return done_; }
  std::optional<kit::CallError> finish(kit::ChatResponse* out) override;

 private:
  bool done_ = false;
  nlohmann::json done_reason_;
  kit::ChatResponse response_;
};

}  // namespace troupe::ollama
