// durability.cpp: what durability costs (issue 12) — µs per journaled step under
// `durability: sync` and `async` against the same workflow without a store, the time to resume a
// 1,000-step run (every step served from the journal), and the bytes the store keeps per step.
// The mock provider at zero latency makes the steps themselves nearly free, so what is left is
// the engine and the journal; the store is a real SQLite file in a temp folder (WAL, as troupe
// opens it).
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "api/host.h"
#include "store/store.h"

namespace {

namespace fs = std::filesystem;

// N sequential mock calls. history = false: with a history every request would carry all the
// earlier answers, and a step's cost (and its row) would grow with N instead of being one
// step's; the durable_50 e2e workflow does the same for its shared agent.
std::string sequential_workflow(int steps) {
  return R"(
local troupe = require("troupe")
local a = troupe.agent{ name = "a", model = "mock/m", history = false }
return troupe.workflow{ name = "seq", run = function()
  local last
  for i = 1, )" +
         std::to_string(steps) + R"( do last = a:ask("step " .. i) end
  return last
end })";
}

fs::path plugin_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path() / "plugins";
}

// A temp folder per benchmark, removed when done: each benchmark gets a store of its own.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("troupe-bench-durability-" + std::to_string(::getpid()) + "-" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

enum class Journal { none, sync, async };

troupe::Config make_config(const fs::path& dir, Journal journal) {
  troupe::Config config = troupe::default_config();
  config.plugin_path = {plugin_dir().string()};
  config.store_path = (dir / "bench.db").string();
  config.runtime.durability =
      journal == Journal::async ? troupe::Durability::async : troupe::Durability::sync;
  return config;
}

std::string write_script(const fs::path& dir, int steps) {
  fs::path script = dir / "seq.lua";
  std::ofstream(script) << sequential_workflow(steps);
  return script.string();
}

// A connection of the benchmark's own, beside the store's, for what the Store API does not
// offer: making an ended run resumable again and measuring the file.
struct Db {
  sqlite3* db = nullptr;
  explicit Db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      std::string why = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw std::runtime_error(path + ": " + why);
    }
    // The store's writer may be finishing a checkpoint; wait for it rather than fail.
    sqlite3_busy_timeout(db, 5000);
  }
  ~Db() { sqlite3_close(db); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string why = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(sql + ": " + why);
    }
  }
  int64_t int_of(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK)
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db));
    int64_t v = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
    sqlite3_finalize(stmt);
    return v;
  }
  // The main file's size: what a WAL holds is copied back first, so it counts.
  int64_t main_file_bytes() {
    exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return int_of("PRAGMA page_count") * int_of("PRAGMA page_size");
  }
};

// 1. µs per journaled step: a run of 100 sequential mock calls per iteration, without a store
// (the baseline) and with the journal at sync and async durability. Each run's wall time
// includes Host::run_to_completion's final flush, so async's deferred commits are paid for in
// the figure and not left to the next iteration. Runs pile up in the store as iterations go on,
// as they would in a host's store.
constexpr int kSteps = 100;

void run_steps(benchmark::State& state, Journal journal) {
  TempDir dir(journal == Journal::none ? "none" : journal == Journal::sync ? "sync" : "async");
  troupe::RunSpec spec;
  spec.source_path = write_script(dir.path, kSteps);
  {
    troupe::Host host(make_config(dir.path, journal), journal != Journal::none);
    for (auto _ : state) {
      troupe::RunOutcome out = host.run_to_completion(spec);
      if (out.status != "succeeded") {
        state.SkipWithError(("the run " + out.status + ": " + out.error).c_str());
        break;
      }
    }
  }
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kSteps,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Step_NoStore(benchmark::State& s) {
  run_steps(s, Journal::none);
}
void BM_Step_JournalSync(benchmark::State& s) {
  run_steps(s, Journal::sync);
}
void BM_Step_JournalAsync(benchmark::State& s) {
  run_steps(s, Journal::async);
}

// 2 and 3. A 1,000-step run recorded once at sync durability; then the store's bytes per step,
// and the time Runtime::resume (through Host::resume_to_completion) takes to run the script
// again until it ends with all 1,000 steps served from the journal.
//
// How an ended run becomes resumable: claim_run refuses ended runs, and a real interrupted run
// is one stored as running whose owner's lease expired. So before each timed resume the
// benchmark writes exactly that with its own SQLite connection — status 'running',
// lease_until_ms 0 — and resume then claims it as it would claim a crashed process's run. The
// alternative, cancelling a live run once it journaled 1,000 steps, would record the run again
// on every iteration and leave a cancelled final step to tell apart from the served ones.
constexpr int kResumeSteps = 1000;

void BM_Resume1000(benchmark::State& state) {
  TempDir dir("resume");
  troupe::Config config = make_config(dir.path, Journal::sync);
  troupe::RunSpec spec;
  spec.source_path = write_script(dir.path, kResumeSteps);

  // The store's size before the run (schema, empty tables), so the run's growth is its own.
  int64_t empty_bytes = 0;
  { troupe::Host host(config); }
  {
    Db db(config.store_path);
    empty_bytes = db.main_file_bytes();
  }

  troupe::Host host(config);
  troupe::RunOutcome recorded = host.run_to_completion(spec);
  if (recorded.status != "succeeded") {
    state.SkipWithError(("recording the run failed: " + recorded.error).c_str());
    return;
  }
  Db db(config.store_path);
  int64_t steps = db.int_of("SELECT count(*) FROM steps");
  if (steps != kResumeSteps) {
    state.SkipWithError(("the recorded run has " + std::to_string(steps) + " steps").c_str());
    return;
  }
  // Bytes per step, two ways: the main file's growth over the empty store (after a checkpoint;
  // the step rows, their step.started/step.finished events, the run's row, the script kept by
  // hash, and the B-tree pages holding them), and the step rows alone: the bytes of every text
  // column (as a blob, since length() of text counts characters) plus the six integer columns
  // at 8 bytes each (SQLite stores them in 1 to 8, so this rounds up a little).
  const double file_per_step =
      static_cast<double>(db.main_file_bytes() - empty_bytes) / kResumeSteps;
  std::string row_bytes = "8 * 6";
  for (const char* column : {"run_id", "step_key", "kind", "agent", "model", "request", "response",
                             "status", "error", "request_hash"})
    row_bytes += std::string(" + length(CAST(") + column + " AS BLOB))";
  const double rows_per_step =
      static_cast<double>(db.int_of("SELECT sum(" + row_bytes + ") FROM steps")) / kResumeSteps;

  troupe::ResumeSpec resume;
  resume.run_id = recorded.run_id;
  const std::string make_resumable =
      "UPDATE runs SET status = 'running', lease_until_ms = 0 WHERE id = '" + recorded.run_id + "'";
  int64_t last_served = 0;
  for (auto _ : state) {
    db.exec(make_resumable);
    std::optional<int64_t> served;
    auto started = std::chrono::steady_clock::now();
    troupe::RunOutcome out = host.resume_to_completion(resume, [&](const troupe::RunEvent& ev) {
      if (ev.type != "run.finished") return;
      // run.finished carries served_steps once the run was taken over (epoch > 1).
      auto data = nlohmann::json::parse(ev.data_json, nullptr, false);
      if (data.is_object() && data.contains("served_steps") && data["served_steps"].is_number())
        served = data["served_steps"].get<int64_t>();
    });
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
    state.SetIterationTime(elapsed.count());
    last_served = served.value_or(0);
    if (out.status != "succeeded" || served != kResumeSteps) {
      state.SkipWithError(("the resumed run " + out.status + " with " +
                           (served ? std::to_string(*served) : std::string("no")) +
                           " steps served (of " + std::to_string(kResumeSteps) + ")" +
                           (out.error.empty() ? "" : ": " + out.error))
                              .c_str());
      break;
    }
  }
  // What the last resume reported, so the table shows that every step was served.
  state.counters["served_steps"] = static_cast<double>(last_served);
  state.counters["us_per_served_step"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kResumeSteps,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["store_B_per_step"] = file_per_step;
  state.counters["step_row_B_per_step"] = rows_per_step;
}

}  // namespace

// 2 s each rather than the default 0.5 s: a synchronous run of 100 steps takes tens of ms, and
// a handful of iterations on a shared machine is too few; the whole program stays near 15 s.
BENCHMARK(BM_Step_NoStore)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2);
BENCHMARK(BM_Step_JournalSync)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2);
BENCHMARK(BM_Step_JournalAsync)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2);
BENCHMARK(BM_Resume1000)->Unit(benchmark::kMillisecond)->UseManualTime()->MinTime(2);
BENCHMARK_MAIN();
