// sqlite_store.cpp: troupe::Store on SQLite — WAL, one group-committing writer thread behind a
// queue bounded in bytes, per-run write accounting, pooled readers.
//
// Over 600 lines on purpose: the writer, its queue, the prepared statements and the readers
// share one private state. The PostgreSQL store (issue 19) is the moment to cut it: the bounded
// queue and the per-run accounting become a part both stores use.
#include <sqlite3.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <mutex>
#include <random>
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

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}
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
// The owner's lease extended.
struct LeaseRun {
  std::string run_id;
  int64_t lease_until_ms = 0;
};
// A run parked until wake_ms (0: until woken).
struct ParkRun {
  std::string run_id;
  int64_t wake_ms = 0;
};
// A script's text, kept by its hash.
struct ScriptText {
  std::string hash;
  std::string text;
};
using Write =
    std::variant<RunRecord, FinishRun, StepRecord, EventRecord, NameRun, CancelRun, LeaseRun,
                 ParkRun, ScriptText, ApprovalRecord, AttemptRecord, DeadLetterRecord>;

struct Op {
  Write write;
  Store::Done done;
  uint64_t bytes = 0;  // what it costs the queue
  int64_t epoch = 0;   // the run's epoch in this process when queued; 0: not fenced
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
         step->status.size() + step->error.size() + step->request_hash.size();
  } else if (auto* lease = std::get_if<LeaseRun>(&write)) {
    n += lease->run_id.size();
  } else if (auto* park = std::get_if<ParkRun>(&write)) {
    n += park->run_id.size();
  } else if (auto* script = std::get_if<ScriptText>(&write)) {
    n += script->hash.size() + script->text.size();
  } else if (auto* approval = std::get_if<ApprovalRecord>(&write)) {
    n += approval->run_id.size() + approval->step_key.size() + approval->request_json.size();
  } else if (auto* attempt = std::get_if<AttemptRecord>(&write)) {
    n += attempt->run_id.size() + attempt->step_key.size() + attempt->model.size() +
         attempt->status.size() + attempt->error.size();
  } else if (auto* dead = std::get_if<DeadLetterRecord>(&write)) {
    n += dead->run_id.size() + dead->reason.size() + dead->step_key.size() + dead->error.size();
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
  if (auto* lease = std::get_if<LeaseRun>(&write)) return lease->run_id;
  if (auto* park = std::get_if<ParkRun>(&write)) return park->run_id;
  if (auto* approval = std::get_if<ApprovalRecord>(&write)) return approval->run_id;
  if (auto* attempt = std::get_if<AttemptRecord>(&write)) return attempt->run_id;
  if (auto* dead = std::get_if<DeadLetterRecord>(&write)) return dead->run_id;
  if (std::holds_alternative<ScriptText>(write)) {
    static const std::string kNone;
    return kNone;  // a script belongs to no run
  }
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
  kClearCancel,
  kRunEpoch,
  kRenewLease,
  kParkRun,
  kSaveScript,
  kAskApproval,
  kInsertAttempt,
  kUpsertDeadLetter
};
const char* const kWriteSql[] = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "INSERT INTO runs (id, workflow, source, input, status, output, error, created_ms, "
    "finished_ms, epoch, owner, lease_until_ms, wake_ms, script_hash, parent_run, parent_step) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    "UPDATE runs SET status = ?2, output = ?3, error = ?4, finished_ms = ?5, owner = '', "
    "lease_until_ms = 0 WHERE id = ?1",
    "INSERT OR REPLACE INTO steps (run_id, step_key, kind, agent, model, request, response, "
    "status, error, input_tokens, output_tokens, started_ms, finished_ms, latency_us, "
    "request_hash, epoch, attempts, cost_usd, cached_input_tokens, reasoning_tokens, "
    "cache_write_tokens, unpriced) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
    "?19, ?20, ?21, ?22)",
    "INSERT INTO events (run_id, ts_ms, type, step_key, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    "UPDATE runs SET workflow = ?2 WHERE id = ?1",
    "INSERT OR REPLACE INTO cancel_requests (run_id, reason, requested_ms) VALUES (?1, ?2, ?3)",
    "DELETE FROM cancel_requests WHERE run_id = ?1",
    "SELECT epoch FROM runs WHERE id = ?1",
    "UPDATE runs SET lease_until_ms = ?2 WHERE id = ?1 AND status = 'running'",
    "UPDATE runs SET status = 'waiting', wake_ms = ?2, owner = '', lease_until_ms = 0 "
    "WHERE id = ?1 AND status = 'running'",
    "INSERT OR IGNORE INTO scripts (hash, text) VALUES (?1, ?2)",
    "INSERT OR IGNORE INTO approvals (run_id, step_key, request, deadline_ms, requested_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
    // A resumed run may try an attempt again that a crash cut short after its record: the
    // later record of the same number wins.
    "INSERT OR REPLACE INTO attempts (run_id, step_key, attempt, model, status, error,"
    " retry_after_ms, delay_ms, started_ms, finished_ms, latency_us, epoch)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    "INSERT OR REPLACE INTO dead_letters (run_id, reason, step_key, error, dead_ms, epoch)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};
constexpr size_t kWriteStmtCount = std::size(kWriteSql);

enum ReadStmt {
  kListRuns,
  kGetRun,
  kRunIdsFrom,
  kGetSteps,
  kGetEvents,
  kCancelRequests,
  kClaimable,
  kGetScript,
  kNextSignal,
  kGetApproval,
  kPendingApprovals,
  kGetAttempts,
  kDeadLetters,
  kGetDeadLetter
};
// A run's columns as read_run() takes them; ?9 is the reader's clock, which tells a running
// run whose lease expired (its process died) as "interrupted".
#define TROUPE_RUN_COLUMNS                                                                    \
  "id, workflow, source, input,"                                                              \
  " CASE WHEN status = 'running' AND lease_until_ms < ?9 THEN 'interrupted' ELSE status END," \
  " output, error, created_ms, finished_ms, epoch, owner, lease_until_ms, wake_ms,"           \
  " script_hash, parent_run, parent_step,"                                                    \
  " (SELECT total(cost_usd) FROM steps WHERE run_id = runs.id),"                              \
  " (SELECT count(*) FROM steps WHERE run_id = runs.id AND unpriced != 0)"
#define TROUPE_APPROVAL_COLUMNS                                                        \
  "run_id, step_key, request, deadline_ms, requested_ms, choice, decided_by, comment," \
  " decided_ms, defaulted"
// A dead letter stands while its run is failed in the epoch that recorded it; its step's record
// says how many attempts it made.
#define TROUPE_DEAD_LETTERS                                                              \
  "SELECT d.run_id, r.workflow, d.reason, d.step_key, d.error, COALESCE(s.attempts, 0)," \
  " d.dead_ms, d.epoch FROM dead_letters d JOIN runs r ON r.id = d.run_id AND"           \
  " r.status = 'failed' AND r.epoch = d.epoch"                                           \
  " LEFT JOIN steps s ON s.run_id = d.run_id AND s.step_key = d.step_key"
const char* const kReadSql[] = {
    "SELECT " TROUPE_RUN_COLUMNS
    " FROM runs WHERE (?1 = '' OR CASE WHEN status = 'running' AND"
    " lease_until_ms < ?9 THEN 'interrupted' ELSE status END = ?1) AND (?2 = '' OR workflow = ?2)"
    " ORDER BY created_ms DESC, rowid DESC LIMIT ?3",
    "SELECT " TROUPE_RUN_COLUMNS " FROM runs WHERE id = ?1",
    // Ids sharing a prefix form one contiguous range in the primary key's (binary) order.
    "SELECT id FROM runs WHERE id >= ?1 ORDER BY id",
    "SELECT run_id, step_key, kind, agent, model, request, response, status, error, "
    "input_tokens, output_tokens, started_ms, finished_ms, latency_us, request_hash, epoch,"
    " rowid, attempts, cost_usd, cached_input_tokens, reasoning_tokens, cache_write_tokens,"
    " unpriced FROM steps WHERE run_id = ?1 ORDER BY started_ms, rowid",
    "SELECT seq, run_id, ts_ms, type, step_key, data FROM events"
    " WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    "SELECT run_id, reason FROM cancel_requests ORDER BY requested_ms",
    "SELECT id FROM runs WHERE status = 'queued' OR (status = 'waiting' AND wake_ms > 0 AND"
    " wake_ms <= ?1) OR (status = 'running' AND lease_until_ms < ?1)"
    " ORDER BY created_ms, rowid LIMIT ?2",
    "SELECT text FROM scripts WHERE hash = ?1",
    "SELECT seq, run_id, name, data, sent_ms FROM signals WHERE run_id = ?1 AND name = ?2"
    " AND seq > ?3 ORDER BY seq LIMIT 1",
    "SELECT " TROUPE_APPROVAL_COLUMNS " FROM approvals WHERE run_id = ?1 AND step_key = ?2",
    "SELECT " TROUPE_APPROVAL_COLUMNS
    " FROM approvals WHERE choice = '' AND"
    " (?1 = '' OR run_id = ?1) ORDER BY requested_ms, run_id, step_key LIMIT ?2",
    "SELECT run_id, step_key, attempt, model, status, error, retry_after_ms, delay_ms,"
    " started_ms, finished_ms, latency_us, epoch FROM attempts WHERE run_id = ?1"
    " ORDER BY rowid",
    TROUPE_DEAD_LETTERS " ORDER BY d.dead_ms DESC, d.rowid DESC LIMIT ?1",
    TROUPE_DEAD_LETTERS " WHERE d.run_id = ?1",
};
#undef TROUPE_DEAD_LETTERS
#undef TROUPE_APPROVAL_COLUMNS
#undef TROUPE_RUN_COLUMNS

// Takes a run (Store::claim_run): one statement, so two processes racing for the same run
// cannot both win — SQLite runs writers one at a time, and the loser's WHERE no longer holds.
constexpr const char* kClaimSql =
    "UPDATE runs SET epoch = epoch + 1, owner = ?2, lease_until_ms = ?3, status = 'running',"
    " wake_ms = 0, output = '', error = '', finished_ms = 0"
    " WHERE id = ?1 AND (status = 'queued' OR (status = 'running' AND lease_until_ms < ?4)"
    " OR (status = 'waiting' AND (?5 OR (wake_ms > 0 AND wake_ms <= ?4)))"
    " OR (?6 AND status = 'failed'))"
    " RETURNING epoch";
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

ApprovalRecord read_approval(sqlite3_stmt* stmt) {
  ApprovalRecord a;
  a.run_id = column_text(stmt, 0);
  a.step_key = column_text(stmt, 1);
  a.request_json = column_text(stmt, 2);
  a.deadline_ms = sqlite3_column_int64(stmt, 3);
  a.requested_ms = sqlite3_column_int64(stmt, 4);
  a.choice = column_text(stmt, 5);
  a.decided_by = column_text(stmt, 6);
  a.comment = column_text(stmt, 7);
  a.decided_ms = sqlite3_column_int64(stmt, 8);
  a.defaulted = sqlite3_column_int64(stmt, 9) != 0;
  return a;
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
  run.epoch = sqlite3_column_int64(stmt, 9);
  run.owner = column_text(stmt, 10);
  run.lease_until_ms = sqlite3_column_int64(stmt, 11);
  run.wake_ms = sqlite3_column_int64(stmt, 12);
  run.script_hash = column_text(stmt, 13);
  run.parent_run = column_text(stmt, 14);
  run.parent_step = column_text(stmt, 15);
  run.cost_usd = sqlite3_column_double(stmt, 16);
  run.unpriced_steps = sqlite3_column_int64(stmt, 17);
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
  } else if (auto* event = std::get_if<EventRecord>(&write)) {
    clean(event->data_json);
  } else if (auto* approval = std::get_if<ApprovalRecord>(&write)) {
    clean(approval->request_json);
  } else if (auto* attempt = std::get_if<AttemptRecord>(&write)) {
    clean(attempt->model);
    clean(attempt->error);
  } else if (auto* dead = std::get_if<DeadLetterRecord>(&write)) {
    clean(dead->error);
  } else if (auto* script = std::get_if<ScriptText>(&write)) {
    // A script that spells a key out is kept with the key redacted (its hash still names the
    // text as written): a run resumed from the kept text sees the redacted value.
    clean(script->text);
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
  if (auto* lease = std::get_if<LeaseRun>(&write)) return "renew_lease '" + lease->run_id + "'";
  if (auto* park = std::get_if<ParkRun>(&write)) return "park_run '" + park->run_id + "'";
  if (auto* script = std::get_if<ScriptText>(&write)) return "save_script " + script->hash;
  if (auto* approval = std::get_if<ApprovalRecord>(&write)) {
    return "request_approval '" + approval->run_id + "' '" + approval->step_key + "'";
  }
  if (auto* attempt = std::get_if<AttemptRecord>(&write)) {
    return "record_attempt '" + attempt->run_id + "' '" + attempt->step_key + "' " +
           std::to_string(attempt->attempt);
  }
  if (auto* dead = std::get_if<DeadLetterRecord>(&write)) {
    return "record_dead_letter '" + dead->run_id + "'";
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
  void renew_lease(const std::string& run_id, int64_t lease_until_ms, Done on_durable) override {
    enqueue(LeaseRun{run_id, lease_until_ms}, std::move(on_durable));
  }
  void park_run(const std::string& run_id, int64_t wake_ms, Done on_durable) override {
    enqueue(ParkRun{run_id, wake_ms}, std::move(on_durable));
  }
  void save_script(const std::string& hash, const std::string& text, Done on_durable) override {
    enqueue(ScriptText{hash, text}, std::move(on_durable));
  }
  void request_approval(const ApprovalRecord& approval, Done on_durable) override {
    enqueue(approval, std::move(on_durable));
  }
  void record_attempt(const AttemptRecord& attempt, Done on_durable) override {
    enqueue(attempt, std::move(on_durable));
  }
  void record_dead_letter(const DeadLetterRecord& dead, Done on_durable) override {
    enqueue(dead, std::move(on_durable));
  }
  bool discard_dead_letter(const std::string& run_id) override;
  std::optional<RunRecord> claim_run(const std::string& run_id, const ClaimOptions& options,
                                     std::string* why) override;
  int64_t send_signal(const std::string& run_id, const std::string& name,
                      const std::string& data_json, int64_t sent_ms) override;
  std::optional<ApprovalRecord> decide_approval(const std::string& run_id,
                                                const std::string& step_key,
                                                const std::string& choice,
                                                const std::string& decided_by,
                                                const std::string& comment, int64_t decided_ms,
                                                bool defaulted) override;
  std::optional<SignalRecord> next_signal(const std::string& run_id, const std::string& name,
                                          int64_t after) const override;
  std::optional<ApprovalRecord> get_approval(const std::string& run_id,
                                             const std::string& step_key) const override;
  std::vector<ApprovalRecord> pending_approvals(const std::string& run_id,
                                                int limit) const override;
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
  std::vector<std::string> claimable_runs(int64_t now_ms, int limit) const override;
  std::optional<std::string> get_script(const std::string& hash) const override;
  std::vector<AttemptRecord> get_attempts(const std::string& run_id) const override;
  std::vector<DeadLetterRecord> dead_letters(int limit) const override;
  std::optional<DeadLetterRecord> get_dead_letter(const std::string& run_id) const override;
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
  std::string apply(const Op& op);
  std::string apply_alone(const Op& op);
  // "" when op may change its run: not fenced, or the run's epoch is still the op's.
  std::string fence(const Op& op);
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
  // A run's accounting, and its epoch in this process (0: its writes are not fenced).
  struct Account {
    RunWriteStats stats;
    int64_t epoch = 0;
  };
  std::unordered_map<std::string, Account> runs_;
  std::string last_error_;
  bool stopping_ = false;
  std::thread writer_;

  std::mutex listener_mu_;  // held while the listener runs, so replacing it waits for the call
  FailureListener listener_;

  mutable std::mutex readers_mu_;
  mutable std::vector<std::unique_ptr<Reader>> idle_readers_;

  // Runs sql (its parameters bound by bind) in a transaction of its own on the direct
  // connection; `row` sees each result row. Throws StoreError naming what.
  void direct(const char* what, const char* sql, const std::function<void(sqlite3_stmt*)>& bind,
              const std::function<void(sqlite3_stmt*)>& row = {});

  // The direct connection: synchronous writes of any process (claims, signals, decisions),
  // outside the write queue; opened on first use.
  std::mutex claim_mu_;
  DbPtr cdb_;
  StmtPtr claim_stmt_;
  std::unordered_map<const char*, StmtPtr> direct_stmts_;
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
    auto* created = std::get_if<RunRecord>(&write);
    auto it = created ? runs_.try_emplace(created->id).first : runs_.find(run_of(write));
    int64_t epoch = 0;
    if (it != runs_.end()) {
      if (created) it->second.epoch = created->epoch;
      epoch = it->second.epoch;
      ++it->second.stats.writes;
      it->second.stats.bytes += bytes;
      it->second.stats.queued_bytes += bytes;
    }
    if (auto* step = std::get_if<StepRecord>(&write)) step->epoch = epoch;
    if (auto* attempt = std::get_if<AttemptRecord>(&write)) attempt->epoch = epoch;
    if (auto* dead = std::get_if<DeadLetterRecord>(&write)) dead->epoch = epoch;
    // The run's creation is not fenced: there is no epoch to compare with before it exists.
    queue_.push_back(Op{std::move(write), std::move(done), bytes, created ? 0 : epoch});
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
  return it == runs_.end() ? RunWriteStats{} : it->second.stats;
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
      errors[i - begin] = apply(batch[i]);
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
        errors[i - begin] = apply_alone(batch[i]);
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
      bool first = it == runs_.end() || it->second.stats.failed == 0;
      if (it != runs_.end() && it->second.stats.failed++ == 0) it->second.stats.error = message;
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
      if (it != runs_.end()) it->second.stats.queued_bytes -= bytes;
    }
  }
  space_cv_.notify_all();
}

std::string SqliteStore::apply_alone(const Op& op) {
  std::string error = run_write(kBegin);
  if (!error.empty()) return "cannot begin a transaction: " + error;
  error = apply(op);
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

std::string SqliteStore::fence(const Op& op) {
  if (op.epoch == 0) return "";
  sqlite3_stmt* stmt = wstmts_[kRunEpoch].get();
  bind_text(stmt, 1, run_of(op.write));
  int rc = sqlite3_step(stmt);
  int64_t current = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  std::string error = rc == SQLITE_ROW || rc == SQLITE_DONE ? "" : sqlite3_errmsg(wdb_.get());
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (!error.empty()) return error;
  if (current == -1) return "no such run";
  if (current == op.epoch) return "";
  return "fenced: the run is now driven by epoch " + std::to_string(current) +
         " (another process took it over); this process drove epoch " + std::to_string(op.epoch);
}

std::string SqliteStore::apply(const Op& op) {
  if (std::string fenced = fence(op); !fenced.empty()) return fenced;
  const Write& write = op.write;
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
    sqlite3_bind_int64(stmt, 10, run->epoch);
    bind_text(stmt, 11, run->owner);
    sqlite3_bind_int64(stmt, 12, run->lease_until_ms);
    sqlite3_bind_int64(stmt, 13, run->wake_ms);
    bind_text(stmt, 14, run->script_hash);
    bind_text(stmt, 15, run->parent_run);
    bind_text(stmt, 16, run->parent_step);
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
    bind_text(stmt, 15, step->request_hash);
    sqlite3_bind_int64(stmt, 16, step->epoch);
    sqlite3_bind_int(stmt, 17, step->attempts);
    if (step->cost_usd) {
      sqlite3_bind_double(stmt, 18, *step->cost_usd);
    } else {
      sqlite3_bind_null(stmt, 18);
    }
    sqlite3_bind_int64(stmt, 19, step->cached_input_tokens);
    sqlite3_bind_int64(stmt, 20, step->reasoning_tokens);
    sqlite3_bind_int64(stmt, 21, step->cache_write_tokens);
    sqlite3_bind_int(stmt, 22, step->unpriced ? 1 : 0);
    return run_write(kUpsertStep);
  }
  if (auto* attempt = std::get_if<AttemptRecord>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kInsertAttempt].get();
    bind_text(stmt, 1, attempt->run_id);
    bind_text(stmt, 2, attempt->step_key);
    sqlite3_bind_int(stmt, 3, attempt->attempt);
    bind_text(stmt, 4, attempt->model);
    bind_text(stmt, 5, attempt->status);
    bind_text(stmt, 6, attempt->error);
    sqlite3_bind_int64(stmt, 7, attempt->retry_after_ms);
    sqlite3_bind_int64(stmt, 8, attempt->delay_ms);
    sqlite3_bind_int64(stmt, 9, attempt->started_ms);
    sqlite3_bind_int64(stmt, 10, attempt->finished_ms);
    sqlite3_bind_int64(stmt, 11, attempt->latency_us);
    sqlite3_bind_int64(stmt, 12, attempt->epoch);
    return run_write(kInsertAttempt);
  }
  if (auto* dead = std::get_if<DeadLetterRecord>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kUpsertDeadLetter].get();
    bind_text(stmt, 1, dead->run_id);
    bind_text(stmt, 2, dead->reason);
    bind_text(stmt, 3, dead->step_key);
    bind_text(stmt, 4, dead->error);
    sqlite3_bind_int64(stmt, 5, dead->dead_ms);
    sqlite3_bind_int64(stmt, 6, dead->epoch);
    return run_write(kUpsertDeadLetter);
  }
  if (auto* lease = std::get_if<LeaseRun>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kRenewLease].get();
    bind_text(stmt, 1, lease->run_id);
    sqlite3_bind_int64(stmt, 2, lease->lease_until_ms);
    std::string error = run_write(kRenewLease);
    if (error.empty() && sqlite3_changes(wdb_.get()) == 0) error = "the run is not running";
    return error;
  }
  if (auto* park = std::get_if<ParkRun>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kParkRun].get();
    bind_text(stmt, 1, park->run_id);
    sqlite3_bind_int64(stmt, 2, park->wake_ms);
    std::string error = run_write(kParkRun);
    if (error.empty() && sqlite3_changes(wdb_.get()) == 0) error = "the run is not running";
    return error;
  }
  if (auto* approval = std::get_if<ApprovalRecord>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kAskApproval].get();
    bind_text(stmt, 1, approval->run_id);
    bind_text(stmt, 2, approval->step_key);
    bind_text(stmt, 3, approval->request_json);
    sqlite3_bind_int64(stmt, 4, approval->deadline_ms);
    sqlite3_bind_int64(stmt, 5, approval->requested_ms);
    return run_write(kAskApproval);
  }
  if (auto* script = std::get_if<ScriptText>(&write)) {
    sqlite3_stmt* stmt = wstmts_[kSaveScript].get();
    bind_text(stmt, 1, script->hash);
    sqlite3_bind_blob64(stmt, 2, script->text.data(), script->text.size(), SQLITE_STATIC);
    return run_write(kSaveScript);
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
  sqlite3_bind_int64(stmt, 9, now_ms());
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
  sqlite3_bind_int64(by_id, 9, now_ms());
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
    step.request_hash = column_text(stmt, 14);
    step.epoch = sqlite3_column_int64(stmt, 15);
    // INSERT OR REPLACE gives a replaced row a new rowid: it orders records by their last write.
    step.seq = sqlite3_column_int64(stmt, 16);
    step.attempts = sqlite3_column_int(stmt, 17);
    if (sqlite3_column_type(stmt, 18) != SQLITE_NULL)
      step.cost_usd = sqlite3_column_double(stmt, 18);
    step.cached_input_tokens = sqlite3_column_int64(stmt, 19);
    step.reasoning_tokens = sqlite3_column_int64(stmt, 20);
    step.cache_write_tokens = sqlite3_column_int64(stmt, 21);
    step.unpriced = sqlite3_column_int(stmt, 22) != 0;
    steps.push_back(std::move(step));
  }
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return steps;
}

std::vector<AttemptRecord> SqliteStore::get_attempts(const std::string& run_id) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kGetAttempts);
  bind_text(stmt, 1, run_id);
  std::vector<AttemptRecord> attempts;
  while (step_read(*reader, stmt, "get_attempts")) {
    AttemptRecord a;
    a.run_id = column_text(stmt, 0);
    a.step_key = column_text(stmt, 1);
    a.attempt = sqlite3_column_int(stmt, 2);
    a.model = column_text(stmt, 3);
    a.status = column_text(stmt, 4);
    a.error = column_text(stmt, 5);
    a.retry_after_ms = sqlite3_column_int64(stmt, 6);
    a.delay_ms = sqlite3_column_int64(stmt, 7);
    a.started_ms = sqlite3_column_int64(stmt, 8);
    a.finished_ms = sqlite3_column_int64(stmt, 9);
    a.latency_us = sqlite3_column_int64(stmt, 10);
    a.epoch = sqlite3_column_int64(stmt, 11);
    attempts.push_back(std::move(a));
  }
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return attempts;
}

namespace {

DeadLetterRecord read_dead_letter(sqlite3_stmt* stmt) {
  DeadLetterRecord d;
  d.run_id = column_text(stmt, 0);
  d.workflow = column_text(stmt, 1);
  d.reason = column_text(stmt, 2);
  d.step_key = column_text(stmt, 3);
  d.error = column_text(stmt, 4);
  d.attempts = sqlite3_column_int(stmt, 5);
  d.dead_ms = sqlite3_column_int64(stmt, 6);
  d.epoch = sqlite3_column_int64(stmt, 7);
  return d;
}

}  // namespace

std::vector<DeadLetterRecord> SqliteStore::dead_letters(int limit) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kDeadLetters);
  sqlite3_bind_int64(stmt, 1, limit > 0 ? limit : -1);
  std::vector<DeadLetterRecord> found;
  while (step_read(*reader, stmt, "dead_letters"))
    found.push_back(read_dead_letter(stmt));
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return found;
}

std::optional<DeadLetterRecord> SqliteStore::get_dead_letter(const std::string& run_id) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kGetDeadLetter);
  bind_text(stmt, 1, run_id);
  std::optional<DeadLetterRecord> found;
  if (step_read(*reader, stmt, "get_dead_letter")) found = read_dead_letter(stmt);
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return found;
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

std::vector<std::string> SqliteStore::claimable_runs(int64_t now_ms, int limit) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kClaimable);
  sqlite3_bind_int64(stmt, 1, now_ms);
  sqlite3_bind_int64(stmt, 2, limit > 0 ? limit : -1);
  std::vector<std::string> ids;
  while (step_read(*reader, stmt, "claimable_runs"))
    ids.push_back(column_text(stmt, 0));
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return ids;
}

std::optional<std::string> SqliteStore::get_script(const std::string& hash) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kGetScript);
  bind_text(stmt, 1, hash);
  std::optional<std::string> text;
  if (step_read(*reader, stmt, "get_script")) {
    const void* blob = sqlite3_column_blob(stmt, 0);
    text.emplace(static_cast<const char*>(blob),
                 blob ? static_cast<size_t>(sqlite3_column_bytes(stmt, 0)) : 0);
  }
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return text;
}

std::optional<RunRecord> SqliteStore::claim_run(const std::string& run_id,
                                                const ClaimOptions& options, std::string* why) {
  if (readonly_) throw StoreError(path_ + ": the store is open read-only; claim_run refused");
  // Everything this process queued for the run is written first: a claim must not overtake the
  // process's own earlier writes (they would then be fenced).
  flush();
  std::optional<int64_t> epoch;
  std::string error;
  {
    std::lock_guard lock(claim_mu_);
    if (!cdb_) {
      cdb_ = open_connection(path_, SQLITE_OPEN_READWRITE);
      claim_stmt_ = prepare(cdb_.get(), kClaimSql, path_);
    }
    sqlite3_stmt* stmt = claim_stmt_.get();
    bind_text(stmt, 1, run_id);
    bind_text(stmt, 2, options.owner);
    sqlite3_bind_int64(stmt, 3, options.lease_until_ms);
    sqlite3_bind_int64(stmt, 4, options.now_ms);
    sqlite3_bind_int(stmt, 5, options.waiting_early ? 1 : 0);
    sqlite3_bind_int(stmt, 6, options.failed ? 1 : 0);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) epoch = sqlite3_column_int64(stmt, 0);
    // RETURNING: the change is made once the statement has run to its end.
    while (rc == SQLITE_ROW)
      rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) error = sqlite3_errmsg(cdb_.get());
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
  if (!error.empty()) throw StoreError(path_ + ": claim_run '" + run_id + "': " + error);
  std::optional<RunRecord> run = get_run(run_id);
  if (!epoch) {
    if (!run) {
      *why = "no such run";
    } else if (run->status == "running") {
      *why = "it is running in " + run->owner + " (its lease lasts until " +
             std::to_string(run->lease_until_ms) + " ms)";
    } else if (run->status == "waiting") {
      *why = "it is waiting until " + std::to_string(run->wake_ms) + " ms";
    } else {
      *why = "it has ended (" + run->status + ")";
    }
    return std::nullopt;
  }
  if (!run || run->epoch != *epoch) {
    *why = "another process took it at the same moment";
    return std::nullopt;
  }
  {
    std::lock_guard lock(mu_);
    Account& account = runs_[run_id];
    account = Account{};
    account.epoch = *epoch;
  }
  return run;
}

void SqliteStore::direct(const char* what, const char* sql,
                         const std::function<void(sqlite3_stmt*)>& bind,
                         const std::function<void(sqlite3_stmt*)>& row) {
  if (readonly_) throw StoreError(path_ + ": the store is open read-only; " + what + " refused");
  std::lock_guard lock(claim_mu_);
  if (!cdb_) {
    cdb_ = open_connection(path_, SQLITE_OPEN_READWRITE);
    claim_stmt_ = prepare(cdb_.get(), kClaimSql, path_);
  }
  StmtPtr& stmt = direct_stmts_[sql];
  if (!stmt) stmt = prepare(cdb_.get(), sql, path_);
  bind(stmt.get());
  int rc = sqlite3_step(stmt.get());
  while (rc == SQLITE_ROW) {
    if (row) row(stmt.get());
    rc = sqlite3_step(stmt.get());
  }
  std::string error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(cdb_.get());
  sqlite3_reset(stmt.get());
  sqlite3_clear_bindings(stmt.get());
  if (!error.empty()) throw StoreError(path_ + ": " + what + ": " + error);
}

// Each statement below is one transaction (autocommit): the signal or decision and the wake of
// a parked run happen together or not at all.
constexpr const char* kSendSignalSql =
    "INSERT INTO signals (run_id, name, data, sent_ms) SELECT ?1, ?2, ?3, ?4"
    " WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1) RETURNING seq";
constexpr const char* kWakeSql =
    "UPDATE runs SET wake_ms = ?2 WHERE id = ?1 AND status = 'waiting'";
constexpr const char* kDecideSql =
    "UPDATE approvals SET choice = ?3, decided_by = ?4, comment = ?5, decided_ms = ?6,"
    " defaulted = ?7 WHERE run_id = ?1 AND step_key = ?2 AND choice = ''";

int64_t SqliteStore::send_signal(const std::string& run_id, const std::string& name,
                                 const std::string& data_json, int64_t sent_ms) {
  flush();  // this process's own writes first (the run it signals may have just been created)
  int64_t seq = 0;
  std::string data = log::redact(data_json);
  direct(
      "send_signal", kSendSignalSql,
      [&](sqlite3_stmt* s) {
        bind_text(s, 1, run_id);
        bind_text(s, 2, name);
        bind_text(s, 3, data);
        sqlite3_bind_int64(s, 4, sent_ms);
      },
      [&](sqlite3_stmt* s) { seq = sqlite3_column_int64(s, 0); });
  if (seq == 0) throw StoreError("no run '" + run_id + "' in the store");
  direct("send_signal", kWakeSql, [&](sqlite3_stmt* s) {
    bind_text(s, 1, run_id);
    sqlite3_bind_int64(s, 2, sent_ms);
  });
  return seq;
}

std::optional<ApprovalRecord> SqliteStore::decide_approval(
    const std::string& run_id, const std::string& step_key, const std::string& choice,
    const std::string& decided_by, const std::string& comment, int64_t decided_ms, bool defaulted) {
  flush();  // this process's own writes first (the approval may have just been asked)
  std::string clean_comment = log::redact(comment);
  direct("decide_approval", kDecideSql, [&](sqlite3_stmt* s) {
    bind_text(s, 1, run_id);
    bind_text(s, 2, step_key);
    bind_text(s, 3, choice);
    bind_text(s, 4, decided_by);
    bind_text(s, 5, clean_comment);
    sqlite3_bind_int64(s, 6, decided_ms);
    sqlite3_bind_int(s, 7, defaulted ? 1 : 0);
  });
  std::optional<ApprovalRecord> after = get_approval(run_id, step_key);
  if (after) {
    direct("decide_approval", kWakeSql, [&](sqlite3_stmt* s) {
      bind_text(s, 1, run_id);
      sqlite3_bind_int64(s, 2, decided_ms);
    });
  }
  return after;
}

bool SqliteStore::discard_dead_letter(const std::string& run_id) {
  flush();  // this process's own writes first (the run may have just failed here)
  bool dropped = false;
  direct(
      "discard_dead_letter", "DELETE FROM dead_letters WHERE run_id = ?1 RETURNING run_id",
      [&](sqlite3_stmt* s) { bind_text(s, 1, run_id); }, [&](sqlite3_stmt*) { dropped = true; });
  return dropped;
}

std::optional<SignalRecord> SqliteStore::next_signal(const std::string& run_id,
                                                     const std::string& name, int64_t after) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kNextSignal);
  bind_text(stmt, 1, run_id);
  bind_text(stmt, 2, name);
  sqlite3_bind_int64(stmt, 3, after);
  std::optional<SignalRecord> found;
  if (step_read(*reader, stmt, "next_signal")) {
    found = SignalRecord{sqlite3_column_int64(stmt, 0), column_text(stmt, 1), column_text(stmt, 2),
                         column_text(stmt, 3), sqlite3_column_int64(stmt, 4)};
  }
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return found;
}

std::optional<ApprovalRecord> SqliteStore::get_approval(const std::string& run_id,
                                                        const std::string& step_key) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kGetApproval);
  bind_text(stmt, 1, run_id);
  bind_text(stmt, 2, step_key);
  std::optional<ApprovalRecord> found;
  if (step_read(*reader, stmt, "get_approval")) found = read_approval(stmt);
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return found;
}

std::vector<ApprovalRecord> SqliteStore::pending_approvals(const std::string& run_id,
                                                           int limit) const {
  std::unique_ptr<Reader> reader = acquire_reader();
  sqlite3_stmt* stmt = read_stmt(*reader, kPendingApprovals);
  bind_text(stmt, 1, run_id);
  sqlite3_bind_int64(stmt, 2, limit > 0 ? limit : -1);
  std::vector<ApprovalRecord> out;
  while (step_read(*reader, stmt, "pending_approvals"))
    out.push_back(read_approval(stmt));
  sqlite3_reset(stmt);
  release_reader(std::move(reader));
  return out;
}

}  // namespace

std::string Store::new_owner_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  std::random_device rd;
  static const char kHex[] = "0123456789abcdef";
  std::string tail;
  for (int i = 0; i < 6; ++i)
    tail += kHex[rd() & 15];
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + tail;
}

bool Store::owner_is_gone(const std::string& owner) {
  size_t first = owner.find(':');
  size_t second = first == std::string::npos ? first : owner.find(':', first + 1);
  if (second == std::string::npos) return false;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || owner.compare(0, first, host) != 0) return false;
  std::string pid_text = owner.substr(first + 1, second - first - 1);
  if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  pid_t pid = static_cast<pid_t>(std::stol(pid_text));
  return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
}

std::unique_ptr<Store> Store::open(const std::string& path, const StoreOptions& options) {
  return std::make_unique<SqliteStore>(path, false, options);
}

std::unique_ptr<Store> Store::open_readonly(const std::string& path) {
  return std::make_unique<SqliteStore>(path, true, StoreOptions{});
}

}  // namespace troupe
