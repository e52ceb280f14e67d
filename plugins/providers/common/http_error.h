// http_error.h: vendor errors -> CallError (status, message, retryable, retry_after_ms).
//
// The mapping of the provider contract (plugins/providers/common/README.md):
//   400/422 INVALID_ARGUMENT, except a context-length error -> TOO_LARGE
//   401/403 AUTH; 402 BUDGET_EXCEEDED; 404 NOT_FOUND; 408 TIMEOUT (retryable); 413 TOO_LARGE
//   429 RATE_LIMITED (retryable), except openai "insufficient_quota" -> BUDGET_EXCEEDED
//   504 TIMEOUT (retryable); 500/502/503/529 and every other 5xx UNAVAILABLE (retryable)
//   other 4xx INVALID_ARGUMENT; 1xx/3xx TRANSPORT (redirects are not followed)
// Message: "<vendor>: HTTP <code>: <the vendor's message>" plus " (request <id>)" when the id
// is known. Header values never appear in messages. Nothing is cut here: the host redacts
// secrets and then cuts the message (a cut made first could leave part of a key the host no
// longer recognizes; decision 0013), and an error body the driver could not keep whole
// (chat_call.cpp) is not shown at all.
// retry_after_ms (retryable errors only): the headers (retry_after.h), else the body's hint.
//
// Each vendor's error body has its own shape; a reader turns the parsed body into a
// VendorError. The four vendors' readers are here so every plugin maps errors the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/call_error.h"
#include "common/retry_after.h"

namespace troupe::kit {

// What a vendor's error object says.
struct VendorError {
  bool found = false;           // the body had the vendor's error shape
  std::string message;          // the human message
  std::string type;             // "invalid_request_error", "overloaded_error", "RESOURCE_EXHAUSTED"
  std::string code;             // "context_length_exceeded", "insufficient_quota", ...
  int http_status = 0;          // a status code inside the body (gemini "code": 429), else 0
  uint32_t retry_after_ms = 0;  // a hint inside the body (google RetryInfo), else 0
};

// Reads a parsed error body (or an error object inside a stream); found=false when the JSON
// is not that vendor's error shape.
using ErrorReader = std::function<VendorError(const nlohmann::json& body)>;

// openai:    {"error":{"message","type","code","param"}}
VendorError read_openai_error(const nlohmann::json& body);
// anthropic: {"type":"error","error":{"type","message"}}
VendorError read_anthropic_error(const nlohmann::json& body);
// gemini:    {"error":{"code","message","status","details":[{"@type":"...RetryInfo",
//            "retryDelay":"30s"}]}} (also a one-element array of that, as some proxies send)
VendorError read_gemini_error(const nlohmann::json& body);
// ollama:    {"error":"..."}
VendorError read_ollama_error(const nlohmann::json& body);

// A non-2xx HTTP response -> CallError, as described above. body may be anything (JSON of
// the vendor's shape, HTML, empty); now_unix_ms is for HTTP-date / RFC 3339 hints.
CallError map_http_error(std::string_view vendor, int http_status, const HeaderList& headers,
                         std::string_view body, const ErrorReader& reader,
                         std::string_view request_id, int64_t now_unix_ms);

// An error object that arrived inside a 2xx response or stream, mapped by its type or code
// like the HTTP error of that kind (overloaded_error -> UNAVAILABLE, rate_limit_error ->
// RATE_LIMITED, ...); unknown kinds are UNAVAILABLE, retryable. Message:
// "<vendor>: <type or code>: <message>" (+ request id).
CallError map_vendor_error(std::string_view vendor, const VendorError& error,
                           std::string_view request_id);

// The status and retryability of a bare HTTP status code (no body knowledge).
CallError status_for_http(int http_status);

// A vendor message made safe to show: valid UTF-8 (bad bytes become '?'), control
// characters as spaces, trailing spaces dropped. Never shortened (see above).
std::string clean_message(std::string_view text);

// " (request <id>)" or "" when id is empty.
std::string request_suffix(std::string_view request_id);

}  // namespace troupe::kit
