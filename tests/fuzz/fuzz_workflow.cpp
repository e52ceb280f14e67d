// fuzz_workflow.cpp: libFuzzer target for the workflow loader and sandbox: the input is a
// workflow script, compiled and started in one long-lived Host with tight limits (a small
// instruction budget and Lua heap, short call timeouts), its agents answered by the mock
// plugin, no store. A first line "-- input: <json>" gives the run its input (else {}).
//
// Whatever the script does, the run must end as succeeded, failed (with an error message) or
// cancelled; the host must survive it and be left with no active run. A run still going after
// 2 s of wall-clock time is cancelled, and must then end within another 2 s (cancel stops a
// run within 1 s: docs/security.md). No network: every HTTP request (troupe.http) goes to a
// proxy on a closed loopback port, so it fails at once.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "api/host.h"
#include "core/log.h"
#include "loop/event_loop.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_workflow: %s\n", what.c_str());
  std::abort();
}

troupe::Host& host() {
  static troupe::Host* h = [] {
    // libcurl reads these: every request, and every redirect hop, goes to a port nobody
    // listens on (port 9, discard, closed on loopback), instead of the network.
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("https_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTPS_PROXY", "http://127.0.0.1:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    troupe::log::set_sink([](troupe::log::Level, std::string_view, std::string_view) {});
    troupe::Config c = troupe::default_config();
    c.plugin_path = {TROUPE_FUZZ_PLUGIN_DIR};
    c.runtime.durability = troupe::Durability::async;
    c.runtime.limits.max_instructions = 2'000'000;
    c.runtime.limits.max_memory_bytes = 16ull << 20;
    c.runtime.limits.slice_instructions = 100'000;
    c.runtime.limits.call_timeout_ms = 1'000;
    // Failed calls are tried once unless the script asks for a policy: the mock's error models
    // answer with Retry-After 1 s, and default retries would spend the run's 2 s waiting.
    c.runtime.retry.attempts = 1;
    return new troupe::Host(c, /*open_store=*/false);  // lives as long as the process
  }();
  return *h;
}

// "-- input: {...}" on the first line, else "{}".
std::string input_of(std::string_view script) {
  constexpr std::string_view kTag = "-- input: ";
  if (script.substr(0, kTag.size()) != kTag) return "{}";
  std::string_view line = script.substr(kTag.size());
  return std::string(line.substr(0, line.find('\n')));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  troupe::Host& h = host();
  troupe::RunSpec spec;
  spec.source.assign(reinterpret_cast<const char*>(data), size);
  spec.chunk_name = "fuzz.lua";
  spec.input_json = input_of(spec.source);

  bool done = false;
  troupe::RunOutcome outcome;
  std::string id = h.runtime().start(spec, [&](const troupe::RunOutcome& o) {
    outcome = o;
    done = true;
  });
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(2);
  bool cancelled = false;
  while (!done) {
    if (Clock::now() > deadline) {
      if (cancelled) fail("the run did not end within 2 s of its cancel");
      h.runtime().cancel(id, "fuzz: wall-clock limit");
      cancelled = true;
      deadline = Clock::now() + std::chrono::seconds(2);
    }
    h.loop().run_once(50);
  }
  if (outcome.status == "failed") {
    if (outcome.error.empty()) fail("a failed run without an error message");
  } else if (outcome.status != "succeeded" && outcome.status != "cancelled") {
    fail("a run ended as '" + outcome.status + "'");
  }
  if (h.runtime().active_runs() != 0) fail("a run is still active after its end");
  return 0;
}
