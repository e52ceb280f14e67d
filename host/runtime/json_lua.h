// json_lua.h: converting between Lua values and JSON text.
//
// Workflow inputs and outputs, model requests and responses cross between Lua and the rest
// of the host as JSON. Objects become tables with string keys, arrays become sequences,
// JSON null becomes the light userdata troupe.null (so arrays keep their holes). Going the
// other way a table is an array when its keys are exactly 1..n (an empty table is an
// object unless its metatable marks it as an array), and in strings and keys each byte that
// begins no well-formed UTF-8 sequence becomes U+FFFD (keys that then coincide are one key).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

struct lua_State;

namespace troupe::lua {

// The deepest nesting of arrays and objects push_json() accepts: a deeper input is refused
// before it costs a Lua stack slot per level (the host's input check uses the same limit).
inline constexpr int kMaxJsonDepth = 200;

// Parses json and pushes the value. On a parse error pushes nothing and returns false with
// *error set to a message with the byte offset.
bool push_json(lua_State* L, std::string_view json, std::string* error);

// Serialises the value at idx. Returns false with *error naming the path of the offending
// value (e.g. "output.items[3]: a function cannot be converted to JSON").
bool to_json(lua_State* L, int idx, std::string* out, std::string* error,
             const char* root_name = "value");

// The same, as a JSON value (for callers that go on editing it).
bool to_json(lua_State* L, int idx, nlohmann::json* out, std::string* error,
             const char* root_name = "value");

// The registry key of the array marker metatable and of the null sentinel.
void register_json_markers(lua_State* L);
void push_null(lua_State* L);
void push_array_mt(lua_State* L);

}  // namespace troupe::lua
