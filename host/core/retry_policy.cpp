// retry_policy.cpp: the policy's arithmetic and its checks (retry_policy.h).
#include "core/retry_policy.h"

#include <algorithm>
#include <cmath>

#include "troupe/status_names.h"

namespace troupe {

namespace {

bool known_status(const std::string& name) {
  if (name == "tool_error") return true;
  for (int s = TROUPE_OK; s <= TROUPE_INTERNAL; ++s) {
    if (name == troupe_status_name(static_cast<troupe_status_t>(s))) return true;
  }
  return false;
}

}  // namespace

int64_t retry_delay_ms(const RetryPolicy& policy, int attempt, const AttemptFailure& failure,
                       double unit) {
  if (!failure.retryable || failure.status == "cancelled") return -1;
  if (policy.attempts > 0 && attempt >= policy.attempts) return -1;
  if (std::find(policy.non_retryable.begin(), policy.non_retryable.end(), failure.status) !=
      policy.non_retryable.end()) {
    return -1;
  }
  // initial * backoff^(attempt - 1), computed in double and capped before it can overflow.
  double wait = static_cast<double>(policy.initial_ms) *
                std::pow(policy.backoff, static_cast<double>(std::max(attempt - 1, 0)));
  wait = std::min(wait, static_cast<double>(policy.max_ms));
  wait *= 1.0 - policy.jitter * std::clamp(unit, 0.0, 1.0);
  auto delay = static_cast<int64_t>(std::llround(wait));
  return std::max(delay, failure.retry_after_ms);
}

std::string check_retry_policy(const RetryPolicy& policy) {
  if (policy.attempts < 0 || policy.attempts > 1000)
    return "'attempts' must be between 0 (no limit) and 1000";
  if (policy.initial_ms < 0 || policy.initial_ms > 86'400'000)
    return "'initial' must be between 0 and a day (86400 s)";
  if (!(policy.backoff >= 1.0 && policy.backoff <= 100.0))
    return "'backoff' must be between 1 and 100";
  if (policy.max_ms < policy.initial_ms || policy.max_ms > 86'400'000)
    return "'max' must be at least 'initial' and at most a day (86400 s)";
  if (!(policy.jitter >= 0.0 && policy.jitter <= 1.0)) return "'jitter' must be between 0 and 1";
  for (const std::string& name : policy.non_retryable) {
    if (!known_status(name)) {
      return "'non_retryable' names '" + name +
             "', which is not a status (invalid_argument, rate_limited, transport, timeout, "
             "unavailable, internal, tool_error, ...)";
    }
  }
  return "";
}

}  // namespace troupe
