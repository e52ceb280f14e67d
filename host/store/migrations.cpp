// migrations.cpp: the store's schema, one SQL script per version, and the code that applies them.
#include "store/migrations.h"

#include <sqlite3.h>

#include <cstdio>
#include <iterator>

#include "core/log.h"
#include "store/store.h"

namespace troupe::store_schema {
namespace {

// PRAGMA application_id of a troupe store ("TRUP"): tells our files from other programs'
// SQLite databases, which may also use user_version.
constexpr int kApplicationId = 0x54525550;

// kMigrations[i] takes the schema from version i to version i + 1. Append only: never edit a
// script that has shipped; add a new one instead (see README.md).
const char* const kMigrations[] = {
    // v1: runs, their journal of steps, and the append-only event log.
    R"sql(
CREATE TABLE runs (
  id          TEXT PRIMARY KEY NOT NULL,
  workflow    TEXT NOT NULL DEFAULT '',
  source      TEXT NOT NULL DEFAULT '',
  input       TEXT NOT NULL DEFAULT '',
  status      TEXT NOT NULL,
  output      TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT '',
  created_ms  INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_created ON runs(created_ms);

CREATE TABLE steps (
  run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step_key      TEXT NOT NULL,
  kind          TEXT NOT NULL,
  agent         TEXT NOT NULL DEFAULT '',
  model         TEXT NOT NULL DEFAULT '',
  request       TEXT NOT NULL DEFAULT '',
  response      TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  error         TEXT NOT NULL DEFAULT '',
  input_tokens  INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  started_ms    INTEGER NOT NULL DEFAULT 0,
  finished_ms   INTEGER NOT NULL DEFAULT 0,
  latency_us    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, step_key)
);

-- No foreign key on run_id: the event log is append-only history and may outlive or precede
-- the row it talks about.
CREATE TABLE events (
  seq      INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id   TEXT NOT NULL,
  ts_ms    INTEGER NOT NULL,
  type     TEXT NOT NULL,
  step_key TEXT NOT NULL DEFAULT '',
  data     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_run ON events(run_id, seq);
)sql",
    // v2: cancels asked from another process (troupe cancel), applied by the host running
    // the run, then removed.
    R"sql(
CREATE TABLE cancel_requests (
  run_id       TEXT PRIMARY KEY NOT NULL,
  reason       TEXT NOT NULL DEFAULT '',
  requested_ms INTEGER NOT NULL
);
)sql",
    // v3: durable execution — who drives a run (owner, lease, epoch for fencing), when a parked
    // run wakes, the script it runs (by hash, the text in `scripts`), the run it was forked
    // from; per step, the request hash resume checks and the epoch that recorded it.
    R"sql(
ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN wake_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN script_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN parent_run TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN parent_step TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_unfinished ON runs(status, created_ms)
  WHERE status IN ('queued', 'running', 'waiting');
ALTER TABLE steps ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE steps ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
CREATE TABLE scripts (
  hash TEXT PRIMARY KEY NOT NULL,
  text BLOB NOT NULL
);
-- Signals sent to runs (troupe signal): a wait takes the oldest one of its name it has not
-- taken yet; the step that took it records its seq, so it is delivered once.
CREATE TABLE signals (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id  TEXT NOT NULL,
  name    TEXT NOT NULL,
  data    TEXT NOT NULL DEFAULT 'null',
  sent_ms INTEGER NOT NULL
);
CREATE INDEX signals_by_run ON signals(run_id, name, seq);
-- Approvals a run asked for (troupe.approve), by the step that waits for it; the first decision
-- (a person's, or the default at the deadline) wins.
CREATE TABLE approvals (
  run_id       TEXT NOT NULL,
  step_key     TEXT NOT NULL,
  request      TEXT NOT NULL DEFAULT '{}',
  deadline_ms  INTEGER NOT NULL DEFAULT 0,
  requested_ms INTEGER NOT NULL,
  choice       TEXT NOT NULL DEFAULT '',
  decided_by   TEXT NOT NULL DEFAULT '',
  comment      TEXT NOT NULL DEFAULT '',
  decided_ms   INTEGER NOT NULL DEFAULT 0,
  defaulted    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, step_key)
);
CREATE INDEX approvals_pending ON approvals(requested_ms) WHERE choice = '';
)sql",
    // v4: retries and dead letters — each failed attempt of a step that was tried again (the
    // step keeps the outcome of its last attempt and how many there were), and the failed runs
    // kept for a person to re-drive or drop (troupe dlq).
    R"sql(
ALTER TABLE steps ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
CREATE TABLE attempts (
  run_id         TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step_key       TEXT NOT NULL,
  attempt        INTEGER NOT NULL,
  model          TEXT NOT NULL DEFAULT '',
  status         TEXT NOT NULL,
  error          TEXT NOT NULL DEFAULT '',
  retry_after_ms INTEGER NOT NULL DEFAULT 0,
  delay_ms       INTEGER NOT NULL DEFAULT 0,
  started_ms     INTEGER NOT NULL DEFAULT 0,
  finished_ms    INTEGER NOT NULL DEFAULT 0,
  latency_us     INTEGER NOT NULL DEFAULT 0,
  epoch          INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, step_key, attempt)
);
CREATE TABLE dead_letters (
  run_id   TEXT PRIMARY KEY NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  reason   TEXT NOT NULL,
  step_key TEXT NOT NULL DEFAULT '',
  error    TEXT NOT NULL DEFAULT '',
  dead_ms  INTEGER NOT NULL,
  -- The epoch that failed: a row stands only while the run is failed in that epoch (a re-driven
  -- run that then succeeded, or failed for a reason not kept, leaves its old row behind).
  epoch    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX dead_letters_by_time ON dead_letters(dead_ms);
)sql",
    // v5: the cost of every model call (governance, docs/governance.md): its price from the
    // pricing table (NULL when the model has none, then unpriced = 1) and the token counts it
    // was priced by.
    R"sql(
ALTER TABLE steps ADD COLUMN cost_usd REAL;
ALTER TABLE steps ADD COLUMN cached_input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
)sql",
};

constexpr int kLatest = static_cast<int>(std::size(kMigrations));

std::string not_a_store(const std::string& path, const std::string& why) {
  return path + ": not a troupe store: " + why;
}

std::string newer_schema(const std::string& path, int version) {
  return path + ": schema version " + std::to_string(version) +
         " is newer than this build of troupe supports (" + std::to_string(kLatest) +
         "); use a newer troupe";
}

// Runs a statement returning one integer. Returns the SQLite result code; *out is set on success.
int query_int(sqlite3* db, const char* sql, int64_t* out) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(stmt, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(stmt);
  return rc;
}

void exec(sqlite3* db, const char* sql, const std::string& path, const std::string& what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw StoreError(path + ": " + what + ": " + msg);
  }
}

}  // namespace

int latest_version() {
  return kLatest;
}

int inspect(sqlite3* db, const std::string& path) {
  // The first read parses the file header: this is where a non-database file shows.
  int64_t tables = 0;
  int rc = query_int(db,
                     "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                     "'sqlite\\_%' ESCAPE '\\'",
                     &tables);
  if ((rc & 0xff) == SQLITE_NOTADB) throw StoreError(not_a_store(path, sqlite3_errstr(rc)));
  if (rc != SQLITE_OK) throw StoreError(path + ": cannot read: " + sqlite3_errmsg(db));

  int64_t version = 0;
  int64_t app_id = 0;
  if (query_int(db, "PRAGMA user_version", &version) != SQLITE_OK ||
      query_int(db, "PRAGMA application_id", &app_id) != SQLITE_OK) {
    throw StoreError(path + ": cannot read: " + sqlite3_errmsg(db));
  }
  if (app_id != 0 && app_id != kApplicationId) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(app_id));
    throw StoreError(
        not_a_store(path, std::string("application_id ") + hex + " belongs to another program"));
  }
  if (app_id == 0 && version != 0) {
    throw StoreError(not_a_store(
        path, "schema version " + std::to_string(version) + " without troupe's application_id"));
  }
  if (app_id == 0 && tables != 0) {
    throw StoreError(not_a_store(
        path, "the database holds " + std::to_string(tables) + " tables of another program"));
  }
  if (version > kLatest) throw StoreError(newer_schema(path, static_cast<int>(version)));
  return static_cast<int>(version);
}

int migrate(sqlite3* db, const std::string& path) {
  for (;;) {
    // IMMEDIATE takes the write lock before reading the version, so two processes opening a
    // fresh file at once apply each migration exactly once.
    exec(db, "BEGIN IMMEDIATE", path, "cannot start a schema migration");
    int64_t version = 0;
    if (query_int(db, "PRAGMA user_version", &version) != SQLITE_OK) {
      std::string msg = sqlite3_errmsg(db);
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw StoreError(path + ": cannot read the schema version: " + msg);
    }
    if (version > kLatest) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw StoreError(newer_schema(path, static_cast<int>(version)));
    }
    if (version == kLatest) {
      exec(db, "COMMIT", path, "cannot finish the schema migration");
      return kLatest;
    }
    const int next = static_cast<int>(version) + 1;
    const std::string what = "migration to schema version " + std::to_string(next) + " failed";
    if (version == 0) {
      exec(db, ("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str(), path, what);
    }
    exec(db, kMigrations[version], path, what);
    exec(db, ("PRAGMA user_version = " + std::to_string(next)).c_str(), path, what);
    exec(db, "COMMIT", path, what);
    log::info("store", path + ": schema migrated to version " + std::to_string(next));
  }
}

}  // namespace troupe::store_schema
