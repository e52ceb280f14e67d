// vendor_answer.cpp: what the fake vendor answers a chat once the reply is chosen — the default
// content (a forced tool's call, JSON generated from a structured-output schema, the tool
// results, or an echo), and the reply as Material for the vendor's render.
#include "support/test_text.h"
#include "support/vendor_wire.h"

namespace troupe::test {
namespace {

// generate_from_schema below `root` (which $ref pointers resolve in), `depth` levels down.
json generate_value(const json& schema, const json& root, int depth) {
  if (depth > 24 || !schema.is_object()) return "example";
  if (auto ref = schema.find("$ref"); ref != schema.end() && ref->is_string()) {
    std::string pointer = ref->get<std::string>();
    if (pointer.starts_with("#")) {
      try {
        return generate_value(root.at(json::json_pointer(pointer.substr(1))), root, depth + 1);
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
          return generate_value(option, root, depth + 1);
      return nullptr;
    }
  }
  std::string type;
  if (auto t = schema.find("type"); t != schema.end()) {
    if (t->is_string()) {
      type = t->get<std::string>();
    } else if (t->is_array()) {
      for (const auto& option : *t)
        if (option.is_string() && lower(option.get<std::string>()) != "null") {
          type = option.get<std::string>();
          break;
        }
      if (type.empty()) type = "null";
    }
  }
  type = lower(type);  // Gemini's OpenAPI subset writes OBJECT, STRING, ...
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
          out[key] = generate_value((*properties)[key], root, depth + 1);
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
        item = items->empty() ? json("example") : generate_value((*items)[0], root, depth + 1);
      else
        item = generate_value(*items, root, depth + 1);
    }
    return json::array({item});
  }
  if (type == "integer" || type == "number") return 1;
  if (type == "boolean") return true;
  if (type == "null") return nullptr;
  return "example";
}

// The default answer: a forced tool gets a call with arguments generated from its schema; a
// structured-output schema gets JSON generated from it; a conversation ending with tool results
// gets them joined; anything else an echo of the last user message.
void default_content(FakeReply& reply, const Chat& chat) {
  const SeenChat& seen = chat.seen;
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
}

}  // namespace

json generate_from_schema(const json& schema) {
  return generate_value(schema, schema, 0);
}

void complete_reply(FakeReply& reply, const Chat& chat, const VendorWire& wire,
                    const std::string& answer) {
  // Faults that still answer (slow-body, split-bytes, ...) answer like the default would.
  const bool needs_content =
      reply.fault.empty()
          ? answer == "default"
          : fault_status(wire, reply.fault) == 0 && reply.text.empty() && reply.tool_calls.empty();
  if (reply.tool_calls.empty() && (reply.fault.empty() || needs_content)) {
    if (needs_content) {
      default_content(reply, chat);
    } else if (answer != "queue" && !chat.seen.forced_tool.empty()) {
      // A rule's JSON reply to a request that forces a tool (Anthropic's structured output)
      // becomes that tool's input, so one scenario serves every vendor.
      json parsed = json::parse(reply.text, nullptr, false);
      if (parsed.is_object()) {
        FakeToolCall call;
        call.name = chat.seen.forced_tool;
        call.arguments = parsed;
        reply.tool_calls.push_back(std::move(call));
        reply.text.clear();
      }
    }
  }
  if (reply.fault == "utf8-split") reply.text = VendorServer::utf8_text();
  if (reply.fault == "huge") reply.text = VendorServer::huge_text();
}

Material material_for(const FakeReply& reply, const Chat& chat, const VendorWire& wire,
                      uint64_t number, const std::string& request_id) {
  Material m;
  m.model = chat.seen.model;
  m.number = number;
  m.text = reply.text;
  m.reasoning = reply.reasoning;
  if (!reply.vendor_finish.empty()) {
    m.finish = reply.vendor_finish;
  } else {
    std::string finish = reply.finish;
    if (finish.empty()) finish = reply.tool_calls.empty() ? "stop" : "tool_calls";
    m.finish = wire.finish(finish);
  }
  m.usage = reply.usage;
  m.include_usage = chat.include_usage;
  m.gemini_sse = chat.gemini_sse;
  m.request_id = request_id;
  for (const auto& delta : reply.openai_deltas)
    m.openai_deltas.push_back(ojson::parse(delta.dump()));
  m.terminate = !(reply.fault == "no-terminator" && chat.seen.stream);
  for (size_t i = 0; i < reply.tool_calls.size(); ++i) {
    const FakeToolCall& call = reply.tool_calls[i];
    ToolOut t;
    t.name = call.name;
    t.arguments = ojson::parse(call.arguments.dump());
    t.raw = call.raw_arguments;
    t.text = t.raw.empty() ? call.arguments.dump() : t.raw;
    t.id = wire.tool_id_prefix + hex_id(number, 6) + "_" + std::to_string(i + 1);
    m.tools.push_back(std::move(t));
  }
  return m;
}

}  // namespace troupe::test
