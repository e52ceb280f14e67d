// sandbox_meters.cpp: the standard library's C functions that do work no count hook sees,
// charged to the calling run.
//
// The instruction budget counts Lua instructions; these functions loop in C. Each is replaced
// (in the real library table, so method calls on strings get them too) by a wrapper that
// charges its work to the run (Core::charge_instructions, which raises once the run is
// stopped) and then calls the original. See docs/decisions/0008-sandbox-containment.md.
#include <bit>
#include <cstdint>
#include <string>

#include "runtime/runtime_internal.h"

namespace troupe::rt {
namespace {

// Calls the original function (upvalue 1) with this call's arguments; returns its results.
int call_original(lua_State* L) {
  int nargs = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L);
}

// table.sort: n log n comparisons. Comparators written in Lua are counted by the hook as
// well; the default comparison (and __lt in C) is not, so the estimate is charged up front.
int metered_sort(lua_State* L) {
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, 1);
    if (n > 1) {
      auto count = static_cast<uint64_t>(n);
      core_of_state(L)->charge_instructions(L,
                                            count * static_cast<uint64_t>(std::bit_width(count)));
    }
  }
  return call_original(L);
}

// string.rep: a result the run's memory cannot hold stops the run before it is built (as the
// allocator's refusal would, with the size in the message); the bytes copied are charged (one
// instruction per 64).
int metered_rep(lua_State* L) {
  size_t len = 0, sep_len = 0;
  luaL_checklstring(L, 1, &len);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &sep_len);
  if (n > 0 && len + sep_len > 0) {
    auto count = static_cast<uint64_t>(n);
    uint64_t piece = static_cast<uint64_t>(len) + sep_len;
    uint64_t total = count > UINT64_MAX / piece ? UINT64_MAX : count * piece - sep_len;
    Core* core = core_of_state(L);
    Task* t = core->task_of_thread(L);
    if (t != nullptr) {
      Run& run = *t->run;
      uint64_t limit = core->options.limits.max_memory_bytes;
      uint64_t held = core->memory.used(run.mem_slot) + run.host_bytes;
      if (limit != 0 && (held >= limit || total > limit - held) && run.kill_reason.empty()) {
        run.kill_reason = "memory limit exceeded: string.rep would build " +
                          std::to_string(total) + " bytes, more than the run has left of its " +
                          std::to_string(limit >> 20) + " MiB (limits.max_memory_mb)";
      }
      core->charge_instructions(L, total / 64);  // raises once the run is stopped
    }
  }
  return call_original(L);
}

void wrap(lua_State* L, const char* library, const char* name, lua_CFunction metered) {
  lua_getglobal(L, library);
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, metered, 1);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

}  // namespace

void install_meters(lua_State* L) {
  wrap(L, "table", "sort", metered_sort);
  wrap(L, "string", "rep", metered_rep);
}

}  // namespace troupe::rt
