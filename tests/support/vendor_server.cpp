// vendor_server.cpp: the fake LLM vendor — request parsing, the reply "brain", the four wire
// formats (plain and streamed) and the faults.
#include "support/vendor_server.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace troupe::test {
namespace {

using json = nlohmann::json;
// Replies are written with their fields in the vendors' order (id and type first).
using ojson = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// Small helpers

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

std::string to_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Length of the UTF-8 sequence that starts with byte c (1 for stray continuation bytes).
size_t utf8_sequence_length(unsigned char c) {
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}

size_t utf8_code_points(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += utf8_sequence_length(static_cast<unsigned char>(s[i])))
    ++n;
  return n;
}

// Splits text into pieces of `per_piece` code points (the last one may be shorter); never
// inside a code point, so every piece is valid UTF-8 and a valid JSON string.
std::vector<std::string> split_code_points(const std::string& text, size_t per_piece) {
  std::vector<std::string> pieces;
  if (per_piece == 0) per_piece = 1;
  size_t start = 0;
  size_t i = 0;
  size_t count = 0;
  while (i < text.size()) {
    i += utf8_sequence_length(static_cast<unsigned char>(text[i]));
    if (i > text.size()) i = text.size();
    if (++count == per_piece) {
      pieces.push_back(text.substr(start, i - start));
      start = i;
      count = 0;
    }
  }
  if (start < text.size()) pieces.push_back(text.substr(start));
  return pieces;
}

// The text as a stream sends it: about four pieces, at most 16 Ki code points each.
std::vector<std::string> stream_pieces(const std::string& text) {
  size_t n = utf8_code_points(text);
  size_t per_piece = (n + 3) / 4;
  if (per_piece > 16384) per_piece = 16384;
  return split_code_points(text, per_piece);
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string rfc3339(std::time_t t, const char* fraction = "") {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf) + fraction + "Z";
}

// The current second plus `seconds`: dates have second resolution, so the wait a client
// computes from it is more than seconds - 1 and at most `seconds`.
std::time_t seconds_ahead(int seconds) {
  return std::time(nullptr) + seconds;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int value = 0;
      if (std::sscanf(std::string(s.substr(i + 1, 2)).c_str(), "%2x", &value) == 1) {
        out += static_cast<char>(value);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string query_param(const std::string& target, const std::string& name) {
  size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::string query = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string::npos) end = query.size();
    std::string pair = query.substr(pos, end - pos);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    pos = end + 1;
  }
  return "";
}

// The text of a message's content: a string, or an array of parts/blocks with "text".
std::string content_text(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string text;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (part.is_string()) {
        text += part.get<std::string>();
      } else if (part.is_object() && part.contains("text") && part["text"].is_string()) {
        std::string type = part.value("type", "text");
        if (type == "text" || type == "input_text") {
          if (!text.empty()) text += "\n";
          text += part["text"].get<std::string>();
        }
      }
    }
  }
  return text;
}

const json* member(const json& obj, const char* camel, const char* snake) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(camel);
  if (it != obj.end()) return &*it;
  it = obj.find(snake);
  if (it != obj.end()) return &*it;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Structured output: an instance generated from a JSON Schema (required properties only;
// strings "example", numbers 1, booleans true, arrays one item, enums their first value).

json generate_from_schema(const json& schema, const json& root, int depth) {
  if (depth > 24 || !schema.is_object()) return "example";
  if (auto ref = schema.find("$ref"); ref != schema.end() && ref->is_string()) {
    std::string pointer = ref->get<std::string>();
    if (starts_with(pointer, "#")) {
      try {
        return generate_from_schema(root.at(json::json_pointer(pointer.substr(1))), root,
                                    depth + 1);
      } catch (const std::exception&) {
        return "example";
      }
    }
    return "example";
  }
  if (schema.contains("const")) return schema["const"];
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array() && !e->empty())
    return (*e)[0];
  for (const char* key : {"anyOf", "oneOf", "allOf"}) {
    if (auto alt = schema.find(key); alt != schema.end() && alt->is_array() && !alt->empty()) {
      // The first alternative that is not just "null".
      for (const auto& option : *alt)
        if (!(option.is_object() && option.value("type", json()) == "null"))
          return generate_from_schema(option, root, depth + 1);
      return nullptr;
    }
  }
  std::string type;
  if (auto t = schema.find("type"); t != schema.end()) {
    if (t->is_string()) {
      type = t->get<std::string>();
    } else if (t->is_array()) {
      for (const auto& option : *t)
        if (option.is_string() && to_lower(option.get<std::string>()) != "null") {
          type = option.get<std::string>();
          break;
        }
      if (type.empty()) type = "null";
    }
  }
  type = to_lower(type);  // Gemini's OpenAPI subset writes OBJECT, STRING, ...
  if (type.empty()) {
    if (schema.contains("properties"))
      type = "object";
    else if (schema.contains("items"))
      type = "array";
    else
      type = "string";
  }
  if (type == "object") {
    json out = json::object();
    const json* properties = schema.contains("properties") ? &schema["properties"] : nullptr;
    if (auto req = schema.find("required"); req != schema.end() && req->is_array()) {
      for (const auto& name : *req) {
        if (!name.is_string()) continue;
        std::string key = name.get<std::string>();
        if (properties != nullptr && properties->is_object() && properties->contains(key))
          out[key] = generate_from_schema((*properties)[key], root, depth + 1);
        else
          out[key] = "example";
      }
    }
    return out;
  }
  if (type == "array") {
    json item = "example";
    if (auto items = schema.find("items"); items != schema.end()) {
      if (items->is_array())
        item =
            items->empty() ? json("example") : generate_from_schema((*items)[0], root, depth + 1);
      else
        item = generate_from_schema(*items, root, depth + 1);
    }
    return json::array({item});
  }
  if (type == "integer" || type == "number") return 1;
  if (type == "boolean") return true;
  if (type == "null") return nullptr;
  return "example";
}

json generate_from_schema(const json& schema) {
  return generate_from_schema(schema, schema, 0);
}

// ---------------------------------------------------------------------------------------------
// Faults
//
//   rate-limit-retry-after       429 + Retry-After: 2
//   rate-limit-retry-after-date  429 + Retry-After: an HTTP-date ~3 s ahead
//   rate-limit-retry-after-ms    429 + retry-after-ms: 1500 (and Retry-After: 2, which loses)
//   rate-limit-reset             429 + the vendor's own hint: openai x-ratelimit-reset-requests
//                                "2s" and -tokens "1.5s"; anthropic
//                                anthropic-ratelimit-requests-reset RFC 3339 ~2 s ahead; gemini
//                                RetryInfo retryDelay "2s" in the body; ollama none
//   http-NNN                     that status with the vendor's error body (openai 502: the HTML
//                                page a proxy sends)
//   insufficient-quota           openai 429 code insufficient_quota; anthropic 400 "credit
//                                balance is too low"; gemini 429 RESOURCE_EXHAUSTED with a
//                                QuotaFailure; ollama 429
//   context-too-long             400 with the vendor's context-length message
//   stream-error                 streamed: two events, then the vendor's in-stream error
//                                (anthropic overloaded_error, openai server_error chunk, gemini
//                                UNAVAILABLE chunk, ollama {"error"} line); not streamed: the
//                                same error as an HTTP status (529, 500, 503, 500)
//   slow-headers                 the normal reply, its headers after 3 s
//   slow-body                    the normal reply in 5 pieces 300 ms apart
//   reset-mid-stream             two events (or half the body), then a TCP RST
//   malformed-json               200 with broken JSON (streamed: one broken event mid-stream)
//   split-bytes                  the whole response one byte per write, 1 ms apart
//   utf8-split                   "héllo wörld — 日本語 🎉", written in pieces cut inside
//                                multi-byte code points
//   no-terminator                streamed: the vendor's end marker is missing ([DONE],
//                                message_stop, finishReason, "done": true); not streamed: the
//                                body delimited by closing the connection (valid: succeeds)
//   huge                         a 20 MiB text answer
//   hang                         nothing at all, until the client goes away

const std::vector<std::string> kFaults = {"rate-limit-retry-after",
                                          "rate-limit-retry-after-date",
                                          "rate-limit-retry-after-ms",
                                          "rate-limit-reset",
                                          "http-400",
                                          "http-401",
                                          "http-403",
                                          "http-404",
                                          "http-408",
                                          "http-413",
                                          "http-500",
                                          "http-502",
                                          "http-503",
                                          "http-504",
                                          "http-529",
                                          "insufficient-quota",
                                          "context-too-long",
                                          "stream-error",
                                          "slow-headers",
                                          "slow-body",
                                          "reset-mid-stream",
                                          "malformed-json",
                                          "split-bytes",
                                          "utf8-split",
                                          "no-terminator",
                                          "huge",
                                          "hang"};

// The HTTP status of an error fault; 0 for faults that are not an HTTP error.
int fault_status(Vendor vendor, std::string_view fault) {
  if (starts_with(fault, "rate-limit-")) return 429;
  if (starts_with(fault, "http-")) return std::atoi(std::string(fault.substr(5)).c_str());
  if (fault == "insufficient-quota") return vendor == Vendor::anthropic ? 400 : 429;
  if (fault == "context-too-long") return 400;
  return 0;
}

// The HTTP status stream-error uses when the request does not stream.
int stream_error_status(Vendor vendor) {
  switch (vendor) {
    case Vendor::anthropic:
      return 529;
    case Vendor::gemini:
      return 503;
    default:
      return 500;
  }
}

struct ErrorInfo {
  std::string type;  // openai type, anthropic error.type, gemini status
  std::string code;  // openai code ("" = null)
  std::string message;
};

std::string masked_key(const std::string& key) {
  if (key.size() < 12) return "****";
  return key.substr(0, 8) + "****" + key.substr(key.size() - 4);
}

ErrorInfo error_info(Vendor vendor, int status, std::string_view fault, const std::string& model,
                     const std::string& key) {
  ErrorInfo e;
  const bool quota = fault == "insufficient-quota";
  const bool context = fault == "context-too-long";
  switch (vendor) {
    case Vendor::openai:
      if (context) {
        e = {"invalid_request_error", "context_length_exceeded",
             "This model's maximum context length is 128000 tokens. However, your messages "
             "resulted in 210000 tokens. Please reduce the length of the messages."};
      } else if (quota) {
        e = {"insufficient_quota", "insufficient_quota",
             "You exceeded your current quota, please check your plan and billing details. For "
             "more information on this error, read the docs: "
             "https://platform.openai.com/docs/guides/error-codes/api-errors."};
      } else if (status == 400) {
        e = {"invalid_request_error", "invalid_value",
             "Invalid value for 'temperature': expected a number between 0 and 2."};
      } else if (status == 401) {
        e = {"invalid_request_error", "invalid_api_key",
             "Incorrect API key provided: " + masked_key(key) +
                 ". You can find your API key at https://platform.openai.com/account/api-keys."};
      } else if (status == 403) {
        e = {"request_forbidden", "unsupported_country_region_territory",
             "Country, region, or territory not supported"};
      } else if (status == 404) {
        e = {"invalid_request_error", "model_not_found",
             "The model `" + model + "` does not exist or you do not have access to it."};
      } else if (status == 408) {
        e = {"timeout", "", "Request timed out."};
      } else if (status == 413) {
        e = {"invalid_request_error", "request_too_large",
             "Request too large: the request body exceeds the maximum size."};
      } else if (status == 429) {
        e = {"requests", "rate_limit_exceeded",
             "Rate limit reached for " + model +
                 " in organization org-fake on requests per min (RPM): Limit 3, Used 3, "
                 "Requested 1. Please try again in 2s."};
      } else if (status == 503) {
        e = {"server_error", "", "The engine is currently overloaded, please try again later."};
      } else if (status == 504) {
        e = {"server_error", "", "Gateway timeout: the upstream did not answer in time."};
      } else {
        e = {"server_error", "",
             "The server had an error while processing your request. Sorry about that!"};
      }
      break;
    case Vendor::anthropic:
      if (context) {
        e = {"invalid_request_error", "", "prompt is too long: 210000 tokens > 200000 maximum"};
      } else if (quota) {
        e = {"invalid_request_error", "",
             "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
             "Billing to upgrade or purchase credits."};
      } else if (status == 400) {
        e = {"invalid_request_error", "", "messages: at least one message is required"};
      } else if (status == 401) {
        e = {"authentication_error", "", "invalid x-api-key"};
      } else if (status == 403) {
        e = {"permission_error", "", "Your API key does not have permission to use this resource."};
      } else if (status == 404) {
        e = {"not_found_error", "", "model: " + model};
      } else if (status == 413) {
        e = {"request_too_large", "", "Request exceeds the maximum allowed number of bytes."};
      } else if (status == 429) {
        e = {"rate_limit_error", "",
             "This request would exceed the rate limit for your organization of 50 requests per "
             "minute. Please try again later."};
      } else if (status == 504) {
        e = {"timeout_error", "", "Request timed out while waiting for the model."};
      } else if (status == 529) {
        e = {"overloaded_error", "", "Overloaded"};
      } else {
        e = {"api_error", "", "Internal server error"};
      }
      break;
    case Vendor::gemini:
      if (context) {
        e = {"INVALID_ARGUMENT", "",
             "The input token count (1200000) exceeds the maximum number of tokens allowed "
             "(1048576)."};
      } else if (quota) {
        e = {"RESOURCE_EXHAUSTED", "",
             "You exceeded your current quota, please check your plan and billing details."};
      } else if (status == 400) {
        e = {"INVALID_ARGUMENT", "", "Request contains an invalid argument."};
      } else if (status == 401) {
        e = {"UNAUTHENTICATED", "",
             "Request had invalid authentication credentials. Expected OAuth 2 access token, "
             "login cookie or other valid authentication credential."};
      } else if (status == 403) {
        e = {"PERMISSION_DENIED", "",
             "Method doesn't allow unregistered callers (callers "
             "without established identity). Please use API Key or "
             "other form of API consumer identity to call this API."};
      } else if (status == 404) {
        e = {"NOT_FOUND", "",
             "models/" + model +
                 " is not found for API version v1beta, or is not supported "
                 "for generateContent."};
      } else if (status == 408) {
        e = {"DEADLINE_EXCEEDED", "", "The request timed out."};
      } else if (status == 413) {
        e = {"INVALID_ARGUMENT", "", "Request payload size exceeds the limit: 20971520 bytes."};
      } else if (status == 429) {
        e = {"RESOURCE_EXHAUSTED", "", "Resource has been exhausted (e.g. check quota)."};
      } else if (status == 500) {
        e = {"INTERNAL", "",
             "An internal error has occurred. Please retry or report in "
             "https://developers.generativeai.google/guide/troubleshooting"};
      } else if (status == 504) {
        e = {"DEADLINE_EXCEEDED", "", "The request timed out. Please try again."};
      } else {
        e = {"UNAVAILABLE", "", "The model is overloaded. Please try again later."};
      }
      break;
    case Vendor::ollama:
      if (context) {
        e = {"", "", "the input length exceeds the context length (num_ctx 2048)"};
      } else if (status == 404) {
        e = {"", "", "model \"" + model + "\" not found, try pulling it first"};
      } else if (status == 429) {
        e = {"", "", "too many concurrent requests: server busy, please try again"};
      } else if (status == 401 || status == 403) {
        e = {"", "", "unauthorized"};
      } else if (status == 400) {
        e = {"", "", "invalid request: messages must not be empty"};
      } else if (status >= 500) {
        e = {"", "", "llama runner process has terminated: exit status 2"};
      } else {
        e = {"", "", "request failed with status " + std::to_string(status)};
      }
      break;
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// One chat request as understood, and what it gets.

struct Chat {
  SeenChat seen;
  std::map<std::string, json> tool_schemas;  // tool name -> its parameters schema
  bool include_usage = false;                // openai stream_options.include_usage
  bool gemini_sse = true;                    // gemini: alt=sse (else a JSON array stream)
};

void parse_openai_like(const json& body, Chat& chat, bool ollama) {
  SeenChat& seen = chat.seen;
  seen.model = body.value("model", "");
  seen.stream =
      body.contains("stream") && body["stream"].is_boolean() ? body["stream"].get<bool>() : ollama;
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object())
    chat.include_usage = so->value("include_usage", false);
  const json messages = body.value("messages", json::array());
  if (messages.is_array()) {
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
      if (it->is_object() && it->value("role", "") == "user") {
        seen.last_user = content_text(it->value("content", json("")));
        break;
      }
    }
    std::vector<std::string> results;
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
      if (!it->is_object()) break;
      std::string role = it->value("role", "");
      if (role != "tool" && role != "function") break;
      results.push_back(content_text(it->value("content", json(""))));
    }
    seen.ends_with_tool_results = !results.empty();
    seen.tool_results.assign(results.rbegin(), results.rend());
  }
  if (auto tools = body.find("tools"); tools != body.end() && tools->is_array()) {
    for (const auto& tool : *tools) {
      const json fn = tool.value("function", json::object());
      std::string name = fn.value("name", "");
      if (name.empty()) continue;
      seen.tools.push_back(name);
      chat.tool_schemas[name] = fn.value("parameters", json::object());
    }
  }
  if (auto choice = body.find("tool_choice"); choice != body.end()) {
    if (choice->is_string() && *choice == "required" && !seen.tools.empty()) {
      seen.forced_tool = seen.tools.front();
    } else if (choice->is_object()) {
      seen.forced_tool = choice->value("function", json::object()).value("name", "");
    }
  }
  if (ollama) {
    if (auto format = body.find("format"); format != body.end()) {
      if (format->is_object())
        seen.schema = *format;
      else if (*format == "json")
        seen.schema = json::object();
    }
  } else if (auto rf = body.find("response_format"); rf != body.end() && rf->is_object()) {
    std::string type = rf->value("type", "");
    if (type == "json_schema")
      seen.schema = rf->value("json_schema", json::object()).value("schema", json::object());
    else if (type == "json_object")
      seen.schema = json::object();
  }
}

void parse_anthropic(const json& body, Chat& chat) {
  SeenChat& seen = chat.seen;
  seen.model = body.value("model", "");
  seen.stream = body.value("stream", false);
  const json messages = body.value("messages", json::array());
  if (messages.is_array()) {
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
      if (!it->is_object() || it->value("role", "") != "user") continue;
      std::string text = content_text(it->value("content", json("")));
      if (!text.empty()) {
        seen.last_user = text;
        break;
      }
    }
    if (!messages.empty() && messages.back().is_object() &&
        messages.back().value("role", "") == "user") {
      const json content = messages.back().value("content", json(""));
      if (content.is_array()) {
        for (const auto& block : content) {
          if (block.is_object() && block.value("type", "") == "tool_result") {
            seen.tool_results.push_back(content_text(block.value("content", json(""))));
            seen.ends_with_tool_results = true;
          }
        }
      }
    }
  }
  if (auto tools = body.find("tools"); tools != body.end() && tools->is_array()) {
    for (const auto& tool : *tools) {
      std::string name = tool.value("name", "");
      if (name.empty()) continue;
      seen.tools.push_back(name);
      chat.tool_schemas[name] = tool.value("input_schema", json::object());
    }
  }
  if (auto choice = body.find("tool_choice"); choice != body.end() && choice->is_object()) {
    std::string type = choice->value("type", "");
    if (type == "tool")
      seen.forced_tool = choice->value("name", "");
    else if (type == "any" && !seen.tools.empty())
      seen.forced_tool = seen.tools.front();
  }
}

std::string function_response_text(const json& response) {
  if (response.is_string()) return response.get<std::string>();
  if (response.is_object()) {
    for (const char* key : {"result", "output", "content", "text"})
      if (response.contains(key) && response[key].is_string()) return response[key];
    if (response.size() == 1 && response.begin()->is_string()) return *response.begin();
  }
  return response.dump();
}

void parse_gemini(const json& body, Chat& chat) {
  SeenChat& seen = chat.seen;
  const json contents = body.value("contents", json::array());
  if (contents.is_array()) {
    for (auto it = contents.rbegin(); it != contents.rend(); ++it) {
      if (!it->is_object() || it->value("role", "user") != "user") continue;
      std::string text = content_text(it->value("parts", json::array()));
      if (!text.empty()) {
        seen.last_user = text;
        break;
      }
    }
    if (!contents.empty() && contents.back().is_object()) {
      for (const auto& part : contents.back().value("parts", json::array())) {
        const json* fr = member(part, "functionResponse", "function_response");
        if (fr == nullptr || !fr->is_object()) continue;
        seen.tool_results.push_back(function_response_text(fr->value("response", json())));
        seen.ends_with_tool_results = true;
      }
    }
  }
  if (auto tools = body.find("tools"); tools != body.end() && tools->is_array()) {
    for (const auto& tool : *tools) {
      const json* decls = member(tool, "functionDeclarations", "function_declarations");
      if (decls == nullptr || !decls->is_array()) continue;
      for (const auto& decl : *decls) {
        std::string name = decl.value("name", "");
        if (name.empty()) continue;
        seen.tools.push_back(name);
        const json* params = member(decl, "parametersJsonSchema", "parameters_json_schema");
        if (params == nullptr) params = member(decl, "parameters", "parameters");
        chat.tool_schemas[name] = params != nullptr ? *params : json::object();
      }
    }
  }
  if (const json* config = member(body, "toolConfig", "tool_config")) {
    if (const json* fcc = member(*config, "functionCallingConfig", "function_calling_config")) {
      if (fcc->is_object() && fcc->value("mode", "") == "ANY") {
        const json* allowed = member(*fcc, "allowedFunctionNames", "allowed_function_names");
        if (allowed != nullptr && allowed->is_array() && !allowed->empty() &&
            (*allowed)[0].is_string())
          seen.forced_tool = (*allowed)[0];
        else if (!seen.tools.empty())
          seen.forced_tool = seen.tools.front();
      }
    }
  }
  if (const json* gen = member(body, "generationConfig", "generation_config")) {
    const json* mime = member(*gen, "responseMimeType", "response_mime_type");
    if (mime != nullptr && *mime == "application/json") {
      const json* schema = member(*gen, "responseJsonSchema", "response_json_schema");
      if (schema == nullptr) schema = member(*gen, "responseSchema", "response_schema");
      seen.schema = schema != nullptr ? *schema : json::object();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering: what a reply looks like on the wire.

struct ToolOut {
  std::string id;
  std::string name;
  ojson arguments;
  std::string raw;   // raw_arguments, or "" when arguments is used
  std::string text;  // the arguments as text (raw or dumped)
};

struct Material {
  Vendor vendor = Vendor::openai;
  std::string model;
  uint64_t number = 0;  // the server's request counter
  std::string text;
  std::string reasoning;
  std::vector<ToolOut> tools;
  std::string finish;  // the vendor's own value
  FakeUsage usage;
  bool include_usage = false;
  bool terminate = true;  // send the vendor's end marker
  std::string request_id;
  std::vector<ojson> openai_deltas;  // FakeReply::openai_deltas
};

// What a handler writes: a status, headers, and the body as events (a stream) or one piece.
struct Rendered {
  int status = 200;
  TestHeaders headers;
  bool stream = false;
  std::vector<std::string> events;
};

std::string vendor_finish(Vendor vendor, const FakeReply& reply) {
  if (!reply.vendor_finish.empty()) return reply.vendor_finish;
  std::string finish = reply.finish;
  if (finish.empty()) finish = reply.tool_calls.empty() ? "stop" : "tool_calls";
  switch (vendor) {
    case Vendor::openai:
      return finish;
    case Vendor::anthropic:
      if (finish == "length") return "max_tokens";
      if (finish == "tool_calls") return "tool_use";
      if (finish == "content_filter") return "refusal";
      return "end_turn";
    case Vendor::gemini:
      if (finish == "length") return "MAX_TOKENS";
      if (finish == "content_filter") return "SAFETY";
      return "STOP";
    case Vendor::ollama:
      if (finish == "length") return "length";
      return "stop";
  }
  return finish;
}

std::string hex_id(uint64_t n, size_t width) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%0*llx", static_cast<int>(width),
                static_cast<unsigned long long>(n));
  return buf;
}

// A JSON value that stands for raw text in a dumped document (see splice_raw).
std::string raw_placeholder(size_t i) {
  return "\x01raw-arguments-" + std::to_string(i) + "\x01";
}

// Replaces each placeholder string (quoted, as dumped) with the tool's raw arguments.
std::string splice_raw(std::string body, const std::vector<ToolOut>& tools) {
  for (size_t i = 0; i < tools.size(); ++i) {
    if (tools[i].raw.empty()) continue;
    std::string quoted = ojson(raw_placeholder(i)).dump();
    size_t pos = body.find(quoted);
    if (pos != std::string::npos) body.replace(pos, quoted.size(), tools[i].raw);
  }
  return body;
}

ojson tool_arguments_value(const ToolOut& tool, size_t i) {
  return tool.raw.empty() ? tool.arguments : ojson(raw_placeholder(i));
}

// -- OpenAI ----------------------------------------------------------------------------------

ojson openai_usage(const FakeUsage& u) {
  return {{"prompt_tokens", u.input},
          {"completion_tokens", u.output},
          {"total_tokens", u.input + u.output},
          {"prompt_tokens_details", {{"cached_tokens", u.cached}, {"audio_tokens", 0}}},
          {"completion_tokens_details",
           {{"reasoning_tokens", u.reasoning},
            {"audio_tokens", 0},
            {"accepted_prediction_tokens", 0},
            {"rejected_prediction_tokens", 0}}}};
}

TestHeaders openai_headers(const std::string& request_id, const char* content_type) {
  return {{"Content-Type", content_type},
          {"x-request-id", request_id},
          {"openai-version", "2020-10-01"},
          {"openai-processing-ms", "42"}};
}

Rendered render_openai(const Material& m, bool stream) {
  Rendered r;
  r.stream = stream;
  const std::string id = "chatcmpl-fake" + hex_id(m.number, 8);
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  if (!stream) {
    r.headers = openai_headers(m.request_id, "application/json");
    ojson message = {
        {"role", "assistant"},
        {"content", m.text.empty() && !m.tools.empty() ? ojson(nullptr) : ojson(m.text)},
        {"refusal", nullptr},
        {"annotations", ojson::array()}};
    if (!m.reasoning.empty()) message["reasoning_content"] = m.reasoning;
    if (!m.tools.empty()) {
      ojson calls = ojson::array();
      for (const auto& t : m.tools)
        calls.push_back({{"id", t.id},
                         {"type", "function"},
                         {"function", {{"name", t.name}, {"arguments", t.text}}}});
      message["tool_calls"] = calls;
    }
    ojson body = {{"id", id},
                  {"object", "chat.completion"},
                  {"created", created},
                  {"model", m.model},
                  {"choices", ojson::array({{{"index", 0},
                                             {"message", message},
                                             {"logprobs", nullptr},
                                             {"finish_reason", m.finish}}})},
                  {"usage", openai_usage(m.usage)},
                  {"service_tier", "default"},
                  {"system_fingerprint", "fp_fake"}};
    r.events.push_back(body.dump());
    return r;
  }
  r.headers = openai_headers(m.request_id, "text/event-stream; charset=utf-8");
  auto chunk = [&](ojson delta, ojson finish) {
    ojson c = {{"id", id},
               {"object", "chat.completion.chunk"},
               {"created", created},
               {"model", m.model},
               {"service_tier", "default"},
               {"system_fingerprint", "fp_fake"},
               {"choices", ojson::array({{{"index", 0},
                                          {"delta", std::move(delta)},
                                          {"logprobs", nullptr},
                                          {"finish_reason", std::move(finish)}}})}};
    if (m.include_usage) c["usage"] = nullptr;
    r.events.push_back("data: " + c.dump() + "\n\n");
  };
  chunk({{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr);
  for (const auto& delta : m.openai_deltas)
    chunk(delta, nullptr);
  for (const auto& piece : stream_pieces(m.openai_deltas.empty() ? m.reasoning : ""))
    chunk({{"reasoning_content", piece}}, nullptr);
  for (const auto& piece : stream_pieces(m.openai_deltas.empty() ? m.text : ""))
    chunk({{"content", piece}}, nullptr);
  for (size_t i = 0; i < (m.openai_deltas.empty() ? m.tools.size() : 0); ++i) {
    const ToolOut& t = m.tools[i];
    chunk({{"tool_calls", ojson::array({{{"index", i},
                                         {"id", t.id},
                                         {"type", "function"},
                                         {"function", {{"name", t.name}, {"arguments", ""}}}}})}},
          nullptr);
    for (const auto& piece : split_code_points(t.text, (utf8_code_points(t.text) + 2) / 3))
      chunk({{"tool_calls", ojson::array({{{"index", i}, {"function", {{"arguments", piece}}}}})}},
            nullptr);
  }
  chunk(ojson::object(), m.finish);
  if (m.include_usage) {
    ojson c = {{"id", id},
               {"object", "chat.completion.chunk"},
               {"created", created},
               {"model", m.model},
               {"service_tier", "default"},
               {"system_fingerprint", "fp_fake"},
               {"choices", ojson::array()},
               {"usage", openai_usage(m.usage)}};
    r.events.push_back("data: " + c.dump() + "\n\n");
  }
  if (m.terminate) r.events.push_back("data: [DONE]\n\n");
  return r;
}

// -- Anthropic -------------------------------------------------------------------------------

ojson anthropic_usage(const FakeUsage& u, bool with_output, int64_t output) {
  int64_t uncached = u.input - u.cached;
  int64_t creation = uncached >= 2 ? 2 : 0;
  ojson usage = {{"input_tokens", uncached - creation},
                 {"cache_creation_input_tokens", creation},
                 {"cache_read_input_tokens", u.cached}};
  if (with_output) usage["output_tokens"] = output;
  usage["service_tier"] = "standard";
  return usage;
}

std::string sse_event(const char* name, const ojson& data) {
  return std::string("event: ") + name + "\ndata: " + data.dump() + "\n\n";
}

Rendered render_anthropic(const Material& m, bool stream) {
  Rendered r;
  r.stream = stream;
  const std::string id = "msg_fake" + hex_id(m.number, 16);
  r.headers = {{"Content-Type", stream ? "text/event-stream; charset=utf-8" : "application/json"},
               {"request-id", m.request_id},
               {"anthropic-organization-id", "00000000-0000-0000-0000-000000000000"}};
  if (!stream) {
    ojson content = ojson::array();
    if (!m.reasoning.empty())
      content.push_back(
          {{"type", "thinking"}, {"thinking", m.reasoning}, {"signature", "c2lnbmF0dXJl"}});
    if (!m.text.empty()) content.push_back({{"type", "text"}, {"text", m.text}});
    for (size_t i = 0; i < m.tools.size(); ++i)
      content.push_back({{"type", "tool_use"},
                         {"id", m.tools[i].id},
                         {"name", m.tools[i].name},
                         {"input", tool_arguments_value(m.tools[i], i)}});
    ojson body = {{"id", id},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", m.model},
                  {"content", content},
                  {"stop_reason", m.finish},
                  {"stop_sequence", nullptr},
                  {"usage", anthropic_usage(m.usage, true, m.usage.output)}};
    r.events.push_back(splice_raw(body.dump(), m.tools));
    return r;
  }
  ojson start_message = {{"id", id},
                         {"type", "message"},
                         {"role", "assistant"},
                         {"model", m.model},
                         {"content", ojson::array()},
                         {"stop_reason", nullptr},
                         {"stop_sequence", nullptr},
                         {"usage", anthropic_usage(m.usage, true, 1)}};
  r.events.push_back(
      sse_event("message_start", {{"type", "message_start"}, {"message", start_message}}));
  int index = 0;
  bool pinged = false;
  auto block_start = [&](const ojson& block) {
    r.events.push_back(
        sse_event("content_block_start",
                  {{"type", "content_block_start"}, {"index", index}, {"content_block", block}}));
    if (!pinged) {
      r.events.push_back(sse_event("ping", {{"type", "ping"}}));
      pinged = true;
    }
  };
  auto block_delta = [&](const ojson& delta) {
    r.events.push_back(
        sse_event("content_block_delta",
                  {{"type", "content_block_delta"}, {"index", index}, {"delta", delta}}));
  };
  auto block_stop = [&] {
    r.events.push_back(
        sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index}}));
    ++index;
  };
  if (!m.reasoning.empty()) {
    block_start({{"type", "thinking"}, {"thinking", ""}});
    for (const auto& piece : stream_pieces(m.reasoning))
      block_delta({{"type", "thinking_delta"}, {"thinking", piece}});
    block_delta({{"type", "signature_delta"}, {"signature", "c2lnbmF0dXJl"}});
    block_stop();
  }
  if (!m.text.empty() || (m.tools.empty() && m.reasoning.empty())) {
    block_start({{"type", "text"}, {"text", ""}});
    for (const auto& piece : stream_pieces(m.text))
      block_delta({{"type", "text_delta"}, {"text", piece}});
    block_stop();
  }
  for (const auto& t : m.tools) {
    block_start({{"type", "tool_use"}, {"id", t.id}, {"name", t.name}, {"input", ojson::object()}});
    block_delta({{"type", "input_json_delta"}, {"partial_json", ""}});
    for (const auto& piece : split_code_points(t.text, (utf8_code_points(t.text) + 2) / 3))
      block_delta({{"type", "input_json_delta"}, {"partial_json", piece}});
    block_stop();
  }
  r.events.push_back(sse_event("message_delta",
                               {{"type", "message_delta"},
                                {"delta", {{"stop_reason", m.finish}, {"stop_sequence", nullptr}}},
                                {"usage", {{"output_tokens", m.usage.output}}}}));
  if (m.terminate) r.events.push_back(sse_event("message_stop", {{"type", "message_stop"}}));
  return r;
}

// -- Gemini ----------------------------------------------------------------------------------

ojson gemini_usage(const FakeUsage& u) {
  ojson usage = {
      {"promptTokenCount", u.input},
      {"candidatesTokenCount", u.output - u.reasoning},
      {"totalTokenCount", u.input + u.output},
      {"promptTokensDetails", ojson::array({{{"modality", "TEXT"}, {"tokenCount", u.input}}})}};
  if (u.cached > 0) usage["cachedContentTokenCount"] = u.cached;
  if (u.reasoning > 0) usage["thoughtsTokenCount"] = u.reasoning;
  return usage;
}

Rendered render_gemini(const Material& m, bool stream, bool sse) {
  Rendered r;
  r.stream = stream;
  const std::string response_id = m.request_id;
  auto response = [&](ojson parts, bool last) {
    ojson candidate = {{"content", {{"parts", std::move(parts)}, {"role", "model"}}}, {"index", 0}};
    if (last && m.terminate) candidate["finishReason"] = m.finish;
    ojson usage =
        last ? gemini_usage(m.usage)
             : ojson{{"promptTokenCount", m.usage.input},
                     {"totalTokenCount", m.usage.input},
                     {"promptTokensDetails",
                      ojson::array({{{"modality", "TEXT"}, {"tokenCount", m.usage.input}}})}};
    return ojson{{"candidates", ojson::array({candidate})},
                 {"usageMetadata", usage},
                 {"modelVersion", m.model},
                 {"responseId", response_id}};
  };
  ojson tool_parts = ojson::array();
  for (size_t i = 0; i < m.tools.size(); ++i)
    tool_parts.push_back(
        {{"functionCall",
          {{"name", m.tools[i].name}, {"args", tool_arguments_value(m.tools[i], i)}}}});
  if (!stream) {
    r.headers = {{"Content-Type", "application/json; charset=UTF-8"}};
    ojson parts = ojson::array();
    if (!m.reasoning.empty()) parts.push_back({{"text", m.reasoning}, {"thought", true}});
    if (!m.text.empty() || m.tools.empty()) parts.push_back({{"text", m.text}});
    for (const auto& p : tool_parts)
      parts.push_back(p);
    r.events.push_back(splice_raw(response(parts, true).dump(), m.tools));
    return r;
  }
  r.headers = {{"Content-Type", sse ? "text/event-stream" : "application/json; charset=UTF-8"}};
  std::vector<ojson> chunks;
  for (const auto& piece : stream_pieces(m.reasoning))
    chunks.push_back(ojson::array({{{"text", piece}, {"thought", true}}}));
  for (const auto& piece : stream_pieces(m.text))
    chunks.push_back(ojson::array({{{"text", piece}}}));
  if (!tool_parts.empty()) chunks.push_back(tool_parts);
  if (chunks.empty()) chunks.push_back(ojson::array({{{"text", ""}}}));
  for (size_t i = 0; i < chunks.size(); ++i) {
    std::string data = splice_raw(response(chunks[i], i + 1 == chunks.size()).dump(), m.tools);
    if (sse)
      r.events.push_back("data: " + data + "\r\n\r\n");  // Gemini ends SSE lines with CRLF
    else
      r.events.push_back((i == 0 ? "[" : ",\r\n") + data + (i + 1 == chunks.size() ? "]" : ""));
  }
  return r;
}

// -- Ollama ----------------------------------------------------------------------------------

Rendered render_ollama(const Material& m, bool stream) {
  Rendered r;
  r.stream = stream;
  r.headers = {
      {"Content-Type", stream ? "application/x-ndjson" : "application/json; charset=utf-8"}};
  const std::string created = rfc3339(std::time(nullptr), ".000000");
  ojson tool_calls = ojson::array();
  for (size_t i = 0; i < m.tools.size(); ++i)
    tool_calls.push_back({{"function",
                           {{"index", i},
                            {"name", m.tools[i].name},
                            {"arguments", tool_arguments_value(m.tools[i], i)}}}});
  auto final_fields = [&](ojson& line) {
    line["done"] = true;
    line["done_reason"] = m.finish;
    line["total_duration"] = 512000000;
    line["load_duration"] = 2000000;
    line["prompt_eval_count"] = m.usage.input;
    line["prompt_eval_duration"] = 38000000;
    line["eval_count"] = m.usage.output;
    line["eval_duration"] = 470000000;
  };
  if (!stream) {
    ojson message = {{"role", "assistant"}, {"content", m.text}};
    if (!m.reasoning.empty()) message["thinking"] = m.reasoning;
    if (!tool_calls.empty()) message["tool_calls"] = tool_calls;
    ojson body = {{"model", m.model}, {"created_at", created}, {"message", message}};
    final_fields(body);
    r.events.push_back(splice_raw(body.dump(), m.tools));
    return r;
  }
  auto line = [&](ojson message) {
    ojson l = {{"model", m.model},
               {"created_at", created},
               {"message", std::move(message)},
               {"done", false}};
    r.events.push_back(splice_raw(l.dump(), m.tools) + "\n");
  };
  for (const auto& piece : stream_pieces(m.reasoning))
    line({{"role", "assistant"}, {"content", ""}, {"thinking", piece}});
  for (const auto& piece : stream_pieces(m.text))
    line({{"role", "assistant"}, {"content", piece}});
  if (!tool_calls.empty())
    line({{"role", "assistant"}, {"content", ""}, {"tool_calls", tool_calls}});
  if (m.terminate) {
    ojson last = {{"model", m.model},
                  {"created_at", created},
                  {"message", {{"role", "assistant"}, {"content", ""}}}};
    final_fields(last);
    r.events.push_back(last.dump() + "\n");
  }
  return r;
}

Rendered render(const Material& m, bool stream, bool gemini_sse) {
  switch (m.vendor) {
    case Vendor::openai:
      return render_openai(m, stream);
    case Vendor::anthropic:
      return render_anthropic(m, stream);
    case Vendor::gemini:
      return render_gemini(m, stream, gemini_sse);
    case Vendor::ollama:
      return render_ollama(m, stream);
  }
  return {};
}

// -- Errors ----------------------------------------------------------------------------------

// An HTTP error response in the vendor's shape; `fault` picks the message and extra headers.
Rendered render_error(Vendor vendor, int status, std::string_view fault, const std::string& model,
                      const std::string& request_id, const std::string& key,
                      const std::string& message = "") {
  Rendered r;
  r.status = status;
  ErrorInfo e = error_info(vendor, status, fault, model, key);
  if (!message.empty()) e.message = message;
  switch (vendor) {
    case Vendor::openai: {
      r.headers = {{"x-request-id", request_id}};
      if (status == 502) {
        // What the proxy in front of the API sends: an HTML page, not JSON.
        r.headers.emplace_back("Content-Type", "text/html");
        r.events.push_back(
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 "
            "Bad "
            "Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n");
        return r;
      }
      r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
      ojson error = {{"message", e.message},
                     {"type", e.type},
                     {"param", nullptr},
                     {"code", e.code.empty() ? ojson(nullptr) : ojson(e.code)}};
      r.events.push_back(ojson{{"error", error}}.dump(2) + "\n");
      break;
    }
    case Vendor::anthropic: {
      r.headers = {{"Content-Type", "application/json"}, {"request-id", request_id}};
      ojson body = {{"type", "error"},
                    {"error", {{"type", e.type}, {"message", e.message}}},
                    {"request_id", request_id}};
      r.events.push_back(body.dump());
      break;
    }
    case Vendor::gemini: {
      r.headers = {{"Content-Type", "application/json; charset=UTF-8"}};
      ojson error = {{"code", status}, {"message", e.message}, {"status", e.type}};
      if (fault == "rate-limit-reset") {
        error["details"] = ojson::array(
            {{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
              {"violations",
               ojson::array(
                   {{{"quotaMetric",
                      "generativelanguage.googleapis.com/generate_content_free_tier_requests"},
                     {"quotaId", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"},
                     {"quotaValue", "10"}}})}},
             {{"@type", "type.googleapis.com/google.rpc.RetryInfo"}, {"retryDelay", "2s"}}});
      } else if (fault == "insufficient-quota") {
        error["details"] = ojson::array(
            {{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
              {"violations",
               ojson::array(
                   {{{"quotaMetric",
                      "generativelanguage.googleapis.com/"
                      "generate_content_paid_tier_input_token_count"},
                     {"quotaId", "GenerateContentPaidTierInputTokensPerModelPerDay"}}})}}});
      } else if (status == 400) {
        error["details"] = ojson::array({{{"@type", "type.googleapis.com/google.rpc.BadRequest"},
                                          {"fieldViolations", ojson::array()}}});
      }
      r.events.push_back(ojson{{"error", error}}.dump(2) + "\n");
      break;
    }
    case Vendor::ollama:
      r.headers = {{"Content-Type", "application/json; charset=utf-8"}};
      r.events.push_back(ojson{{"error", e.message}}.dump());
      break;
  }
  // Rate-limit hints.
  if (fault == "rate-limit-retry-after") {
    r.headers.emplace_back("Retry-After", "2");
  } else if (fault == "rate-limit-retry-after-date") {
    r.headers.emplace_back("Retry-After", http_date(seconds_ahead(3)));
  } else if (fault == "rate-limit-retry-after-ms") {
    r.headers.emplace_back("retry-after-ms", "1500");
    r.headers.emplace_back("Retry-After", "2");  // retry-after-ms is more precise and wins
  } else if (fault == "rate-limit-reset") {
    if (vendor == Vendor::openai) {
      r.headers.emplace_back("x-ratelimit-limit-requests", "500");
      r.headers.emplace_back("x-ratelimit-remaining-requests", "0");
      r.headers.emplace_back("x-ratelimit-reset-requests", "2s");
      r.headers.emplace_back("x-ratelimit-limit-tokens", "30000");
      r.headers.emplace_back("x-ratelimit-remaining-tokens", "0");
      r.headers.emplace_back("x-ratelimit-reset-tokens", "1.5s");
    } else if (vendor == Vendor::anthropic) {
      r.headers.emplace_back("anthropic-ratelimit-requests-limit", "50");
      r.headers.emplace_back("anthropic-ratelimit-requests-remaining", "0");
      r.headers.emplace_back("anthropic-ratelimit-requests-reset", rfc3339(seconds_ahead(2)));
      r.headers.emplace_back("anthropic-ratelimit-tokens-reset", rfc3339(std::time(nullptr)));
    }
  }
  return r;
}

// The error event of stream-error, in the vendor's in-stream shape.
std::string stream_error_event(Vendor vendor) {
  switch (vendor) {
    case Vendor::openai:
      return "data: " +
             ojson{{"error",
                    {{"message",
                      "The server had an error while processing your request. Sorry "
                      "about that!"},
                     {"type", "server_error"},
                     {"param", nullptr},
                     {"code", nullptr}}}}
                 .dump() +
             "\n\n";
    case Vendor::anthropic:
      return sse_event("error",
                       {{"type", "error"},
                        {"error", {{"type", "overloaded_error"}, {"message", "Overloaded"}}}});
    case Vendor::gemini:
      return "data: " +
             ojson{{"error",
                    {{"code", 503},
                     {"message", "The model is overloaded. Please try again later."},
                     {"status", "UNAVAILABLE"}}}}
                 .dump() +
             "\r\n\r\n";
    case Vendor::ollama:
      return ojson{{"error", "an error was encountered while running the model: unexpected EOF"}}
                 .dump() +
             "\n";
  }
  return "";
}

// A line that is not JSON, in the vendor's stream framing.
std::string broken_event(Vendor vendor) {
  switch (vendor) {
    case Vendor::openai:
      return "data: "
             "{\"id\":\"chatcmpl-broken\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
             "\"oo\n\n";
    case Vendor::anthropic:
      return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
             "\"delta\":{\"type\":\"text_delta\",\"text\":\"oo\n\n";
    case Vendor::gemini:
      return "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"oo\r\n\r\n";
    case Vendor::ollama:
      return "{\"model\":\"broken\",\"message\":{\"role\":\"assistant\",\"content\":\"oo\n";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// From Rendered to a Script, with the transport faults applied.

std::string join(const std::vector<std::string>& pieces) {
  std::string all;
  size_t size = 0;
  for (const auto& p : pieces)
    size += p.size();
  all.reserve(size);
  for (const auto& p : pieces)
    all += p;
  return all;
}

Script plain_script(const Rendered& r) {
  Script s;
  s.status = r.status;
  s.headers = r.headers;
  if (r.stream) {
    s.framing = Framing::chunked;
    for (const auto& e : r.events)
      s.chunks.push_back({e, 0});
  } else {
    s.chunks.push_back({join(r.events), 0});
  }
  return s;
}

// The whole response as bytes on the wire, one byte per write, 1 ms apart.
Script split_bytes_script(const Rendered& r) {
  std::string wire = "HTTP/1.1 " + std::to_string(r.status) + " OK\r\n";
  for (const auto& [name, value] : r.headers)
    wire += name + ": " + value + "\r\n";
  if (r.stream) {
    wire += "Transfer-Encoding: chunked\r\n\r\n";
    for (const auto& e : r.events) {
      char size_line[32];
      std::snprintf(size_line, sizeof size_line, "%zx\r\n", e.size());
      wire += size_line + e + "\r\n";
    }
    wire += "0\r\n\r\n";
  } else {
    std::string body = join(r.events);
    wire += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  Script s;
  s.raw = true;
  s.chunks.reserve(wire.size());
  for (char c : wire)
    s.chunks.push_back({std::string(1, c), 1});
  return s;
}

// The body cut inside every multi-byte code point (before each continuation byte), each piece
// written on its own after a short pause so the client reads them separately.
Script utf8_split_script(const Rendered& r) {
  Script s;
  s.status = r.status;
  s.headers = r.headers;
  s.framing = r.stream ? Framing::chunked : Framing::content_length;
  std::string body = join(r.events);
  size_t start = 0;
  for (size_t i = 1; i < body.size(); ++i) {
    if ((static_cast<unsigned char>(body[i]) & 0xC0) == 0x80 &&
        (static_cast<unsigned char>(body[i - 1]) & 0x80) != 0) {
      s.chunks.push_back({body.substr(start, i - start), start == 0 ? 0u : 3u});
      start = i;
    }
  }
  s.chunks.push_back({body.substr(start), 3});
  return s;
}

// Five pieces, 300 ms apart.
Script slow_body_script(const Rendered& r) {
  Script s;
  s.status = r.status;
  s.headers = r.headers;
  std::vector<std::string> groups(5);
  if (r.stream) {
    s.framing = Framing::chunked;
    for (size_t i = 0; i < r.events.size(); ++i)
      groups[i * 5 / r.events.size()] += r.events[i];
  } else {
    std::string body = join(r.events);
    size_t step = (body.size() + 4) / 5;
    for (size_t i = 0; i < 5; ++i)
      if (i * step < body.size()) groups[i] = body.substr(i * step, step);
  }
  for (auto& g : groups)
    if (!g.empty()) s.chunks.push_back({std::move(g), 300});
  return s;
}

}  // namespace

// -----------------------------------------------------------------------------------------------
// Public helpers

const char* vendor_name(Vendor vendor) {
  switch (vendor) {
    case Vendor::openai:
      return "openai";
    case Vendor::anthropic:
      return "anthropic";
    case Vendor::gemini:
      return "gemini";
    case Vendor::ollama:
      return "ollama";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& out, Vendor vendor) {
  return out << vendor_name(vendor);
}

bool vendor_from_name(std::string_view name, Vendor* vendor) {
  for (Vendor v : {Vendor::openai, Vendor::anthropic, Vendor::gemini, Vendor::ollama}) {
    if (name == vendor_name(v)) {
      *vendor = v;
      return true;
    }
  }
  return false;
}

FakeReply FakeReply::with_text(std::string text) {
  FakeReply r;
  r.text = std::move(text);
  return r;
}

FakeReply FakeReply::with_fault(std::string fault) {
  FakeReply r;
  r.fault = std::move(fault);
  return r;
}

FakeReply FakeReply::from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("a reply must be a JSON object");
  FakeReply r;
  auto text_field = [&](const char* key, std::string* out) {
    if (!j[key].is_string()) throw std::invalid_argument(std::string(key) + ": must be a string");
    *out = j[key].get<std::string>();
  };
  for (const auto& [key, value] : j.items()) {
    if (key == "reply") {
      text_field("reply", &r.text);
    } else if (key == "reasoning") {
      text_field("reasoning", &r.reasoning);
    } else if (key == "finish") {
      text_field("finish", &r.finish);
      if (r.finish != "stop" && r.finish != "length" && r.finish != "tool_calls" &&
          r.finish != "content_filter")
        throw std::invalid_argument("finish: must be stop, length, tool_calls or content_filter");
    } else if (key == "vendor_finish") {
      text_field("vendor_finish", &r.vendor_finish);
    } else if (key == "request_id") {
      text_field("request_id", &r.request_id);
    } else if (key == "error_message") {
      text_field("error_message", &r.error_message);
    } else if (key == "openai_deltas") {
      if (!value.is_array()) throw std::invalid_argument("openai_deltas: must be an array");
      for (const json& delta : value) {
        if (!delta.is_object())
          throw std::invalid_argument("openai_deltas: each delta must be an object");
        r.openai_deltas.push_back(delta);
      }
    } else if (key == "fault") {
      text_field("fault", &r.fault);
      if (!VendorServer::is_fault(r.fault))
        throw std::invalid_argument("fault: unknown fault \"" + r.fault + "\"");
    } else if (key == "tool_calls") {
      if (!value.is_array()) throw std::invalid_argument("tool_calls: must be an array");
      for (size_t i = 0; i < value.size(); ++i) {
        const json& call = value[i];
        std::string where = "tool_calls[" + std::to_string(i) + "]";
        if (!call.is_object() || !call.contains("name") || !call["name"].is_string())
          throw std::invalid_argument(where + ": needs a string \"name\"");
        FakeToolCall tc;
        tc.name = call["name"].get<std::string>();
        for (const auto& [k, v] : call.items()) {
          if (k == "name") continue;
          if (k != "arguments") throw std::invalid_argument(where + ": unknown key \"" + k + "\"");
          if (v.is_object())
            tc.arguments = v;
          else if (v.is_string())
            tc.raw_arguments = v.get<std::string>();
          else
            throw std::invalid_argument(where + ".arguments: must be an object or a string");
        }
        r.tool_calls.push_back(std::move(tc));
      }
    } else if (key == "usage") {
      if (!value.is_object()) throw std::invalid_argument("usage: must be an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
          throw std::invalid_argument("usage." + k + ": must be a non-negative integer");
        int64_t n = v.get<int64_t>();
        if (k == "input")
          r.usage.input = n;
        else if (k == "cached")
          r.usage.cached = n;
        else if (k == "output")
          r.usage.output = n;
        else if (k == "reasoning")
          r.usage.reasoning = n;
        else
          throw std::invalid_argument("usage: unknown key \"" + k + "\"");
      }
    } else {
      throw std::invalid_argument("unknown key \"" + key + "\"");
    }
  }
  return r;
}

const std::vector<std::string>& VendorServer::fault_names() {
  return kFaults;
}

bool VendorServer::is_fault(std::string_view name) {
  for (const auto& f : kFaults)
    if (f == name) return true;
  return false;
}

json VendorServer::normalized_usage(Vendor vendor, const FakeUsage& u) {
  switch (vendor) {
    case Vendor::openai:
    case Vendor::gemini:
      return {{"input_tokens", u.input},
              {"output_tokens", u.output},
              {"cached_input_tokens", u.cached},
              {"reasoning_tokens", u.reasoning},
              {"total_tokens", u.input + u.output}};
    case Vendor::anthropic:
      return {{"input_tokens", u.input},
              {"output_tokens", u.output},
              {"cached_input_tokens", u.cached},
              {"reasoning_tokens", 0},
              {"total_tokens", u.input + u.output}};
    case Vendor::ollama:
      return {{"input_tokens", u.input},
              {"output_tokens", u.output},
              {"cached_input_tokens", 0},
              {"reasoning_tokens", 0},
              {"total_tokens", u.input + u.output}};
  }
  return json::object();
}

const std::string& VendorServer::utf8_text() {
  static const std::string text =
      "h\xC3\xA9llo w\xC3\xB6rld \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
      "\xF0\x9F\x8E\x89";
  return text;
}

const std::string& VendorServer::huge_text() {
  static const std::string text = [] {
    const std::string line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefgh.\n";
    const size_t size = 20u * 1024u * 1024u;
    std::string t;
    t.reserve(size);
    while (t.size() + line.size() <= size)
      t += line;
    t.append(line, 0, size - t.size());
    return t;
  }();
  return text;
}

std::string VendorServer::error_message(Vendor vendor, std::string_view fault,
                                        const std::string& model, const std::string& api_key) {
  int status = fault == "stream-error" ? stream_error_status(vendor) : fault_status(vendor, fault);
  if (status == 0) return "";
  if (vendor == Vendor::openai && status == 502) return "502 Bad Gateway";
  return error_info(vendor, status, fault, model, api_key).message;
}

// -----------------------------------------------------------------------------------------------
// The server

namespace {

struct Rule {
  std::string match;
  std::string model;
  bool has_vendor = false;
  Vendor vendor = Vendor::openai;
  int64_t times = -1;  // -1: unlimited
  int64_t used = 0;
  FakeReply reply;
};

struct Page {
  std::string content;
  std::string content_type;
};

json seen_to_json(const SeenChat& c) {
  json headers = json::object();
  for (const auto& [name, value] : c.request.headers)
    headers[to_lower(name)] = value;
  return {{"vendor", vendor_name(c.vendor)},
          {"model", c.model},
          {"stream", c.stream},
          {"last_user", c.last_user},
          {"ends_with_tool_results", c.ends_with_tool_results},
          {"tool_results", c.tool_results},
          {"tools", c.tools},
          {"forced_tool", c.forced_tool},
          {"schema", c.schema},
          {"answer", c.answer},
          {"fault", c.fault},
          {"request_id", c.request_id},
          {"method", c.request.method},
          {"path", c.request.target},
          {"headers", headers},
          {"body", c.body}};
}

Script json_script(int status, const json& body) {
  return Script::text(status, body.dump() + "\n", "application/json");
}

}  // namespace

struct VendorServer::State {
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::deque<FakeReply> queue;
  std::vector<Rule> rules;
  std::map<std::string, Page> pages;
  std::vector<SeenChat> chats;
  uint64_t counter = 0;
  bool verbose = false;
};

VendorServer::VendorServer(uint16_t port)
    : server_(std::make_unique<HttpTestServer>(port)), state_(std::make_shared<State>()) {
  server_->route("/v1/chat/completions",
                 [this](const TestRequest& r) { return handle_chat(Vendor::openai, r); });
  server_->route("/v1/messages",
                 [this](const TestRequest& r) { return handle_chat(Vendor::anthropic, r); });
  server_->route_prefix("/v1beta/models/",
                        [this](const TestRequest& r) { return handle_chat(Vendor::gemini, r); });
  server_->route_prefix("/v1/models/",
                        [this](const TestRequest& r) { return handle_chat(Vendor::gemini, r); });
  server_->route("/api/chat",
                 [this](const TestRequest& r) { return handle_chat(Vendor::ollama, r); });
  server_->route("/health", [](const TestRequest&) {
    return Script::text(200, "{\"status\":\"ok\"}\n", "application/json");
  });
  server_->route_prefix("/pages/", [state = state_](const TestRequest& r) {
    std::string name = percent_decode(r.path.substr(7));
    std::lock_guard lock(state->mutex);
    auto it = state->pages.find(name);
    if (r.method != "GET" && r.method != "HEAD") return Script::text(405, "method not allowed\n");
    if (it == state->pages.end()) return Script::text(404, "no page named " + name + "\n");
    return Script::text(200, it->second.content, it->second.content_type);
  });
  server_->route_prefix("/_fake/", [this](const TestRequest& r) { return handle_control(r); });
}

VendorServer::~VendorServer() {
  stop();
}

uint16_t VendorServer::port() const {
  return server_->port();
}

std::string VendorServer::url(std::string_view path) const {
  return server_->url(path);
}

std::string VendorServer::base_url(Vendor vendor) const {
  return vendor == Vendor::openai ? url("/v1") : url("");
}

void VendorServer::push(FakeReply reply) {
  std::lock_guard lock(state_->mutex);
  state_->queue.push_back(std::move(reply));
}

size_t VendorServer::queued() const {
  std::lock_guard lock(state_->mutex);
  return state_->queue.size();
}

void VendorServer::load_scenario(const json& scenario) {
  if (!scenario.is_object()) throw std::invalid_argument("scenario: must be a JSON object");
  std::vector<Rule> rules;
  std::map<std::string, Page> pages;
  for (const auto& [key, value] : scenario.items()) {
    if (key == "rules") {
      if (!value.is_array()) throw std::invalid_argument("rules: must be an array");
      for (size_t i = 0; i < value.size(); ++i) {
        std::string where = "rules[" + std::to_string(i) + "]";
        const json& r = value[i];
        if (!r.is_object()) throw std::invalid_argument(where + ": must be an object");
        Rule rule;
        json reply = json::object();
        for (const auto& [k, v] : r.items()) {
          if (k == "match" || k == "model" || k == "vendor") {
            if (!v.is_string()) throw std::invalid_argument(where + "." + k + ": must be a string");
            std::string s = v.get<std::string>();
            if (k == "match") rule.match = s;
            if (k == "model") rule.model = s;
            if (k == "vendor") {
              if (!vendor_from_name(s, &rule.vendor))
                throw std::invalid_argument(where + ".vendor: unknown vendor \"" + s + "\"");
              rule.has_vendor = true;
            }
          } else if (k == "times") {
            if (!v.is_number_integer() || v.get<int64_t>() < 1)
              throw std::invalid_argument(where + ".times: must be a positive integer");
            rule.times = v.get<int64_t>();
          } else {
            reply[k] = v;
          }
        }
        try {
          rule.reply = FakeReply::from_json(reply);
        } catch (const std::invalid_argument& e) {
          throw std::invalid_argument(where + ": " + e.what());
        }
        rules.push_back(std::move(rule));
      }
    } else if (key == "pages") {
      if (!value.is_object()) throw std::invalid_argument("pages: must be an object");
      for (const auto& [name, content] : value.items()) {
        if (!content.is_string())
          throw std::invalid_argument("pages." + name + ": must be a string");
        std::string text = content.get<std::string>();
        std::string type = !text.empty() && text[0] == '<' ? "text/html; charset=utf-8"
                                                           : "text/plain; charset=utf-8";
        pages[name] = Page{std::move(text), std::move(type)};
      }
    } else {
      throw std::invalid_argument("scenario: unknown key \"" + key + "\" (rules, pages)");
    }
  }
  std::lock_guard lock(state_->mutex);
  state_->rules = std::move(rules);
  for (auto& [name, page] : pages)
    state_->pages[name] = std::move(page);
}

void VendorServer::load_scenario_text(std::string_view json_text) {
  json scenario;
  try {
    scenario = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument(std::string("scenario: not JSON: ") + e.what());
  }
  load_scenario(scenario);
}

void VendorServer::load_scenario_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("scenario: cannot open " + path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    load_scenario_text(text.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

void VendorServer::add_page(const std::string& name, std::string content,
                            std::string content_type) {
  if (content_type.empty())
    content_type = !content.empty() && content[0] == '<' ? "text/html; charset=utf-8"
                                                         : "text/plain; charset=utf-8";
  std::lock_guard lock(state_->mutex);
  state_->pages[name] = Page{std::move(content), std::move(content_type)};
}

std::vector<TestRequest> VendorServer::requests() const {
  return server_->requests();
}

std::vector<SeenChat> VendorServer::chats() const {
  std::lock_guard lock(state_->mutex);
  return state_->chats;
}

size_t VendorServer::chat_count() const {
  std::lock_guard lock(state_->mutex);
  return state_->chats.size();
}

bool VendorServer::wait_for_chats(size_t n, uint32_t timeout_ms) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                  [&] { return state_->chats.size() >= n; });
}

void VendorServer::reset() {
  std::lock_guard lock(state_->mutex);
  state_->queue.clear();
  state_->chats.clear();
  for (auto& rule : state_->rules)
    rule.used = 0;
}

void VendorServer::set_verbose(bool verbose) {
  std::lock_guard lock(state_->mutex);
  state_->verbose = verbose;
}

HttpTestServer& VendorServer::http() {
  return *server_;
}

void VendorServer::stop() {
  server_->stop();
}

Script VendorServer::handle_control(const TestRequest& request) {
  try {
    if (request.path == "/_fake/push" && request.method == "POST") {
      json body = json::parse(request.body);
      std::vector<FakeReply> replies;
      if (body.is_array()) {
        for (const auto& r : body)
          replies.push_back(FakeReply::from_json(r));
      } else {
        replies.push_back(FakeReply::from_json(body));
      }
      for (auto& r : replies)
        push(std::move(r));
      return json_script(200, {{"queued", queued()}});
    }
    if (request.path == "/_fake/scenario" && request.method == "POST") {
      load_scenario_text(request.body);
      return json_script(200, {{"ok", true}});
    }
    if (request.path == "/_fake/reset" && request.method == "POST") {
      reset();
      return json_script(200, {{"ok", true}});
    }
    if (request.path == "/_fake/chats" && request.method == "GET") {
      json all = json::array();
      for (const auto& c : chats())
        all.push_back(seen_to_json(c));
      return json_script(200, all);
    }
  } catch (const std::exception& e) {
    return json_script(400, {{"error", e.what()}});
  }
  return json_script(
      404, {{"error", "unknown control endpoint " + request.method + " " + request.path}});
}

Script VendorServer::handle_chat(Vendor vendor, const TestRequest& request) {
  Chat chat;
  SeenChat& seen = chat.seen;
  seen.vendor = vendor;
  seen.request = request;
  uint64_t number;
  {
    std::lock_guard lock(state_->mutex);
    number = ++state_->counter;
  }

  // The key as the vendor's auth header carries it (only to mask it in openai's 401 message).
  std::string key = request.header(vendor == Vendor::anthropic ? "x-api-key"
                                   : vendor == Vendor::gemini  ? "x-goog-api-key"
                                                               : "Authorization");
  if (starts_with(key, "Bearer ")) key = key.substr(7);

  std::string request_id;
  switch (vendor) {
    case Vendor::openai:
      request_id = "req_" + hex_id(number, 32);
      break;
    case Vendor::anthropic:
      request_id = "req_011fake" + hex_id(number, 16);
      break;
    case Vendor::gemini:
      request_id = "fakeResp" + hex_id(number, 14);
      break;
    case Vendor::ollama:
      break;
  }

  auto record = [&](const std::string& answer, const std::string& fault) {
    seen.answer = answer;
    seen.fault = fault;
    bool verbose;
    {
      std::lock_guard lock(state_->mutex);
      state_->chats.push_back(seen);
      verbose = state_->verbose;
    }
    state_->changed.notify_all();
    if (verbose)
      std::fprintf(stderr, "fake-vendor: %s %s %s model=%s stream=%d -> %s%s%s\n",
                   vendor_name(vendor), request.method.c_str(), request.path.c_str(),
                   seen.model.c_str(), seen.stream ? 1 : 0, answer.c_str(),
                   fault.empty() ? "" : " fault=", fault.c_str());
  };
  auto refuse = [&](int status, const std::string& message) {
    record("refused", "");
    Rendered r = render_error(vendor, status, "", seen.model, request_id, key);
    // Replace the canned message with what was actually wrong.
    json body;
    switch (vendor) {
      case Vendor::openai:
        body = {{"error",
                 {{"message", message},
                  {"type", "invalid_request_error"},
                  {"param", nullptr},
                  {"code", nullptr}}}};
        break;
      case Vendor::anthropic:
        body = {{"type", "error"},
                {"error", {{"type", "invalid_request_error"}, {"message", message}}},
                {"request_id", request_id}};
        break;
      case Vendor::gemini:
        body = {{"error",
                 {{"code", status},
                  {"message", message},
                  {"status", status == 404 ? "NOT_FOUND" : "INVALID_ARGUMENT"}}}};
        break;
      case Vendor::ollama:
        body = {{"error", message}};
        break;
    }
    r.events = {body.dump()};
    return plain_script(r);
  };

  if (request.method != "POST") return refuse(405, "use POST for " + request.path);

  // Gemini: the model and the method are in the path.
  if (vendor == Vendor::gemini) {
    std::string rest = request.path.substr(request.path.find("/models/") + 8);
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos) return refuse(404, "no method in " + request.path);
    seen.model = percent_decode(rest.substr(0, colon));
    std::string method = rest.substr(colon + 1);
    if (method == "generateContent") {
      seen.stream = false;
    } else if (method == "streamGenerateContent") {
      seen.stream = true;
      chat.gemini_sse = query_param(request.target, "alt") == "sse";
    } else {
      return refuse(404, "unknown method " + method);
    }
  }

  try {
    seen.body = json::parse(request.body);
  } catch (const json::parse_error& e) {
    return refuse(400,
                  std::string("We could not parse the JSON body of your request: ") + e.what());
  }
  if (!seen.body.is_object()) return refuse(400, "the request body must be a JSON object");
  switch (vendor) {
    case Vendor::openai:
      parse_openai_like(seen.body, chat, false);
      break;
    case Vendor::ollama:
      parse_openai_like(seen.body, chat, true);
      break;
    case Vendor::anthropic:
      parse_anthropic(seen.body, chat);
      break;
    case Vendor::gemini:
      parse_gemini(seen.body, chat);
      break;
  }

  // The brain: queue, model-named fault, rules, default.
  FakeReply reply;
  std::string answer;
  {
    std::lock_guard lock(state_->mutex);
    if (!state_->queue.empty()) {
      reply = std::move(state_->queue.front());
      state_->queue.pop_front();
      answer = "queue";
    } else if (starts_with(seen.model, "fault-")) {
      reply.fault = seen.model.substr(6);
      answer = "model";
    } else {
      for (size_t i = 0; i < state_->rules.size(); ++i) {
        Rule& rule = state_->rules[i];
        if (!rule.match.empty() && seen.last_user.find(rule.match) == std::string::npos) continue;
        if (!rule.model.empty() && rule.model != seen.model) continue;
        if (rule.has_vendor && rule.vendor != vendor) continue;
        if (rule.times >= 0 && rule.used >= rule.times) continue;
        if (!rule.reply.tool_calls.empty() && (seen.tools.empty() || seen.ends_with_tool_results))
          continue;
        ++rule.used;
        reply = rule.reply;
        answer = "rule " + std::to_string(i);
        break;
      }
      if (answer.empty()) answer = "default";
    }
  }

  if (!reply.fault.empty() && !is_fault(reply.fault)) {
    std::string known;
    for (const auto& f : kFaults)
      known += (known.empty() ? "" : ", ") + f;
    return refuse(400, "fake vendor: unknown fault \"" + reply.fault + "\" (known: " + known + ")");
  }

  // Faults that still answer (slow-body, split-bytes, ...) answer like the default would.
  const bool needs_content = reply.fault.empty()
                                 ? answer == "default"
                                 : fault_status(vendor, reply.fault) == 0 && reply.text.empty() &&
                                       reply.tool_calls.empty();
  if (reply.tool_calls.empty() && (reply.fault.empty() || needs_content)) {
    if (needs_content) {
      if (!seen.forced_tool.empty()) {
        FakeToolCall call;
        call.name = seen.forced_tool;
        auto it = chat.tool_schemas.find(seen.forced_tool);
        call.arguments =
            generate_from_schema(it != chat.tool_schemas.end() ? it->second : json::object());
        if (!call.arguments.is_object()) call.arguments = json::object();
        reply.tool_calls.push_back(std::move(call));
      } else if (!seen.schema.is_null()) {
        reply.text = generate_from_schema(seen.schema).dump();
      } else if (seen.ends_with_tool_results) {
        std::string joined;
        for (size_t i = 0; i < seen.tool_results.size(); ++i)
          joined += (i == 0 ? "" : " | ") + seen.tool_results[i];
        reply.text = "tool results: " + joined;
      } else {
        reply.text = "echo: " + seen.last_user;
      }
    } else if (answer != "queue" && !seen.forced_tool.empty()) {
      // A rule's JSON reply to a request that forces a tool (Anthropic's structured output)
      // becomes that tool's input, so one scenario serves every vendor.
      json parsed = json::parse(reply.text, nullptr, false);
      if (parsed.is_object()) {
        FakeToolCall call;
        call.name = seen.forced_tool;
        call.arguments = parsed;
        reply.tool_calls.push_back(std::move(call));
        reply.text.clear();
      }
    }
  }

  const std::string fault = reply.fault;
  if (!reply.request_id.empty()) request_id = reply.request_id;
  if (fault == "utf8-split") reply.text = utf8_text();
  if (fault == "huge") reply.text = huge_text();

  // Error faults.
  int status = fault_status(vendor, fault);
  if (fault == "stream-error" && !seen.stream) status = stream_error_status(vendor);
  if (status != 0) {
    if (vendor != Vendor::gemini) seen.request_id = request_id;
    record(answer, fault);
    return plain_script(
        render_error(vendor, status, fault, seen.model, request_id, key, reply.error_message));
  }
  if (fault == "hang") {
    record(answer, fault);
    Script s;
    s.never_respond = true;
    return s;
  }

  Material m;
  m.vendor = vendor;
  m.model = seen.model;
  m.number = number;
  m.text = reply.text;
  m.reasoning = reply.reasoning;
  m.finish = vendor_finish(vendor, reply);
  m.usage = reply.usage;
  m.include_usage = chat.include_usage;
  m.request_id = request_id;
  for (const auto& delta : reply.openai_deltas)
    m.openai_deltas.push_back(ojson::parse(delta.dump()));
  m.terminate = !(fault == "no-terminator" && seen.stream);
  for (size_t i = 0; i < reply.tool_calls.size(); ++i) {
    const FakeToolCall& call = reply.tool_calls[i];
    ToolOut t;
    t.name = call.name;
    t.arguments = ojson::parse(call.arguments.dump());
    t.raw = call.raw_arguments;
    t.text = t.raw.empty() ? call.arguments.dump() : t.raw;
    t.id = (vendor == Vendor::anthropic ? "toolu_fake" : "call_fake") + hex_id(number, 6) + "_" +
           std::to_string(i + 1);
    m.tools.push_back(std::move(t));
  }
  seen.request_id = request_id;
  record(answer, fault);

  Rendered r = render(m, seen.stream, chat.gemini_sse);
  if (fault.empty() || fault == "utf8-split") {
    if (fault == "utf8-split") return utf8_split_script(r);
    return plain_script(r);
  }
  if (fault == "huge") return plain_script(r);
  if (fault == "slow-headers") {
    Script s = plain_script(r);
    s.head_delay_ms = 3000;
    return s;
  }
  if (fault == "slow-body") return slow_body_script(r);
  if (fault == "split-bytes") return split_bytes_script(r);
  if (fault == "no-terminator") {
    Script s = plain_script(r);
    if (!seen.stream) {
      s.framing = Framing::until_close;
      s.after = After::close;
    }
    return s;
  }
  if (fault == "reset-mid-stream") {
    Script s = plain_script(r);
    s.after = After::reset;
    if (seen.stream) {
      if (s.chunks.size() > 2) s.chunks.resize(2);
      s.chunked_terminator = false;
    } else {
      std::string body = s.chunks[0].data;
      s.content_length = static_cast<int64_t>(body.size());
      s.chunks = {{body.substr(0, body.size() / 2), 0}};
    }
    return s;
  }
  if (fault == "malformed-json") {
    if (seen.stream) {
      r.events.insert(r.events.begin() + (r.events.size() > 1 ? 1 : 0), broken_event(vendor));
      return plain_script(r);
    }
    std::string body = join(r.events);
    r.events = {body.substr(0, body.size() / 2)};
    return plain_script(r);
  }
  if (fault == "stream-error") {
    // Streamed (the non-streamed case is an HTTP error above): two events, then the error.
    if (r.events.size() > 2) r.events.resize(2);
    r.events.push_back(stream_error_event(vendor));
    return plain_script(r);
  }
  return plain_script(r);
}

}  // namespace troupe::test
