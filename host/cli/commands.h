// commands.h: the troupe subcommands and their options (parsed in main.cpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "store/store.h"

namespace troupe::cli {

// Exit codes, documented in the README.
enum Exit : int {
  kOk = 0,
  kRunFailed = 1,  // the workflow failed or was cancelled; troupe gc could not finish
  kUsage = 2,      // bad arguments, config, input, workflow file, unknown run
  kInternal = 70,  // a bug: an unexpected error escaped a command (sysexits' EX_SOFTWARE)
  kInterrupted = 130,
};

struct Common {
  std::string config_path;  // --config
  std::string store_path;   // --store (overrides the config's)
  bool json = false;        // --json
};

struct RunArgs {
  std::string workflow;
  std::string input;  // JSON text or @file
  bool quiet = false;
  std::string resume_id;       // troupe resume: the run to take over (workflow and input unused)
  bool allow_changed = false;  // troupe resume --allow-changed
  bool detach = false;         // troupe run --detach: queue it for a worker, print its id
  std::string fork_id;         // troupe fork RUN --from STEP [--input]
  std::string from_step;
  std::string replay_id;  // troupe replay RUN [--script FILE]
  std::string script;
  bool retry_failed = false;  // troupe dlq replay RUN: a resume that tries failed steps again
};

struct WorkerArgs {
  int concurrency = 16;  // runs driven at once
  int poll_ms = 500;     // how often the store is asked for runs to take
  bool once = false;     // exit when nothing is left to take and every run taken has ended
  int max_runs = 0;      // exit after this many runs ended (0: never)
};

struct SignalArgs {
  std::string run_id;
  std::string name;
  std::string data;  // JSON text or @file; empty: null
};

struct ApproveArgs {
  std::string run_id;
  std::string key;  // the approval's step key; empty: the run's only pending one
  std::string choice;
  std::string comment;
  std::string by;  // empty: $USER
};

struct WaitArgs {
  std::string run_id;
  int timeout_s = 0;  // 0: no limit
};

struct ListArgs {
  int limit = 20;
  std::string status;
  std::string workflow;
};

struct CancelArgs {
  std::string run_id;
  std::string reason = "cancelled with troupe cancel";
  bool wait = true;  // until the run is recorded as ended
  int wait_s = 10;
};

struct GcArgs {
  // "30d", "12h", ...; none: the config's retention.older_than.
  std::optional<std::string> older_than;
  // Empty: the config's retention.status, else every ended status.
  std::vector<std::string> statuses;
  bool dry_run = false;
};

int cmd_run(const Common& common, const RunArgs& args);
int cmd_cancel(const Common& common, const CancelArgs& args);
int cmd_worker(const Common& common, const WorkerArgs& args);
int cmd_status(const Common& common, const std::string& run_id);
int cmd_wait(const Common& common, const WaitArgs& args);
int cmd_signal(const Common& common, const SignalArgs& args);
int cmd_approvals(const Common& common, const std::string& run_id);
int cmd_approve(const Common& common, const ApproveArgs& args);
int cmd_gc(const Common& common, const GcArgs& args);
int cmd_dlq_list(const Common& common, int limit);
int cmd_dlq_show(const Common& common, const std::string& run_id);
int cmd_dlq_discard(const Common& common, const std::string& run_id);
int cmd_runs(const Common& common, const ListArgs& args);
int cmd_show(const Common& common, const std::string& run_id);
int cmd_events(const Common& common, const std::string& run_id, bool follow);
int cmd_plugins(const Common& common);
int cmd_version(const Common& common);

// The configuration a command runs with: --config (or the search order), --store over its store.
// Throws ConfigError. (cmd_inspect.cpp)
Config config_for(const Common& common);
// The store path the inspection commands read: --store, else the config's.
std::string store_path_for(const Common& common);
// That store, read-only; prints why not (and a hint) and returns null. (cmd_inspect.cpp)
std::unique_ptr<Store> open_store(const Common& common);
// Resolves a run id or prefix; prints the reason and returns nullopt when it fails.
std::optional<RunRecord> find_run(const Store& store, const std::string& id);

}  // namespace troupe::cli
