// mock_settings.h: the mock's instance settings (latency, chunk size, rules) and their reader.
//
// What the settings mean is in README.md ("Settings"). The reader's errors name the field
// ("mock: rules[1].error.status: unknown status \"slow\" (...)"); the request reader
// (mock_request.h) reports its errors the same way, through field_error() and string_field().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "troupe/plugin.h"

namespace troupe::mock {

// A tool call the mock answers with. arguments_json is a JSON object's text.
struct ToolCall {
  std::string id;  // "call_1", "call_2", ... (assigned per response)
  std::string name;
  std::string arguments_json = "{}";
};

// An error the mock completes a call with.
struct Failure {
  troupe_status_t status = TROUPE_INTERNAL;
  std::string message;
  bool retryable = false;
  uint32_t retry_after_ms = 0;
};

// One entry of settings.rules. A rule applies to a call when every condition it has holds
// (a rule with neither `match` nor `model` applies to every call) and, with `times`, only
// to its first `times` applications.
struct Rule {
  std::optional<std::string> match;  // substring of the last user message (case-sensitive)
  std::optional<std::string> model;  // exact model name
  std::optional<std::string> reply;  // reply text (else the default reply)
  std::vector<ToolCall> tool_calls;  // returned when the request offers tools
  std::optional<Failure> error;      // complete with this error instead
  std::optional<uint32_t> latency_ms;
  std::optional<uint64_t> times;
  // Tool-call turns this rule returns its tool_calls for, counted since the last user message
  // (1: only the first; more keeps an agent loop going, e.g. to hit max_turns).
  uint64_t tool_turns = 1;
  // The first invalid_json applications of the rule answer with text that is not valid JSON
  // (for re-ask tests of structured output); later ones answer normally.
  uint64_t invalid_json = 0;
};

struct Settings {
  uint32_t latency_ms = 0;
  uint32_t stream_chunk_chars = 12;
  std::vector<Rule> rules;
};

// Parses the instance settings (a JSON object; "" counts as {}). Throws
// std::invalid_argument naming the offending field, e.g. "mock: rules[1].error.status:
// unknown status \"slow\"". Unknown top-level keys are ignored; unknown rule keys are not.
Settings parse_settings(std::string_view json);

// Throws std::invalid_argument("mock: <where>: <what>"), the form of every reader error.
[[noreturn]] void field_error(const std::string& where, const std::string& what);

// j's text when it is a string; else field_error(where, "must be a string, not <type>").
std::string string_field(const nlohmann::json& j, const std::string& where);

}  // namespace troupe::mock
