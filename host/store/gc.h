// gc.h: deleting old runs from a store file — what Store::delete_old_runs() (troupe gc) does.
#pragma once

#include <string>

#include "store/store.h"

namespace troupe::store_gc {

// Deletes (options.dry_run: counts) the ended runs that finished before options.cutoff_ms, with
// their steps, events and cancel requests, on a connection of its own to the store at `path`.
// `readonly`: the store was opened read-only, so only a dry run is allowed. Throws StoreError
// naming the path, the reason and what was deleted before it.
GcResult delete_old_runs(const std::string& path, bool readonly, const GcOptions& options);

}  // namespace troupe::store_gc
