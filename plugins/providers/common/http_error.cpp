// http_error.cpp: mapping vendor errors to CallError (see http_error.h).
#include "common/http_error.h"

#include <algorithm>

#include "common/text.h"

namespace troupe::kit {
namespace {

using nlohmann::json;

std::string string_field(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  return "";
}

// The contract's context-length signals, whichever vendor sent them.
bool is_context_length(const VendorError& e) {
  std::string message = ascii_lower(e.message);
  return e.code == "context_length_exceeded" || e.type == "context_length_exceeded" ||
         contains(message, "prompt is too long") ||
         contains(message, "exceeds the maximum number of tokens") ||
         contains(message, "maximum context length");
}

bool is_insufficient_quota(const VendorError& e) {
  return e.code == "insufficient_quota" || e.type == "insufficient_quota";
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 529:
      return "Overloaded";
    default:
      return "";
  }
}

// The status of an error kind named by a vendor's type or code (lowercased), if known.
std::optional<CallError> status_for_kind(const std::string& kind) {
  struct Entry {
    const char* kind;
    troupe_status_t status;
    bool retryable;
  };
  static const Entry table[] = {
      {"invalid_request_error", TROUPE_INVALID_ARGUMENT, false},
      {"invalid_argument", TROUPE_INVALID_ARGUMENT, false},
      {"failed_precondition", TROUPE_INVALID_ARGUMENT, false},
      {"authentication_error", TROUPE_AUTH, false},
      {"permission_error", TROUPE_AUTH, false},
      {"unauthenticated", TROUPE_AUTH, false},
      {"permission_denied", TROUPE_AUTH, false},
      {"invalid_api_key", TROUPE_AUTH, false},
      {"not_found_error", TROUPE_NOT_FOUND, false},
      {"not_found", TROUPE_NOT_FOUND, false},
      {"model_not_found", TROUPE_NOT_FOUND, false},
      {"request_too_large", TROUPE_TOO_LARGE, false},
      {"rate_limit_error", TROUPE_RATE_LIMITED, true},
      {"rate_limit_exceeded", TROUPE_RATE_LIMITED, true},
      {"resource_exhausted", TROUPE_RATE_LIMITED, true},
      {"billing_error", TROUPE_BUDGET_EXCEEDED, false},
      {"overloaded_error", TROUPE_UNAVAILABLE, true},
      {"api_error", TROUPE_UNAVAILABLE, true},
      {"server_error", TROUPE_UNAVAILABLE, true},
      {"unavailable", TROUPE_UNAVAILABLE, true},
      {"internal", TROUPE_UNAVAILABLE, true},
      {"service_unavailable", TROUPE_UNAVAILABLE, true},
      {"timeout_error", TROUPE_TIMEOUT, true},
      {"deadline_exceeded", TROUPE_TIMEOUT, true},
  };
  for (const Entry& e : table)
    if (kind == e.kind) return CallError{e.status, "", e.retryable, 0};
  return std::nullopt;
}

}  // namespace

// {"message","type","code"}: OpenAI's error object; vLLM-style servers put a numeric HTTP
// status in "code".
static VendorError read_openai_error_object(const json& e) {
  VendorError out;
  out.found = true;
  out.message = string_field(e, "message");
  out.type = string_field(e, "type");
  if (auto code = e.find("code"); code != e.end() && code->is_number_integer()) {
    out.http_status = code->get<int>();
  } else {
    out.code = string_field(e, "code");
  }
  return out;
}

VendorError read_openai_error(const json& body) {
  VendorError out;
  if (!body.is_object()) return out;
  if (string_field(body, "object") == "error") return read_openai_error_object(body);  // vLLM
  auto it = body.find("error");
  if (it == body.end()) return out;
  if (it->is_string()) {  // some compatible servers send {"error": "text"}
    out.found = true;
    out.message = it->get<std::string>();
    return out;
  }
  if (!it->is_object()) return out;
  return read_openai_error_object(*it);
}

VendorError read_anthropic_error(const json& body) {
  VendorError out;
  if (!body.is_object()) return out;
  auto it = body.find("error");
  if (it == body.end() || !it->is_object()) return out;
  out.found = true;
  out.message = string_field(*it, "message");
  out.type = string_field(*it, "type");
  return out;
}

VendorError read_gemini_error(const json& body) {
  VendorError out;
  const json* doc = &body;
  if (body.is_array() && body.size() == 1) doc = &body[0];  // streamGenerateContent wraps it
  if (!doc->is_object()) return out;
  auto it = doc->find("error");
  if (it == doc->end() || !it->is_object()) return out;
  out.found = true;
  out.message = string_field(*it, "message");
  out.type = string_field(*it, "status");
  if (auto code = it->find("code"); code != it->end() && code->is_number_integer())
    out.http_status = code->get<int>();
  if (auto details = it->find("details"); details != it->end() && details->is_array()) {
    for (const json& d : *details) {
      if (string_field(d, "@type") != "type.googleapis.com/google.rpc.RetryInfo") continue;
      if (auto ms = parse_google_duration(string_field(d, "retryDelay")))
        out.retry_after_ms = static_cast<uint32_t>(std::min<uint64_t>(*ms, UINT32_MAX));
      break;
    }
  }
  return out;
}

VendorError read_ollama_error(const json& body) {
  VendorError out;
  if (!body.is_object()) return out;
  auto it = body.find("error");
  if (it == body.end() || !it->is_string()) return out;
  out.found = true;
  out.message = it->get<std::string>();
  return out;
}

CallError status_for_http(int http_status) {
  auto make = [](troupe_status_t s, bool retryable) { return CallError{s, "", retryable, 0}; };
  switch (http_status) {
    case 400:
    case 422:
      return make(TROUPE_INVALID_ARGUMENT, false);
    case 401:
    case 403:
      return make(TROUPE_AUTH, false);
    case 402:
      return make(TROUPE_BUDGET_EXCEEDED, false);
    case 404:
      return make(TROUPE_NOT_FOUND, false);
    case 408:
      return make(TROUPE_TIMEOUT, true);
    case 413:
      return make(TROUPE_TOO_LARGE, false);
    case 429:
      return make(TROUPE_RATE_LIMITED, true);
    case 504:
      return make(TROUPE_TIMEOUT, true);
    default:
      break;
  }
  if (http_status >= 500 && http_status <= 599) return make(TROUPE_UNAVAILABLE, true);
  if (http_status >= 400 && http_status <= 499) return make(TROUPE_INVALID_ARGUMENT, false);
  return make(TROUPE_TRANSPORT, false);  // 1xx, 3xx: nothing we can use
}

CallError map_http_error(std::string_view vendor, int http_status, const HeaderList& headers,
                         std::string_view body, const ErrorReader& reader,
                         std::string_view request_id, int64_t now_unix_ms) {
  VendorError vendor_error;
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_discarded() && reader) vendor_error = reader(parsed);

  CallError error = status_for_http(http_status);
  if ((http_status == 400 || http_status == 422) && is_context_length(vendor_error)) {
    error = CallError{TROUPE_TOO_LARGE, "", false, 0};
  } else if (http_status == 429 && is_insufficient_quota(vendor_error)) {
    error = CallError{TROUPE_BUDGET_EXCEEDED, "", false, 0};
  }

  std::string detail;
  if (vendor_error.found && !vendor_error.message.empty()) {
    detail = clean_message(vendor_error.message);
  } else if (parsed.is_discarded() && !body.empty() && body.front() != '<') {
    detail = clean_message(body);  // a plain-text error (not an HTML error page)
  } else {
    detail = reason_phrase(http_status);
  }
  if (http_status >= 300 && http_status < 400) detail += " (redirects are not followed)";
  error.message = std::string(vendor) + ": HTTP " + std::to_string(http_status) +
                  (detail.empty() ? "" : ": " + detail) + request_suffix(request_id);

  if (error.retryable) {
    error.retry_after_ms = retry_after_ms(headers, now_unix_ms);
    if (error.retry_after_ms == 0) error.retry_after_ms = vendor_error.retry_after_ms;
  }
  return error;
}

CallError map_vendor_error(std::string_view vendor, const VendorError& e,
                           std::string_view request_id) {
  CallError error{TROUPE_UNAVAILABLE, "", true, 0};
  std::string type = ascii_lower(e.type), code = ascii_lower(e.code);
  if (is_context_length(e)) {
    error = CallError{TROUPE_TOO_LARGE, "", false, 0};
  } else if (is_insufficient_quota(e)) {
    error = CallError{TROUPE_BUDGET_EXCEEDED, "", false, 0};
  } else if (auto by_code = status_for_kind(code)) {
    error = *by_code;
  } else if (auto by_type = status_for_kind(type)) {
    error = *by_type;
  } else if (e.http_status >= 400) {
    error = status_for_http(e.http_status);
  }
  std::string kind = !e.type.empty() ? e.type : e.code;
  std::string message = clean_message(e.message.empty() ? "no message" : e.message);
  error.message = std::string(vendor) + ": " + (kind.empty() ? "" : clean_message(kind) + ": ") +
                  message + request_suffix(request_id);
  if (error.retryable) error.retry_after_ms = e.retry_after_ms;
  return error;
}

std::string clean_message(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = 1;
    bool valid = true;
    if (c >= 0x80) {  // a multi-byte sequence: check its length and continuation bytes
      if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
        len = 2;
      } else if ((c & 0xF0) == 0xE0) {
        len = 3;
      } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
        len = 4;
      } else {
        valid = false;
      }
      if (valid && i + len > text.size()) valid = false;
      for (size_t k = 1; valid && k < len; ++k)
        if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) valid = false;
      if (!valid) len = 1;
    }
    if (!valid) {
      out.push_back('?');
    } else if (len == 1 && (c < 0x20 || c == 0x7F)) {
      out.push_back(' ');  // newlines, tabs, escapes: one line, no terminal control
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();  // from a final newline
  return out;
}

std::string request_suffix(std::string_view request_id) {
  if (request_id.empty()) return "";
  return " (request " + clean_message(request_id) + ")";
}

}  // namespace troupe::kit
