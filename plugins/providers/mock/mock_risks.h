// mock_risks.h: the risky lines of a prompt's code — SQL built by interpolation, shell or code
// execution, unsafe deserialization, disabled TLS verification, hard-coded credentials — for
// the security, coder, review and synthesis replies.
//
// Plain string scanning over the lines mock_scan.h reads, no regular expressions; deliberately
// simple heuristics that make the offline replies refer to the input, not a security scanner.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::mock {

// A risky line: SQL built by interpolation, shell or code execution, unsafe deserialization,
// disabled TLS verification, a hard-coded credential.
struct Finding {
  std::string kind;      // "SQL injection", "command injection", ...
  std::string advice;    // what to do instead
  bool high = false;     // high risk (injection, execution), else medium
  std::string code;      // the line, trimmed, at most 100 characters
  std::string file;      // from the diff, when there is one
  uint32_t line = 0;     // 0 when unknown
  std::string function;  // the enclosing definition, when known
  // "app/users.py:20 in search_users", "app/users.py:20", "" when nothing is known.
  std::string where() const;
};

// The risky lines of a text: in a diff only the added lines (what the change introduces),
// otherwise every line. One finding per line, at most one per distinct line of code.
std::vector<Finding> find_risks(std::string_view text);

}  // namespace troupe::mock
