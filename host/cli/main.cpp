// main.cpp: the troupe command line — parses arguments and dispatches to a subcommand.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace troupe::cli;
  CLI::App app{"troupe: run multi-agent workflows written in Lua, against LLM provider plugins.",
               "troupe"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  Common common;
  app.add_option("--config", common.config_path,
                 "Configuration file (default: $TROUPE_CONFIG, ./troupe.yaml, ./troupe.json)");
  app.add_option("--store", common.store_path, "SQLite store (default: .troupe/troupe.db)");
  app.add_flag("--json", common.json, "Machine-readable JSON output");

  RunArgs run_args;
  auto* run = app.add_subcommand("run", "Run a workflow script and print its result");
  run->add_option("workflow", run_args.workflow, "The workflow's Lua file")->required();
  run->add_option("-i,--input", run_args.input, "Input as JSON text, or @file.json");
  run->add_flag("-q,--quiet", run_args.quiet, "No progress or log lines, only the result");
  run->add_flag("-d,--detach", run_args.detach,
                "Queue the run for a worker (troupe worker) and print its id at once");

  std::string run_id;  // status, show, events
  WorkerArgs worker_args;
  auto* worker = app.add_subcommand(
      "worker", "Drive queued, interrupted and due runs of the store until stopped");
  worker->add_option("--concurrency", worker_args.concurrency, "Runs driven at once")
      ->check(CLI::Range(1, 10000));
  worker->add_option("--poll-ms", worker_args.poll_ms, "How often to look for runs to take")
      ->check(CLI::Range(10, 3'600'000));
  worker->add_flag("--once", worker_args.once,
                   "Exit once nothing is left to take and every run taken has ended");
  worker->add_option("--max-runs", worker_args.max_runs, "Exit after this many runs ended")
      ->check(CLI::NonNegativeNumber);

  auto* status = app.add_subcommand("status", "Where a run is: status, owner, epoch, steps");
  status->add_option("run", run_id, "Run id (or a unique prefix of it)")->required();
  WaitArgs wait_args;
  auto* wait = app.add_subcommand("wait", "Wait until a run ends, then print its result");
  wait->add_option("run", wait_args.run_id, "Run id (or a unique prefix of it)")->required();
  wait->add_option("--timeout", wait_args.timeout_s, "Give up after this many seconds (exit 1)")
      ->check(CLI::NonNegativeNumber);

  SignalArgs signal_args;
  auto* signal = app.add_subcommand("signal", "Send a signal to a run (troupe.wait_signal)");
  signal->add_option("run", signal_args.run_id, "Run id (or a unique prefix of it)")->required();
  signal->add_option("name", signal_args.name, "The signal's name")->required();
  signal->add_option("--data", signal_args.data, "Its data: JSON text, or @file.json");
  std::string approvals_run;
  auto* approvals = app.add_subcommand("approvals", "List pending approvals (troupe.approve)");
  approvals->add_option("run", approvals_run, "Only this run's");
  ApproveArgs approve_args;
  auto* approve = app.add_subcommand("approve", "Decide a pending approval of a run");
  approve->add_option("run", approve_args.run_id, "Run id (or a unique prefix of it)")->required();
  approve->add_option("key", approve_args.key, "The approval's key (default: the only one)");
  approve->add_option("--choice", approve_args.choice, "One of its choices")->required();
  approve->add_option("--comment", approve_args.comment, "Recorded with the decision");
  approve->add_option("--by", approve_args.by, "Who decides (default: $USER)");

  auto* fork = app.add_subcommand(
      "fork", "Start a new run that reuses a run's journal up to a step and runs live from there");
  fork->add_option("run", run_args.fork_id, "Run id (or a unique prefix of it)")->required();
  fork->add_option("--from", run_args.from_step, "The last step reused (its key)")->required();
  fork->add_option("-i,--input", run_args.input, "Another input: JSON text, or @file.json");
  fork->add_flag("-q,--quiet", run_args.quiet, "No progress or log lines, only the result");
  auto* replay = app.add_subcommand(
      "replay", "Re-execute a recorded run offline against its journal; report any divergence");
  replay->add_option("run", run_args.replay_id, "Run id (or a unique prefix of it)")->required();
  replay->add_option("--script", run_args.script, "An edited script to check against it");
  replay->add_flag("-q,--quiet", run_args.quiet, "No progress or log lines, only the result");

  auto* resume = app.add_subcommand(
      "resume", "Take over an interrupted run: re-run its script, serving finished steps");
  resume->add_option("run", run_args.resume_id, "Run id (or a unique prefix of it)")->required();
  resume->add_flag("--allow-changed", run_args.allow_changed,
                   "Run the script even if it changed since the run started (each served step "
                   "is still checked against the call the script makes)");
  resume->add_flag("-q,--quiet", run_args.quiet, "No progress or log lines, only the result");

  ListArgs list_args;
  auto* runs = app.add_subcommand("runs", "List recent runs, newest first");
  runs->add_option("-n,--limit", list_args.limit, "How many")->check(CLI::PositiveNumber);
  runs->add_option("--status", list_args.status, "Only runs with this status")
      ->check(CLI::IsMember({"running", "succeeded", "failed", "cancelled"}));
  runs->add_option("--workflow", list_args.workflow, "Only runs of this workflow");

  auto* show = app.add_subcommand("show", "Show a run: its steps, tokens, durations and output");
  show->add_option("run", run_id, "Run id (or a unique prefix of it)")->required();

  bool follow = false;
  auto* events = app.add_subcommand("events", "Print the events of a run");
  events->add_option("run", run_id, "Run id (or a unique prefix of it)")->required();
  events->add_flag("-f,--follow", follow, "Keep printing new events until the run ends");

  CancelArgs cancel_args;
  bool no_wait = false;
  auto* cancel =
      app.add_subcommand("cancel", "Cancel a running run (in whichever process runs it)");
  cancel->add_option("run", cancel_args.run_id, "Run id (or a unique prefix of it)")->required();
  cancel->add_option("--reason", cancel_args.reason, "Recorded as the run's error");
  cancel->add_flag("--no-wait", no_wait, "Return once the request is recorded");
  cancel->add_option("--wait-s", cancel_args.wait_s, "How long to wait for the run to end")
      ->check(CLI::PositiveNumber);

  GcArgs gc_args;
  std::string older_than;
  auto* gc = app.add_subcommand(
      "gc", "Delete ended runs that finished longer ago than an age, with their steps and events");
  gc->add_option("--older-than", older_than,
                 "Age: 30d, 12h, 90m or 45s (default: the config's retention.older_than)");
  gc->add_option("--status", gc_args.statuses,
                 "Only runs with this status: succeeded, failed or cancelled (repeatable; "
                 "default: the config's retention.status, else all three)");
  gc->add_flag("--dry-run", gc_args.dry_run, "Count what would be deleted; delete nothing");

  auto* dlq = app.add_subcommand("dlq", "Dead letters: failed runs kept to re-drive or drop");
  dlq->require_subcommand(1);
  int dlq_limit = 100;
  auto* dlq_list = dlq->add_subcommand("list", "List the dead letters, newest first");
  dlq_list->add_option("-n,--limit", dlq_limit, "How many")->check(CLI::PositiveNumber);
  auto* dlq_show = dlq->add_subcommand("show", "Show a dead letter: its error and attempts");
  dlq_show->add_option("run", run_id, "Run id (or a unique prefix of it)")->required();
  auto* dlq_replay = dlq->add_subcommand(
      "replay",
      "Re-drive a dead letter from its journal: finished steps served, failed ones "
      "tried again");
  dlq_replay->add_option("run", run_args.resume_id, "Run id (or a unique prefix of it)")
      ->required();
  dlq_replay->add_flag("--allow-changed", run_args.allow_changed,
                       "Run the script even if it changed since the run started");
  dlq_replay->add_flag("-q,--quiet", run_args.quiet, "No progress or log lines, only the result");
  auto* dlq_discard = dlq->add_subcommand("discard", "Drop a dead letter (the run stays)");
  dlq_discard->add_option("run", run_id, "Run id (or a unique prefix of it)")->required();

  auto* plugins = app.add_subcommand("plugins", "List the plugins on the search path");
  auto* version = app.add_subcommand("version", "Print versions of troupe and what it is built on");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kOk : kUsage;
  }
  // Each command reports the errors it expects (usage, configuration, input: kUsage); anything
  // else that escapes is a bug, reported as one instead of an abort.
  try {
    if (*dlq_replay) run_args.retry_failed = true;
    if (*run || *resume || *fork || *replay || *dlq_replay) return cmd_run(common, run_args);
    if (*dlq_list) return cmd_dlq_list(common, dlq_limit);
    if (*dlq_show) return cmd_dlq_show(common, run_id);
    if (*dlq_discard) return cmd_dlq_discard(common, run_id);
    if (*worker) return cmd_worker(common, worker_args);
    if (*signal) return cmd_signal(common, signal_args);
    if (*approvals) return cmd_approvals(common, approvals_run);
    if (*approve) return cmd_approve(common, approve_args);
    if (*status) return cmd_status(common, run_id);
    if (*wait) return cmd_wait(common, wait_args);
    if (*runs) return cmd_runs(common, list_args);
    if (*show) return cmd_show(common, run_id);
    if (*cancel) {
      cancel_args.wait = !no_wait;
      return cmd_cancel(common, cancel_args);
    }
    if (*events) return cmd_events(common, run_id, follow);
    if (*gc) {
      if (gc->count("--older-than") > 0) gc_args.older_than = older_than;  // even "": refused
      return cmd_gc(common, gc_args);
    }
    if (*plugins) return cmd_plugins(common);
    if (*version) return cmd_version(common);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: internal error: %s\n", e.what());
    return kInternal;
  }
  return kUsage;
}
