// fuzz_json_lua.cpp: libFuzzer target for the JSON <-> Lua bridge (host/runtime/json_lua.cpp).
//
// An input is JSON text, or (first byte 0x01) a little program that builds a Lua value: tables
// with any keys, cycles, NaN and infinities, invalid UTF-8, the null sentinel, the array marker.
// Checked beyond "no crash, no sanitizer report":
//   - push_json that fails leaves the Lua stack as it was, with an error message;
//   - push_json that succeeds pushes exactly one value, and to_json of it succeeds unless
//     the document nests deeper than to_json's 200 levels;
//   - what to_json writes reads back (push_json) and writes again to the same text.
// Both run inside lua_pcall, as the runtime calls them: an out-of-memory raise is a Lua error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <lua.hpp>
#include <string>
#include <string_view>

#include "runtime/json_lua.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_json_lua: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

lua_State* state() {
  static lua_State* L = [] {
    lua_State* s = luaL_newstate();
    troupe::lua::register_json_markers(s);
    return s;
  }();
  return L;
}

// Reads bytes off the front of the input.
struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  template <typename T>
  T take() {
    T v{};
    size_t k = n < sizeof(T) ? n : sizeof(T);
    std::memcpy(&v, p, k);
    p += k;
    n -= k;
    return v;
  }
};

constexpr int kMaxSlots = 48;  // values the builder keeps on the stack at once

// Builds a Lua value from the program in r; leaves it on top (nil for an empty program).
void build_value(lua_State* L, Reader r) {
  int base = lua_gettop(L);
  lua_checkstack(L, kMaxSlots + 8);
  while (!r.empty()) {
    int used = lua_gettop(L) - base;
    uint8_t op = r.byte() % 10;
    if (op <= 5 || op == 8) {
      if (used >= kMaxSlots) continue;
    }
    switch (op) {
      case 0:
        lua_pushnil(L);
        break;
      case 1:
        lua_pushboolean(L, r.byte() & 1);
        break;
      case 2:
        lua_pushinteger(L, r.take<lua_Integer>());
        break;
      case 3:
        lua_pushnumber(L, r.take<double>());  // any bits: NaN, infinities, -0.0
        break;
      case 4: {
        size_t len = r.byte() % 16;
        if (len > r.n) len = r.n;
        lua_pushlstring(L, reinterpret_cast<const char*>(r.p), len);
        r.p += len;
        r.n -= len;
        break;
      }
      case 5:
        lua_createtable(L, 0, 0);
        break;
      case 6: {  // t[k] = v for the table at slot i (k, v the two values on top)
        if (used < 3) break;
        int t = base + 1 + r.byte() % (used - 2);
        if (lua_type(L, t) != LUA_TTABLE) break;
        int k = lua_gettop(L) - 1;
        bool nan = lua_type(L, k) == LUA_TNUMBER && lua_tonumber(L, k) != lua_tonumber(L, k);
        if (lua_isnil(L, k) || nan) break;
        lua_rawset(L, t);
        break;
      }
      case 7:  // mark the table on top as a JSON array
        if (used >= 1 && lua_type(L, -1) == LUA_TTABLE) {
          troupe::lua::push_array_mt(L);
          lua_setmetatable(L, -2);
        }
        break;
      case 8:
        troupe::lua::push_null(L);
        break;
      case 9:  // copy slot i to the top: shared tables, and cycles once it is stored into itself
        if (used >= 1 && used < kMaxSlots) lua_pushvalue(L, base + 1 + r.byte() % used);
        break;
    }
  }
  if (lua_gettop(L) == base) lua_pushnil(L);
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);
}

// to_json of the value on top, then the round trip of its text.
void check_round_trip(lua_State* L, bool from_json_text) {
  std::string first, error;
  if (!troupe::lua::to_json(L, -1, &first, &error, "value")) {
    if (error.empty()) fail("to_json failed without a message", "");
    // A document nested deeper than to_json allows is the one JSON text it cannot write back.
    if (from_json_text && error.find("nesting deeper than 200") == std::string::npos)
      fail("a value read from JSON does not convert back", error);
    return;
  }
  int top = lua_gettop(L);
  if (!troupe::lua::push_json(L, first, &error))
    fail("to_json wrote text push_json refuses", error);
  if (lua_gettop(L) != top + 1) fail("push_json pushed other than one value", first);
  std::string second;
  if (!troupe::lua::to_json(L, -1, &second, &error, "value"))
    fail("the round trip does not convert back", error);
  if (second != first) fail("the round trip changed the text", first + "\n  became\n" + second);
  lua_pop(L, 1);
}

int run_json_text(lua_State* L) {
  auto* text = static_cast<const std::string_view*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  std::string error;
  if (!troupe::lua::push_json(L, *text, &error)) {
    if (lua_gettop(L) != 0) fail("a failed push_json left values on the stack", *text);
    if (error.empty()) fail("push_json failed without a message", *text);
    return 0;
  }
  if (lua_gettop(L) != 1) fail("push_json pushed other than one value", *text);
  check_round_trip(L, true);
  return 0;
}

int run_builder(lua_State* L) {
  auto* r = static_cast<const Reader*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  build_value(L, *r);
  check_round_trip(L, false);
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lua_State* L = state();
  int status;
  if (size > 0 && data[0] == 0x01) {
    Reader r{data + 1, size - 1};
    lua_pushcfunction(L, run_builder);
    lua_pushlightuserdata(L, &r);
    status = lua_pcall(L, 1, 0, 0);
  } else {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    lua_pushcfunction(L, run_json_text);
    lua_pushlightuserdata(L, &text);
    status = lua_pcall(L, 1, 0, 0);
  }
  if (status != LUA_OK) fail("a Lua error escaped", lua_tostring(L, -1));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
