// engine_overhead.cpp: µs per workflow run for a 3-step chain and a 5-way fan-out + join, with
// the mock provider at zero latency — the engine's own cost, no I/O (the shapes NeoGraph and
// LangGraph publish). Variants: without a store, and with the SQLite journal (sync durability).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "api/host.h"
#include "loop/event_loop.h"
#include "store/store.h"

namespace {

namespace fs = std::filesystem;

const char* kChain = R"(
local troupe = require("troupe")
local a = troupe.agent{ name = "a", model = "mock/m" }
return troupe.workflow{ name = "chain", run = function()
  local x = a:ask("one")
  x = a:ask("two")
  return a:ask("three")
end })";

const char* kFanout = R"(
local troupe = require("troupe")
local a = troupe.agent{ name = "a", model = "mock/m" }
return troupe.workflow{ name = "fanout", run = function()
  local function ask() return a:ask("branch") end
  local r1, r2, r3, r4, r5 = troupe.parallel(ask, ask, ask, ask, ask)
  return a:ask("join")
end })";

fs::path plugin_dir() { return fs::read_symlink("/proc/self/exe").parent_path() / "plugins"; }

void run_workflow(benchmark::State& state, const char* source, int steps, bool journal) {
  fs::path dir = fs::temp_directory_path() / ("troupe-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path script = dir / "wf.lua";
  std::ofstream(script) << source;
  troupe::Config config = troupe::default_config();
  config.plugin_path = {plugin_dir().string()};
  config.store_path = (dir / "bench.db").string();
  config.runtime.durability = troupe::Durability::sync;
  {
    troupe::Host host(config, journal);
    troupe::RunSpec spec;
    spec.source_path = script.string();
    for (auto _ : state) {
      troupe::RunOutcome out = host.run_to_completion(spec);
      if (out.status != "succeeded") {
        state.SkipWithError(out.error.c_str());
        break;
      }
    }
    state.counters["us_per_run"] = benchmark::Counter(
        static_cast<double>(state.iterations()), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["us_per_step"] = benchmark::Counter(
        static_cast<double>(state.iterations()) * steps,
        benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  }
  fs::remove_all(dir);
}

void BM_Chain3_NoStore(benchmark::State& s) { run_workflow(s, kChain, 3, false); }
void BM_Chain3_Journal(benchmark::State& s) { run_workflow(s, kChain, 3, true); }
void BM_Fanout5_NoStore(benchmark::State& s) { run_workflow(s, kFanout, 6, false); }
void BM_Fanout5_Journal(benchmark::State& s) { run_workflow(s, kFanout, 6, true); }

}  // namespace

BENCHMARK(BM_Chain3_NoStore)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Fanout5_NoStore)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Chain3_Journal)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Fanout5_Journal)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_MAIN();
