// gemini_wire.cpp: Gemini generateContent <-> normalized chat shapes (see gemini_wire.h).
#include "gemini_wire.h"

#include <cctype>
#include <map>
#include <stdexcept>

#include "common/http_error.h"
#include "common/json_access.h"
#include "common/url_encode.h"

namespace troupe::gemini {
namespace {

using nlohmann::json;

using kit::count_at;
using kit::member;
using kit::string_at;

bool is_true(const json& object, const char* key) {
  const json& value = member(object, key);
  return value.is_boolean() && value.get<bool>();
}

// Appends parts to the conversation, merging them into the last turn when it has the same
// role: Gemini wants all tool results of one step in one user turn, and alternating turns
// are the safe shape for every model.
void append_turn(json& contents, const char* role, json parts) {
  if (parts.empty()) return;
  if (!contents.empty() && contents.back()["role"] == role) {
    for (json& part : parts)
      contents.back()["parts"].push_back(std::move(part));
    return;
  }
  contents.push_back({{"role", role}, {"parts", std::move(parts)}});
}

// A tool result's text -> functionResponse.response, which must be an object: a JSON object
// is sent as it is, any other JSON value or plain text as {"result": <value or text>}.
json function_response_value(const std::string& content) {
  json parsed = json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) return parsed;
  if (parsed.is_discarded()) return {{"result", content}};
  return {{"result", std::move(parsed)}};
}

// The functionCall parts of one assistant message. Thought signatures: the real one when the
// plugin saw it, else (models that require one) the documented placeholder on the turn's
// first call — only the first call of a parallel batch carries one.
json function_call_parts(const json& calls, const std::string& model,
                         const RequestOptions& options) {
  json parts = json::array();
  bool needs_signature = requires_thought_signatures(model);
  for (const json& call : calls) {
    std::string name = call.at("name").get<std::string>();
    json args = call.value("arguments", json::object());
    if (!args.is_object()) args = json::object();
    json part = {{"functionCall", {{"name", name}, {"args", args}}}};
    std::string signature = options.signature_for ? options.signature_for(name, args) : "";
    if (signature.empty() && needs_signature && parts.empty()) signature = kSkipSignature;
    if (!signature.empty()) part["thoughtSignature"] = signature;
    parts.push_back(std::move(part));
  }
  return parts;
}

json build_contents(const json& messages, const std::string& model, const RequestOptions& options,
                    json* system_parts) {
  json contents = json::array();
  // tool_call_id -> tool name, from the assistant turns seen so far. Gemini sends no ids, so
  // every answer restarts at call_1: a later assistant turn replaces the earlier ids.
  std::map<std::string, std::string> call_names;
  for (const json& m : messages) {
    std::string role = m.at("role").get<std::string>();
    const std::string content = m.value("content", "");
    if (role == "system") {
      system_parts->push_back({{"text", content}});
    } else if (role == "user") {
      append_turn(contents, "user", json::array({{{"text", content}}}));
    } else if (role == "assistant") {
      json parts = json::array();
      if (!content.empty()) parts.push_back({{"text", content}});
      const json& calls = member(m, "tool_calls");
      if (calls.is_array()) {
        for (const json& call : calls)
          call_names[call.at("id").get<std::string>()] = call.at("name").get<std::string>();
        for (json& part : function_call_parts(calls, model, options))
          parts.push_back(std::move(part));
      }
      append_turn(contents, "model", std::move(parts));  // an empty turn is left out
    } else if (role == "tool") {
      std::string id = m.at("tool_call_id").get<std::string>();
      std::string name;
      if (auto it = call_names.find(id); it != call_names.end()) name = it->second;
      if (name.empty()) name = string_at(m, "name");
      if (name.empty())
        throw std::invalid_argument("tool result '" + id +
                                    "' answers no tool call of an earlier assistant turn");
      json part = {
          {"functionResponse", {{"name", name}, {"response", function_response_value(content)}}}};
      append_turn(contents, "user", json::array({std::move(part)}));
    } else {
      throw std::invalid_argument("unknown message role '" + role + "'");
    }
  }
  return contents;
}

// A candidate's parts: text, thoughts and function calls, appended to the response and sent
// to the sink. Function calls get ids call_<n> in the order of the whole answer.
std::optional<kit::CallError> take_parts(const json& parts, kit::ChatResponse* r,
                                         kit::EventSink* sink,
                                         const SignatureHandler& on_signature) {
  if (!parts.is_array()) return std::nullopt;
  for (const json& part : parts) {
    if (!part.is_object()) continue;
    if (const json& call = member(part, "functionCall"); call.is_object()) {
      kit::ToolCall tool;
      tool.id = "call_" + std::to_string(r->tool_calls.size() + 1);
      tool.name = string_at(call, "name");
      if (tool.name.empty()) return kit::transport_error("gemini: a function call has no name");
      if (auto error =
              kit::check_tool_arguments(kVendor, tool.name, member(call, "args"), &tool.arguments))
        return error;
      std::string signature = string_at(part, "thoughtSignature");
      if (!signature.empty() && on_signature) on_signature(tool.name, tool.arguments, signature);
      if (sink != nullptr)
        sink->tool_call_delta(static_cast<int32_t>(r->tool_calls.size()), tool.id, tool.name,
                              kit::json_text(tool.arguments));
      r->tool_calls.push_back(std::move(tool));
      continue;
    }
    std::string text = string_at(part, "text");
    if (text.empty()) continue;
    if (is_true(part, "thought")) {
      // Reasoning summaries: streamed only (the normalized response has no field for them).
      if (sink != nullptr) sink->reasoning_delta(text);
      continue;
    }
    r->text += text;
    if (sink != nullptr) sink->text_delta(text);
  }
  return std::nullopt;
}

bool is_blocked(const json& doc) {
  const json& candidates = member(doc, "candidates");
  bool no_candidates = !candidates.is_array() || candidates.empty();
  return no_candidates && !string_at(member(doc, "promptFeedback"), "blockReason").empty();
}

}  // namespace

std::string model_id(std::string_view model) {
  if (model.substr(0, 7) == "models/") model.remove_prefix(7);
  return std::string(model);
}

std::string endpoint_url(std::string_view base_url, std::string_view api_version,
                         std::string_view model, bool stream) {
  // The model comes from the workflow: encoded, it cannot leave its path segment.
  std::string url = std::string(base_url) + "/" + kit::percent_encode(api_version) + "/models/" +
                    kit::percent_encode(model_id(model)) +
                    (stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
  return url;
}

bool requires_thought_signatures(std::string_view model) {
  std::string id = model_id(model);
  if (id.rfind("gemini-", 0) != 0) return false;  // gemma-*, tuned models, ...
  std::string_view rest = std::string_view(id).substr(7);
  if (rest.empty() || !std::isdigit(static_cast<unsigned char>(rest[0])))
    return true;  // gemini-flash-latest, gemini-pro-latest: may be Gemini 3 or later
  int major = 0;
  for (size_t i = 0; i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i])); ++i)
    major = major * 10 + (rest[i] - '0');
  return major >= 3;
}

std::optional<kit::CallError> build_request_body(const json& request, const RequestOptions& options,
                                                 json* body) {
  try {
    json out = json::object();
    std::string model = request.at("model").get<std::string>();
    json system_parts = json::array();
    out["contents"] = build_contents(request.at("messages"), model, options, &system_parts);
    if (!system_parts.empty()) out["systemInstruction"] = {{"parts", std::move(system_parts)}};

    if (const json& tools = member(request, "tools"); tools.is_array() && !tools.empty()) {
      json declarations = json::array();
      for (const json& tool : tools) {
        // parametersJsonSchema takes JSON Schema as users write it ($ref/$defs, anyOf, const,
        // additionalProperties, "type": ["string","null"], ...). The older "parameters" field
        // is an OpenAPI 3.0 Schema subset that rejects many of those keywords with a 400, so
        // arbitrary tool schemas would fail there.
        json declaration = {{"name", tool.at("name")},
                            {"parametersJsonSchema", tool.at("parameters")}};
        if (!string_at(tool, "description").empty())
          declaration["description"] = tool["description"];
        declarations.push_back(std::move(declaration));
      }
      out["tools"] = json::array({{{"functionDeclarations", std::move(declarations)}}});
    }
    if (const json& choice = member(request, "tool_choice"); choice.is_string()) {
      const std::string& c = choice.get_ref<const std::string&>();
      std::string mode = c == "none" ? "NONE" : c == "required" ? "ANY" : "AUTO";
      out["toolConfig"] = {{"functionCallingConfig", {{"mode", mode}}}};
    } else if (choice.is_object()) {
      out["toolConfig"] = {
          {"functionCallingConfig",
           {{"mode", "ANY"}, {"allowedFunctionNames", json::array({choice.at("name")})}}}};
    }

    json config = json::object();
    if (const json& t = member(request, "temperature"); t.is_number()) config["temperature"] = t;
    if (const json& n = member(request, "max_tokens"); n.is_number_integer())
      config["maxOutputTokens"] = n;
    if (const json& stop = member(request, "stop"); stop.is_array() && !stop.empty())
      config["stopSequences"] = stop;
    if (const json& format = member(request, "response_format"); format.is_object()) {
      // responseJsonSchema takes JSON Schema as it is, like parametersJsonSchema above;
      // responseSchema is the OpenAPI subset. Gemini has no schema name: it is dropped.
      config["responseMimeType"] = "application/json";
      config["responseJsonSchema"] = format.at("schema");
    }
    if (options.include_thoughts) config["thinkingConfig"] = {{"includeThoughts", true}};
    if (!config.empty()) out["generationConfig"] = std::move(config);
    // "metadata" is troupe's own (who is asking); it never goes to the vendor.
    *body = std::move(out);
    return std::nullopt;
  } catch (const std::exception& e) {  // nlohmann's at()/get() on a malformed request
    return kit::invalid_argument(std::string("gemini: malformed request: ") + e.what());
  }
}

std::string map_finish_reason(const json& reason, bool has_tool_calls) {
  if (!reason.is_string()) return has_tool_calls ? "tool_calls" : "stop";
  const std::string& r = reason.get_ref<const std::string&>();
  if (r == "STOP") return has_tool_calls ? "tool_calls" : "stop";
  if (r == "MAX_TOKENS") return "length";
  if (r == "SAFETY" || r == "RECITATION" || r == "BLOCKLIST" || r == "PROHIBITED_CONTENT" ||
      r == "SPII" || r == "IMAGE_SAFETY")
    return "content_filter";
  return "error";  // OTHER, MALFORMED_FUNCTION_CALL, LANGUAGE, FINISH_REASON_UNSPECIFIED, ...
}

kit::Usage parse_usage(const json& usage) {
  kit::Usage u;
  u.input = count_at(usage, "promptTokenCount");
  u.cached_input = count_at(usage, "cachedContentTokenCount");
  u.reasoning = count_at(usage, "thoughtsTokenCount");
  u.output = count_at(usage, "candidatesTokenCount") + u.reasoning;
  return u;
}

std::optional<kit::CallError> parse_response(std::string_view body, kit::ChatResponse* out,
                                             const SignatureHandler& on_signature) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return kit::transport_error("gemini: response body is not a JSON object");
  if (doc.contains("error")) {
    kit::VendorError e = kit::read_gemini_error(doc);
    if (e.found) return kit::map_vendor_error(kVendor, e, "");
  }
  kit::ChatResponse r;
  r.model = string_at(doc, "modelVersion");
  r.request_id = string_at(doc, "responseId");
  r.usage = parse_usage(member(doc, "usageMetadata"));
  if (is_blocked(doc)) {  // the prompt itself was blocked: no answer at all
    r.finish_reason = "content_filter";
    *out = std::move(r);
    return std::nullopt;
  }
  const json& candidates = member(doc, "candidates");
  if (!candidates.is_array() || candidates.empty() || !candidates[0].is_object())
    return kit::transport_error("gemini: response has no candidates");
  const json& candidate = candidates[0];
  if (auto error =
          take_parts(member(member(candidate, "content"), "parts"), &r, nullptr, on_signature))
    return error;
  r.finish_reason = map_finish_reason(member(candidate, "finishReason"), !r.tool_calls.empty());
  *out = std::move(r);
  return std::nullopt;
}

std::optional<kit::CallError> StreamDecoder::on_sse(const kit::SseEvent& event,
                                                    kit::EventSink& sink) {
  json chunk = json::parse(event.data, nullptr, /*allow_exceptions=*/false);
  if (chunk.is_discarded() || !(chunk.is_object() || chunk.is_array()))
    return kit::transport_error("gemini: stream event is not a JSON object");
  kit::VendorError e = kit::read_gemini_error(chunk);
  if (e.found) return kit::map_vendor_error(kVendor, e, response_.request_id);
  if (!chunk.is_object()) return kit::transport_error("gemini: stream event is not a JSON object");

  if (std::string id = string_at(chunk, "responseId"); !id.empty()) response_.request_id = id;
  if (std::string model = string_at(chunk, "modelVersion"); !model.empty()) response_.model = model;
  if (is_blocked(chunk)) {
    blocked_ = true;
    done_ = true;
  }
  const json& candidates = member(chunk, "candidates");
  if (candidates.is_array() && !candidates.empty()) {
    const json& candidate = candidates[0];  // one candidate (candidateCount is never sent)
    if (auto error = take_parts(member(member(candidate, "content"), "parts"), &response_, &sink,
                                on_signature_))
      return error;
    if (const json& reason = member(candidate, "finishReason"); reason.is_string()) {
      finish_reason_ = reason;
      done_ = true;  // the last chunk of a complete answer carries the finish reason
    }
  }
  if (const json& usage = member(chunk, "usageMetadata"); usage.is_object()) {
    kit::Usage u = parse_usage(usage);
    json as_json = u.to_json();
    if (as_json != response_.usage.to_json() || done_) sink.usage(as_json);
    response_.usage = u;
  }
  return std::nullopt;
}

std::optional<kit::CallError> StreamDecoder::finish(kit::ChatResponse* out) {
  response_.finish_reason = blocked_
                                ? "content_filter"
                                : map_finish_reason(finish_reason_, !response_.tool_calls.empty());
  *out = response_;
  return std::nullopt;
}

}  // namespace troupe::gemini
