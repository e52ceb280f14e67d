// mock_persona.cpp: the persona of a request (see mock_persona.h).
#include "mock_persona.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <utility>
#include <vector>

#include "common/text.h"

namespace troupe::mock {

namespace {

// The first sentence of a text: up to the first line break, or the first '.', '!' or '?'
// followed by a space ("app.py" does not end a sentence).
std::string_view first_sentence(std::string_view text) {
  text = kit::trim_left(text);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') return text.substr(0, i);
    if ((c == '.' || c == '!' || c == '?') &&
        (i + 1 == text.size() || kit::is_space(text[i + 1]))) {
      return text.substr(0, i);
    }
  }
  return text;
}

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

}  // namespace

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

std::string persona_name(std::string_view role_or_sentence) {
  return kPersonaNames[static_cast<size_t>(classify(role_or_sentence))];
}

}  // namespace troupe::mock
