// mock_logic.cpp: the mock provider's decisions — settings, rules, default replies, usage.
#include "mock_logic.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <stdexcept>
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
    } else if (key == "tool_turns") {
      r.tool_turns = get_uint(value, at, UINT64_MAX);
    } else if (key == "invalid_json") {
      r.invalid_json = get_uint(value, at, UINT64_MAX);
    } else {
      bad(at,
          "unknown key (expected match, model, reply, tool_calls, error, latency_ms, times, "
          "tool_turns, invalid_json)");
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

// The first non-blank line, trimmed, without a trailing colon or full stop.
std::string_view first_line_view(std::string_view text) {
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
    if (!line.empty()) return line;
    pos = end + 1;
  }
  return {};
}

// The first line as quoted in replies: at most 80 characters.
std::string first_line(std::string_view text) {
  return cut(first_line_view(text), 80);
}

// The first sentence of a text: up to the first line break, or the first '.', '!' or '?'
// followed by a space ("app.py" does not end a sentence).
std::string_view first_sentence(std::string_view text) {
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start])))
    ++start;
  text.remove_prefix(start);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') return text.substr(0, i);
    if ((c == '.' || c == '!' || c == '?') &&
        (i + 1 == text.size() || std::isspace(static_cast<unsigned char>(text[i + 1])))) {
      return text.substr(0, i);
    }
  }
  return text;
}

// In priority order: when several persona words make one compound ("code reviewer",
// "devops engineer", "qa_lead"), the most specific part (the lowest here) wins.
enum class Persona {
  security,
  devops,
  migrator,
  analyst,
  architect,
  reviewer,
  tester,
  writer,
  planner,
  coder,
  generic
};

const char* const kPersonaNames[] = {"security",  "devops",   "migrator", "analyst",
                                     "architect", "reviewer", "tester",   "writer",
                                     "planner",   "coder",    "generic"};

// A word naming a persona: a whole token, or with a trailing '*' the start of one. Tokens,
// not substrings, so that "latest" is not a tester and "devops" is not a developer.
struct PersonaWord {
  std::string_view word;
  Persona persona;
};

const PersonaWord kPersonaWords[] = {
    {"secur*", Persona::security},     {"audit*", Persona::security},
    {"vulnerab*", Persona::security},  {"pentest*", Persona::security},
    {"appsec", Persona::security},     {"infosec", Persona::security},
    {"cyber*", Persona::security},     {"devops", Persona::devops},
    {"devsecops", Persona::devops},    {"sre", Persona::devops},
    {"ops", Persona::devops},          {"infra*", Persona::devops},
    {"deploy*", Persona::devops},      {"sysadmin*", Persona::devops},
    {"reliability", Persona::devops},  {"migrat*", Persona::migrator},
    {"analy*", Persona::analyst},      {"statistic*", Persona::analyst},
    {"scientist*", Persona::analyst},  {"architect*", Persona::architect},
    {"review*", Persona::reviewer},    {"test*", Persona::tester},
    {"qa", Persona::tester},           {"quality", Persona::tester},
    {"sdet", Persona::tester},         {"writer*", Persona::writer},
    {"document*", Persona::writer},    {"docs", Persona::writer},
    {"lead", Persona::planner},        {"leads", Persona::planner},
    {"leader*", Persona::planner},     {"plan", Persona::planner},
    {"plans", Persona::planner},       {"planner*", Persona::planner},
    {"planning", Persona::planner},    {"manag*", Persona::planner},
    {"orchestrat*", Persona::planner}, {"coordinat*", Persona::planner},
    {"supervis*", Persona::planner},   {"coder*", Persona::coder},
    {"code", Persona::coder},          {"coding", Persona::coder},
    {"develop*", Persona::coder},      {"dev", Persona::coder},
    {"devs", Persona::coder},          {"engineer*", Persona::coder},
    {"program*", Persona::coder},      {"implement*", Persona::coder},
    {"build*", Persona::coder},
};

// Lowercase tokens of a name or sentence, split at non-alphanumerics and camelCase humps:
// "security_auditor" and "securityAuditor" both give {security, auditor}.
std::vector<std::string> persona_tokens(std::string_view text) {
  std::vector<std::string> tokens;
  std::string token;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(text[i]);
    if (std::isalnum(u)) {
      if (!token.empty() && std::isupper(u) &&
          std::islower(static_cast<unsigned char>(text[i - 1]))) {
        tokens.push_back(std::move(token));
        token.clear();
      }
      token += static_cast<char>(std::tolower(u));
    } else if (!token.empty()) {
      tokens.push_back(std::move(token));
      token.clear();
    }
  }
  if (!token.empty()) tokens.push_back(std::move(token));
  return tokens;
}

Persona persona_of_token(std::string_view token) {
  for (const PersonaWord& w : kPersonaWords) {
    if (w.word.back() == '*'
            ? token.substr(0, w.word.size() - 1) == w.word.substr(0, w.word.size() - 1)
            : token == w.word) {
      return w.persona;
    }
  }
  return Persona::generic;
}

// The first persona word decides, or the most specific part of the compound it starts.
Persona classify(std::string_view text) {
  std::vector<std::string> tokens = persona_tokens(text);
  for (size_t i = 0; i < tokens.size(); ++i) {
    Persona p = persona_of_token(tokens[i]);
    if (p == Persona::generic) continue;
    for (size_t j = i + 1; j < tokens.size(); ++j) {
      Persona next = persona_of_token(tokens[j]);
      if (next == Persona::generic) break;
      p = std::min(p, next);
    }
    return p;
  }
  return Persona::generic;
}

// metadata.role first, then metadata.agent, then the system prompt's first sentence (a
// prompt's later sentences describe the task and mention all sorts of roles).
Persona persona_of(const ChatRequest& r) {
  for (const std::string* source : {&r.role, &r.agent}) {
    Persona p = classify(*source);
    if (p != Persona::generic) return p;
  }
  if (const Message* system = last_with_role(r, "system")) {
    return classify(first_sentence(system->content));
  }
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

// "a, b, c and 2 more" when there are more than max items.
std::string join_some(const std::vector<std::string>& items, size_t max) {
  if (items.size() <= max) return join_words(items);
  std::vector<std::string> shown(items.begin(), items.begin() + static_cast<ptrdiff_t>(max));
  shown.push_back(std::to_string(items.size() - max) + " more");
  return join_words(shown);
}

// Markdown inline code, with a double fence when the code holds a backtick.
std::string inline_code(const std::string& code) {
  if (code.find('`') == std::string::npos) return "`" + code + "`";
  return "`` " + code + " ``";
}

// " (files: a and b; functions: f and g)", or "" when the input names neither.
std::string facts_clause(const CodeFacts& facts) {
  std::vector<std::string> parts;
  if (!facts.files.empty()) parts.push_back("files: " + join_some(facts.files, 4));
  if (!facts.functions.empty()) parts.push_back("functions: " + join_some(facts.functions, 4));
  if (parts.empty()) return {};
  return " (" + parts[0] + (parts.size() > 1 ? "; " + parts[1] : std::string()) + ")";
}

// "SQL injection at app/users.py:20 in search_users"
std::string describe(const Finding& f) {
  std::string where = f.where();
  return where.empty() ? f.kind : f.kind + " at " + where;
}

// Numbered, most severe first: "1. High: SQL injection at app/users.py:20 in search_users:
// `...`. The query is built ...". At most max, then a line counting the rest.
std::string list_findings(std::vector<Finding> findings, size_t max) {
  std::stable_partition(findings.begin(), findings.end(), [](const Finding& f) { return f.high; });
  std::string out;
  for (size_t i = 0; i < findings.size() && i < max; ++i) {
    const Finding& f = findings[i];
    std::string advice = f.advice;
    advice[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(advice[0])));
    out += std::to_string(i + 1) + ". " + (f.high ? "High" : "Medium") + ": " + describe(f) + ": " +
           inline_code(f.code) + ". " + advice + ".\n";
  }
  if (findings.size() > max) {
    out += "(" + std::to_string(findings.size() - max) + " more risky line" +
           (findings.size() - max == 1 ? "" : "s") + " not quoted here.)\n";
  }
  return out;
}

// 2 high, 1 medium, 0 no finding.
int risk_of(const std::vector<Finding>& findings) {
  int risk = 0;
  for (const Finding& f : findings)
    risk = std::max(risk, f.high ? 2 : 1);
  return risk;
}

// The risk a text states ("Overall risk: high" in a security review it quotes): 2 high,
// 1 medium, 0 low, -1 none stated.
int stated_risk(std::string_view text) {
  std::string t = lower(text);
  if (t.find("risk: high") != std::string::npos) return 2;
  if (t.find("risk: medium") != std::string::npos) return 1;
  if (t.find("risk: low") != std::string::npos) return 0;
  return -1;
}

// What the default replies work from: the last user message, read once.
struct Prompt {
  std::string input;   // the last user message
  std::string quoted;  // its first line in quotes, or "your request"
  std::vector<std::string> words;
  std::string listed;  // the key words joined, or "the request as a whole"

  // The i-th key word, or a neutral stand-in when the input has fewer.
  std::string word(size_t i, const char* fallback) const {
    return i < words.size() ? words[i] : std::string(fallback);
  }
};

Prompt read_prompt(const ChatRequest& r) {
  Prompt p;
  if (const Message* user = last_with_role(r, "user")) p.input = user->content;
  std::string topic = first_line(p.input);
  p.quoted = topic.empty() ? std::string("your request") : "\"" + topic + "\"";
  // Prompts usually read "instruction:\nmaterial"; the key words come from the material
  // when there is one.
  std::string_view body = p.input;
  if (size_t nl = body.find('\n', body.find_first_not_of(" \t\r\n")); nl != std::string::npos) {
    body.remove_prefix(nl + 1);
  }
  p.words = key_words(body, 3);
  if (p.words.empty()) p.words = key_words(p.input, 3);
  p.listed = p.words.empty() ? std::string("the request as a whole") : join_words(p.words);
  return p;
}

std::string security_reply(const Prompt& p) {
  std::vector<Finding> findings = find_risks(p.input);
  if (findings.empty()) {
    return "Security review of " + p.quoted +
           ": I checked for injection, broken authentication or authorization, secrets "
           "handling and unsafe input parsing, with attention to " +
           p.listed +
           ". No critical vulnerability is evident in the material provided. Recommendations: "
           "validate every external input, keep credentials out of code and logs, and add tests "
           "for the failure paths. Overall risk: low.";
  }
  bool high = risk_of(findings) == 2;
  return "Security review of " + p.quoted +
         ": I traced untrusted input to each sink, with attention to " + p.listed + ". Found " +
         std::to_string(findings.size()) + " risky line" + (findings.size() == 1 ? "" : "s") +
         ":\n" + list_findings(findings, 3) + "Recommendations: fix " +
         (findings.size() == 1 ? "this" : "these") +
         " before merging, validate every external input, and add a test that feeds hostile "
         "input to each sink. Overall risk: " +
         (high ? "high." : "medium.");
}

std::string coder_reply(const Prompt& p) {
  CodeFacts facts = code_facts(p.input);
  std::vector<Finding> findings = find_risks(p.input);
  std::stable_partition(findings.begin(), findings.end(), [](const Finding& f) { return f.high; });
  std::string text = "Suggested changes for " + p.quoted + facts_clause(facts) + ":\n";
  int n = 0;
  auto step = [&](const std::string& s) { text += std::to_string(++n) + ". " + s + "\n"; };
  for (size_t i = 0; i < findings.size() && i < 2; ++i) {
    step("Fix the " + describe(findings[i]) + ": " + findings[i].advice +
         ". The line: " + inline_code(findings[i].code) + ".");
  }
  std::string where = facts.functions.empty()
                          ? "the code where " + p.word(1, "the input") + " is processed"
                          : join_some(facts.functions, 3);
  step("Move the logic around " + p.word(0, "the main code path") +
       " into a small function with a clear contract.");
  step("Handle errors and invalid input explicitly in " + where +
       ", and check the boundaries (empty, first and last values, off-by-one).");
  step("Add unit tests covering " +
       (facts.functions.empty() ? p.word(2, "the new behaviour") : join_some(facts.functions, 3)) +
       ", including edge cases" + (findings.empty() ? "" : " and the hostile input above") + ".");
  return text +
         "These changes keep the behaviour while making the code easier to review and maintain.";
}

std::string reviewer_reply(const Prompt& p) {
  CodeFacts facts = code_facts(p.input);
  std::vector<Finding> findings = find_risks(p.input);
  std::stable_partition(findings.begin(), findings.end(), [](const Finding& f) { return f.high; });
  std::string text = "Review of " + p.quoted + facts_clause(facts) +
                     ": the change is focused and readable; it centres on " + p.listed + ".";
  if (!findings.empty()) {
    text += " Blocking: " + describe(findings[0]) + " (" + inline_code(findings[0].code) + ")";
    if (findings.size() > 1) text += " and " + std::to_string(findings.size() - 1) + " more";
    text += ".";
  }
  text += " Points to address: error handling around " + p.word(0, "the main code path") +
          " and test coverage for " + p.word(1, "the edge cases") + ". Verdict: ";
  int risk = risk_of(findings);
  return text + (risk == 2   ? "request changes."
                 : risk == 1 ? "approve once the flagged lines are fixed."
                             : "approve after these small fixes.");
}

std::string tester_reply(const Prompt& p) {
  CodeFacts facts = code_facts(p.input);
  std::string units =
      facts.functions.empty() ? p.word(0, "the main behaviour") : join_some(facts.functions, 3);
  return "Test plan for " + p.quoted + ":\n1. Unit tests for " + units +
         ".\n2. Edge cases and invalid input around " + p.word(1, "the inputs") +
         ".\n3. An integration test covering " + p.word(2, "the end-to-end flow") +
         ".\nExpected result: all pass with no regressions.";
}

std::string analysis_reply(const Prompt& p) {
  CodeFacts facts = code_facts(p.input);
  std::vector<Finding> findings = find_risks(p.input);
  std::stable_partition(findings.begin(), findings.end(), [](const Finding& f) { return f.high; });
  std::string text = "Analysis of " + p.quoted + ": ";
  if (facts.files.empty()) {
    text += "the request centres on " + p.listed + ".";
  } else {
    text += "the change touches " + join_some(facts.files, 4);
    if (!facts.functions.empty()) text += " and defines " + join_some(facts.functions, 4);
    text += "; it centres on " + p.listed + ".";
  }
  if (!findings.empty()) {
    text += " First risk to check: " + describe(findings[0]) + ".";
  }
  return text + " Plan: 1) clarify the goal and the constraints; 2) work through " +
         p.word(0, "the core task") + " first, then " + p.word(1, "the remaining parts") +
         "; 3) check the result against the original request and summarise the outcome.";
}

std::string synthesis_reply(const Prompt& p, const ChatRequest& r) {
  // The material being merged can be anywhere in the conversation (the diff usually is in the
  // first turn), so files and risky lines come from every user message.
  std::string conversation;
  for (const Message& m : r.messages) {
    if (m.role == "user") conversation += m.content + "\n\n";
  }
  CodeFacts facts = code_facts(conversation);
  std::vector<Finding> findings = find_risks(conversation);
  std::vector<std::string> parts = section_headings(p.input, 5);

  std::string text = "Synthesis of " + p.quoted;
  if (!parts.empty()) text += ", merging " + join_words(parts);
  text += ": the contributions agree on the essentials, namely " + p.listed + ".";
  // -1 when neither the scan nor the input says anything about risk.
  int risk = std::max(findings.empty() ? -1 : risk_of(findings), stated_risk(p.input));
  if (facts.files.empty() && findings.empty() && risk < 0) {
    return text +
           " Combined recommendation: act first on the points the inputs share, resolve the "
           "open concerns they raise, and verify the result with tests. With that, the work is "
           "ready to conclude.";
  }
  text += "\nVerdict: ";
  text += risk == 2   ? "request changes; the high-risk findings must be fixed before merging."
          : risk == 1 ? "approve once the findings below are fixed."
                      : "approve after the suggested fixes.";
  if (!findings.empty())
    text += "\nFindings by severity:\n" + list_findings(findings, 3);
  else
    text += "\n";
  text += "Checklist for the author:\n";
  if (!findings.empty()) text += "- [ ] Fix the findings above and add a test for each.\n";
  text += "- [ ] Apply the suggested changes" +
          (facts.files.empty() ? std::string() : " to " + join_some(facts.files, 4)) + ".\n";
  text += "- [ ] Cover " +
          (facts.functions.empty() ? p.word(0, "the change") : join_some(facts.functions, 4)) +
          " with tests for the edge cases.\n";
  return text + "- [ ] Ask for a second review once these are done.";
}

std::string analyst_reply(const Prompt& p) {
  return "Data analysis of " + p.quoted + ": the material centres on " + p.listed +
         ". Approach: profile " + p.word(0, "each field") +
         " (ranges, missing values, outliers), compare " + p.word(1, "the groups") +
         " across segments and over time, and check how " + p.word(2, "the outcome") +
         " relates to the rest. Preliminary reading: most of the variation appears to come from " +
         p.word(0, "a few fields") +
         "; confirm it on the full dataset before drawing conclusions, and state the caveats "
         "(sample size, missing data).";
}

std::string devops_reply(const Prompt& p) {
  CodeFacts facts = code_facts(p.input);
  return "Operations plan for " + p.quoted + facts_clause(facts) +
         ":\n1. Build once and promote the same artefact through staging to production; keep "
         "the configuration for " +
         p.word(0, "the service") +
         " out of the image.\n2. Roll out gradually behind health checks, watching error rates "
         "and latency of " +
         p.word(1, "the changed paths") + ".\n3. Keep a tested rollback and alerts for " +
         p.word(2, "the critical paths") +
         ".\nSecrets stay in the secret store, never in the repository or the logs.";
}

std::string migrator_reply(const Prompt& p) {
  return "Migration plan for " + p.quoted + ":\n1. Inventory everything that depends on " +
         p.word(0, "the old system") + " and take a backup.\n2. Migrate " + p.word(1, "the data") +
         " in small, reversible steps, keeping the old and the new path working side by side."
         "\n3. Verify " +
         p.word(2, "the result") +
         " with before-and-after checks (counts, checksums, sample queries), then remove the old "
         "path.\nRollback: every step can be undone until the old path is removed.";
}

std::string architect_reply(const Prompt& p) {
  return "Architecture notes on " + p.quoted + ": the main components are " + p.listed +
         ". Proposal: put " + p.word(0, "the core") + " behind a narrow interface, keep " +
         p.word(1, "the services") + " stateless where possible, and make the boundary to " +
         p.word(2, "external systems") +
         " explicit (data contracts, timeouts, retries). Trade-off: a little more indirection "
         "for parts that can be tested, scaled and replaced independently. Record the decision "
         "and who owns each interface.";
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

std::string persona_name(std::string_view role_or_sentence) {
  return kPersonaNames[static_cast<size_t>(classify(role_or_sentence))];
}

std::string default_reply(const ChatRequest& r) {
  if (!r.messages.empty() && r.messages.back().role == "tool") return reply_to_tool_results(r);

  Prompt p = read_prompt(r);
  switch (persona_of(r)) {
    case Persona::security:
      return security_reply(p);
    case Persona::reviewer:
      return reviewer_reply(p);
    case Persona::tester:
      return tester_reply(p);
    case Persona::coder:
      return coder_reply(p);
    case Persona::planner: {
      // The instruction is the first line; the material below it may well mention summaries.
      std::string instruction = lower(first_line_view(p.input));
      if (contains_any(instruction, {"synthes", "summar", "combine", "consolidat"})) {
        return synthesis_reply(p, r);
      }
      return analysis_reply(p);
    }
    case Persona::analyst:
      return analyst_reply(p);
    case Persona::devops:
      return devops_reply(p);
    case Persona::migrator:
      return migrator_reply(p);
    case Persona::architect:
      return architect_reply(p);
    case Persona::writer:
      return "Documentation for " + p.quoted + ": an overview of " + p.listed +
             ", step-by-step usage with a short example, and the known limitations. Each section "
             "stays brief and links to the reference where details matter.";
    case Persona::generic:
      break;
  }
  return "Here is my response to " + p.quoted + ". The key points are " + p.listed +
         ". In short: the request is clear, the main consideration is " +
         p.word(0, "the goal itself") +
         ", and a sensible next step is to confirm the details and proceed.";
}

namespace {

const json* resolve_ref(const json& schema, const json& root) {
  auto ref = schema.find("$ref");
  if (ref == schema.end() || !ref->is_string()) return nullptr;
  std::string target = ref->get<std::string>();
  if (target.rfind("#", 0) != 0) return nullptr;  // only local references
  json::json_pointer pointer(target.substr(1));   // throws on a malformed pointer
  return root.contains(pointer) ? &root.at(pointer) : nullptr;
}

// The first type a schema allows, preferring anything over "null".
std::string schema_type(const json& schema) {
  auto type = schema.find("type");
  if (type != schema.end() && type->is_string()) return type->get<std::string>();
  if (type != schema.end() && type->is_array()) {
    for (const json& t : *type) {
      if (t.is_string() && t != "null") return t.get<std::string>();
    }
    return "null";
  }
  if (schema.contains("properties")) return "object";
  if (schema.contains("items")) return "array";
  return "string";
}

double bound(const json& schema, const char* key, double fallback) {
  auto it = schema.find(key);
  return it != schema.end() && it->is_number() ? it->get<double>() : fallback;
}

json sample_value(const json& schema, const json& root, const std::string& name, int depth) {
  if (depth > 16 || !schema.is_object()) return nullptr;
  if (const json* target = resolve_ref(schema, root)) {
    return sample_value(*target, root, name, depth + 1);
  }
  if (auto c = schema.find("const"); c != schema.end()) return *c;
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array() && !e->empty()) {
    return e->front();
  }
  for (const char* key : {"oneOf", "anyOf", "allOf"}) {
    auto alt = schema.find(key);
    if (alt != schema.end() && alt->is_array() && !alt->empty()) {
      return sample_value(alt->front(), root, name, depth + 1);
    }
  }
  std::string type = schema_type(schema);
  if (type == "object") {
    json out = json::object();
    if (auto props = schema.find("properties"); props != schema.end() && props->is_object()) {
      for (const auto& [key, sub] : props->items()) {
        out[key] = sample_value(sub, root, key, depth + 1);
      }
    }
    if (auto req = schema.find("required"); req != schema.end() && req->is_array()) {
      for (const json& key : *req) {
        if (key.is_string() && !out.contains(key.get<std::string>())) {
          out[key.get<std::string>()] = "sample " + key.get<std::string>();
        }
      }
    }
    return out;
  }
  if (type == "array") {
    json out = json::array();
    auto items = schema.find("items");
    size_t n = static_cast<size_t>(std::max(1.0, std::min(bound(schema, "minItems", 1), 8.0)));
    for (size_t i = 0; i < n; ++i) {
      if (items != schema.end() && items->is_array()) {  // a tuple
        if (i < items->size()) out.push_back(sample_value((*items)[i], root, name, depth + 1));
      } else if (items != schema.end()) {
        out.push_back(sample_value(*items, root, name, depth + 1));
      } else {
        out.push_back("sample " + name);
      }
    }
    return out;
  }
  if (type == "integer" || type == "number") {
    double low = bound(schema, "minimum", -1e300);
    if (schema.contains("exclusiveMinimum")) low = bound(schema, "exclusiveMinimum", low) + 1;
    double high = bound(schema, "maximum", 1e300);
    if (schema.contains("exclusiveMaximum")) high = bound(schema, "exclusiveMaximum", high) - 1;
    double v = type == "integer" ? 1 : 1.5;
    if (v < low) v = low;
    if (v > high) v = high;
    v = std::max(-1e15, std::min(v, 1e15));  // absurd bounds must not overflow the cast
    if (type == "integer") return static_cast<int64_t>(std::ceil(v));
    return v;
  }
  if (type == "boolean") return true;
  if (type == "null") return nullptr;
  std::string text = name.empty() ? "sample" : "sample " + name;
  if (auto f = schema.find("format"); f != schema.end() && f->is_string()) {
    if (*f == "date-time") text = "2024-01-01T00:00:00Z";
    if (*f == "date") text = "2024-01-01";
    if (*f == "time") text = "00:00:00";
    if (*f == "email") text = "user@example.com";
    if (*f == "uri" || *f == "url") text = "https://example.com/";
    if (*f == "uuid") text = "00000000-0000-4000-8000-000000000000";
  }
  size_t min_len = static_cast<size_t>(std::min(bound(schema, "minLength", 0), 4096.0));
  size_t max_len = static_cast<size_t>(std::min(bound(schema, "maxLength", 1e9), 1e9));
  if (text.size() < min_len) text.append(min_len - text.size(), 'x');
  if (text.size() > max_len) text.resize(max_len);
  return text;
}

}  // namespace

std::string sample_json(std::string_view schema_json) {
  try {
    json schema = json::parse(schema_json.begin(), schema_json.end());
    return sample_value(schema, schema, "", 0).dump();
  } catch (const std::exception&) {
    return "{}";
  }
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
