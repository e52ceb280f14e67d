// gc.cpp: deleting old runs (troupe gc) — the ended runs that finished before a cutoff, with
// their steps, events and cancel requests, in short transactions on a connection of its own.
//
// Its own connection, not the writer thread's queue. The writer commits the journal of live
// runs in group transactions whose callbacks resume coroutines; a gc batch queued among them
// would sit inside such a transaction and hold back every callback of it, and its failure
// (a busy store) would be charged to a run. Most of the time gc is another process anyway
// (`troupe gc` beside a `troupe run`), so the path that must work is two connections taking
// turns on SQLite's write lock; a gc inside a host's own process takes the same path, against
// the host's writer connection. The caller also needs the counts back synchronously, which the
// fire-and-forget queue does not give.
//
// Small batches and a pause between them, so writers are never stalled for long (issue 12 asks
// for it, citing LangGraph PR #6702): one DELETE of everything old would hold the lock for as
// long as it ran. WAL lets readers on while gc writes, but there is one write lock per file: a
// writer that wants it while a gc transaction holds it sleeps in SQLite's busy handler
// (busy_timeout, 5 s, then SQLITE_BUSY and the write fails). So each transaction deletes at
// most batch_runs runs and batch_rows steps + events (a run with more rows is deleted over
// several transactions), and after each commit gc sleeps as long as the transaction took (at
// least kMinPause). The pause matters as much as the batch size: the busy handler polls at
// growing intervals (1, 2, 5, 10, ... ms, never much longer than the wait so far), and a gc
// that began its next transaction at once would take the lock back before a sleeping writer
// woke; by sleeping at least as long as it held the lock, gc lets every writer that waited
// through a batch in during the pause. (One Debug build, store_gc_test's concurrent writer,
// batches of 50 runs: its slowest commit took 15 ms with the pause, up to 131 ms without.)
//
// Children before the run: a run's steps and events go first and its row last, in the same or
// a later transaction, so a gc cut short (a crash, a busy store) leaves runs that the next gc
// still finds, never steps or events of a vanished run. Which runs qualify is decided inside
// each write transaction, so a run another process is still writing ("running") is never
// touched, whatever happened between two batches.
#include "store/gc.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <thread>

namespace troupe::store_gc {
namespace {

constexpr int kBusyTimeoutMs = 5000;  // as the store's own connections
constexpr auto kMinPause = std::chrono::milliseconds(10);

// The statuses of runs that have ended; gc deletes no other.
const char* const kEnded[] = {"succeeded", "failed", "cancelled"};

// The next run to delete after the cursor (created_ms, rowid), oldest first. `created_ms < ?1`
// lets SQLite walk the runs_by_created index instead of the whole table (the schema has no index
// on finished_ms, and gc adds no migration): a run cannot finish before it was created, so every
// run that finished before the cutoff was created before it too. (A wall clock stepped back
// between a run's start and end could break that; such a run goes once the cutoff passes its
// creation.) The cursor skips the kept runs (running, or of another status) already seen, so a
// store full of old running runs is walked once, not once per batch.
constexpr const char* kNextRunSql =
    "SELECT rowid, id, created_ms FROM runs"
    " WHERE created_ms < ?1 AND (created_ms, rowid) > (?2, ?3)"
    " AND finished_ms < ?1 AND status IN (?4, ?5, ?6)"
    " ORDER BY created_ms, rowid LIMIT 1";
// At most ?2 rows of the run at a time (DELETE ... LIMIT needs a compile-time option of SQLite).
constexpr const char* kDeleteStepsSql =
    "DELETE FROM steps WHERE rowid IN (SELECT rowid FROM steps WHERE run_id = ?1 LIMIT ?2)";
// The events table has no foreign key on run_id (history may outlive its run), so nothing
// cascades: each run's events are deleted here.
constexpr const char* kDeleteEventsSql =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE run_id = ?1 LIMIT ?2)";
constexpr const char* kDeleteCancelSql = "DELETE FROM cancel_requests WHERE run_id = ?1";
// A run's signals and approvals are few (one per wait): deleted whole with the run.
constexpr const char* kDeleteSignalsSql = "DELETE FROM signals WHERE run_id = ?1";
constexpr const char* kDeleteApprovalsSql = "DELETE FROM approvals WHERE run_id = ?1";
constexpr const char* kDeleteRunSql = "DELETE FROM runs WHERE rowid = ?1";
constexpr const char* kCountStepsSql = "SELECT count(*) FROM steps WHERE run_id = ?1";
constexpr const char* kCountEventsSql = "SELECT count(*) FROM events WHERE run_id = ?1";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// One gc over one connection.
class Collector {
 public:
  Collector(const std::string& path, bool readonly, const GcOptions& options)
      : path_(path), options_(options) {
    for (const std::string& status : options.statuses) {
      if (std::find(std::begin(kEnded), std::end(kEnded), status) == std::end(kEnded)) {
        throw StoreError(path + ": gc deletes only ended runs: '" + status +
                         "' is not one of succeeded, failed, cancelled");
      }
    }
    if (readonly && !options.dry_run) {
      throw StoreError(path + ": the store is open read-only; only a dry run of gc is possible");
    }
    const int flags = (options.dry_run ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                      SQLITE_OPEN_NOMUTEX;  // one thread uses it
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) fail("cannot open", raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, kBusyTimeoutMs);
    if (!options.dry_run) {
      // As the writer's connection: a commit survives a crash of this process; the WAL that a
      // large gc grows is cut back at the next checkpoint.
      exec("PRAGMA synchronous = NORMAL");
      exec("PRAGMA foreign_keys = ON");
      exec("PRAGMA journal_size_limit = 67108864");
    }
    next_ = prepare(kNextRunSql);
    if (options.dry_run) {
      count_steps_ = prepare(kCountStepsSql);
      count_events_ = prepare(kCountEventsSql);
    } else {
      delete_steps_ = prepare(kDeleteStepsSql);
      delete_events_ = prepare(kDeleteEventsSql);
      delete_cancel_ = prepare(kDeleteCancelSql);
      delete_signals_ = prepare(kDeleteSignalsSql);
      delete_approvals_ = prepare(kDeleteApprovalsSql);
      delete_run_ = prepare(kDeleteRunSql);
    }
  }

  GcResult run() {
    using Clock = std::chrono::steady_clock;
    bool more = true;
    while (more) {
      // A dry run reads in a transaction per batch as well: each sees one consistent state,
      // and none keeps the WAL from being checkpointed for the whole walk.
      exec(options_.dry_run ? "BEGIN" : "BEGIN IMMEDIATE");
      const auto locked = Clock::now();  // not counting a wait for another writer's commit
      GcResult batch;
      Cursor cursor = cursor_;
      try {
        more = options_.dry_run ? count_batch(batch, cursor) : delete_batch(batch, cursor);
        exec("COMMIT");
      } catch (...) {
        if (!sqlite3_get_autocommit(db_.get())) {
          sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        }
        throw;
      }
      // Counted once committed, so a failure reports only what is really gone.
      done_.runs += batch.runs;
      done_.steps += batch.steps;
      done_.events += batch.events;
      cursor_ = cursor;
      if (more && !options_.dry_run) {
        auto held = Clock::now() - locked;
        std::this_thread::sleep_for(std::max<Clock::duration>(held, kMinPause));
      }
    }
    return done_;
  }

 private:
  using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

  // Where the walk over runs_by_created stands: the last run dealt with.
  struct Cursor {
    int64_t created_ms = std::numeric_limits<int64_t>::min();
    int64_t rowid = std::numeric_limits<int64_t>::min();
  };
  struct Candidate {
    int64_t rowid = 0;
    std::string id;
    int64_t created_ms = 0;
  };

  // Deletes up to batch_runs runs and batch_rows steps + events. Returns whether runs may be
  // left (the cursor then points after the last run wholly deleted).
  bool delete_batch(GcResult& batch, Cursor& cursor) {
    const uint64_t max_rows = std::max<size_t>(options_.batch_rows, 1);
    uint64_t rows = 0;
    for (size_t n = 0; n < std::max<size_t>(options_.batch_runs, 1); ++n) {
      Candidate run;
      if (!next_run(cursor, &run)) return false;
      uint64_t steps = delete_rows(delete_steps_.get(), run.id, max_rows - rows, "steps");
      batch.steps += steps;
      rows += steps;
      if (rows >= max_rows) return true;  // the rest of this run in the next transaction
      uint64_t events = delete_rows(delete_events_.get(), run.id, max_rows - rows, "events");
      batch.events += events;
      rows += events;
      if (rows >= max_rows) return true;
      sqlite3_bind_text(delete_cancel_.get(), 1, run.id.c_str(), -1, SQLITE_TRANSIENT);
      step_done(delete_cancel_.get(), "delete cancel requests");
      sqlite3_bind_text(delete_signals_.get(), 1, run.id.c_str(), -1, SQLITE_TRANSIENT);
      step_done(delete_signals_.get(), "delete signals");
      sqlite3_bind_text(delete_approvals_.get(), 1, run.id.c_str(), -1, SQLITE_TRANSIENT);
      step_done(delete_approvals_.get(), "delete approvals");
      sqlite3_bind_int64(delete_run_.get(), 1, run.rowid);
      step_done(delete_run_.get(), "delete runs");
      batch.runs += static_cast<uint64_t>(sqlite3_changes(db_.get()));
      cursor = {run.created_ms, run.rowid};
    }
    return true;
  }

  // Counts what delete_batch() would delete, batch_runs runs at a time.
  bool count_batch(GcResult& batch, Cursor& cursor) {
    for (size_t n = 0; n < std::max<size_t>(options_.batch_runs, 1); ++n) {
      Candidate run;
      if (!next_run(cursor, &run)) return false;
      batch.steps += count_rows(count_steps_.get(), run.id, "count steps");
      batch.events += count_rows(count_events_.get(), run.id, "count events");
      ++batch.runs;
      cursor = {run.created_ms, run.rowid};
    }
    return true;
  }

  bool next_run(const Cursor& cursor, Candidate* out) {
    sqlite3_stmt* stmt = next_.get();
    sqlite3_bind_int64(stmt, 1, options_.cutoff_ms);
    sqlite3_bind_int64(stmt, 2, cursor.created_ms);
    sqlite3_bind_int64(stmt, 3, cursor.rowid);
    // Three placeholders for the statuses: a shorter list repeats its entries.
    const size_t n = options_.statuses.size();
    for (int i = 0; i < 3; ++i) {
      const char* status = n == 0 ? kEnded[i] : options_.statuses[i % n].c_str();
      sqlite3_bind_text(stmt, 4 + i, status, -1, SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      out->rowid = sqlite3_column_int64(stmt, 0);
      const unsigned char* id = sqlite3_column_text(stmt, 1);
      out->id = id ? reinterpret_cast<const char*>(id) : "";
      out->created_ms = sqlite3_column_int64(stmt, 2);
    }
    std::string error = rc == SQLITE_ROW || rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_.get());
    sqlite3_reset(stmt);  // before the deletes: no read left open on runs
    if (!error.empty()) fail("find old runs", error);
    return rc == SQLITE_ROW;
  }

  uint64_t delete_rows(sqlite3_stmt* stmt, const std::string& run_id, uint64_t limit,
                       const char* table) {
    sqlite3_bind_text(stmt, 1, run_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(limit));
    step_done(stmt, (std::string("delete ") + table).c_str());
    return static_cast<uint64_t>(sqlite3_changes(db_.get()));
  }

  uint64_t count_rows(sqlite3_stmt* stmt, const std::string& run_id, const char* what) {
    sqlite3_bind_text(stmt, 1, run_id.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    uint64_t n = rc == SQLITE_ROW ? static_cast<uint64_t>(sqlite3_column_int64(stmt, 0)) : 0;
    std::string error = rc == SQLITE_ROW ? "" : sqlite3_errmsg(db_.get());
    sqlite3_reset(stmt);
    if (!error.empty()) fail(what, error);
    return n;
  }

  // Steps a statement that returns no rows, then resets it; throws on an error.
  void step_done(sqlite3_stmt* stmt, const char* what) {
    int rc = sqlite3_step(stmt);
    std::string error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_.get());
    sqlite3_reset(stmt);
    if (!error.empty()) fail(what, error);
  }

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db_.get());
      sqlite3_free(err);
      fail(sql, msg);
    }
  }

  StmtPtr prepare(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
        SQLITE_OK) {
      fail("prepare", sqlite3_errmsg(db_.get()));
    }
    return StmtPtr(stmt);
  }

  // "<path>: gc: <what>: <why> (deleted so far: ...)" — what a failure leaves behind is
  // committed and stays deleted; the next gc goes on from there.
  [[noreturn]] void fail(const std::string& what, const std::string& why) const {
    std::string so_far;
    if (!options_.dry_run) {
      so_far = done_.runs + done_.steps + done_.events == 0
                   ? " (nothing was deleted)"
                   : " (deleted before it: " + plural(done_.runs, "run", "runs") + ", " +
                         plural(done_.steps, "step", "steps") + ", " +
                         plural(done_.events, "event", "events") + ")";
    }
    throw StoreError(path_ + ": gc: " + what + ": " + why + so_far);
  }

  const std::string path_;
  const GcOptions options_;
  std::unique_ptr<sqlite3, DbCloser> db_;  // declared before the statements: closed after them
  StmtPtr next_, delete_steps_, delete_events_, delete_cancel_, delete_signals_, delete_approvals_,
      delete_run_;
  StmtPtr count_steps_, count_events_;
  Cursor cursor_;
  GcResult done_;
};

}  // namespace

GcResult delete_old_runs(const std::string& path, bool readonly, const GcOptions& options) {
  return Collector(path, readonly, options).run();
}

}  // namespace troupe::store_gc
