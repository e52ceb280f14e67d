// mock_persona.h: who is asking — the persona a default reply is written for (mock_replies.h),
// read from metadata.role, then metadata.agent, then the system prompt's first sentence.
#pragma once

#include <string>
#include <string_view>

#include "mock_request.h"

namespace troupe::mock {

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

// metadata.role first, then metadata.agent, then the system prompt's first sentence (a
// prompt's later sentences describe the task and mention all sorts of roles).
Persona persona_of(const ChatRequest& request);

// The persona a role name, agent name or sentence reads as: "security", "devops", "migrator",
// "analyst", "architect", "reviewer", "tester", "writer", "planner", "coder" or "generic".
// The first persona word decides; in a compound ("code reviewer", "qa_lead", "devops
// engineer") its most specific part does.
std::string persona_name(std::string_view role_or_sentence);

}  // namespace troupe::mock
