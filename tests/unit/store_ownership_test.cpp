// store_ownership_test.cpp: who drives a run — leases, epochs and fencing, claims racing across
// connections, interrupted runs, parked runs, queued runs, scripts kept by hash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "support/test_dir.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Reads tell interrupted runs by the real clock, so the tests' times are around it.
const int64_t kNow = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();

class StoreOwnershipTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("store-ownership"); }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path() const { return (dir_ / "troupe.db").string(); }

  // A run as `troupe run` creates it: driven by `owner`, epoch 1, leased until lease_until_ms.
  static RunRecord driven_run(const std::string& id, const std::string& owner,
                              int64_t lease_until_ms) {
    RunRecord run;
    run.id = id;
    run.workflow = "wf";
    run.status = "running";
    run.created_ms = 1;
    run.epoch = 1;
    run.owner = owner;
    run.lease_until_ms = lease_until_ms;
    return run;
  }
  static StepRecord step(const std::string& run_id, const std::string& key) {
    StepRecord s;
    s.run_id = run_id;
    s.step_key = key;
    s.kind = "chat";
    s.status = "succeeded";
    s.request_hash = "h-" + key;
    return s;
  }
  static ClaimOptions claim_by(const std::string& owner, int64_t now_ms = kNow) {
    ClaimOptions o;
    o.owner = owner;
    o.now_ms = now_ms;
    o.lease_until_ms = now_ms + 30'000;
    return o;
  }

  fs::path dir_;
};

TEST_F(StoreOwnershipTest, ARunWhoseLeaseExpiredReadsAsInterrupted) {
  auto store = Store::open(path());
  store->create_run(driven_run("live", "a", int64_t{1} << 60));
  store->create_run(driven_run("dead", "b", 5));  // its process stopped renewing long ago
  store->flush();
  EXPECT_EQ(store->get_run("live")->status, "running");
  EXPECT_EQ(store->get_run("dead")->status, "interrupted");
  RunFilter interrupted;
  interrupted.status = "interrupted";
  auto runs = store->list_runs(interrupted);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].id, "dead");
}

TEST_F(StoreOwnershipTest, StepsAndEpochRoundTripWithTheRequestHash) {
  auto store = Store::open(path());
  store->create_run(driven_run("r", "a", int64_t{1} << 60));
  store->record_step(step("r", "1"));
  store->flush();
  auto steps = store->get_steps("r");
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].request_hash, "h-1");
  EXPECT_EQ(steps[0].epoch, 1);
}

TEST_F(StoreOwnershipTest, ALiveLeaseCannotBeClaimedAndAnExpiredOneCanWithTheNextEpoch) {
  auto store = Store::open(path());
  store->create_run(driven_run("r", "first", kNow + 10'000));
  store->flush();
  std::string why;
  EXPECT_FALSE(store->claim_run("r", claim_by("second"), &why));
  EXPECT_THAT(why, HasSubstr("running in first"));

  auto taken = store->claim_run("r", claim_by("second", kNow + 10'001), &why);
  ASSERT_TRUE(taken) << why;
  EXPECT_EQ(taken->epoch, 2);
  EXPECT_EQ(taken->owner, "second");
  EXPECT_EQ(taken->lease_until_ms, kNow + 10'001 + 30'000);
}

TEST_F(StoreOwnershipTest, TheLosingProcessIsFencedOutOfTheRunItLost) {
  auto zombie = Store::open(path());
  zombie->create_run(driven_run("r", "zombie", kNow));
  zombie->record_step(step("r", "1"));
  zombie->flush();

  auto heir = Store::open(path());
  std::string why;
  ASSERT_TRUE(heir->claim_run("r", claim_by("heir", kNow + 1), &why)) << why;

  // The zombie wakes up and goes on writing: every write of the run is refused.
  std::vector<bool> outcomes;
  std::mutex mu;
  auto done = [&](bool ok) {
    std::lock_guard lock(mu);
    outcomes.push_back(ok);
  };
  zombie->record_step(step("r", "2"), done);
  zombie->renew_lease("r", kNow + 99'000, done);
  zombie->finish_run("r", "succeeded", "{}", "", kNow + 2, done);
  zombie->flush();
  EXPECT_EQ(outcomes, (std::vector<bool>{false, false, false}));
  EXPECT_THAT(zombie->run_writes("r").error, HasSubstr("fenced"));

  auto run = heir->get_run("r");
  EXPECT_EQ(run->status, "running");
  EXPECT_EQ(run->owner, "heir");
  EXPECT_EQ(heir->get_steps("r").size(), 1u);

  heir->record_step(step("r", "2"));
  heir->finish_run("r", "succeeded", "{}", "", kNow + 3);
  heir->flush();
  EXPECT_EQ(heir->run_writes("r").failed, 0u);
  EXPECT_EQ(heir->get_run("r")->status, "succeeded");
  EXPECT_EQ(heir->get_steps("r")[1].epoch, 2);
}

TEST_F(StoreOwnershipTest, ManyConnectionsRacingForOneRunLetExactlyOneWin) {
  {
    auto store = Store::open(path());
    store->create_run(driven_run("r", "dead", 1));
  }
  constexpr int kRacers = 8;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kRacers; ++i)
    stores.push_back(Store::open(path()));
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i) {
    threads.emplace_back([&, i] {
      std::string why;
      if (stores[i]->claim_run("r", claim_by("racer-" + std::to_string(i)), &why)) ++winners;
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(stores[0]->get_run("r")->epoch, 2);
}

TEST_F(StoreOwnershipTest, AParkedRunIsClaimableOnlyOnceDueUnlessTakenEarly) {
  auto store = Store::open(path());
  store->create_run(driven_run("r", "a", kNow + 60'000));
  store->park_run("r", kNow + 3600'000);
  store->flush();
  auto run = store->get_run("r");
  EXPECT_EQ(run->status, "waiting");
  EXPECT_EQ(run->owner, "");
  EXPECT_EQ(run->wake_ms, kNow + 3600'000);

  EXPECT_TRUE(store->claimable_runs(kNow, 10).empty());
  std::string why;
  EXPECT_FALSE(store->claim_run("r", claim_by("w"), &why));
  EXPECT_THAT(why, HasSubstr("waiting until"));
  EXPECT_EQ(store->claimable_runs(kNow + 3600'000, 10), std::vector<std::string>{"r"});

  ClaimOptions early = claim_by("w");
  early.waiting_early = true;
  auto taken = store->claim_run("r", early, &why);
  ASSERT_TRUE(taken) << why;
  EXPECT_EQ(taken->status, "running");
  EXPECT_EQ(taken->wake_ms, 0);
}

TEST_F(StoreOwnershipTest, QueuedAndInterruptedRunsAreClaimableOldestFirstEndedOnesNever) {
  auto store = Store::open(path());
  RunRecord queued;
  queued.id = "q";
  queued.status = "queued";
  queued.created_ms = 2;
  store->create_run(queued);
  RunRecord dead = driven_run("dead", "x", 10);
  store->create_run(dead);  // created_ms 1: older
  store->create_run(driven_run("live", "y", kNow * 10));
  RunRecord ended = driven_run("ended", "z", 10);
  store->create_run(ended);
  store->finish_run("ended", "failed", "", "boom", 20);
  store->flush();
  EXPECT_EQ(store->claimable_runs(kNow, 10), (std::vector<std::string>{"dead", "q"}));

  std::string why;
  EXPECT_FALSE(store->claim_run("ended", claim_by("w"), &why));
  EXPECT_THAT(why, HasSubstr("ended (failed)"));
  ClaimOptions redrive = claim_by("w");
  redrive.failed = true;
  auto taken = store->claim_run("ended", redrive, &why);
  ASSERT_TRUE(taken) << why;
  EXPECT_EQ(taken->error, "");
  EXPECT_EQ(taken->finished_ms, 0);
  auto q = store->claim_run("q", claim_by("w"), &why);
  ASSERT_TRUE(q) << why;
  EXPECT_EQ(q->epoch, 1);
  EXPECT_FALSE(store->claim_run("nope", claim_by("w"), &why));
  EXPECT_EQ(why, "no such run");
}

TEST_F(StoreOwnershipTest, ScriptsAreKeptOnceByHash) {
  auto store = Store::open(path());
  std::string text = std::string("return 1\n") + '\0' + "binary-safe";
  store->save_script("abc", text);
  store->save_script("abc", "ignored: the hash is there already");
  store->flush();
  EXPECT_EQ(store->get_script("abc"), text);
  EXPECT_FALSE(store->get_script("missing"));
}

TEST_F(StoreOwnershipTest, OwnerIdsNameTheHostAndProcessAndDiffer) {
  std::string a = Store::new_owner_id(), b = Store::new_owner_id();
  EXPECT_NE(a, b);
  EXPECT_THAT(a, HasSubstr(":" + std::to_string(::getpid()) + ":"));
}

}  // namespace
}  // namespace troupe
