// anthropic_wire.cpp: Messages API <-> normalized chat shapes (see anthropic_wire.h).
#include "anthropic_wire.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <vector>

#include "common/http_error.h"
#include "common/json_access.h"

namespace troupe::anthropic {
namespace {

using nlohmann::json;

constexpr size_t kMaxToolName = 64;

using kit::count_at;
using kit::member;
using kit::string_at;

bool wire_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool valid_tool_name(const std::string& name) {
  return !name.empty() && name.size() <= kMaxToolName &&
         std::all_of(name.begin(), name.end(), wire_char);
}

// Characters the wire does not take become '_' (tool names and tool-use ids).
std::string sanitize(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (!wire_char(c)) c = '_';
  return out;
}

// Gives every troupe tool name a wire name: valid names keep theirs, the others (e.g.
// "github.get_pull_request") get a sanitized one that no other tool has.
class ToolNamer {
 public:
  explicit ToolNamer(WireContext* context) : context_(context) {}

  // Names that are already valid first, so that they always keep their own name.
  void reserve(const std::vector<std::string>& names) {
    for (const std::string& name : names)
      if (valid_tool_name(name)) wire(name);
    for (const std::string& name : names)
      wire(name);
  }

  std::string wire(const std::string& name) {
    if (auto it = to_wire_.find(name); it != to_wire_.end()) return it->second;
    std::string candidate = fresh(name);
    to_wire_[name] = candidate;
    if (candidate != name) context_->renamed_tools[candidate] = name;
    return candidate;
  }

  // A wire name no tool has yet, close to `name` (for the structured-output tool).
  std::string fresh(const std::string& name) {
    std::string base = sanitize(name).substr(0, kMaxToolName);
    if (base.empty()) base = "tool";
    std::string candidate = base;
    for (int n = 2; taken_.count(candidate) != 0; ++n) {
      std::string suffix = "_" + std::to_string(n);
      candidate = base.substr(0, kMaxToolName - suffix.size()) + suffix;
    }
    taken_.insert(candidate);
    return candidate;
  }

 private:
  WireContext* context_;
  std::map<std::string, std::string> to_wire_;
  std::set<std::string> taken_;
};

// Every tool name the request mentions: offered tools, earlier calls, the forced tool.
std::vector<std::string> tool_names_of(const json& request) {
  std::vector<std::string> names;
  if (const json& tools = member(request, "tools"); tools.is_array())
    for (const json& tool : tools)
      names.push_back(tool.at("name").get<std::string>());
  for (const json& m : request.at("messages"))
    if (const json& calls = member(m, "tool_calls"); calls.is_array())
      for (const json& call : calls)
        names.push_back(call.at("name").get<std::string>());
  if (const json& choice = member(request, "tool_choice"); choice.is_object())
    names.push_back(choice.at("name").get<std::string>());
  return names;
}

// The conversation as alternating user/assistant turns of content blocks.
class Turns {
 public:
  void add(const char* role, json block) {
    if (turns_.empty() || turns_.back()["role"] != role)
      turns_.push_back({{"role", role}, {"content", json::array()}});
    turns_.back()["content"].push_back(std::move(block));
  }

  bool has_tool_blocks() const {
    for (const json& turn : turns_)
      for (const json& block : turn["content"]) {
        std::string type = block["type"].get<std::string>();
        if (type == "tool_use" || type == "tool_result") return true;
      }
    return false;
  }

  json finish() {
    for (json& turn : turns_) {
      // The API wants a user turn's tool results before any text in it.
      json& content = turn["content"];
      std::stable_partition(content.begin(), content.end(),
                            [](const json& b) { return b["type"] == "tool_result"; });
    }
    // A conversation may end with an assistant turn the model continues; the API refuses
    // one that ends in whitespace.
    if (!turns_.empty() && turns_.back()["role"] == "assistant") {
      json& content = turns_.back()["content"];
      json& last = content.back();
      if (last["type"] == "text") {
        std::string text = last["text"].get<std::string>();
        text.erase(text.find_last_not_of(" \t\r\n") + 1);
        if (text.empty()) {
          content.erase(content.size() - 1);
          if (content.empty()) turns_.pop_back();
        } else {
          last["text"] = text;
        }
      }
    }
    return json(std::move(turns_));
  }

 private:
  std::vector<json> turns_;
};

json text_block(const std::string& text) {
  return {{"type", "text"}, {"text", text}};
}

void add_message(const json& m, ToolNamer& namer, std::string* system, Turns* turns) {
  const std::string role = m.at("role").get<std::string>();
  const std::string content = m.value("content", "");
  if (role == "system") {
    // The API has one top-level system prompt: every system message goes there, in order.
    if (content.empty()) return;
    if (!system->empty()) *system += "\n\n";
    *system += content;
  } else if (role == "user") {
    if (!content.empty()) turns->add("user", text_block(content));  // the API refuses ""
  } else if (role == "assistant") {
    if (!content.empty()) turns->add("assistant", text_block(content));
    if (const json& calls = member(m, "tool_calls"); calls.is_array()) {
      for (const json& call : calls) {
        json input = call.value("arguments", json::object());
        if (!input.is_object()) input = json::object();
        turns->add("assistant", {{"type", "tool_use"},
                                 {"id", sanitize(call.at("id").get<std::string>())},
                                 {"name", namer.wire(call.at("name").get<std::string>())},
                                 {"input", std::move(input)}});
      }
    }
  } else if (role == "tool") {
    json block = {{"type", "tool_result"},
                  {"tool_use_id", sanitize(m.at("tool_call_id").get<std::string>())}};
    if (!content.empty()) block["content"] = content;
    turns->add("user", std::move(block));
  } else {
    throw std::invalid_argument("unknown message role '" + role + "'");
  }
}

// The schema of the structured-output tool: a tool's input must be an object.
json structured_input_schema(const json& schema, bool* wrapped) {
  *wrapped = false;
  const json& type = member(schema, "type");
  if (type == "object") return schema;
  if (type.is_null() && schema.contains("properties")) {
    json copy = schema;
    copy["type"] = "object";
    return copy;
  }
  *wrapped = true;
  return {{"type", "object"},
          {"properties", {{"value", schema}}},
          {"required", json::array({"value"})}};
}

// The answer text of the structured-output tool's input.
std::string structured_text(const json& input, bool wrapped) {
  const json& value = wrapped ? member(input, "value") : input;
  return kit::json_text(value);
}

// The finish reason of an answer: the structured-output tool's call is a plain answer, and a
// model that called tools has finished with tool_calls whatever it reported.
void settle_finish_reason(kit::ChatResponse* r, bool structured) {
  if (structured) {
    r->tool_calls.clear();
    if (r->finish_reason != "length") r->finish_reason = "stop";
    return;
  }
  if (!r->tool_calls.empty() && r->finish_reason == "stop") r->finish_reason = "tool_calls";
}

}  // namespace

std::string WireContext::tool_name(const std::string& wire_name) const {
  auto it = renamed_tools.find(wire_name);
  return it != renamed_tools.end() ? it->second : wire_name;
}

std::optional<kit::CallError> build_request_body(const json& request, const RequestOptions& options,
                                                 json* body, WireContext* context) {
  try {
    WireContext ctx;
    ToolNamer namer(&ctx);
    namer.reserve(tool_names_of(request));

    json out = json::object();
    out["model"] = request.at("model").get<std::string>();
    const json& max_tokens = member(request, "max_tokens");
    out["max_tokens"] =
        max_tokens.is_number_integer() ? max_tokens.get<int64_t>() : options.default_max_tokens;

    std::string system;
    Turns turns;
    for (const json& m : request.at("messages"))
      add_message(m, namer, &system, &turns);
    const bool history_has_tools = turns.has_tool_blocks();
    out["messages"] = turns.finish();
    if (!system.empty()) out["system"] = system;

    // Tools. "none" has no wire form in this API version: the tools stay away unless the
    // history needs their definitions (it has tool_use / tool_result blocks).
    const json& choice = member(request, "tool_choice");
    const json& tools = member(request, "tools");
    json wire_tools = json::array();
    const bool offer_tools =
        tools.is_array() && !tools.empty() && (choice != "none" || history_has_tools);
    if (offer_tools) {
      for (const json& tool : tools) {
        json wire = {{"name", namer.wire(tool.at("name").get<std::string>())}};
        if (!string_at(tool, "description").empty()) wire["description"] = tool["description"];
        wire["input_schema"] = tool.at("parameters");
        wire_tools.push_back(std::move(wire));
      }
    }
    if (const json& format = member(request, "response_format"); format.is_object()) {
      // No JSON mode: one more tool, whose input is the answer, and the model must call it.
      std::string name = string_at(format, "name");
      ctx.structured_tool = namer.fresh(name.empty() ? "structured_output" : name);
      wire_tools.push_back(
          {{"name", ctx.structured_tool},
           {"description",
            "Give your final answer by calling this tool: its input is the answer and must "
            "follow the input schema."},
           {"input_schema",
            structured_input_schema(format.at("schema"), &ctx.structured_wrapped)}});
      out["tool_choice"] = {{"type", "tool"}, {"name", ctx.structured_tool}};
    } else if (offer_tools) {
      if (choice == "auto" || choice == "none") {
        out["tool_choice"] = {{"type", "auto"}};
      } else if (choice == "required") {
        out["tool_choice"] = {{"type", "any"}};
      } else if (choice.is_object()) {
        out["tool_choice"] = {{"type", "tool"},
                              {"name", namer.wire(choice.at("name").get<std::string>())}};
      }
    }
    if (!wire_tools.empty()) out["tools"] = std::move(wire_tools);

    // troupe's temperature goes to 2 (OpenAI's range); this API's stops at 1.
    if (const json& t = member(request, "temperature"); t.is_number())
      out["temperature"] = std::min(t.get<double>(), 1.0);
    if (const json& stop = member(request, "stop"); stop.is_array() && !stop.empty())
      out["stop_sequences"] = stop;
    if (options.stream) out["stream"] = true;
    // "metadata" is troupe's own (who is asking); it never goes to the vendor.
    *body = std::move(out);
    *context = std::move(ctx);
    return std::nullopt;
  } catch (const std::exception& e) {  // nlohmann's at()/get() on a malformed request
    return kit::invalid_argument(std::string("anthropic: malformed request: ") + e.what());
  }
}

std::string map_stop_reason(const json& reason) {
  if (!reason.is_string()) return "stop";
  const std::string& r = reason.get_ref<const std::string&>();
  if (r == "end_turn" || r == "stop_sequence" || r == "pause_turn" || r.empty()) return "stop";
  if (r == "max_tokens" || r == "model_context_window_exceeded") return "length";
  if (r == "tool_use") return "tool_calls";
  if (r == "refusal") return "content_filter";
  return "error";
}

kit::Usage parse_usage(const json& usage) {
  kit::Usage u;
  u.cached_input = count_at(usage, "cache_read_input_tokens");
  u.cache_write = count_at(usage, "cache_creation_input_tokens");
  u.input = count_at(usage, "input_tokens") + u.cached_input + u.cache_write;
  u.output = count_at(usage, "output_tokens");
  return u;
}

std::optional<kit::CallError> parse_response(std::string_view body, const WireContext& context,
                                             kit::ChatResponse* out) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return kit::transport_error("anthropic: response body is not a JSON object");
  if (string_at(doc, "type") == "error") {
    kit::VendorError e = kit::read_anthropic_error(doc);
    if (e.found) return kit::map_vendor_error(kVendor, e, "");
  }
  const json& content = member(doc, "content");
  if (!content.is_array()) return kit::transport_error("anthropic: response has no content");

  kit::ChatResponse r;
  bool structured = false;
  std::string structured_answer;
  for (const json& block : content) {
    std::string type = string_at(block, "type");
    if (type == "text") {
      r.text += string_at(block, "text");
    } else if (type == "tool_use") {
      std::string wire_name = string_at(block, "name");
      if (wire_name.empty()) return kit::transport_error("anthropic: a tool_use block has no name");
      kit::ToolCall tool;
      tool.name = context.tool_name(wire_name);
      if (auto error = kit::check_tool_arguments(kVendor, tool.name, member(block, "input"),
                                                 &tool.arguments))
        return error;
      if (!context.structured_tool.empty() && wire_name == context.structured_tool) {
        structured = true;
        structured_answer = structured_text(tool.arguments, context.structured_wrapped);
        continue;
      }
      tool.id = string_at(block, "id");
      if (tool.id.empty()) tool.id = "call_" + std::to_string(r.tool_calls.size() + 1);
      r.tool_calls.push_back(std::move(tool));
    }
    // thinking / redacted_thinking and server-side tool blocks have no normalized field.
  }
  if (structured) r.text = structured_answer;
  r.finish_reason = map_stop_reason(member(doc, "stop_reason"));
  r.usage = parse_usage(member(doc, "usage"));
  r.model = string_at(doc, "model");
  settle_finish_reason(&r, structured);
  *out = std::move(r);
  return std::nullopt;
}

std::optional<kit::CallError> StreamDecoder::on_sse(const kit::SseEvent& event,
                                                    kit::EventSink& sink) {
  json data = json::parse(event.data, nullptr, /*allow_exceptions=*/false);
  if (data.is_discarded() || !data.is_object())
    return kit::transport_error("anthropic: stream event is not a JSON object");
  std::string type = string_at(data, "type");
  if (type.empty()) type = event.event;

  if (type == "message_start") {
    const json& message = member(data, "message");
    if (response_.model.empty()) response_.model = string_at(message, "model");
    if (const json& usage = member(message, "usage"); usage.is_object()) take_usage(usage, sink);
  } else if (type == "content_block_start") {
    block_start(data, sink);
  } else if (type == "content_block_delta") {
    block_delta(data, sink);
  } else if (type == "message_delta") {
    if (const json& reason = member(member(data, "delta"), "stop_reason"); reason.is_string())
      stop_reason_ = reason.get<std::string>();
    if (const json& usage = member(data, "usage"); usage.is_object()) take_usage(usage, sink);
  } else if (type == "message_stop") {
    done_ = true;
    return end_of_message(sink);
  } else if (type == "error") {
    kit::VendorError e = kit::read_anthropic_error(data);
    if (!e.found) e.message = "an error event without an error object";
    return kit::map_vendor_error(kVendor, e, "");
  }
  // content_block_stop, ping, and event types added later carry nothing we need.
  return std::nullopt;
}

void StreamDecoder::block_start(const json& event, kit::EventSink& sink) {
  const json& index = member(event, "index");
  int64_t key =
      index.is_number_integer() ? index.get<int64_t>() : static_cast<int64_t>(blocks_.size());
  const json& content_block = member(event, "content_block");
  std::string type = string_at(content_block, "type");
  Block block;
  if (type == "text") {
    block.kind = BlockKind::text;
    if (std::string text = string_at(content_block, "text"); !text.empty()) {
      response_.text += text;
      sink.text_delta(text);
    }
  } else if (type == "thinking") {
    block.kind = BlockKind::thinking;
    if (std::string text = string_at(content_block, "thinking"); !text.empty())
      sink.reasoning_delta(text);
  } else if (type == "tool_use") {
    std::string wire_name = string_at(content_block, "name");
    if (!context_.structured_tool.empty() && wire_name == context_.structured_tool) {
      block.kind = BlockKind::structured;
      structured_called_ = true;
    } else {
      block.kind = BlockKind::tool_use;
      block.tool_index = tool_count_++;
      std::string id = string_at(content_block, "id");
      std::string name = context_.tool_name(wire_name);
      tools_.add(block.tool_index, id, name, "");
      sink.tool_call_delta(block.tool_index, id, name, "");
    }
  }
  blocks_[key] = block;
}

void StreamDecoder::block_delta(const json& event, kit::EventSink& sink) {
  const json& index = member(event, "index");
  Block block;
  if (index.is_number_integer()) {
    auto it = blocks_.find(index.get<int64_t>());
    if (it != blocks_.end()) block = it->second;
  }
  const json& delta = member(event, "delta");
  std::string type = string_at(delta, "type");
  if (type == "text_delta") {
    if (std::string text = string_at(delta, "text"); !text.empty()) {
      response_.text += text;
      sink.text_delta(text);
    }
  } else if (type == "thinking_delta") {
    if (std::string text = string_at(delta, "thinking"); !text.empty()) sink.reasoning_delta(text);
  } else if (type == "input_json_delta") {
    std::string piece = string_at(delta, "partial_json");
    if (piece.empty()) return;
    if (block.kind == BlockKind::structured) {
      structured_json_ += piece;  // sent as text when complete (end_of_message)
    } else if (block.kind == BlockKind::tool_use) {
      tools_.add(block.tool_index, "", "", piece);
      sink.tool_call_delta(block.tool_index, "", "", piece);
    }
  }
  // signature_delta, citations_delta: nothing normalized to say.
}

void StreamDecoder::take_usage(const json& usage, kit::EventSink& sink) {
  // message_delta repeats or updates the counts of message_start: the latest of each wins.
  for (const char* key : {"input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                          "output_tokens"}) {
    if (const json& value = member(usage, key); value.is_number()) usage_[key] = value;
  }
  response_.usage = parse_usage(usage_);
  sink.usage(response_.usage.to_json());
}

// The structured-output tool's input becomes the answer, sent as one text delta: the input
// is only known to be JSON once it is complete.
std::optional<kit::CallError> StreamDecoder::end_of_message(kit::EventSink& sink) {
  if (!structured_called_) return std::nullopt;
  json input;
  if (auto error =
          kit::parse_tool_arguments(kVendor, context_.structured_tool, structured_json_, &input)) {
    if (map_stop_reason(json(stop_reason_)) != "length") return error;
    // Cut off by max_tokens: the partial JSON is the answer, and finish_reason says so.
    response_.text = structured_json_;
  } else {
    response_.text = structured_text(input, context_.structured_wrapped);
  }
  sink.text_delta(response_.text);
  return std::nullopt;
}

std::optional<kit::CallError> StreamDecoder::finish(kit::ChatResponse* out) {
  if (!structured_called_)
    if (auto error = tools_.finish(kVendor, &response_.tool_calls)) return error;
  response_.finish_reason = map_stop_reason(stop_reason_.empty() ? json() : json(stop_reason_));
  settle_finish_reason(&response_, structured_called_);
  *out = response_;
  return std::nullopt;
}

}  // namespace troupe::anthropic
