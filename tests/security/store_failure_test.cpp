// store_failure_test.cpp: class 6 (nothing recorded is lost; failures are loud) and the store
// part of class 3 (the write queue is bounded). The journal lives on a tiny tmpfs that the test
// mounts and fills, or on a read-only bind mount; the real binary and libtroupe's Host must fail
// the run with the store's error (the CLI exits non-zero), keep every row committed before, and
// write again once the disk frees. A workflow flooding the journal is held back by the queue.
// Mounting needs root (or CAP_SYS_ADMIN): where it is refused, the tests skip and say why.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/host.h"
#include "e2e/process.h"
#include "loop/event_loop.h"
#include "store/store.h"
#include "support/test_dir.h"
#include "support/test_paths.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::ProcessOptions;
using test::ProcessResult;
using ::testing::HasSubstr;

// A tmpfs of `bytes` mounted on a fresh folder; unmounted (lazily) when it goes away.
class Tmpfs {
 public:
  Tmpfs(const fs::path& dir, size_t bytes) : dir_(dir) {
    fs::create_directories(dir_);
    std::string options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ = std::strerror(errno);
    } else {
      mounted_ = true;
    }
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

  // Writes a filler file until only about `keep` bytes are free (0: until the disk is full).
  void fill(size_t keep = 0) {
    struct statvfs st {};
    ASSERT_EQ(::statvfs(dir_.c_str(), &st), 0);
    const size_t free_bytes = static_cast<size_t>(st.f_bavail) * st.f_frsize;
    size_t left = free_bytes > keep ? free_bytes - keep : 0;
    int fd = ::open((dir_ / "filler").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    std::vector<char> chunk(64 * 1024, 'f');
    while (keep == 0 || left > 0) {
      size_t n = keep == 0 ? chunk.size() : std::min(left, chunk.size());
      ssize_t wrote = ::write(fd, chunk.data(), n);
      if (wrote <= 0) break;  // ENOSPC: full
      left -= std::min(left, static_cast<size_t>(wrote));
    }
    ::close(fd);
  }
  void free_space() { fs::remove(dir_ / "filler"); }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string error_;
};

// A read-only bind mount of `source` on a fresh folder.
class ReadOnlyView {
 public:
  ReadOnlyView(const fs::path& source, const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir_);
    if (::mount(source.c_str(), dir_.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    mounted_ = true;
    if (::mount(nullptr, dir_.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0)
      error_ = std::strerror(errno);
  }
  ~ReadOnlyView() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool ready() const { return mounted_ && error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string error_;
};

#define SKIP_UNLESS_MOUNTED(m)                                 \
  if (!(m).mounted())                                          \
  GTEST_SKIP() << "cannot mount a tmpfs here (" << (m).error() \
               << "); the store-failure tests need root or CAP_SYS_ADMIN to make a disk fill"

// Many model calls, each journaling a 16 KiB prompt: a few fit on the disk, the rest do not.
const char* kBigSteps = R"(
local troupe = require("troupe")
return troupe.workflow{ name = "wf", durability = DURABILITY, run = function()
  local prompt = string.rep("x", 16384)
  for i = 1, 400 do troupe.agent{ name = "a", model = "mock/m" }:ask(prompt .. i) end
  return "all 400 recorded"
end })";

const char* kOneStep = R"(
local troupe = require("troupe")
return troupe.workflow{ name = "wf", run = function()
  return troupe.agent{ name = "a", model = "mock/m" }:ask("hello")
end })";

class StoreFailureTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("store-failure"); }
  void TearDown() override {
    host_.reset();
    tmpfs_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Tmpfs& tmpfs(size_t bytes = 1 << 20) {
    tmpfs_ = std::make_unique<Tmpfs>(dir_ / "disk", bytes);
    return *tmpfs_;
  }
  std::string store_path() const { return (dir_ / "disk" / "troupe.db").string(); }

  std::string write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::string workflow(const std::string& name, std::string text,
                       const std::string& durability = "sync") {
    size_t at = text.find("DURABILITY");
    if (at != std::string::npos) text.replace(at, 10, "'" + durability + "'");
    fs::create_directories(dir_ / name);
    return write(name + "/wf.lua", text);  // every workflow file is named after its workflow
  }

  // A config whose store is on the tmpfs (or where it would be), every model on the mock, and a
  // small write queue (the binary's runs go through the bound too).
  void write_config() {
    write("troupe.yaml", "store: " + store_path() +
                             "\nproviders: { mock: { plugin: mock } }\ndefault_model: mock/m\n"
                             "limits: { store_queue_mb: 1 }\n");
  }

  // The binary, offline, with that config.
  ProcessResult troupe(const std::vector<std::string>& args) {
    write_config();
    ProcessOptions o;
    o.args = {test::troupe_binary(), "--config", (dir_ / "troupe.yaml").string()};
    o.args.insert(o.args.end(), args.begin(), args.end());
    o.cwd = dir_.string();
    o.env["TROUPE_OFFLINE"] = "1";
    o.env["NO_COLOR"] = "1";
    return test::run_process(o);
  }

  Host& host(Durability durability = Durability::sync, uint64_t queue_bytes = 64ull << 20) {
    Config c = default_config();
    c.store_path = store_path();
    c.plugin_path = {test::plugins_dir()};
    c.runtime.durability = durability;
    c.store_options.max_queued_bytes = queue_bytes;
    host_ = std::make_unique<Host>(c);
    return *host_;
  }

  RunOutcome run(const std::string& path, std::function<void(const RunEvent&)> listener = {}) {
    RunSpec spec;
    spec.source_path = path;
    return host_->run_to_completion(spec, std::move(listener));
  }

  fs::path dir_;
  std::unique_ptr<Tmpfs> tmpfs_;
  std::unique_ptr<Host> host_;
};

json parse(const ProcessResult& r) {
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.describe();
  return j;
}

// Through the binary: the run fails with SQLite's error, the command exits 1, and after the disk
// frees every row committed before is still there and a new run is recorded.
TEST_F(StoreFailureTest, disk_full_under_sync_fails_run_and_cli_exits_nonzero) {
  Tmpfs& disk = tmpfs();
  SKIP_UNLESS_MOUNTED(disk);
  ProcessResult first = troupe({"--json", "run", workflow("one", kOneStep)});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  const std::string first_id = parse(first)["run_id"];

  disk.fill(256 * 1024);  // a few 16 KiB steps still fit
  ProcessResult r = troupe({"--json", "run", workflow("big", kBigSteps, "sync")});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  json out = parse(r);
  EXPECT_EQ(out["status"], "failed") << r.describe();
  EXPECT_THAT(out.value("error", ""), HasSubstr("the journal could not record this run"));
  EXPECT_THAT(out.value("error", ""), HasSubstr("database or disk is full"));
  EXPECT_THAT(r.err, HasSubstr("database or disk is full"));
  const std::string failed_id = out["run_id"];

  disk.free_space();
  ProcessResult show_first = troupe({"--json", "show", first_id});
  ASSERT_EQ(show_first.exit_code, 0) << show_first.describe();
  EXPECT_EQ(parse(show_first)["status"], "succeeded");
  EXPECT_EQ(parse(show_first)["steps"].size(), 1u);
  ProcessResult show_failed = troupe({"--json", "show", failed_id});
  ASSERT_EQ(show_failed.exit_code, 0) << show_failed.describe();
  size_t kept = parse(show_failed)["steps"].size();
  EXPECT_GE(kept, 1u) << "the steps committed before the disk filled are kept";
  EXPECT_LT(kept, 400u) << "the run stopped at the first step that was not recorded";

  ProcessResult again = troupe({"run", workflow("again", kOneStep)});
  EXPECT_EQ(again.exit_code, 0) << again.describe();
}

TEST_F(StoreFailureTest, disk_full_under_async_fails_run_and_cli_exits_nonzero) {
  Tmpfs& disk = tmpfs();
  SKIP_UNLESS_MOUNTED(disk);
  ProcessResult first = troupe({"run", workflow("one", kOneStep)});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  disk.fill(256 * 1024);
  ProcessResult r = troupe({"--json", "run", workflow("big", kBigSteps, "async")});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  json out = parse(r);
  EXPECT_EQ(out["status"], "failed") << r.describe();
  EXPECT_THAT(out.value("error", ""), HasSubstr("database or disk is full"));
  disk.free_space();
  ProcessResult runs = troupe({"--json", "runs"});
  ASSERT_EQ(runs.exit_code, 0) << runs.describe();
  EXPECT_EQ(parse(runs).size(), 2u);
}

// Through the Host (async: records are queued and the workflow goes on): the run fails as soon as
// the writer knows, long before its end; the same Host records the next run once the disk frees.
TEST_F(StoreFailureTest, disk_full_under_async_fails_host_run_before_its_end_and_writer_recovers) {
  Tmpfs& disk = tmpfs();
  SKIP_UNLESS_MOUNTED(disk);
  Host& h = host(Durability::async);
  RunOutcome first = run(workflow("one", kOneStep));
  ASSERT_EQ(first.status, "succeeded") << first.error;
  h.store()->flush();

  disk.fill(256 * 1024);
  int steps_done = 0;
  RunOutcome failed = run(workflow("big", kBigSteps, "async"), [&](const RunEvent& ev) {
    if (ev.type == "step.finished") ++steps_done;
  });
  EXPECT_EQ(failed.status, "failed");
  EXPECT_THAT(failed.error, HasSubstr("the journal could not record this run"));
  EXPECT_THAT(failed.error, HasSubstr("database or disk is full"));
  EXPECT_LT(steps_done, 400) << "the run must stop once a write failed, not at its end";

  disk.free_space();
  RunOutcome again = run(workflow("again", kOneStep));
  EXPECT_EQ(again.status, "succeeded") << again.error;
  h.store()->flush();
  auto rec = h.store()->get_run(first.run_id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, "succeeded");
  EXPECT_EQ(h.store()->get_steps(first.run_id).size(), 1u);
  EXPECT_EQ(h.store()->get_run(again.run_id)->status, "succeeded");
  EXPECT_GE(h.store()->get_steps(failed.run_id).size(), 1u);
}

// The run does nothing but compute: the only write after its start is its final record. That
// record failing must fail the outcome, not vanish behind "succeeded".
TEST_F(StoreFailureTest, final_run_record_that_cannot_commit_fails_the_outcome) {
  Tmpfs& disk = tmpfs();
  SKIP_UNLESS_MOUNTED(disk);
  Host& h = host(Durability::sync);
  std::string path = workflow("wf", R"(
local troupe = require("troupe")
return troupe.workflow{ name = "wf", run = function()
  local x = 0
  for i = 1, 100000 do x = x + i end
  return x
end })");
  RunOutcome out = run(path, [&](const RunEvent& ev) {
    if (ev.type != "run.started") return;
    h.store()->flush();  // the run's row is on disk; nothing of it after this fits
    disk.fill();
  });
  EXPECT_EQ(out.status, "failed");
  EXPECT_THAT(out.error, HasSubstr("finish_run '" + out.run_id + "'"));
  EXPECT_THAT(out.error, HasSubstr("database or disk is full"));
  disk.free_space();
  h.store()->flush();
  auto rec = h.store()->get_run(out.run_id);
  ASSERT_TRUE(rec) << "the row committed before the disk filled is kept";
}

TEST_F(StoreFailureTest, read_only_store_is_refused_by_cli_and_host_before_any_run) {
  Tmpfs& disk = tmpfs();
  SKIP_UNLESS_MOUNTED(disk);
  ProcessResult first = troupe({"run", workflow("one", kOneStep)});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  ReadOnlyView view(dir_ / "disk", dir_ / "ro");
  if (!view.ready()) GTEST_SKIP() << "cannot make a read-only bind mount here: " << view.error();
  const std::string ro_store = (dir_ / "ro" / "troupe.db").string();

  ProcessResult r = troupe({"--store", ro_store, "run", workflow("two", kOneStep)});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_THAT(r.err, HasSubstr(ro_store + ": the store is read-only")) << r.describe();

  Config c = default_config();
  c.store_path = ro_store;
  c.plugin_path = {test::plugins_dir()};
  try {
    Host h(c);
    FAIL() << "a Host on a read-only store must refuse to start";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("the store is read-only"));
  }
}

// The wall clock steps back a day while the run sleeps (libfaketime, driven through a file the
// test rewrites; the monotonic clock is left alone). The run's duration and every step's span
// must still be non-negative: they are measured on the monotonic clock.
TEST_F(StoreFailureTest, wall_clock_jump_back_keeps_durations_non_negative) {
  const std::string faketime = test::find_libfaketime();
  if (faketime.empty()) GTEST_SKIP() << "libfaketime is not installed (Debian: libfaketime)";
  const std::string clock_file = write("clock", "+0\n");
  std::string path = workflow("wf", R"(
local troupe = require("troupe")
return troupe.workflow{ name = "wf", run = function()
  troupe.sleep(1)
  return troupe.agent{ name = "a", model = "mock/m" }:ask("after the jump")
end })");
  write_config();
  ProcessOptions o;
  o.args = {test::troupe_binary(), "--config", (dir_ / "troupe.yaml").string(), "run", path};
  o.cwd = dir_.string();
  o.stderr_is_tty = true;  // live progress: the test sees the sleep start
  o.env = {{"TROUPE_OFFLINE", "1"},
           {"NO_COLOR", "1"},
           {"LD_PRELOAD", faketime},
           {"FAKETIME_TIMESTAMP_FILE", clock_file},
           {"FAKETIME_NO_CACHE", "1"},
           {"FAKETIME_DONT_FAKE_MONOTONIC", "1"},
           {"ASAN_OPTIONS", "verify_asan_link_order=0"}};
  test::Process process(o);
  ASSERT_TRUE(process.wait_for_output("sleep", std::chrono::seconds(30)))
      << "the run did not start";
  write("clock", "-1d\n");
  ProcessResult r = process.wait();
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  ProcessResult runs = troupe({"--json", "runs"});
  ASSERT_EQ(runs.exit_code, 0) << runs.describe();
  ASSERT_EQ(parse(runs).size(), 1u) << runs.out;
  ProcessResult show = troupe({"--json", "show", parse(runs)[0]["id"]});
  ASSERT_EQ(show.exit_code, 0) << show.describe();
  json run = parse(show);
  EXPECT_GE(run["duration_ms"].get<int64_t>(), 900) << show.out;
  EXPECT_GE(run["finished_ms"].get<int64_t>(), run["created_ms"].get<int64_t>()) << show.out;
  ASSERT_EQ(run["steps"].size(), 2u) << show.out;
  for (const auto& step : run["steps"]) {
    EXPECT_GE(step["latency_ms"].get<double>(), 0.0) << step;
    EXPECT_GE(step["finished_ms"].get<int64_t>(), step["started_ms"].get<int64_t>()) << step;
  }
  // The model call started after the jump: its wall-clock start is a day before the run's.
  int64_t chat_started = 0;
  for (const auto& step : run["steps"])
    if (step["kind"] == "chat") chat_started = step["started_ms"];
  EXPECT_LT(chat_started, run["created_ms"].get<int64_t>())
      << "the wall clock did not jump; the test proved nothing";
}

// A workflow looping on troupe.now() and troupe.log() queues a row and an event per turn. With the
// writer held up, the queue must stop at its bound (the loop thread waits) instead of growing.
TEST_F(StoreFailureTest, log_flood_is_bounded_by_write_queue) {
  constexpr uint64_t kBound = 1 << 20;
  constexpr int kTurns = 3000;  // x 4 KiB: twelve times the bound
  Host& h = host(Durability::sync, kBound);
  std::string path = workflow("wf", R"(
local troupe = require("troupe")
return troupe.workflow{ name = "wf", run = function()
  local line = string.rep("l", 4096)
  for i = 1, 3000 do
    troupe.now()
    troupe.log(line .. i)
  end
  return "done"
end })");

  // Hold the writer in a callback until the flood has gone far past the bound (as it would
  // without back-pressure) or, with back-pressure, for a second.
  std::mutex mu;
  std::condition_variable cv;
  int logs_seen = 0;
  bool released = false;
  std::atomic<bool> writer_held{false};
  h.store()->append_event({0, "blocker", 0, "log", "", "{}"}, [&](bool) {
    writer_held = true;
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(1), [&] { return released || logs_seen >= 2000; });
  });
  while (!writer_held)
    std::this_thread::yield();

  uint64_t most_queued = 0;
  RunOutcome out = run(path, [&](const RunEvent& ev) {
    if (ev.type != "log") return;
    most_queued = std::max(most_queued, h.store()->queued_bytes());
    std::lock_guard lock(mu);
    if (++logs_seen >= 2000) cv.notify_all();
  });
  {
    std::lock_guard lock(mu);
    released = true;
  }
  cv.notify_all();
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_LE(most_queued, kBound) << "the write queue grew past its bound";
  h.store()->flush();
  size_t logs = 0;
  for (const auto& ev : h.store()->get_events(out.run_id, 0, 0))
    logs += ev.type == "log";
  EXPECT_EQ(logs, static_cast<size_t>(kTurns)) << "back-pressure must not drop a write";
  EXPECT_EQ(h.store()->get_steps(out.run_id).size(), static_cast<size_t>(kTurns));
}

}  // namespace
}  // namespace troupe
