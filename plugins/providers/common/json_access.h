// json_access.h: lenient reads of vendor JSON — a missing or mistyped field reads as empty/zero.
//
// Vendor responses grow and vary between compatible servers; the wire code reads what it needs
// with these and decides itself which absences are errors.
#pragma once

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

// object[key] as a token count: a non-negative integer (floats truncated), else 0.
inline int64_t count_at(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return 0;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return 0;
  int64_t n = it->is_number_float() ? static_cast<int64_t>(it->get<double>()) : it->get<int64_t>();
  return n > 0 ? n : 0;
}

// object[key], or a null value when object is not an object or has no such key.
inline const nlohmann::json& member(const nlohmann::json& object, const char* key) {
  static const nlohmann::json null_value;
  if (!object.is_object()) return null_value;
  auto it = object.find(key);
  return it != object.end() ? *it : null_value;
}

}  // namespace troupe::kit
