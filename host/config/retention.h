// retention.h: which old runs `troupe gc` (and Host.gc in Python) deletes — durations ("30d",
// "12h", "90m", "45s"), the statuses it may delete, and the request it hands the store, from
// the command's arguments and the configuration's `retention:` default.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "store/store.h"

namespace troupe {

// The longest age accepted: 100 years (36500d). Longer is surely a typo, and a bound keeps the
// milliseconds far from overflowing.
inline constexpr int64_t kMaxRetentionMs = 36500LL * 24 * 60 * 60 * 1000;

// A whole number and one unit — d (days), h, m, s — to milliseconds: "30d", "12h", "90m", "45s",
// "0s". Nothing else: no sign, space, fraction, other or combined units. Throws
// std::invalid_argument naming the text and what is accepted.
int64_t parse_retention_ms(std::string_view text);

// Throws std::invalid_argument unless status is one gc may delete: succeeded, failed or
// cancelled (never running, or any other).
void check_retention_status(const std::string& status);

// What a gc asks the store, at now_ms (unix epoch milliseconds). older_than: nullopt = the
// configuration's retention.older_than; statuses: empty = the configuration's retention.status,
// else every ended status. `option` names the age argument in messages ("--older-than",
// "older_than"). Throws std::invalid_argument for a bad duration or status, and when no age is
// given anywhere (saying how to give one).
GcOptions retention_request(const RetentionConfig& config,
                            const std::optional<std::string>& older_than,
                            const std::vector<std::string>& statuses, bool dry_run, int64_t now_ms,
                            const std::string& option);

}  // namespace troupe
