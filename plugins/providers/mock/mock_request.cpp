// mock_request.cpp: reading a chat request as the mock sees it (see mock_request.h).
#include "mock_request.h"

#include <cstddef>

#include <nlohmann/json.hpp>

namespace troupe::mock {

using nlohmann::json;

namespace {

// Text of a message's "content": a string, or null/absent for an assistant turn that only
// calls tools.
std::string content_text(const json& m, const std::string& where) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return {};
  if (!it->is_string()) field_error(where + ".content", "must be a string");
  return it->get<std::string>();
}

std::string optional_string(const json& m, const char* key, const std::string& where) {
  auto it = m.find(key);
  if (it == m.end() || it->is_null()) return {};
  return string_field(*it, where + "." + key);
}

}  // namespace

const Message* last_with_role(const ChatRequest& r, std::string_view role) {
  for (auto it = r.messages.rbegin(); it != r.messages.rend(); ++it) {
    if (it->role == role) return &*it;
  }
  return nullptr;
}

ChatRequest parse_request(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) field_error("request", "not valid JSON");
  if (!j.is_object()) field_error("request", "must be a JSON object");
  ChatRequest r;
  r.model = optional_string(j, "model", "request");
  auto messages = j.find("messages");
  if (messages == j.end()) field_error("request.messages", "is required");
  if (!messages->is_array()) field_error("request.messages", "must be an array");
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    std::string where = "request.messages[" + std::to_string(i) + "]";
    if (!m.is_object()) field_error(where, "must be an object");
    Message msg;
    auto role = m.find("role");
    if (role == m.end()) field_error(where + ".role", "is required");
    msg.role = string_field(*role, where + ".role");
    msg.content = content_text(m, where);
    msg.name = optional_string(m, "name", where);
    msg.tool_call_id = optional_string(m, "tool_call_id", where);
    if (auto calls = m.find("tool_calls"); calls != m.end() && calls->is_array()) {
      for (const json& c : *calls) {
        if (!c.is_object()) continue;
        ToolCall t;
        t.id = c.value("id", "");
        t.name = c.value("name", "");
        msg.tool_calls.push_back(std::move(t));
      }
    }
    r.messages.push_back(std::move(msg));
  }
  if (auto tools = j.find("tools"); tools != j.end()) {
    r.has_tools = tools->is_array() && !tools->empty();
  }
  if (auto rf = j.find("response_format"); rf != j.end() && rf->is_object()) {
    if (auto schema = rf->find("schema"); schema != rf->end() && schema->is_object()) {
      r.response_schema_json = schema->dump();
    }
  }
  if (auto meta = j.find("metadata"); meta != j.end() && meta->is_object()) {
    if (auto a = meta->find("agent"); a != meta->end() && a->is_string()) r.agent = *a;
    if (auto ro = meta->find("role"); ro != meta->end() && ro->is_string()) r.role = *ro;
  }
  return r;
}

}  // namespace troupe::mock
