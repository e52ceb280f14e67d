// vendor_anthropic.cpp: the fake vendor's Anthropic Messages wire format — POST /v1/messages
// read, replies written plain or as SSE (message_start … message_stop, ping, thinking and
// tool_use blocks), and Anthropic's error bodies and rate-limit headers.
#include <ctime>

#include "support/vendor_wire.h"

namespace troupe::test {
// Named, not anonymous: the nine files compile as one unit (UNITY_BUILD), where the
// vendors' functions of the same name must not meet.
namespace anthropic_fake {

void parse(const json& body, Chat& chat) {
  SeenChat& seen = chat.seen;
  seen.model = body.value("model", "");
  seen.stream = body.value("stream", false);
  const json messages = body.value("messages", json::array());
  if (messages.is_array()) {
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
      if (!it->is_object() || it->value("role", "") != "user") continue;
      std::string text = content_text(it->value("content", json("")));
      if (!text.empty()) {
        seen.last_user = text;
        break;
      }
    }
    if (!messages.empty() && messages.back().is_object() &&
        messages.back().value("role", "") == "user") {
      const json content = messages.back().value("content", json(""));
      if (content.is_array()) {
        for (const auto& block : content) {
          if (block.is_object() && block.value("type", "") == "tool_result") {
            seen.tool_results.push_back(content_text(block.value("content", json(""))));
            seen.ends_with_tool_results = true;
          }
        }
      }
    }
  }
  if (auto tools = body.find("tools"); tools != body.end() && tools->is_array()) {
    for (const auto& tool : *tools) {
      std::string name = tool.value("name", "");
      if (name.empty()) continue;
      seen.tools.push_back(name);
      chat.tool_schemas[name] = tool.value("input_schema", json::object());
    }
  }
  if (auto choice = body.find("tool_choice"); choice != body.end() && choice->is_object()) {
    std::string type = choice->value("type", "");
    if (type == "tool")
      seen.forced_tool = choice->value("name", "");
    else if (type == "any" && !seen.tools.empty())
      seen.forced_tool = seen.tools.front();
  }
}

std::string request_id(uint64_t number) {
  return "req_011fake" + hex_id(number, 16);
}

std::string finish(const std::string& normalized) {
  if (normalized == "length") return "max_tokens";
  if (normalized == "tool_calls") return "tool_use";
  if (normalized == "content_filter") return "refusal";
  return "end_turn";
}

ojson usage_of(const FakeUsage& u, int64_t output) {
  int64_t uncached = u.input - u.cached;
  int64_t creation = uncached >= 2 ? 2 : 0;
  ojson usage = {{"input_tokens", uncached - creation},
                 {"cache_creation_input_tokens", creation},
                 {"cache_read_input_tokens", u.cached}};
  usage["output_tokens"] = output;
  usage["service_tier"] = "standard";
  return usage;
}

Rendered render(const Material& m, bool stream) {
  Rendered r;
  r.stream = stream;
  const std::string id = "msg_fake" + hex_id(m.number, 16);
  r.headers = {{"Content-Type", stream ? "text/event-stream; charset=utf-8" : "application/json"},
               {"request-id", m.request_id},
               {"anthropic-organization-id", "00000000-0000-0000-0000-000000000000"}};
  if (!stream) {
    ojson content = ojson::array();
    if (!m.reasoning.empty())
      content.push_back(
          {{"type", "thinking"}, {"thinking", m.reasoning}, {"signature", "c2lnbmF0dXJl"}});
    if (!m.text.empty()) content.push_back({{"type", "text"}, {"text", m.text}});
    for (size_t i = 0; i < m.tools.size(); ++i)
      content.push_back({{"type", "tool_use"},
                         {"id", m.tools[i].id},
                         {"name", m.tools[i].name},
                         {"input", tool_arguments_value(m.tools[i], i)}});
    ojson body = {{"id", id},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", m.model},
                  {"content", content},
                  {"stop_reason", m.finish},
                  {"stop_sequence", nullptr},
                  {"usage", usage_of(m.usage, m.usage.output)}};
    r.events.push_back(splice_raw(body.dump(), m.tools));
    return r;
  }
  ojson start_message = {{"id", id},
                         {"type", "message"},
                         {"role", "assistant"},
                         {"model", m.model},
                         {"content", ojson::array()},
                         {"stop_reason", nullptr},
                         {"stop_sequence", nullptr},
                         {"usage", usage_of(m.usage, 1)}};
  r.events.push_back(
      sse_event("message_start", {{"type", "message_start"}, {"message", start_message}}));
  int index = 0;
  bool pinged = false;
  auto block_start = [&](const ojson& block) {
    r.events.push_back(
        sse_event("content_block_start",
                  {{"type", "content_block_start"}, {"index", index}, {"content_block", block}}));
    if (!pinged) {
      r.events.push_back(sse_event("ping", {{"type", "ping"}}));
      pinged = true;
    }
  };
  auto block_delta = [&](const ojson& delta) {
    r.events.push_back(
        sse_event("content_block_delta",
                  {{"type", "content_block_delta"}, {"index", index}, {"delta", delta}}));
  };
  auto block_stop = [&] {
    r.events.push_back(
        sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index}}));
    ++index;
  };
  if (!m.reasoning.empty()) {
    block_start({{"type", "thinking"}, {"thinking", ""}});
    for (const auto& piece : stream_pieces(m.reasoning))
      block_delta({{"type", "thinking_delta"}, {"thinking", piece}});
    block_delta({{"type", "signature_delta"}, {"signature", "c2lnbmF0dXJl"}});
    block_stop();
  }
  if (!m.text.empty() || (m.tools.empty() && m.reasoning.empty())) {
    block_start({{"type", "text"}, {"text", ""}});
    for (const auto& piece : stream_pieces(m.text))
      block_delta({{"type", "text_delta"}, {"text", piece}});
    block_stop();
  }
  for (const auto& t : m.tools) {
    block_start({{"type", "tool_use"}, {"id", t.id}, {"name", t.name}, {"input", ojson::object()}});
    block_delta({{"type", "input_json_delta"}, {"partial_json", ""}});
    for (const auto& piece : argument_pieces(t.text))
      block_delta({{"type", "input_json_delta"}, {"partial_json", piece}});
    block_stop();
  }
  r.events.push_back(sse_event("message_delta",
                               {{"type", "message_delta"},
                                {"delta", {{"stop_reason", m.finish}, {"stop_sequence", nullptr}}},
                                {"usage", {{"output_tokens", m.usage.output}}}}));
  if (m.terminate) r.events.push_back(sse_event("message_stop", {{"type", "message_stop"}}));
  return r;
}

ErrorInfo error_info(int status, std::string_view fault, const std::string& model,
                     const std::string&) {
  if (fault == "context-too-long")
    return {"invalid_request_error", "", "prompt is too long: 210000 tokens > 200000 maximum"};
  if (fault == "insufficient-quota")
    return {"invalid_request_error", "",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
            "Billing to upgrade or purchase credits."};
  switch (status) {
    case 400:
      return {"invalid_request_error", "", "messages: at least one message is required"};
    case 401:
      return {"authentication_error", "", "invalid x-api-key"};
    case 403:
      return {"permission_error", "",
              "Your API key does not have permission to use this resource."};
    case 404:
      return {"not_found_error", "", "model: " + model};
    case 413:
      return {"request_too_large", "", "Request exceeds the maximum allowed number of bytes."};
    case 429:
      return {"rate_limit_error", "",
              "This request would exceed the rate limit for your organization of 50 requests per "
              "minute. Please try again later."};
    case 504:
      return {"timeout_error", "", "Request timed out while waiting for the model."};
    case 529:
      return {"overloaded_error", "", "Overloaded"};
    default:
      return {"api_error", "", "Internal server error"};
  }
}

Rendered render_error(int status, std::string_view fault, const ErrorInfo& e,
                      const std::string& id) {
  Rendered r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}, {"request-id", id}};
  ojson body = {
      {"type", "error"}, {"error", {{"type", e.type}, {"message", e.message}}}, {"request_id", id}};
  r.events.push_back(body.dump());
  if (fault == "rate-limit-reset") {
    r.headers.emplace_back("anthropic-ratelimit-requests-limit", "50");
    r.headers.emplace_back("anthropic-ratelimit-requests-remaining", "0");
    r.headers.emplace_back("anthropic-ratelimit-requests-reset", rfc3339(seconds_ahead(2)));
    r.headers.emplace_back("anthropic-ratelimit-tokens-reset", rfc3339(std::time(nullptr)));
  }
  return r;
}

std::string refusal(int, const std::string& message, const std::string& id) {
  json body = {{"type", "error"},
               {"error", {{"type", "invalid_request_error"}, {"message", message}}},
               {"request_id", id}};
  return body.dump();
}

std::string stream_error_event() {
  return sse_event("error", {{"type", "error"},
                             {"error", {{"type", "overloaded_error"}, {"message", "Overloaded"}}}});
}

std::string broken_event() {
  return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
         "\"delta\":{\"type\":\"text_delta\",\"text\":\"oo\n\n";
}

}  // namespace anthropic_fake

const VendorWire kAnthropicWire = {.key_header = "x-api-key",
                                   .tool_id_prefix = "toolu_fake",
                                   .quota_status = 400,
                                   .reports_cached = true,
                                   .reports_reasoning = false,
                                   .stream_error_status = 529,
                                   .parse = anthropic_fake::parse,
                                   .request_id = anthropic_fake::request_id,
                                   .finish = anthropic_fake::finish,
                                   .render = anthropic_fake::render,
                                   .error_info = anthropic_fake::error_info,
                                   .render_error = anthropic_fake::render_error,
                                   .refusal = anthropic_fake::refusal,
                                   .stream_error_event = anthropic_fake::stream_error_event,
                                   .broken_event = anthropic_fake::broken_event};

}  // namespace troupe::test
