// chat_response.cpp: building the normalized chat response (see chat_response.h).
#include "common/chat_response.h"

#include "common/json_access.h"

namespace troupe::kit {

nlohmann::json Usage::to_json() const {
  nlohmann::json out{{"input_tokens", input},
                     {"output_tokens", output},
                     {"cached_input_tokens", cached_input},
                     {"reasoning_tokens", reasoning},
                     {"total_tokens", input + output}};
  if (cache_write > 0) out["cache_write_tokens"] = cache_write;
  return out;
}

nlohmann::json ChatResponse::to_json() const {
  nlohmann::json calls = nlohmann::json::array();
  for (const ToolCall& call : tool_calls)
    calls.push_back({{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}});
  nlohmann::json out = {{"text", text},
                        {"tool_calls", std::move(calls)},
                        {"finish_reason", finish_reason},
                        {"usage", usage.to_json()},
                        {"model", model}};
  if (!request_id.empty()) out["request_id"] = request_id;
  return out;
}

std::string ChatResponse::to_json_text() const {
  return json_text(to_json());
}

namespace {

CallError not_json(std::string_view vendor, std::string_view name) {
  return transport_error(std::string(vendor) + ": tool call '" + std::string(name) +
                         "' has arguments that are not JSON");
}

}  // namespace

std::optional<CallError> parse_tool_arguments(std::string_view vendor, std::string_view name,
                                              std::string_view text, nlohmann::json* out) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    *out = nlohmann::json::object();
    return std::nullopt;
  }
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return not_json(vendor, name);
  return check_tool_arguments(vendor, name, parsed, out);
}

std::optional<CallError> check_tool_arguments(std::string_view vendor, std::string_view name,
                                              const nlohmann::json& value, nlohmann::json* out) {
  if (value.is_null()) {
    *out = nlohmann::json::object();
    return std::nullopt;
  }
  if (!value.is_object()) {
    return transport_error(std::string(vendor) + ": tool call '" + std::string(name) +
                           "' has arguments that are not a JSON object");
  }
  *out = value;
  return std::nullopt;
}

std::optional<CallError> read_tool_arguments(std::string_view vendor, std::string_view name,
                                             const nlohmann::json& value, nlohmann::json* out) {
  if (value.is_string())
    return parse_tool_arguments(vendor, name, value.get_ref<const std::string&>(), out);
  return check_tool_arguments(vendor, name, value, out);
}

void ToolCallAccumulator::add(int index, std::string_view id, std::string_view name,
                              std::string_view arguments) {
  Pending& call = calls_[index];
  if (call.id.empty() && !id.empty()) call.id.assign(id);
  if (call.name.empty() && !name.empty()) call.name.assign(name);
  call.arguments.append(arguments);
}

std::optional<CallError> ToolCallAccumulator::finish(std::string_view vendor,
                                                     std::vector<ToolCall>* out) const {
  out->clear();
  for (const auto& [index, pending] : calls_) {
    ToolCall call;
    call.id = pending.id.empty() ? "call_" + std::to_string(out->size() + 1) : pending.id;
    call.name = pending.name;
    if (call.name.empty())
      return transport_error(std::string(vendor) + ": tool call " + std::to_string(index) +
                             " has no name");
    if (auto error = parse_tool_arguments(vendor, call.name, pending.arguments, &call.arguments))
      return error;
    out->push_back(std::move(call));
  }
  return std::nullopt;
}

}  // namespace troupe::kit
