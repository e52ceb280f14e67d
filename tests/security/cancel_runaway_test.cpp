// cancel_runaway_test.cpp: the troupe binary stops a run that computes forever when the user
// presses Ctrl-C or the process gets SIGTERM — also where the run cannot yield, which keeps
// the event loop (and its check of the signal) busy (docs/security.md, class 2).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "e2e/process.h"
#include "support/test_paths.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class CancelRunaway : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "troupe-cancel-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    // Budgets far beyond the test's patience: only the signal can stop these runs.
    std::ofstream(dir_ / "troupe.yaml") << "limits:\n"
                                           "  max_instructions: 100000000000000\n"
                                           "  max_unyielding_instructions: 100000000000000\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Starts `troupe run` on body, waits until the run computes, sends sig; returns the result
  // and how long the process took to end after the signal.
  ProcessResult interrupt(const std::string& body, int sig, std::chrono::milliseconds* took) {
    std::ofstream(dir_ / "wf.lua") << "local troupe = require('troupe')\n"
                                      "return troupe.workflow{ name = 'runaway', run = function()\n"
                                      "  troupe.log('computing')\n"
                                   << body << "\nend }\n";
    ProcessOptions o;
    o.args = {troupe_binary(), "run", "wf.lua"};
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_CONFIG", "TROUPE_PLUGIN_PATH"};
    o.timeout = seconds(60);
    Process p(o);
    EXPECT_TRUE(p.wait_for_output("computing", seconds(30)));
    auto sent = std::chrono::steady_clock::now();
    p.send_signal(sig);
    ProcessResult r = p.wait();
    *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  sent);
    return r;
  }

  ProcessOptions troupe_options(std::vector<std::string> args) const {
    ProcessOptions o;
    o.args = {troupe_binary()};
    o.args.insert(o.args.end(), args.begin(), args.end());
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_CONFIG", "TROUPE_PLUGIN_PATH"};
    return o;
  }

  fs::path dir_;
};

TEST_F(CancelRunaway, SigintStopsARunComputingWhereItCannotYield) {
  std::chrono::milliseconds took{};
  ProcessResult r =
      interrupt("table.sort({ 3, 2, 1 }, function(a, b) while true do end end)", SIGINT, &took);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 130) << r.describe();
  EXPECT_NE(r.err.find("SIGINT"), std::string::npos) << r.describe();
  // A bound on correctness, not speed: without the count hook's check the run would compute
  // until its budget, minutes away.
  EXPECT_LT(took, seconds(5)) << r.describe();
}

TEST_F(CancelRunaway, SigtermStopsABusyLoop) {
  std::chrono::milliseconds took{};
  ProcessResult r = interrupt("while true do end", SIGTERM, &took);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 130) << r.describe();
  EXPECT_NE(r.err.find("SIGTERM"), std::string::npos) << r.describe();
  EXPECT_LT(took, seconds(5)) << r.describe();
}

TEST_F(CancelRunaway, SigintStopsAGsubCallbackThatNeverReturns) {
  std::chrono::milliseconds took{};
  ProcessResult r =
      interrupt("string.gsub('abc', '%w', function() while true do end end)", SIGINT, &took);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 130) << r.describe();
  EXPECT_LT(took, seconds(5)) << r.describe();
}

// `troupe cancel` from another process: the running host picks the request up from the store
// and stops the run, even while it computes where it cannot yield.
TEST_F(CancelRunaway, TroupeCancelFromAnotherProcessStopsAComputingRun) {
  std::ofstream(dir_ / "wf.lua") << "local troupe = require('troupe')\n"
                                    "return troupe.workflow{ name = 'runaway', run = function()\n"
                                    "  troupe.log('computing')\n"
                                    "  table.sort({ 3, 2, 1 }, function() while true do end end)\n"
                                    "end }\n";
  ProcessOptions o = troupe_options({"run", "wf.lua"});
  o.timeout = seconds(60);
  Process running(o);
  ASSERT_TRUE(running.wait_for_output("computing", seconds(30)));
  ProcessResult listed = run_process(troupe_options({"runs", "--status", "running", "--json"}));
  nlohmann::json runs = nlohmann::json::parse(listed.out, nullptr, false);
  ASSERT_TRUE(runs.is_array() && runs.size() == 1) << listed.describe();
  std::string id = runs[0]["id"];
  ProcessResult cancelled =
      run_process(troupe_options({"cancel", id, "--reason", "stopped by the operator", "--json"}));
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.describe();
  nlohmann::json answer = nlohmann::json::parse(cancelled.out, nullptr, false);
  EXPECT_EQ(answer.value("status", ""), "cancelled") << cancelled.describe();
  ProcessResult r = running.wait();
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("stopped by the operator"), std::string::npos) << r.describe();
  // A run that is not running any more cannot be cancelled, and says why.
  ProcessResult again = run_process(troupe_options({"cancel", id}));
  EXPECT_EQ(again.exit_code, 1) << again.describe();
  EXPECT_NE(again.err.find("is not running (cancelled)"), std::string::npos) << again.describe();
}

}  // namespace
}  // namespace troupe::test
