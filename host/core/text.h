// text.h: ASCII text helpers of the host (protocol names: HTTP headers, hosts, schemes).
//
// ASCII only, on purpose: protocol tokens are ASCII, and the C library's locale-dependent
// tolower must not change what a header name matches. The plugin kit has its own copy
// (plugins/providers/common), as plugins link nothing of the host.
#pragma once

#include <string>
#include <string_view>

namespace troupe::text {

inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = ascii_lower(c);
  return out;
}

// Case-insensitive ASCII equality (HTTP header names).
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

// Without leading blanks (space, tab) and trailing blanks or line ends (HTTP field values).
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

}  // namespace troupe::text
