// json_lua_test.cpp: the JSON <-> Lua bridge (host/runtime/json_lua.cpp) on its own, with
// the inputs its fuzzer (tests/fuzz/fuzz_json_lua.cpp) found wrong.
#include <gtest/gtest.h>

#include <lua.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/json_lua.h"

namespace troupe::lua {
namespace {

class JsonLuaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    L_ = luaL_newstate();
    register_json_markers(L_);
  }
  void TearDown() override { lua_close(L_); }

  // to_json of the value on top, as text.
  std::string text_of_top() {
    std::string out, error;
    EXPECT_TRUE(to_json(L_, -1, &out, &error)) << error;
    return out;
  }

  lua_State* L_ = nullptr;
};

TEST_F(JsonLuaTest, KeysThatDifferOnlyInInvalidUtf8BecomeOneKeyNotADuplicate) {
  // Found by fuzz_json_lua (corpus/json_lua/crash-invalid-utf8-keys): the dumper replaced the
  // invalid bytes only when writing, so {"\xff"=1, "\xfe"=2} became {"\ufffd":1,"\ufffd":2}.
  lua_newtable(L_);
  lua_pushinteger(L_, 1);
  lua_setfield(L_, -2, "k\xff");
  lua_pushinteger(L_, 2);
  lua_setfield(L_, -2, "k\xfe");
  std::string text = text_of_top();
  nlohmann::json doc = nlohmann::json::parse(text);
  ASSERT_EQ(doc.size(), 1u) << text;
  EXPECT_TRUE(doc.contains("k\xEF\xBF\xBD")) << text;
  EXPECT_EQ(text.find("k\xEF\xBF\xBD"), text.rfind("k\xEF\xBF\xBD")) << "a duplicate key: " << text;
}

TEST_F(JsonLuaTest, WrittenTextReadsBackToTheSameText) {
  lua_newtable(L_);
  lua_pushstring(L_, "\xe9t\xc3\xa9 \xed\xa0\x80 \xf4\x90\x80\x80 ok \xf0\x9f\x98\x80");
  lua_setfield(L_, -2, "b\xc0\xaf");
  lua_pushstring(L_, "plain");
  lua_setfield(L_, -2, "a");
  std::string first = text_of_top();
  std::string error;
  ASSERT_TRUE(push_json(L_, first, &error)) << error;
  EXPECT_EQ(text_of_top(), first);
  // Each invalid byte is one U+FFFD; well-formed sequences (é, the emoji) are kept.
  EXPECT_NE(first.find("\xEF\xBF\xBDt\xC3\xA9 "), std::string::npos) << first;
  EXPECT_NE(first.find("ok \xF0\x9F\x98\x80"), std::string::npos) << first;
  EXPECT_EQ(first.find("\xED\xA0\x80"), std::string::npos) << "a surrogate survived: " << first;
}

}  // namespace
}  // namespace troupe::lua
