// lua_pattern.cpp: ns per call of string.find/match/gmatch/gsub, Lua 5.4's own (/0) against the
// metered ones of host/runtime/lua_pattern.cpp (/1), on typical patterns and one backtracking
// pattern. Calls are made from C (lua_call), so the figures are the functions' own cost.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <lua.hpp>
#include <string>

#include "runtime/lua_pattern.h"

namespace {

uint64_t g_steps = 0;
void count_steps(lua_State*, uint64_t steps) {
  g_steps += steps;
}

const std::string& text() {  // ~1 KB of prose with digits and punctuation
  static const std::string t = [] {
    std::string s;
    for (int i = 0; i < 16; ++i)
      s += "The quick brown fox jumps over 13 lazy dogs; request #" + std::to_string(i * 37) +
           " took  42 ms.\n";
    return s;
  }();
  return t;
}

// A state with Lua's functions in `string` and the metered ones in the global `metered`.
lua_State* state() {
  static lua_State* L = [] {
    lua_State* s = luaL_newstate();
    luaL_openlibs(s);
    lua_newtable(s);
    troupe::lua::install_metered_patterns(s, -1, count_steps);
    lua_setglobal(s, "metered");
    return s;
  }();
  return L;
}

void push_function(lua_State* L, bool metered, const char* name) {
  lua_getglobal(L, metered ? "metered" : "string");
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

// Calls name(subject, pattern[, extra]) per iteration; extra: an init, plain flag or replacement.
void call(benchmark::State& state, const char* name, const std::string& subject,
          const char* pattern, int extra_args, const char* extra1 = nullptr, bool plain = false) {
  lua_State* L = ::state();
  bool metered = state.range(0) == 1;
  for (auto _ : state) {
    push_function(L, metered, name);
    lua_pushlstring(L, subject.data(), subject.size());
    lua_pushstring(L, pattern);
    if (extra_args >= 1) {
      if (extra1)
        lua_pushstring(L, extra1);
      else
        lua_pushinteger(L, 1);
    }
    if (extra_args >= 2) lua_pushboolean(L, plain);
    lua_call(L, 2 + extra_args, 1);
    benchmark::DoNotOptimize(lua_type(L, -1));
    lua_pop(L, 1);
  }
}

void BM_find_digits(benchmark::State& s) {
  call(s, "find", text(), "%d+", 0);
}
void BM_find_plain(benchmark::State& s) {
  call(s, "find", text(), "ms.\n", 2, nullptr, true);
}
void BM_match_key_value(benchmark::State& s) {
  call(s, "match", "timeout_seconds  =  some value here  ", "^(%w+)%s*=%s*(.-)%s*$", 0);
}
void BM_match_no_match(benchmark::State& s) {
  call(s, "match", text(), "%d%d%d%d%d", 0);
}
void BM_gsub_spaces(benchmark::State& s) {
  call(s, "gsub", text(), "%s+", 1, " ");
}
void BM_gsub_captures(benchmark::State& s) {
  call(s, "gsub", text(), "(%a+) (%a+)", 1, "%2 %1");
}
void BM_backtrack(benchmark::State& s) {
  call(s, "find", std::string(100, 'a'), ".-.-b", 0);
}

// Iterates gmatch over every word of the text.
void BM_gmatch_words(benchmark::State& state) {
  lua_State* L = ::state();
  bool metered = state.range(0) == 1;
  for (auto _ : state) {
    push_function(L, metered, "gmatch");
    lua_pushlstring(L, text().data(), text().size());
    lua_pushstring(L, "%a+");
    lua_call(L, 2, 1);
    for (;;) {
      lua_pushvalue(L, -1);
      lua_call(L, 0, 1);
      bool done = lua_isnil(L, -1);
      lua_pop(L, 1);
      if (done) break;
    }
    lua_pop(L, 1);
  }
}

BENCHMARK(BM_find_digits)->Arg(0)->Arg(1);
BENCHMARK(BM_find_plain)->Arg(0)->Arg(1);
BENCHMARK(BM_match_key_value)->Arg(0)->Arg(1);
BENCHMARK(BM_match_no_match)->Arg(0)->Arg(1);
BENCHMARK(BM_gsub_spaces)->Arg(0)->Arg(1);
BENCHMARK(BM_gsub_captures)->Arg(0)->Arg(1);
BENCHMARK(BM_gmatch_words)->Arg(0)->Arg(1);
BENCHMARK(BM_backtrack)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
