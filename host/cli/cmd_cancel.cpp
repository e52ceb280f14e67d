// cmd_cancel.cpp: `troupe cancel RUN` — asks the process running a run to cancel it.
//
// The request goes through the store (a row in cancel_requests): the host running the run polls
// for it (Core::watch_store_cancels, every 250 ms while it has live runs) and cancels the run,
// which stops at its next count hook even while it computes. Without --no-wait the command
// waits until the run is recorded as ended.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.h"
#include "store/store.h"

namespace troupe::cli {

int cmd_cancel(const Common& common, const CancelArgs& args) {
  using namespace std::chrono;
  std::unique_ptr<Store> store;
  std::optional<RunRecord> run;
  try {
    store = Store::open(store_path_for(common));
    run = store->get_run(args.run_id);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }
  if (!run) {
    std::fprintf(stderr, "troupe: no run with id '%s'\n", args.run_id.c_str());
    return kUsage;
  }
  auto report = [&](const RunRecord& r, bool requested) {
    if (common.json) {
      std::printf("%s\n",
                  nlohmann::json{{"id", r.id}, {"status", r.status}, {"requested", requested}}
                      .dump()
                      .c_str());
    } else if (requested && r.status == "running") {
      std::printf("cancel requested for run %s\n", r.id.c_str());
    } else {
      std::printf("run %s: %s\n", r.id.c_str(), r.status.c_str());
    }
  };
  if (run->status != "running") {
    std::fprintf(stderr, "troupe: run %s is not running (%s)\n", run->id.c_str(),
                 run->status.c_str());
    report(*run, false);
    return kRunFailed;
  }
  int64_t now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  store->request_cancel(run->id, args.reason, now);
  store->flush();
  if (std::string error = store->last_error(); !error.empty()) {
    std::fprintf(stderr, "troupe: cannot record the cancel request: %s\n", error.c_str());
    return kRunFailed;
  }
  if (!args.wait) {
    report(*run, true);
    return kOk;
  }
  // The host applies it within its next poll; a run no process serves stays "running".
  auto deadline = steady_clock::now() + seconds(args.wait_s);
  while (steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
    auto now_run = store->get_run(run->id);
    if (now_run && now_run->status != "running") {
      report(*now_run, true);
      return now_run->status == "cancelled" ? kOk : kRunFailed;
    }
  }
  std::fprintf(stderr,
               "troupe: run %s is still running after %d s: no process may be serving it (the "
               "request stays until one does)\n",
               run->id.c_str(), args.wait_s);
  report(*run, true);
  return kRunFailed;
}

}  // namespace troupe::cli
