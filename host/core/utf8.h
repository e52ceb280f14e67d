// utf8.h: well-formed UTF-8 (Unicode 15, table 3-7), for text that must become JSON or YAML.
//
//   size_t n = troupe::utf8::sequence_length(s, i);  // 1..4, or 0 when s[i] begins none
//   size_t bad = troupe::utf8::first_invalid(s);     // npos when all of s is well-formed
//   std::string text = troupe::utf8::valid(s);       // each bad byte -> U+FFFD
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace troupe::utf8 {

// Length of the well-formed sequence that starts at s[i] (i < s.size()), 0 when there is none:
// a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, or cut short.
inline size_t sequence_length(std::string_view s, size_t i) {
  auto in = [&](size_t k, unsigned char lo, unsigned char hi) {
    if (i + k >= s.size()) return false;
    auto b = static_cast<unsigned char>(s[i + k]);
    return b >= lo && b <= hi;
  };
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return in(1, 0x80, 0xBF) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return in(1, lo, hi) && in(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return in(1, lo, hi) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

// Offset of the first byte that begins no well-formed sequence; npos when there is none.
inline size_t first_invalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

// s with each byte that begins no well-formed sequence replaced by U+FFFD: text that any JSON
// writer, SQLite TEXT column or Python str takes as it is.
inline std::string valid(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = sequence_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace troupe::utf8
