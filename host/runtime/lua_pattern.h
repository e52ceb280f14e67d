// lua_pattern.h: string.find, match, gmatch and gsub with a metered matcher.
//
// Lua's own pattern functions run in C, where the count hook that enforces a run's instruction
// budget never fires, and their backtracking is polynomial or worse in the subject's length
// (`("a"):rep(30000):find(".-.-.-.-.-b")` runs for hours). These are a re-implementation of the
// same functions (Lua 5.4 reference manual §6.4.1), with the same results and error messages as
// Lua 5.4.4's, whose matcher counts its steps and hands them to a meter every so often; the meter
// may raise a Lua error to stop the call (decision 0014).
#pragma once

#include <cstdint>
#include <lua.hpp>

namespace troupe::lua {

// Called by the pattern functions with the steps done since the last call; may raise a Lua
// error (luaL_error) to stop the call — it runs inside the Lua C function, so that is safe.
// A step is one attempt of the matcher to match one pattern item at one subject position, or
// one subject byte scanned by a plain search, a balance (%b) or a back-reference.
using PatternMeter = void (*)(lua_State* L, uint64_t steps);

// The meter is called at the latest after this many steps, and once with the remainder when a
// call ends (so the total it sees is the exact count).
inline constexpr uint64_t kPatternMeterInterval = 1024;

// Replaces find, match, gmatch and gsub in the table at `lib_index` with metered ones.
void install_metered_patterns(lua_State* L, int lib_index, PatternMeter meter);

}  // namespace troupe::lua
