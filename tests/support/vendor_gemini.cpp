// vendor_gemini.cpp: the fake vendor's Gemini generateContent wire format — POST
// /v1beta/models/{model}:generateContent and :streamGenerateContent read (camelCase or
// snake_case), replies written plain, as SSE (alt=sse) or as a JSON array stream, and Gemini's
// error bodies (QuotaFailure, RetryInfo).
#include "support/vendor_wire.h"

namespace troupe::test {
// Named, not anonymous: the nine files compile as one unit (UNITY_BUILD), where the
// vendors' functions of the same name must not meet.
namespace gemini_fake {

std::string function_response_text(const json& response) {
  if (response.is_string()) return response.get<std::string>();
  if (response.is_object()) {
    for (const char* key : {"result", "output", "content", "text"})
      if (response.contains(key) && response[key].is_string()) return response[key];
    if (response.size() == 1 && response.begin()->is_string()) return *response.begin();
  }
  return response.dump();
}

// The model, the method and alt=sse are in the path; the server reads those (vendor_server.cpp).
void parse(const json& body, Chat& chat) {
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

std::string request_id(uint64_t number) {
  return "fakeResp" + hex_id(number, 14);
}

std::string finish(const std::string& normalized) {
  if (normalized == "length") return "MAX_TOKENS";
  if (normalized == "content_filter") return "SAFETY";
  return "STOP";
}

ojson usage_of(const FakeUsage& u) {
  ojson usage = {
      {"promptTokenCount", u.input},
      {"candidatesTokenCount", u.output - u.reasoning},
      {"totalTokenCount", u.input + u.output},
      {"promptTokensDetails", ojson::array({{{"modality", "TEXT"}, {"tokenCount", u.input}}})}};
  if (u.cached > 0) usage["cachedContentTokenCount"] = u.cached;
  if (u.reasoning > 0) usage["thoughtsTokenCount"] = u.reasoning;
  return usage;
}

Rendered render(const Material& m, bool stream) {
  Rendered r;
  r.stream = stream;
  const bool sse = m.gemini_sse;
  const std::string response_id = m.request_id;
  auto response = [&](ojson parts, bool last) {
    ojson candidate = {{"content", {{"parts", std::move(parts)}, {"role", "model"}}}, {"index", 0}};
    if (last && m.terminate) candidate["finishReason"] = m.finish;
    ojson usage =
        last ? usage_of(m.usage)
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

ErrorInfo error_info(int status, std::string_view fault, const std::string& model,
                     const std::string&) {
  if (fault == "context-too-long")
    return {"INVALID_ARGUMENT", "",
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576)."};
  if (fault == "insufficient-quota")
    return {"RESOURCE_EXHAUSTED", "",
            "You exceeded your current quota, please check your plan and billing details."};
  switch (status) {
    case 400:
      return {"INVALID_ARGUMENT", "", "Request contains an invalid argument."};
    case 401:
      return {"UNAUTHENTICATED", "",
              "Request had invalid authentication credentials. Expected OAuth 2 access token, "
              "login cookie or other valid authentication credential."};
    case 403:
      return {"PERMISSION_DENIED", "",
              "Method doesn't allow unregistered callers (callers "
              "without established identity). Please use API Key or "
              "other form of API consumer identity to call this API."};
    case 404:
      return {"NOT_FOUND", "",
              "models/" + model +
                  " is not found for API version v1beta, or is not supported "
                  "for generateContent."};
    case 408:
      return {"DEADLINE_EXCEEDED", "", "The request timed out."};
    case 413:
      return {"INVALID_ARGUMENT", "", "Request payload size exceeds the limit: 20971520 bytes."};
    case 429:
      return {"RESOURCE_EXHAUSTED", "", "Resource has been exhausted (e.g. check quota)."};
    case 500:
      return {"INTERNAL", "",
              "An internal error has occurred. Please retry or report in "
              "https://developers.generativeai.google/guide/troubleshooting"};
    case 504:
      return {"DEADLINE_EXCEEDED", "", "The request timed out. Please try again."};
    default:
      return {"UNAVAILABLE", "", "The model is overloaded. Please try again later."};
  }
}

// Gemini's rate-limit hint is in the body (RetryInfo), not in a header.
Rendered render_error(int status, std::string_view fault, const ErrorInfo& e, const std::string&) {
  Rendered r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json; charset=UTF-8"}};
  ojson error = {{"code", status}, {"message", e.message}, {"status", e.type}};
  if (fault == "rate-limit-reset") {
    error["details"] = ojson::array(
        {{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
          {"violations",
           ojson::array({{{"quotaMetric",
                           "generativelanguage.googleapis.com/generate_content_free_tier_requests"},
                          {"quotaId", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"},
                          {"quotaValue", "10"}}})}},
         {{"@type", "type.googleapis.com/google.rpc.RetryInfo"}, {"retryDelay", "2s"}}});
  } else if (fault == "insufficient-quota") {
    error["details"] = ojson::array(
        {{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
          {"violations", ojson::array({{{"quotaMetric",
                                         "generativelanguage.googleapis.com/"
                                         "generate_content_paid_tier_input_token_count"},
                                        {"quotaId",
                                         "GenerateContentPaidTierInputTokensPerModel"
                                         "PerDay"}}})}}});
  } else if (status == 400) {
    error["details"] = ojson::array({{{"@type", "type.googleapis.com/google.rpc.BadRequest"},
                                      {"fieldViolations", ojson::array()}}});
  }
  r.events.push_back(ojson{{"error", error}}.dump(2) + "\n");
  return r;
}

std::string refusal(int status, const std::string& message, const std::string&) {
  json body = {{"error",
                {{"code", status},
                 {"message", message},
                 {"status", status == 404 ? "NOT_FOUND" : "INVALID_ARGUMENT"}}}};
  return body.dump();
}

std::string stream_error_event() {
  return "data: " +
         ojson{{"error",
                {{"code", 503},
                 {"message", "The model is overloaded. Please try again later."},
                 {"status", "UNAVAILABLE"}}}}
             .dump() +
         "\r\n\r\n";
}

std::string broken_event() {
  return "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"oo\r\n\r\n";
}

}  // namespace gemini_fake

const VendorWire kGeminiWire = {.key_header = "x-goog-api-key",
                                .tool_id_prefix = "call_fake",
                                .quota_status = 429,
                                .reports_cached = true,
                                .reports_reasoning = true,
                                .stream_error_status = 503,
                                .parse = gemini_fake::parse,
                                .request_id = gemini_fake::request_id,
                                .finish = gemini_fake::finish,
                                .render = gemini_fake::render,
                                .error_info = gemini_fake::error_info,
                                .render_error = gemini_fake::render_error,
                                .refusal = gemini_fake::refusal,
                                .stream_error_event = gemini_fake::stream_error_event,
                                .broken_event = gemini_fake::broken_event};

}  // namespace troupe::test
