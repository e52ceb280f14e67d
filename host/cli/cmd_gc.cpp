// cmd_gc.cpp: `troupe gc` — deletes ended runs older than an age, with their steps and events.
//
// The age comes from --older-than, else from the configuration's `retention:`; the store does
// the deleting in short transactions beside whatever else writes to it (store/gc.cpp), so it is
// safe to run while workflows run, from cron or by hand.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "cli/commands.h"
#include "cli/term.h"
#include "config/config.h"
#include "config/retention.h"
#include "store/store.h"

namespace troupe::cli {
namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// "12 runs, 340 steps and 1020 events": the one line a person reads.
std::string counts(const GcResult& r) {
  auto n = [](uint64_t count, const char* one, const char* many) {
    return std::to_string(count) + " " + (count == 1 ? one : many);
  };
  return n(r.runs, "run", "runs") + ", " + n(r.steps, "step", "steps") + " and " +
         n(r.events, "event", "events");
}

}  // namespace

int cmd_gc(const Common& common, const GcArgs& args) {
  GcOptions request;
  std::string path;
  try {
    Config config = config_for(common);
    path = config.store_path;
    request = retention_request(config.retention, args.older_than, args.statuses, args.dry_run,
                                now_ms(), "--older-than");
  } catch (const std::exception& e) {  // ConfigError, or a bad age or status
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }

  GcResult result;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    // Nothing to delete; creating an empty store here would help no one.
    std::fprintf(stderr, "troupe: %s does not exist: no runs to delete\n", path.c_str());
  } else {
    std::unique_ptr<Store> store;
    try {
      // A dry run only reads: it never migrates or creates anything.
      store = args.dry_run ? Store::open_readonly(path) : Store::open(path);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "troupe: %s\n", e.what());
      return kUsage;
    }
    try {
      result = store->delete_old_runs(request);
    } catch (const StoreError& e) {
      // What was deleted before the failure stays deleted; the message says how much.
      std::fprintf(stderr, "troupe: %s\n", e.what());
      return kRunFailed;
    }
  }

  if (common.json) {
    nlohmann::ordered_json out = {{"runs", result.runs},
                                  {"steps", result.steps},
                                  {"events", result.events},
                                  {"dry_run", args.dry_run},
                                  {"cutoff_ms", request.cutoff_ms}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s %s that finished before %s%s\n", args.dry_run ? "would delete" : "deleted",
                counts(result).c_str(), format_time(request.cutoff_ms).c_str(),
                args.dry_run ? " (dry run)" : "");
  }
  return kOk;
}

}  // namespace troupe::cli
