// worker_test.cpp: recovery without a person. Runs queued with `troupe run --detach` are driven
// by `troupe worker` processes sharing one store: each run exactly once however many workers
// race for it, and the runs of a worker killed mid-way are taken over and finish, the vendor
// seeing their finished calls only once. Also `troupe status` and `troupe wait`.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "e2e/cli_fixture.h"
#include "support/test_paths.h"
#include "support/vendor_server.h"

namespace troupe::test {
namespace {

using nlohmann::json;

constexpr int kRuns = 200;

// Two model calls, each naming the run's input: the vendor's log tells which run asked what.
constexpr const char* kWorkflow = R"(local troupe = require("troupe")
return troupe.workflow{ name = "queued", run = function(input)
  local a = troupe.agent{ name = "a", model = "openai/gpt-4o-mini", history = false }
  return a:ask("first " .. input.tag) .. " / " .. a:ask("second " .. input.tag)
end }
)";

class Worker : public CliFixture {
 protected:
  void SetUp() override {
    CliFixture::SetUp();
    write("wf.lua", kWorkflow);
    write("troupe.yaml",
          "store: troupe.db\nlease_s: 1\nproviders:\n  openai:\n    plugin: openai\n"
          "    settings: {base_url: \"" +
              server_.base_url(Vendor::openai) + "\"}\n    secrets: {api_key: TEST_VENDOR_KEY}\n");
    env_["TEST_VENDOR_KEY"] = "sk-worker-test";
  }
  std::vector<std::string> queue_runs() {
    std::vector<std::string> ids;
    for (int i = 0; i < kRuns; ++i) {
      ProcessResult r = troupe(
          {"run", "--detach", "wf.lua", "--input", "{\"tag\":\"t" + std::to_string(i) + "\"}"});
      EXPECT_EQ(r.exit_code, 0) << r.describe();
      ids.push_back(r.out.substr(0, r.out.find('\n')));
    }
    return ids;
  }
  std::vector<json> runs() {
    ProcessResult r = troupe({"--json", "runs", "-n", "1000"});
    json all = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(all.is_array()) << r.describe();
    return all.is_array() ? all.get<std::vector<json>>() : std::vector<json>{};
  }
  // How many times the vendor was asked each prompt.
  std::map<std::string, int> prompts() const {
    std::map<std::string, int> seen;
    for (const SeenChat& chat : server_.chats())
      ++seen[chat.last_user];
    return seen;
  }

  VendorServer server_;
};

TEST_F(Worker, TwoWorkersDriveEachOfTwoHundredQueuedRunsExactlyOnce) {
  std::vector<std::string> ids = queue_runs();
  ASSERT_EQ(runs().size(), static_cast<size_t>(kRuns));
  EXPECT_EQ(server_.chat_count(), 0u) << "queued runs must not run in the submitting process";

  Process a(options({"--json", "worker", "--once", "--poll-ms", "50", "--concurrency", "16"}));
  Process b(options({"--json", "worker", "--once", "--poll-ms", "50", "--concurrency", "16"}));
  ProcessResult ra = a.wait(), rb = b.wait();
  ASSERT_EQ(ra.exit_code, 0) << ra.describe();
  ASSERT_EQ(rb.exit_code, 0) << rb.describe();

  for (const json& run : runs()) {
    EXPECT_EQ(run["status"], "succeeded") << run.dump();
    EXPECT_EQ(run["epoch"], 1) << "driven more than once: " << run.dump();
  }
  EXPECT_EQ(server_.chat_count(), static_cast<size_t>(2 * kRuns));
  for (const auto& [prompt, count] : prompts())
    EXPECT_EQ(count, 1) << prompt;

  ProcessResult status = troupe({"status", ids[0]});
  EXPECT_NE(status.out.find("succeeded"), std::string::npos) << status.describe();
  ProcessResult waited = troupe({"wait", ids[0]});
  EXPECT_EQ(waited.exit_code, 0) << waited.describe();
  EXPECT_NE(waited.out.find("echo: first t0 / echo: second t0"), std::string::npos)
      << waited.describe();
}

TEST_F(Worker, TheRunsOfAWorkerKilledMidwayAreTakenOverAndLoseNothing) {
  queue_runs();
  Process doomed(options({"--json", "worker", "--poll-ms", "50", "--concurrency", "16"}));
  ASSERT_TRUE(server_.wait_for_chats(kRuns / 2, 60'000));
  doomed.send_signal(SIGKILL);
  doomed.wait();
  const size_t before = server_.chat_count();

  // The killed worker's runs read as interrupted once their leases (1 s) expire; a new worker
  // takes them, and everything still queued.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ProcessResult heir =
      troupe({"--json", "worker", "--once", "--poll-ms", "50", "--concurrency", "16"});
  ASSERT_EQ(heir.exit_code, 0) << heir.describe();
  size_t taken_over = 0;
  for (const json& run : runs()) {
    EXPECT_EQ(run["status"], "succeeded") << run.dump();
    taken_over += run["epoch"] == 2;
  }
  EXPECT_GT(taken_over, 0u);
  // Nothing is lost, and only calls in flight at the kill (at most one per run it drove) are
  // asked twice.
  const size_t total = server_.chat_count();
  EXPECT_GE(total, static_cast<size_t>(2 * kRuns));
  EXPECT_LE(total - 2 * kRuns, taken_over) << "killed after " << before << " calls";
  for (const auto& [prompt, count] : prompts())
    EXPECT_LE(count, 2) << prompt;
}

TEST_F(Worker, ARunParkedOnAnHourLongSleepUsesNoProcessAndAWorkerResumesItWhenDue) {
  const std::string faketime = find_libfaketime();
  if (faketime.empty()) GTEST_SKIP() << "libfaketime is not installed (Debian: libfaketime)";
  std::ofstream(dir_ / "park.lua") << R"(local troupe = require("troupe")
return troupe.workflow{ name = "park", run = function(input)
  local a = troupe.agent{ name = "a", model = "openai/gpt-4o-mini" }
  local before = a:ask("before the night")
  troupe.sleep(3600)
  return before .. " / " .. a:ask("after the night")
end }
)";
  ProcessResult parked = troupe({"--json", "run", "park.lua"});
  ASSERT_EQ(parked.exit_code, 0) << parked.describe();
  json out = json::parse(parked.out, nullptr, false);
  ASSERT_EQ(out["status"], "waiting") << parked.describe();
  const std::string id = out["run_id"];
  EXPECT_EQ(server_.chat_count(), 1u);
  // The process that ran it has exited: the run is only a row of the store now.
  json status = json::parse(troupe({"--json", "status", id}).out, nullptr, false);
  EXPECT_EQ(status["status"], "waiting");
  EXPECT_EQ(status["owner"], nullptr);

  // Not due: a worker leaves it alone.
  ProcessResult early = troupe({"worker", "--once", "--poll-ms", "50"});
  EXPECT_EQ(early.out, "") << early.describe();
  EXPECT_EQ(server_.chat_count(), 1u);

  // Two hours later (the worker's clock moved by libfaketime), a worker resumes it: the first
  // call is served from the journal, the sleep is over, the second call is made.
  ProcessOptions later = options({"worker", "--once", "--poll-ms", "50"});
  later.env["LD_PRELOAD"] = faketime;
  later.env["FAKETIME"] = "+2h";
  later.env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1";
  later.env["ASAN_OPTIONS"] = "verify_asan_link_order=0";  // libfaketime comes first
  ProcessResult resumed = Process(later).wait();
  ASSERT_EQ(resumed.exit_code, 0) << resumed.describe();
  EXPECT_NE(resumed.out.find("finished " + id + " succeeded"), std::string::npos)
      << resumed.describe();
  EXPECT_EQ(server_.chat_count(), 2u);
  json shown = json::parse(troupe({"--json", "show", id}).out, nullptr, false);
  EXPECT_EQ(shown["status"], "succeeded");
  EXPECT_EQ(shown["output"], "echo: before the night / echo: after the night");
}

}  // namespace
}  // namespace troupe::test
