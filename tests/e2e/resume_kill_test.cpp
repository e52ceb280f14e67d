// resume_kill_test.cpp: crash and resume, as a user lives it. The real troupe binary runs a
// 50-step workflow (sequential calls, sleeps, a map, parallel branches, a tool loop, the clock,
// random numbers) through the openai plugin against the fake vendor; the test kills it with
// SIGKILL at 20 random points, resumes each run with `troupe resume`, and checks that every
// run ends with the output of an uninterrupted run while the vendor saw no call twice except
// those in flight at the kill.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "e2e/process.h"
#include "support/test_paths.h"
#include "support/test_text.h"
#include "support/vendor_server.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ResumeKill : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "troupe-resume-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    ASSERT_TRUE(fs::exists(troupe_binary())) << "build the troupe_cli target";
    fs::copy_file(source_dir() / "tests/e2e/workflows/durable_50.lua", dir_ / "wf.lua");
    // The tool loop: the model asks for the tool, then answers with its result.
    server_.load_scenario(json::parse(R"({"rules": [{"match": "compute",
        "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}]})"));
    std::ofstream cfg(dir_ / "troupe.yaml");
    cfg << "store: troupe.db\ndurability: " << GetParam() << "\n"
        << "providers:\n  openai:\n    plugin: openai\n    settings: {base_url: \""
        << server_.base_url(Vendor::openai) << "\"}\n    secrets: {api_key: TEST_VENDOR_KEY}\n";
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  ProcessOptions troupe_options(std::vector<std::string> args) const {
    args.insert(args.begin(), troupe_binary());
    ProcessOptions o;
    o.args = std::move(args);
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_PLUGIN_PATH", "NO_COLOR"};
    o.env["TEST_VENDOR_KEY"] = "sk-resume-test";
    return o;
  }
  json troupe_json(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    ProcessResult r = Process(troupe_options(std::move(args))).wait();
    json out = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(out.is_object() || out.is_array()) << r.describe();
    return out;
  }
  // Chat steps of the run that are journaled as succeeded.
  size_t journaled_chats(const std::string& run_id) {
    json shown = troupe_json({"show", run_id});
    size_t n = 0;
    for (const json& step : shown["steps"])
      n += step["kind"] == "chat" && step["status"] == "succeeded";
    return n;
  }

  VendorServer server_;
  fs::path dir_;
};

TEST_P(ResumeKill, TwentyRunsKilledAtRandomPointsResumeToTheUninterruptedOutput) {
  json reference = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(reference["status"], "succeeded") << reference.dump();
  const size_t total_calls = server_.chat_count();
  ASSERT_GE(reference["steps"].get<int>(), 50);

  std::set<std::string> known = {reference["run_id"].get<std::string>()};
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<size_t> kill_after(1, total_calls - 1);
  int resumed_rounds = 0;
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    server_.reset();
    const size_t target = kill_after(rng);
    Process victim(troupe_options({"--json", "run", "wf.lua"}));
    // The kill lands right after the vendor received call `target`, wherever the run is then.
    ASSERT_TRUE(server_.wait_for_chats(target, 30'000));
    victim.send_signal(SIGKILL);
    ProcessResult killed = victim.wait();
    ASSERT_EQ(killed.term_signal, SIGKILL) << killed.describe();
    const size_t calls_before = server_.chat_count();

    // This round's run: the one the store did not hold before. Under async durability a
    // process killed early may not have committed even the run's creation: then every call it
    // made was in flight, and there is nothing to resume.
    std::string run_id, status;
    for (const json& run : troupe_json({"runs", "--limit", "100"})) {
      if (!known.count(run["id"])) {
        run_id = run["id"];
        status = run["status"];
      }
    }
    if (run_id.empty()) {
      EXPECT_EQ(std::string(GetParam()), "async") << "a sync run is created before it starts";
      continue;
    }
    known.insert(run_id);
    if (status == "succeeded") {
      // The last calls answered faster than the signal landed (a loaded machine): the run had
      // ended, whole, and nothing is left to resume.
      EXPECT_EQ(troupe_json({"show", run_id})["output"], reference["output"]);
      EXPECT_EQ(calls_before, total_calls);
      continue;
    }
    ++resumed_rounds;
    const size_t journaled = journaled_chats(run_id);
    ASSERT_LE(journaled, calls_before);

    server_.reset();
    json resumed = troupe_json({"resume", run_id});
    ASSERT_EQ(resumed["status"], "succeeded") << resumed.dump();
    EXPECT_EQ(resumed["output"], reference["output"]);
    // The resumed run asks only what the journal did not hold: the calls repeated are at most
    // those in flight (sent, not journaled) when the process died.
    const size_t calls_after = server_.chat_count();
    EXPECT_EQ(calls_after, total_calls - journaled)
        << "killed after " << calls_before << " calls, " << journaled << " journaled";
    EXPECT_LE(calls_before + calls_after - total_calls, calls_before - journaled);
  }
  EXPECT_GE(resumed_rounds, 15) << "most kills must land mid-run for the test to mean anything";
}

TEST_P(ResumeKill, ReplayFindsTheFirstDivergentStepAndForkReusesTheJournalWithoutTheModel) {
  json recorded = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(recorded["status"], "succeeded") << recorded.dump();
  const std::string id = recorded["run_id"];
  const size_t calls = server_.chat_count();

  // The same script, offline: every step served, the same output, no call.
  json same = troupe_json({"replay", id});
  EXPECT_EQ(same["status"], "succeeded") << same.dump();
  EXPECT_EQ(same["replay"]["same_output"], true);
  EXPECT_EQ(server_.chat_count(), calls);

  // An edit that asks something else from the first call on: reported there, without a call.
  std::string text = read_text(dir_ / "wf.lua");
  size_t at = text.find("\"part \" .. i");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 8, "\"piece \"");
  std::ofstream(dir_ / "edited.lua") << text;
  json edited = troupe_json({"replay", id, "--script", "edited.lua"});
  EXPECT_EQ(edited["status"], "failed");
  EXPECT_EQ(edited["replay"]["diverged"], true);
  EXPECT_NE(edited["error"].get<std::string>().find("replay: step 1 does not match the journal"),
            std::string::npos)
      << edited["error"];
  EXPECT_EQ(server_.chat_count(), calls);

  // A fork from step 5 reuses the first five calls and asks the vendor only for the rest.
  json shown = troupe_json({"show", id});
  size_t reused = 0;
  bool seen = false;
  std::vector<json> steps = shown["steps"].get<std::vector<json>>();
  json fork = troupe_json({"fork", id, "--from", "5"});
  ASSERT_EQ(fork["status"], "succeeded") << fork.dump();
  EXPECT_EQ(fork["output"], recorded["output"]);
  for (const json& step : steps) {
    if (!seen && step["kind"] == "chat") ++reused;
    if (step["step_key"] == "5") seen = true;
  }
  EXPECT_EQ(reused, 5u);
  EXPECT_EQ(server_.chat_count(), calls + (calls - reused));
  json child = troupe_json({"show", fork["run_id"]});
  EXPECT_EQ(child["parent"]["run_id"], id);
  EXPECT_EQ(child["parent"]["step"], "5");
}

std::string durability_name(const ::testing::TestParamInfo<const char*>& p) {
  return p.param;
}

INSTANTIATE_TEST_SUITE_P(Durability, ResumeKill, ::testing::Values("sync", "async"),
                         durability_name);

}  // namespace
}  // namespace troupe::test
