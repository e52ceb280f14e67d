// mock_replies.h: the mock's default reply — a short, plausible answer written for the
// persona asking (mock_persona.h) from the last user message: its first line, key words,
// files, functions and risky lines (mock_scan.h, mock_risks.h), or the tool results a tool
// turn returned. README.md ("The default reply") describes each persona's reply.
#pragma once

#include <string>

#include "mock_request.h"

namespace troupe::mock {

// The deterministic reply when no rule gives one: its persona comes from metadata.role, then
// metadata.agent, then the system prompt's first sentence; it quotes the last user message's
// first line and key words, and names the files, functions and risky lines it finds there.
std::string default_reply(const ChatRequest& request);

}  // namespace troupe::mock
