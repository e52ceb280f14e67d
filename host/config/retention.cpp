// retention.cpp: durations, statuses and the store request of a gc (retention.h).
#include "config/retention.h"

#include <stdexcept>

namespace troupe {
namespace {

constexpr const char* kDurationForms =
    "a whole number followed by d, h, m or s (30d, 12h, 90m, 45s)";

}  // namespace

int64_t parse_retention_ms(std::string_view text) {
  auto refuse = [&](const std::string& why) -> std::invalid_argument {
    return std::invalid_argument("'" + std::string(text) + "' " + why);
  };
  if (text.size() < 2) throw refuse(std::string("is not a duration: write ") + kDurationForms);
  int64_t unit_ms = 0;
  switch (text.back()) {
    case 'd':
      unit_ms = 24LL * 60 * 60 * 1000;
      break;
    case 'h':
      unit_ms = 60LL * 60 * 1000;
      break;
    case 'm':
      unit_ms = 60LL * 1000;
      break;
    case 's':
      unit_ms = 1000;
      break;
    default:
      throw refuse(std::string("is not a duration: write ") + kDurationForms);
  }
  int64_t count = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') throw refuse(std::string("is not a duration: write ") + kDurationForms);
    // Stop before the multiplication below could overflow; the bound is checked after.
    if (count > kMaxRetentionMs) break;
    count = count * 10 + (c - '0');
  }
  if (count > kMaxRetentionMs / unit_ms) {
    throw refuse("is longer than the longest age accepted, 36500d (100 years)");
  }
  return count * unit_ms;
}

void check_retention_status(const std::string& status) {
  if (status == "succeeded" || status == "failed" || status == "cancelled") return;
  throw std::invalid_argument("'" + status +
                              "' is not a status gc deletes: only ended runs go (succeeded, "
                              "failed, cancelled), never running ones");
}

GcOptions retention_request(const RetentionConfig& config,
                            const std::optional<std::string>& older_than,
                            const std::vector<std::string>& statuses, bool dry_run, int64_t now_ms,
                            const std::string& option) {
  GcOptions request;
  request.dry_run = dry_run;
  int64_t age_ms = 0;
  if (older_than) {
    try {
      age_ms = parse_retention_ms(*older_than);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(option + ": " + e.what());
    }
  } else if (!config.older_than.empty()) {
    age_ms = config.older_than_ms;  // checked when the configuration was read
  } else {
    throw std::invalid_argument("no age given: give " + option +
                                " (such as 30d, 12h, 90m or 45s), or set retention: { "
                                "older_than: 30d } in the configuration");
  }
  request.cutoff_ms = now_ms - age_ms;
  request.statuses = statuses.empty() ? config.statuses : statuses;
  for (const std::string& status : request.statuses) {
    try {
      check_retention_status(status);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("status: ") + e.what());
    }
  }
  return request;
}

}  // namespace troupe
