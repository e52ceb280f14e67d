// cmd_wait.cpp: `troupe status RUN` — where a run is (status, owner, epoch, steps) — and
// `troupe wait RUN` — waits until it ends and prints its result.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/run_json.h"
#include "cli/commands.h"
#include "cli/term.h"
#include "store/store.h"

namespace troupe::cli {
namespace {

using nlohmann::json;

bool ended(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled";
}

}  // namespace

int cmd_status(const Common& common, const std::string& id) {
  auto store = open_store(common);
  if (!store) return kUsage;
  auto run = find_run(*store, id);
  if (!run) return kUsage;
  size_t steps = store->get_steps(run->id).size();
  if (common.json) {
    json out = run_json(*run);
    out["steps"] = steps;
    std::printf("%s\n", out.dump(2).c_str());
    return kOk;
  }
  std::string where;
  if (run->status == "running") where = " in " + run->owner;
  if (run->status == "waiting" && run->wake_ms > 0) where = " until " + format_time(run->wake_ms);
  if (run->status == "interrupted") where = " (its process stopped: troupe resume " + run->id + ")";
  std::printf("%s %s%s · %zu steps · epoch %lld\n", run->id.c_str(), run->status.c_str(),
              where.c_str(), steps, static_cast<long long>(run->epoch));
  return kOk;
}

int cmd_wait(const Common& common, const WaitArgs& args) {
  auto store = open_store(common);
  if (!store) return kUsage;
  auto run = find_run(*store, args.run_id);
  if (!run) return kUsage;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(args.timeout_s);
  while (!ended(run->status)) {
    if (args.timeout_s > 0 && std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "troupe: run %s is still %s after %d s\n", run->id.c_str(),
                   run->status.c_str(), args.timeout_s);
      return kRunFailed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    run = store->get_run(run->id);
    if (!run) return kUsage;
  }
  bool ok = run->status == "succeeded";
  if (common.json) {
    std::printf("%s\n", run_json(*run).dump(2).c_str());
  } else if (ok) {
    json value = stored_json(run->output_json);
    std::printf("%s\n",
                value.is_string() ? value.get<std::string>().c_str() : value.dump(2).c_str());
  } else {
    std::fprintf(stderr, "run %s %s: %s\n", run->id.c_str(), run->status.c_str(),
                 run->error.c_str());
  }
  return ok ? kOk : kRunFailed;
}

}  // namespace troupe::cli
