// retry_policy_test.cpp: the retry policy's arithmetic (core/retry_policy.h) — Temporal's
// growing waits, the cap, the jitter's bounds, Retry-After, what is never tried again, the checks.
#include "core/retry_policy.h"

#include <gtest/gtest.h>

namespace troupe {
namespace {

RetryPolicy no_jitter() {
  RetryPolicy p;
  p.jitter = 0;
  return p;
}

const AttemptFailure kRateLimited{"rate_limited", true, 0};

TEST(RetryPolicy, WaitsGrowByTheBackoffFromTheInitialWaitUpToTheMaximum) {
  RetryPolicy p = no_jitter();
  p.attempts = 0;  // no limit
  p.initial_ms = 1000;
  p.backoff = 2;
  p.max_ms = 5000;
  EXPECT_EQ(retry_delay_ms(p, 1, kRateLimited, 0.5), 1000);
  EXPECT_EQ(retry_delay_ms(p, 2, kRateLimited, 0.5), 2000);
  EXPECT_EQ(retry_delay_ms(p, 3, kRateLimited, 0.5), 4000);
  EXPECT_EQ(retry_delay_ms(p, 4, kRateLimited, 0.5), 5000);
  EXPECT_EQ(retry_delay_ms(p, 900, kRateLimited, 0.5), 5000) << "no overflow far out";
}

TEST(RetryPolicy, JitterOnlyShortensAWaitAndByAtMostItsFraction) {
  RetryPolicy p;  // jitter 0.2
  p.initial_ms = 1000;
  EXPECT_EQ(retry_delay_ms(p, 1, kRateLimited, 0.0), 1000);
  EXPECT_EQ(retry_delay_ms(p, 1, kRateLimited, 0.5), 900);
  EXPECT_GE(retry_delay_ms(p, 1, kRateLimited, 0.999999), 800);
}

TEST(RetryPolicy, ARetryAfterLongerThanTheComputedWaitReplacesItEvenPastTheMaximum) {
  RetryPolicy p = no_jitter();
  p.max_ms = 3000;
  EXPECT_EQ(retry_delay_ms(p, 1, {"rate_limited", true, 2500}, 0), 2500);
  EXPECT_EQ(retry_delay_ms(p, 1, {"rate_limited", true, 60000}, 0), 60000);
  EXPECT_EQ(retry_delay_ms(p, 1, {"rate_limited", true, 10}, 0), 1000) << "a shorter one: ours";
}

TEST(RetryPolicy, TheAttemptsCountTheFirstAndStopTheRetries) {
  RetryPolicy p = no_jitter();
  p.attempts = 3;
  EXPECT_GE(retry_delay_ms(p, 1, kRateLimited, 0), 0);
  EXPECT_GE(retry_delay_ms(p, 2, kRateLimited, 0), 0);
  EXPECT_EQ(retry_delay_ms(p, 3, kRateLimited, 0), -1);
  p.attempts = 1;
  EXPECT_EQ(retry_delay_ms(p, 1, kRateLimited, 0), -1) << "one attempt: never again";
}

TEST(RetryPolicy, NonRetryableFailuresCancelsAndListedStatusesAreNeverTriedAgain) {
  RetryPolicy p = no_jitter();
  EXPECT_EQ(retry_delay_ms(p, 1, {"auth", false, 0}, 0), -1);
  EXPECT_EQ(retry_delay_ms(p, 1, {"cancelled", true, 0}, 0), -1);
  p.non_retryable = {"rate_limited"};
  EXPECT_EQ(retry_delay_ms(p, 1, kRateLimited, 0), -1);
  EXPECT_GE(retry_delay_ms(p, 1, {"timeout", true, 0}, 0), 0);
}

TEST(RetryPolicy, ChecksNameTheFieldThatIsWrong) {
  EXPECT_EQ(check_retry_policy(RetryPolicy{}), "");
  RetryPolicy p;
  p.attempts = -1;
  EXPECT_NE(check_retry_policy(p).find("'attempts'"), std::string::npos);
  p = RetryPolicy{};
  p.backoff = 0.5;
  EXPECT_NE(check_retry_policy(p).find("'backoff'"), std::string::npos);
  p = RetryPolicy{};
  p.max_ms = 10;  // below initial
  EXPECT_NE(check_retry_policy(p).find("'max'"), std::string::npos);
  p = RetryPolicy{};
  p.jitter = 2;
  EXPECT_NE(check_retry_policy(p).find("'jitter'"), std::string::npos);
  p = RetryPolicy{};
  p.non_retryable = {"rate_limted"};
  EXPECT_NE(check_retry_policy(p).find("'rate_limted'"), std::string::npos);
  p.non_retryable = {"tool_error", "invalid_argument"};
  EXPECT_EQ(check_retry_policy(p), "");
}

}  // namespace
}  // namespace troupe
