// migrations.h: the store's schema versions, and the checks and upgrades applied when a database is
// opened.
#pragma once

#include <string>

struct sqlite3;

namespace troupe::store_schema {

// The newest schema version this build knows; stored in the database as PRAGMA user_version.
int latest_version();

// Tells whether `db` may be opened as a troupe store, without writing to it. Returns its schema
// version: 0 for an empty database, else 1..latest_version(). Throws StoreError naming `path`
// when the file is not a SQLite database, belongs to another program, or has a schema newer
// than this build knows.
int inspect(sqlite3* db, const std::string& path);

// Applies every pending migration, each in its own IMMEDIATE transaction that also bumps
// user_version, so a crash leaves the database at a whole version. Safe against another
// process migrating the same file at the same time. Returns the resulting version.
int migrate(sqlite3* db, const std::string& path);

}  // namespace troupe::store_schema
