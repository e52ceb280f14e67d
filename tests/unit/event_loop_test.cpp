// event_loop_test.cpp: the event loop's posted work, timers, stop and shutdown behaviour.
#include "loop/event_loop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace troupe {
namespace {

constexpr uint64_t kMs = 1'000'000;

// Runs the loop until done() holds; false after timeout_ms (generous: shared 2-core machine).
bool run_until(EventLoop& loop, const std::function<bool()>& done, uint64_t timeout_ms = 20'000) {
  uint64_t deadline = EventLoop::now_ns() + timeout_ms * kMs;
  while (!done()) {
    if (EventLoop::now_ns() > deadline) return false;
    loop.run_once(50);
  }
  return true;
}

// A watchdog timer: stops run() and flags failure if the test did not finish by then.
EventLoop::Id add_watchdog(EventLoop& loop, bool* fired, uint64_t ms = 20'000) {
  return loop.add_timer(ms, [&loop, fired] {
    *fired = true;
    loop.stop();
  });
}

TEST(EventLoop, PostFromAnotherThreadWakesIdleLoopPromptly) {
  EventLoop loop;
  bool watchdog = false;
  add_watchdog(loop, &watchdog);
  std::atomic<uint64_t> posted_at{0};
  uint64_t ran_at = 0;
  std::promise<void> running;
  loop.post([&] { running.set_value(); });
  std::thread poster([&] {
    running.get_future().wait();
    // The loop is now idle with only the watchdog pending; a post must wake it.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    posted_at = EventLoop::now_ns();
    loop.post([&] {
      ran_at = EventLoop::now_ns();
      loop.stop();
    });
  });
  loop.run();
  poster.join();
  EXPECT_FALSE(watchdog);
  ASSERT_NE(ran_at, 0u);
  EXPECT_LT(ran_at - posted_at.load(), 2'000 * kMs);  // woken at once, not by the watchdog
}

TEST(EventLoop, PostsFromManyThreadsKeepPerThreadOrder) {
  EventLoop loop;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2'000;
  std::vector<std::vector<int>> seen(kThreads);
  std::atomic<int> finished_threads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        EXPECT_TRUE(loop.post([&seen, t, i] { seen[t].push_back(i); }));
      if (++finished_threads == kThreads) loop.post([&] { loop.stop(); });
    });
  }
  bool watchdog = false;
  add_watchdog(loop, &watchdog);
  loop.run();
  for (auto& th : threads)
    th.join();
  EXPECT_FALSE(watchdog);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPerThread)) << "thread " << t;
    for (int i = 0; i < kPerThread; ++i)
      ASSERT_EQ(seen[t][i], i) << "thread " << t;
  }
}

TEST(EventLoop, PostedClosuresRunInPostingOrderOnTheLoopThread) {
  EventLoop loop;
  std::vector<int> order;
  std::thread::id loop_thread = std::this_thread::get_id();
  bool on_loop_thread = true;
  for (int i = 0; i < 10; ++i)
    loop.post([&, i] {
      order.push_back(i);
      on_loop_thread = on_loop_thread && std::this_thread::get_id() == loop_thread;
      if (i == 3) loop.post([&] { order.push_back(100); });  // after everything posted earlier
    });
  ASSERT_TRUE(run_until(loop, [&] { return order.size() == 11; }));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100}));
  EXPECT_TRUE(on_loop_thread);
}

TEST(EventLoop, PostedClosureWaitsUntilSomeoneRunsTheLoop) {
  EventLoop loop;
  bool ran = false;
  ASSERT_TRUE(loop.post([&] { ran = true; }));
  EXPECT_FALSE(ran);
  loop.run_once(0);
  EXPECT_TRUE(ran);
}

TEST(EventLoop, TimersFireInDeadlineOrder) {
  EventLoop loop;
  std::vector<int> order;
  for (int delay : {50, 10, 30, 0, 20, 40}) {
    loop.add_timer(static_cast<uint64_t>(delay), [&order, delay] { order.push_back(delay); });
  }
  EXPECT_EQ(loop.pending_timers(), 6u);
  ASSERT_TRUE(run_until(loop, [&] { return order.size() == 6; }));
  EXPECT_EQ(order, (std::vector<int>{0, 10, 20, 30, 40, 50}));
  EXPECT_EQ(loop.pending_timers(), 0u);
}

TEST(EventLoop, TimersWithEqualDeadlinesFireInInsertionOrder) {
  EventLoop loop;
  std::vector<int> order;
  // Same delay, added in one go: deadlines are nondecreasing, so insertion order must hold.
  for (int i = 0; i < 20; ++i)
    loop.add_timer(5, [&order, i] { order.push_back(i); });
  ASSERT_TRUE(run_until(loop, [&] { return order.size() == 20; }));
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(order[i], i);
}

TEST(EventLoop, TimerDoesNotFireBeforeItsDelay) {
  EventLoop loop;
  uint64_t start = EventLoop::now_ns();
  uint64_t fired_at = 0;
  loop.add_timer(100, [&] { fired_at = EventLoop::now_ns(); });
  ASSERT_TRUE(run_until(loop, [&] { return fired_at != 0; }));
  EXPECT_GE(fired_at - start, 100 * kMs);
}

TEST(EventLoop, CancelledTimerNeverFires) {
  EventLoop loop;
  bool cancelled_fired = false;
  bool other_fired = false;
  EventLoop::Id id = loop.add_timer(10, [&] { cancelled_fired = true; });
  loop.add_timer(50, [&] { other_fired = true; });
  EXPECT_EQ(loop.pending_timers(), 2u);
  EXPECT_TRUE(loop.cancel_timer(id));
  EXPECT_FALSE(loop.cancel_timer(id));  // no longer pending
  EXPECT_EQ(loop.pending_timers(), 1u);
  ASSERT_TRUE(run_until(loop, [&] { return other_fired; }));
  EXPECT_FALSE(cancelled_fired);
}

TEST(EventLoop, CancelAfterFiringOrOfUnknownIdReturnsFalse) {
  EventLoop loop;
  bool fired = false;
  EventLoop::Id id = loop.add_timer(0, [&] { fired = true; });
  EXPECT_NE(id, 0u);
  ASSERT_TRUE(run_until(loop, [&] { return fired; }));
  EXPECT_FALSE(loop.cancel_timer(id));
  EXPECT_FALSE(loop.cancel_timer(987654321));
}

TEST(EventLoop, TimerCanCancelAnotherDueTimer) {
  EventLoop loop;
  EventLoop::Id second = 0;
  bool second_fired = false;
  bool first_fired = false;
  loop.add_timer(5, [&] {
    first_fired = true;
    EXPECT_TRUE(loop.cancel_timer(second));
  });
  second = loop.add_timer(5, [&] { second_fired = true; });
  bool later = false;
  loop.add_timer(40, [&] { later = true; });
  ASSERT_TRUE(run_until(loop, [&] { return later; }));
  EXPECT_TRUE(first_fired);
  EXPECT_FALSE(second_fired);
}

TEST(EventLoop, TimersAddedFromTimersFire) {
  EventLoop loop;
  int chain = 0;
  std::function<void()> step = [&] {
    ++chain;
    if (chain < 5) loop.add_timer(chain % 2 == 0 ? 0 : 5, step);
  };
  loop.add_timer(1, step);
  ASSERT_TRUE(run_until(loop, [&] { return chain == 5; }));
  EXPECT_EQ(loop.pending_timers(), 0u);
}

TEST(EventLoop, ZeroDelayTimerAddedByTimerWaitsForNextPass) {
  EventLoop loop;
  std::vector<std::string> order;
  loop.add_timer(0, [&] {
    order.push_back("a");
    loop.add_timer(0, [&] { order.push_back("c"); });
    loop.post([&] { order.push_back("b"); });  // posted closures of this pass run first
  });
  ASSERT_TRUE(run_until(loop, [&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(EventLoop, ThousandConcurrentTimersAllFireInDeadlineOrder) {
  EventLoop loop;
  constexpr int kTimers = 1'000;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> delay(0, 200);
  // The loop takes the deadline inside add_timer: it lies within [earliest, latest].
  std::vector<uint64_t> earliest(kTimers), latest(kTimers), fired_at(kTimers, 0);
  std::vector<int> fired;
  std::vector<EventLoop::Id> ids;
  for (int i = 0; i < kTimers; ++i) {
    uint64_t d = static_cast<uint64_t>(delay(rng)) * kMs;
    earliest[i] = EventLoop::now_ns() + d;
    ids.push_back(loop.add_timer(d / kMs, [&fired, &fired_at, i] {
      fired.push_back(i);
      fired_at[i] = EventLoop::now_ns();
    }));
    latest[i] = EventLoop::now_ns() + d;
  }
  for (int i = 0; i < kTimers; i += 10)
    EXPECT_TRUE(loop.cancel_timer(ids[i]));
  EXPECT_EQ(loop.pending_timers(), static_cast<size_t>(kTimers - kTimers / 10));
  ASSERT_TRUE(run_until(loop, [&] { return loop.pending_timers() == 0; }));
  ASSERT_EQ(fired.size(), static_cast<size_t>(kTimers - kTimers / 10));
  for (size_t k = 1; k < fired.size(); ++k) {
    int a = fired[k - 1], b = fired[k];
    EXPECT_LE(earliest[a], latest[b]) << "timer " << a << " fired before " << b;
  }
  for (int i : fired)
    EXPECT_GE(fired_at[i], earliest[i]) << "timer " << i << " fired early";
  for (int i = 0; i < kTimers; i += 10)
    EXPECT_EQ(fired_at[i], 0u) << "cancelled timer " << i << " fired";
}

TEST(EventLoop, ManyCancelledLongTimersDoNotDisturbShortOnes) {
  EventLoop loop;
  for (int i = 0; i < 10'000; ++i) {
    EventLoop::Id id = loop.add_timer(3'600'000, [] { FAIL() << "cancelled timer fired"; });
    ASSERT_TRUE(loop.cancel_timer(id));
  }
  EXPECT_EQ(loop.pending_timers(), 0u);
  bool fired = false;
  loop.add_timer(5, [&] { fired = true; });
  ASSERT_TRUE(run_until(loop, [&] { return fired; }));
}

TEST(EventLoop, StopFromAnotherThreadEndsRun) {
  EventLoop loop;
  bool watchdog = false;
  add_watchdog(loop, &watchdog);
  std::promise<void> running;
  loop.post([&] { running.set_value(); });
  std::thread stopper([&] {
    running.get_future().wait();
    loop.stop();
  });
  loop.run();
  stopper.join();
  EXPECT_FALSE(watchdog);
}

TEST(EventLoop, StopFromInsideAClosureEndsRunAfterTheIteration) {
  EventLoop loop;
  std::vector<int> order;
  loop.post([&] {
    order.push_back(1);
    loop.stop();
  });
  loop.post([&] { order.push_back(2); });  // same batch: still runs
  bool watchdog = false;
  add_watchdog(loop, &watchdog);
  loop.run();
  EXPECT_FALSE(watchdog);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoop, StopBeforeRunMakesRunReturnAndIsConsumed) {
  EventLoop loop;
  loop.stop();
  loop.run();  // returns at once
  // The request was consumed: the next run() needs a new stop().
  bool second_run_stopped = false;
  loop.add_timer(20, [&] {
    second_run_stopped = true;
    loop.stop();
  });
  loop.run();
  EXPECT_TRUE(second_run_stopped);
}

TEST(EventLoop, RunOnceReturnsAfterMaxWaitWhenIdle) {
  EventLoop loop;
  uint64_t start = EventLoop::now_ns();
  loop.run_once(50);
  uint64_t elapsed = EventLoop::now_ns() - start;
  EXPECT_GE(elapsed, 40 * kMs);  // it did wait (poll may round a little)
  EXPECT_LT(elapsed, 5'000 * kMs);
}

TEST(EventLoop, ThrowingClosureIsContainedAndLaterWorkRuns) {
  EventLoop loop;
  bool later = false;
  loop.post([] { throw std::runtime_error("boom"); });
  loop.post([&] { later = true; });
  loop.add_timer(0, [] { throw std::runtime_error("timer boom"); });
  ASSERT_TRUE(run_until(loop, [&] { return later; }));
  bool timer_after = false;
  loop.add_timer(1, [&] { timer_after = true; });
  ASSERT_TRUE(run_until(loop, [&] { return timer_after; }));
}

TEST(EventLoop, DestructionDropsPendingWorkWithoutRunningIt) {
  bool ran = false;
  auto token = std::make_shared<int>(7);
  {
    EventLoop loop;
    loop.post([&ran, token] { ran = true; });
    loop.add_timer(0, [&ran, token] { ran = true; });
    loop.add_timer(100'000, [&ran, token] { ran = true; });
    EXPECT_EQ(token.use_count(), 4);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);  // captures were released
}

// Posts from a destructor that runs while the loop is being destroyed.
struct PostOnDestroy {
  EventLoop* loop;
  bool* post_result;
  ~PostOnDestroy() {
    *post_result = loop->post([] {});
  }
};

TEST(EventLoop, PostIsRefusedOnceTheLoopIsBeingDestroyed) {
  bool post_result = true;
  {
    EventLoop loop;
    auto guard = std::make_shared<PostOnDestroy>(PostOnDestroy{&loop, &post_result});
    loop.add_timer(100'000, [guard] {});
    guard.reset();  // the timer's closure holds the last reference
  }
  EXPECT_FALSE(post_result);
}

TEST(EventLoop, NowIsMonotonic) {
  uint64_t a = EventLoop::now_ns();
  uint64_t b = EventLoop::now_ns();
  EXPECT_LE(a, b);
  EXPECT_GT(a, 0u);
}

}  // namespace
}  // namespace troupe
