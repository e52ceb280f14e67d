// mock_settings.cpp: reading the mock's instance settings (see mock_settings.h).
#include "mock_settings.h"

#include <cstddef>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace troupe::mock {

using nlohmann::json;

void field_error(const std::string& where, const std::string& what) {
  throw std::invalid_argument("mock: " + where + ": " + what);
}

std::string string_field(const json& j, const std::string& where) {
  if (!j.is_string()) field_error(where, std::string("must be a string, not ") + j.type_name());
  return j.get<std::string>();
}

namespace {

uint64_t get_uint(const json& j, const std::string& where, uint64_t max) {
  // nlohmann parses every non-negative integer as unsigned
  if (!j.is_number_unsigned()) field_error(where, "must be a non-negative integer");
  uint64_t v = j.get<uint64_t>();
  if (v > max) field_error(where, "must be at most " + std::to_string(max));
  return v;
}

bool default_retryable(troupe_status_t s) {
  return s == TROUPE_RATE_LIMITED || s == TROUPE_UNAVAILABLE || s == TROUPE_TIMEOUT ||
         s == TROUPE_TRANSPORT;
}

const char* const kStatusNames[] = {"invalid_argument", "unsupported", "not_found", "auth",
                                    "rate_limited",     "transport",   "timeout",   "cancelled",
                                    "budget_exceeded",  "unavailable", "too_large", "internal"};

Failure parse_failure(const json& j, const std::string& where) {
  if (!j.is_object()) field_error(where, "must be an object");
  Failure f;
  bool have_status = false, have_retryable = false;
  for (const auto& [key, value] : j.items()) {
    std::string at = where + "." + key;
    if (key == "status") {
      std::string name = string_field(value, at);
      for (size_t i = 0; i < sizeof kStatusNames / sizeof kStatusNames[0]; ++i) {
        if (name == kStatusNames[i]) {
          f.status = static_cast<troupe_status_t>(i + 1);  // the codes follow the table
          have_status = true;
        }
      }
      if (!have_status) {
        std::string all;
        for (const char* n : kStatusNames)
          all += std::string(all.empty() ? "" : ", ") + n;
        field_error(at, "unknown status \"" + name + "\" (expected one of " + all + ")");
      }
    } else if (key == "message") {
      f.message = string_field(value, at);
    } else if (key == "retryable") {
      if (!value.is_boolean()) field_error(at, "must be true or false");
      f.retryable = value.get<bool>();
      have_retryable = true;
    } else if (key == "retry_after_ms") {
      f.retry_after_ms = static_cast<uint32_t>(get_uint(value, at, UINT32_MAX));
    } else {
      field_error(at, "unknown key (expected status, message, retryable, retry_after_ms)");
    }
  }
  if (!have_status) field_error(where + ".status", "is required");
  if (!have_retryable) f.retryable = default_retryable(f.status);
  if (f.message.empty()) f.message = std::string("mock: configured ") + kStatusNames[f.status - 1];
  return f;
}

ToolCall parse_tool_call(const json& j, const std::string& where) {
  if (!j.is_object()) field_error(where, "must be an object");
  ToolCall t;
  for (const auto& [key, value] : j.items()) {
    std::string at = where + "." + key;
    if (key == "name") {
      t.name = string_field(value, at);
    } else if (key == "arguments") {
      if (!value.is_object()) field_error(at, "must be a JSON object");
      t.arguments_json = value.dump();
    } else {
      field_error(at, "unknown key (expected name, arguments)");
    }
  }
  if (t.name.empty()) field_error(where + ".name", "is required");
  return t;
}

Rule parse_rule(const json& j, const std::string& where) {
  if (!j.is_object()) field_error(where, "must be an object");
  Rule r;
  for (const auto& [key, value] : j.items()) {
    std::string at = where + "." + key;
    if (key == "match") {
      r.match = string_field(value, at);
    } else if (key == "model") {
      r.model = string_field(value, at);
    } else if (key == "reply") {
      r.reply = string_field(value, at);
    } else if (key == "tool_calls") {
      if (!value.is_array()) field_error(at, "must be an array");
      for (size_t i = 0; i < value.size(); ++i) {
        r.tool_calls.push_back(parse_tool_call(value[i], at + "[" + std::to_string(i) + "]"));
      }
    } else if (key == "error") {
      r.error = parse_failure(value, at);
    } else if (key == "latency_ms") {
      r.latency_ms = static_cast<uint32_t>(get_uint(value, at, UINT32_MAX));
    } else if (key == "times") {
      r.times = get_uint(value, at, UINT64_MAX);
    } else if (key == "tool_turns") {
      r.tool_turns = get_uint(value, at, UINT64_MAX);
    } else if (key == "invalid_json") {
      r.invalid_json = get_uint(value, at, UINT64_MAX);
    } else {
      field_error(
          at,
          "unknown key (expected match, model, reply, tool_calls, error, latency_ms, times, "
          "tool_turns, invalid_json)");
    }
  }
  return r;
}

}  // namespace

Settings parse_settings(std::string_view text) {
  Settings s;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return s;
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) field_error("settings", "not valid JSON");
  if (!j.is_object())
    field_error("settings", std::string("must be a JSON object, not ") + j.type_name());
  if (auto it = j.find("latency_ms"); it != j.end()) {
    s.latency_ms = static_cast<uint32_t>(get_uint(*it, "latency_ms", UINT32_MAX));
  }
  if (auto it = j.find("stream_chunk_chars"); it != j.end()) {
    s.stream_chunk_chars = static_cast<uint32_t>(get_uint(*it, "stream_chunk_chars", UINT32_MAX));
    if (s.stream_chunk_chars == 0) field_error("stream_chunk_chars", "must be at least 1");
  }
  if (auto it = j.find("rules"); it != j.end()) {
    if (!it->is_array()) field_error("rules", "must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      s.rules.push_back(parse_rule((*it)[i], "rules[" + std::to_string(i) + "]"));
    }
  }
  return s;
}

}  // namespace troupe::mock
