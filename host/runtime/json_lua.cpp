// json_lua.cpp: Lua <-> JSON conversion on top of nlohmann::json's SAX parser and dumper.
#include "runtime/json_lua.h"

#include <cmath>
#include <lua.hpp>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/json_text.h"
#include "core/utf8.h"

namespace troupe::lua {
namespace {

const char kNullKey = 0;     // registry key (address) of the null sentinel
const char kArrayMtKey = 0;  // registry key (address) of the array marker metatable

// Builds Lua values directly from parser events: no intermediate DOM.
class LuaSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit LuaSax(lua_State* L) : L_(L) {}

  bool null() override {
    push_null(L_);
    return store();
  }
  bool boolean(bool v) override {
    lua_pushboolean(L_, v);
    return store();
  }
  bool number_integer(number_integer_t v) override {
    lua_pushinteger(L_, v);
    return store();
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > static_cast<number_unsigned_t>(LUA_MAXINTEGER))
      lua_pushnumber(L_, static_cast<lua_Number>(v));
    else
      lua_pushinteger(L_, static_cast<lua_Integer>(v));
    return store();
  }
  bool number_float(number_float_t v, const string_t&) override {
    lua_pushnumber(L_, v);
    return store();
  }
  bool string(string_t& v) override {
    lua_pushlstring(L_, v.data(), v.size());
    return store();
  }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override {
    if (too_deep() || !lua_checkstack(L_, 4)) return false;
    lua_createtable(L_, 0, 4);
    stack_.push_back({false, 0});
    return true;
  }
  bool key(string_t& k) override {
    lua_pushlstring(L_, k.data(), k.size());
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return store();
  }
  bool start_array(std::size_t) override {
    if (too_deep() || !lua_checkstack(L_, 4)) return false;
    lua_createtable(L_, 4, 0);
    push_array_mt(L_);
    lua_setmetatable(L_, -2);
    stack_.push_back({true, 0});
    return true;
  }
  bool end_array() override {
    stack_.pop_back();
    return store();
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error_ = "invalid JSON at byte " + std::to_string(position) + ": " + ex.what();
    return false;
  }

  const std::string& error() const { return error_; }
  int depth() const { return static_cast<int>(stack_.size()); }

 private:
  struct Frame {
    bool array;
    lua_Integer next;
  };
  bool too_deep() {
    if (stack_.size() < static_cast<size_t>(kMaxJsonDepth)) return false;
    error_ = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return true;
  }
  // Moves the value on top into the enclosing container (if any).
  bool store() {
    if (stack_.empty()) return true;
    Frame& f = stack_.back();
    if (f.array) {
      lua_rawseti(L_, -2, ++f.next);
    } else {
      lua_rawset(L_, -3);  // table, key, value
    }
    return true;
  }

  lua_State* L_;
  std::vector<Frame> stack_;
  std::string error_;
};

bool is_array(lua_State* L, int idx, lua_Integer* n) {
  // A table is an array when its keys are exactly 1..n, or when it is empty and marked.
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return false;
    }
    lua_Integer k = lua_tointeger(L, -1);
    if (k < 1) {
      lua_pop(L, 1);
      return false;
    }
    if (k > max) max = k;
    ++count;
  }
  if (count == 0) {
    bool marked = false;
    if (lua_getmetatable(L, idx)) {
      push_array_mt(L);
      marked = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
    *n = 0;
    return marked;
  }
  *n = max;
  return max == count;
}

bool encode(lua_State* L, int idx, nlohmann::json* out, std::string& path, std::string* error,
            int depth) {
  if (depth > 200) {
    *error = path + ": nesting deeper than 200 levels (a cycle?)";
    return false;
  }
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      *out = nullptr;
      return true;
    case LUA_TBOOLEAN:
      *out = static_cast<bool>(lua_toboolean(L, idx));
      return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        *out = static_cast<int64_t>(lua_tointeger(L, idx));
      } else {
        double d = lua_tonumber(L, idx);
        if (!std::isfinite(d)) {
          *error = path + ": " + (std::isnan(d) ? "NaN" : "infinity") + " has no JSON form";
          return false;
        }
        *out = d;
      }
      return true;
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, idx, &len);
      *out = utf8::valid(std::string_view(s, len));  // before the dumper: see the key below
      return true;
    }
    case LUA_TLIGHTUSERDATA:
      push_null(L);
      if (lua_rawequal(L, -1, idx)) {
        lua_pop(L, 1);
        *out = nullptr;
        return true;
      }
      lua_pop(L, 1);
      break;
    case LUA_TTABLE: {
      if (!lua_checkstack(L, 6)) {
        *error = path + ": Lua stack exhausted";
        return false;
      }
      lua_Integer n = 0;
      if (is_array(L, idx, &n)) {
        *out = nlohmann::json::array();
        size_t base = path.size();
        for (lua_Integer i = 1; i <= n; ++i) {
          lua_rawgeti(L, idx, i);
          path += "[" + std::to_string(i) + "]";
          nlohmann::json item;
          bool ok = encode(L, -1, &item, path, error, depth + 1);
          path.resize(base);
          lua_pop(L, 1);
          if (!ok) return false;
          out->push_back(std::move(item));
        }
        return true;
      }
      *out = nlohmann::json::object();
      lua_pushnil(L);
      while (lua_next(L, idx) != 0) {
        std::string key;
        if (lua_type(L, -2) == LUA_TSTRING) {
          size_t len = 0;
          const char* k = lua_tolstring(L, -2, &len);
          // Replaced here, not by the dumper: two keys that differ only in invalid bytes
          // become one key instead of a duplicate key in the JSON text.
          key = utf8::valid(std::string_view(k, len));
        } else if (lua_type(L, -2) == LUA_TNUMBER) {
          lua_pushvalue(L, -2);  // tostring on a copy keeps lua_next's key intact
          key = lua_tostring(L, -1);
          lua_pop(L, 1);
        } else {
          *error = path + ": a table key of type " + luaL_typename(L, -2) +
                   " cannot be converted to JSON";
          lua_pop(L, 2);
          return false;
        }
        size_t base = path.size();
        path += "." + key;
        nlohmann::json item;
        bool ok = encode(L, -1, &item, path, error, depth + 1);
        path.resize(base);
        lua_pop(L, 1);
        if (!ok) {
          lua_pop(L, 1);
          return false;
        }
        (*out)[key] = std::move(item);
      }
      return true;
    }
    default:
      break;
  }
  *error = path + ": a " + luaL_typename(L, idx) + " cannot be converted to JSON";
  return false;
}

}  // namespace

void register_json_markers(lua_State* L) {
  lua_pushlightuserdata(L, nullptr);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kNullKey);
  // Shared by every run's arrays: hidden (__metatable), so no run can give another run's
  // arrays an __index of its own.
  lua_newtable(L);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__name");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kArrayMtKey);
}

void push_null(lua_State* L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kNullKey);
}

void push_array_mt(lua_State* L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMtKey);
}

bool push_json(lua_State* L, std::string_view json, std::string* error) {
  int top = lua_gettop(L);
  LuaSax sax(L);
  bool ok = nlohmann::json::sax_parse(json.begin(), json.end(), &sax);
  if (!ok) {
    lua_settop(L, top);
    *error = sax.error().empty() ? "invalid JSON" : sax.error();
    return false;
  }
  return true;
}

bool to_json(lua_State* L, int idx, nlohmann::json* out, std::string* error,
             const char* root_name) {
  std::string path = root_name;
  return encode(L, idx, out, path, error, 0);
}

bool to_json(lua_State* L, int idx, std::string* out, std::string* error, const char* root_name) {
  nlohmann::json j;
  if (!to_json(L, idx, &j, error, root_name)) return false;
  *out = json_text(j);
  return true;
}

}  // namespace troupe::lua
