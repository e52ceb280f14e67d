// _troupe.cpp: the native module troupe._troupe — a troupe Host driven from Python.
//
// Each NativeHost owns a troupe::Host and one thread that runs its event loop; Python threads
// talk to the loop only through EventLoop::post. Each run gets a RunState: a queue of its
// events under a mutex, filled on the loop thread and read by Python, which waits on a
// condition variable with the GIL released, in 100 ms slices so that Ctrl-C (checked with
// the GIL held) can cancel the run. An eventfd per run wakes asyncio without polling.
// Python tools run on worker threads of the NativeHost with the GIL held, never on the loop.
// The Python package (troupe/*.py) builds the friendly API on top of this; troupe/_troupe.pyi
// states this module's interface for type checkers (keep it in step).
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/host.h"
#include "api/run_json.h"
#include "config/config.h"
#include "config/input.h"
#include "config/retention.h"
#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace py = pybind11;
using nlohmann::json;

namespace troupe::python {
namespace {

constexpr auto kSlice = std::chrono::milliseconds(100);  // how often a wait checks for Ctrl-C
constexpr int kToolWorkers = 4;                          // Python tools running at once

// Raised for things the host refuses (closed host, unknown run, ...): troupe.TroupeError.
// Runtime::resume refused the run (no such run, it runs elsewhere, it ended, its script
// changed); Python's troupe.ResumeRefused.
struct ResumeRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct HostError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --- one run, shared by the loop thread (writer) and Python threads (readers)
class RunState {
 public:
  RunState() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~RunState() {
    if (fd_ >= 0) close(fd_);
  }
  RunState(const RunState&) = delete;
  RunState& operator=(const RunState&) = delete;

  void push(const RunEvent& ev) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(ev);
    }
    wake();
  }

  void finish(const RunOutcome& outcome) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      outcome_ = outcome;
      finished_ = true;
    }
    wake();
  }

  void set_id(const std::string& id) {
    std::lock_guard lock(mu_);
    id_ = id;
  }
  std::string id() {
    std::lock_guard lock(mu_);
    return id_;
  }
  bool finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }
  RunOutcome outcome() {
    std::lock_guard lock(mu_);
    return outcome_;
  }

  // 0: *out holds the next event; 1: none yet; 2: the run ended and every event was taken.
  int poll(RunEvent* out) {
    std::lock_guard lock(mu_);
    return take_locked(out);
  }

  // Waits at most `slice` for an event or the end; same codes as poll().
  int wait_event(std::chrono::milliseconds slice, RunEvent* out) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, slice, [&] { return !events_.empty() || finished_; });
    return take_locked(out);
  }

  // Waits at most `slice` for the end; true once finished.
  bool wait_finished(std::chrono::milliseconds slice) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, slice, [&] { return finished_; });
  }

  int notify_fd() const { return fd_; }
  void drain_notify() {
    uint64_t count = 0;
    while (fd_ >= 0 && read(fd_, &count, sizeof count) == static_cast<ssize_t>(sizeof count)) {
    }
  }

 private:
  int take_locked(RunEvent* out) {
    if (!events_.empty()) {
      *out = std::move(events_.front());
      events_.pop_front();
      return 0;
    }
    return finished_ ? 2 : 1;
  }

  void wake() {
    cv_.notify_all();
    uint64_t one = 1;
    if (fd_ >= 0) {
      ssize_t n = write(fd_, &one, sizeof one);  // EAGAIN only when the counter is full: fine
      (void)n;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RunEvent> events_;
  bool finished_ = false;
  RunOutcome outcome_;
  std::string id_;
  int fd_;
};

py::tuple event_tuple(const RunEvent& ev) {
  return py::make_tuple(ev.type, ev.run_id, ev.step_key, ev.data_json, ev.ts_ms);
}

// Calls PyErr_CheckSignals (GIL held). On KeyboardInterrupt (or any exception a signal
// handler raised) runs on_interrupt with the GIL released, then re-raises.
void check_signals(const std::function<void()>& on_interrupt) {
  if (PyErr_CheckSignals() == 0) return;
  py::error_already_set pending;  // fetches (and so clears) the Python error
  {
    py::gil_scoped_release nogil;
    on_interrupt();
  }
  throw pending;
}

// Seconds (None = forever) to a deadline.
std::optional<std::chrono::steady_clock::time_point> deadline_of(std::optional<double> timeout) {
  if (!timeout) return std::nullopt;
  double s = *timeout < 0 ? 0 : *timeout;
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             std::chrono::duration<double>(s));
}

std::chrono::milliseconds slice_until(
    const std::optional<std::chrono::steady_clock::time_point>& deadline) {
  if (!deadline) return kSlice;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      *deadline - std::chrono::steady_clock::now());
  if (left < std::chrono::milliseconds(0)) return std::chrono::milliseconds(0);
  return left < kSlice ? left : kSlice;
}

[[noreturn]] void raise_timeout(const std::string& what) {
  PyErr_SetString(PyExc_TimeoutError, what.c_str());
  throw py::error_already_set();
}

std::string dump(const json& j) {
  return json_text(j);
}

class NativeHost;

// The Python handle of one run.
class NativeRun {
 public:
  NativeRun(std::shared_ptr<RunState> state, NativeHost* host)
      : state_(std::move(state)), host_(host) {}

  std::string id() const { return state_->id(); }
  bool finished() const { return state_->finished(); }

  // The next event; None once the run ended and every event was taken. Raises TimeoutError.
  py::object next_event(std::optional<double> timeout);
  // True once the run ended (False when the timeout passed first).
  bool wait(std::optional<double> timeout);
  // (0, event) | (1, None) nothing yet | (2, None) ended. Never blocks.
  py::tuple poll() {
    RunEvent ev;
    int code = state_->poll(&ev);
    return py::make_tuple(code, code == 0 ? py::object(event_tuple(ev)) : py::none());
  }
  // {run_id, workflow, status, output_json, error} once finished, else None.
  py::object outcome() {
    if (!state_->finished()) return py::none();
    RunOutcome o = state_->outcome();
    py::dict d;
    d["run_id"] = o.run_id;
    d["workflow"] = o.workflow;
    d["status"] = o.status;
    d["output_json"] = o.output_json;
    d["error"] = o.error;
    return d;
  }
  // Cancels the run and waits for its end: true when it ended cancelled, false when it had
  // ended before (or ended on its own before the request reached it).
  bool cancel(const std::string& reason);
  int notify_fd() const { return state_->notify_fd(); }
  void drain_notify() { state_->drain_notify(); }

 private:
  void interrupted();

  std::shared_ptr<RunState> state_;
  NativeHost* host_;  // the Python Run keeps its Host alive
};

class NativeHost {
 public:
  NativeHost(const std::optional<std::string>& config_path,
             const std::optional<std::string>& store_path,
             const std::vector<std::string>& module_plugin_dirs) {
    py::gil_scoped_release nogil;
    Config config = find_config(config_path.value_or(""));
    if (store_path) config.store_path = *store_path;
    // Search order: the configuration's folders, TROUPE_PLUGIN_PATH, then the folders next to
    // the module (an installed package, the build tree). plugin_search_path() adds the
    // environment's folders again and keeps each folder's first place.
    if (const char* env = std::getenv("TROUPE_PLUGIN_PATH")) {
      std::string list = env;
      size_t start = 0;
      while (start <= list.size()) {
        size_t end = list.find(':', start);
        if (end == std::string::npos) end = list.size();
        if (end > start) config.plugin_path.push_back(list.substr(start, end - start));
        start = end + 1;
      }
    }
    for (const auto& dir : module_plugin_dirs)
      config.plugin_path.push_back(dir);
    host_ = std::make_unique<Host>(std::move(config));
    host_->runtime().set_listener([this](const RunEvent& ev) { on_event(ev); });
    loop_thread_ = std::thread([this] { host_->loop().run(); });
  }

  ~NativeHost() {
    if (!closed_ && on_worker_thread()) {
      // The last reference went away inside one of this host's own tools: closing would join
      // the calling thread. Leave the host running (leaked) rather than crash.
      loop_thread_.detach();
      for (auto& w : workers_)
        w.detach();
      (void)host_.release();
      return;
    }
    close();
  }
  NativeHost(const NativeHost&) = delete;
  NativeHost& operator=(const NativeHost&) = delete;

  // Stops the host: cancels its runs (recorded as cancelled), waits for running Python tools,
  // stops the loop and closes the store. Idempotent.
  void close() {
    if (closed_) return;
    if (on_worker_thread()) throw HostError("a host cannot be closed from one of its own tools");
    closed_ = true;
    std::vector<py::object> tools;  // released below, with the GIL
    {
      py::gil_scoped_release nogil;
      {
        std::lock_guard lock(jobs_mu_);
        stopping_ = true;
        jobs_.clear();  // not started: their branches are being cancelled anyway
      }
      jobs_cv_.notify_all();
      for (auto& w : workers_)
        w.join();
      workers_.clear();
      // Cancel every run, then stop: stop() is posted after the cancellations it follows.
      bool posted = host_->loop().post([this] {
        for (const auto& [id, st] : runs_)
          host_->runtime().cancel(id, "the host was closed");
        host_->loop().post([this] { host_->loop().stop(); });
      });
      if (!posted) host_->loop().stop();
      loop_thread_.join();
      host_.reset();  // flushes the store
      for (const auto& [id, st] : runs_) {
        st->finish(RunOutcome{id, "", "cancelled", "", "the host was closed"});
      }
      runs_.clear();
      if (starting_) starting_->finish(RunOutcome{"", "", "cancelled", "", "the host was closed"});
      std::lock_guard lock(jobs_mu_);
      for (auto& [name, fn] : py_tools_)
        tools.push_back(std::move(fn));
      py_tools_.clear();
    }
  }

  bool closed() const { return closed_; }

  Host& host() {
    if (closed_) throw HostError("this troupe host is closed");
    return *host_;
  }

  std::shared_ptr<RunState> start(const std::string& source_path, const std::string& source,
                                  const std::string& chunk_name, const std::string& input_json) {
    host();  // raises once closed
    {
      // The CLI's checks for --input: too large, too deep, duplicate keys, numbers out of
      // range are a ValueError here, before anything runs (docs/security.md, section 7).
      py::gil_scoped_release nogil;
      check_input_json(input_json, "input");
    }
    RunSpec spec;
    spec.source_path = source_path;
    spec.source = source;
    spec.chunk_name = chunk_name;
    spec.input_json = input_json;
    return begin([spec](Runtime& rt, std::function<void(const RunOutcome&)> on_done, std::string*) {
      return rt.start(spec, std::move(on_done));
    });
  }

  // Host.resume: Runtime::resume on the loop thread; a refusal raises ResumeRefused.
  std::shared_ptr<RunState> resume(const std::string& run_id, bool allow_changed, bool only_due,
                                   bool retry_failed) {
    host();
    ResumeSpec spec;
    spec.run_id = run_id;
    spec.allow_changed = allow_changed;
    spec.only_due = only_due;
    spec.retry_failed = retry_failed;
    return begin([spec](Runtime& rt, std::function<void(const RunOutcome&)> on_done,
                        std::string* error) { return rt.resume(spec, std::move(on_done), error); });
  }

  // Host.fork / Host.replay: Runtime::fork; a refusal raises ResumeRefused.
  std::shared_ptr<RunState> fork(const std::string& run_id, const std::string& from_step,
                                 const std::string& input_json, const std::string& script_path,
                                 bool offline) {
    host();
    ForkSpec spec;
    spec.run_id = run_id;
    spec.from_step = from_step;
    spec.input_json = input_json;
    spec.script_path = script_path;
    spec.offline = offline;
    return begin([spec](Runtime& rt, std::function<void(const RunOutcome&)> on_done,
                        std::string* error) { return rt.fork(spec, std::move(on_done), error); });
  }

  // Starts a run on the loop thread with `how` (Runtime::start or resume: the id, or "" with
  // *error) and returns its state once it has an id.
  using Begin =
      std::function<std::string(Runtime&, std::function<void(const RunOutcome&)>, std::string*)>;
  std::shared_ptr<RunState> begin(Begin how) {
    Host& h = host();
    auto st = std::make_shared<RunState>();
    auto refusal = std::make_shared<std::string>();
    // The closure owns the promise: if the loop drops it (the host closing meanwhile), the
    // future reports a broken promise instead of waiting forever.
    auto started = std::make_shared<std::promise<void>>();
    std::future<void> ready = started->get_future();
    {
      py::gil_scoped_release nogil;
      bool posted = h.loop().post([this, how, st, started, refusal] {
        starting_ = st;  // events during start() carry an id not in runs_ yet
        std::string id = how(
            host_->runtime(),
            [this, st](const RunOutcome& o) {
              runs_.erase(o.run_id);
              st->finish(o);
            },
            refusal.get());
        starting_ = nullptr;
        if (!id.empty()) {
          st->set_id(id);
          if (!st->finished()) runs_[id] = st;
        }
        started->set_value();
      });
      started.reset();
      if (!posted) throw HostError("this troupe host is closed");
      try {
        ready.get();
      } catch (const std::future_error&) {
        throw HostError("the troupe host was closed while the run was starting");
      }
    }
    if (!refusal->empty()) throw ResumeRefused(*refusal);
    return st;
  }

  // Runtime::cancel is thread-safe: a run computing on the loop thread sees it at its next
  // count hook, where a closure posted to the busy loop would wait for it.
  void cancel(const std::string& run_id, const std::string& reason) {
    if (closed_) return;
    host_->runtime().cancel(run_id, reason);
  }

  void flush() {
    if (closed_ || !host_->store()) return;
    py::gil_scoped_release nogil;
    host_->store()->flush();
  }

  // --- store reads, as JSON text (the package parses it)
  Store& store() {
    Store* s = host().store();
    if (!s) throw HostError("this host has no store");
    return *s;
  }

  // Host.submit: a queued run (Runtime::submit, on the loop thread); its id.
  std::string submit(const std::string& source_path, const std::string& input_json) {
    Host& h = host();
    {
      py::gil_scoped_release nogil;
      check_input_json(input_json, "input");
    }
    RunSpec spec;
    spec.source_path = source_path;
    spec.input_json = input_json;
    auto result = std::make_shared<std::promise<std::pair<std::string, std::string>>>();
    std::future<std::pair<std::string, std::string>> ready = result->get_future();
    py::gil_scoped_release nogil;
    if (!h.loop().post([this, spec, result] {
          std::string error;
          std::string id = host_->runtime().submit(spec, &error);
          result->set_value({id, error});
        })) {
      throw HostError("this troupe host is closed");
    }
    auto [id, error] = ready.get();
    if (id.empty()) throw HostError(error);
    return id;
  }

  // Host.signal / approvals / approve: the store's own calls (any process may make them).
  int64_t signal(const std::string& run_id, const std::string& name, const std::string& data_json) {
    {
      py::gil_scoped_release nogil;
      check_input_json(data_json, "data");
    }
    flush();  // a run this host just started is in the store before it is looked up
    Store& s = store();
    auto run = s.get_run(run_id);
    if (!run) throw HostError("no run with id '" + run_id + "'");
    py::gil_scoped_release nogil;
    return s.send_signal(run->id, name, data_json, unix_now_ms());
  }

  // Host.dead_letters / dead_letter / discard_dead_letter (troupe dlq): JSON text.
  std::string dead_letters(int limit) {
    flush();
    Store& s = store();
    nlohmann::json out = nlohmann::json::array();
    py::gil_scoped_release nogil;
    for (const DeadLetterRecord& d : s.dead_letters(limit))
      out.push_back(dead_letter_json(d));
    return dump(out);
  }

  // None when there is no such run; "null" when the run is not a dead letter.
  py::object dead_letter(const std::string& run_id) {
    flush();
    Store& s = store();
    auto run = s.get_run(run_id);
    if (!run) return py::none();
    auto dead = s.get_dead_letter(run->id);
    if (!dead) return py::str("null");
    std::vector<AttemptRecord> attempts = s.get_attempts(run->id);
    return py::str(dump(dead_letter_json(*dead, &attempts)));
  }

  // 1: dropped; 0: the run was not a dead letter; -1: no such run.
  int discard_dead_letter(const std::string& run_id) {
    flush();
    Store& s = store();
    auto run = s.get_run(run_id);
    if (!run) return -1;
    py::gil_scoped_release nogil;
    return s.discard_dead_letter(run->id) ? 1 : 0;
  }

  std::string approvals(const std::string& run_id) {
    flush();
    Store& s = store();
    std::string id;
    if (!run_id.empty()) {
      auto run = s.get_run(run_id);
      if (!run) throw HostError("no run with id '" + run_id + "'");
      id = run->id;
    }
    nlohmann::json out = nlohmann::json::array();
    for (const ApprovalRecord& a : s.pending_approvals(id, 1000)) {
      out.push_back({{"run_id", a.run_id},
                     {"key", a.step_key},
                     {"request", nlohmann::json::parse(a.request_json, nullptr, false)},
                     {"requested_ms", a.requested_ms},
                     {"deadline_ms", a.deadline_ms}});
    }
    return out.dump();
  }

  // The decision as it stands afterwards, as JSON (its "decided_now": whether this one won).
  std::string approve(const std::string& run_id, const std::string& key, const std::string& choice,
                      const std::string& by, const std::string& comment) {
    flush();
    Store& s = store();
    auto run = s.get_run(run_id);
    if (!run) throw HostError("no run with id '" + run_id + "'");
    std::string k = key;
    if (k.empty()) {
      auto pending = s.pending_approvals(run->id, 100);
      if (pending.size() != 1) {
        throw HostError("run " + run->id + " has " + std::to_string(pending.size()) +
                        " pending approvals: name one by its key");
      }
      k = pending[0].step_key;
    }
    auto current = s.get_approval(run->id, k);
    if (!current) throw HostError("run " + run->id + " has no approval " + k);
    nlohmann::json request = nlohmann::json::parse(current->request_json, nullptr, false);
    bool known = false;
    if (request.is_object() && request.contains("choices")) {
      for (const auto& c : request["choices"])
        known = known || c == choice;
    }
    if (!known) throw py::value_error("'" + choice + "' is not one of the approval's choices");
    std::optional<ApprovalRecord> after;
    {
      py::gil_scoped_release nogil;
      after = s.decide_approval(run->id, k, choice, by, comment, unix_now_ms(), false);
    }
    return nlohmann::json{
        {"run_id", after->run_id},
        {"key", after->step_key},
        {"choice", after->choice},
        {"by", after->decided_by},
        {"comment", after->comment},
        {"at", after->decided_ms},
        {"defaulted", after->defaulted},
        {"decided_now", after->choice == choice && after->decided_by == by && !after->defaulted}}
        .dump();
  }

  static int64_t unix_now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }

  // Runs a worker could take now (Store::claimable_runs).
  std::vector<std::string> claimable(int limit) {
    flush();
    py::gil_scoped_release nogil;
    using namespace std::chrono;
    return store().claimable_runs(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count(), limit);
  }

  std::string runs(int limit, const std::string& status, const std::string& workflow) {
    flush();
    RunFilter filter;
    filter.limit = limit;
    filter.status = status;
    filter.workflow = workflow;
    Store& s = store();
    json out = json::array();
    {
      py::gil_scoped_release nogil;
      for (const auto& r : s.list_runs(filter))
        out.push_back(run_json(r));
    }
    return dump(out);
  }

  // The run (id or unique prefix) with its steps; None when there is no such run.
  py::object show(const std::string& id) {
    flush();
    Store& s = store();
    json out;
    {
      py::gil_scoped_release nogil;
      auto run = s.get_run(id);  // throws StoreError on an ambiguous prefix
      if (run) {
        out = run_json(*run);
        out["steps"] = steps_json(s.get_steps(run->id), s.get_attempts(run->id));
      }
    }
    if (out.is_null()) return py::none();
    return py::str(dump(out));
  }

  std::string events(const std::string& run_id, int64_t after, int limit) {
    flush();
    Store& s = store();
    json out = json::array();
    {
      py::gil_scoped_release nogil;
      for (const auto& ev : s.get_events(run_id, after, limit)) {
        out.push_back(event_json(ev));
      }
    }
    return dump(out);
  }

  // Host.gc: deletes old runs by the CLI's rules (config/retention.h; a bad age or status is a
  // ValueError). The store works on a connection of its own in short transactions, so this
  // host's runs (and other processes') go on writing meanwhile; the GIL is released throughout.
  py::dict gc(const std::optional<std::string>& older_than,
              const std::vector<std::string>& statuses, bool dry_run) {
    Store& s = store();
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    GcOptions request = retention_request(host().config().retention, older_than, statuses, dry_run,
                                          now, "older_than");
    GcResult result;
    {
      py::gil_scoped_release nogil;
      result = s.delete_old_runs(request);
    }
    py::dict d;
    d["runs"] = result.runs;
    d["steps"] = result.steps;
    d["events"] = result.events;
    d["dry_run"] = dry_run;
    d["cutoff_ms"] = request.cutoff_ms;
    return d;
  }

  std::vector<std::string> plugin_search_path() { return host().plugin_search_path(); }

  std::string plugins() {
    json out = json::array();
    std::vector<PluginScanEntry> found;
    {
      py::gil_scoped_release nogil;
      found = host().scan_plugins();
    }
    for (const auto& e : found) {
      if (e.library) {
        const PluginInfo& i = e.library->info();
        out.push_back({{"name", i.name},
                       {"kind", plugin_kind_name(i.kind)},
                       {"version", i.version},
                       {"abi", std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor)},
                       {"description", i.description},
                       {"path", i.path},
                       {"error", nullptr}});
      } else {
        out.push_back({{"name", nullptr}, {"path", e.path}, {"error", e.error}});
      }
    }
    return dump(out);
  }

  std::string store_path() { return host().config().store_path; }
  std::string config_path() { return host().config().path; }

  // fn(arguments_json) -> (ok, text); called on a worker thread with the GIL held.
  void register_tool(const std::string& name, const std::string& description,
                     const std::string& parameters_json, py::object fn) {
    Host& h = host();
    {
      std::lock_guard lock(jobs_mu_);
      py_tools_[name] = std::move(fn);
      if (workers_.empty()) {
        for (int i = 0; i < kToolWorkers; ++i)
          workers_.emplace_back([this] { worker_main(); });
      }
    }
    ExternalTool tool;
    tool.name = name;
    tool.description = description;
    tool.parameters_json = parameters_json;
    tool.call = [this, name](const std::string& arguments, ExternalTool::Done done) {
      {
        std::lock_guard lock(jobs_mu_);
        if (stopping_) return;  // the host is closing: the branch is being cancelled
        jobs_.push_back(Job{name, arguments, std::move(done)});
      }
      jobs_cv_.notify_one();
    };
    // Posted: runs started later see it (the loop runs posted work in order).
    if (!h.loop().post([this, tool] { host_->runtime().add_external_tool(tool); }))
      throw HostError("this troupe host is closed");
  }

 private:
  struct Job {
    std::string tool;
    std::string arguments;
    ExternalTool::Done done;
  };

  // Loop thread.
  void on_event(const RunEvent& ev) {
    auto it = runs_.find(ev.run_id);
    if (it != runs_.end()) {
      it->second->push(ev);
    } else if (starting_) {
      starting_->push(ev);
    }
  }

  bool on_worker_thread() const {
    for (const auto& w : workers_)
      if (w.get_id() == std::this_thread::get_id()) return true;
    return false;
  }

  void worker_main() {
    while (true) {
      Job job;
      {
        std::unique_lock lock(jobs_mu_);
        jobs_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      bool ok = false;
      std::string text;
      {
        py::gil_scoped_acquire gil;
        try {
          py::object fn;
          {
            std::lock_guard lock(jobs_mu_);
            auto it = py_tools_.find(job.tool);
            if (it != py_tools_.end()) fn = it->second;
          }
          if (!fn) {
            text = "the tool '" + job.tool + "' is no longer registered";
          } else {
            py::tuple r = fn(job.arguments);
            ok = r[0].cast<bool>();
            text = r[1].cast<std::string>();
          }
        } catch (py::error_already_set& e) {
          text = e.what();
        } catch (const std::exception& e) {
          text = e.what();
        }
      }
      job.done(ok, text);
    }
  }

  std::unique_ptr<Host> host_;
  std::thread loop_thread_;
  std::atomic<bool> closed_{false};
  // Loop thread only (and the closing thread once the loop thread has ended).
  std::map<std::string, std::shared_ptr<RunState>> runs_;
  std::shared_ptr<RunState> starting_;

  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::map<std::string, py::object> py_tools_;  // touched with the GIL held (and jobs_mu_)
};

// Runtime::cancel only posts the request, so the answer is the run's end, which the loop
// thread records at the request's next count hook or loop turn. Ctrl-C while waiting raises
// (the request stays posted).
bool NativeRun::cancel(const std::string& reason) {
  if (state_->finished()) return false;
  host_->cancel(state_->id(), reason);
  while (true) {
    bool done;
    {
      py::gil_scoped_release nogil;
      done = state_->wait_finished(kSlice);
    }
    if (done) return state_->outcome().status == "cancelled";
    check_signals([] {});
  }
}

// Ctrl-C while waiting: cancel the run, give the loop a moment to record it, re-raise.
void NativeRun::interrupted() {
  host_->cancel(state_->id(), "interrupted (KeyboardInterrupt)");
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!state_->finished() && std::chrono::steady_clock::now() < until)
    state_->wait_finished(kSlice);
}

py::object NativeRun::next_event(std::optional<double> timeout) {
  auto deadline = deadline_of(timeout);
  while (true) {
    RunEvent ev;
    int code;
    {
      py::gil_scoped_release nogil;
      code = state_->wait_event(slice_until(deadline), &ev);
    }
    if (code == 0) return event_tuple(ev);
    if (code == 2) return py::none();
    check_signals([this] { interrupted(); });
    if (deadline && std::chrono::steady_clock::now() >= *deadline)
      raise_timeout("no event of run " + state_->id() + " within the timeout");
  }
}

bool NativeRun::wait(std::optional<double> timeout) {
  auto deadline = deadline_of(timeout);
  while (true) {
    bool done;
    {
      py::gil_scoped_release nogil;
      done = state_->wait_finished(slice_until(deadline));
    }
    if (done) {
      host_->flush();  // what result() returns is also what show() reads
      return true;
    }
    check_signals([this] { interrupted(); });
    if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
  }
}

}  // namespace
}  // namespace troupe::python

PYBIND11_MODULE(_troupe, m) {
  using namespace troupe::python;
  m.doc() = "troupe's native host (use the troupe package, not this module)";
  m.attr("version") = TROUPE_VERSION_STRING;

  static py::exception<HostError> troupe_error(m, "TroupeError");
  static py::exception<troupe::ConfigError> config_error(m, "ConfigError", troupe_error.ptr());
  static py::exception<troupe::StoreError> store_error(m, "StoreError", troupe_error.ptr());
  static py::exception<ResumeRefused> resume_refused(m, "ResumeRefused", troupe_error.ptr());
  // Every C++ exception becomes a Python one here, its message redacted (decision 0013);
  // Python's own exceptions (error_already_set) and pybind11's pass through unchanged.
  py::register_exception_translator([](std::exception_ptr p) {
    auto raise = [](PyObject* type, const char* what) {
      PyErr_SetString(type, troupe::log::redact(what).c_str());
    };
    try {
      if (p) std::rethrow_exception(p);
    } catch (const troupe::ConfigError& e) {
      raise(config_error.ptr(), e.what());
    } catch (const troupe::StoreError& e) {
      raise(store_error.ptr(), e.what());
    } catch (const troupe::InputError& e) {
      raise(PyExc_ValueError, e.what());
    } catch (const HostError& e) {
      raise(troupe_error.ptr(), e.what());
    } catch (const ResumeRefused& e) {
      raise(resume_refused.ptr(), e.what());
    } catch (const py::error_already_set&) {
      throw;
    } catch (const py::builtin_exception&) {
      throw;
    } catch (const std::out_of_range& e) {  // the types pybind11 would pick, from here on
      raise(PyExc_IndexError, e.what());
    } catch (const std::overflow_error& e) {
      raise(PyExc_OverflowError, e.what());
    } catch (const std::invalid_argument& e) {
      raise(PyExc_ValueError, e.what());
    } catch (const std::domain_error& e) {
      raise(PyExc_ValueError, e.what());
    } catch (const std::length_error& e) {
      raise(PyExc_ValueError, e.what());
    } catch (const std::range_error& e) {
      raise(PyExc_ValueError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory");
    } catch (const std::exception& e) {
      raise(PyExc_RuntimeError, e.what());
    }
  });

  py::class_<NativeRun>(m, "NativeRun")
      .def_property_readonly("id", &NativeRun::id)
      .def_property_readonly("finished", &NativeRun::finished)
      .def("next_event", &NativeRun::next_event, py::arg("timeout") = py::none())
      .def("wait", &NativeRun::wait, py::arg("timeout") = py::none())
      .def("poll", &NativeRun::poll)
      .def("outcome", &NativeRun::outcome)
      .def("cancel", &NativeRun::cancel, py::arg("reason") = "cancelled from Python")
      .def("notify_fd", &NativeRun::notify_fd)
      .def("drain_notify", &NativeRun::drain_notify);

  py::class_<NativeHost>(m, "NativeHost")
      .def(py::init<const std::optional<std::string>&, const std::optional<std::string>&,
                    const std::vector<std::string>&>(),
           py::arg("config") = py::none(), py::arg("store") = py::none(),
           py::arg("plugin_dirs") = std::vector<std::string>{})
      .def("close", &NativeHost::close)
      .def_property_readonly("closed", &NativeHost::closed)
      .def(
          "start",
          [](NativeHost& h, const std::string& path, const std::string& source,
             const std::string& chunk_name, const std::string& input_json) {
            return NativeRun(h.start(path, source, chunk_name, input_json), &h);
          },
          py::keep_alive<0, 1>(), py::arg("path"), py::arg("source"), py::arg("chunk_name"),
          py::arg("input_json"))
      .def(
          "resume",
          [](NativeHost& h, const std::string& run_id, bool allow_changed, bool only_due,
             bool retry_failed) {
            return NativeRun(h.resume(run_id, allow_changed, only_due, retry_failed), &h);
          },
          py::keep_alive<0, 1>(), py::arg("run_id"), py::arg("allow_changed") = false,
          py::arg("only_due") = false, py::arg("retry_failed") = false)
      .def(
          "fork",
          [](NativeHost& h, const std::string& run_id, const std::string& from_step,
             const std::string& input_json, const std::string& script_path, bool offline) {
            return NativeRun(h.fork(run_id, from_step, input_json, script_path, offline), &h);
          },
          py::keep_alive<0, 1>(), py::arg("run_id"), py::arg("from_step"), py::arg("input_json"),
          py::arg("script_path"), py::arg("offline"))
      .def("submit", &NativeHost::submit, py::arg("path"), py::arg("input_json"))
      .def("claimable", &NativeHost::claimable, py::arg("limit"))
      .def("signal", &NativeHost::signal, py::arg("run_id"), py::arg("name"), py::arg("data_json"))
      .def("approvals", &NativeHost::approvals, py::arg("run_id"))
      .def("dead_letters", &NativeHost::dead_letters, py::arg("limit"))
      .def("dead_letter", &NativeHost::dead_letter, py::arg("run_id"))
      .def("discard_dead_letter", &NativeHost::discard_dead_letter, py::arg("run_id"))
      .def("approve", &NativeHost::approve, py::arg("run_id"), py::arg("key"), py::arg("choice"),
           py::arg("by"), py::arg("comment"))
      .def("runs", &NativeHost::runs, py::arg("limit"), py::arg("status"), py::arg("workflow"))
      .def("show", &NativeHost::show, py::arg("run_id"))
      .def("events", &NativeHost::events, py::arg("run_id"), py::arg("after") = 0,
           py::arg("limit") = 100000)
      .def("gc", &NativeHost::gc, py::arg("older_than"), py::arg("statuses"), py::arg("dry_run"))
      .def("plugins", &NativeHost::plugins)
      .def("plugin_search_path", &NativeHost::plugin_search_path)
      .def_property_readonly("store_path", &NativeHost::store_path)
      .def_property_readonly("config_path", &NativeHost::config_path)
      .def("register_tool", &NativeHost::register_tool, py::arg("name"), py::arg("description"),
           py::arg("parameters_json"), py::arg("fn"));
}
