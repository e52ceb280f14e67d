// runtime_attacks_test.cpp: workflows that attack the host from inside the Lua runtime —
// crashes through the host's own Lua calls, budget escapes, reaching into other runs — each
// must fail only its own run, with a clear error (docs/security.md, classes 1 to 4).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "api/host.h"
#include "loop/event_loop.h"
#include "store/store.h"
#include "support/test_dir.h"
#include "support/test_host.h"
#include "support/test_paths.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RuntimeAttack : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("runtime-attack"); }
  void TearDown() override {
    host_.reset();
    fs::remove_all(dir_);
  }

  Host& host(RuntimeLimits limits = {}, const json& mock_settings = json::object()) {
    Config c = test::mock_host_config(dir_, mock_settings.dump());
    c.runtime.limits = limits;
    host_ = std::make_unique<Host>(c);
    return *host_;
  }

  RunSpec spec(const std::string& body, const std::string& name = "wf.lua") {
    fs::path p = dir_ / name;
    std::ofstream(p) << test::workflow_source(body, "attack");
    RunSpec s;
    s.source_path = p.string();
    return s;
  }

  RunOutcome run(const std::string& body, const std::string& input = "{}") {
    if (!host_) host();
    RunSpec s = spec(body);
    s.input_json = input;
    return host_->run_to_completion(s);
  }

  // Runs body on this thread's loop while another thread cancels it 100 ms after it started.
  RunOutcome run_and_cancel_from_another_thread(const std::string& body) {
    std::atomic<bool> started{false};
    std::mutex mu;
    std::string run_id;
    std::thread canceller([&] {
      while (!started.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::lock_guard lock(mu);
      host_->runtime().cancel(run_id, "cancelled by the test");
    });
    RunOutcome out = host_->run_to_completion(spec(body), [&](const RunEvent& ev) {
      if (ev.type == "run.started") {
        std::lock_guard lock(mu);
        run_id = ev.run_id;
        started = true;
      }
    });
    canceller.join();
    return out;
  }

  // The host still works after the attack: a plain run succeeds.
  void expect_host_healthy() {
    RunOutcome ok = run("return 1 + 1");
    EXPECT_EQ(ok.status, "succeeded") << ok.error;
    EXPECT_EQ(ok.output_json, "2");
  }

  fs::path dir_;
  std::unique_ptr<Host> host_;
};

// --- Class 1: the host's own Lua calls on a run's behalf never crash the process.

TEST_F(RuntimeAttack, ModelAnswerThatExhaustsMemoryFailsTheRunNotTheHost) {
  RuntimeLimits limits;
  limits.max_memory_bytes = 8ull << 20;
  host(limits, {{"rules", {{{"reply", std::string(2 << 20, 'y')}}}}});
  // Fill the run's memory to within 1 MiB of its limit, then ask for a 2 MiB answer: the host
  // pushes it into the run when it resumes it.
  RunOutcome out = run(R"(
    local keep, piece = {}, string.rep("x", 64 * 1024)
    while collectgarbage("count") < 7 * 1024 do keep[#keep + 1] = piece .. #keep end
    local a = troupe.agent{ name = "a" }
    return #a:ask("hello"))");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("memory limit exceeded"), std::string::npos) << out.error;
  expect_host_healthy();
}

TEST_F(RuntimeAttack, ErrorObjectWithRaisingIndexMetamethodIsReadRaw) {
  RunOutcome out = run(R"(
    troupe.parallel(function()
      error(setmetatable({}, { __index = function() error("trap") end }))
    end))");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("error object is a table value"), std::string::npos) << out.error;
  expect_host_healthy();
}

TEST_F(RuntimeAttack, ErrorObjectWithLoopingIndexMetamethodCannotHangTheHost) {
  RunOutcome out = run(R"(
    error(setmetatable({}, { __index = function() while true do end end })))");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("error object is a table value"), std::string::npos) << out.error;
  expect_host_healthy();
}

TEST_F(RuntimeAttack, BranchErrorTableWithNewindexTrapReachesTheJoinRaw) {
  RunOutcome out = run(R"(
    local ok, err = pcall(troupe.parallel, function()
      error(setmetatable({ code = 7 }, { __newindex = function() error("trap") end }))
    end)
    return { ok = ok, code = err.code, branch = rawget(err, "branch") })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(json::parse(out.output_json), json({{"ok", false}, {"code", 7}, {"branch", 1}}));
}

TEST_F(RuntimeAttack, InputLargerThanTheMemoryLimitFailsTheRunCleanly) {
  RuntimeLimits limits;
  limits.max_memory_bytes = 4ull << 20;
  host(limits);
  json big = json::array();
  for (int i = 0; i < 200000; ++i)
    big.push_back({{"k", i}});
  RunOutcome out = run("return #input", big.dump());
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("the input does not fit in the run"), std::string::npos) << out.error;
  expect_host_healthy();
}

TEST_F(RuntimeAttack, CoroutineKeptPastItsBranchIsClosedSafely) {
  // The coroutine's to-be-closed handler makes a host call after its branch has ended: it
  // must run as the closing task (no freed bookkeeping).
  RunOutcome out = run(R"(
    local kept = {}
    troupe.parallel(function()
      kept.co = coroutine.create(function()
        local guard <close> = setmetatable({}, { __close = function() kept.t = troupe.now() end })
        coroutine.yield()
      end)
      coroutine.resume(kept.co)
    end)
    coroutine.close(kept.co)
    return type(kept.t))");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(out.output_json, "\"number\"");
}

TEST_F(RuntimeAttack, ResumingAnotherBranchsCoroutineIsRefused) {
  RunOutcome out = run(R"(
    local other
    local ok, err = pcall(troupe.parallel,
      function() other = coroutine.running(); troupe.sleep(0.2) end,
      function()
        troupe.sleep(0.01)
        return coroutine.resume(other)
      end)
    return tostring(err))");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_NE(out.output_json.find("only the host resumes it"), std::string::npos) << out.output_json;
}

TEST_F(RuntimeAttack, ClosingAnotherBranchsCoroutineIsRefused) {
  RunOutcome out = run(R"(
    local other
    local ok, err = pcall(troupe.parallel,
      function() other = coroutine.running(); troupe.sleep(0.2) end,
      function()
        troupe.sleep(0.01)
        coroutine.close(other)
      end)
    return tostring(err))");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_NE(out.output_json.find("coroutine.close: this coroutine is a troupe branch"),
            std::string::npos)
      << out.output_json;
}

// --- Class 2: the instruction budget bounds everything a workflow starts.

TEST_F(RuntimeAttack, FinalizersAreRefused) {
  RunOutcome out = run(R"(
    setmetatable({}, { __gc = function() while true do end end }))");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("__gc (finalizers) are not available"), std::string::npos) << out.error;
}

TEST_F(RuntimeAttack, SortWithHostileComparatorIsStoppedWhereItCannotYield) {
  RuntimeLimits limits;
  limits.max_instructions = 100'000'000'000ull;  // only the unyielding bound can stop it
  limits.max_unyielding_instructions = 20'000'000;
  host(limits);
  RunOutcome out = run(R"(
    table.sort({ 3, 2, 1 }, function(a, b) while true do end end))");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("limits.max_unyielding_instructions"), std::string::npos) << out.error;
  expect_host_healthy();
}

TEST_F(RuntimeAttack, SortingIsChargedToTheInstructionBudget) {
  RuntimeLimits limits;
  limits.max_instructions = 3'000'000;
  host(limits);
  // Building the list costs about a million instructions; sorting 300,000 numbers in C would
  // cost none without the meter.
  RunOutcome out = run(R"(
    local t = {}
    for i = 1, 300000 do t[i] = 300000 - i end
    table.sort(t)
    return t[1])");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("instruction limit exceeded"), std::string::npos) << out.error;
}

TEST_F(RuntimeAttack, StringRepBeyondTheMemoryLimitStopsTheRunBeforeAllocating) {
  RunOutcome out = run(R"(
    pcall(string.rep, "x", 1e12)
    return "survived")");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("memory limit exceeded: string.rep would build 1000000000000 bytes"),
            std::string::npos)
      << out.error;
}

TEST_F(RuntimeAttack, CatastrophicPatternIsStoppedByTheInstructionBudget) {
  RuntimeLimits limits;
  limits.max_instructions = 50'000'000;
  limits.max_unyielding_instructions = limits.max_instructions;
  host(limits);
  // Quintic backtracking in C: without the meter, minutes of unhooked CPU.
  RunOutcome out = run(R"(return (("a"):rep(30000)):find(".-.-.-.-.-b"))");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("instruction limit exceeded"), std::string::npos) << out.error;
  expect_host_healthy();
}

TEST_F(RuntimeAttack, CancelStopsACatastrophicPatternFromAnotherThread) {
  RuntimeLimits limits;
  limits.max_instructions = 1'000'000'000'000ull;
  limits.max_unyielding_instructions = limits.max_instructions;
  host(limits);
  RunOutcome out =
      run_and_cancel_from_another_thread(R"(return (("a"):rep(30000)):gsub(".-.-.-.-.-b", "x"))");
  EXPECT_EQ(out.status, "cancelled") << out.error;
  expect_host_healthy();
}

// A cancel from another thread stops a run that computes where it cannot be suspended (the
// loop is busy with it, so nothing posted to the loop would run): the count hook sees it.
TEST_F(RuntimeAttack, CancelFromAnotherThreadStopsAComputationThatCannotYield) {
  RuntimeLimits limits;
  limits.max_instructions = 4'000'000'000ull;  // bounds the test if cancel does not work
  limits.max_unyielding_instructions = limits.max_instructions;
  host(limits);
  RunOutcome out = run_and_cancel_from_another_thread(
      "table.sort({ 3, 2, 1 }, function(a, b) while true do end end)");
  EXPECT_EQ(out.status, "cancelled") << out.error;
  EXPECT_EQ(out.error, "cancelled by the test");
  expect_host_healthy();
}

// While one run computes, the loop keeps serving the others.
TEST_F(RuntimeAttack, OtherRunsAreServedWhileOneComputes) {
  Host& h = host();
  RunOutcome busy, quick;
  bool busy_done = false, quick_done = false;
  std::string busy_id =
      h.runtime().start(spec("while true do end", "busy.lua"), [&](const RunOutcome& o) {
        busy = o;
        busy_done = true;
      });
  h.runtime().start(spec("for i = 1, 5 do troupe.sleep(0.01) end return 'done'", "quick.lua"),
                    [&](const RunOutcome& o) {
                      quick = o;
                      quick_done = true;
                    });
  for (int i = 0; i < 100000 && !quick_done; ++i)
    h.loop().run_once(100);
  EXPECT_TRUE(quick_done);
  EXPECT_FALSE(busy_done);  // still computing when the quick run finished
  EXPECT_EQ(quick.output_json, "\"done\"");
  h.runtime().cancel(busy_id, "stop");
  for (int i = 0; i < 100000 && !busy_done; ++i)
    h.loop().run_once(100);
  EXPECT_EQ(busy.status, "cancelled");
}

// --- Class 3: what a run makes the host store is counted against its limits.

TEST_F(RuntimeAttack, LogFloodHitsTheEventLimit) {
  RuntimeLimits limits;
  limits.max_events = 500;
  Host& h = host(limits);
  RunOutcome out = run("for i = 1, 20000 do troupe.log('line ' .. i) end");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("event limit exceeded"), std::string::npos) << out.error;
  h.store()->flush();
  EXPECT_LE(h.store()->get_events(out.run_id, 0, 100000).size(), 510u);
}

TEST_F(RuntimeAttack, ClockFloodHitsTheStepLimit) {
  RuntimeLimits limits;
  limits.max_steps = 300;
  Host& h = host(limits);
  RunOutcome out = run("for i = 1, 20000 do troupe.now() end");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("step limit exceeded"), std::string::npos) << out.error;
  h.store()->flush();
  EXPECT_LE(h.store()->get_steps(out.run_id).size(), 300u);
}

TEST_F(RuntimeAttack, LargeLogsHitTheStoredBytesLimit) {
  RuntimeLimits limits;
  limits.max_stored_bytes = 1ull << 20;
  host(limits);
  RunOutcome out = run(R"(
    local line = string.rep("z", 100 * 1024)
    for i = 1, 100 do troupe.log(line) end)");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("store limit exceeded"), std::string::npos) << out.error;
}

// --- Class 4: nothing a run can reach is shared with another run and writable.

TEST_F(RuntimeAttack, LibrarySubTablesAreReadOnly) {
  for (const char* attack : {
           "troupe.json.encode = function() return 'forged' end",
           "troupe.http.get = print",
           "troupe.log.info = print",
           "rawset(troupe.json, 'decode', print)",
           "for k, v in pairs(troupe) do if type(v) == 'table' then v.x = 1 end end",
           "setmetatable(troupe.json, {})",
           "local r = require('troupe.roles.planner'); for k, v in pairs(r) do "
           "if type(v) == 'table' then v.x = 1 end end; error('read-only: nothing to change')",
       }) {
    SCOPED_TRACE(attack);
    RunOutcome out = run(attack);
    EXPECT_EQ(out.status, "failed");
    EXPECT_TRUE(out.error.find("read-only") != std::string::npos ||
                out.error.find("protected metatable") != std::string::npos)
        << out.error;
  }
}

// The library's own modules (every scripts/troupe/*.lua but init.lua, which is `troupe`).
std::vector<std::string> library_modules() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(test::source_dir() / "scripts" / "troupe")) {
    const fs::path& p = entry.path();
    if (p.extension() == ".lua" && p.stem() != "init")
      names.push_back("troupe." + p.stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// What the modules share with each other (helpers, metatables) is reachable only through the
// troupe table: a workflow cannot require them.
TEST_F(RuntimeAttack, LibraryModulesAreNotRequirable) {
  std::vector<std::string> modules = library_modules();
  ASSERT_GE(modules.size(), 10u);
  RunOutcome out = run(R"(
    local errors = {}
    for i, name in ipairs(input) do
      local ok, err = pcall(require, name)
      errors[i] = ok and "loaded" or tostring(err)
    end
    return errors)",
                       json(modules).dump());
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json errors = json::parse(out.output_json);
  ASSERT_EQ(errors.size(), modules.size());
  for (size_t i = 0; i < modules.size(); ++i)
    EXPECT_EQ(errors[i], "require('" + modules[i] + "'): no such troupe module");
}

TEST_F(RuntimeAttack, SharedMetatablesAreHidden) {
  RunOutcome out = run(R"(
    local a = troupe.agent{ name = "a" }
    local t = troupe.tool{ name = "t", run = function() end }
    local ok, e = pcall(a.ask, a, { 1 })
    return {
      agent = getmetatable(a), agent_index = a.__index == nil,
      tool = getmetatable(t), tool_index = t.__index == nil,
      array = getmetatable(troupe.json.decode("[]")),
      workflow = getmetatable(troupe.workflow{ name = "w", run = print }),
      log = getmetatable(troupe.log),
    })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(json::parse(out.output_json), json({{"agent", false},
                                                {"agent_index", true},
                                                {"tool", false},
                                                {"tool_index", true},
                                                {"array", false},
                                                {"workflow", false},
                                                {"log", false}}));
}

TEST_F(RuntimeAttack, ErrorMetatableOfHostCallsIsHidden) {
  RunOutcome out = run(R"(
    local ok, e = pcall(troupe.http.get, "ftp://example.invalid/")
    return { ok = ok, mt = getmetatable(e) })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(json::parse(out.output_json), json({{"ok", false}, {"mt", false}}));
}

// Run A tries every way it has to change what run B calls or reads, in the same host; B's
// journal is then the same as when it runs alone.
TEST_F(RuntimeAttack, OneRunCannotChangeAnotherRunsLibraryOrJournal) {
  const std::string victim = R"(
    local a = troupe.agent{ name = "victim" }
    local x = a:ask("what is two plus two")
    troupe.log("victim says", x)
    return { answer = x, json = troupe.json.encode(troupe.json.decode("[1,2]")),
             arr = #troupe.array{} })";
  auto journal = [&](const RunOutcome& o) {
    json rows = json::array();
    host_->store()->flush();
    for (const auto& st : host_->store()->get_steps(o.run_id)) {
      json req = json::parse(st.request_json, nullptr, false);
      if (req.is_object() && req.contains("metadata")) req["metadata"].erase("run_id");
      json res = json::parse(st.response_json, nullptr, false);
      if (res.is_object()) res.erase("request_id");  // the mock numbers its answers
      rows.push_back(
          {st.step_key, st.kind, st.agent, st.model, st.status, req.dump(), res.dump(), st.error});
    }
    return rows;
  };
  host();
  RunOutcome alone = run(victim);
  ASSERT_EQ(alone.status, "succeeded") << alone.error;
  json expected = journal(alone);

  RunOutcome attack = run(R"(
    local tried = {}
    local function try(what, f)
      local ok, err = pcall(f)
      tried[#tried + 1] = what .. ": " .. (ok and "changed" or tostring(err))
    end
    try("json", function() troupe.json.encode = function() return "forged" end end)
    try("log", function() troupe.log.info = function() end end)
    try("rawset", function() rawset(troupe.json, "decode", function() return {} end) end)
    try("agent mt", function() getmetatable(troupe.agent{ name = "x" }).__index.ask = print end)
    try("agent index", function() troupe.agent{ name = "x" }.__index.ask = print end)
    try("array mt", function() getmetatable(troupe.json.decode("[]")).__index = error end)
    try("string mt", function() getmetatable("").__index = error end)
    try("string lib", function() string.format = nil end)
    troupe.agent = function() error("forged agent") end  -- its own proxy only
    return tried)");
  ASSERT_EQ(attack.status, "succeeded") << attack.error;

  RunOutcome after = run(victim);
  ASSERT_EQ(after.status, "succeeded") << after.error;
  EXPECT_EQ(after.output_json, alone.output_json);
  EXPECT_EQ(journal(after), expected);
}

}  // namespace
}  // namespace troupe
