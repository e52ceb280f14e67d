// json_access.h: lenient reads of vendor JSON — a missing or mistyped field reads as empty/zero —
// and the plugin side's one lenient write, json_text().
//
// Vendor responses grow and vary between compatible servers; the wire code reads what it needs
// with these and decides itself which absences are errors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace troupe::kit {

// object[key] when it is a string, else "".
inline std::string string_at(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The largest token count a vendor can report: 2^53, past which JSON numbers are not exact.
// Sums of a few counts (input + cached + ..., the total) then cannot overflow.
inline constexpr int64_t kMaxCount = int64_t{1} << 53;

// object[key] as a token count: a non-negative integer (floats truncated), else 0; counts
// past kMaxCount (1e300, 2^64 - 1) read as kMaxCount.
inline int64_t count_at(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return 0;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return 0;
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (!(d > 0)) return 0;  // also NaN
    return d < static_cast<double>(kMaxCount) ? static_cast<int64_t>(d) : kMaxCount;
  }
  if (it->is_number_unsigned()) {
    uint64_t u = it->get<uint64_t>();
    return u < static_cast<uint64_t>(kMaxCount) ? static_cast<int64_t>(u) : kMaxCount;
  }
  int64_t n = it->get<int64_t>();
  return n <= 0 ? 0 : std::min(n, kMaxCount);
}

// object[key], or a null value when object is not an object or has no such key.
inline const nlohmann::json& member(const nlohmann::json& object, const char* key) {
  static const nlohmann::json null_value;
  if (!object.is_object()) return null_value;
  auto it = object.find(key);
  return it != object.end() ? *it : null_value;
}

// The compact JSON text of a value, where invalid UTF-8 in a string becomes U+FFFD instead of
// throwing: what a plugin sends (request bodies, tool-call arguments, the response) must
// serialise even when a vendor or a header put bad bytes into it. The one place on the plugin
// side that spells nlohmann's dump(-1, ' ', false, replace); the host's is host/core/json_text.h,
// of the same name.
inline std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace troupe::kit
