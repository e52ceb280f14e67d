// retry_policy.h: when a failed call is tried again, and how long the host waits first.
//
// One policy object for every retried effect (model calls, tools, troupe.http) and for the
// governance path's fallbacks. The shape and the defaults are Temporal's (an initial interval
// that grows by a backoff coefficient up to a maximum), with a finite default number of
// attempts and a little jitter, since a model call that failed three times is rarely worth a
// fourth without a person looking (docs/durability.md, "Retries").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct RetryPolicy {
  int attempts = 3;           // tries in all, the first included; 1: never again; 0: no limit
  int64_t initial_ms = 1000;  // the wait after the first failed attempt
  double backoff = 2.0;       // each next wait is this many times the one before
  int64_t max_ms = 100'000;   // no wait is longer, except one a Retry-After asks for
  double jitter = 0.2;        // each wait is shortened by up to this fraction, at random
  std::vector<std::string> non_retryable;  // status names never retried ("rate_limited", ...)
};

// A failed attempt as the policy sees it.
struct AttemptFailure {
  std::string status;          // the status name: "rate_limited", "timeout", "tool_error", ...
  bool retryable = false;      // what the plugin (or the error) says
  int64_t retry_after_ms = 0;  // what the server asked for (Retry-After), 0 when nothing
};

// The wait in ms before the attempt after `attempt` (1 for the first) failed as `failure`, or -1
// when it is not tried again: the failure is not retryable, its status is in non_retryable,
// "cancelled", or the policy's attempts are spent. unit is a draw from [0, 1) for the jitter.
// A Retry-After longer than the computed wait replaces it, even past max_ms.
int64_t retry_delay_ms(const RetryPolicy& policy, int attempt, const AttemptFailure& failure,
                       double unit);

// What is wrong with a policy ("" when nothing): a field out of range, or a status name that
// does not exist (the names of troupe_status_t, and "tool_error": a tool that raised).
std::string check_retry_policy(const RetryPolicy& policy);

}  // namespace troupe
