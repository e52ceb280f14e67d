// gc_test.cpp: end-to-end tests of `troupe gc` — the binary on a store of its test's own
// folder, seeded with old runs through the store library (no command makes a 40-day-old run),
// and once beside a `troupe run` in another process that journals while gc deletes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "e2e/process.h"
#include "store/store.h"
#include "support/test_paths.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr int64_t kDay = 24LL * 60 * 60 * 1000;

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

class CliGc : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "troupe-e2e-gc-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
    dir_ = pattern;
    ASSERT_TRUE(fs::exists(troupe_binary())) << troupe_binary() << " is missing";
  }

  void TearDown() override {
    if (HasFailure()) {
      std::fprintf(stderr, "kept the test folder for a look: %s\n", dir_.c_str());
    } else {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  // The store every command here uses: the default one, relative to the test's folder.
  std::string store_path() const { return (dir_ / ".troupe" / "troupe.db").string(); }

  ProcessOptions options(std::vector<std::string> args) const {
    ProcessOptions o;
    o.args = {troupe_binary()};
    o.args.insert(o.args.end(), args.begin(), args.end());
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_CONFIG", "TROUPE_PLUGIN_PATH", "NO_COLOR"};
    o.env = {{"TROUPE_OFFLINE", "1"}};
    return o;
  }

  ProcessResult troupe(std::vector<std::string> args) {
    return run_process(options(std::move(args)));
  }

  std::string write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  static json parse(const ProcessResult& r) {
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.describe();
    return j;
  }

  // Adds a run that finished `age_days` ago (running: started then) with its steps and events.
  void seed(Store& store, const std::string& id, const std::string& status, int64_t age_days,
            int steps = 2, int events = 3) {
    const int64_t at = now_ms() - age_days * kDay;
    RunRecord run;
    run.id = id;
    run.workflow = "seeded";
    run.source = "seeded.lua";
    run.input_json = "{}";
    run.status = status;
    run.created_ms = at - 1000;
    run.finished_ms = status == "running" ? 0 : at;
    store.create_run(run);
    for (int i = 1; i <= steps; ++i) {
      StepRecord step;
      step.run_id = id;
      step.step_key = std::to_string(i);
      step.kind = "now";
      step.status = "succeeded";
      step.started_ms = at - 1000 + i;
      store.record_step(step);
    }
    for (int i = 0; i < events; ++i) {
      EventRecord event;
      event.run_id = id;
      event.ts_ms = at - 1000 + i;
      event.type = "log";
      event.data_json = "{}";
      store.append_event(event);
    }
  }

  // The usual mix: one old run of each ended status, an old running one, a recent one.
  void seed_mix() {
    auto store = Store::open(store_path());
    seed(*store, "old-ok", "succeeded", 40);
    seed(*store, "old-bad", "failed", 40);
    seed(*store, "old-stopped", "cancelled", 40);
    seed(*store, "old-live", "running", 40);
    seed(*store, "new-ok", "succeeded", 1);
  }

  // The ids `troupe runs` lists, sorted.
  std::vector<std::string> run_ids() {
    ProcessResult r = troupe({"runs", "-n", "100000", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    std::vector<std::string> ids;
    for (const auto& run : parse(r))
      ids.push_back(run.value("id", ""));
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  fs::path dir_;
};

TEST_F(CliGc, DeletesOldEndedRunsWithTheirStepsAndEventsAndKeepsRunningAndRecentOnes) {
  seed_mix();
  ProcessResult r = troupe({"gc", "--older-than", "30d", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = parse(r);
  EXPECT_EQ(j["runs"], 3);
  EXPECT_EQ(j["steps"], 6);
  EXPECT_EQ(j["events"], 9);
  EXPECT_EQ(j["dry_run"], false);
  int64_t cutoff = j["cutoff_ms"];
  EXPECT_NEAR(static_cast<double>(cutoff), static_cast<double>(now_ms() - 30 * kDay), 60'000.0);
  // One object on one line, its fields in the documented order.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(r.out.rfind("{\"runs\":3,\"steps\":6,\"events\":9,\"dry_run\":false,\"cutoff_ms\":", 0),
            0u)
      << r.out;

  EXPECT_EQ(run_ids(), (std::vector<std::string>{"new-ok", "old-live"}));
  ProcessResult gone = troupe({"show", "old-ok"});
  EXPECT_EQ(gone.exit_code, 2) << gone.describe();
  ProcessResult events = troupe({"events", "old-bad"});
  EXPECT_EQ(events.exit_code, 2) << events.describe();
  // What stays keeps its journal and its events.
  ProcessResult live = troupe({"show", "old-live", "--json"});
  ASSERT_EQ(live.exit_code, 0) << live.describe();
  EXPECT_EQ(parse(live)["steps"].size(), 2u);
  ProcessResult kept_events = troupe({"events", "new-ok", "--json"});
  EXPECT_EQ(std::count(kept_events.out.begin(), kept_events.out.end(), '\n'), 3)
      << kept_events.describe();
}

TEST_F(CliGc, TextOutputIsOnePlainLine) {
  seed_mix();
  ProcessResult r = troupe({"gc", "--older-than", "30d"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("deleted 3 runs, 6 steps and 9 events that finished before "));
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << "no colours: " << r.out;
}

TEST_F(CliGc, StatusOptionsDeleteOnlyThoseStatuses) {
  seed_mix();
  ProcessResult r = troupe(
      {"gc", "--older-than", "30d", "--status", "failed", "--status", "cancelled", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(parse(r)["runs"], 2);
  EXPECT_EQ(run_ids(), (std::vector<std::string>{"new-ok", "old-live", "old-ok"}));
}

TEST_F(CliGc, DryRunCountsAndDeletesNothing) {
  seed_mix();
  ProcessResult r = troupe({"gc", "--older-than", "30d", "--dry-run", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = parse(r);
  EXPECT_EQ(j["runs"], 3);
  EXPECT_EQ(j["steps"], 6);
  EXPECT_EQ(j["events"], 9);
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(run_ids().size(), 5u);
  ProcessResult text = troupe({"gc", "--older-than", "30d", "--dry-run"});
  EXPECT_THAT(text.out, HasSubstr("would delete 3 runs"));
  EXPECT_THAT(text.out, HasSubstr("(dry run)"));
}

TEST_F(CliGc, ABadDurationIsAUsageErrorNamingIt) {
  seed_mix();
  for (const char* bad : {"30", "3x", "1h30m", "30D", "1.5d", "36501d"}) {
    ProcessResult r = troupe({"gc", "--older-than", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.describe();
    EXPECT_THAT(r.err, HasSubstr(std::string("--older-than: '") + bad + "'")) << bad;
  }
  ProcessResult empty = troupe({"gc", "--older-than", ""});
  EXPECT_EQ(empty.exit_code, 2) << empty.describe();
  EXPECT_EQ(run_ids().size(), 5u) << "nothing deleted";
}

TEST_F(CliGc, ARunningStatusIsRefused) {
  seed_mix();
  ProcessResult r = troupe({"gc", "--older-than", "30d", "--status", "running"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("'running' is not a status gc deletes"));
  EXPECT_EQ(run_ids().size(), 5u);
}

TEST_F(CliGc, WithoutAnAgeItRefusesAndSaysHowToGiveOne) {
  seed_mix();
  ProcessResult r = troupe({"gc"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("--older-than"));
  EXPECT_THAT(r.err, HasSubstr("retention: { older_than: 30d }"));
  EXPECT_EQ(run_ids().size(), 5u);
}

TEST_F(CliGc, TheConfigurationsRetentionIsTheDefault) {
  write("troupe.yaml", "retention:\n  older_than: 7d\n  status: [failed]\n");
  seed_mix();
  ProcessResult r = troupe({"gc", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(parse(r)["runs"], 1);
  EXPECT_EQ(run_ids(), (std::vector<std::string>{"new-ok", "old-live", "old-ok", "old-stopped"}));
  // Arguments win over it: the age, and the statuses.
  r = troupe({"gc", "--older-than", "2h", "--status", "succeeded", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(parse(r)["runs"], 2);
  EXPECT_EQ(run_ids(), (std::vector<std::string>{"old-live", "old-stopped"}));
}

TEST_F(CliGc, ABadRetentionInTheConfigurationIsNamedWithItsLine) {
  write("troupe.yaml", "store: x.db\nretention:\n  older_than: a month\n");
  ProcessResult r = troupe({"gc"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("troupe.yaml:3:"));
  EXPECT_THAT(r.err, HasSubstr("retention.older_than: 'a month' is not a duration"));
}

TEST_F(CliGc, AMissingStoreIsNotCreated) {
  ProcessResult r = troupe({"gc", "--older-than", "30d", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(parse(r)["runs"], 0);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
  EXPECT_FALSE(fs::exists(store_path()));
}

// A store much larger than one batch (200 runs), while a workflow in another process journals
// a step every few milliseconds with durability sync: every one of its commits must get through
// between gc's transactions (a commit held past the 5 s busy timeout would fail the run).
TEST_F(CliGc, AWorkflowInAnotherProcessKeepsJournalingWhileGcDeletesAThousandRuns) {
  {
    auto store = Store::open(store_path());
    for (int i = 0; i < 1000; ++i)
      seed(*store, "old-" + std::to_string(i), i % 2 ? "succeeded" : "failed", 40, 10, 10);
  }
  write("busy.lua",
        "local troupe = require(\"troupe\")\n"
        "return troupe.workflow{ name = \"busy\", run = function(input)\n"
        "  troupe.sleep(0.01)\n"
        "  troupe.log('started')\n"
        "  for i = 1, 150 do troupe.sleep(0.01) end\n"
        "  return 'done'\n"
        "end }\n");
  ProcessOptions run_options = options({"run", "busy.lua"});
  run_options.timeout = seconds(120);
  Process run(run_options);
  ASSERT_TRUE(run.wait_for_output("started", seconds(60))) << run.wait().describe();

  ProcessOptions gc_options = options({"gc", "--older-than", "30d", "--json"});
  gc_options.timeout = seconds(120);
  ProcessResult gc = run_process(gc_options);
  ProcessResult done = run.wait();

  ASSERT_EQ(gc.exit_code, 0) << gc.describe();
  json j = parse(gc);
  EXPECT_EQ(j["runs"], 1000);
  EXPECT_EQ(j["steps"], 10000);
  EXPECT_EQ(j["events"], 10000);
  ASSERT_EQ(done.exit_code, 0) << done.describe();
  std::vector<std::string> ids = run_ids();
  ASSERT_EQ(ids.size(), 1u) << "only the workflow's own run is left";
  ProcessResult show = troupe({"show", ids[0], "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.describe();
  json steps = parse(show)["steps"];
  EXPECT_EQ(steps.size(), 151u) << "every step of the run was journaled";
  // No step waited on gc for anywhere near the busy timeout.
  std::vector<int64_t> ends;
  for (const auto& s : steps)
    ends.push_back(s.value("finished_ms", int64_t{0}));
  std::sort(ends.begin(), ends.end());
  int64_t widest = 0;
  for (size_t i = 1; i < ends.size(); ++i)
    widest = std::max(widest, ends[i] - ends[i - 1]);
  EXPECT_LT(widest, 3000) << "the longest gap between two steps, in ms";
  std::printf(
      "gc of 1000 runs beside a journaling workflow in %lld ms; widest gap between the "
      "workflow's steps %lld ms\n",
      static_cast<long long>(gc.elapsed.count()), static_cast<long long>(widest));
}

}  // namespace
}  // namespace troupe::test
