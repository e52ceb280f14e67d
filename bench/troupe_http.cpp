// troupe_http.cpp: troupe's side of the HTTP workloads (W1–W3) and the suspended-run memory
// figure — the same host, openai plugin and Lua runtime a user gets, driven through libtroupe.
//
//   bench_troupe_http W1|W2|W3 <base_url> [--journal <db>]   one JSON result line on stdout
//   bench_troupe_http suspended <runs>                        RSS per run waiting on a timer
//
// base_url is what the openai plugin's base_url setting takes (".../v1"). Without --journal
// the host has no store (the engine and the HTTP path alone); with it every step is journaled
// at durability sync, committed before the workflow goes on. Output fields match
// raw_curl.c and langgraph/bench.mjs so bench/report.py can line them up.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/host.h"
#include "core/log.h"
#include "loop/event_loop.h"

namespace {

namespace fs = std::filesystem;
using troupe::EventLoop;

// The workflows: the same shapes the curl and LangGraph clients run. history = false keeps
// every request one user message, as theirs are.
const char* kChain = R"(
local troupe = require("troupe")
local a = troupe.agent{ name = "a", model = "openai/bench-model", history = false }
return troupe.workflow{ name = "w1_chain", run = function()
  local last
  for i = 1, 10 do last = a:ask("step " .. i) end
  return last
end })";

const char* kFanout = R"(
local troupe = require("troupe")
local a = troupe.agent{ name = "a", model = "openai/bench-model", history = false }
return troupe.workflow{ name = "w2_fanout", run = function()
  local answers = troupe.map({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, function(i)
    return a:ask("branch " .. i)
  end)
  return a:ask("join " .. #answers)
end })";

const char* kSingle = R"(
local troupe = require("troupe")
local a = troupe.agent{ name = "a", model = "openai/bench-model", history = false }
return troupe.workflow{ name = "w3_single", run = function() return a:ask("one call") end })";

const char* kSleeper = R"(
local troupe = require("troupe")
return troupe.workflow{ name = "sleeper", run = function()
  troupe.sleep(3600)
  return "woke"
end })";

struct Workload {
  const char* script;
  int workflows;
  int calls_per_workflow;
  bool concurrent;
};

double ms_since(uint64_t t0) {
  return static_cast<double>(EventLoop::now_ns() - t0) / 1e6;
}

double cpu_ms() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

long peak_rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

long current_rss_kb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

fs::path plugin_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path() / "plugins";
}

fs::path write_script(const fs::path& dir, const char* source) {
  fs::path script = dir / "workflow.lua";
  std::ofstream(script) << source;
  return script;
}

troupe::Config bench_config(const std::string& base_url, const std::string& db) {
  troupe::Config config = troupe::default_config();
  config.plugin_path = {plugin_dir().string()};
  troupe::ProviderConfig openai;
  openai.name = "openai";
  openai.plugin = "openai";
  openai.settings_json = nlohmann::json{{"base_url", base_url}}.dump();
  openai.secret_env["api_key"] = "TROUPE_BENCH_API_KEY";
  config.providers["openai"] = openai;
  config.store_path = db;
  config.runtime.durability = troupe::Durability::sync;
  return config;
}

int run_http(const std::string& name, const std::string& base_url, const std::string& db) {
  Workload w{};
  if (name == "W1") w = {kChain, 200, 10, false};
  if (name == "W2") w = {kFanout, 1000, 11, true};
  if (name == "W3") w = {kSingle, 10000, 1, true};
  if (w.script == nullptr) {
    std::fprintf(stderr, "unknown workload %s (W1, W2, W3)\n", name.c_str());
    return 2;
  }
  setenv("TROUPE_BENCH_API_KEY", "sk-bench-not-a-real-key", 1);
  fs::path dir = fs::temp_directory_path() / ("troupe-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  troupe::RunSpec spec;
  spec.source_path = write_script(dir, w.script).string();

  int failures = 0, done = 0;
  std::vector<double> latencies;
  double wall = 0;
  {
    troupe::Host host(bench_config(base_url, db), !db.empty());
    // One warm-up run outside the figures: loads the plugin and compiles the script, as a
    // long-lived host would have done long before.
    troupe::RunSpec warm = spec;
    warm.source = kSingle;
    warm.source_path.clear();
    if (host.run_to_completion(warm).status != "succeeded") {
      std::fprintf(stderr, "the warm-up call to %s failed\n", base_url.c_str());
      return 1;
    }
    uint64_t t0 = EventLoop::now_ns();
    auto on_done = [&](uint64_t started) {
      return [&, started](const troupe::RunOutcome& out) {
        if (out.status != "succeeded") {
          if (++failures <= 3) std::fprintf(stderr, "run failed: %s\n", out.error.c_str());
        }
        latencies.push_back(ms_since(started));
        ++done;
      };
    };
    if (w.concurrent) {
      for (int i = 0; i < w.workflows; ++i)
        host.runtime().start(spec, on_done(EventLoop::now_ns()));
      while (done < w.workflows)
        host.loop().run_once(1000);
    } else {
      for (int i = 0; i < w.workflows; ++i) {
        uint64_t started = EventLoop::now_ns();
        troupe::RunOutcome out = host.run_to_completion(spec);
        on_done(started)(out);
      }
    }
    wall = ms_since(t0);
  }
  fs::remove_all(dir);
  double calls = static_cast<double>(w.workflows) * w.calls_per_workflow;
  nlohmann::json result = {{"impl", db.empty() ? "troupe" : "troupe-journal"},
                           {"workload", name},
                           {"workflows", w.workflows},
                           {"calls", static_cast<int64_t>(calls)},
                           {"failures", failures},
                           {"wall_ms", wall},
                           {"cpu_ms", cpu_ms()},
                           {"peak_rss_kb", peak_rss_kb()},
                           {"p50_ms", percentile(latencies, 0.50)},
                           {"p99_ms", percentile(latencies, 0.99)},
                           {"per_step_us", wall * 1000 / calls}};
  std::printf("%s\n", result.dump().c_str());
  return 0;
}

// RSS growth with `runs` runs suspended in troupe.sleep, per run. The host is warmed up by one
// finished run first, so the figure is what each additional waiting run costs.
int run_suspended(int runs) {
  fs::path dir = fs::temp_directory_path() / ("troupe-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  troupe::RunSpec spec;
  spec.source_path = write_script(dir, kSleeper).string();
  troupe::Config config = troupe::default_config();
  config.plugin_path = {plugin_dir().string()};
  long before = 0, after = 0;
  size_t timers = 0;
  {
    troupe::Host host(config, false);
    troupe::RunSpec warm;
    warm.source = kSingle;  // a mock call: loads the library and the plugin
    if (host.run_to_completion(warm).status != "succeeded") {
      std::fprintf(stderr, "the warm-up run failed\n");
      return 1;
    }
    before = current_rss_kb();
    for (int i = 0; i < runs; ++i)
      host.runtime().start(spec, [](const troupe::RunOutcome&) {});
    while (host.loop().pending_timers() < static_cast<size_t>(runs))
      host.loop().run_once(0);
    after = current_rss_kb();
    timers = host.loop().pending_timers();
  }
  fs::remove_all(dir);
  double per_run = static_cast<double>(after - before) * 1024 / runs;
  nlohmann::json result = {{"impl", "troupe"},        {"workload", "suspended"},
                           {"workflows", runs},       {"waiting", timers},
                           {"rss_before_kb", before}, {"rss_after_kb", after},
                           {"bytes_per_run", per_run}};
  std::printf("%s\n", result.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  raise_fd_limit();
  troupe::log::set_min_level(troupe::log::Level::error);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "suspended") return run_suspended(std::atoi(args[1].c_str()));
  if (args.size() == 2) return run_http(args[0], args[1], "");
  if (args.size() == 4 && args[2] == "--journal") return run_http(args[0], args[1], args[3]);
  std::fprintf(stderr,
               "usage: bench_troupe_http W1|W2|W3 <base_url> [--journal <db>]\n"
               "       bench_troupe_http suspended <runs>\n");
  return 2;
}
