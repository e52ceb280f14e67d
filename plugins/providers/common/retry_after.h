// retry_after.h: how long a vendor asks us to wait before retrying, from its response hints.
//
// Pure functions; wall-clock "now" is a parameter (Unix milliseconds) so they are testable.
// Every parser returns std::nullopt for text that is not in its format (never throws).
// retry_after_ms() applies the order of the provider contract, first found wins:
//   1. retry-after-ms: milliseconds, may be fractional ("1500", "20.5")
//   2. Retry-After: seconds, may be fractional ("2", "1.5"), or an HTTP-date
//      ("Wed, 21 Oct 2015 07:28:00 GMT"; the obsolete RFC 850 and asctime forms too)
//   3. OpenAI x-ratelimit-reset-requests / x-ratelimit-reset-tokens: Go-style durations
//      ("1s", "6m0s", "59.5ms", "1h2m3s"); the larger of the two
//   4. Anthropic anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset:
//      RFC 3339 times; the latest of them, minus now
// Google's RetryInfo travels in the error body, not in headers: see parse_google_duration()
// and read_gemini_error() in http_error.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::kit {

using HeaderList = std::vector<std::pair<std::string, std::string>>;  // = sdk::HttpHeaders

// A decimal number of milliseconds ("1500", "20.5"), rounded up. Negative -> nullopt.
std::optional<uint64_t> parse_retry_after_ms(std::string_view text);

// A Retry-After value: decimal seconds or an HTTP-date (then minus now, at least 0).
std::optional<uint64_t> parse_retry_after(std::string_view text, int64_t now_unix_ms);

// An HTTP-date (IMF-fixdate, RFC 850 or asctime), as Unix milliseconds.
std::optional<int64_t> parse_http_date(std::string_view text);

// An RFC 3339 date-time ("2024-01-02T03:04:05Z", "...05.123+02:00"), as Unix milliseconds.
std::optional<int64_t> parse_rfc3339(std::string_view text);

// A Go-style duration as OpenAI sends it: a sequence of <decimal><unit> with units h, m, s,
// ms, us/µs, ns ("6m0s", "59.5ms", "1h2m3s"). A bare number is taken as seconds.
std::optional<uint64_t> parse_go_duration(std::string_view text);

// A google.protobuf.Duration in JSON form: decimal seconds and an "s" ("30s", "1.5s").
std::optional<uint64_t> parse_google_duration(std::string_view text);

// The retry hint from response headers (names compared case-insensitively), in the order
// above; 0 when there is none. Capped at UINT32_MAX.
uint32_t retry_after_ms(const HeaderList& headers, int64_t now_unix_ms);

// The first header of that name (case-insensitive), or nullopt.
std::optional<std::string> find_header(const HeaderList& headers, std::string_view name);

// Wall-clock now in Unix milliseconds (the one impure helper, for callers of the above).
int64_t unix_now_ms();

}  // namespace troupe::kit
