// store_test.cpp: the SQLite store against real database files — schema, writes, batching, reads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "store/store.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("troupe-store-test-" + std::to_string(::getpid()) + "-" +
                                        info->name() + "-" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name = "troupe.db") const { return (dir_ / name).string(); }

  fs::path dir_;
};

RunRecord make_run(const std::string& id, int64_t created_ms = 1000,
                   const std::string& workflow = "wf", const std::string& status = "running") {
  RunRecord run;
  run.id = id;
  run.workflow = workflow;
  run.source = "workflows/" + workflow + ".lua";
  run.input_json = R"({"n":1})";
  run.status = status;
  run.created_ms = created_ms;
  if (status == "running") {  // driven by a live process: its lease has not expired
    run.epoch = 1;
    run.owner = "test";
    run.lease_until_ms = int64_t{1} << 60;
  }
  return run;
}

StepRecord make_step(const std::string& run_id, const std::string& key) {
  StepRecord step;
  step.run_id = run_id;
  step.step_key = key;
  step.kind = "chat";
  step.agent = "leader";
  step.model = "mock/echo";
  step.request_json = R"({"messages":[]})";
  step.response_json = R"({"text":"hi"})";
  step.status = "succeeded";
  step.input_tokens = 10;
  step.output_tokens = 2;
  step.started_ms = 2000;
  step.finished_ms = 2005;
  step.latency_us = 5123;
  return step;
}

EventRecord make_event(const std::string& run_id, const std::string& type,
                       const std::string& data = "{}") {
  EventRecord event;
  event.run_id = run_id;
  event.ts_ms = 3000;
  event.type = type;
  event.data_json = data;
  return event;
}

// Runs one SQL statement on a connection of its own and returns the first column of the first
// row as text ("" when there is none).
std::string sql_value(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string value;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void sql_exec(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(
      sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
      SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

RunFilter filter(int limit, const std::string& status = "", const std::string& workflow = "") {
  RunFilter f;
  f.limit = limit;
  f.status = status;
  f.workflow = workflow;
  return f;
}

std::string read_file(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string open_error(const std::string& db_path, bool readonly) {
  try {
    if (readonly) {
      Store::open_readonly(db_path);
    } else {
      Store::open(db_path);
    }
  } catch (const StoreError& e) {
    return e.what();
  }
  return "(no error)";
}

// Captures what the store logs; restores the default sink afterwards.
class LogCapture {
 public:
  LogCapture() {
    log::set_sink([this](log::Level level, std::string_view component, std::string_view message) {
      std::lock_guard lock(mu_);
      if (level == log::Level::error) {
        errors_.push_back(std::string(component) + ": " + std::string(message));
      }
    });
  }
  ~LogCapture() { log::set_sink({}); }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> errors_;
};

// ---- schema

TEST_F(StoreTest, OpenCreatesFoldersAndFreshFileAtTheLatestSchemaVersionInWalMode) {
  const std::string db = (dir_ / "a" / "b" / "troupe.db").string();
  auto store = Store::open(db);
  EXPECT_EQ(store->schema_version(), 5);
  EXPECT_TRUE(fs::exists(db));
  EXPECT_EQ(sql_value(db, "PRAGMA user_version"), "5");
  EXPECT_EQ(sql_value(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(
      sql_value(db,
                "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                "WHERE type IN ('table','index') AND name NOT LIKE 'sqlite%' "
                "ORDER BY name)"),
      "approvals,approvals_pending,attempts,cancel_requests,dead_letters,dead_letters_by_time,"
      "events,events_by_run,runs,runs_by_created,runs_unfinished,scripts,signals,"
      "signals_by_run,steps");
}

TEST_F(StoreTest, CancelRequestsAreKeptUntilCleared) {
  auto store = Store::open(path());
  store->create_run(make_run("run-1"));
  store->request_cancel("run-1", "first ask", 10);
  store->request_cancel("run-1", "second ask", 20);  // replaces the first
  store->request_cancel("run-2", "other", 30);
  store->flush();
  auto requests = store->cancel_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].run_id, "run-1");
  EXPECT_EQ(requests[0].reason, "second ask");
  store->clear_cancel("run-1");
  store->flush();
  requests = store->cancel_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].run_id, "run-2");
}

TEST_F(StoreTest, ReopenKeepsDataAndSchemaVersion) {
  {
    auto store = Store::open(path());
    store->create_run(make_run("run-1"));
    store->record_step(make_step("run-1", "1"));
    store->append_event(make_event("run-1", "run.started"));
  }
  auto store = Store::open(path());
  EXPECT_EQ(store->schema_version(), 5);
  ASSERT_TRUE(store->get_run("run-1").has_value());
  EXPECT_EQ(store->get_steps("run-1").size(), 1u);
  EXPECT_EQ(store->get_events("run-1", 0, 0).size(), 1u);
}

TEST_F(StoreTest, OpenRefusesDatabaseWithNewerSchemaNamingPathAndVersions) {
  Store::open(path());
  sql_exec(path(), "PRAGMA user_version = 7");

  for (bool readonly : {false, true}) {
    std::string error = open_error(path(), readonly);
    EXPECT_THAT(error, HasSubstr(path() + ": schema version 7 is newer than this build of troupe "
                                          "supports (5)"));
  }
  EXPECT_EQ(sql_value(path(), "PRAGMA user_version"), "7");
}

TEST_F(StoreTest, OpenRefusesGarbageFileAndLeavesItUntouched) {
  std::string garbage;
  for (int i = 0; i < 200; ++i)
    garbage += "this is a text file, not a database\n";
  { std::ofstream(path("notes.txt"), std::ios::binary) << garbage; }
  for (bool readonly : {false, true}) {
    std::string error = open_error(path("notes.txt"), readonly);
    EXPECT_THAT(error, HasSubstr(path("notes.txt") + ": not a troupe store: "));
  }
  EXPECT_EQ(read_file(path("notes.txt")), garbage);
  EXPECT_FALSE(fs::exists(path("notes.txt") + "-wal"));
}

TEST_F(StoreTest, OpenRefusesSqliteDatabaseOfAnotherProgram) {
  sql_exec(path("other.db"),
           "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x')");
  std::string error = open_error(path("other.db"), false);
  EXPECT_THAT(error, HasSubstr(path("other.db") + ": not a troupe store: "));
  EXPECT_EQ(sql_value(path("other.db"), "PRAGMA user_version"), "0");
  EXPECT_EQ(sql_value(path("other.db"), "SELECT count(*) FROM sqlite_master"), "1");

  sql_exec(path("app.db"), "PRAGMA application_id = 42; CREATE TABLE t (x)");
  EXPECT_THAT(open_error(path("app.db"), false), HasSubstr("belongs to another program"));
}

TEST_F(StoreTest, OpenRejectsInMemoryDatabase) {
  EXPECT_THAT(open_error(":memory:", false), HasSubstr("needs a plain file path"));
  EXPECT_THAT(open_error("", false), HasSubstr("empty"));
}

// ---- round trips

TEST_F(StoreTest, StepCostAndTokenCountsRoundTripAndTheRunReadsTheirTotal) {
  auto store = Store::open(path());
  store->create_run(make_run("run-1"));
  StepRecord priced = make_step("run-1", "1");
  priced.cached_input_tokens = 4;
  priced.reasoning_tokens = 1;
  priced.cache_write_tokens = 2;
  priced.cost_usd = 0.000125;
  store->record_step(priced);
  StepRecord other = make_step("run-1", "2");
  other.cost_usd = 0.5;
  store->record_step(other);
  StepRecord unpriced = make_step("run-1", "3");
  unpriced.unpriced = true;  // no price: cost_usd stays NULL
  store->record_step(unpriced);
  StepRecord sleep = make_step("run-1", "4");
  sleep.kind = "sleep";
  store->record_step(sleep);
  store->flush();

  auto steps = store->get_steps("run-1");
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].cached_input_tokens, 4);
  EXPECT_EQ(steps[0].reasoning_tokens, 1);
  EXPECT_EQ(steps[0].cache_write_tokens, 2);
  ASSERT_TRUE(steps[0].cost_usd.has_value());
  EXPECT_DOUBLE_EQ(*steps[0].cost_usd, 0.000125);
  EXPECT_FALSE(steps[0].unpriced);
  EXPECT_FALSE(steps[2].cost_usd.has_value());
  EXPECT_TRUE(steps[2].unpriced);
  EXPECT_FALSE(steps[3].cost_usd.has_value());
  EXPECT_FALSE(steps[3].unpriced);
  EXPECT_EQ(sql_value(path(), "SELECT count(*) FROM steps WHERE cost_usd IS NULL"), "2");

  auto run = store->get_run("run-1");
  ASSERT_TRUE(run);
  EXPECT_DOUBLE_EQ(run->cost_usd, 0.500125);
  EXPECT_EQ(run->unpriced_steps, 1);
  auto listed = store->list_runs({});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_DOUBLE_EQ(listed[0].cost_usd, 0.500125);
  EXPECT_EQ(listed[0].unpriced_steps, 1);
}

TEST_F(StoreTest, RunStepAndEventRoundTrip) {
  auto store = Store::open(path());
  RunRecord run = make_run("0f3a-run", 1234, "pr_review");
  run.input_json = R"({"diff":"--- a\n+++ b\n","unicode":"h\u00e9"})";
  store->create_run(run);
  StepRecord step = make_step("0f3a-run", "3.2/1");
  step.error = "";
  store->record_step(step);
  EventRecord event = make_event("0f3a-run", "step.finished", R"({"tokens":12})");
  event.step_key = "3.2/1";
  event.ts_ms = 99;
  store->append_event(event);
  store->flush();

  auto got = store->get_run("0f3a-run");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, run.id);
  EXPECT_EQ(got->workflow, "pr_review");
  EXPECT_EQ(got->source, run.source);
  EXPECT_EQ(got->input_json, run.input_json);
  EXPECT_EQ(got->status, "running");
  EXPECT_EQ(got->output_json, "");
  EXPECT_EQ(got->created_ms, 1234);
  EXPECT_EQ(got->finished_ms, 0);

  auto steps = store->get_steps("0f3a-run");
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].run_id, step.run_id);
  EXPECT_EQ(steps[0].step_key, "3.2/1");
  EXPECT_EQ(steps[0].kind, "chat");
  EXPECT_EQ(steps[0].agent, "leader");
  EXPECT_EQ(steps[0].model, "mock/echo");
  EXPECT_EQ(steps[0].request_json, step.request_json);
  EXPECT_EQ(steps[0].response_json, step.response_json);
  EXPECT_EQ(steps[0].status, "succeeded");
  EXPECT_EQ(steps[0].input_tokens, 10);
  EXPECT_EQ(steps[0].output_tokens, 2);
  EXPECT_EQ(steps[0].started_ms, 2000);
  EXPECT_EQ(steps[0].finished_ms, 2005);
  EXPECT_EQ(steps[0].latency_us, 5123);

  auto events = store->get_events("0f3a-run", 0, 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_GT(events[0].seq, 0);
  EXPECT_EQ(events[0].run_id, "0f3a-run");
  EXPECT_EQ(events[0].ts_ms, 99);
  EXPECT_EQ(events[0].type, "step.finished");
  EXPECT_EQ(events[0].step_key, "3.2/1");
  EXPECT_EQ(events[0].data_json, R"({"tokens":12})");
}

TEST_F(StoreTest, FinishRunSetsStatusOutputErrorAndFinishTime) {
  auto store = Store::open(path());
  store->create_run(make_run("ok"));
  store->create_run(make_run("bad"));
  store->finish_run("ok", "succeeded", R"({"answer":42})", "", 5000);
  store->finish_run("bad", "failed", "", "boom\nstack traceback:\n  [C]: in ?", 6000);
  store->flush();

  auto ok = store->get_run("ok");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, "succeeded");
  EXPECT_EQ(ok->output_json, R"({"answer":42})");
  EXPECT_EQ(ok->finished_ms, 5000);
  auto bad = store->get_run("bad");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, "failed");
  EXPECT_EQ(bad->error, "boom\nstack traceback:\n  [C]: in ?");
  EXPECT_EQ(bad->finished_ms, 6000);
  EXPECT_EQ(bad->input_json, R"({"n":1})");  // untouched
}

TEST_F(StoreTest, SetRunWorkflowRenamesARunAndReportsUnknownRuns) {
  auto store = Store::open(path());
  store->create_run(make_run("r"));
  bool renamed = false, unknown = true;
  store->set_run_workflow("r", "release_notes", [&](bool ok) { renamed = ok; });
  store->set_run_workflow("nobody", "x", [&](bool ok) { unknown = ok; });
  store->flush();
  EXPECT_TRUE(renamed);
  EXPECT_FALSE(unknown);
  EXPECT_EQ(store->get_run("r")->workflow, "release_notes");
  RunFilter by_name;
  by_name.workflow = "release_notes";
  EXPECT_EQ(store->list_runs(by_name).size(), 1u);
}

TEST_F(StoreTest, RecordStepReplacesTheSameStepKey) {
  auto store = Store::open(path());
  store->create_run(make_run("r"));
  StepRecord step = make_step("r", "1");
  step.status = "failed";
  step.error = "timeout";
  store->record_step(step);
  step.status = "succeeded";
  step.error = "";
  step.output_tokens = 77;
  store->record_step(step);
  store->record_step(make_step("r", "2"));
  store->flush();

  auto steps = store->get_steps("r");
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].step_key, "1");
  EXPECT_EQ(steps[0].status, "succeeded");
  EXPECT_EQ(steps[0].error, "");
  EXPECT_EQ(steps[0].output_tokens, 77);
  EXPECT_EQ(steps[1].step_key, "2");
  EXPECT_EQ(store->last_error(), "");
}

TEST_F(StoreTest, GetRunAcceptsUniquePrefixAndRejectsAmbiguousOne) {
  auto store = Store::open(path());
  store->create_run(make_run("abc123"));
  store->create_run(make_run("abd456"));
  store->create_run(make_run("abd4567"));
  store->create_run(make_run("zzz"));
  store->flush();

  EXPECT_EQ(store->get_run("abc")->id, "abc123");
  EXPECT_EQ(store->get_run("abc123")->id, "abc123");
  EXPECT_EQ(store->get_run("z")->id, "zzz");
  // A full id wins over longer ids it prefixes.
  EXPECT_EQ(store->get_run("abd456")->id, "abd456");
  EXPECT_FALSE(store->get_run("abe").has_value());
  EXPECT_FALSE(store->get_run("abc1234").has_value());
  EXPECT_FALSE(store->get_run("").has_value());

  try {
    store->get_run("ab");
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_STREQ(e.what(), "run id prefix 'ab' is ambiguous (3 runs)");
  }
  try {
    store->get_run("abd4");
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_STREQ(e.what(), "run id prefix 'abd4' is ambiguous (2 runs)");
  }
}

TEST_F(StoreTest, ListRunsIsNewestFirstAndFiltersByStatusAndWorkflow) {
  auto store = Store::open(path());
  store->create_run(make_run("r1", 100, "alpha", "succeeded"));
  store->create_run(make_run("r2", 300, "beta", "running"));
  store->create_run(make_run("r3", 200, "alpha", "failed"));
  store->create_run(make_run("r4", 400, "alpha", "running"));
  store->flush();

  auto ids = [](const std::vector<RunRecord>& runs) {
    std::string out;
    for (const auto& r : runs)
      out += r.id + " ";
    return out;
  };
  EXPECT_EQ(ids(store->list_runs({})), "r4 r2 r3 r1 ");
  EXPECT_EQ(ids(store->list_runs(filter(2))), "r4 r2 ");
  EXPECT_EQ(ids(store->list_runs(filter(0))), "r4 r2 r3 r1 ");
  EXPECT_EQ(ids(store->list_runs(filter(50, "running"))), "r4 r2 ");
  EXPECT_EQ(ids(store->list_runs(filter(50, "", "alpha"))), "r4 r3 r1 ");
  EXPECT_EQ(ids(store->list_runs(filter(50, "running", "alpha"))), "r4 ");
  EXPECT_EQ(ids(store->list_runs(filter(50, "cancelled"))), "");
}

TEST_F(StoreTest, EventsComeInSeqOrderAfterTheGivenSeq) {
  auto store = Store::open(path());
  store->create_run(make_run("a"));
  store->create_run(make_run("b"));
  for (int i = 0; i < 10; ++i) {
    store->append_event(make_event("a", "log", "{\"i\":" + std::to_string(i) + "}"));
    store->append_event(make_event("b", "log", "{\"i\":" + std::to_string(i) + "}"));
  }
  store->flush();

  auto all = store->get_events("a", 0, 0);
  ASSERT_EQ(all.size(), 10u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].run_id, "a");
    EXPECT_EQ(all[i].data_json, "{\"i\":" + std::to_string(i) + "}");
    if (i > 0) {
      EXPECT_GT(all[i].seq, all[i - 1].seq);
    }
  }

  auto after = store->get_events("a", all[3].seq, 0);
  ASSERT_EQ(after.size(), 6u);
  EXPECT_EQ(after.front().seq, all[4].seq);
  EXPECT_EQ(after.back().seq, all[9].seq);

  auto page = store->get_events("a", all[3].seq, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].seq, all[4].seq);
  EXPECT_EQ(page[1].seq, all[5].seq);

  EXPECT_TRUE(store->get_events("a", all[9].seq, 0).empty());
  EXPECT_TRUE(store->get_events("nope", 0, 0).empty());
}

// ---- durability and batching

TEST_F(StoreTest, OnDurableRunsOnlyOnceDataIsVisibleToAnotherReadonlyConnection) {
  auto store = Store::open(path());
  auto reader = Store::open_readonly(path());
  constexpr int kSteps = 200;
  std::atomic<int> visible{0};
  std::atomic<int> called{0};
  std::promise<void> all_done;

  store->create_run(make_run("r"), [&](bool ok) {
    EXPECT_TRUE(ok);
    if (reader->get_run("r")) ++visible;
  });
  for (int i = 0; i < kSteps; ++i) {
    const std::string key = std::to_string(i);
    store->record_step(make_step("r", key), [&, key](bool ok) {
      EXPECT_TRUE(ok);
      for (const auto& step : reader->get_steps("r")) {
        if (step.step_key == key) {
          ++visible;
          break;
        }
      }
      if (++called == kSteps) all_done.set_value();
    });
  }
  all_done.get_future().wait();
  EXPECT_EQ(visible.load(), kSteps + 1);
}

TEST_F(StoreTest, WritesFromSeveralThreadsAreAllCommittedAndEachCallbackRunsOnce) {
  auto store = Store::open(path());
  constexpr int kThreads = 4;
  constexpr int kRunsPerThread = 250;
  constexpr int kStepsPerRun = 4;
  constexpr int kOpsPerRun = 1 + 2 * kStepsPerRun + 1;  // create, steps, events, finish
  constexpr int kOps = kThreads * kRunsPerThread * kOpsPerRun;
  std::vector<std::atomic<int>> calls(kOps);
  std::atomic<int> failures{0};

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int op = t * kRunsPerThread * kOpsPerRun;
      auto done = [&](int index) {
        return [&, index](bool ok) {
          if (!ok) ++failures;
          ++calls[index];
        };
      };
      for (int r = 0; r < kRunsPerThread; ++r) {
        const std::string id = "t" + std::to_string(t) + "-r" + std::to_string(r);
        store->create_run(make_run(id, r), done(op++));
        for (int s = 0; s < kStepsPerRun; ++s) {
          store->record_step(make_step(id, std::to_string(s)), done(op++));
          store->append_event(make_event(id, "step.finished"), done(op++));
        }
        store->finish_run(id, "succeeded", "{}", "", 10 + r, done(op++));
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  store->flush();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ info     ] %d writes from %d threads committed in %.3f s (%.0f writes/s)\n", kOps,
              kThreads, seconds, kOps / seconds);

  EXPECT_EQ(failures.load(), 0);
  for (int i = 0; i < kOps; ++i)
    ASSERT_EQ(calls[i].load(), 1) << "callback of op " << i;
  auto reader = Store::open_readonly(path());
  auto runs = reader->list_runs(filter(0));
  EXPECT_EQ(runs.size(), static_cast<size_t>(kThreads * kRunsPerThread));
  for (const auto& run : runs)
    EXPECT_EQ(run.status, "succeeded") << run.id;
  EXPECT_EQ(reader->get_steps("t3-r249").size(), static_cast<size_t>(kStepsPerRun));
  EXPECT_EQ(reader->get_events("t0-r0", 0, 0).size(), static_cast<size_t>(kStepsPerRun));
  EXPECT_EQ(store->last_error(), "");
}

TEST_F(StoreTest, FailingWriteReportsFalseAndTheRestOfItsBatchCommits) {
  LogCapture logs;
  auto store = Store::open(path());

  // Hold the writer inside a callback so that everything below lands in one batch.
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  store->create_run(make_run("blocker"), [&](bool) {
    entered.set_value();
    released.wait();
  });
  entered.get_future().wait();

  std::vector<int> results(6, -1);
  auto record = [&](int i) { return [&results, i](bool ok) { results[i] = ok ? 1 : 0; }; };
  store->create_run(make_run("good"), record(0));
  store->record_step(make_step("missing-run", "1"), record(1));  // foreign key violation
  store->record_step(make_step("good", "1"), record(2));
  store->create_run(make_run("good"), record(3));  // duplicate primary key
  store->finish_run("nobody", "succeeded", "{}", "", 1, record(4));
  store->append_event(make_event("good", "run.started"), record(5));
  release.set_value();
  store->flush();

  EXPECT_EQ(results, (std::vector<int>{1, 0, 1, 0, 0, 1}));
  EXPECT_TRUE(store->get_run("good"));
  EXPECT_EQ(store->get_steps("good").size(), 1u);
  EXPECT_TRUE(store->get_steps("missing-run").empty());
  EXPECT_EQ(store->get_events("good", 0, 0).size(), 1u);
  EXPECT_THAT(store->last_error(), HasSubstr("finish_run 'nobody': no such run"));

  auto errors = logs.errors();
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_THAT(errors[0], HasSubstr("record_step 'missing-run' '1': FOREIGN KEY constraint failed"));
  EXPECT_THAT(errors[1], HasSubstr("create_run 'good': UNIQUE constraint failed"));
  EXPECT_THAT(errors[2], HasSubstr(path()));
}

TEST_F(StoreTest, FlushBlocksUntilEverythingQueuedIsCommitted) {
  auto store = Store::open(path());
  store->flush();  // nothing queued: returns at once
  auto reader = Store::open_readonly(path());
  store->create_run(make_run("r"));
  for (int i = 0; i < 2000; ++i)
    store->append_event(make_event("r", "log"));
  store->flush();
  EXPECT_EQ(reader->get_events("r", 0, 0).size(), 2000u);
}

TEST_F(StoreTest, CallbacksMayWriteAndFlushWithoutDeadlock) {
  auto store = Store::open(path());
  std::promise<bool> chained;
  store->create_run(make_run("r"), [&](bool ok) {
    EXPECT_TRUE(ok);
    store->flush();  // on the writer thread: must not wait for itself
    store->record_step(make_step("r", "1"), [&](bool ok2) { chained.set_value(ok2); });
  });
  EXPECT_TRUE(chained.get_future().get());
  EXPECT_EQ(store->get_steps("r").size(), 1u);
}

TEST_F(StoreTest, ThrowingCallbackDoesNotStopTheWriter) {
  LogCapture logs;
  auto store = Store::open(path());
  store->create_run(make_run("r1"), [](bool) { throw std::runtime_error("callback bug"); });
  std::promise<bool> second;
  store->create_run(make_run("r2"), [&](bool ok) { second.set_value(ok); });
  EXPECT_TRUE(second.get_future().get());
  EXPECT_TRUE(store->get_run("r1"));
  ASSERT_FALSE(logs.errors().empty());
  EXPECT_THAT(logs.errors()[0], HasSubstr("callback bug"));
}

TEST_F(StoreTest, DestructorCommitsPendingWritesAndRunsTheirCallbacks) {
  std::atomic<int> called{0};
  {
    auto store = Store::open(path());
    store->create_run(make_run("r"));
    for (int i = 0; i < 1000; ++i) {
      store->record_step(make_step("r", std::to_string(i)), [&](bool ok) {
        if (ok) ++called;
      });
    }
  }
  EXPECT_EQ(called.load(), 1000);
  EXPECT_EQ(Store::open_readonly(path())->get_steps("r").size(), 1000u);
}

// ---- the write queue's bound and the per-run accounting

// A step whose request is `size` bytes.
StepRecord big_step(const std::string& run_id, int i, size_t size) {
  StepRecord step = make_step(run_id, std::to_string(i));
  step.request_json = std::string(size, 'x');
  return step;
}

TEST_F(StoreTest, AFullQueueMakesTheProducerWaitForTheWriter) {
  constexpr uint64_t kBound = 64 * 1024;
  constexpr int kSteps = 200;  // 200 x 4 KiB: twelve times the bound
  auto store = Store::open(path(), StoreOptions{kBound});

  // Hold the writer inside a callback: nothing drains until the test says so.
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  store->create_run(make_run("r"), [&](bool) {
    entered.set_value();
    released.wait();
  });
  entered.get_future().wait();

  std::atomic<int> queued{0};
  std::thread producer([&] {
    for (int i = 0; i < kSteps; ++i) {
      store->record_step(big_step("r", i, 4096));
      ++queued;
    }
  });
  // Wait (bounded) until the queue cannot take one more step: the producer must be stuck there.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (store->queued_bytes() + 4096 <= kBound && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // room to overrun, if it could
  EXPECT_LE(store->queued_bytes(), kBound);
  EXPECT_LT(queued.load(), kSteps) << "the producer went on past the bound";
  EXPECT_LE(store->run_writes("r").queued_bytes, kBound);

  release.set_value();
  producer.join();
  store->flush();
  EXPECT_EQ(queued.load(), kSteps);
  EXPECT_EQ(store->get_steps("r").size(), static_cast<size_t>(kSteps));
  EXPECT_EQ(store->queued_bytes(), 0u);
  RunWriteStats stats = store->run_writes("r");
  EXPECT_EQ(stats.writes, static_cast<uint64_t>(kSteps + 1));
  EXPECT_GT(stats.bytes, static_cast<uint64_t>(kSteps) * 4096);
  EXPECT_EQ(stats.queued_bytes, 0u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(store->last_error(), "");
}

TEST_F(StoreTest, AWriteLargerThanTheBoundGoesAlone) {
  auto store = Store::open(path(), StoreOptions{1024});
  store->create_run(make_run("r"));
  for (int i = 0; i < 3; ++i)
    store->record_step(big_step("r", i, 64 * 1024));
  store->flush();
  EXPECT_EQ(store->get_steps("r").size(), 3u);
  EXPECT_EQ(store->queued_bytes(), 0u);
}

TEST_F(StoreTest, CallbacksWriteEvenWhenTheQueueIsFull) {
  // The writer thread never waits for queue space: it would wait for itself.
  auto store = Store::open(path(), StoreOptions{1024});
  std::promise<bool> chained;
  store->create_run(make_run("r"), [&](bool) {
    for (int i = 0; i < 10; ++i)
      store->record_step(big_step("r", i, 4096));
    store->append_event(make_event("r", "log"), [&](bool ok) { chained.set_value(ok); });
  });
  EXPECT_TRUE(chained.get_future().get());
  EXPECT_EQ(store->get_steps("r").size(), 10u);
}

TEST_F(StoreTest, FailuresAreChargedToTheirRunAndTheListenerHearsTheFirstBeforeTheCallback) {
  LogCapture logs;
  auto store = Store::open(path());
  std::mutex mu;
  std::vector<std::string> heard;
  store->set_failure_listener([&](const std::string& run_id, const std::string& error) {
    std::lock_guard lock(mu);
    heard.push_back(run_id + " | " + error);
  });
  bool heard_before_callback = false;
  store->create_run(make_run("a"));
  store->create_run(make_run("b"));
  store->create_run(make_run("a"), [&](bool ok) {  // a duplicate: fails
    std::lock_guard lock(mu);
    heard_before_callback = !ok && heard.size() == 1;
  });
  store->create_run(make_run("a"));  // fails again: counted, not announced again
  store->record_step(make_step("b", "1"));
  store->flush();

  EXPECT_TRUE(heard_before_callback);
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_THAT(heard[0], HasSubstr("a | " + path() + ": create_run 'a': UNIQUE constraint failed"));
  RunWriteStats a = store->run_writes("a");
  EXPECT_EQ(a.writes, 3u);
  EXPECT_EQ(a.failed, 2u);
  EXPECT_THAT(a.error, HasSubstr("create_run 'a': UNIQUE constraint failed"));
  RunWriteStats b = store->run_writes("b");
  EXPECT_EQ(b.writes, 2u);
  EXPECT_EQ(b.failed, 0u);
  EXPECT_EQ(b.error, "");
  EXPECT_EQ(logs.errors().size(), 1u) << "one line per failing run, not per failed write";

  store->forget_run("a");
  EXPECT_EQ(store->run_writes("a").writes, 0u);
  store->record_step(make_step("a", "1"));  // a late write does not bring the run back
  store->flush();
  EXPECT_EQ(store->run_writes("a").writes, 0u);
  store->set_failure_listener(nullptr);
}

// ---- read-only access

TEST_F(StoreTest, ReadonlyStoreRejectsWritesAndNeverChangesTheFile) {
  {
    auto store = Store::open(path());
    store->create_run(make_run("r"));
  }
  const std::string before = read_file(path());
  auto reader = Store::open_readonly(path());
  EXPECT_EQ(reader->schema_version(), 5);
  ASSERT_TRUE(reader->get_run("r"));

  EXPECT_THROW(reader->create_run(make_run("x")), StoreError);
  EXPECT_THROW(reader->finish_run("r", "failed", "", "e", 1), StoreError);
  EXPECT_THROW(reader->record_step(make_step("r", "1")), StoreError);
  try {
    reader->append_event(make_event("r", "log"));
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path() + ": the store is open read-only"));
  }
  reader->flush();
  EXPECT_EQ(reader->get_run("r")->status, "running");
  reader.reset();
  EXPECT_EQ(read_file(path()), before);
}

TEST_F(StoreTest, OpenReadonlyFailsOnMissingFileWithoutCreatingIt) {
  EXPECT_THAT(open_error(path("absent.db"), true),
              HasSubstr(path("absent.db") + ": no such store"));
  EXPECT_FALSE(fs::exists(path("absent.db")));
}

TEST_F(StoreTest, ReadersSeeCommittedDataWhileAnotherConnectionHoldsTheWriteLock) {
  auto store = Store::open(path());
  store->create_run(make_run("committed"));
  store->flush();

  // Another process would look like this: a connection in the middle of a write transaction.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path().c_str(), &other, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other,
                         "BEGIN IMMEDIATE; INSERT INTO runs (id, status, created_ms) "
                         "VALUES ('uncommitted', 'running', 1)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);

  auto reader = Store::open_readonly(path());
  EXPECT_TRUE(reader->get_run("committed"));
  EXPECT_FALSE(reader->get_run("uncommitted"));
  EXPECT_EQ(store->list_runs({}).size(), 1u);

  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE(reader->get_run("uncommitted"));
}

TEST_F(StoreTest, ReaderFollowsEventsInOrderWhileTheWriterAppends) {
  auto store = Store::open(path());
  store->create_run(make_run("r"));
  store->flush();
  constexpr int kEvents = 5000;

  std::thread writer([&] {
    for (int i = 0; i < kEvents; ++i) {
      store->append_event(make_event("r", "log", std::to_string(i)));
      if (i % 100 == 99) std::this_thread::yield();
    }
  });

  // Like `troupe events --follow`: poll from the last seq seen, from another connection.
  auto reader = Store::open_readonly(path());
  int64_t last_seq = 0;
  int next = 0;
  int polls = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (next < kEvents && std::chrono::steady_clock::now() < deadline) {
    for (const auto& event : reader->get_events("r", last_seq, 300)) {
      ASSERT_GT(event.seq, last_seq);
      ASSERT_EQ(event.data_json, std::to_string(next)) << "events out of order or missing";
      last_seq = event.seq;
      ++next;
    }
    ++polls;
  }
  writer.join();
  EXPECT_EQ(next, kEvents);
  EXPECT_GT(polls, 1);
}

TEST_F(StoreTest, ReadsFromManyThreadsAtOnce) {
  auto store = Store::open(path());
  for (int i = 0; i < 50; ++i)
    store->create_run(make_run("run-" + std::to_string(i), i));
  store->flush();
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (store->list_runs(filter(10)).size() == 10 && store->get_run("run-7")) ++good;
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(good.load(), 8 * 50);
}

}  // namespace
}  // namespace troupe
