// resume_test.cpp: resuming a run whose script changed, through the binary — refused unless
// --allow-changed; a served step that no longer matches stops the run naming the step and both
// sides; troupe.patched keeps an old run on its old path while new runs take the new one.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "e2e/cli_fixture.h"

namespace troupe::test {
namespace {

using nlohmann::json;

// Three calls; `middle` is what the edited versions put between the first two.
std::string workflow(const std::string& middle) {
  return "local troupe = require(\"troupe\")\n"
         "return troupe.workflow{ name = \"v\", run = function(input)\n"
         "  local a = troupe.agent{ name = \"a\", model = \"mock/m1\", history = false }\n"
         "  local out = { a:ask(\"one\") }\n" +
         middle +
         "  out[#out + 1] = a:ask(\"two\")\n"
         "  out[#out + 1] = a:ask(\"three\")\n"
         "  return out\n"
         "end }\n";
}

class Resume : public CliFixture {
 protected:
  void SetUp() override {
    CliFixture::SetUp();
    configure("");
  }
  // The mock answers at once, except prompts containing `hang` (if any), which never return.
  void configure(const std::string& hang) {
    std::string cfg = "store: troupe.db\nproviders:\n  mock:\n    plugin: mock\n    settings:\n";
    if (!hang.empty())
      cfg += "      rules: [{match: \"" + hang + "\", latency_ms: 600000}]\n";
    else
      cfg += "      latency_ms: 0\n";
    write("troupe.yaml", cfg);
  }
  // Runs the original script until its third call, which never returns, and kills it there:
  // the journal then holds exactly the first two calls, whatever the machine's speed.
  std::string killed_after_two_calls() {
    write("wf.lua", workflow(""));
    configure("three");
    Process victim(options({"run", "wf.lua"}));
    // Polled without expectations: until the run's process created the store, reading it fails.
    auto peek = [&](std::vector<std::string> args) {
      args.insert(args.begin(), "--json");
      return json::parse(Process(options(std::move(args))).wait().out, nullptr, false);
    };
    for (int i = 0; i < 600; ++i) {
      json runs = peek({"runs"});
      if (runs.is_array() && !runs.empty()) {
        json shown = peek({"show", runs[0]["id"]});
        if (shown.is_object() && shown["steps"].size() == 2) {
          victim.send_signal(SIGKILL);
          victim.wait();
          configure("");
          return runs[0]["id"];
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the first two calls were never journaled";
    return "";
  }
};

TEST_F(Resume, AChangedScriptIsRefusedAndAStepThatNoLongerMatchesStopsTheRunNamingIt) {
  std::string id = killed_after_two_calls();
  ASSERT_FALSE(id.empty());
  // The edit asks something else where the journal holds "two".
  write("wf.lua", workflow("  out[#out + 1] = a:ask(\"inserted\")\n"));
  ProcessResult refused = Process(options({"resume", id})).wait();
  EXPECT_EQ(refused.exit_code, 2) << refused.describe();
  EXPECT_NE(refused.err.find("changed since the run started"), std::string::npos) << refused.err;

  // Its first step matches and is served; the second asks another question: the run stops with
  // an error naming the step, never the recorded answer to the old question.
  json diverged = troupe_json({"resume", id, "--allow-changed"});
  EXPECT_EQ(diverged["status"], "failed") << diverged.dump();
  std::string error = diverged.value("error", "");
  EXPECT_NE(error.find("resume: step 2 does not match the journal"), std::string::npos) << error;
  EXPECT_NE(error.find("another request"), std::string::npos) << error;
}

TEST_F(Resume, PatchedKeepsAnOldRunOnItsOldPathAndNewRunsOnTheNewOne) {
  // Recorded past the patch's place by the old script: the resumed run keeps the old path.
  std::string id = killed_after_two_calls();
  ASSERT_FALSE(id.empty());
  std::ofstream(dir_ / "wf.lua") << workflow(
      "  if troupe.patched(\"extra\") then out[#out + 1] = a:ask(\"extra\") end\n");
  json old_run = troupe_json({"resume", id, "--allow-changed"});
  ASSERT_EQ(old_run["status"], "succeeded") << old_run.dump();
  EXPECT_EQ(old_run["output"].size(), 3u) << "the old run keeps its path";
  json new_run = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(new_run["status"], "succeeded") << new_run.dump();
  EXPECT_EQ(new_run["output"].size(), 4u) << "a new run takes the patch";
}

}  // namespace
}  // namespace troupe::test
