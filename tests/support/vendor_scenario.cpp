// vendor_scenario.cpp: the fake vendor's JSON forms — a reply (FakeReply::from_json), a
// scenario's rules and pages, and a recorded chat as GET /_fake/chats returns it. Bad input
// throws std::invalid_argument naming the field; unknown keys are errors.
#include <stdexcept>

#include "support/test_text.h"
#include "support/vendor_wire.h"

namespace troupe::test {

FakeReply FakeReply::with_text(std::string text) {
  FakeReply r;
  r.text = std::move(text);
  return r;
}

FakeReply FakeReply::with_fault(std::string fault) {
  FakeReply r;
  r.fault = std::move(fault);
  return r;
}

namespace {

FakeToolCall tool_call_from_json(const json& call, const std::string& where) {
  if (!call.is_object() || !call.contains("name") || !call["name"].is_string())
    throw std::invalid_argument(where + ": needs a string \"name\"");
  FakeToolCall tc;
  tc.name = call["name"].get<std::string>();
  for (const auto& [k, v] : call.items()) {
    if (k == "name") continue;
    if (k != "arguments") throw std::invalid_argument(where + ": unknown key \"" + k + "\"");
    if (v.is_object())
      tc.arguments = v;
    else if (v.is_string())
      tc.raw_arguments = v.get<std::string>();
    else
      throw std::invalid_argument(where + ".arguments: must be an object or a string");
  }
  return tc;
}

void usage_from_json(const json& value, FakeUsage* usage) {
  if (!value.is_object()) throw std::invalid_argument("usage: must be an object");
  for (const auto& [k, v] : value.items()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      throw std::invalid_argument("usage." + k + ": must be a non-negative integer");
    int64_t n = v.get<int64_t>();
    if (k == "input")
      usage->input = n;
    else if (k == "cached")
      usage->cached = n;
    else if (k == "output")
      usage->output = n;
    else if (k == "reasoning")
      usage->reasoning = n;
    else
      throw std::invalid_argument("usage: unknown key \"" + k + "\"");
  }
}

// One element of "rules", at `where` ("rules[i]").
Rule rule_from_json(const json& r, const std::string& where) {
  if (!r.is_object()) throw std::invalid_argument(where + ": must be an object");
  Rule rule;
  json reply = json::object();
  for (const auto& [k, v] : r.items()) {
    if (k == "match" || k == "model" || k == "vendor") {
      if (!v.is_string()) throw std::invalid_argument(where + "." + k + ": must be a string");
      std::string s = v.get<std::string>();
      if (k == "match") rule.match = s;
      if (k == "model") rule.model = s;
      if (k == "vendor") {
        if (!vendor_from_name(s, &rule.vendor))
          throw std::invalid_argument(where + ".vendor: unknown vendor \"" + s + "\"");
        rule.has_vendor = true;
      }
    } else if (k == "times") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        throw std::invalid_argument(where + ".times: must be a positive integer");
      rule.times = v.get<int64_t>();
    } else {
      reply[k] = v;
    }
  }
  try {
    rule.reply = FakeReply::from_json(reply);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  return rule;
}

}  // namespace

FakeReply FakeReply::from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("a reply must be a JSON object");
  FakeReply r;
  auto text_field = [&](const char* key, std::string* out) {
    if (!j[key].is_string()) throw std::invalid_argument(std::string(key) + ": must be a string");
    *out = j[key].get<std::string>();
  };
  for (const auto& [key, value] : j.items()) {
    if (key == "reply") {
      text_field("reply", &r.text);
    } else if (key == "reasoning") {
      text_field("reasoning", &r.reasoning);
    } else if (key == "finish") {
      text_field("finish", &r.finish);
      if (r.finish != "stop" && r.finish != "length" && r.finish != "tool_calls" &&
          r.finish != "content_filter")
        throw std::invalid_argument("finish: must be stop, length, tool_calls or content_filter");
    } else if (key == "vendor_finish") {
      text_field("vendor_finish", &r.vendor_finish);
    } else if (key == "request_id") {
      text_field("request_id", &r.request_id);
    } else if (key == "error_message") {
      text_field("error_message", &r.error_message);
    } else if (key == "openai_deltas") {
      if (!value.is_array()) throw std::invalid_argument("openai_deltas: must be an array");
      for (const json& delta : value) {
        if (!delta.is_object())
          throw std::invalid_argument("openai_deltas: each delta must be an object");
        r.openai_deltas.push_back(delta);
      }
    } else if (key == "fault") {
      text_field("fault", &r.fault);
      if (!VendorServer::is_fault(r.fault))
        throw std::invalid_argument("fault: unknown fault \"" + r.fault + "\"");
    } else if (key == "tool_calls") {
      if (!value.is_array()) throw std::invalid_argument("tool_calls: must be an array");
      for (size_t i = 0; i < value.size(); ++i)
        r.tool_calls.push_back(
            tool_call_from_json(value[i], "tool_calls[" + std::to_string(i) + "]"));
    } else if (key == "usage") {
      usage_from_json(value, &r.usage);
    } else {
      throw std::invalid_argument("unknown key \"" + key + "\"");
    }
  }
  return r;
}

bool rule_applies(const Rule& rule, const SeenChat& seen) {
  if (!rule.match.empty() && seen.last_user.find(rule.match) == std::string::npos) return false;
  if (!rule.model.empty() && rule.model != seen.model) return false;
  if (rule.has_vendor && rule.vendor != seen.vendor) return false;
  if (rule.times >= 0 && rule.used >= rule.times) return false;
  // Tool calls only when tools are offered and the conversation does not end with results.
  if (!rule.reply.tool_calls.empty() && (seen.tools.empty() || seen.ends_with_tool_results))
    return false;
  return true;
}

void parse_scenario(const json& scenario, std::vector<Rule>* rules,
                    std::map<std::string, Page>* pages) {
  if (!scenario.is_object()) throw std::invalid_argument("scenario: must be a JSON object");
  for (const auto& [key, value] : scenario.items()) {
    if (key == "rules") {
      if (!value.is_array()) throw std::invalid_argument("rules: must be an array");
      for (size_t i = 0; i < value.size(); ++i)
        rules->push_back(rule_from_json(value[i], "rules[" + std::to_string(i) + "]"));
    } else if (key == "pages") {
      if (!value.is_object()) throw std::invalid_argument("pages: must be an object");
      for (const auto& [name, content] : value.items()) {
        if (!content.is_string())
          throw std::invalid_argument("pages." + name + ": must be a string");
        std::string text = content.get<std::string>();
        std::string type = default_page_type(text);
        (*pages)[name] = Page{std::move(text), std::move(type)};
      }
    } else {
      throw std::invalid_argument("scenario: unknown key \"" + key + "\" (rules, pages)");
    }
  }
}

std::string default_page_type(const std::string& content) {
  return !content.empty() && content[0] == '<' ? "text/html; charset=utf-8"
                                               : "text/plain; charset=utf-8";
}

json seen_to_json(const SeenChat& c) {
  json headers = json::object();
  for (const auto& [name, value] : c.request.headers)
    headers[lower(name)] = value;
  return {{"vendor", vendor_name(c.vendor)},
          {"model", c.model},
          {"stream", c.stream},
          {"last_user", c.last_user},
          {"ends_with_tool_results", c.ends_with_tool_results},
          {"tool_results", c.tool_results},
          {"tools", c.tools},
          {"forced_tool", c.forced_tool},
          {"schema", c.schema},
          {"answer", c.answer},
          {"fault", c.fault},
          {"request_id", c.request_id},
          {"method", c.request.method},
          {"path", c.request.target},
          {"headers", headers},
          {"body", c.body}};
}

}  // namespace troupe::test
