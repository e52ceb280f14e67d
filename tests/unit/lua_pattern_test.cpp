// lua_pattern_test.cpp: the metered string.find/match/gmatch/gsub (host/runtime/lua_pattern.*)
// against Lua 5.4.4's own, result for result and error for error, on hand-written cases for
// every feature and error and on a few thousand generated ones; and the meter: it sees the work,
// and a meter that raises stops a catastrophic backtrack.
#include "runtime/lua_pattern.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace troupe::lua {
namespace {

// Runs one call of a pattern function and describes everything it returned (types included),
// or the error it raised. The function is called through the local `fn`, so "bad argument"
// messages name it the same way for both implementations. gmatch's iterator is run to its end
// (at most 100 results).
constexpr const char* kHarness = R"lua(
local original, metered = ...

local function describe_value(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" then return math.type(v) .. ":" .. tostring(v) end
  return t .. ":" .. tostring(v)
end

local function describe_pack(r)
  local parts = {}
  for i = 1, r.n do parts[i] = describe_value(r[i]) end
  return "(" .. table.concat(parts, ", ") .. ")"
end

local function call(fn, name, args)
  return pcall(function()
    if name ~= "gmatch" then
      local r = table.pack(fn(table.unpack(args, 1, args.n)))
      return describe_pack(r)
    end
    local it = fn(table.unpack(args, 1, args.n))
    local out = {}
    for _ = 1, 100 do
      local r = table.pack(it())
      out[#out + 1] = describe_pack(r)
      if r[1] == nil then break end
    end
    return table.concat(out, " ")
  end)
end

-- compare(name, args_source) -> original's description, metered's description
return function(name, args_source)
  local args = table.pack(assert(load("return " .. args_source))())
  local ok1, r1 = call(original[name], name, args)
  local ok2, r2 = call(metered[name], name, args)
  -- an error that is not a string (error({}) in a replacement function) is described by its type
  local function text(v) return type(v) == "string" and v or type(v) end
  return (ok1 and "ok " or "error ") .. text(r1), (ok2 and "ok " or "error ") .. text(r2)
end
)lua";

uint64_t g_steps = 0;       // steps reported to the meter since the test reset it
uint64_t g_calls = 0;       // calls of the meter
uint64_t g_largest = 0;     // largest single report
uint64_t g_stop_after = 0;  // a meter that raises once g_steps exceeds this (0: never)

void test_meter(lua_State* L, uint64_t steps) {
  g_steps += steps;
  ++g_calls;
  if (steps > g_largest) g_largest = steps;
  if (g_stop_after != 0 && g_steps > g_stop_after) luaL_error(L, "pattern budget exhausted");
}

class LuaPatternTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_steps = g_calls = g_largest = g_stop_after = 0;
    L_ = luaL_newstate();
    luaL_openlibs(L_);
    // original: Lua's own functions; metered: ours, installed into a copy of the string table.
    lua_newtable(L_);
    lua_newtable(L_);
    lua_getglobal(L_, "string");
    for (const char* name : {"find", "match", "gmatch", "gsub"}) {
      lua_getfield(L_, -1, name);
      lua_setfield(L_, -4, name);
      lua_getfield(L_, -1, name);
      lua_setfield(L_, -3, name);
    }
    lua_pop(L_, 1);
    install_metered_patterns(L_, -1, test_meter);
    lua_setglobal(L_, "metered");
    lua_setglobal(L_, "original");
    ASSERT_EQ(luaL_loadstring(L_, kHarness), LUA_OK) << lua_tostring(L_, -1);
    lua_getglobal(L_, "original");
    lua_getglobal(L_, "metered");
    ASSERT_EQ(lua_pcall(L_, 2, 1, 0), LUA_OK) << lua_tostring(L_, -1);
    compare_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
  }
  void TearDown() override { lua_close(L_); }

  // Both implementations' descriptions of name(args...), args as Lua source.
  std::pair<std::string, std::string> compare(const std::string& name, const std::string& args) {
    lua_rawgeti(L_, LUA_REGISTRYINDEX, compare_ref_);
    lua_pushstring(L_, name.c_str());
    lua_pushlstring(L_, args.data(), args.size());
    if (lua_pcall(L_, 2, 2, 0) != LUA_OK) {
      std::string error = lua_tostring(L_, -1);
      lua_pop(L_, 1);
      return {"harness error: " + error, ""};
    }
    std::pair<std::string, std::string> out{lua_tostring(L_, -2), lua_tostring(L_, -1)};
    lua_pop(L_, 2);
    return out;
  }

  // Runs a chunk; returns its error message, or "" when it succeeded.
  std::string run(const std::string& lua) {
    if (luaL_dostring(L_, lua.c_str()) == LUA_OK) return "";
    std::string error = lua_tostring(L_, -1);
    lua_settop(L_, 0);
    return error;
  }

  lua_State* L_ = nullptr;
  int compare_ref_ = LUA_NOREF;
};

struct Case {
  const char* function;
  const char* args;  // Lua source of the argument list
};

// Every feature of §6.4.1 and every error, each at its edges.
const Case kHandWritten[] = {
    // plain text, init (positive, negative, zero, past the end), plain find
    {"find", R"~("hello world", "o w")~"},
    {"find", R"~("hello world", "o", 6)~"},
    {"find", R"~("hello world", "o", -3)~"},
    {"find", R"~("hello world", "o", -100)~"},
    {"find", R"~("hello world", "o", 0)~"},
    {"find", R"~("hello", "", 6)~"},
    {"find", R"~("hello", "", 7)~"},
    {"find", R"~("hello", "", 100)~"},
    {"find", R"~("", "")~"},
    {"find", R"~("", "", 2)~"},
    {"find", R"~("a.b", ".", 1, true)~"},
    {"find", R"~("a+b", "+", 1, true)~"},
    {"find", R"~("a%b", "%", 1, 1)~"},
    {"find", R"~("abc", "[", 1, true)~"},
    {"find", R"~("abc", "b", nil, false)~"},
    {"find", R"~("a\0b\0c", "\0c")~"},
    {"find", R"~("a\0b\0c", "%z", 1)~"},
    {"find", R"~("a\0b\0c", "[\0]")~"},
    {"find", R"~("x)", "x)")~"},
    {"match", R"~("hello", "", 6)~"},
    {"match", R"~("hello", "", 7)~"},
    {"match", R"~("hello", "l+", -2)~"},
    {"match", R"~("hello", "h", 1.0)~"},
    {"match", R"~(12345, 3)~"},
    {"find", R"~(12345, 34)~"},
    {"gsub", R"~(12345, 3, 0)~"},
    {"gsub", R"~(12345, "x", "y")~"},
    // '.', classes and their complements, escapes
    {"find", R"~("abc", ".")~"},
    {"match", R"~("  x1_Y;\t\n\0\127\200", "%a+")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%a", "A")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%A", "A")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%c", "C")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%C", "C")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%d", "D")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%D", "D")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%g", "G")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%G", "G")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%l", "L")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%L", "L")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%p", "P")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%P", "P")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%s", "S")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%S", "S")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%u", "U")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%U", "U")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%w", "W")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%W", "W")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%x", "X")~"},
    {"gsub", R"~("aZ09 _;\t\n\0\1\127\128\255", "%X", "X")~"},
    {"gsub", R"~("a.b%c(d)e[f]", "%.", "!")~"},
    {"gsub", R"~("a.b%c(d)e[f]", "%%", "!")~"},
    {"gsub", R"~("a.b%c(d)e[f]", "%(", "!")~"},
    {"gsub", R"~("a.b%c(d)e[f]", "%]", "!")~"},
    {"gsub", R"~("a.b%c(d)e[f]", "%q", "!")~"},
    // sets: ranges, complements, classes inside, ']' first, '-' at the edges, '^' not first
    {"gsub", R"~("abc-xyz]^019", "[a-c]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[^a-c]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[%d%-]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[]]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[^]]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[a-]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[-a]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[a^]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[%]]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[z-a]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[%a-z]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[a-%%]", "_")~"},
    {"gsub", R"~("abc-xyz]^019", "[^%W]", "_")~"},
    {"gsub", R"~("\0\200\255", "[\128-\255]", "_")~"},
    // repetitions: greedy, lazy, optional, one or more, on sets and classes
    {"match", R"~("aaab", "a*")~"},
    {"match", R"~("aaab", "a-")~"},
    {"match", R"~("aaab", "a-b")~"},
    {"match", R"~("aaab", "a+")~"},
    {"match", R"~("aaab", "a?a?a?a?b")~"},
    {"match", R"~("baaa", "a*")~"},
    {"match", R"~("baaa", "a+")~"},
    {"match", R"~("<a><b>", "<.*>")~"},
    {"match", R"~("<a><b>", "<.->")~"},
    {"match", R"~("key = value", "^(%w+)%s*=%s*(%w+)$")~"},
    {"match", R"~("  trim me  ", "^%s*(.-)%s*$")~"},
    {"match", R"~("*+?-", "%*%+%?%-")~"},
    {"match", R"~("a-b", "a-b")~"},
    {"match", R"~("a", "a**")~"},
    {"match", R"~("a*", "a**")~"},
    {"match", R"~("+", "+")~"},
    {"match", R"~("-", "-")~"},
    {"match", R"~("?", "?")~"},
    {"match", R"~("*", "*")~"},
    // anchors
    {"find", R"~("hello", "^h")~"},
    {"find", R"~("hello", "^e")~"},
    {"find", R"~("hello", "^e", 2)~"},
    {"find", R"~("hello", "o$")~"},
    {"find", R"~("hello$", "o$")~"},
    {"find", R"~("a$b", "$b")~"},
    {"find", R"~("a^b", "a^b")~"},
    {"find", R"~("hello", "^")~"},
    {"find", R"~("hello", "$")~"},
    {"find", R"~("hello", "^$")~"},
    {"find", R"~("", "^$")~"},
    {"gsub", R"~("hello", "^", ">")~"},
    {"gsub", R"~("hello", "$", "<")~"},
    {"gsub", R"~("hello hello", "^hello", "x")~"},
    {"gmatch", R"~("^a^a", "^a")~"},
    // captures, position captures, nesting, back-references
    {"match", R"~("hello world", "(h)(e)(l)")~"},
    {"match", R"~("hello world", "((l)(l))")~"},
    {"match", R"~("hello", "()ll()")~"},
    {"find", R"~("hello", "()ll()")~"},
    {"find", R"~("hello", "(l)(l)")~"},
    {"match", R"~("hello", "()")~"},
    {"match", R"~("", "()")~"},
    {"match", R"~("hello", "(h)(.-)()$")~"},
    {"match", R"~([[say "hi" and 'bye']], "([\"'])(.-)%1")~"},
    {"match", R"~("abcabc", "(abc)%1")~"},
    {"match", R"~("abcab", "(abc)%1")~"},
    {"match", R"~("aa", "()a%1")~"},
    {"match", R"~("xyzxyz", "((x)y(z))%2y%3")~"},
    {"match", R"~("abab", "(a(b)%2?)")~"},
    {"match", R"~("a", "(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))")~"},
    {"match", R"~("a", "((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))")~"},
    {"match", R"~(string.rep("a", 40), string.rep("(a)", 32))~"},
    {"match", R"~(string.rep("a", 40), string.rep("(a)", 33))~"},
    {"match", R"~(string.rep("a", 40), string.rep("()", 32))~"},
    // %b and %f
    {"match", R"~("f(a(b)c) d", "%b()")~"},
    {"match", R"~("f(a(b)c d", "%b()")~"},
    {"match", R"~("x[[y]]z", "%b[]")~"},
    {"gsub", R"~("''a''b'", "%b''", "Q")~"},
    {"match", R"~("THE (quick) fox", "%f[%a]%a+")~"},
    {"gsub", R"~("THE (quick) fox", "%f[%a]%a+", "W")~"},
    {"gsub", R"~("THE (quick) fox", "%f[%A]", "|")~"},
    {"gsub", R"~("aaa", "%f[a]", "|")~"},
    {"gsub", R"~("aaa", "%f[^a]", "|")~"},
    {"gsub", R"~("aaa", "%f[%z]", "|")~"},
    {"gsub", R"~("a\0b", "%f[%z]", "|")~"},
    {"find", R"~("hello", "%f[%l]", 3)~"},
    // gmatch: init, empty matches, anchors are literal
    {"gmatch", R"~("hello world from Lua", "%a+")~"},
    {"gmatch", R"~("k1=v1, k2=v2", "(%w+)=(%w+)")~"},
    {"gmatch", R"~("abc", "")~"},
    {"gmatch", R"~("abc", "b*")~"},
    {"gmatch", R"~("abc", "()")~"},
    {"gmatch", R"~("hello world", "%a+", 3)~"},
    {"gmatch", R"~("hello world", "%a+", -5)~"},
    {"gmatch", R"~("hello", "", 6)~"},
    {"gmatch", R"~("hello", "", 7)~"},
    {"gmatch", R"~("hello", "", -100)~"},
    {"gmatch", R"~("a,b,,c", "([^,]*)")~"},
    // gsub: string replacements with %0-%9 and %%, max-n, tables, functions
    {"gsub", R"~("hello world", "o", "0")~"},
    {"gsub", R"~("hello world", "(o)", "[%1]")~"},
    {"gsub", R"~("hello world", "o", "[%1]")~"},
    {"gsub", R"~("hello world", "o", "[%0%0]")~"},
    {"gsub", R"~("hello world", "o", "100%%")~"},
    {"gsub", R"~("hello world", "(l)(l)", "%2%1")~"},
    {"gsub", R"~("hello world", "()ll", "%1")~"},
    {"gsub", R"~("hello world", "", "-")~"},
    {"gsub", R"~("hello world", "x*", "-")~"},
    {"gsub", R"~("abc", "%w", "%1%1")~"},
    {"gsub", R"~("abc", "%w", "%2")~"},
    {"gsub", R"~("abc", "(%w)", "%2")~"},
    {"gsub", R"~("abc", "%w", "%")~"},
    {"gsub", R"~("abc", "%w", "%x")~"},
    {"gsub", R"~("abc", "%w", "%\0")~"},
    {"gsub", R"~("abc", "%w", "a\0b")~"},
    {"gsub", R"~("abc", "%w", 7)~"},
    {"gsub", R"~("abc", "%w", 7.5)~"},
    {"gsub", R"~("hello world", "o", "0", 1)~"},
    {"gsub", R"~("hello world", "o", "0", 0)~"},
    {"gsub", R"~("hello world", "o", "0", -1)~"},
    {"gsub", R"~("hello world", "o", "0", 2.0)~"},
    {"gsub", R"~("hello world", "o", "0", 2.5)~"},
    {"gsub", R"~("hello world", "o", "0", "1")~"},
    {"gsub", R"~("hello world", "o", "0", "x")~"},
    {"gsub", R"~("hello world", "%w+", {hello = "HI", world = false})~"},
    {"gsub", R"~("hello world", "%w+", {hello = 1.5})~"},
    {"gsub", R"~("hello world", "%w+", {hello = {}})~"},
    {"gsub", R"~("hello world", "%w+", {hello = true})~"},
    {"gsub", R"~("hello world", "(%w)%w*", {h = "H"})~"},
    {"gsub", R"~("hello world", "()%w+", {[1] = "one"})~"},
    {"gsub",
     R"~("hello world", "%w+", setmetatable({}, {__index = function(_, k) return k:upper() end}))~"},
    {"gsub", R"~("hello world", "%w+", string.upper)~"},
    {"gsub", R"~("hello world", "(%w)(%w*)", function(a, b) return b .. a end)~"},
    {"gsub", R"~("hello world", "%w+", function() end)~"},
    {"gsub", R"~("hello world", "%w+", function() return false end)~"},
    {"gsub", R"~("hello world", "%w+", function() return 42 end)~"},
    {"gsub", R"~("hello world", "%w+", function() return {} end)~"},
    {"gsub", R"~("hello world", "()(%w+)()", function(a, w, b) return a .. w .. b end)~"},
    {"gsub", R"~("hello world", "%w+", function(w) error("boom " .. w) end)~"},
    {"gsub", R"~("hello world", "%w+", function(w) error({}) end)~"},
    {"gsub", R"~("abc", "", function() return "-" end)~"},
    {"gsub", R"~("hello", "l", true)~"},
    {"gsub", R"~("hello", "l")~"},
    {"gsub", R"~("hello", "l", nil)~"},
    {"gsub", R"~("abc", "^(a)", "%1%1")~"},
    {"gsub", R"~("", "", "x")~"},
    {"gsub", R"~("", "^", "x")~"},
    // bad arguments
    {"find", R"~()~"},
    {"find", R"~("a")~"},
    {"find", R"~(nil, "a")~"},
    {"find", R"~({}, "a")~"},
    {"find", R"~("a", {})~"},
    {"find", R"~("a", "a", "x")~"},
    {"find", R"~("a", "a", 1.5)~"},
    {"match", R"~("a", "a", "1")~"},
    {"gmatch", R"~("a", nil)~"},
    {"gmatch", R"~("a", "a", 2.5)~"},
    {"gsub", R"~("a")~"},
    {"gsub", R"~(nil, "a", "b")~"},
    // malformed patterns and capture errors
    {"find", R"~("abc", "%")~"},
    {"find", R"~("abc", "a%")~"},
    {"find", R"~("abc", "[a")~"},
    {"find", R"~("abc", "[")~"},
    {"find", R"~("abc", "[^")~"},
    {"find", R"~("abc", "[]")~"},
    {"find", R"~("abc", "[^]")~"},
    {"find", R"~("abc", "[a%]")~"},
    {"find", R"~("abc", "[a%")~"},
    {"find", R"~("abc", "%b")~"},
    {"find", R"~("abc", "%ba")~"},
    {"find", R"~("abc", "x%b")~"},
    {"find", R"~("abc", "%f")~"},
    {"find", R"~("abc", "%fa")~"},
    {"find", R"~("abc", "%f[a")~"},
    {"find", R"~("abc", "(a")~"},
    {"find", R"~("abc", "(x")~"},
    {"find", R"~("abc", "a)")~"},
    {"find", R"~("abc", "x)")~"},
    {"find", R"~("abc", "(a))")~"},
    {"find", R"~("abc", "%1")~"},
    {"find", R"~("abc", "(a)%2")~"},
    {"find", R"~("abc", "(a%1)")~"},
    {"find", R"~("abc", "%0")~"},
    {"find", R"~("abc", "(a)%0")~"},
    {"match", R"~("abc", "(a")~"},
    {"gmatch", R"~("abc", "(a")~"},
    {"gsub", R"~("abc", "(a", "x")~"},
    {"gmatch", R"~("abc", "%")~"},
    {"gmatch", R"~("abc", "[a")~"},
    {"gsub", R"~("abc", "[a", "x")~"},
    // the nesting limit ("pattern too complex") on both sides of it
    {"match", R"~(string.rep("a", 300), string.rep("a?", 199))~"},
    {"match", R"~(string.rep("a", 300), string.rep("a?", 200))~"},
    {"match", R"~(string.rep("a", 300), string.rep("a?", 201))~"},
    {"match", R"~(string.rep("a", 300), string.rep("a?", 300))~"},
    {"match", R"~(string.rep("a", 300), string.rep("a*", 201))~"},
    {"match", R"~(string.rep("a", 300), string.rep("a-", 201))~"},
    {"match", R"~(string.rep("a", 300), string.rep("(a)", 30) .. string.rep(".?", 180))~"},
    {"find", R"~(string.rep("a", 300), string.rep("a?", 300), 200)~"},
    {"gsub", R"~(string.rep("a", 300), string.rep("a?", 210), "x")~"},
    {"gmatch", R"~(string.rep("a", 300), string.rep("a?", 210))~"},
    // larger subjects
    {"gsub", R"~(string.rep("ab", 500), "b", "%0%0")~"},
    {"gsub", R"~(string.rep("a b ", 300), "%s+", "_", 100)~"},
    {"find", R"~(string.rep("a", 1000) .. "b", string.rep("a", 300) .. "b", 1, true)~"},
    {"find", R"~(string.rep("a", 1000), string.rep("a", 300) .. "b", 1, true)~"},
    {"find", R"~(string.rep("a", 200), ".-.-b")~"},
};

TEST_F(LuaPatternTest, HandWrittenCasesGiveLuasResultsAndErrors) {
  for (const Case& c : kHandWritten) {
    auto [expected, actual] = compare(c.function, c.args);
    EXPECT_EQ(actual, expected) << c.function << "(" << c.args << ")";
  }
}

// A Lua string literal for any bytes.
std::string lua_literal(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    char escape[8];
    std::snprintf(escape, sizeof escape, "\\%03d", c);
    out += escape;
  }
  return out + "\"";
}

// Random patterns over a small alphabet: every item, suffix, capture and anchor, well formed
// or not, against random short subjects over the same letters.
TEST_F(LuaPatternTest, GeneratedCasesGiveLuasResultsAndErrors) {
  static const char* kPieces[] = {
      "a",    "b",     "c",    ".",    "%a",   "%A",   "%d",    "%s",     "%S",   "[ab]",
      "[^a]", "[a-c]", "[%d]", "[]a]", "%b()", "%bab", "%f[a]", "%f[^a]", "(",    ")",
      "()",   "%1",    "%2",   "*",    "+",    "-",    "?",     "^",      "$",    "%",
      "[",    "]",     "%%",   "%.",   "1",    " ",    "(a*)",  "(.-)",   "%b((", "\0"};
  static const char kSubjectLetters[] = "aabbc1 ()";
  static const char* kReplacements[] = {
      R"~("<%0>")~",
      R"~("%1")~",
      R"~("%2-%1")~",
      R"~("x%%")~",
      R"~("%")~",
      R"~(function(...) local t = table.pack(...) if t[1] == "a" then return nil end
          for i = 1, t.n do t[i] = tostring(t[i]) end return table.concat(t, "|") end)~",
      R"~({a = "A", b = false, ["()"] = 1, [1] = "one", [2] = true})~"};
  std::mt19937 rng(20261207);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int compared = 0, errors = 0, matches = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string pattern;
    size_t pieces = 1 + pick(7);
    for (size_t k = 0; k < pieces; ++k) {
      const char* piece = kPieces[pick(std::size(kPieces))];
      pattern += piece[0] == '\0' ? std::string(1, '\0') : std::string(piece);
    }
    std::string subject;
    size_t length = pick(13);
    for (size_t k = 0; k < length; ++k)
      subject += kSubjectLetters[pick(sizeof kSubjectLetters - 1)];
    std::string init = pick(3) == 0 ? "nil" : std::to_string(static_cast<int>(pick(20)) - 8);
    std::string s = lua_literal(subject), p = lua_literal(pattern);
    const std::vector<std::pair<const char*, std::string>> calls = {
        {"find", s + ", " + p + ", " + init},
        {"match", s + ", " + p + ", " + init},
        {"gmatch", s + ", " + p + ", " + init},
        {"gsub", s + ", " + p + ", " + kReplacements[pick(std::size(kReplacements))] +
                     (pick(2) ? ", " + std::to_string(pick(4)) : "")}};
    for (const auto& [function, args] : calls) {
      auto [expected, actual] = compare(function, args);
      ASSERT_EQ(actual, expected) << function << "(" << args << ")";
      ++compared;
      if (expected.rfind("error ", 0) == 0) ++errors;
      if (expected.rfind("ok (\"", 0) == 0 || expected.rfind("ok (integer", 0) == 0) ++matches;
    }
  }
  EXPECT_EQ(compared, 12000);
  // The generator reaches both sides: malformed patterns and real matches.
  EXPECT_GT(errors, 1000);
  EXPECT_GT(matches, 3000);
}

// Method calls on strings go through the string table, so installing there covers s:find().
TEST_F(LuaPatternTest, InstalledInTheStringTableMethodCallsAreMetered) {
  lua_getglobal(L_, "string");
  install_metered_patterns(L_, -1, test_meter);
  lua_pop(L_, 1);
  ASSERT_EQ(run("assert(('hello world'):find('o w') == 5)\n"
                "assert(('hello'):match('(l+)') == 'll')\n"
                "assert(select(2, ('a b c'):gsub('%a', '_')) == 3)\n"
                "local n = 0 for _ in ('a b c'):gmatch('%a') do n = n + 1 end assert(n == 3)"),
            "");
  EXPECT_GT(g_steps, 0u);
}

// A plain search counts every subject byte it scans, reported exactly when the call ends.
TEST_F(LuaPatternTest, MeterSeesEveryByteOfAPlainSearch) {
  ASSERT_EQ(run("assert(metered.find(string.rep('a', 10000), 'b', 1, true) == nil)"), "");
  EXPECT_EQ(g_steps, 10000u);
  g_steps = 0;
  ASSERT_EQ(run("assert(metered.find(string.rep('a', 10000) .. 'b', 'ab', 5001, true) == 10000)"),
            "");
  EXPECT_EQ(g_steps, 5001u);
}

// The steps follow the work: `.-.-b` on n a's backtracks in ~n^3/6 attempts, so doubling n
// multiplies the count by about 8; the meter hears of them every kPatternMeterInterval steps.
TEST_F(LuaPatternTest, MeterTotalGrowsWithTheBacktracking) {
  ASSERT_EQ(run("assert(metered.find(string.rep('a', 200), '.-.-b') == nil)"), "");
  uint64_t small = g_steps;
  g_steps = g_calls = g_largest = 0;
  ASSERT_EQ(run("assert(metered.find(string.rep('a', 400), '.-.-b') == nil)"), "");
  uint64_t large = g_steps;
  EXPECT_GT(small, 200u * 200u * 200u / 6);
  EXPECT_GT(large, 7 * small);
  EXPECT_LT(large, 9 * small);
  EXPECT_LE(g_largest, kPatternMeterInterval);
  EXPECT_GE(g_calls, large / kPatternMeterInterval);
}

// gmatch's iterator and gsub (with a function replacement calling back into Lua) meter too.
TEST_F(LuaPatternTest, MeterSeesGmatchAndGsubWork) {
  ASSERT_EQ(run("local n = 0 for w in metered.gmatch(string.rep('word ', 1000), '%a+') do\n"
                "  n = n + 1 end assert(n == 1000)"),
            "");
  EXPECT_GT(g_steps, 5000u);
  g_steps = 0;
  ASSERT_EQ(run("local r, n = metered.gsub(string.rep('word ', 1000), '%a+', function(w)\n"
                "  return w:upper() end) assert(n == 1000 and r:sub(1, 5) == 'WORD ')"),
            "");
  EXPECT_GT(g_steps, 5000u);
}

// The catastrophic backtrack of the issue (hours in Lua's own find) stops at the meter's first
// refusal, with the meter's error, having done only the steps the meter allowed.
TEST_F(LuaPatternTest, RaisingMeterStopsCatastrophicBacktracking) {
  g_stop_after = 1000000;
  EXPECT_NE(
      run("metered.find(string.rep('a', 30000), '.-.-.-.-.-b')").find("pattern budget exhausted"),
      std::string::npos);
  EXPECT_LE(g_steps, g_stop_after + kPatternMeterInterval);
  g_steps = 0;
  EXPECT_NE(run("metered.gsub(string.rep('a', 30000), '.-.-.-.-.-b', 'x')")
                .find("pattern budget exhausted"),
            std::string::npos);
  g_steps = 0;
  EXPECT_NE(run("for _ in metered.gmatch(string.rep('a', 30000), '.-.-.-.-.-b') do end")
                .find("pattern budget exhausted"),
            std::string::npos);
  g_steps = 0;
  EXPECT_NE(run("metered.match(string.rep('a', 30000), '(.-)%1(.-)%2(.-)%3b')")
                .find("pattern budget exhausted"),
            std::string::npos);
  // The state is usable afterwards.
  g_stop_after = 0;
  EXPECT_EQ(run("assert(metered.find('xab', 'a(b)') == 2)"), "");
}

}  // namespace
}  // namespace troupe::lua
