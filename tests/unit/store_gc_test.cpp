// store_gc_test.cpp: Store::delete_old_runs (troupe gc) against real database files — which
// runs go and which stay, their steps, events and cancel requests, dry runs, batches, and a
// writer on another connection that keeps committing while gc deletes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "support/test_dir.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr int64_t kDay = 24LL * 60 * 60 * 1000;
constexpr int64_t kNow = 100 * kDay;           // the tests' "now"
constexpr int64_t kCutoff = kNow - 30 * kDay;  // gc --older-than 30d at kNow
constexpr int64_t kOld = kCutoff - kDay;       // finished before the cutoff

class StoreGcTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("store-gc"); }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path() const { return (dir_ / "troupe.db").string(); }

  // A run created an hour before it finished (finished_ms 0 while running), with `steps`
  // steps and `events` events.
  static void add_run(Store& store, const std::string& id, const std::string& status,
                      int64_t finished_ms, int steps = 2, int events = 3) {
    RunRecord run;
    run.id = id;
    run.workflow = "wf";
    run.status = status;
    run.input_json = "{}";
    run.created_ms = (finished_ms ? finished_ms : kOld) - 60 * 60 * 1000;
    run.finished_ms = status == "running" ? 0 : finished_ms;
    store.create_run(run);
    for (int i = 1; i <= steps; ++i) {
      StepRecord step;
      step.run_id = id;
      step.step_key = std::to_string(i);
      step.kind = "now";
      step.status = "succeeded";
      step.started_ms = run.created_ms + i;
      store.record_step(step);
    }
    for (int i = 0; i < events; ++i) {
      EventRecord event;
      event.run_id = id;
      event.ts_ms = run.created_ms + i;
      event.type = "log";
      event.data_json = "{}";
      store.append_event(event);
    }
  }

  static GcOptions older_than_30d() {
    GcOptions o;
    o.cutoff_ms = kCutoff;
    return o;
  }

  // One number from SQL on a connection of the test's own.
  int64_t count(const std::string& sql) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
  }
  int64_t rows_of(const std::string& table, const std::string& run_id) const {
    const char* column = table == "runs" ? "id" : "run_id";
    return count("SELECT count(*) FROM " + table + " WHERE " + column + " = '" + run_id + "'");
  }

  fs::path dir_;
};

TEST_F(StoreGcTest, OldRunsOfEveryEndedStatusGoWithTheirStepsEventsAndCancelRequests) {
  auto store = Store::open(path());
  add_run(*store, "ok", "succeeded", kOld);
  add_run(*store, "bad", "failed", kOld);
  add_run(*store, "stopped", "cancelled", kOld);
  store->request_cancel("stopped", "late ask", kOld);
  store->send_signal("ok", "go", "1", kOld);
  ApprovalRecord approval;
  approval.run_id = "bad";
  approval.step_key = "3";
  approval.requested_ms = kOld;
  store->request_approval(approval);
  store->flush();

  GcResult r = store->delete_old_runs(older_than_30d());

  EXPECT_EQ(r.runs, 3u);
  EXPECT_EQ(r.steps, 6u);
  EXPECT_EQ(r.events, 9u);
  for (const char* id : {"ok", "bad", "stopped"}) {
    EXPECT_FALSE(store->get_run(id)) << id;
    EXPECT_TRUE(store->get_steps(id).empty()) << id;
    EXPECT_TRUE(store->get_events(id, 0, 100).empty()) << id;
  }
  EXPECT_TRUE(store->cancel_requests().empty());
  EXPECT_EQ(count("SELECT count(*) FROM steps"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM events"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM signals"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM approvals"), 0);
}

TEST_F(StoreGcTest, RunsNotEndedAreKeptHoweverOld) {
  auto store = Store::open(path());
  add_run(*store, "live", "running", 0);
  // Statuses gc does not know (a newer build's, or a queue's) are not "ended" either.
  add_run(*store, "queued", "queued", kOld);
  add_run(*store, "waiting", "waiting", kOld);
  add_run(*store, "old", "succeeded", kOld);
  store->flush();

  GcOptions everything = older_than_30d();
  everything.cutoff_ms = kNow * 10;  // far in the future: every ended run is old
  GcResult r = store->delete_old_runs(everything);

  EXPECT_EQ(r.runs, 1u);
  for (const char* id : {"live", "queued", "waiting"}) {
    ASSERT_TRUE(store->get_run(id)) << id;
    EXPECT_EQ(store->get_steps(id).size(), 2u) << id;
    EXPECT_EQ(store->get_events(id, 0, 100).size(), 3u) << id;
  }
  EXPECT_FALSE(store->get_run("old"));
}

TEST_F(StoreGcTest, RunsThatFinishedAfterTheCutoffAreKept) {
  auto store = Store::open(path());
  add_run(*store, "old", "succeeded", kCutoff - 1);
  add_run(*store, "at-cutoff", "succeeded", kCutoff);
  add_run(*store, "recent", "failed", kNow - kDay);
  store->flush();

  GcResult r = store->delete_old_runs(older_than_30d());

  EXPECT_EQ(r.runs, 1u);
  EXPECT_FALSE(store->get_run("old"));
  EXPECT_TRUE(store->get_run("at-cutoff"));
  EXPECT_TRUE(store->get_run("recent"));
  EXPECT_EQ(store->get_steps("recent").size(), 2u);
}

TEST_F(StoreGcTest, StatusesLimitWhichEndedRunsGo) {
  auto store = Store::open(path());
  add_run(*store, "ok", "succeeded", kOld);
  add_run(*store, "bad", "failed", kOld);
  add_run(*store, "stopped", "cancelled", kOld);
  store->flush();

  GcOptions failed = older_than_30d();
  failed.statuses = {"failed"};
  EXPECT_EQ(store->delete_old_runs(failed).runs, 1u);
  EXPECT_FALSE(store->get_run("bad"));
  EXPECT_TRUE(store->get_run("ok"));
  EXPECT_TRUE(store->get_run("stopped"));

  GcOptions two = older_than_30d();
  two.statuses = {"cancelled", "succeeded"};
  EXPECT_EQ(store->delete_old_runs(two).runs, 2u);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 0);
}

TEST_F(StoreGcTest, AStatusThatIsNotEndedIsRefusedBeforeAnythingIsDeleted) {
  auto store = Store::open(path());
  add_run(*store, "old", "succeeded", kOld);
  store->flush();
  GcOptions o = older_than_30d();
  o.statuses = {"succeeded", "running"};
  try {
    store->delete_old_runs(o);
    FAIL() << "accepted status running";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'running'"));
  }
  EXPECT_TRUE(store->get_run("old"));
}

TEST_F(StoreGcTest, DryRunCountsWhatWouldGoAndDeletesNothing) {
  auto store = Store::open(path());
  add_run(*store, "a", "succeeded", kOld, 4, 5);
  add_run(*store, "b", "failed", kOld, 1, 1);
  add_run(*store, "live", "running", 0);
  store->flush();
  GcOptions dry = older_than_30d();
  dry.dry_run = true;

  GcResult counted = store->delete_old_runs(dry);

  EXPECT_EQ(counted.runs, 2u);
  EXPECT_EQ(counted.steps, 5u);
  EXPECT_EQ(counted.events, 6u);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 3);
  EXPECT_EQ(count("SELECT count(*) FROM steps"), 7);
  EXPECT_EQ(count("SELECT count(*) FROM events"), 9);
  // ... and what it counted is what a real gc then deletes.
  GcResult deleted = store->delete_old_runs(older_than_30d());
  EXPECT_EQ(deleted.runs, counted.runs);
  EXPECT_EQ(deleted.steps, counted.steps);
  EXPECT_EQ(deleted.events, counted.events);
}

TEST_F(StoreGcTest, AReadonlyStoreAllowsADryRunAndRefusesARealOne) {
  {
    auto store = Store::open(path());
    add_run(*store, "old", "succeeded", kOld);
  }
  auto readonly = Store::open_readonly(path());
  GcOptions dry = older_than_30d();
  dry.dry_run = true;
  EXPECT_EQ(readonly->delete_old_runs(dry).runs, 1u);
  EXPECT_THROW(readonly->delete_old_runs(older_than_30d()), StoreError);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 1);
}

TEST_F(StoreGcTest, AThousandRunsAreAllDeletedOverSeveralBatches) {
  auto store = Store::open(path());
  for (int i = 0; i < 1000; ++i)
    add_run(*store, "old-" + std::to_string(i), i % 3 == 0 ? "failed" : "succeeded", kOld);
  add_run(*store, "live", "running", 0);
  store->flush();
  GcOptions o = older_than_30d();
  ASSERT_LT(o.batch_runs, 1000u) << "the default batch must be smaller than the store";

  GcResult r = store->delete_old_runs(o);

  EXPECT_EQ(r.runs, 1000u);
  EXPECT_EQ(r.steps, 2000u);
  EXPECT_EQ(r.events, 3000u);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM steps"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM events"), 3);
  EXPECT_TRUE(store->get_run("live"));
}

TEST_F(StoreGcTest, ARunWithMoreRowsThanOneBatchIsDeletedOverSeveralTransactions) {
  auto store = Store::open(path());
  add_run(*store, "big", "succeeded", kOld, 120, 130);
  add_run(*store, "small", "failed", kOld, 1, 1);
  store->flush();
  GcOptions o = older_than_30d();
  o.batch_rows = 50;  // "big" needs five transactions

  GcResult r = store->delete_old_runs(o);

  EXPECT_EQ(r.runs, 2u);
  EXPECT_EQ(r.steps, 121u);
  EXPECT_EQ(r.events, 131u);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM steps"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM events"), 0);
}

TEST_F(StoreGcTest, EventsOfOtherRunsAreKept) {
  auto store = Store::open(path());
  add_run(*store, "old", "succeeded", kOld);
  add_run(*store, "recent", "succeeded", kNow);
  // History of a run whose row is not there: not this gc's to judge.
  EventRecord stray;
  stray.run_id = "gone-before";
  stray.ts_ms = kOld;
  stray.type = "log";
  stray.data_json = "{}";
  store->append_event(stray);
  store->flush();

  store->delete_old_runs(older_than_30d());

  EXPECT_EQ(rows_of("events", "recent"), 3);
  EXPECT_EQ(rows_of("events", "gone-before"), 1);
  EXPECT_EQ(rows_of("events", "old"), 0);
}

TEST_F(StoreGcTest, WritesQueuedBeforeTheCallAreCommittedAndCountFirst) {
  auto store = Store::open(path());
  add_run(*store, "just-ended", "running", 0);
  store->finish_run("just-ended", "succeeded", "1", "", kOld);  // queued, maybe not committed
  GcResult r = store->delete_old_runs(older_than_30d());
  EXPECT_EQ(r.runs, 1u);
  EXPECT_FALSE(store->get_run("just-ended"));
}

TEST_F(StoreGcTest, AStoreLockedPastTheBusyTimeoutFailsNamingWhatWasDeleted) {
  auto store = Store::open(path());
  add_run(*store, "old", "succeeded", kOld);
  store->flush();
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path().c_str(), &other, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  try {
    store->delete_old_runs(older_than_30d());  // waits the busy timeout (5 s), then gives up
    FAIL() << "gc went through a held write lock";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path()));
    EXPECT_THAT(e.what(), HasSubstr("locked"));
    EXPECT_THAT(e.what(), HasSubstr("nothing was deleted"));
  }
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_EQ(store->delete_old_runs(older_than_30d()).runs, 1u);  // and the next gc goes on
}

// The point of small batches and the pause between them: a writer on another connection (as
// another process's host would be) keeps committing while gc deletes, each commit waiting at
// most about one batch, far from the 5 s busy timeout that would fail its write.
TEST_F(StoreGcTest, AWriterOnAnotherConnectionKeepsCommittingWhileGcRuns) {
  auto gc_store = Store::open(path());
  for (int i = 0; i < 1000; ++i)
    add_run(*gc_store, "old-" + std::to_string(i), "succeeded", kOld, 10, 10);
  gc_store->flush();

  auto writer = Store::open(path());  // its own writer thread and connection
  add_run(*writer, "live", "running", 0, 0, 0);
  writer->flush();
  std::atomic<bool> gc_running{false};
  std::atomic<bool> stop{false};
  std::atomic<int> commits_during_gc{0};
  std::atomic<int64_t> slowest_us{0};
  int written = 0;
  std::thread journal([&] {
    while (!stop) {
      StepRecord step;
      step.run_id = "live";
      step.step_key = std::to_string(++written);
      step.kind = "now";
      step.status = "succeeded";
      bool during = gc_running;
      auto t0 = std::chrono::steady_clock::now();
      writer->record_step(step);
      writer->flush();  // committed: what a sync-durability step waits for
      auto took = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
      if (took > slowest_us) slowest_us = took;
      if (during && gc_running) ++commits_during_gc;
    }
  });

  GcOptions o = older_than_30d();
  o.batch_runs = 50;  // 20 transactions or more: many chances to stall the writer
  o.batch_rows = 500;
  std::this_thread::sleep_for(milliseconds(20));
  gc_running = true;
  auto t0 = std::chrono::steady_clock::now();
  GcResult r = gc_store->delete_old_runs(o);
  auto gc_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  gc_running = false;
  std::this_thread::sleep_for(milliseconds(20));
  stop = true;
  journal.join();

  EXPECT_EQ(r.runs, 1000u);
  EXPECT_EQ(r.steps, 10000u);
  EXPECT_EQ(r.events, 10000u);
  EXPECT_EQ(writer->last_error(), "");
  EXPECT_EQ(static_cast<int>(writer->get_steps("live").size()), written);
  // Commits went on through the gc, not only before and after it.
  EXPECT_GE(commits_during_gc.load(), 10) << "gc took " << gc_ms << " ms";
  // No commit waited anywhere near the busy timeout (a few ms each on an idle machine).
  EXPECT_LT(slowest_us.load(), 2'000'000) << "gc took " << gc_ms << " ms";
  std::printf(
      "gc of 1000 runs (20000 rows) in %lld ms; %d commits of another writer during it, "
      "the slowest %lld ms\n",
      static_cast<long long>(gc_ms), commits_during_gc.load(),
      static_cast<long long>(slowest_us.load() / 1000));
}

}  // namespace
}  // namespace troupe
