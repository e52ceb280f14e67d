// json_text.h: the one way the host writes a JSON value as text.
//
// Lenient: invalid UTF-8 in a string (a prompt, a tool result, a vendor's bytes) becomes
// U+FFFD instead of throwing out of a Lua call or a loop callback. Compact (no spaces), as
// stored in the journal and sent to plugins. Include only where <nlohmann/json.hpp> is
// already needed.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace troupe {

inline std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace troupe
