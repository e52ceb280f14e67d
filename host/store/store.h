// store.h: durable state of troupe — runs, steps (the journal) and events — in SQLite.
//
// One Store per host process and database file. Writes are queued to one writer thread that
// commits them in batches (group commit); a write's on_durable callback runs on that writer
// thread right after the transaction holding it committed, so the runtime can resume a
// coroutine only once its step is on disk. The queue is bounded in bytes: a producer that
// would pass the bound waits until the writer drained below it. A write that fails (disk full,
// I/O error, read-only file) is counted against its run and reported to the failure listener,
// so the runtime can fail that run; nothing committed earlier is affected. Reads use their own
// connections and never wait for the writer (WAL mode), so they are safe from any thread,
// including other processes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe {

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Run status values: "queued" (waiting for a worker), "running", "waiting" (parked on a durable
// timer, approval or signal; no process holds it), "succeeded", "failed", "cancelled"; and, as
// read, "interrupted": stored as running, but its lease expired (the process driving it died).
//
// Ownership (docs/durability.md): a run is driven by one process at a time, its owner, which
// holds a lease until lease_until_ms and renews it while the run goes on. Each time a process
// takes the run (create_run, claim_run) its epoch grows by one; every write of the run carries
// the epoch of the process that made it, and the store refuses a write whose epoch is not the
// run's current one (fencing): a process that lost its run cannot change its record.
struct RunRecord {
  std::string id;
  std::string workflow;    // the workflow's name (troupe.workflow{name=...})
  std::string source;      // where the script came from: a path, or "<string>"
  std::string input_json;  // JSON
  std::string status;
  std::string output_json;     // JSON, empty until succeeded
  std::string error;           // message with traceback, empty unless failed
  int64_t created_ms = 0;      // unix epoch milliseconds
  int64_t finished_ms = 0;     // 0 while running
  int64_t epoch = 0;           // how many times a process took the run (0 while queued)
  std::string owner;           // the process driving it ("" when none)
  int64_t lease_until_ms = 0;  // the owner's lease ends then unless renewed
  int64_t wake_ms = 0;         // waiting: when a worker should take it (0: on a decision only)
  std::string script_hash;     // SHA-256 (hex) of the script it runs (save_script keeps the text)
  std::string parent_run;      // a fork: the run it was forked from, and the step it reused up to
  std::string parent_step;
  // As read: the sum of its steps' cost_usd (the priced ones), and how many of its model calls
  // had no price (their cost is not known; docs/governance.md).
  double cost_usd = 0;
  int64_t unpriced_steps = 0;
};

// A step is one non-deterministic host call (model call, tool call, sleep, clock read).
// step_key is deterministic: the branch path plus an ordinal, e.g. "3.2/1" (call 1 of
// branch 2 of the parallel started by call 3 of the root). Status: "succeeded", "failed",
// "cancelled".
struct StepRecord {
  std::string run_id;
  std::string step_key;
  std::string kind;   // "chat", "sleep", "now", "tool", ...
  std::string agent;  // agent name, empty when not an agent call
  std::string model;  // "provider/model", empty when not a model call
  std::string request_json;
  std::string response_json;
  std::string status;
  std::string error;
  // A model call's final usage: input includes cached_input and cache_write tokens, output
  // includes reasoning tokens (the normalized usage of sdk/schemas/chat_response.schema.json).
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_input_tokens = 0;
  int64_t reasoning_tokens = 0;
  int64_t cache_write_tokens = 0;
  // A model call's cost in USD from the pricing table (core/pricing.h); nullopt when the step
  // is not a model call or its model has no price (then `unpriced`).
  std::optional<double> cost_usd;
  bool unpriced = false;
  int64_t started_ms = 0;  // unix epoch milliseconds
  int64_t finished_ms = 0;
  int64_t latency_us = 0;  // measured on the monotonic clock
  // What resume checks a served step against: a hash of the request as the script made it.
  std::string request_hash;
  int64_t epoch = 0;  // the epoch of the run that recorded it (set by the store)
  int64_t seq = 0;    // as read: the order the records were written in (a later one is higher)
  int attempts = 1;   // how many times it was tried; this record is the last try's outcome
};

// A failed attempt of a step that was tried again (a retry policy): kept under the step's key
// with its number; the step's own record is the outcome of its last attempt.
struct AttemptRecord {
  std::string run_id;
  std::string step_key;
  int attempt = 1;     // 1 for the first try
  std::string model;   // "provider/model" for a model call (a fallback may change it)
  std::string status;  // the failure's status name: "rate_limited", "timeout", "tool_error", ...
  std::string error;   // the message, redacted
  int64_t retry_after_ms = 0;  // what the server asked to wait (Retry-After), 0 when nothing
  int64_t delay_ms = 0;        // how long the host waited before the next attempt
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int64_t latency_us = 0;
  int64_t epoch = 0;  // set by the store, like a step's
};

// A failed run kept for a person (troupe dlq): re-driven from its journal, or dropped.
struct DeadLetterRecord {
  std::string run_id;
  std::string workflow;  // as read (the run's)
  // "retries_exhausted": it failed with a retryable error its retries did not get past;
  // "failed": any other failure, kept because the policy keeps every failed run.
  std::string reason;
  std::string step_key;  // the step whose error failed the run ("" when none did)
  std::string error;     // the run's error
  int attempts = 0;      // as read: how many times that step was tried
  int64_t dead_ms = 0;
  int64_t epoch = 0;  // the epoch that failed (set by the store)
};

// Events are append-only; seq is assigned by the store, increasing per database.
struct EventRecord {
  int64_t seq = 0;
  std::string run_id;
  int64_t ts_ms = 0;
  std::string type;       // "run.started", "step.started", "step.finished", "log", ...
  std::string step_key;   // may be empty
  std::string data_json;  // JSON object
};

// How the writer's queue is bounded.
struct StoreOptions {
  // Most bytes of writes waiting for the writer (queued, or in the transaction being committed;
  // a write costs the bytes of its fields plus a fixed overhead). A write that would pass it
  // waits until the writer drained below it; a single write larger than the bound goes alone.
  uint64_t max_queued_bytes = 64ull << 20;
};

// What one run's writes cost the store, counted from its create_run() until forget_run().
struct RunWriteStats {
  uint64_t writes = 0;        // writes queued for the run: committed, failed or still waiting
  uint64_t bytes = 0;         // what they cost (as charged to the queue)
  uint64_t queued_bytes = 0;  // of those, the bytes still waiting for their commit
  uint64_t failed = 0;        // writes that could not be committed
  std::string error;          // why the first of them failed: "<path>: <write>: <reason>"
};

// A cancel another process asked for (troupe cancel): the host running the run applies it.
struct CancelRequest {
  std::string run_id;
  std::string reason;
};

// A signal sent to a run (troupe signal RUN NAME --data JSON).
struct SignalRecord {
  int64_t seq = 0;  // assigned by the store, increasing
  std::string run_id;
  std::string name;
  std::string data_json = "null";
  int64_t sent_ms = 0;
};

// An approval a run asked for (troupe.approve), named by the run and the step that waits.
struct ApprovalRecord {
  std::string run_id;
  std::string step_key;
  std::string request_json = "{}";  // title, details, choices, default, timeout, escalate
  int64_t deadline_ms = 0;          // 0: none
  int64_t requested_ms = 0;
  std::string choice;  // "" while pending
  std::string decided_by;
  std::string comment;
  int64_t decided_ms = 0;
  bool defaulted = false;  // the default, applied at the deadline
};

// How claim_run may take a run.
struct ClaimOptions {
  std::string owner;           // who takes it (Store::new_owner_id() for this process)
  int64_t lease_until_ms = 0;  // the lease it gets
  int64_t now_ms = 0;          // what counts as expired or due
  // A waiting run is taken only once due (its wake_ms has passed); with this, at once (an
  // explicit resume).
  bool waiting_early = false;
  bool failed = false;  // a failed run may be taken too (re-driven from a dead letter)
};

struct RunFilter {
  int limit = 50;        // newest first
  std::string status;    // empty = any
  std::string workflow;  // empty = any
};

// Which old runs delete_old_runs() removes (troupe gc), and how it paces itself.
struct GcOptions {
  // Runs that finished before this time (unix epoch milliseconds) go.
  int64_t cutoff_ms = 0;
  // Of "succeeded", "failed", "cancelled"; empty = all three. Runs in any other status
  // ("running", or one a newer build writes) are never deleted.
  std::vector<std::string> statuses;
  // Count what would go, delete nothing.
  bool dry_run = false;
  // What one transaction deletes at most: runs, and steps + events. Each transaction holds the
  // store's write lock, so these bound how long another writer can wait (tests make them small).
  size_t batch_runs = 200;
  size_t batch_rows = 5000;
};

// What delete_old_runs() deleted (or, in a dry run, would delete).
struct GcResult {
  uint64_t runs = 0;
  uint64_t steps = 0;
  uint64_t events = 0;
};

class Store {
 public:
  // Opens (creating folders and the file as needed) and migrates the schema to the newest
  // version. Throws StoreError naming the path and the reason (not a database, newer
  // schema than this build knows, read-only, unwritable, ...).
  static std::unique_ptr<Store> open(const std::string& path, const StoreOptions& options = {});
  // Opens an existing database for reading only; never migrates or writes. Throws when
  // the file is missing.
  static std::unique_ptr<Store> open_readonly(const std::string& path);

  virtual ~Store() = default;  // flushes pending writes

  // --- writes: queued, batched, committed by the writer thread; callable from any thread.
  // Each may wait while the queue is full (never on the writer thread itself).
  // on_durable (optional) runs on the writer thread after the commit; it receives false
  // when the write failed (the error is then in last_error() and in run_writes() of its run,
  // the failure listener heard of it, and the first failure of each run is logged to stderr).
  using Done = std::function<void(bool ok)>;
  virtual void create_run(const RunRecord& run, Done on_durable = {}) = 0;
  virtual void finish_run(const std::string& run_id, const std::string& status,
                          const std::string& output_json, const std::string& error,
                          int64_t finished_ms, Done on_durable = {}) = 0;
  // Renames the run's workflow (runs are created under their file's name; the script's
  // troupe.workflow{name=...} is known only once it ran).
  virtual void set_run_workflow(const std::string& run_id, const std::string& workflow,
                                Done on_durable = {}) = 0;
  // Inserts or replaces the step (run_id, step_key).
  virtual void record_step(const StepRecord& step, Done on_durable = {}) = 0;
  virtual void append_event(const EventRecord& event, Done on_durable = {}) = 0;
  // Asks whichever process runs run_id to cancel it (troupe cancel); replaces an earlier ask.
  virtual void request_cancel(const std::string& run_id, const std::string& reason,
                              int64_t requested_ms, Done on_durable = {}) = 0;
  // Withdraws the ask once it is applied.
  virtual void clear_cancel(const std::string& run_id, Done on_durable = {}) = 0;
  // Extends the owner's lease on a run it drives; fenced like every write of the run.
  virtual void renew_lease(const std::string& run_id, int64_t lease_until_ms,
                           Done on_durable = {}) = 0;
  // Parks a run: it waits for a durable timer, approval or signal, and no process holds it; a
  // worker takes it at wake_ms (0: only when woken by a decision or a signal). Fenced.
  virtual void park_run(const std::string& run_id, int64_t wake_ms, Done on_durable = {}) = 0;
  // Asks for an approval (the run's own process; fenced). A no-op when it was asked already.
  virtual void request_approval(const ApprovalRecord& approval, Done on_durable = {}) = 0;
  // Journals a failed attempt of a step that is tried again. Fenced.
  virtual void record_attempt(const AttemptRecord& attempt, Done on_durable = {}) = 0;
  // Keeps the run as a dead letter (replacing an older one); queued before its finish_run.
  // Fenced: it stands while the run stays failed in this epoch.
  virtual void record_dead_letter(const DeadLetterRecord& dead, Done on_durable = {}) = 0;
  // Keeps a script's text by its hash (a no-op when it is there already).
  virtual void save_script(const std::string& hash, const std::string& text,
                           Done on_durable = {}) = 0;
  // Blocks until everything queued so far is committed.
  virtual void flush() = 0;
  // The last write failure of any run, "" while none failed.
  virtual std::string last_error() const = 0;

  // --- the write queue and its accounting; any thread.
  // Bytes of writes not yet committed (at most the bound, or one write larger than it).
  virtual uint64_t queued_bytes() const = 0;
  // What the run's writes cost so far; zeros for a run not created in this process (or
  // forgotten).
  virtual RunWriteStats run_writes(const std::string& run_id) const = 0;
  // Drops the run's accounting (its writes still queued are still written).
  virtual void forget_run(const std::string& run_id) = 0;
  // Called on the writer thread, before the write's on_durable, for the first failed write of
  // each run (and for every failed write of a run without accounting). It must return quickly
  // and must not call set_failure_listener(). Replacing it waits for a call in progress.
  using FailureListener = std::function<void(const std::string& run_id, const std::string& error)>;
  virtual void set_failure_listener(FailureListener listener) = 0;

  // --- ownership: any thread; synchronous (a transaction of its own, not the write queue).
  // Takes the run for options.owner when nobody may drive it any more: queued, running with an
  // expired lease, waiting and due (or options.waiting_early), failed (options.failed). Its
  // epoch grows by one, its status becomes running with the new lease; it is returned as taken,
  // and the writes of this process for it are fenced with the new epoch from now on. Returns
  // nullopt with *why (running elsewhere until ..., ended, no such run) when it cannot be taken.
  virtual std::optional<RunRecord> claim_run(const std::string& run_id, const ClaimOptions& options,
                                             std::string* why) = 0;

  // Sends a signal (any process): buffered until a wait of the run takes it; a parked run is
  // made due at once, so a worker resumes it. Returns its seq; throws StoreError (no such run).
  virtual int64_t send_signal(const std::string& run_id, const std::string& name,
                              const std::string& data_json, int64_t sent_ms) = 0;
  // Decides a pending approval (any process): the first decision wins. Returns the approval as
  // it stands afterwards (its choice is another one when someone decided first), or nullopt
  // when there is no such approval. A parked run is made due at once.
  virtual std::optional<ApprovalRecord> decide_approval(const std::string& run_id,
                                                        const std::string& step_key,
                                                        const std::string& choice,
                                                        const std::string& decided_by,
                                                        const std::string& comment,
                                                        int64_t decided_ms, bool defaulted) = 0;

  // Drops a run's dead letter (troupe dlq discard; any process). False when it has none.
  virtual bool discard_dead_letter(const std::string& run_id) = 0;

  // --- reads: any thread; see committed data only.
  virtual std::vector<RunRecord> list_runs(const RunFilter& filter) const = 0;
  // Finds a run by its full id or a unique prefix of it. Throws StoreError when the prefix
  // is ambiguous.
  virtual std::optional<RunRecord> get_run(const std::string& id_or_prefix) const = 0;
  virtual std::vector<StepRecord> get_steps(const std::string& run_id) const = 0;
  virtual std::vector<EventRecord> get_events(const std::string& run_id, int64_t after_seq,
                                              int limit) const = 0;
  // Runs a worker could take at now_ms, oldest first: queued, waiting and due, interrupted.
  virtual std::vector<std::string> claimable_runs(int64_t now_ms, int limit) const = 0;
  // The oldest signal `name` of the run after seq `after`, if any.
  virtual std::optional<SignalRecord> next_signal(const std::string& run_id,
                                                  const std::string& name, int64_t after) const = 0;
  virtual std::optional<ApprovalRecord> get_approval(const std::string& run_id,
                                                     const std::string& step_key) const = 0;
  // Approvals not decided yet, oldest first; of one run when run_id is not empty.
  virtual std::vector<ApprovalRecord> pending_approvals(const std::string& run_id,
                                                        int limit) const = 0;
  // The failed attempts of a run's steps, by step (in the order they were written) and number.
  virtual std::vector<AttemptRecord> get_attempts(const std::string& run_id) const = 0;
  // Dead letters whose run is still failed in the epoch that recorded them, newest first.
  virtual std::vector<DeadLetterRecord> dead_letters(int limit) const = 0;
  // The run's dead letter, when it stands.
  virtual std::optional<DeadLetterRecord> get_dead_letter(const std::string& run_id) const = 0;
  // A script saved by save_script, by its hash.
  virtual std::optional<std::string> get_script(const std::string& hash) const = 0;
  // The cancels asked and not yet applied, oldest first.
  virtual std::vector<CancelRequest> cancel_requests() const = 0;

  // --- retention (troupe gc): any thread; blocks until done.
  // Deletes the ended runs that finished before options.cutoff_ms, with their steps, events
  // and cancel requests, oldest first, in short transactions of a few hundred runs on a
  // connection of its own, pausing between them so that writers of this and other processes
  // keep committing. Writes queued in this process before the call are committed first. Safe
  // while other processes write to the store. A dry run only counts (and works on a store
  // opened read-only). Throws StoreError (naming what was deleted before the failure) when a
  // transaction fails, e.g. because another connection held the write lock past the busy
  // timeout; an unknown status in options.statuses is a StoreError before anything is touched.
  virtual GcResult delete_old_runs(const GcOptions& options) = 0;
  virtual int schema_version() const = 0;

  // A name for this process as an owner of runs: host name, pid and a random part.
  static std::string new_owner_id();
  // Whether `owner` (a new_owner_id()) was a process of this host that no longer exists: its
  // runs may be taken over before their leases expire. False whenever in doubt (another host,
  // a process that still exists, even if its pid was reused).
  static bool owner_is_gone(const std::string& owner);
};

}  // namespace troupe
