// runtime_internal.h: the runtime's private model — runs, tasks (coroutines), joins, the core.
//
// Shared by the Core's files (runtime.cpp: a run's life; scheduler.cpp: tasks and joins;
// run_journal.cpp, run_limits.cpp, run_cancel.cpp) and the primitives (primitives.h). Nothing
// outside host/runtime includes it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <lua.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/liveness.h"
#include "loop/event_loop.h"
#include "runtime/lua_memory.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace troupe::rt {

struct Run;

// Instructions between two calls of a run's count hook (run_limits.cpp).
constexpr int kHookEvery = 10000;

// Pushes the values a task is resumed with onto its coroutine; returns how many.
using Pusher = std::function<int(lua_State* co)>;

struct Task;

// The children of a task waiting in troupe.parallel or troupe.map.
struct Join {
  std::string step_key;
  bool is_map = false;
  int total = 0;
  int started = 0;
  int done = 0;
  int concurrency = 0;                          // map: at most this many at once (0 = all)
  std::vector<std::shared_ptr<Task>> children;  // by branch index - 1
  int results_ref = LUA_NOREF;                  // Lua table: first result of each branch
  int fn_ref = LUA_NOREF;                       // map: the function
  int list_ref = LUA_NOREF;                     // map: the list
};

// A coroutine of a run: the root, or a branch of a join. Its path makes step keys
// deterministic: step n of a task with path P is "n" (root) or "P/n"; branch i of the join
// started at step key K has path "K.i".
struct Task {
  Run* run = nullptr;
  Task* parent = nullptr;
  int branch = 0;
  lua_State* co = nullptr;
  int thread_ref = LUA_NOREF;
  uint64_t handle = 0;  // in the TaskTable; what its coroutines carry instead of this pointer
  std::string path;
  uint32_t ordinal = 0;
  int start_args = 0;               // values waiting on co for the first resume; -1 once started
  Pusher pending;                   // the result of the host call it waits on (see deliver)
  std::function<void()> cancel_op;  // cancels the host call the task is waiting on
  bool host_yield = false;          // the current yield was asked for by the host
  bool preempted = false;           // ... to let other runs use the loop
  bool finished = false;
  std::unique_ptr<Join> join;
  // math.random's stream: seeded from the run id and the task's path, so each branch draws the
  // same numbers on a resume whatever order the branches run in.
  uint64_t rng[4] = {};
  // Waiting durably (a sleep of at least park_after_ms) until this unix ms; 0 while not.
  int64_t park_until_ms = 0;

  std::string key(uint32_t n) const {
    return path.empty() ? std::to_string(n) : path + "/" + std::to_string(n);
  }
};

// The tasks alive in a Core, by handle. A coroutine names its task by handle (an index and a
// generation, kept in LUA_EXTRASPACE), never by pointer: a workflow can keep a coroutine it
// created past the end of the branch that created it, and a stale handle then finds nothing
// instead of freed memory.
class TaskTable {
 public:
  uint64_t add(Task* task);
  void remove(uint64_t handle);
  Task* find(uint64_t handle) const;

 private:
  struct Entry {
    Task* task = nullptr;
    uint32_t generation = 0;
  };
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
};

class Core;

// What a primitive is about to do, to check a recorded step against (served_step).
struct StepCall {
  const char* kind;
  std::string agent;
  std::string model;
  std::string request_hash;
};

// Where a step stands in its retries (run_retry.cpp): what a resumed run carries over from the
// attempts its earlier epochs made.
struct RetryState {
  int done = 0;               // attempts made so far
  int base = 0;               // attempts a policy does not count (a dead letter re-driven)
  int64_t wait_until_ms = 0;  // the next attempt is due then
};

// The first attempt a call is about to make (Core::first_attempt).
struct FirstAttempt {
  int number = 1;       // 1 for a new step
  int base = 0;         // subtracted from an attempt's number before the policy sees it
  int64_t wait_ms = 0;  // what is left of the wait after the last failed attempt
};

// A task to resume and what to push into it.
struct Ready {
  std::weak_ptr<Task> task;
  Pusher push;
};

struct Run {
  Core* core = nullptr;
  std::string id;
  std::string workflow;
  std::string source;
  std::string dir;  // folder of the workflow file (require looks only here); empty for strings
  std::string input_json;
  int64_t created_ms = 0;
  uint64_t started_ns = 0;  // EventLoop::now_ns() at the start: durations use the monotonic clock
  uint32_t mem_slot = 0;
  uint64_t instructions = 0;
  uint64_t slice = 0;
  uint64_t unyielding = 0;  // instructions since the run last could have been suspended
  std::string kill_reason;  // set once a limit or a cancel stopped the run
  std::shared_ptr<Task> root;
  int env_ref = LUA_NOREF;
  int chunk_ref = LUA_NOREF;  // owned compiled chunk (string sources; files are cached)
  Durability durability = Durability::sync;  // the host's, unless the workflow chose
  bool done = false;
  bool cancelled = false;
  bool journal_failed = false;  // the store could not record one of its writes; it failed
  std::function<void(const RunOutcome&)> on_done;
  int64_t epoch = 0;        // the run's epoch in this process (Store: ownership and fencing)
  int64_t started_ms = 0;   // unix ms when this process started or resumed it
  std::string script_hash;  // sha256_hex of the script it runs
  // A resumed run: the steps recorded by its earlier epochs, by key. A call whose key is here
  // is served from it (served_step) instead of running again.
  std::unordered_map<std::string, StepRecord> journal;
  uint64_t served = 0;                                  // steps served from the journal
  std::unordered_map<std::string, RetryState> retries;  // by step key, from earlier epochs
  // The error that failed the run, when it was a troupe error table (Core::error_text): the
  // step it names and whether it was retryable (a dead letter's reason).
  std::string failure_step;
  bool failure_retryable = false;
  std::unordered_map<std::string, int64_t> signal_seen;  // by name: the last signal seq taken
  bool wait_for_record = false;  // the root starts once create_run is committed (sync)
  bool offline = false;          // a replay: a call the journal does not answer is a divergence
  std::string parent_run;        // a fork or replay: the run its journal came from
  // Served answers reach their tasks in the order the first run got them (Core::serve), so that
  // whatever depends on who finished first (an agent's shared history) is the same again.
  std::unordered_map<std::string, uint32_t> delivery_order;  // by step key
  uint32_t next_delivery = 0;
  std::map<uint32_t, Ready> held;          // answers waiting for their turn
  std::unordered_set<uint32_t> delivered;  // turns taken out of order (streams)
  uint32_t delivery_checked = 0;           // next_delivery when the stall timer was armed
  bool stall_timer = false;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double cost_usd = 0;   // the priced model calls this process made for it
  int64_t unpriced = 0;  // ... and those without a price
  std::unordered_set<std::string> unknown_models;  // warned about once per run
  int steps = 0;
  // What the run has cost the host outside the Lua heap (limits.max_steps, max_events,
  // max_stored_mb; host_bytes counts against max_memory_mb with the Lua heap).
  uint64_t recorded_steps = 0;  // journal rows, troupe.now() included
  uint64_t events = 0;
  uint64_t stored_bytes = 0;
  uint64_t host_bytes = 0;
};

static_assert(LUA_EXTRASPACE >= sizeof(uint64_t), "a coroutine carries its task's handle");

// The handle of the task a coroutine belongs to (0: none), in its LUA_EXTRASPACE.
inline uint64_t& thread_handle(lua_State* co) {
  return *static_cast<uint64_t*>(lua_getextraspace(co));
}

class Core {
 public:
  Core(EventLoop& loop, Store* store, ProviderResolver& providers, RuntimeOptions options);
  ~Core();

  std::string start(const RunSpec& spec, std::function<void(const RunOutcome&)> on_done);
  // Parks the run once every live branch of it waits durably (run_park.cpp). Posted by a
  // primitive that starts a durable wait, so that the branches scheduled meanwhile run first.
  void consider_parking(const std::string& run_id);
  // Runtime::resume and Runtime::submit (runtime.cpp).
  std::string resume(const ResumeSpec& spec, std::function<void(const RunOutcome&)> on_done,
                     std::string* error);
  std::string submit(const RunSpec& spec, std::string* error);
  std::string fork(const ForkSpec& spec, std::function<void(const RunOutcome&)> on_done,
                   std::string* error);
  // Any thread, while the core exists. A run busy computing stops at its next count hook;
  // the rest (pending calls, the record) happens on the loop, soon after.
  void cancel(const std::string& run_id, const std::string& reason);
  void cancel_now(const std::string& run_id, const std::string& reason);

  // --- used by the primitives (primitives.h)
  // The task a coroutine belongs to: null outside any run, or when that task has ended.
  Task* task_of_thread(lua_State* co) const { return tasks_.find(thread_handle(co)); }
  // Resumes task on a later loop turn; push (may be empty) pushes the results of the host call
  // it waits on, from inside the task's coroutine (deliver, in prim_support.cpp).
  void schedule(const std::shared_ptr<Task>& task, Pusher push);
  // A new coroutine, created from (and anchored through) the thread `on`. Raises (Lua) when
  // the run's memory is exhausted.
  std::shared_ptr<Task> new_task(Run& run, Task* parent, int branch, const std::string& path,
                                 lua_State* on);
  // Starts the next pending branch of a map join. Raises like new_task.
  void start_map_branch(Task& parent, lua_State* on);
  // Journals a finished step, then resumes the task (after the commit when durable).
  void finish_step(const std::shared_ptr<Task>& task, StepRecord step, Pusher push);
  // Journals a finished step no task waits on (a stream's reader resumes itself): counts it,
  // emits step.finished, and runs on_recorded (may be empty) once the record is durable — at
  // once for async durability, without a store, or after the run ended; never after the core
  // is gone.
  void record_step(Run& run, StepRecord step, std::function<void()> on_recorded);
  // A model call's cost from its final usage and options.pricing: cost_usd, or unpriced when
  // the model has no price (and unknown_model is not `price`). Other steps are left alone.
  void price_step(StepRecord& step) const;
  void emit(Run& run, const char* type, const std::string& step_key, std::string data_json,
            bool persistent = true);
  // A resumed run's call of step `key`: the step an earlier epoch recorded under it, which the
  // primitive then serves instead of doing the work again, or null (nothing recorded, or a
  // record that is not to be served: cancelled, pending, failed when re-driving a dead
  // letter), when the call runs live. A record made by another kind of call, agent, model or
  // request stops the run — kill_reason names the key, what was recorded and what the script
  // asks now — and raises (run_journal.cpp).
  const StepRecord* served_step(lua_State* co, Run& run, const std::string& key,
                                const StepCall& call);
  // Resumes task with a served step's answer, in the order the journal recorded the answers:
  // at once when it is its turn, else once the answers recorded before it were delivered (or
  // after a stall, when the script no longer asks for them).
  void serve(const std::shared_ptr<Task>& task, const std::string& key, Pusher push);
  // A served answer handed out without resuming a task (a stream's): its turn is taken.
  void served_now(Run& run, const std::string& key);
  std::shared_ptr<Task> shared(Task* t);
  // The first attempt a step about to run makes: 1, at once, for a new step; after a resume,
  // the one after the last the journal holds, once what is left of its wait has passed
  // (run_retry.cpp).
  FirstAttempt first_attempt(const Run& run, const std::string& key) const;
  // After an attempt of a step failed as `failure`: when `policy` tries again, journals the
  // attempt (with the wait, in failed.delay_ms), emits step.retrying and returns the timer that
  // calls again() once the wait is over; 0, having done nothing, when the policy gives up. The
  // policy counts failed.attempt - base. again() is called only while the core lives; it checks
  // its own run and task.
  EventLoop::Id retry_later(Run& run, AttemptRecord failed, int base, const RetryPolicy& policy,
                            const AttemptFailure& failure, std::function<void()> again);
  // Why a limit or a cancel stopped the run ("" while it runs); notices a refused allocation
  // and a cancel asked from another thread first.
  const std::string& kill_reason(Run& run);
  // Charges work a C function does for the run without executing Lua instructions (pattern
  // matching steps, sorting) to its instruction budget; raises when a limit stops the run.
  void charge_instructions(lua_State* co, uint64_t units);
  // Counts one step or event and its stored bytes against the run's limits (max_steps,
  // max_events, max_stored_mb); false once a limit stopped the run (kill_reason says which;
  // the run is being failed).
  bool charge_store(Run& run, bool is_step, uint64_t bytes);
  // Host memory held for the run outside the Lua heap (stream buffers), counted with its Lua
  // heap against max_memory_mb; a negative delta releases it.
  void charge_host_bytes(Run& run, int64_t delta);
  // Runs fn inside lua_pcall on the main thread, allocations charged to run (the host's when
  // null): a Lua error (memory exhausted, above all) returns false with its message in
  // *error instead of unwinding through the host. fn works on the thread it is given, never
  // on a coroutine that is not running (a raise there would reset it).
  bool protect(Run* run, const std::function<void(lua_State*)>& fn, std::string* error);

  EventLoop& loop;
  Store* store;
  ProviderResolver& providers;
  RuntimeOptions options;
  lua::MemoryAccounting memory;
  lua_State* L = nullptr;
  std::function<void(const RunEvent&)> listener;
  std::unordered_map<std::string, std::shared_ptr<Run>> runs;
  std::string default_model = "mock/mock-1";
  Liveness alive;     // ended in ~Core; deferred callbacks check their Watch
  std::string owner;  // this process, as the owner of the runs it drives

 private:
  friend class troupe::Runtime;
  // Starts a run set up by start() or resume(): its root task runs chunk with the run's input.
  void launch(const std::shared_ptr<Run>& run, int chunk, std::string error);
  // Extends the lease of every run this process drives; runs every lease_ms / 3.
  void renew_leases();
  void drive();
  void resume(const std::shared_ptr<Task>& task, Pusher push);
  void task_done(const std::shared_ptr<Task>& task, int nresults);
  // error_ref: a registry reference to the branch's error table (kept for the join), or none.
  void task_failed(const std::shared_ptr<Task>& task, const std::string& message,
                   int error_ref = LUA_NOREF);
  void finish_run(Run& run, const std::string& status, const std::string& output_json,
                  const std::string& error);
  // Keeps a failed run as a dead letter when options.dead_letters asks for it (runtime.cpp).
  void keep_dead_letter(Run& run, const std::string& error, int64_t dead_ms);
  // Fails the run on a later loop turn with its kill_reason (a limit hit outside its code).
  void stop_soon(Run& run);
  // The store could not record a write of the run: it fails, unless it already ended.
  void journal_failed(const std::string& run_id, const std::string& error);
  // Ends a finished run once its final record is committed (or failed): run.finished, on_done.
  void settle_run(const std::string& run_id);
  // Releases a run from memory, records it as waiting until wake_ms and reports it to on_done
  // with status "waiting" (run_park.cpp).
  void park(Run& run, int64_t wake_ms);
  // Frees what the run holds in the Lua state (its tasks, env, chunk, memory slot) and drops it
  // from runs; ending_ keeps it if it must be announced.
  void release_run(Run& run);
  void cancel_task(Task& task);
  void release(Task& task);
  // Compiles the spec's script (files cached by path, size and mtime); *hash gets its sha256_hex
  // and the store keeps its text (once per hash).
  int load_chunk(const RunSpec& spec, std::string* hash, std::string* error);
  // The message of a failed coroutine (its error value is on top of task.co), with the
  // traceback; *error_ref gets a reference to a troupe error table for a branch's join.
  std::string error_text(Task& task, int status, int* error_ref);
  void apply_cancel_requests();
  // The thread that polls the store for cancels other processes asked (troupe cancel) and
  // hands them to cancel(): the loop may be busy with the very run to cancel.
  void watch_store_cancels();
  void set_live(const std::string& run_id, bool live);
  static void count_hook(lua_State* co, lua_Debug* ar);

  TaskTable tasks_;
  // Runs that finished and wait for their final record's commit before they are announced.
  struct Ending {
    std::shared_ptr<Run> run;
    RunOutcome outcome;
    int64_t finished_ms = 0;
  };
  std::unordered_map<std::string, Ending> ending_;
  std::deque<Ready> ready_;
  bool drive_posted_ = false;
  int runner_ref_ = LUA_NOREF;
  int new_env_ref_ = LUA_NOREF;
  struct CachedChunk {
    int64_t mtime_ns = 0;
    uint64_t size = 0;
    int ref = LUA_NOREF;
    std::string hash;
  };
  std::unordered_set<std::string> saved_scripts_;  // hashes this process gave the store
  EventLoop::Id lease_timer_ = 0;
  uint64_t jitter_state_ = 0;  // splitmix64 state of the retries' jitter (run_retry.cpp)
  std::unordered_map<std::string, CachedChunk> chunks_;
  // Cancels asked from any thread, applied by the loop (and noticed early by the count hook).
  std::mutex cancel_mutex_;
  std::vector<std::pair<std::string, std::string>> cancel_requests_;  // run id, reason
  std::atomic<bool> cancel_pending_{false};
  std::atomic<const char*> interrupt_reason_{nullptr};  // Runtime::interrupt
  std::mutex watch_mutex_;
  std::condition_variable watch_wake_;
  std::unordered_set<std::string> live_ids_;  // runs started and not finished (for the watcher)
  bool watch_stop_ = false;
  std::thread watcher_;
};

// The Core of a lua_State (it is the allocator's ud): what a count hook or a metered library
// function has to find its run from.
inline Core* core_of_state(lua_State* co) {
  void* ud = nullptr;
  lua_getallocf(co, &ud);
  return static_cast<Core*>(ud);
}

// prim_support.cpp: pushes the `host` table of primitives the Lua library is built on.
void push_primitives(lua_State* L, Core* core);

// sandbox_meters.cpp: replaces the standard library's C functions whose work is not made of
// Lua instructions (pattern matching, sorting, string.rep) with ones that charge it to the
// calling run (Core::charge_instructions). Called once on the fresh state.
void install_meters(lua_State* L);

// The embedded Lua library (scripts/troupe/**.lua), by module name; null when absent.
const std::string* builtin_script(const std::string& module);

int64_t unix_ms();

// The record of a failed attempt of `step` (its key, model, end and latency), which started at
// started_ms (run_retry.cpp).
AttemptRecord attempt_of(const StepRecord& step, int attempt, std::string status, std::string error,
                         int64_t started_ms);

// A new run id: 10 characters of time (ms, Crockford base32), then 6 random ones.
std::string make_run_id();

// Reads a whole file; false with *error "<path>: cannot open: <why>".
bool read_file(const std::string& path, std::string* out, std::string* error);

// FNV-1a, 64 bits: a stable hash of short strings (the same in every build, unlike std::hash).
inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Seeds a task's xoshiro256** state from one number (splitmix64, as its authors recommend).
inline void seed_rng(uint64_t rng[4], uint64_t seed) {
  for (int i = 0; i < 4; ++i) {
    seed += 0x9e3779b97f4a7c15ull;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    rng[i] = z ^ (z >> 31);
  }
}

}  // namespace troupe::rt
