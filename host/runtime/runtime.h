// runtime.h: the Lua workflow runtime — runs as coroutines on the host's event loop.
//
// One Runtime owns one lua_State shared by all of its runs. Each run is a coroutine with a
// sandboxed _ENV; troupe.parallel/map branches are child coroutines with deterministic
// step keys. A host call made from Lua (a model call, a sleep) starts async work and yields
// its coroutine; the completion is journaled as a step and then resumes it. Everything here
// runs on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/pricing.h"
#include "core/retry_policy.h"
#include "loop/http_policy.h"

namespace troupe {

class EventLoop;
class Store;
class PluginInstance;
namespace rt {
class Core;
}

// Resolves the provider part of "provider/model" to a live plugin instance.
class ProviderResolver {
 public:
  virtual ~ProviderResolver() = default;
  // Returns null with *error set (naming the provider and what is configured) when unknown.
  virtual std::shared_ptr<PluginInstance> provider(const std::string& name, std::string* error) = 0;
};

// Per-run limits. A run over any of them fails with an error naming the limit.
struct RuntimeLimits {
  uint64_t max_instructions = 1'000'000'000;  // per run, all branches together
  uint64_t max_memory_bytes = 64ull << 20;    // per run: Lua heap + host buffers it holds
  uint64_t slice_instructions = 1'000'000;    // a busy run yields the loop after this many
  // Code that cannot be suspended (a table.sort comparator, a string.gsub callback,
  // __tostring, __close) may run this many instructions at a stretch; other runs wait meanwhile.
  uint64_t max_unyielding_instructions = 100'000'000;
  uint32_t call_timeout_ms = 600'000;        // default deadline of one model call
  uint64_t max_steps = 100'000;              // journaled steps per run
  uint64_t max_events = 100'000;             // stored events per run (logs included)
  uint64_t max_stored_bytes = 256ull << 20;  // journal + events bytes per run
};

enum class Durability {
  sync,   // a step's record is committed before the coroutine resumes (crash-safe)
  async,  // records are queued; the coroutine resumes at once (faster, may lose the tail)
};

// Which failed runs are kept for a person to re-drive or drop (troupe dlq).
enum class DeadLetters {
  off,        // none
  retryable,  // those failed by a retryable error their retries did not get past
  all,        // every failed run (not a cancelled one)
};

struct RuntimeOptions {
  RuntimeLimits limits;
  Durability durability = Durability::sync;
  // How long this process's hold on a run it drives lasts unless renewed (every third of it):
  // after a crash, another process may take the run over once this much time has passed.
  uint32_t lease_ms = 30'000;
  std::string owner;  // this process as an owner of runs; empty: Store::new_owner_id()
  // A run whose every branch waits durably (a sleep with at least this long left) is parked:
  // recorded as waiting, released from memory, taken again by a worker when due.
  uint32_t park_after_ms = 300'000;
  // How a failed model call is tried again when its agent or call says nothing (config `retry:`).
  RetryPolicy retry;
  // Which failed runs are kept as dead letters (config `dead_letters:`).
  DeadLetters dead_letters = DeadLetters::retryable;
  // How model calls are priced (config/config.h make_pricing: the built-in table, `pricing:`,
  // `unknown_model:`). Null: calls are not priced (cost_usd stays empty, nothing is flagged).
  std::shared_ptr<const Pricing> pricing;
  // Where troupe.http may connect (config `http:`; the built-in deny list always applies).
  std::shared_ptr<const HttpPolicy> http_policy = std::make_shared<const HttpPolicy>();
};

// What a run is asked to do. Either source_path or source (with chunk_name) is set.
struct RunSpec {
  std::string source_path;
  std::string source;
  std::string chunk_name = "<string>";
  std::string input_json = "{}";
};

// What resume is asked to do (docs/durability.md).
struct ResumeSpec {
  std::string run_id;  // a full id or a unique prefix
  // The script changed since the run started: run the new one anyway against the journal
  // (every served step is still checked against the call the new script makes).
  bool allow_changed = false;
  // Re-drive a failed run (a dead letter): its failed steps run again instead of being served.
  bool retry_failed = false;
  // A worker's take: a parked run only once it is due (an explicit resume takes it at once).
  bool only_due = false;
};

// A new run from a recorded one (docs/durability.md): a fork reuses the journal up to a step and
// runs live from there; a replay re-executes the whole run offline against its journal.
struct ForkSpec {
  std::string run_id;       // the recorded run (a full id or a unique prefix)
  std::string from_step;    // fork: the last step reused, by key ("" : every step)
  std::string input_json;   // fork: another input ("" : the recorded run's)
  std::string script_path;  // another script ("" : the recorded run's own)
  // Replay: every call must be answered by the journal; the first that is not, or that does
  // not match, fails the new run naming the step (where the script diverges).
  bool offline = false;
};

struct RunOutcome {
  std::string run_id;
  std::string workflow;
  std::string status;  // "succeeded", "failed", "cancelled"
  std::string output_json;
  std::string error;
};

// A live event. Persistent events are also appended to the store; text deltas are not.
struct RunEvent {
  std::string run_id;
  std::string type;  // run.started, step.started, step.finished, text.delta, log, run.finished
  std::string step_key;
  std::string data_json;
  int64_t ts_ms = 0;
};

// A tool implemented by the program embedding the host (the Python module's @host.tool).
// Workflows reach it by name: troupe.host_tool(name), or the name in an agent's tools. call
// runs on the loop thread and must return at once (hand the work to a thread of its own);
// it reports through done exactly once, from any thread, while the host's loop exists.
// done(ok, text): the tool's result (ok) or its error message, as text for the model.
struct ExternalTool {
  std::string name;         // 1 to 64 ASCII letters, digits, '_' or '-'
  std::string description;  // for the model
  std::string parameters_json = R"({"type":"object","properties":{}})";  // JSON Schema
  using Done = std::function<void(bool ok, const std::string& text)>;
  std::function<void(const std::string& arguments_json, Done done)> call;
};

class Runtime {
 public:
  Runtime(EventLoop& loop, Store* store, ProviderResolver& providers, RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts a run; returns its id. on_done runs once, on the loop thread, when it ends.
  // Failures to even start (unreadable file) are reported through on_done as well.
  std::string start(const RunSpec& spec, std::function<void(const RunOutcome&)> on_done);

  // Takes over a run that no process drives any more (interrupted, parked, queued; failed with
  // retry_failed) and runs its script again from the start, serving every step its journal
  // holds instead of doing it again. Returns the run's id, or "" with *error (no such run, it
  // runs elsewhere, it ended, its script changed or is gone) when it cannot be resumed; the
  // run is then untouched. on_done as for start().
  std::string resume(const ResumeSpec& spec, std::function<void(const RunOutcome&)> on_done,
                     std::string* error);

  // Starts a new run from a recorded one (ForkSpec), with its lineage (parent run, step)
  // recorded. Returns its id, or "" with *error (no such run or step, no script). on_done as for
  // start().
  std::string fork(const ForkSpec& spec, std::function<void(const RunOutcome&)> on_done,
                   std::string* error);

  // Queues a run for a worker (troupe run --detach): the script is compiled (a syntax error is
  // refused here) and kept, the run recorded as queued; nothing runs in this process. Returns
  // the run's id, or "" with *error. A worker takes it with resume().
  std::string submit(const RunSpec& spec, std::string* error);

  // Cancels a run: pending calls are cancelled, the run is recorded as cancelled. Any thread:
  // a run computing stops within one count-hook interval.
  void cancel(const std::string& run_id, const std::string& reason = "cancelled");

  // Async-signal-safe, for a signal handler: every run stops at its next count hook (within
  // 10,000 instructions, even where it cannot yield) and is recorded as cancelled with reason,
  // which must outlive the Runtime (a string literal). Runs started afterwards stop too: it is
  // meant for a process that is shutting down.
  void interrupt(const char* reason) noexcept;

  // Receives every event of every run, on the loop thread.
  void set_listener(std::function<void(const RunEvent&)> listener);

  // The model agents use when they name none (default "mock/mock-1").
  void set_default_model(const std::string& model);

  size_t active_runs() const;

  // Adds an external tool, or replaces the one of the same name. Loop thread. Defined in
  // prim_external_tools.cpp.
  void add_external_tool(ExternalTool tool);

 private:
  std::unique_ptr<rt::Core> core_;
};

}  // namespace troupe
