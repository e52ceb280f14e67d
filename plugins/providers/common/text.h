// text.h: the plugin side's ASCII text helpers — lowercase, search, case-blind compare, trim.
//
// One home for them on the plugin side: the provider kit, which every provider plugin links
// (the mock too). The host has its own, host/core/text.h, with the same names where the
// helper is the same (plugins link nothing of the host, the host does not link the kit).
// ASCII only and locale-free: header names, status words, vendor codes and prompt keywords
// are ASCII, and a byte >= 0x80 is never changed or counted as space.
#pragma once

#include <string>
#include <string_view>

namespace troupe::kit {

// s with 'A'..'Z' turned into 'a'..'z'.
std::string ascii_lower(std::string_view s);

// True when needle occurs in haystack.
bool contains(std::string_view haystack, std::string_view needle);

// Equal ignoring ASCII case ("Retry-After" == "retry-after").
bool iequals(std::string_view a, std::string_view b);

// Whitespace as C's isspace() in the "C" locale: ' ', '\t', '\n', '\v', '\f', '\r'.
bool is_space(char c);

// s without leading and trailing whitespace (is_space).
std::string_view trim(std::string_view s);

// s without leading whitespace (is_space).
std::string_view trim_left(std::string_view s);

// s without leading and trailing spaces and tabs only: HTTP's optional whitespace around a
// header value or list element (RFC 9110 5.6.3), where a line break is not padding.
std::string_view trim_blanks(std::string_view s);

}  // namespace troupe::kit
