// cmd_worker.cpp: `troupe worker` — drives the runs no process drives: queued ones (troupe run
// --detach), interrupted ones (their process died) and parked ones that are due.
//
// The worker polls the store (Store::claimable_runs) and takes each run with Runtime::resume,
// which claims it in one statement: several workers on one store never drive a run twice. A
// worker that stops (SIGINT, SIGTERM) leaves its runs as a crash would: they stay recorded as
// running and another worker takes them over (at once on this machine, else when their leases
// expire) — cancelling them would be wrong, they are not the worker's to end.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "api/host.h"
#include "cli/commands.h"
#include "config/config.h"
#include "loop/event_loop.h"
#include "store/store.h"

namespace troupe::cli {
namespace {

using nlohmann::json;

std::atomic<int> g_stop{0};

void on_stop(int) {
  g_stop.fetch_add(1);
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

int cmd_worker(const Common& common, const WorkerArgs& args) {
  std::unique_ptr<Host> host;
  try {
    host = std::make_unique<Host>(config_for(common));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }
  Store& store = *host->store();
  auto say = [&](const char* event, const std::string& run_id, const std::string& status,
                 const std::string& error) {
    if (common.json) {
      json line = {{"event", event}, {"run_id", run_id}};
      if (!status.empty()) line["status"] = status;
      if (!error.empty()) line["error"] = error;
      std::printf("%s\n", line.dump().c_str());
    } else {
      std::printf("%s %s%s%s\n", event, run_id.c_str(),
                  status.empty() ? "" : (" " + status).c_str(),
                  error.empty() ? "" : (": " + error).c_str());
    }
    std::fflush(stdout);
  };
  std::signal(SIGINT, on_stop);
  std::signal(SIGTERM, on_stop);
  std::set<std::string> active;
  size_t finished = 0;
  int64_t next_poll = 0;
  while (g_stop.load() == 0) {
    int64_t now = now_ms();
    if (now >= next_poll && active.size() < static_cast<size_t>(args.concurrency)) {
      next_poll = now + args.poll_ms;
      std::vector<std::string> ids;
      try {
        ids = store.claimable_runs(now, args.concurrency - static_cast<int>(active.size()));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "troupe: %s\n", e.what());
      }
      for (const std::string& id : ids) {
        if (active.count(id)) continue;
        ResumeSpec spec;
        spec.run_id = id;
        spec.only_due = true;
        std::string error;
        std::string taken = host->runtime().resume(
            spec,
            [&](const RunOutcome& o) {
              active.erase(o.run_id);
              ++finished;
              say("finished", o.run_id, o.status, o.status == "succeeded" ? "" : o.error);
            },
            &error);
        // Another worker took it first: that is the claim doing its job, not an error.
        if (taken.empty()) continue;
        active.insert(taken);
        say("started", taken, "", "");
      }
      if (args.once && ids.empty() && active.empty()) break;
    }
    host->loop().run_once(static_cast<int>(std::min<int64_t>(args.poll_ms, 100)));
    if (args.max_runs > 0 && finished >= static_cast<size_t>(args.max_runs) && active.empty())
      break;
  }
  if (g_stop.load() != 0) {
    // Leave the runs to be taken over: their journal so far is committed, nothing is cancelled.
    std::fprintf(stderr, "troupe: worker stopping; %zu runs left to be taken over\n",
                 active.size());
    store.flush();
    std::fflush(stdout);
    std::_Exit(active.empty() ? kOk : kInterrupted);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  return kOk;
}

}  // namespace troupe::cli
