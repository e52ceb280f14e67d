// mock_logic.cpp: the mock provider's decisions — settings, rules, default replies, usage.
#include "mock_logic.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

namespace troupe::mock {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw std::invalid_argument("mock: " + where + ": " + what);
}

const char* type_name(const json& j) {
  return j.type_name();
}

std::string get_string(const json& j, const std::string& where) {
  if (!j.is_string()) bad(where, std::string("must be a string, not ") + type_name(j));
  return j.get<std::string>();
}

uint64_t get_uint(const json& j, const std::string& where, uint64_t max) {
  // nlohmann parses every non-negative integer as unsigned
  if (!j.is_number_unsigned()) bad(where, "must be a non-negative integer");
  uint64_t v = j.get<uint64_t>();
  if (v > max) bad(where, "must be at most " + std::to_string(max));
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
  if (!j.is_object()) bad(where, "must be an object");
  Failure f;
  bool have_status = false, have_retryable = false;
  for (const auto& [key, value] : j.items()) {
    std::string at = where + "." + key;
    if (key == "status") {
      std::string name = get_string(value, at);
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
        bad(at, "unknown status \"" + name + "\" (expected one of " + all + ")");
      }
    } else if (key == "message") {
      f.message = get_string(value, at);
    } else if (key == "retryable") {
      if (!value.is_boolean()) bad(at, "must be true or false");
      f.retryable = value.get<bool>();
      have_retryable = true;
    } else if (key == "retry_after_ms") {
      f.retry_after_ms = static_cast<uint32_t>(get_uint(value, at, UINT32_MAX));
    } else {
      bad(at, "unknown key (expected status, message, retryable, retry_after_ms)");
    }
  }
  if (!have_status) bad(where + ".status", "is required");
  if (!have_retryable) f.retryable = default_retryable(f.status);
  if (f.message.empty()) f.message = std::string("mock: configured ") + kStatusNames[f.status - 1];
  return f;
}

ToolCall parse_tool_call(const json& j, const std::string& where) {
  if (!j.is_object()) bad(where, "must be an object");
  ToolCall t;
  for (const auto& [key, value] : j.items()) {
    std::string at = where + "." + key;
    if (key == "name") {
      t.name = get_string(value, at);
    } else if (key == "arguments") {
      if (!value.is_object()) bad(at, "must be a JSON object");
      t.arguments_json = value.dump();
    } else {
      bad(at, "unknown key (expected name, arguments)");
    }
  }
  if (t.name.empty()) bad(where + ".name", "is required");
  return t;
}

Rule parse_rule(const json& j, const std::string& where) {
  if (!j.is_object()) bad(where, "must be an object");
  Rule r;
  for (const auto& [key, value] : j.items()) {
    std::string at = where + "." + key;
    if (key == "match") {
      r.match = get_string(value, at);
    } else if (key == "model") {
      r.model = get_string(value, at);
    } else if (key == "reply") {
      r.reply = get_string(value, at);
    } else if (key == "tool_calls") {
      if (!value.is_array()) bad(at, "must be an array");
      for (size_t i = 0; i < value.size(); ++i) {
        r.tool_calls.push_back(parse_tool_call(value[i], at + "[" + std::to_string(i) + "]"));
      }
    } else if (key == "error") {
      r.error = parse_failure(value, at);
    } else if (key == "latency_ms") {
      r.latency_ms = static_cast<uint32_t>(get_uint(value, at, UINT32_MAX));
    } else if (key == "times") {
      r.times = get_uint(value, at, UINT64_MAX);
    } else {
      bad(at, "unknown key (expected match, model, reply, tool_calls, error, latency_ms, times)");
    }
  }
  return r;
}

// Text of a message's "content": a string, or null/absent for an assistant turn that only
// calls tools.
std::string content_text(const json& m, const std::string& where) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return {};
  if (!it->is_string()) bad(where + ".content", "must be a string");
  return it->get<std::string>();
}

std::string optional_string(const json& m, const char* key, const std::string& where) {
  auto it = m.find(key);
  if (it == m.end() || it->is_null()) return {};
  return get_string(*it, where + "." + key);
}

const Message* last_with_role(const ChatRequest& r, std::string_view role) {
  for (auto it = r.messages.rbegin(); it != r.messages.rend(); ++it) {
    if (it->role == role) return &*it;
  }
  return nullptr;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool contains_any(const std::string& haystack, std::initializer_list<const char*> needles) {
  for (const char* n : needles) {
    if (haystack.find(n) != std::string::npos) return true;
  }
  return false;
}

// Cuts text to at most max code points, adding "..." when it had to cut.
std::string truncate_chars(std::string_view text, size_t max) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (chars == max) return std::string(text.substr(0, i)) + "...";
      ++chars;
    }
  }
  return std::string(text);
}

// The first non-blank line, trimmed, without a trailing colon or full stop, at most 80
// characters.
std::string first_line(std::string_view text) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
      line.remove_prefix(1);
    }
    while (!line.empty() && (std::isspace(static_cast<unsigned char>(line.back())) ||
                             line.back() == ':' || line.back() == '.')) {
      line.remove_suffix(1);
    }
    if (!line.empty()) return truncate_chars(line, 80);
    pos = end + 1;
  }
  return {};
}

enum class Persona { security, reviewer, tester, coder, planner, writer, generic };

Persona classify(const std::string& text) {
  std::string t = lower(text);
  if (t.empty()) return Persona::generic;
  if (contains_any(t, {"secur", "audit", "vulnerab", "pentest"})) return Persona::security;
  if (contains_any(t, {"review"})) return Persona::reviewer;
  if (contains_any(t, {"test", "qa_", "quality"})) return Persona::tester;
  if (contains_any(t, {"coder", "code", "build", "develop", "engineer", "program", "implement"})) {
    return Persona::coder;
  }
  if (contains_any(t, {"lead", "plan", "architect", "manag", "orchestrat", "coordinat"})) {
    return Persona::planner;
  }
  if (contains_any(t, {"document", "writer", "docs"})) return Persona::writer;
  return Persona::generic;
}

// metadata.role first, then metadata.agent, then the system prompt.
Persona persona_of(const ChatRequest& r) {
  for (const std::string* source : {&r.role, &r.agent}) {
    Persona p = classify(*source);
    if (p != Persona::generic) return p;
  }
  if (const Message* system = last_with_role(r, "system")) return classify(system->content);
  return Persona::generic;
}

// "a", "a and b", "a, b and c"
std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += (i + 1 == words.size()) ? " and " : ", ";
    out += words[i];
  }
  return out;
}

std::string reply_to_tool_results(const ChatRequest& r) {
  // The tool results since the last assistant turn, in order.
  size_t first = r.messages.size();
  while (first > 0 && r.messages[first - 1].role == "tool")
    --first;
  std::string text;
  for (size_t i = first; i < r.messages.size(); ++i) {
    const Message& m = r.messages[i];
    std::string name = m.name;
    if (name.empty()) {  // look the id up in the assistant's tool calls
      for (const Message& earlier : r.messages) {
        for (const ToolCall& call : earlier.tool_calls) {
          if (!m.tool_call_id.empty() && call.id == m.tool_call_id) name = call.name;
        }
      }
    }
    if (name.empty()) name = "tool";
    text += "The " + name + " tool returned: " + m.content + "\n";
  }
  const Message* user = last_with_role(r, "user");
  std::string topic = user != nullptr ? first_line(user->content) : std::string();
  if (topic.empty()) {
    text += "Based on this result, the task is complete.";
  } else {
    text += "Based on this result, here is the answer to \"" + topic +
            "\": the information above covers it, so the task is complete.";
  }
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------------------

Settings parse_settings(std::string_view text) {
  Settings s;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return s;
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) bad("settings", "not valid JSON");
  if (!j.is_object()) bad("settings", std::string("must be a JSON object, not ") + type_name(j));
  if (auto it = j.find("latency_ms"); it != j.end()) {
    s.latency_ms = static_cast<uint32_t>(get_uint(*it, "latency_ms", UINT32_MAX));
  }
  if (auto it = j.find("stream_chunk_chars"); it != j.end()) {
    s.stream_chunk_chars = static_cast<uint32_t>(get_uint(*it, "stream_chunk_chars", UINT32_MAX));
    if (s.stream_chunk_chars == 0) bad("stream_chunk_chars", "must be at least 1");
  }
  if (auto it = j.find("rules"); it != j.end()) {
    if (!it->is_array()) bad("rules", "must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      s.rules.push_back(parse_rule((*it)[i], "rules[" + std::to_string(i) + "]"));
    }
  }
  return s;
}

ChatRequest parse_request(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) bad("request", "not valid JSON");
  if (!j.is_object()) bad("request", "must be a JSON object");
  ChatRequest r;
  r.model = optional_string(j, "model", "request");
  auto messages = j.find("messages");
  if (messages == j.end()) bad("request.messages", "is required");
  if (!messages->is_array()) bad("request.messages", "must be an array");
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    std::string where = "request.messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(where, "must be an object");
    Message msg;
    auto role = m.find("role");
    if (role == m.end()) bad(where + ".role", "is required");
    msg.role = get_string(*role, where + ".role");
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
  if (auto meta = j.find("metadata"); meta != j.end() && meta->is_object()) {
    if (auto a = meta->find("agent"); a != meta->end() && a->is_string()) r.agent = *a;
    if (auto ro = meta->find("role"); ro != meta->end() && ro->is_string()) r.role = *ro;
  }
  return r;
}

uint64_t count_chars(std::string_view utf8) {
  uint64_t n = 0;
  for (char c : utf8) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;  // not a continuation byte
  }
  return n;
}

uint64_t tokens_for_chars(uint64_t chars) {
  return (chars + 3) / 4;
}

std::vector<std::string> split_chunks(std::string_view text, size_t chunk_chars) {
  std::vector<std::string> chunks;
  if (chunk_chars == 0) chunk_chars = 1;
  size_t start = 0, chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {  // a code point starts here
      if (chars == chunk_chars) {
        chunks.emplace_back(text.substr(start, i - start));
        start = i;
        chars = 0;
      }
      ++chars;
    }
  }
  if (start < text.size()) chunks.emplace_back(text.substr(start));
  return chunks;
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

std::vector<std::string> key_words(std::string_view text, size_t max) {
  static const char* const kStop[] = {
      "about",      "above",  "after",   "again",   "against", "also",   "analyse", "analyze",
      "because",    "diff",   "fixes",   "index",   "been",    "before", "being",   "below",
      "between",    "both",   "could",   "does",    "doing",   "down",   "during",  "each",
      "following",  "from",   "further", "have",    "having",  "here",   "into",    "just",
      "like",       "make",   "more",    "most",    "need",    "only",   "other",   "over",
      "please",     "review", "same",    "should",  "some",    "such",   "suggest", "synthesise",
      "synthesize", "than",   "that",    "their",   "them",    "then",   "there",   "these",
      "they",       "this",   "those",   "through", "under",   "until",  "very",    "want",
      "were",       "what",   "when",    "where",   "which",   "while",  "will",    "with",
      "would",      "your",   "yours"};
  struct Seen {
    size_t count = 0;
    size_t first = 0;
  };
  std::unordered_map<std::string, Seen> seen;
  std::vector<std::string> order;
  std::string word;
  auto flush = [&] {
    // Words with digits are mostly hashes, numbers and versions: noise, not topics.
    bool has_digit = std::any_of(word.begin(), word.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
    if (count_chars(word) >= 4 && !has_digit &&
        std::none_of(std::begin(kStop), std::end(kStop),
                     [&](const char* s) { return word == s; })) {
      auto [it, inserted] = seen.try_emplace(word, Seen{0, order.size()});
      if (inserted) order.push_back(word);
      ++it->second.count;
    }
    word.clear();
  };
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '_' || u >= 0x80) {  // bytes >= 0x80: non-ASCII letters
      word += static_cast<char>(std::tolower(u));
    } else {
      flush();
    }
  }
  flush();
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    return seen[a].count > seen[b].count;  // stable: ties keep first-occurrence order
  });
  if (order.size() > max) order.resize(max);
  return order;
}

std::string default_reply(const ChatRequest& r) {
  if (!r.messages.empty() && r.messages.back().role == "tool") return reply_to_tool_results(r);

  const Message* user = last_with_role(r, "user");
  std::string input = user != nullptr ? user->content : std::string();
  std::string topic = first_line(input);
  std::string quoted = topic.empty() ? std::string("your request") : "\"" + topic + "\"";
  // Prompts usually read "instruction:\nmaterial"; the key words come from the material
  // when there is one.
  std::string_view body = input;
  if (size_t nl = body.find('\n', body.find_first_not_of(" \t\r\n")); nl != std::string::npos) {
    body.remove_prefix(nl + 1);
  }
  std::vector<std::string> words = key_words(body, 3);
  if (words.empty()) words = key_words(input, 3);
  std::string listed = words.empty() ? std::string("the request as a whole") : join_words(words);
  // The i-th key word, or a neutral stand-in when the input has fewer.
  auto word = [&](size_t i, const char* fallback) {
    return i < words.size() ? words[i] : std::string(fallback);
  };

  switch (persona_of(r)) {
    case Persona::security:
      return "Security review of " + quoted +
             ": I checked for injection, broken authentication or authorization, secrets "
             "handling and unsafe input parsing, with attention to " +
             listed +
             ". No critical vulnerability is evident in the material provided. Recommendations: "
             "validate every external input, keep credentials out of code and logs, and add tests "
             "for the failure paths. Overall risk: low.";
    case Persona::reviewer:
      return "Review of " + quoted + ": the change is focused and readable; it centres on " +
             listed + ". Points to address: error handling around " +
             word(0, "the main code path") + " and test coverage for " + word(1, "the edge cases") +
             ". Verdict: approve after these small fixes.";
    case Persona::tester:
      return "Test plan for " + quoted + ":\n1. Unit tests for " + word(0, "the main behaviour") +
             ".\n2. Edge cases and invalid input around " + word(1, "the inputs") +
             ".\n3. An integration test covering " + word(2, "the end-to-end flow") +
             ".\nExpected result: all pass with no regressions.";
    case Persona::coder:
      return "Suggested changes for " + quoted + ":\n1. Move the logic around " +
             word(0, "the main code path") +
             " into a small function with a clear contract.\n2. Handle errors and invalid input "
             "explicitly where " +
             word(1, "the input") + " is processed.\n3. Add unit tests covering " +
             word(2, "the new behaviour") +
             ", including edge cases.\nThese changes keep the behaviour while making the code "
             "easier to review and maintain.";
    case Persona::planner:
      if (contains_any(lower(input), {"synthes", "summar", "combine", "consolidat"})) {
        return "Synthesis of " + quoted + ": the contributions agree on the essentials, namely " +
               listed +
               ". Combined recommendation: act first on the points the inputs share, resolve the "
               "open concerns they raise, and verify the result with tests. With that, the work "
               "is ready to conclude.";
      }
      return "Analysis of " + quoted + ": the request centres on " + listed +
             ". Plan: 1) clarify the goal and the constraints; 2) work through " +
             word(0, "the core task") + " first, then " + word(1, "the remaining parts") +
             "; 3) check the result against the original request and summarise the outcome.";
    case Persona::writer:
      return "Documentation for " + quoted + ": an overview of " + listed +
             ", step-by-step usage with a short example, and the known limitations. Each section "
             "stays brief and links to the reference where details matter.";
    case Persona::generic:
      break;
  }
  return "Here is my response to " + quoted + ". The key points are " + listed +
         ". In short: the request is clear, the main consideration is " +
         word(0, "the goal itself") +
         ", and a sensible next step is to confirm the details and proceed.";
}

// ---------------------------------------------------------------------------------------

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
    : settings_(std::move(settings)), rule_uses_(settings_.rules.size(), 0) {}

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
  for (size_t i = 0; i < settings_.rules.size(); ++i) {
    const Rule& candidate = settings_.rules[i];
    if (candidate.match && user_text.find(*candidate.match) == std::string_view::npos) continue;
    if (candidate.model && req.model != *candidate.model) continue;
    if (candidate.times && rule_uses_[i] >= *candidate.times) continue;
    ++rule_uses_[i];
    rule = &candidate;
    break;
  }

  if (rule != nullptr && rule->latency_ms) out.latency_ms = *rule->latency_ms;
  if (rule != nullptr && rule->error) {
    out.kind = Outcome::Kind::fail;
    out.failure = *rule->error;
    return out;
  }

  bool after_tool = !req.messages.empty() && req.messages.back().role == "tool";
  if (rule != nullptr && !rule->tool_calls.empty() && req.has_tools && !after_tool) {
    out.tool_calls = rule->tool_calls;
    for (size_t i = 0; i < out.tool_calls.size(); ++i) {
      out.tool_calls[i].id = "call_" + std::to_string(i + 1);
    }
    out.finish_reason = "tool_calls";
    out.text = rule->reply.value_or("");
  } else if (rule != nullptr && rule->reply) {
    out.text = *rule->reply;
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
