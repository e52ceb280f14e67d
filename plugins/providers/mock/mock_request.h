// mock_request.h: the parts of a chat request (sdk/schemas/chat_request.schema.json) the mock
// looks at, and their reader.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mock_settings.h"

namespace troupe::mock {

struct Message {
  std::string role;
  std::string content;
  std::string name;
  std::string tool_call_id;
  std::vector<ToolCall> tool_calls;  // assistant messages
};

struct ChatRequest {
  std::string model;
  std::vector<Message> messages;
  bool has_tools = false;
  std::string response_schema_json;  // response_format.schema, "" when not asked for
  std::string agent;                 // metadata.agent
  std::string role;                  // metadata.role
};

// Throws std::invalid_argument naming what is wrong with the request
// ("mock: request.messages[0].role: is required"), as field_error() does.
ChatRequest parse_request(std::string_view json);

// The last message with this role, or nullptr.
const Message* last_with_role(const ChatRequest& request, std::string_view role);

}  // namespace troupe::mock
