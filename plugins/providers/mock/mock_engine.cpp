// mock_engine.cpp: what one mock call does (see mock_engine.h).
#include "mock_engine.h"

#include <cstddef>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "mock_replies.h"
#include "mock_request.h"
#include "mock_schema_sample.h"
#include "mock_text.h"

namespace troupe::mock {

using nlohmann::json;

uint64_t tokens_for_chars(uint64_t chars) {
  return (chars + 3) / 4;
}

std::optional<Failure> injected_failure(std::string_view model) {
  std::string who = " (model " + std::string(model) + ")";
  if (model == "error-rate-limited") {
    return Failure{TROUPE_RATE_LIMITED, "mock: rate limited" + who, true, 1000};
  }
  if (model == "error-server") {
    return Failure{TROUPE_UNAVAILABLE, "mock: server error" + who, true, 0};
  }
  if (model == "error-timeout") {
    return Failure{TROUPE_TIMEOUT, "mock: request timed out" + who, true, 0};
  }
  if (model == "error-auth") {
    return Failure{TROUPE_AUTH, "mock: invalid credentials" + who, false, 0};
  }
  return std::nullopt;
}

std::string Outcome::usage_json() const {
  json u = {{"input_tokens", usage.input_tokens},
            {"output_tokens", usage.output_tokens},
            {"cached_input_tokens", 0},
            {"reasoning_tokens", 0},
            {"total_tokens", usage.total_tokens()}};
  return u.dump();
}

std::string Outcome::response_json() const {
  json calls = json::array();
  for (const ToolCall& t : tool_calls) {
    calls.push_back({{"id", t.id}, {"name", t.name}, {"arguments", json::parse(t.arguments_json)}});
  }
  json r = {{"text", text},
            {"tool_calls", std::move(calls)},
            {"finish_reason", finish_reason},
            {"usage", json::parse(usage_json())},
            {"model", model},
            {"request_id", request_id}};
  return r.dump();
}

Engine::Engine(Settings settings)
    : settings_(std::move(settings)),
      rule_uses_(settings_.rules.size(), 0),
      invalid_json_uses_(settings_.rules.size(), 0) {}

Outcome Engine::plan(std::string_view request_json) {
  Outcome out;
  out.request_id = "mock-" + std::to_string(++requests_);
  out.latency_ms = settings_.latency_ms;

  ChatRequest req;
  try {
    req = parse_request(request_json);
  } catch (const std::invalid_argument& e) {
    out.kind = Outcome::Kind::fail;
    out.failure = Failure{TROUPE_INVALID_ARGUMENT, e.what(), false, 0};
    out.latency_ms = 0;
    return out;
  }
  out.model = req.model;

  // Failure injection by model name needs no configuration, so it comes first.
  if (req.model == "hang") {
    out.kind = Outcome::Kind::hang;
    return out;
  }
  if (auto failure = injected_failure(req.model)) {
    out.kind = Outcome::Kind::fail;
    out.failure = std::move(*failure);
    return out;
  }

  const Message* user = last_with_role(req, "user");
  std::string_view user_text = user != nullptr ? std::string_view(user->content) : "";
  const Rule* rule = nullptr;
  size_t rule_index = 0;
  for (size_t i = 0; i < settings_.rules.size(); ++i) {
    const Rule& candidate = settings_.rules[i];
    if (candidate.match && user_text.find(*candidate.match) == std::string_view::npos) continue;
    if (candidate.model && req.model != *candidate.model) continue;
    if (candidate.times && rule_uses_[i] >= *candidate.times) continue;
    ++rule_uses_[i];
    rule = &candidate;
    rule_index = i;
    break;
  }

  if (rule != nullptr && rule->latency_ms) out.latency_ms = *rule->latency_ms;
  if (rule != nullptr && rule->error) {
    out.kind = Outcome::Kind::fail;
    out.failure = *rule->error;
    return out;
  }

  // Tool-call turns since the last user message, and the tool calls made so far (for ids).
  bool after_tool = !req.messages.empty() && req.messages.back().role == "tool";
  uint64_t tool_turns = 0;
  size_t earlier_calls = 0;
  for (const Message& m : req.messages) {
    if (m.role == "user") tool_turns = 0;
    if (m.role == "assistant" && !m.tool_calls.empty()) ++tool_turns;
    earlier_calls += m.tool_calls.size();
  }
  bool may_call_tools = rule != nullptr && !rule->tool_calls.empty() && req.has_tools &&
                        tool_turns < rule->tool_turns && (!after_tool || tool_turns > 0);
  if (may_call_tools) {
    out.tool_calls = rule->tool_calls;
    for (size_t i = 0; i < out.tool_calls.size(); ++i) {
      out.tool_calls[i].id = "call_" + std::to_string(earlier_calls + i + 1);
    }
    out.finish_reason = "tool_calls";
    out.text = rule->reply.value_or("");
  } else if (rule != nullptr && invalid_json_uses_[rule_index] < rule->invalid_json) {
    ++invalid_json_uses_[rule_index];
    out.text = "Sure! Here is the JSON you asked for: {\"answer\": ";
  } else if (rule != nullptr && rule->reply) {
    out.text = *rule->reply;
  } else if (!req.response_schema_json.empty()) {
    out.text = sample_json(req.response_schema_json);
  } else {
    out.text = default_reply(req);
  }

  uint64_t input_chars = 0;
  for (const Message& m : req.messages)
    input_chars += count_chars(m.content);
  uint64_t output_chars = count_chars(out.text);
  for (const ToolCall& t : out.tool_calls) {
    output_chars += count_chars(t.name) + count_chars(t.arguments_json);
  }
  out.usage.input_tokens = tokens_for_chars(input_chars);
  out.usage.output_tokens = tokens_for_chars(output_chars);
  return out;
}

}  // namespace troupe::mock
