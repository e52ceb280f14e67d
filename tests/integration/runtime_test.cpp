// runtime_test.cpp: the Lua workflow runtime with a real host — mock plugin from .so, SQLite
// journal, the event loop — covering step keys, concurrency, joins, errors and the sandbox.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

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

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("runtime"); }
  void TearDown() override {
    host_.reset();
    fs::remove_all(dir_);
  }

  // A host whose every provider is the mock plugin with these settings.
  Host& host(const json& mock_settings = json::object(), RuntimeLimits limits = {}) {
    Config c = test::mock_host_config(dir_, mock_settings.dump());
    c.runtime.limits = limits;
    host_ = std::make_unique<Host>(c);
    return *host_;
  }

  std::string write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  RunOutcome run(const std::string& lua, const std::string& input = "{}") {
    if (!host_) host();
    RunSpec spec;
    spec.source_path = write("wf.lua", lua);
    spec.input_json = input;
    return host_->run_to_completion(spec);
  }

  // Runs `body` as the run function of a workflow.
  RunOutcome run_body(const std::string& body, const std::string& input = "{}") {
    return run(test::workflow_source(body), input);
  }

  std::vector<StepRecord> steps(const std::string& run_id) {
    host_->store()->flush();
    return host_->store()->get_steps(run_id);
  }

  fs::path dir_;
  std::unique_ptr<Host> host_;
};

TEST_F(RuntimeTest, RunsAWorkflowAndJournalsItsSteps) {
  auto out = run_body(R"(
    local a = troupe.agent{ name = "writer", model = "openai/gpt-4o" }
    return { answer = a:ask("hello " .. input.who) })",
                      R"({"who":"ada"})");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json output = json::parse(out.output_json);
  EXPECT_TRUE(output["answer"].is_string());
  EXPECT_FALSE(output["answer"].get<std::string>().empty());

  auto rec = host_->store()->get_run(out.run_id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, "succeeded");
  EXPECT_EQ(rec->workflow, "test");  // the declared name, not the file's
  auto st = steps(out.run_id);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].step_key, "1");
  EXPECT_EQ(st[0].kind, "chat");
  EXPECT_EQ(st[0].agent, "writer");
  EXPECT_EQ(st[0].model, "openai/gpt-4o");
  EXPECT_GT(st[0].input_tokens, 0);
  EXPECT_GT(st[0].output_tokens, 0);
  json request = json::parse(st[0].request_json);
  EXPECT_EQ(request["model"], "gpt-4o");  // the provider prefix is stripped
  EXPECT_EQ(request["metadata"]["step_key"], "1");
  EXPECT_EQ(request["messages"][0]["content"], "hello ada");
}

TEST_F(RuntimeTest, StepKeysAreDeterministicWhateverTheCompletionOrder) {
  // Later branches answer first: keys must still follow program order, not timing.
  json settings = {
      {"rules",
       {{{"match", "slow"}, {"latency_ms", 120}}, {{"match", "fast"}, {"latency_ms", 5}}}}};
  host(settings);
  auto out = run_body(R"(
    local a = troupe.agent{ name = "a", model = "mock/m" }
    a:ask("fast first")
    troupe.parallel(
      function() a:ask("slow 1"); a:ask("fast 2") end,
      function()
        a:ask("fast 3")
        troupe.map({ "slow x", "fast y" }, function(p) return a:ask(p) end)
      end)
    troupe.sleep(0.001)
    return "ok")");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  std::set<std::string> keys;
  for (const auto& s : steps(out.run_id))
    keys.insert(s.step_key);
  EXPECT_EQ(keys,
            (std::set<std::string>{"1", "2.1/1", "2.1/2", "2.2/1", "2.2/2.1/1", "2.2/2.2/1", "3"}));
}

TEST_F(RuntimeTest, ParallelReturnsResultsInOrderAndMapReturnsAList) {
  auto out = run_body(R"(
    local a, b, c = troupe.parallel(
      function() troupe.sleep(0.03) return "A" end,
      function() return "B" end,
      function() troupe.sleep(0.01) return "C" end)
    local squares = troupe.map({ 1, 2, 3, 4 }, function(x) troupe.sleep(0.001) return x * x end,
                               { concurrency = 2 })
    return { a = a, b = b, c = c, squares = squares, empty = troupe.map({}, print) })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(json::parse(out.output_json),
            json::parse(R"({"a":"A","b":"B","c":"C","squares":[1,4,9,16],"empty":[]})"));
}

TEST_F(RuntimeTest, TwoHundredParallelBranchesOverlapOnTheLoop) {
  host({{"latency_ms", 200}});
  auto t0 = std::chrono::steady_clock::now();
  auto out = run_body(R"(
    local a = troupe.agent{ name = "worker", model = "mock/m" }
    local fns = {}
    for i = 1, 200 do fns[i] = function() return a:ask("item " .. i) end end
    local results = { troupe.parallel(table.unpack(fns)) }
    return #results)");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(out.output_json, "200");
  EXPECT_LT(seconds, 10.0) << "200 calls of 200 ms must overlap (sequential: 40 s)";
  EXPECT_EQ(steps(out.run_id).size(), 200u);
}

TEST_F(RuntimeTest, MapNeverRunsMoreBranchesThanItsConcurrency) {
  host({{"latency_ms", 30}});
  int in_flight = 0, peak = 0;
  Host& h = *host_;
  RunSpec spec;
  spec.source_path = write("wf.lua", R"(
    local troupe = require("troupe")
    local a = troupe.agent{ name = "a", model = "mock/m" }
    return troupe.workflow{ name = "m", run = function()
      return troupe.map({ 1, 2, 3, 4, 5, 6, 7 }, function(i) return a:ask("n" .. i) end,
                        { concurrency = 3 })
    end })");
  auto out = h.run_to_completion(spec, [&](const RunEvent& ev) {
    if (ev.type == "step.started") peak = std::max(peak, ++in_flight);
    if (ev.type == "step.finished") --in_flight;
  });
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(peak, 3);
  EXPECT_EQ(json::parse(out.output_json).size(), 7u);
}

TEST_F(RuntimeTest, AFailingBranchFailsTheJoinAndCancelsItsSiblings) {
  auto t0 = std::chrono::steady_clock::now();
  auto out = run_body(R"(
    local ok_agent = troupe.agent{ name = "patient", model = "mock/hang" }
    local bad = troupe.agent{ name = "broken", model = "mock/error-server", retry = false }
    troupe.parallel(
      function() return ok_agent:ask("wait forever") end,
      function() return bad:ask("fail") end)
    return "not reached")");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("troupe.parallel: branch 2 failed"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("unavailable"), std::string::npos) << out.error;
  EXPECT_LT(seconds, 5.0) << "the hanging sibling must be cancelled, not awaited";
  std::map<std::string, std::string> status;
  for (const auto& s : steps(out.run_id))
    status[s.step_key] = s.status;
  EXPECT_EQ(status["1.2/1"], "failed");
  EXPECT_EQ(status["1.1/1"], "cancelled");
}

TEST_F(RuntimeTest, ProviderErrorsReachLuaAsTablesThatPcallCanInspect) {
  auto out = run_body(R"(
    local a = troupe.agent{ name = "a", model = "mock/error-rate-limited", retry = false }
    local ok, err = pcall(a.ask, a, "hi")
    return { ok = ok, status = err.status, retryable = err.retryable,
             retry_after_ms = err.retry_after_ms, step_key = err.step_key, text = tostring(err) })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["ok"], false);
  EXPECT_EQ(o["status"], "rate_limited");
  EXPECT_EQ(o["retryable"], true);
  EXPECT_EQ(o["retry_after_ms"], 1000);
  EXPECT_EQ(o["step_key"], "1");
  EXPECT_NE(o["text"].get<std::string>().find("agent 'a' (mock/error-rate-limited) step 1"),
            std::string::npos);
}

TEST_F(RuntimeTest, AFailedBranchKeepsItsErrorTableForTheJoin) {
  auto out = run_body(R"(
    local bad = troupe.agent{ name = "bad", model = "mock/error-rate-limited", retry = false }
    local ok, err = pcall(troupe.parallel,
      function() return "fine" end,
      function() return bad:ask("x") end)
    return { ok = ok, status = err.status, retryable = err.retryable, branch = err.branch,
             step_key = err.step_key, text = tostring(err) })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["ok"], false);
  EXPECT_EQ(o["status"], "rate_limited");
  EXPECT_EQ(o["retryable"], true);
  EXPECT_EQ(o["branch"], 2);
  EXPECT_EQ(o["step_key"], "1.2/1");
  EXPECT_EQ(o["text"].get<std::string>().rfind("troupe.parallel: branch 2 failed: agent 'bad'", 0),
            0u)
      << o["text"];
}

TEST_F(RuntimeTest, AWorkflowMayChooseAsyncDurabilityAndStillJournalsEveryStep) {
  auto out = run(R"(
    local troupe = require("troupe")
    local a = troupe.agent{ name = "a", model = "mock/m" }
    return troupe.workflow{ name = "quick", durability = "async", run = function()
      for i = 1, 5 do a:ask("q" .. i) end
      return "done"
    end })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(steps(out.run_id).size(), 5u);
  auto bad =
      run("local troupe = require('troupe')\n"
          "return troupe.workflow{ name = 'x', durability = 'sometimes', run = print }");
  EXPECT_EQ(bad.status, "failed");
  EXPECT_NE(bad.error.find("'durability' must be \"sync\" or \"async\""), std::string::npos)
      << bad.error;
}

TEST_F(RuntimeTest, AgentsRejectUnknownFields) {
  auto out = run_body("local a = troupe.agent{ name = 'a', modle = 'openai/gpt-4o' }\nreturn a");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("unknown field 'modle'"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("wf.lua:3:"), std::string::npos) << out.error;
}

TEST_F(RuntimeTest, OsTimeIsAnInteger) {
  auto out = run_body("return math.type(os.time())");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(out.output_json, "\"integer\"");
}

TEST_F(RuntimeTest, ASyntaxErrorNamesFileAndLineAndTheRunIsRecordedFailed) {
  auto out = run("local troupe = require('troupe')\n\nlocal x = = 1\n");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("wf.lua:3:"), std::string::npos) << out.error;
  host_->store()->flush();
  auto rec = host_->store()->get_run(out.run_id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, "failed");
  EXPECT_EQ(rec->error, out.error);
}

TEST_F(RuntimeTest, ARuntimeErrorCarriesALuaTraceback) {
  auto out =
      run("local troupe = require('troupe')\n"
          "local function inner() error('boom') end\n"
          "return troupe.workflow{ name = 't', run = function() inner() end }\n");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("wf.lua:2: boom"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("stack traceback:"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("in upvalue 'inner'"), std::string::npos) << out.error;
}

TEST_F(RuntimeTest, AScriptThatReturnsNoWorkflowIsToldWhatToReturn) {
  auto out = run("return 42\n");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("must return troupe.workflow"), std::string::npos) << out.error;
}

TEST_F(RuntimeTest, TheSandboxRefusesFilesProcessesEnvironmentAndBytecode) {
  host();
  std::vector<std::pair<std::string, std::string>> cases = {
      {"io.open('/etc/passwd')", "io.open is not available"},
      {"os.execute('true')", "os.execute is not available"},
      {"os.exit(1)", "os.exit is not available"},
      {"os.remove('x')", "os.remove is not available"},
      {"os.getenv('HOME')", "os.getenv is not available"},
      {"package.loadlib('x', 'y')", "package.loadlib is not available"},
      {"debug.getinfo(1)", "debug.getinfo is not available"},
      {"string.dump(print)", "string.dump is not available"},
      {"('').dump(print)", "string.dump is not available"},
      {"load(string.char(27) .. 'LuaT')", "binary chunks are not allowed"},
      {"load('return 1', 'x', 'b')", "only text chunks"},
      {"dofile('/etc/passwd')", "attempt to call a nil value (global 'dofile')"},
      {"loadfile('/etc/passwd')", "attempt to call a nil value (global 'loadfile')"},
      {"require('../secret')", "module names may contain only"},
      {"require('/etc/passwd')", "module names may contain only"},
      {"require('nope')", "module not found"},
      {"getmetatable('').__index", "attempt to index a boolean value"},
  };
  for (const auto& [code, expected] : cases) {
    auto out = run_body("return " + code);
    EXPECT_EQ(out.status, "failed") << code;
    EXPECT_NE(out.error.find(expected), std::string::npos) << code << " -> " << out.error;
  }
}

TEST_F(RuntimeTest, RequireLoadsModulesFromTheWorkflowFolderOnly) {
  write("lib/helpers.lua", "local M = {}\nfunction M.twice(x) return 2 * x end\nreturn M\n");
  write("evil.lua", "return 1");
  auto out = run_body("return require('lib.helpers').twice(21)");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(out.output_json, "42");
  // A symlink inside the folder that points outside it is refused too.
  fs::path outside = dir_.parent_path() / ("troupe-outside-" + std::to_string(::getpid()) + ".lua");
  std::ofstream(outside) << "return 'escaped'";
  fs::create_symlink(outside, dir_ / "link.lua");
  out = run_body("return require('link')");
  fs::remove(outside);
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("outside the workflow's folder"), std::string::npos) << out.error;
}

TEST_F(RuntimeTest, RunsCannotSeeOrChangeEachOthersGlobalsOrLibraries) {
  host();
  auto first = run_body("string.upper = nil; troupe.agent = nil; shared = 1; return 'x'");
  ASSERT_EQ(first.status, "succeeded") << first.error;
  auto second = run_body(
      "return { shared = shared == nil, upper = ('a'):upper(), "
      "s = string.upper('b'), agent = type(troupe.agent) }");
  ASSERT_EQ(second.status, "succeeded") << second.error;
  EXPECT_EQ(json::parse(second.output_json),
            json::parse(R"({"shared":true,"upper":"A","s":"B","agent":"function"})"));
}

TEST_F(RuntimeTest, LibrariesJoinARunsEnvironmentOnFirstUseAndStayItsOwn) {
  host();
  // A run's _ENV starts empty (memory per waiting run); libraries and base functions appear
  // on first use, the same objects every later time, and additions stay in that run.
  auto first = run_body(
      "local before = rawget(_G, 'math') == nil; local m = math.max(1, 2);"
      "function string.trim(s) return (s:gsub('^%s+', '')) end;"
      "local n = 0; for _ in pairs(table) do n = n + 1 end;"
      "return { before = before, m = m, same = rawget(_G, 'math') == math and _G.string == string,"
      "  trim = string.trim('  a'), pairs = n > 5, missing = nothing_here == nil }");
  ASSERT_EQ(first.status, "succeeded") << first.error;
  EXPECT_EQ(
      json::parse(first.output_json),
      json::parse(R"({"before":true,"m":2,"same":true,"trim":"a","pairs":true,"missing":true})"));
  auto second =
      run_body("return { trim = string.trim == nil, io = pcall(function() return io.open end) }");
  ASSERT_EQ(second.status, "succeeded") << second.error;
  EXPECT_EQ(json::parse(second.output_json), json::parse(R"({"trim":true,"io":false})"));
}

TEST_F(RuntimeTest, AnInfiniteLoopIsStoppedWhileOtherRunsKeepGoing) {
  RuntimeLimits limits;
  limits.max_instructions = 20'000'000;
  Host& h = host({}, limits);
  RunSpec loop_spec, ok_spec;
  loop_spec.source_path = write("loop.lua", R"(
    local troupe = require("troupe")
    return troupe.workflow{ name = "spin", run = function()
      while true do pcall(function() while true do end end) end
    end })");
  ok_spec.source_path = write("ok.lua", R"(
    local troupe = require("troupe")
    return troupe.workflow{ name = "fine", run = function()
      for i = 1, 5 do troupe.sleep(0.01) end
      return "done"
    end })");
  std::map<std::string, RunOutcome> done;
  h.runtime().start(loop_spec, [&](const RunOutcome& o) { done["loop"] = o; });
  h.runtime().start(ok_spec, [&](const RunOutcome& o) { done["ok"] = o; });
  while (done.size() < 2)
    h.loop().run_once(100);
  EXPECT_EQ(done["ok"].status, "succeeded") << done["ok"].error;
  EXPECT_EQ(done["loop"].status, "failed");
  EXPECT_NE(done["loop"].error.find("instruction limit exceeded"), std::string::npos)
      << done["loop"].error;
}

TEST_F(RuntimeTest, AMemoryBombIsStoppedAndItsMemoryReturned) {
  RuntimeLimits limits;
  limits.max_memory_bytes = 16ull << 20;
  host({}, limits);
  auto out = run_body(R"(
    local t = {}
    for i = 1, 1e9 do t[i] = string.rep("x", 1000) .. i end)");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("memory limit exceeded"), std::string::npos) << out.error;
  // One big allocation, swallowed by pcall, still ends the run.
  out = run_body("pcall(string.rep, 'x', 1 << 30); return 'survived'");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("memory limit exceeded"), std::string::npos) << out.error;
  // The host is fine afterwards.
  out = run_body("return 'still serving'");
  EXPECT_EQ(out.status, "succeeded") << out.error;
}

TEST_F(RuntimeTest, UserCoroutinesCanWaitOnHostCalls) {
  auto out = run_body(R"(
    local a = troupe.agent{ name = "a", model = "mock/m" }
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        troupe.sleep(0.001)
        coroutine.yield(#a:ask("q" .. i) > 0 and i or -1)
      end
    end)
    return { gen(), gen(), gen() })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(out.output_json, "[1,2,3]");
}

TEST_F(RuntimeTest, WaitingWhereLuaCannotSuspendIsAClearErrorNotAHang) {
  auto out = run_body(R"(
    local t = { 3, 1, 2 }
    table.sort(t, function(a, b) troupe.sleep(0) return a < b end)
    return t)");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("troupe.sleep cannot wait here"), std::string::npos) << out.error;
  EXPECT_TRUE(steps(out.run_id).empty()) << "nothing may start that cannot be waited for";
}

TEST_F(RuntimeTest, ThousandsOfRunsAreInFlightAtOnceOnOneThread) {
  Host& h = host({{"latency_ms", 50}});
  RunSpec spec;
  spec.source_path = write("wf.lua", R"(
    local troupe = require("troupe")
    local a = troupe.agent{ name = "a", model = "mock/m" }
    return troupe.workflow{ name = "many", run = function(input)
      troupe.sleep(0.05)
      return a:ask("run " .. input.i) ~= nil
    end })");
  const int kRuns = 2000;
  int succeeded = 0, finished = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) {
    spec.input_json = "{\"i\":" + std::to_string(i) + "}";
    h.runtime().start(spec, [&](const RunOutcome& o) {
      ++finished;
      if (o.status == "succeeded") ++succeeded;
    });
  }
  EXPECT_EQ(h.runtime().active_runs(), static_cast<size_t>(kRuns));
  while (finished < kRuns)
    h.loop().run_once(100);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(succeeded, kRuns);
  EXPECT_LT(seconds, 20.0) << "2000 runs of ~100 ms each must overlap";
}

TEST_F(RuntimeTest, YieldingStraightToTheHostIsAnError) {
  auto out = run_body("coroutine.yield(1)");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("cannot yield to the host"), std::string::npos) << out.error;
}

TEST_F(RuntimeTest, InputsAndOutputsMapBetweenJsonAndLua) {
  auto out = run_body(R"(
    return { echo = input, n = #input.list, null_is_sentinel = input.list[2] == troupe.null,
             empty_list = troupe.array({}), empty_object = {}, float = 0.5, big = 2^53 })",
                      R"({"list":[1,null,"x",{"a":[true,false]}],"s":"ü"})");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["echo"], json::parse(R"({"list":[1,null,"x",{"a":[true,false]}],"s":"ü"})"));
  EXPECT_EQ(o["n"], 4);
  EXPECT_EQ(o["null_is_sentinel"], true);
  EXPECT_EQ(o["empty_list"], json::array());
  EXPECT_EQ(o["empty_object"], json::object());
  EXPECT_EQ(o["float"], 0.5);
}

TEST_F(RuntimeTest, AnOutputThatIsNotJsonFailsTheRunNamingWhere) {
  auto out = run_body("return { items = { 1, print } }");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("output.items[2]: a function cannot be converted to JSON"),
            std::string::npos)
      << out.error;
}

TEST_F(RuntimeTest, InvalidInputJsonFailsTheRun) {
  auto out = run_body("return input", "{not json");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("the input is not valid JSON"), std::string::npos) << out.error;
}

TEST_F(RuntimeTest, CancellingARunStopsItsPendingCallsAndRecordsIt) {
  Host& h = host();
  RunSpec spec;
  spec.source_path = write("wf.lua", R"(
    local troupe = require("troupe")
    return troupe.workflow{ name = "slow", run = function()
      troupe.parallel(function() troupe.sleep(60) end,
                      function() troupe.agent{ name = "x", model = "mock/hang" }:ask("wait") end)
    end })");
  RunOutcome out;
  bool finished = false;
  std::string id = h.runtime().start(spec, [&](const RunOutcome& o) {
    out = o;
    finished = true;
  });
  for (int i = 0; i < 5; ++i)
    h.loop().run_once(10);
  h.runtime().cancel(id, "stop please");
  auto t0 = std::chrono::steady_clock::now();
  while (!finished)
    h.loop().run_once(100);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(out.status, "cancelled");
  EXPECT_EQ(out.error, "stop please");
  h.store()->flush();
  EXPECT_EQ(h.store()->get_run(id)->status, "cancelled");
  EXPECT_EQ(h.runtime().active_runs(), 0u);
}

TEST_F(RuntimeTest, MathRandomIsSeededPerRunAndReproducibleWithASeed) {
  host();
  const char* body =
      "math.randomseed(42); return { math.random(1, 1000), math.random(), math.random(5) }";
  auto a = run_body(body);
  auto b = run_body(body);
  ASSERT_EQ(a.status, "succeeded") << a.error;
  EXPECT_EQ(a.output_json, b.output_json);
}

TEST_F(RuntimeTest, TheClockIsJournaledAsAStep) {
  auto out = run_body("local t = os.time(); local n = troupe.now(); return n >= t");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  auto st = steps(out.run_id);
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].kind, "now");
  EXPECT_NE(st[0].response_json.find("unix_ms"), std::string::npos);
}

TEST_F(RuntimeTest, AnUnknownProviderIsAClearError) {
  Config c;  // a config that names only "mock" and has no fallback
  c.store_path = (dir_ / "troupe.db").string();
  c.plugin_path = {test::plugins_dir()};
  c.providers["mock"] = ProviderConfig{"mock", "mock", "{}", {}};
  host_ = std::make_unique<Host>(c);
  auto out = run_body("return troupe.agent{ name = 'a', model = 'nope/x' }:ask('hi')");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("unknown provider 'nope'"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("configured providers: mock"), std::string::npos) << out.error;
}

TEST_F(RuntimeTest, EventsTellTheStoryOfARun) {
  Host& h = host();
  std::vector<std::string> types;
  RunSpec spec;
  spec.source_path = write("wf.lua", R"(
    local troupe = require("troupe")
    return troupe.workflow{ name = "story", run = function()
      troupe.log("hello")
      troupe.parallel(function() troupe.sleep(0) end)
      return 1
    end })");
  auto out = h.run_to_completion(spec, [&](const RunEvent& ev) { types.push_back(ev.type); });
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(types, (std::vector<std::string>{"run.started", "log", "join.started", "step.started",
                                             "step.finished", "join.finished", "run.finished"}));
  h.store()->flush();
  auto stored = h.store()->get_events(out.run_id, 0, 100);
  ASSERT_EQ(stored.size(), types.size());
  EXPECT_EQ(stored.front().type, "run.started");
  EXPECT_EQ(stored.back().type, "run.finished");
}

// Found by fuzz_workflow (corpus/workflow/crash-error-not-utf8.lua): an error whose text is not
// UTF-8 made the run.finished event's JSON throw, so the run never ended, not even on cancel.
TEST_F(RuntimeTest, ErrorTextThatIsNotUtf8StillEndsTheRun) {
  auto out = run_body("error('bad \xff byte')");
  EXPECT_EQ(out.status, "failed");
  EXPECT_NE(out.error.find("bad \xEF\xBF\xBD byte"), std::string::npos) << out.error;
}

// The same for names from the script (corpus/workflow/crash-names-not-utf8.lua): the workflow,
// agent and model names went into event JSON that threw.
TEST_F(RuntimeTest, NamesThatAreNotUtf8StillEndTheRun) {
  auto out =
      run("local troupe = require('troupe')\n"
          "return troupe.workflow{ name = 'w\xff', run = function(input)\n"
          "  local a = troupe.agent{ name = 'a\xff', model = 'mock/m\xff' }\n"
          "  return a:ask('hi')\n"
          "end }\n");
  EXPECT_TRUE(out.status == "succeeded" || out.status == "failed") << out.status;
}

}  // namespace
}  // namespace troupe
