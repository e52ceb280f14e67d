// openai_wire.cpp: Chat Completions <-> normalized chat shapes (see openai_wire.h).
#include "openai_wire.h"

#include "common/http_error.h"
#include "common/json_access.h"
#include "common/settings.h"

namespace troupe::openai {
namespace {

using nlohmann::json;

using kit::count_at;
using kit::member;
using kit::string_at;

json tool_call_to_wire(const json& call) {
  return {{"id", call.at("id")},
          {"type", "function"},
          {"function",
           {{"name", call.at("name")},
            {"arguments", kit::json_text(call.value("arguments", json::object()))}}}};
}

json message_to_wire(const json& m) {
  std::string role = m.at("role").get<std::string>();
  json out = {{"role", role}};
  const std::string content = m.value("content", "");
  if (role == "tool") {
    out["tool_call_id"] = m.at("tool_call_id");
    out["content"] = content;
    return out;
  }
  if (role != "system" && role != "user" && role != "assistant")
    throw std::invalid_argument("unknown message role '" + role + "'");
  out["content"] = content;
  if (role == "assistant") {
    const json& calls = member(m, "tool_calls");
    if (calls.is_array() && !calls.empty()) {
      json wire = json::array();
      for (const json& call : calls)
        wire.push_back(tool_call_to_wire(call));
      out["tool_calls"] = std::move(wire);
      if (content.empty()) out["content"] = nullptr;  // a turn that only calls tools
    }
  }
  if (m.contains("name")) out["name"] = m.at("name");
  return out;
}

// Appends the tool calls of a response message ("arguments" is JSON text; some compatible
// servers send an object).
std::optional<kit::CallError> take_tool_calls(const json& calls, kit::ChatResponse* out) {
  if (!calls.is_array()) return std::nullopt;
  for (const json& call : calls) {
    const json& function = member(call, "function");
    kit::ToolCall tool;
    tool.id = string_at(call, "id");
    if (tool.id.empty()) tool.id = "call_" + std::to_string(out->tool_calls.size() + 1);
    tool.name = string_at(function, "name");
    if (tool.name.empty()) return kit::transport_error("openai: a tool call has no name");
    if (auto error = kit::read_tool_arguments(kVendor, tool.name, member(function, "arguments"),
                                              &tool.arguments))
      return error;
    out->tool_calls.push_back(std::move(tool));
  }
  return std::nullopt;
}

// A model that called tools but reports "stop" (some compatible servers do) called tools.
void settle_finish_reason(kit::ChatResponse* r, bool refused) {
  if (!r->tool_calls.empty() && r->finish_reason == "stop") r->finish_reason = "tool_calls";
  if (refused && r->finish_reason == "stop") r->finish_reason = "content_filter";
}

}  // namespace

std::string default_max_tokens_param(std::string_view base_url) {
  return kit::url_host(base_url) == "api.openai.com" ? "max_completion_tokens" : "max_tokens";
}

std::optional<kit::CallError> build_request_body(const json& request, const RequestOptions& options,
                                                 json* body) {
  try {
    json out = json::object();
    out["model"] = request.at("model").get<std::string>();
    json messages = json::array();
    for (const json& m : request.at("messages"))
      messages.push_back(message_to_wire(m));
    out["messages"] = std::move(messages);

    if (const json& tools = member(request, "tools"); tools.is_array() && !tools.empty()) {
      json wire = json::array();
      for (const json& tool : tools) {
        json function = {{"name", tool.at("name")}, {"parameters", tool.at("parameters")}};
        if (!string_at(tool, "description").empty()) function["description"] = tool["description"];
        wire.push_back({{"type", "function"}, {"function", std::move(function)}});
      }
      out["tools"] = std::move(wire);
    }
    if (const json& choice = member(request, "tool_choice"); choice.is_string()) {
      out["tool_choice"] = choice;
    } else if (choice.is_object()) {
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", choice.at("name")}}}};
    }
    if (const json& t = member(request, "temperature"); t.is_number()) out["temperature"] = t;
    if (const json& n = member(request, "max_tokens"); n.is_number_integer())
      out[options.max_tokens_param] = n;
    if (const json& stop = member(request, "stop"); stop.is_array() && !stop.empty())
      out["stop"] = stop;
    if (const json& format = member(request, "response_format"); format.is_object()) {
      std::string name = string_at(format, "name");
      out["response_format"] = {{"type", "json_schema"},
                                {"json_schema",
                                 {{"name", name.empty() ? "structured_output" : name},
                                  {"schema", format.at("schema")},
                                  {"strict", false}}}};
    }
    if (options.stream) {
      out["stream"] = true;
      if (options.include_usage) out["stream_options"] = {{"include_usage", true}};
    }
    // "metadata" is troupe's own (who is asking); it never goes to the vendor.
    *body = std::move(out);
    return std::nullopt;
  } catch (const std::exception& e) {  // nlohmann's at()/get() on a malformed request
    return kit::invalid_argument(std::string("openai: malformed request: ") + e.what());
  }
}

std::string map_finish_reason(const json& reason) {
  if (!reason.is_string()) return "stop";
  const std::string& r = reason.get_ref<const std::string&>();
  if (r == "stop" || r == "length" || r == "tool_calls" || r == "content_filter") return r;
  if (r == "function_call") return "tool_calls";
  return "error";
}

kit::Usage parse_usage(const json& usage) {
  kit::Usage u;
  u.input = count_at(usage, "prompt_tokens");
  u.output = count_at(usage, "completion_tokens");
  u.cached_input = count_at(member(usage, "prompt_tokens_details"), "cached_tokens");
  u.reasoning = count_at(member(usage, "completion_tokens_details"), "reasoning_tokens");
  return u;
}

std::optional<kit::CallError> parse_response(std::string_view body, kit::ChatResponse* out) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return kit::transport_error("openai: response body is not a JSON object");
  if (doc.contains("error")) {  // a 2xx carrying an error (some compatible servers)
    kit::VendorError e = kit::read_openai_error(doc);
    if (e.found) return kit::map_vendor_error(kVendor, e, "");
  }
  const json& choices = member(doc, "choices");
  if (!choices.is_array() || choices.empty() || !member(choices[0], "message").is_object())
    return kit::transport_error("openai: response has no choices[0].message");
  const json& choice = choices[0];
  const json& message = choice["message"];

  kit::ChatResponse r;
  r.text = string_at(message, "content");
  std::string refusal = string_at(message, "refusal");
  bool refused = r.text.empty() && !refusal.empty();
  if (refused) r.text = refusal;
  if (auto error = take_tool_calls(member(message, "tool_calls"), &r)) return error;
  r.finish_reason = map_finish_reason(member(choice, "finish_reason"));
  r.usage = parse_usage(member(doc, "usage"));
  r.model = string_at(doc, "model");
  settle_finish_reason(&r, refused);
  *out = std::move(r);
  return std::nullopt;
}

std::optional<kit::CallError> StreamDecoder::on_sse(const kit::SseEvent& event,
                                                    kit::EventSink& sink) {
  std::string_view data = event.data;
  while (!data.empty() && (data.back() == ' ' || data.back() == '\r'))
    data.remove_suffix(1);
  if (data == "[DONE]") {
    done_ = true;
    return std::nullopt;
  }
  json chunk = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (chunk.is_discarded() || !chunk.is_object())
    return kit::transport_error("openai: stream event is not a JSON object");
  if (chunk.contains("error")) {
    kit::VendorError e = kit::read_openai_error(chunk);
    if (e.found) return kit::map_vendor_error(kVendor, e, "");
  }
  if (response_.model.empty()) response_.model = string_at(chunk, "model");

  const json& choices = member(chunk, "choices");
  if (choices.is_array()) {
    for (const json& choice : choices) {
      const json& index = member(choice, "index");
      if (index.is_number_integer() && index.get<int64_t>() != 0) continue;  // n = 1 only
      take_delta(choice, sink);
    }
  }
  // include_usage: a last chunk with empty choices and the usage; Groq sends x_groq.usage.
  if (const json& usage = member(chunk, "usage"); usage.is_object()) {
    take_usage(usage, sink);
  } else if (const json& groq = member(member(chunk, "x_groq"), "usage"); groq.is_object()) {
    take_usage(groq, sink);
  }
  return std::nullopt;
}

void StreamDecoder::take_usage(const json& usage, kit::EventSink& sink) {
  response_.usage = parse_usage(usage);
  sink.usage(response_.usage.to_json());
}

void StreamDecoder::take_delta(const json& choice, kit::EventSink& sink) {
  const json& delta = member(choice, "delta");
  if (std::string text = string_at(delta, "content"); !text.empty()) {
    response_.text += text;
    sink.text_delta(text);
  }
  // Reasoning text of compatible servers (DeepSeek, vLLM: reasoning_content; OpenRouter,
  // Ollama: reasoning). Streamed only: the normalized response has no field for it.
  std::string reasoning = string_at(delta, "reasoning_content");
  if (reasoning.empty()) reasoning = string_at(delta, "reasoning");
  if (!reasoning.empty()) sink.reasoning_delta(reasoning);
  if (std::string refusal = string_at(delta, "refusal"); !refusal.empty()) {
    refused_ = true;
    response_.text += refusal;
    sink.text_delta(refusal);
  }
  if (const json& calls = member(delta, "tool_calls"); calls.is_array()) {
    int position = 0;
    for (const json& call : calls) {
      const json& index_json = member(call, "index");
      int index = index_json.is_number_integer() ? index_json.get<int>() : position;
      ++position;
      const json& function = member(call, "function");
      std::string id = string_at(call, "id");
      std::string name = string_at(function, "name");
      std::string arguments = string_at(function, "arguments");
      tools_.add(index, id, name, arguments);
      sink.tool_call_delta(index, id, name, arguments);
    }
  }
  if (const json& reason = member(choice, "finish_reason"); !reason.is_null())
    response_.finish_reason = map_finish_reason(reason);
}

std::optional<kit::CallError> StreamDecoder::finish(kit::ChatResponse* out) {
  if (auto error = tools_.finish(kVendor, &response_.tool_calls)) return error;
  settle_finish_reason(&response_, refused_);
  *out = response_;
  return std::nullopt;
}

}  // namespace troupe::openai
