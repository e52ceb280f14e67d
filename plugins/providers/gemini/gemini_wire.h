// gemini_wire.h: pure translation between troupe's normalized chat shapes and Google's Gemini
// API (POST {base_url}/{api_version}/models/{model}:generateContent, and
// :streamGenerateContent?alt=sse). No HTTP here: unit-tested on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/call_error.h"
#include "common/chat_call.h"
#include "common/chat_response.h"
#include "common/event_sink.h"
#include "common/sse_parser.h"

namespace troupe::gemini {

inline constexpr const char* kVendor = "gemini";
inline constexpr const char* kDefaultBaseUrl = "https://generativelanguage.googleapis.com";
inline constexpr const char* kDefaultApiVersion = "v1beta";

// Google's documented placeholder for a functionCall part whose real thought signature is
// unknown (a conversation rebuilt from normalized messages): Gemini 3 models refuse a model
// turn with function calls and no signature.
inline constexpr const char* kSkipSignature = "skip_thought_signature_validator";

// A thought signature Gemini attached to a function call it made, so the plugin can send it
// back with that call later (the normalized tool call has no field for it).
using SignatureHandler = std::function<void(const std::string& name, const nlohmann::json& args,
                                            const std::string& signature)>;
// The signature remembered for a call (name, arguments), "" when none.
using SignatureLookup =
    std::function<std::string(const std::string& name, const nlohmann::json& args)>;

struct RequestOptions {
  bool include_thoughts = false;  // generationConfig.thinkingConfig.includeThoughts
  // Where to find the real signatures of earlier calls; empty = none known.
  SignatureLookup signature_for;
};

// "gemini-2.5-flash" or "models/gemini-2.5-flash" -> "gemini-2.5-flash".
std::string model_id(std::string_view model);

// The endpoint: {base_url}/{api_version}/models/{model}:generateContent, or
// :streamGenerateContent?alt=sse when streaming. The version and the model are percent-encoded
// (kit::percent_encode): a model name cannot change the path or add a query.
std::string endpoint_url(std::string_view base_url, std::string_view api_version,
                         std::string_view model, bool stream);

// True for models that reject replayed function calls without a thought signature
// (Gemini 3 and later, and the "-latest" aliases that may point at them).
bool requires_thought_signatures(std::string_view model);

// Normalized request (chat_request.schema.json, parsed) -> the generateContent body.
// system messages -> systemInstruction; user -> role "user"; assistant -> role "model" with
// text and functionCall parts; tool results -> functionResponse parts of ONE user turn, named
// after the assistant tool call their tool_call_id answers; tools -> functionDeclarations
// with parametersJsonSchema; tool_choice -> toolConfig; temperature, max_tokens, stop and
// response_format -> generationConfig. metadata is never sent. The model goes in the URL, not
// the body. A request it cannot express fails with INVALID_ARGUMENT.
std::optional<kit::CallError> build_request_body(const nlohmann::json& request,
                                                 const RequestOptions& options,
                                                 nlohmann::json* body);

// Gemini finishReason -> normalized: STOP -> stop (tool_calls when the candidate called
// functions), MAX_TOKENS -> length, SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/SPII/
// IMAGE_SAFETY -> content_filter, anything else -> error. null/absent -> stop.
std::string map_finish_reason(const nlohmann::json& reason, bool has_tool_calls);

// usageMetadata -> Usage: input = promptTokenCount (includes cachedContentTokenCount),
// cached = cachedContentTokenCount, output = candidatesTokenCount + thoughtsTokenCount,
// reasoning = thoughtsTokenCount. Missing counts are 0.
kit::Usage parse_usage(const nlohmann::json& usage_metadata);

// A complete (non-streamed) 2xx body -> the normalized response: text parts (thought parts
// are left out), functionCall parts as tool calls "call_1", "call_2", ..., usage, modelVersion
// as the model, responseId as the request id. A blocked prompt (promptFeedback.blockReason, no
// candidates) -> content_filter with empty text. A body that is not a GenerateContentResponse
// fails with TRANSPORT (retryable); an {"error":...} body maps by its status.
// on_signature (may be empty) receives the thought signatures of the function calls.
std::optional<kit::CallError> parse_response(std::string_view body, kit::ChatResponse* out,
                                             const SignatureHandler& on_signature = {});

// Decodes the alt=sse stream: each event's data is a GenerateContentResponse chunk. Text parts
// -> TEXT_DELTA, thought parts -> REASONING_DELTA, each functionCall part (they arrive whole)
// -> one TOOL_CALL_DELTA with its synthesized id, name and the arguments JSON, usageMetadata
// -> USAGE. The stream is complete at the first chunk with a finishReason (or a blocked
// prompt); an {"error":...} chunk fails the call mapped by its status.
class StreamDecoder : public kit::StreamDecoder {
 public:
  explicit StreamDecoder(SignatureHandler on_signature = {})
      : on_signature_(std::move(on_signature)) {}

  std::optional<kit::CallError> on_sse(const kit::SseEvent& event, kit::EventSink& sink) override;
  bool done() const override { return done_; }
  std::optional<kit::CallError> finish(kit::ChatResponse* out) override;

 private:
  SignatureHandler on_signature_;
  bool done_ = false;
  nlohmann::json finish_reason_;  // the vendor's value, null until seen
  bool blocked_ = false;          // promptFeedback.blockReason without candidates
  kit::ChatResponse response_;
};

}  // namespace troupe::gemini
