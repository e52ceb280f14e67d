// abi_values.h: copying values across the C ABI and running plugin code under a barrier.
//
// Internal to host/plugin. The host copies everything a plugin hands in (borrowed strings,
// size-prefixed structs) before it returns, and no exception of a plugin callback may unwind
// into the host.
#pragma once

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

#include "plugin/plugin_instance.h"
#include "troupe/plugin.h"

namespace troupe {

// A borrowed troupe_str_t as an owned string ("" for NULL).
inline std::string text(troupe_str_t s) {
  if (s.ptr == nullptr || s.len == 0) return std::string();
  return std::string(s.ptr, s.len);
}

// A string the host owns, lent to the plugin for the duration of one call.
inline troupe_str_t view(const std::string& s) {
  return troupe_str_t{s.data(), s.size()};
}

// Size-prefix rule for structs the plugin hands in: copy what it declared, zero the rest.
template <typename T>
T read_struct(const T* in) {
  T out{};
  std::memcpy(&out, in, std::min<size_t>(in->struct_size, sizeof(T)));
  return out;
}

// Runs a plugin callback, turning an escaping exception into a contract violation.
template <typename Fn>
void guarded(PluginInstance& instance, uint64_t call_id, const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    instance.violation(call_id, std::string(what) + " threw: " + e.what());
  } catch (...) {
    instance.violation(call_id, std::string(what) + " threw an unknown exception");
  }
}

}  // namespace troupe
