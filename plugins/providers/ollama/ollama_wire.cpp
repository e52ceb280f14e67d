// ollama_wire.cpp: Ollama /api/chat <-> normalized chat shapes (see ollama_wire.h).
#include "ollama_wire.h"

#include <map>
#include <stdexcept>

#include "common/http_error.h"
#include "common/json_access.h"

namespace troupe::ollama {
namespace {

using nlohmann::json;

using kit::count_at;
using kit::member;
using kit::string_at;

json tool_call_to_wire(const json& call) {
  json arguments = call.value("arguments", json::object());
  if (arguments.is_null()) arguments = json::object();
  return {{"function", {{"name", call.at("name")}, {"arguments", std::move(arguments)}}}};
}

// tool_call_id -> tool name, from the assistant turns seen so far: Ollama identifies a tool
// result by the tool's name, not by a call id.
using CallNames = std::map<std::string, std::string>;

json message_to_wire(const json& m, CallNames& call_names) {
  std::string role = m.at("role").get<std::string>();
  if (role != "system" && role != "user" && role != "assistant" && role != "tool")
    throw std::invalid_argument("unknown message role '" + role + "'");
  json out = {{"role", role}, {"content", m.value("content", "")}};
  if (role == "tool") {
    std::string name = string_at(m, "name");
    if (name.empty()) {
      auto it = call_names.find(string_at(m, "tool_call_id"));
      if (it != call_names.end()) name = it->second;
    }
    if (!name.empty()) out["tool_name"] = name;
    return out;
  }
  if (role == "assistant") {
    const json& calls = member(m, "tool_calls");
    if (calls.is_array() && !calls.empty()) {
      json wire = json::array();
      for (const json& call : calls) {
        wire.push_back(tool_call_to_wire(call));
        call_names[string_at(call, "id")] = call.at("name").get<std::string>();
      }
      out["tool_calls"] = std::move(wire);
    }
  }
  return out;  // "name" (the speaker) has no place on this wire
}

json tool_to_wire(const json& tool) {
  json function = {{"name", tool.at("name")}, {"parameters", tool.at("parameters")}};
  if (!string_at(tool, "description").empty()) function["description"] = tool["description"];
  return {{"type", "function"}, {"function", std::move(function)}};
}

// Appends the tool calls of one message (a whole response, or one stream line) and, when
// streaming, tells the sink about each: Ollama sends every call whole, arguments parsed.
// Ollama sends no ids: calls are numbered call_1, call_2, ... across the answer.
std::optional<kit::CallError> take_tool_calls(const json& calls, kit::ChatResponse* out,
                                              kit::EventSink* sink) {
  if (!calls.is_array()) return std::nullopt;
  for (const json& call : calls) {
    const json& function = member(call, "function");
    kit::ToolCall tool;
    tool.name = string_at(function, "name");
    if (tool.name.empty()) return kit::transport_error("ollama: a tool call has no name");
    tool.id = string_at(call, "id");  // newer servers and proxies may send one: keep it
    if (tool.id.empty()) tool.id = "call_" + std::to_string(out->tool_calls.size() + 1);
    if (auto error = kit::read_tool_arguments(kVendor, tool.name, member(function, "arguments"),
                                              &tool.arguments))
      return error;
    if (sink != nullptr)
      sink->tool_call_delta(static_cast<int32_t>(out->tool_calls.size()), tool.id, tool.name,
                            kit::json_text(tool.arguments));
    out->tool_calls.push_back(std::move(tool));
  }
  return std::nullopt;
}

// An {"error":"..."} object (a 2xx body or a stream line), mapped like a vendor error.
std::optional<kit::CallError> error_in(const json& doc) {
  if (!doc.contains("error")) return std::nullopt;
  kit::VendorError e = kit::read_ollama_error(doc);
  if (!e.found) return std::nullopt;
  return kit::map_vendor_error(kVendor, e, "");
}

}  // namespace

std::optional<kit::CallError> build_request_body(const json& request, const RequestOptions& options,
                                                 json* body) {
  try {
    json out = json::object();
    out["model"] = request.at("model").get<std::string>();
    json messages = json::array();
    CallNames call_names;
    for (const json& m : request.at("messages"))
      messages.push_back(message_to_wire(m, call_names));
    out["messages"] = std::move(messages);

    // Ollama has no tool_choice: "none" offers no tools, {name} offers only that tool.
    const json& choice = member(request, "tool_choice");
    std::string only_tool = choice.is_object() ? choice.at("name").get<std::string>() : "";
    bool no_tools = choice.is_string() && choice.get<std::string>() == "none";
    if (const json& tools = member(request, "tools"); tools.is_array() && !no_tools) {
      json wire = json::array();
      for (const json& tool : tools) {
        if (!only_tool.empty() && string_at(tool, "name") != only_tool) continue;
        wire.push_back(tool_to_wire(tool));
      }
      if (!only_tool.empty() && wire.empty())
        return kit::invalid_argument("ollama: tool_choice names '" + only_tool +
                                     "', which is not among the tools");
      if (!wire.empty()) out["tools"] = std::move(wire);
    }

    if (const json& format = member(request, "response_format"); format.is_object())
      out["format"] = format.at("schema");

    json model_options = options.model_options.is_object() ? options.model_options : json::object();
    if (const json& t = member(request, "temperature"); t.is_number())
      model_options["temperature"] = t;
    if (const json& n = member(request, "max_tokens"); n.is_number_integer())
      model_options["num_predict"] = n;
    if (const json& stop = member(request, "stop"); stop.is_array() && !stop.empty())
      model_options["stop"] = stop;
    if (!model_options.empty()) out["options"] = std::move(model_options);

    out["stream"] = options.stream;  // always explicit: Ollama's default is true
    if (!options.keep_alive.is_null()) out["keep_alive"] = options.keep_alive;
    if (!options.think.is_null()) out["think"] = options.think;
    // "metadata" is troupe's own (who is asking); it never goes to the vendor.
    *body = std::move(out);
    return std::nullopt;
  } catch (const std::exception& e) {  // nlohmann's at()/get() on a malformed request
    return kit::invalid_argument(std::string("ollama: malformed request: ") + e.what());
  }
}

std::string map_finish_reason(const json& done_reason, bool has_tool_calls) {
  std::string reason = "stop";
  if (done_reason.is_string()) {
    const std::string& r = done_reason.get_ref<const std::string&>();
    if (r == "length") {
      reason = "length";
    } else if (!r.empty() && r != "stop") {
      reason = "error";  // e.g. "connection_closed", "unload"
    }
  }
  // Ollama reports "stop" for an answer that calls tools.
  if (has_tool_calls && reason != "error") reason = "tool_calls";
  return reason;
}

kit::Usage parse_usage(const json& response) {
  kit::Usage u;
  u.input = count_at(response, "prompt_eval_count");
  u.output = count_at(response, "eval_count");
  return u;
}

std::optional<kit::CallError> parse_response(std::string_view body, kit::ChatResponse* out) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return kit::transport_error("ollama: response body is not a JSON object");
  if (auto error = error_in(doc)) return error;
  const json& message = member(doc, "message");
  if (!message.is_object()) return kit::transport_error("ollama: response has no message");

  kit::ChatResponse r;
  r.text = string_at(message, "content");
  // message.thinking has no place in the normalized response (it is streamed only).
  if (auto error = take_tool_calls(member(message, "tool_calls"), &r, nullptr)) return error;
  r.finish_reason = map_finish_reason(member(doc, "done_reason"), !r.tool_calls.empty());
  r.usage = parse_usage(doc);
  r.model = string_at(doc, "model");
  *out = std::move(r);
  return std::nullopt;
}

std::optional<kit::CallError> StreamDecoder::on_line(std::string_view line, kit::EventSink& sink) {
  json doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return kit::transport_error("ollama: stream line is not a JSON object");
  if (auto error = error_in(doc)) return error;
  if (response_.model.empty()) response_.model = string_at(doc, "model");

  const json& message = member(doc, "message");
  if (std::string thinking = string_at(message, "thinking"); !thinking.empty())
    sink.reasoning_delta(thinking);
  if (std::string text = string_at(message, "content"); !text.empty()) {
    response_.text += text;
    sink.text_delta(text);
  }
  if (auto error = take_tool_calls(member(message, "tool_calls"), &response_, &sink)) return error;

  if (const json& done = member(doc, "done"); done.is_boolean() && done.get<bool>()) {
    done_ = true;
    done_reason_ = member(doc, "done_reason");
    response_.usage = parse_usage(doc);
    sink.usage(response_.usage.to_json());
  }
  return std::nullopt;
}

std::optional<kit::CallError> StreamDecoder::finish(kit::ChatResponse* out) {
  response_.finish_reason = map_finish_reason(done_reason_, !response_.tool_calls.empty());
  *out = response_;
  return std::nullopt;
}

}  // namespace troupe::ollama
