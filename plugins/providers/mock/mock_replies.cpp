// mock_replies.cpp: the mock's default replies, one writer per persona (see mock_replies.h).
#include "mock_replies.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <initializer_list>
#include <vector>

#include "common/text.h"
#include "mock_persona.h"
#include "mock_risks.h"
#include "mock_scan.h"
#include "mock_text.h"

namespace troupe::mock {

namespace {

bool contains_any(const std::string& haystack, std::initializer_list<const char*> needles) {
  for (const char* n : needles) {
    if (kit::contains(haystack, n)) return true;
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
    line = kit::trim_left(line);
    while (!line.empty() &&
           (kit::is_space(line.back()) || line.back() == ':' || line.back() == '.')) {
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
  std::string t = kit::ascii_lower(text);
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
      std::string instruction = kit::ascii_lower(first_line_view(p.input));
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

}  // namespace troupe::mock
