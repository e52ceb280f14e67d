// sqlite_store.cpp: troupe::Store on SQLite — WAL, one group-committing writer thread behind a
// queue bounded in bytes, per-run write accounting, pooled readers.
//
// Over 600 lines on purpose: the writer, its queue, the prepared statements and the readers
// share one private state. The PostgreSQL store (issue 19) is the moment to cut it: the bounded
// queue and the per-run accounting become a part both stores use.
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <variant>

#include "core/log.h"
#include "store/gc.h"
#include "store/migrations.h"
#include "store/store.h"

namespace troupe {
namespace {

constexpr int kBusyTimeoutMs = 5000;
// Most ops one transaction holds: bounds the time before the first callback of a burst runs.
constexpr size_t kMaxBatch = 512;
// Idle reader connections kept open; more are opened on demand and closed after use.
constexpr size_t kMaxIdleReaders = 4;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// The queued write operations. finish_run has no record type of its own in store.h.
struct FinishRun {
  std::string run_id;
  std::string status;
  std::string output_json;
  std::string error;
  int64_t finished_ms = 0;
};
// The workflow's declared name, known once its script has run (runs start under the file name).
struct NameRun {
  std::string run_id;
  std::string workflow;
};
// A cancel asked for a run (request: true), or its withdrawal once applied (request: false).
struct CancelRun {
  std::string run_id;
  std::string reason;
  int64_t requested_ms = 0;
  bool request = true;
};
using Write = std::variant<RunRecord, FinishRun, StepRecord, EventRecord, NameRun, CancelRun>;

struct Op {
  Write write;
  Store::Done done;
  uint64_t bytes = 0;  // what it costs the queue
};

// A write's fixed cost in the queue (the op, its strings' headers, the callback), on top of the
// bytes of its fields.
constexpr uint64_t kOpOverhead = sizeof(Op) + 64;

uint64_t write_bytes(const Write& write) {
  uint64_t n = kOpOverhead;
  if (auto* run = std::get_if<RunRecord>(&write)) {
    n += run->id.size() + run->workflow.size() + run->source.size() + run->input_json.size() +
         run->status.size() + run->output_json.size() + run->error.size();
  } else if (auto* fin = std::get_if<FinishRun>(&write)) {
    n += fin->run_id.size() + fin->status.size() + fin->output_json.size() + fin->error.size();
  } else if (auto* name = std::get_if<NameRun>(&write)) {
    n += name->run_id.size() + name->workflow.size();
  } else if (auto* cancel = std::get_if<CancelRun>(&write)) {
    n += cancel->run_id.size() + cancel->reason.size();
  } else if (auto* step = std::get_if<StepRecord>(&write)) {
    n += step->run_id.size() + step->step_key.size() + step->kind.size() + step->agent.size() +
         step->model.size() + step->request_json.size() + step->response_json.size() +
         step->status.size() + step->error.size();
  } else {
    const auto& event = std::get<EventRecord>(write);
    n += event.run_id.size() + event.type.size() + event.step_key.size() + event.data_json.size();
  }
  return n;
}

const std::string& run_of(const Write& write) {
  if (auto* run = std::get_if<RunRecord>(&write)) return run->id;
  if (auto* fin = std::get_if<FinishRun>(&write)) return fin->run_id;
  if (auto* name = std::get_if<NameRun>(&write)) return name->run_id;
  if (auto* cancel = std::get_if<CancelRun>(&write)) return cancel->run_id;
  if (auto* step = std::get_if<StepRecord>(&write)) return step->run_id;
  return std::get<EventRecord>(write).run_id;
}

enum WriteStmt {
  kBegin,
  kCommit,
  kRollback,
  kInsertRun,
  kFinishRun,
  kUpsertStep,
  kInsertEvent,
  kNameRun,
  kRequestCancel,
  kClearCancel
};
const char* const kWriteSql[] = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "INSERT INTO runs (id, workflow, source, input, status, output, error, created_ms, "
    "finished_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    "UPDATE runs SET status = ?2, output = ?3, error = ?4, finished_ms = ?5 WHERE id = ?1",
    "INSERT OR REPLACE INTO steps (run_id, step_key, kind, agent, model, request, response, "
    "status, error, input_tokens, output_tokens, started_ms, finished_ms, latency_us) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    "INSERT INTO events (run_id, ts_ms, type, step_key, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    "UPDATE runs SET workflow = ?2 WHERE id = ?1",
    "INSERT OR REPLACE INTO cancel_requests (run_id, reason, requested_ms) VALUES (?1, ?2, ?3)",
    "DELETE FROM cancel_requests WHERE run_id = ?1",
};
constexpr size_t kWriteStmtCount = std::size(kWriteSql);

enum ReadStmt { kListRuns, kGetRun, kRunIdsFrom, kGetSteps, kGetEvents, kCancelRequests };
const char* const kReadSql[] = {
    "SELECT id, workflow, source, input, status, output, error, created_ms, finished_ms"
    " FROM runs WHERE (?1 = '' OR status = ?1) AND (?2 = '' OR workflow = ?2)"
    " ORDER BY created_ms DESC, rowid DESC LIMIT ?3",
    "SELECT id, workflow, source, input, status, output, error, created_ms, finished_ms"
    " FROM runs WHERE id = ?1",
    // Ids sharing a prefix form one contiguous range in the primary key's (binary) order.
    "SELECT id FROM runs WHERE id >= ?1 ORDER BY id",
    "SELECT run_id, step_key, kind, agent, model, request, response, status, error, "
    "input_tokens, output_tokens, started_ms, finished_ms, latency_us FROM steps"
    " WHERE run_id = ?1 ORDER BY started_ms, rowid",
    "SELECT seq, run_id, ts_ms, type, step_key, data FROM events"
    " WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    "SELECT run_id, reason FROM cancel_requests ORDER BY requested_ms",
};
constexpr size_t kReadStmtCount = std::size(kReadSql);

// A read-only connection and its lazily prepared statements. Used by one thread at a time.
struct Reader {
  DbPtr db;  // declared first so the statements are finalized before it closes
  StmtPtr stmts[kReadStmtCount];
};

// Opens a connection. NOMUTEX: each connection is used by one thread at a time (the writer
// thread, or whoever leased a reader), so SQLite's per-connection mutex is pure overhead.
DbPtr open_connection(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    throw StoreError(path + ": cannot open: " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  return db;
}

StmtPtr prepare(sqlite3* db, const char* sql, const std::string& path) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    throw StoreError(path + ": cannot prepare '" + sql + "': " + sqlite3_errmsg(db));
  }
  return StmtPtr(stmt);
}

// Returns the single text value of a pragma, or throws.
std::string pragma(sqlite3* db, const std::string& sql, const std::string& path) {
  StmtPtr stmt = prepare(db, sql.c_str(), path);
  int rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    throw StoreError(path + ": " + sql + ": " + sqlite3_errmsg(db));
  }
  const unsigned char* text = rc == SQLITE_ROW ? sqlite3_column_text(stmt.get(), 0) : nullptr;
  return text ? reinterpret_cast<const char*>(text) : "";
}

// The bound strings outlive the step (the op is alive until reset), hence SQLITE_STATIC.
void bind_text(sqlite3_stmt* stmt, int index, const std::string& value) {
  sqlite3_bind_text64(stmt, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
}

std::string column_text(sqlite3_stmt* stmt, int index) {
  const unsigned char* text = sqlite3_column_text(stmt, index);
  if (!text) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt, index)));
}

RunRecord read_run(sqlite3_stmt* stmt) {
  RunRecord run;
  run.id = column_text(stmt, 0);
  run.workflow = column_text(stmt, 1);
  run.source = column_text(stmt, 2);
  run.input_json = column_text(stmt, 3);
  run.status = column_text(stmt, 4);
  run.output_json = column_text(stmt, 5);
  run.error = column_text(stmt, 6);
  run.created_ms = sqlite3_column_int64(stmt, 7);
  run.finished_ms = sqlite3_column_int64(stmt, 8);
  return run;
}

// Redacts every text of a write (decision 0013): whatever a caller forgot, no registered
// secret reaches the file. On the writer thread, off the event loop.
void redact_write(Write& write) {
  auto clean = [](std::string& text) { text = log::redact(text); };
  if (auto* run = std::get_if<RunRecord>(&write)) {
    for (std::string* t :
         {&run->workflow, &run->source, &run->input_json, &run->output_json, &run->error})
      clean(*t);
  } else if (auto* fin = std::get_if<FinishRun>(&write)) {
    clean(fin->output_json);
    clean(fin->error);
  } else if (auto* name = std::get_if<NameRun>(&write)) {
    clean(name->workflow);
  } else if (auto* cancel = std::get_if<CancelRun>(&write)) {
    clean(cancel->reason);
  } else if (auto* step = std::get_if<StepRecord>(&write)) {
    for (std::string* t :
         {&step->agent, &step->model, &step->request_json, &step->response_json, &step->error})
      clean(*t);
  } else {
    clean(std::get<EventRecord>(write).data_json);
  }
}

// Describes an op for error messages; no payloads, which could hold user data.
std::string describe(const Write& write) {
  if (auto* run = std::get_if<RunRecord>(&write)) return "create_run '" + run->id + "'";
  if (auto* fin = std::get_if<FinishRun>(&write)) return "finish_run '" + fin->run_id + "'";
  if (auto* name = std::get_if<NameRun>(&write)) return "set_run_workflow '" + name->run_id + "'";
  if (auto* cancel = std::get_if<CancelRun>(&write)) {
    return std::string(cancel->request ? "request_cancel '" : "clear_cancel '") + cancel->run_id +
           "'";
  }
  if (auto* step = std::get_if<StepRecord>(&write)) {
    return "record_step '" + step->run_id + "' '" + step->step_key + "'";
  }
  const auto& event = std::get<EventRecord>(write);
  return "append_event '" + event.run_id + "' " + event.type;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(const std::string& path, bool readonly, const StoreOptions& options);
  ~SqliteStore() override;

  void create_run(const RunRecord& run, Done on_durable) override {
    enqueue(run, std::move(on_durable));
  }
  void finish_run(const std::string& run_id, const std::string& status,
                  const std::string& output_json, const std::string& error, int64_t finished_ms,
                  Done on_durable) override {
    enqueue(FinishRun{run_id, status, output_json, error, finished_ms}, std::move(on_durable));
  }
  void set_run_workflow(const std::string& run_id, const std::string& workflow,
                        Done on_durable) override {
    enqueue(NameRun{run_id, workflow}, std::move(on_durable));
  }
  void record_step(const StepRecord& step, Done on_durable) override {
    enqueue(step, std::move(on_durable));
  }
  void append_event(const EventRecord& event, Done on_durable) override {
    enqueue(event, std::move(on_durable));
  }
  void request_cancel(const std::string& run_id, const std::string& reason, int64_t requested_ms,
                      Done on_durable) override {
    enqueue(CancelRun{run_id, reason, requested_ms, true}, std::move(on_durable));
  }
  void clear_cancel(const std::string& run_id, Done on_durable) override {
    enqueue(CancelRun{run_id, "", 0, false}, std::move(on_durable));
  }
  void flush() override;
  std::string last_error() const override;
  uint64_t queued_bytes() const override;
  RunWriteStats run_writes(const std::string& run_id) const override;
  void forget_run(const std::string& run_id) override;
  void set_failure_listener(FailureListener listener) override;

  std::vector<RunRecord> list_runs(const RunFilter& filter) const override;
  std::optional<RunRecord> get_run(const std::string& id_or_prefix) const override;
  std::vector<StepRecord> get_steps(const std::string& run_id) const override;
  std::vector<EventRecord> get_events(const std::string& run_id, int64_t after_seq,
                                      int limit) const override;
  std::vector<CancelRequest> cancel_requests() const override;
  int schema_version() const override { return version_; }
  // On a connection of its own, not the writer's (gc.cpp says why); this process's queued
  // writes go first, so a run it has just finished counts.
  GcResult delete_old_runs(const GcOptions& options) override {
    flush();
    return store_gc::delete_old_runs(path_, readonly_, options);
  }

 private:
  void enqueue(Write write, Done done);
  void writer_main();
  void commit_batch(std::vector<Op>& batch, size_t begin, size_t end);
  void settle(std::vector<Op>& batch, size_t begin, size_t end,
              const std::vector<std::string>& errors);
  std::string apply(const Write& write);
  std::string apply_alone(const Write& write);
  std::string run_write(WriteStmt which);
  void rollback_if_open();

  std::unique_ptr<Reader> acquire_reader() const;
  void release_reader(std::unique_ptr<Reader> reader) const;
  sqlite3_stmt* read_stmt(Reader& reader, ReadStmt which) const;
  bool step_read(Reader& reader, sqlite3_stmt* stmt, const char* what) const;

  const std::string path_;
  const bool readonly_;
  const uint64_t max_queued_bytes_;
  int version_ = 0;

  // The writer's connection: after construction only the writer thread touches it.
  DbPtr wdb_;
  StmtPtr wstmts_[kWriteStmtCount];

  mutable std::mutex mu_;  // guards the queue, the counters and the accounting below
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::condition_variable space_cv_;  // the writer freed queue bytes
  std::vector<Op> queue_;
  uint64_t enqueued_ = 0;
  uint64_t completed_ = 0;     // ops whose callbacks have run
  uint64_t queued_bytes_ = 0;  // bytes of ops not yet committed (queued or in the writer's batch)
  std::unordered_map<std::string, RunWriteStats> runs_;
  std::string last_error_;
  bool stopping_ = false;
  std::thread writer_;

  std::mutex listener_mu_;  // held while the listener runs, so replacing it waits for the call
  FailureListener listener_;

  mutable std::mutex readers_mu_;
  mutable std::vector<std::unique_ptr<Reader>> idle_readers_;
};

SqliteStore::SqliteStore(const std::string& path, bool readonly, const StoreOptions& options)
    : path_(path), readonly_(readonly), max_queued_bytes_(options.max_queued_bytes) {
  if (path.empty()) throw StoreError("store path is empty");
  if (path == ":memory:" || path.rfind("file:", 0) == 0) {
    // Readers use their own connections, which could not see a private in-memory database.
    throw StoreError(path + ": the store needs a plain file path");
  }

  if (readonly_) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw StoreError(path + ": no such store");
    auto reader = std::make_unique<Reader>();
    reader->db = open_connection(path, SQLITE_OPEN_READONLY);
    version_ = store_schema::inspect(reader->db.get(), path);
    if (version_ == 0) throw StoreError(path + ": not a troupe store: the database is empty");
    if (version_ < store_schema::latest_version()) {
      throw StoreError(path + ": schema version " + std::to_string(version_) +
                       " is older than this build of troupe reads (" +
                       std::to_string(store_schema::latest_version()) +
                       "); open it once for writing to migrate it");
    }
    idle_readers_.push_back(std::move(reader));
    return;
  }

  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      throw StoreError(path + ": cannot create folder '" + parent.string() + "': " + ec.message());
    }
  }
  wdb_ = open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  sqlite3* db = wdb_.get();
  // SQLite quietly opens a file it cannot write read-only; every write would then fail. Say so
  // now, before a run starts, instead of failing each run's first write.
  if (sqlite3_db_readonly(db, "main") == 1) {
    throw StoreError(path +
                     ": the store is read-only (the file, its folder or the file system cannot "
                     "be written); troupe needs to write its journal there");
  }
  // Look before touching anything: a foreign or newer file must be left exactly as it was.
  store_schema::inspect(db, path);
  std::string mode = pragma(db, "PRAGMA journal_mode = WAL", path);
  if (mode != "wal")
    throw StoreError(path + ": cannot switch to WAL mode (journal_mode is '" + mode + "')");
  // NORMAL in WAL mode: a commit survives a process crash; only a power loss may drop the
  // last commits, never corrupt the file. Checkpoints still fsync.
  pragma(db, "PRAGMA synchronous = NORMAL", path);
  pragma(db, "PRAGMA foreign_keys = ON", path);
  // After a burst the WAL file is truncated back to this size at the next checkpoint.
  pragma(db, "PRAGMA journal_size_limit = 67108864", path);
  version_ = store_schema::migrate(db, path);
  for (size_t i = 0; i < kWriteStmtCount; ++i)
    wstmts_[i] = prepare(db, kWriteSql[i], path);
  writer_ = std::thread([this] { writer_main(); });
}

SqliteStore::~SqliteStore() {
  if (writer_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_one();
    writer_.join();  // the writer drains the queue before it returns
  }
  // Readers go first so that the writer's connection is the last one, which checkpoints and
  // removes the WAL file when it closes.
  idle_readers_.clear();
}

// ---- writes

void SqliteStore::enqueue(Write write, Done done) {
  if (readonly_)
    throw StoreError(path_ + ": the store is open read-only; " + describe(write) + " refused");
  const uint64_t bytes = write_bytes(write);
  bool was_empty;
  {
    std::unique_lock lock(mu_);
    // Back-pressure: whoever writes faster than the disk waits for the writer to catch up,
    // instead of growing the queue without bound. The writer thread itself (a callback that
    // writes) never waits: it would wait for itself.
    auto fits = [&] { return queued_bytes_ == 0 || queued_bytes_ + bytes <= max_queued_bytes_; };
    if (!fits() && std::this_thread::get_id() != writer_.get_id()) space_cv_.wait(lock, fits);
    was_empty = queue_.empty();
    queued_bytes_ += bytes;
    // A run's accounting starts with its create_run and ends with forget_run: a late write of
    // a forgotten run (a cancelled call that completed anyway) does not bring it back.
    auto it = std::holds_alternative<RunRecord>(write) ? runs_.try_emplace(run_of(write)).first
                                                       : runs_.find(run_of(write));
    if (it != runs_.end()) {
      ++it->second.writes;
      it->second.bytes += bytes;
      it->second.queued_bytes += bytes;
    }
    queue_.push_back(Op{std::move(write), std::move(done), bytes});
    ++enqueued_;
  }
  // The writer sleeps only on an empty queue, so only the first op of a batch needs to wake it.
  if (was_empty) work_cv_.notify_one();
}

void SqliteStore::flush() {
  if (readonly_) return;
  // Called from an on_durable callback (the writer thread): waiting would deadlock, and
  // everything before the op being acknowledged is already committed.
  if (std::this_thread::get_id() == writer_.get_id()) return;
  std::unique_lock lock(mu_);
  const uint64_t target = enqueued_;
  done_cv_.wait(lock, [&] { return completed_ >= target; });
}

std::string SqliteStore::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

uint64_t SqliteStore::queued_bytes() const {
  std::lock_guard lock(mu_);
  return queued_bytes_;
}

RunWriteStats SqliteStore::run_writes(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  auto it = runs_.find(run_id);
  return it == runs_.end() ? RunWriteStats{} : it->second;
}

void SqliteStore::forget_run(const std::string& run_id) {
  std::lock_guard lock(mu_);
  runs_.erase(run_id);
}

void SqliteStore::set_failure_listener(FailureListener listener) {
  std::lock_guard lock(listener_mu_);
  listener_ = std::move(listener);
}

void SqliteStore::writer_main() {
  std::vector<Op> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything is written
      batch.swap(queue_);          // take all queued ops; the queue keeps the old capacity
    }
    for (Op& op : batch)
      redact_write(op.write);
    for (size_t begin = 0; begin < batch.size(); begin += kMaxBatch) {
      const size_t end = std::min(batch.size(), begin + kMaxBatch);
      commit_batch(batch, begin, end);
      {
        std::lock_guard lock(mu_);
        completed_ += end - begin;
      }
      done_cv_.notify_all();
    }
    batch.clear();
  }
}

// Writes ops [begin, end) in one transaction and then runs their callbacks. Each op is one
// statement, and a failing statement is undone by SQLite on its own while the transaction
// goes on; so a bad op fails alone. Only if the whole transaction is lost (disk full, I/O
// error, failed commit) is every op retried in a transaction of its own.
void SqliteStore::commit_batch(std::vector<Op>& batch, size_t begin, size_t end) {
  std::vector<std::string> errors(end - begin);
  std::string begin_error = run_write(kBegin);
  if (!begin_error.empty()) {
    for (auto& error : errors)
      error = "cannot begin a transaction: " + begin_error;
  } else {
    bool lost = false;
    for (size_t i = begin; i < end && !lost; ++i) {
      errors[i - begin] = apply(batch[i].write);
      lost = !errors[i - begin].empty() && sqlite3_get_autocommit(wdb_.get());
    }
    if (!lost) {
      std::string commit_error = run_write(kCommit);
      if (!commit_error.empty()) {
        log::warn("store", path_ + ": group commit failed (" + commit_error +
                               "); retrying each write alone");
        rollback_if_open();
        lost = true;
      }
    }
    if (lost) {
      for (size_t i = begin; i < end; ++i)
        errors[i - begin] = apply_alone(batch[i].write);
    }
  }
  settle(batch, begin, end, errors);
}

// Charges failures to their runs and tells: the failure listener first (so that a run fails
// before anything of it resumes), then each op's callback. Then frees the ops and their queue
// bytes, which lets waiting producers go on.
void SqliteStore::settle(std::vector<Op>& batch, size_t begin, size_t end,
                         const std::vector<std::string>& errors) {
  struct Failure {
    std::string run_id;
    std::string message;
    bool first;  // the run's first failure, or a run without accounting: log it and tell
  };
  std::vector<Failure> failures;
  {
    std::lock_guard lock(mu_);
    for (size_t i = begin; i < end; ++i) {
      const std::string& error = errors[i - begin];
      if (error.empty()) continue;
      const std::string& run_id = run_of(batch[i].write);
      std::string message = path_ + ": " + describe(batch[i].write) + ": " + error;
      auto it = runs_.find(run_id);
      bool first = it == runs_.end() || it->second.failed == 0;
      if (it != runs_.end() && it->second.failed++ == 0) it->second.error = message;
      last_error_ = message;
      failures.push_back({run_id, std::move(message), first});
    }
  }
  for (const Failure& failure : failures) {
    if (!failure.first) continue;
    log::error("store", failure.message);
    std::lock_guard lock(listener_mu_);
    if (!listener_) continue;
    try {
      listener_(failure.run_id, failure.message);
    } catch (const std::exception& e) {
      log::error("store", std::string("the failure listener threw: ") + e.what());
    } catch (...) {
      log::error("store", "the failure listener threw");
    }
  }

  for (size_t i = begin; i < end; ++i) {
    const std::string& error = errors[i - begin];
    if (!batch[i].done) continue;
    // A callback that throws must not take the writer thread (and every later write) down.
    try {
      batch[i].done(error.empty());
    } catch (const std::exception& e) {
      log::error("store", std::string("on_durable callback threw: ") + e.what());
    } catch (...) {
      log::error("store", "on_durable callback threw");
    }
  }

  // The ops' payloads and what their callbacks captured go now, not after the whole batch (and
  // not under the lock: a destructor may do anything).
  std::vector<std::pair<std::string, uint64_t>> freed;
  freed.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    freed.emplace_back(run_of(batch[i].write), batch[i].bytes);
    batch[i] = Op{};
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& [run_id, bytes] : freed) {
      queued_bytes_ -= bytes;
      auto it = runs_.find(run_id);
      if (it != runs_.end()) it->second.queued_bytes -= bytes;
    }
  }
  space_cv_.notify_all();
}

std::string SqliteStore::apply_alone(const Write& write) {
  std::string error = run_write(kBegin);
  if (!error.empty()) return "cannot begin a transaction: " + error;
  error = apply(write);
  if (error.empty()) error = run_write(kCommit);
  if (!error.empty()) rollback_if_open();
  return error;
}

void SqliteStore::rollback_if_open() {
  if (!sqlite3_get_autocommit(wdb_.get())) run_write(kRollback);
}

// Steps a write statement whose parameters are bound, then resets it. Returns "" or the error.
std::string SqliteStore::run_write(WriteStmt which) {
  sqlite3_stmt* stmt = wstmts_[which].get();
  int rc = sqlite3_step(stmt);
  std::string error;
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) error = sqlite3_errmsg(wdb_.get());
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);  // the bound strings belong to the op, which goes away
  return error;
}

std::string SqliteStore::apply(const Write& write) {
  if (auto* run = std::get_if<RunRecord>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kInsertRun].get();
    bind_text(stmt, 1, run->id);
    bind_text(stmt, 2, run->workflow);
    bind_text(stmt, 3, run->source);
    bind_text(stmt, 4, run->input_json);
    bind_text(stmt, 5, run->status);
    bind_text(stmt, 6, run->output_json);
    bind_text(stmt, 7, run->error);
    sqlite3_bind_int64(stmt, 8, run->created_ms);
    sqlite3_bind_int64(stmt, 9, run->finished_ms);
    return run_write(kInsertRun);
  }
  if (auto* fin = std::get_if<FinishRun>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kFinishRun].get();
    bind_text(stmt, 1, fin->run_id);
    bind_text(stmt, 2, fin->status);
    bind_text(stmt, 3, fin->output_json);
    bind_text(stmt, 4, fin->error);
    sqlite3_bind_int64(stmt, 5, fin->finished_ms);
    std::string error = run_write(kFinishRun);
    if (error.empty() && sqlite3_changes(wdb_.get()) == 0) error = "no such run";
    return error;
  }
  if (auto* name = std::get_if<NameRun>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kNameRun].get();
    bind_text(stmt, 1, name->run_id);
    bind_text(stmt, 2, name->workflow);
    std::string error = run_write(kNameRun);
    if (error.empty() && sqlite3_changes(wdb_.get()) == 0) error = "no such run";
    return error;
  }
  if (auto* cancel = std::get_if<CancelRun>(&write)) {
    sqlite3_stmt* stmt = wstmts_[cancel->request ? kRequestCancel : kClearCancel].get();
    bind_text(stmt, 1, cancel->run_id);
    if (cancel->request) {
      bind_text(stmt, 2, cancel->reason);
      sqlite3_bind_int64(stmt, 3, cancel->requested_ms);
    }
    return run_write(cancel->request ? kRequestCancel : kClearCancel);
  }
  if (auto* step = std::get_if<StepRecord>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kUpsertStep].get();
    bind_text(stmt, 1, step->run_id);
    bind_text(stmt, 2, step->step_key);
    bind_text(stmt, 3, step->kind);
    bind_text(stmt, 4, step->agent);
    bind_text(stmt, 5, step->model);
    bind_text(stmt, 6, step->request_json);
    bind_text(stmt, 7, step->response_json);
    bind_text(stmt, 8, step->status);
    bind_text(stmt, 9, step->error);
    sqlite3_bind_int64(stmt, 10, step->input_tokens);
    sqlite3_bind_int64(stmt, 11, step->output_tokens);
    sqlite3_bind_int64(stmt, 12, step->started_ms);
    sqlite3_bind_int64(stmt, 13, step->finished_ms);
    sqlite3_bind_int64(stmt, 14, step->latency_us);
    return run_write(kUpsertStep);
  }
  const auto& event = std::get<EventRecord>(write);
  sqlite3_stmt* stmt = wstmts_[kInsertEvent].get();
  bind_text(stmt, 1, event.run_id);
  sqlite3_bind_int64(stmt, 2, event.ts_ms);
  bind_text(stmt, 3, event.type);
  bind_text(stmt, 4, event.step_key);
  bind_text(stmt, 5, event.data_json);
  return run_write(kInsertEvent);
}

// ---- reads

std::unique_ptr<Reader> SqliteStore::acquire_reader() const {
  {
    std::lock_guard lock(readers_mu_);
    if (!idle_readers_.empty()) {
      std::unique_ptr<Reader> reader = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return reader;
    }
  }
  auto reader = std::make_unique<Reader>();
  reader->db = open_connection(path_, SQLITE_OPEN_READONLY);
  return reader;
}

// Only readers that finished cleanly come back; after an error the connection is dropped.
void SqliteStore::release_reader(std::unique_ptr<Reader> reader) const {
  std::lock_guard lock(readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(reader));
}

sqlite3_stmt* SqliteStore::read_stmt(Reader& reader, ReadStmt which) const {
  if (!reader.stmts[which]) reader.stmts[which] = prepare(reader.db.get(), kReadSql[which], path_);
  return reader.stmts[which].get();
}

// Steps a read statement: true on a row, false when done; throws on an error.
bool SqliteStore::step_read(Reader& reader, sqlite3_stmt* stmt, const char* what) const {
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw StoreError(path_ + ": " + what + ": " + sqlite3_errmsg(reader.db.get()));
}

std::vector<RunRecord> SqliteStore::list_runs(const RunFilter& filter) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kListRuns);
  bind_text(stmt, 1, filter.status);
  bind_text(stmt, 2, filter.workflow);
  sqlite3_bind_int64(stmt, 3, filter.limit > 0 ? filter.limit : -1);  // -1: no limit
  std::vector<RunRecord> runs;
  while (step_read(*reader, stmt, "list_runs"))
    runs.push_back(read_run(stmt));
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return runs;
}

std::optional<RunRecord> SqliteStore::get_run(const std::string& id_or_prefix) const {
  if (id_or_prefix.empty()) return std::nullopt;
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* by_id = read_stmt(*reader, kGetRun);
  std::optional<RunRecord> found;

  // A full id wins even when it is also the prefix of longer ids.
  bind_text(by_id, 1, id_or_prefix);
  if (step_read(*reader, by_id, "get_run")) found = read_run(by_id);
  sqlite3_reset(by_id);

  if (!found) {
    sqlite3_stmt* ids = read_stmt(*reader, kRunIdsFrom);
    bind_text(ids, 1, id_or_prefix);
    std::string match;
    size_t matches = 0;
    while (step_read(*reader, ids, "get_run")) {
      std::string id = column_text(ids, 0);
      if (id.compare(0, id_or_prefix.size(), id_or_prefix) != 0) break;  // past the range
      if (matches++ == 0) match = std::move(id);
    }
    sqlite3_reset(ids);
    if (matches > 1) {
      release_reader(std::move(reader));
      throw StoreError("run id prefix '" + id_or_prefix + "' is ambiguous (" +
                       std::to_string(matches) + " runs)");
    }
    if (matches == 1) {
      bind_text(by_id, 1, match);
      if (step_read(*reader, by_id, "get_run")) found = read_run(by_id);
      sqlite3_reset(by_id);
    }
  }
  release_reader(std::move(reader));
  return found;
}

std::vector<StepRecord> SqliteStore::get_steps(const std::string& run_id) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kGetSteps);
  bind_text(stmt, 1, run_id);
  std::vector<StepRecord> steps;
  while (step_read(*reader, stmt, "get_steps")) {
    StepRecord step;
    step.run_id = column_text(stmt, 0);
    step.step_key = column_text(stmt, 1);
    step.kind = column_text(stmt, 2);
    step.agent = column_text(stmt, 3);
    step.model = column_text(stmt, 4);
    step.request_json = column_text(stmt, 5);
    step.response_json = column_text(stmt, 6);
    step.status = column_text(stmt, 7);
    step.error = column_text(stmt, 8);
    step.input_tokens = sqlite3_column_int64(stmt, 9);
    step.output_tokens = sqlite3_column_int64(stmt, 10);
    step.started_ms = sqlite3_column_int64(stmt, 11);
    step.finished_ms = sqlite3_column_int64(stmt, 12);
    step.latency_us = sqlite3_column_int64(stmt, 13);
    steps.push_back(std::move(step));
  }
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return steps;
}

std::vector<EventRecord> SqliteStore::get_events(const std::string& run_id, int64_t after_seq,
                                                 int limit) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kGetEvents);
  bind_text(stmt, 1, run_id);
  sqlite3_bind_int64(stmt, 2, after_seq);
  sqlite3_bind_int64(stmt, 3, limit > 0 ? limit : -1);
  std::vector<EventRecord> events;
  while (step_read(*reader, stmt, "get_events")) {
    EventRecord event;
    event.seq = sqlite3_column_int64(stmt, 0);
    event.run_id = column_text(stmt, 1);
    event.ts_ms = sqlite3_column_int64(stmt, 2);
    event.type = column_text(stmt, 3);
    event.step_key = column_text(stmt, 4);
    event.data_json = column_text(stmt, 5);
    events.push_back(std::move(event));
  }
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return events;
}

std::vector<CancelRequest> SqliteStore::cancel_requests() const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kCancelRequests);
  std::vector<CancelRequest> requests;
  while (step_read(*reader, stmt, "cancel_requests")) {
    requests.push_back({column_text(stmt, 0), column_text(stmt, 1)});
  }
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return requests;
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::string& path, const StoreOptions& options) {
  return std::make_unique<SqliteStore>(path, false, options);
}

std::unique_ptr<Store> Store::open_readonly(const std::string& path) {
  return std::make_unique<SqliteStore>(path, true, StoreOptions{});
}

}  // namespace troupe
