// vendor_openai.cpp: the fake vendor's OpenAI Chat Completions wire format — POST
// /v1/chat/completions read, replies written plain or as SSE chunks (usage chunk, [DONE]), and
// OpenAI's error bodies and rate-limit headers. Its request reading also serves Ollama.
#include <ctime>

#include "support/vendor_wire.h"

namespace troupe::test {

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

// Named, not anonymous: the nine files compile as one unit (UNITY_BUILD), where the
// vendors' functions of the same name must not meet.
namespace openai_fake {

void parse(const json& body, Chat& chat) {
  parse_openai_like(body, chat, false);
}

std::string request_id(uint64_t number) {
  return "req_" + hex_id(number, 32);
}

std::string finish(const std::string& normalized) {
  return normalized;
}

ojson usage_of(const FakeUsage& u) {
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

TestHeaders headers_of(const std::string& id, const char* content_type) {
  return {{"Content-Type", content_type},
          {"x-request-id", id},
          {"openai-version", "2020-10-01"},
          {"openai-processing-ms", "42"}};
}

Rendered render(const Material& m, bool stream) {
  Rendered r;
  r.stream = stream;
  const std::string id = "chatcmpl-fake" + hex_id(m.number, 8);
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  if (!stream) {
    r.headers = headers_of(m.request_id, "application/json");
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
                  {"usage", usage_of(m.usage)},
                  {"service_tier", "default"},
                  {"system_fingerprint", "fp_fake"}};
    r.events.push_back(body.dump());
    return r;
  }
  r.headers = headers_of(m.request_id, "text/event-stream; charset=utf-8");
  auto chunk = [&](ojson delta, ojson finish_reason) {
    ojson c = {{"id", id},
               {"object", "chat.completion.chunk"},
               {"created", created},
               {"model", m.model},
               {"service_tier", "default"},
               {"system_fingerprint", "fp_fake"},
               {"choices", ojson::array({{{"index", 0},
                                          {"delta", std::move(delta)},
                                          {"logprobs", nullptr},
                                          {"finish_reason", std::move(finish_reason)}}})}};
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
    for (const auto& piece : argument_pieces(t.text))
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
               {"usage", usage_of(m.usage)}};
    r.events.push_back("data: " + c.dump() + "\n\n");
  }
  if (m.terminate) r.events.push_back("data: [DONE]\n\n");
  return r;
}

std::string masked_key(const std::string& key) {
  if (key.size() < 12) return "****";
  return key.substr(0, 8) + "****" + key.substr(key.size() - 4);
}

ErrorInfo error_info(int status, std::string_view fault, const std::string& model,
                     const std::string& api_key) {
  if (fault == "context-too-long")
    return {"invalid_request_error", "context_length_exceeded",
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 210000 tokens. Please reduce the length of the messages."};
  if (fault == "insufficient-quota")
    return {"insufficient_quota", "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors."};
  switch (status) {
    case 400:
      return {"invalid_request_error", "invalid_value",
              "Invalid value for 'temperature': expected a number between 0 and 2."};
    case 401:
      return {"invalid_request_error", "invalid_api_key",
              "Incorrect API key provided: " + masked_key(api_key) +
                  ". You can find your API key at https://platform.openai.com/account/api-keys."};
    case 403:
      return {"request_forbidden", "unsupported_country_region_territory",
              "Country, region, or territory not supported"};
    case 404:
      return {"invalid_request_error", "model_not_found",
              "The model `" + model + "` does not exist or you do not have access to it."};
    case 408:
      return {"timeout", "", "Request timed out."};
    case 413:
      return {"invalid_request_error", "request_too_large",
              "Request too large: the request body exceeds the maximum size."};
    case 429:
      return {"requests", "rate_limit_exceeded",
              "Rate limit reached for " + model +
                  " in organization org-fake on requests per min (RPM): Limit 3, Used 3, "
                  "Requested 1. Please try again in 2s."};
    case 502:
      // The body is the proxy's HTML page (render_error); this is what a client makes of it.
      return {"server_error", "", "502 Bad Gateway"};
    case 503:
      return {"server_error", "", "The engine is currently overloaded, please try again later."};
    case 504:
      return {"server_error", "", "Gateway timeout: the upstream did not answer in time."};
    default:
      return {"server_error", "",
              "The server had an error while processing your request. Sorry about that!"};
  }
}

Rendered render_error(int status, std::string_view fault, const ErrorInfo& e,
                      const std::string& id) {
  Rendered r;
  r.status = status;
  r.headers = {{"x-request-id", id}};
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
  if (fault == "rate-limit-reset") {
    r.headers.emplace_back("x-ratelimit-limit-requests", "500");
    r.headers.emplace_back("x-ratelimit-remaining-requests", "0");
    r.headers.emplace_back("x-ratelimit-reset-requests", "2s");
    r.headers.emplace_back("x-ratelimit-limit-tokens", "30000");
    r.headers.emplace_back("x-ratelimit-remaining-tokens", "0");
    r.headers.emplace_back("x-ratelimit-reset-tokens", "1.5s");
  }
  return r;
}

std::string refusal(int, const std::string& message, const std::string&) {
  json body = {{"error",
                {{"message", message},
                 {"type", "invalid_request_error"},
                 {"param", nullptr},
                 {"code", nullptr}}}};
  return body.dump();
}

std::string stream_error_event() {
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
}

std::string broken_event() {
  return "data: "
         "{\"id\":\"chatcmpl-broken\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
         "\"oo\n\n";
}

}  // namespace openai_fake

const VendorWire kOpenAiWire = {.key_header = "Authorization",
                                .tool_id_prefix = "call_fake",
                                .quota_status = 429,
                                .reports_cached = true,
                                .reports_reasoning = true,
                                .stream_error_status = 500,
                                .parse = openai_fake::parse,
                                .request_id = openai_fake::request_id,
                                .finish = openai_fake::finish,
                                .render = openai_fake::render,
                                .error_info = openai_fake::error_info,
                                .render_error = openai_fake::render_error,
                                .refusal = openai_fake::refusal,
                                .stream_error_event = openai_fake::stream_error_event,
                                .broken_event = openai_fake::broken_event};

}  // namespace troupe::test
