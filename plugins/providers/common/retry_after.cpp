// retry_after.cpp: parsing the vendors' retry hints into milliseconds (see retry_after.h).
#include "common/retry_after.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>

#include "common/text.h"

namespace troupe::kit {
namespace {

// Anything longer than this (about 31 years) is clamped: it only has to fit the ABI's uint32.
constexpr double kMaxMs = 1e12;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Reads an unsigned decimal ("12", "1.5", ".5" is refused) from the front of *s.
std::optional<double> take_decimal(std::string_view* s) {
  size_t i = 0;
  double value = 0;
  while (i < s->size() && is_digit((*s)[i])) {
    value = value * 10 + ((*s)[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  if (i < s->size() && (*s)[i] == '.') {
    ++i;
    double scale = 0.1;
    size_t frac_start = i;
    while (i < s->size() && is_digit((*s)[i])) {
      value += ((*s)[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == frac_start) return std::nullopt;  // "1." is not a number here
  }
  s->remove_prefix(i);
  return value;
}

// A whole text that is one unsigned decimal.
std::optional<double> whole_decimal(std::string_view text) {
  text = trim_blanks(text);
  auto value = take_decimal(&text);
  if (!value || !text.empty()) return std::nullopt;
  return value;
}

uint64_t ms_from(double ms) {
  if (ms <= 0) return 0;
  if (ms > kMaxMs) ms = kMaxMs;
  return static_cast<uint64_t>(std::ceil(ms));
}

// A fixed number of digits at the front of s, as an integer.
std::optional<int> fixed_digits(std::string_view s, size_t pos, size_t count) {
  if (pos + count > s.size()) return std::nullopt;
  int value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (!is_digit(s[i])) return std::nullopt;
    value = value * 10 + (s[i] - '0');
  }
  return value;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool valid_time(int y, int mo, int d, int h, int mi, int s) {
  return y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && s <= 60;
}

int64_t to_unix_ms(int y, int mo, int d, int h, int mi, int s) {
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60000 + static_cast<int64_t>(s) * 1000;
}

std::optional<int> month_number(std::string_view name) {
  static const std::array<const char*, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (size_t i = 0; i < months.size(); ++i)
    if (iequals(name, months[i])) return static_cast<int>(i) + 1;
  return std::nullopt;
}

// "HH:MM:SS" -> seconds of the day parts.
bool parse_clock(std::string_view s, int* h, int* mi, int* sec) {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return false;
  auto hh = fixed_digits(s, 0, 2), mm = fixed_digits(s, 3, 2), ss = fixed_digits(s, 6, 2);
  if (!hh || !mm || !ss) return false;
  *h = *hh;
  *mi = *mm;
  *sec = *ss;
  return true;
}

std::optional<int> number_token(std::string_view s, size_t min_len, size_t max_len) {
  if (s.size() < min_len || s.size() > max_len) return std::nullopt;
  return fixed_digits(s, 0, s.size());
}

}  // namespace

std::optional<uint64_t> parse_retry_after_ms(std::string_view text) {
  auto value = whole_decimal(text);
  if (!value) return std::nullopt;
  return ms_from(*value);
}

std::optional<uint64_t> parse_retry_after(std::string_view text, int64_t now_unix_ms) {
  if (auto seconds = whole_decimal(text)) return ms_from(*seconds * 1000);
  if (auto when = parse_http_date(text)) {
    return *when > now_unix_ms ? static_cast<uint64_t>(*when - now_unix_ms) : 0;
  }
  return std::nullopt;
}

std::optional<int64_t> parse_http_date(std::string_view text) {
  // Split on spaces and commas; RFC 850 dates also split on '-'.
  std::vector<std::string_view> tokens;
  text = trim_blanks(text);
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',' || text[i] == '-'))
      ++i;
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != ',' && text[i] != '-')
      ++i;
    if (i > start) tokens.push_back(text.substr(start, i - start));
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (tokens.size() == 6) {  // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" or RFC 850
    auto day = number_token(tokens[1], 1, 2);
    auto month = month_number(tokens[2]);
    auto year = number_token(tokens[3], 2, 4);
    if (!day || !month || !year || tokens[3].size() == 3 || !iequals(tokens[5], "GMT"))
      return std::nullopt;
    if (!parse_clock(tokens[4], &h, &mi, &s)) return std::nullopt;
    d = *day;
    mo = *month;
    y = *year;
    if (tokens[3].size() == 2) y += y < 70 ? 2000 : 1900;  // RFC 850's two-digit year
  } else if (tokens.size() == 5) {                         // asctime "Sun Nov  6 08:49:37 1994"
    auto month = month_number(tokens[1]);
    auto day = number_token(tokens[2], 1, 2);
    auto year = number_token(tokens[4], 4, 4);
    if (!day || !month || !year || !parse_clock(tokens[3], &h, &mi, &s)) return std::nullopt;
    d = *day;
    mo = *month;
    y = *year;
  } else {
    return std::nullopt;
  }
  if (!valid_time(y, mo, d, h, mi, s)) return std::nullopt;
  return to_unix_ms(y, mo, d, h, mi, s);
}

std::optional<int64_t> parse_rfc3339(std::string_view text) {
  text = trim_blanks(text);
  // YYYY-MM-DDTHH:MM:SS
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[13] != ':' || text[16] != ':')
    return std::nullopt;
  char sep = text[10];
  if (sep != 'T' && sep != 't' && sep != ' ') return std::nullopt;
  auto y = fixed_digits(text, 0, 4), mo = fixed_digits(text, 5, 2), d = fixed_digits(text, 8, 2);
  auto h = fixed_digits(text, 11, 2), mi = fixed_digits(text, 14, 2), s = fixed_digits(text, 17, 2);
  if (!y || !mo || !d || !h || !mi || !s) return std::nullopt;
  if (!valid_time(*y, *mo, *d, *h, *mi, *s)) return std::nullopt;
  int64_t ms = to_unix_ms(*y, *mo, *d, *h, *mi, *s);
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {  // fraction of a second: keep milliseconds
    ++pos;
    size_t start = pos;
    double scale = 100;
    double frac_ms = 0;
    while (pos < text.size() && is_digit(text[pos])) {
      frac_ms += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
    ms += static_cast<int64_t>(frac_ms);
  }
  if (pos >= text.size()) return std::nullopt;  // the offset is required
  if (text[pos] == 'Z' || text[pos] == 'z') {
    return pos + 1 == text.size() ? std::optional<int64_t>(ms) : std::nullopt;
  }
  if ((text[pos] != '+' && text[pos] != '-') || pos + 6 != text.size() || text[pos + 3] != ':')
    return std::nullopt;
  auto oh = fixed_digits(text, pos + 1, 2), om = fixed_digits(text, pos + 4, 2);
  if (!oh || !om || *oh > 23 || *om > 59) return std::nullopt;
  int64_t offset_ms = (static_cast<int64_t>(*oh) * 60 + *om) * 60000;
  return text[pos] == '+' ? ms - offset_ms : ms + offset_ms;  // local = UTC + offset
}

std::optional<uint64_t> parse_go_duration(std::string_view text) {
  text = trim_blanks(text);
  if (text.empty()) return std::nullopt;
  if (auto seconds = whole_decimal(text)) return ms_from(*seconds * 1000);
  double total_ms = 0;
  while (!text.empty()) {
    auto value = take_decimal(&text);
    if (!value) return std::nullopt;
    double unit_ms = 0;
    size_t unit_len = 0;
    if (text.rfind("ms", 0) == 0) {
      unit_ms = 1, unit_len = 2;
    } else if (text.rfind("us", 0) == 0) {
      unit_ms = 1e-3, unit_len = 2;
    } else if (text.rfind("\xC2\xB5s", 0) == 0 || text.rfind("\xCE\xBCs", 0) == 0) {  // µs, μs
      unit_ms = 1e-3, unit_len = 3;
    } else if (text.rfind("ns", 0) == 0) {
      unit_ms = 1e-6, unit_len = 2;
    } else if (text.rfind("h", 0) == 0) {
      unit_ms = 3600e3, unit_len = 1;
    } else if (text.rfind("m", 0) == 0) {
      unit_ms = 60e3, unit_len = 1;
    } else if (text.rfind("s", 0) == 0) {
      unit_ms = 1e3, unit_len = 1;
    } else {
      return std::nullopt;
    }
    text.remove_prefix(unit_len);
    total_ms += *value * unit_ms;
  }
  return ms_from(total_ms);
}

std::optional<uint64_t> parse_google_duration(std::string_view text) {
  text = trim_blanks(text);
  if (text.empty() || text.back() != 's') return std::nullopt;
  text.remove_suffix(1);
  auto seconds = whole_decimal(text);
  if (!seconds) return std::nullopt;
  return ms_from(*seconds * 1000);
}

std::optional<std::string> find_header(const HeaderList& headers, std::string_view name) {
  for (const auto& [key, value] : headers)
    if (iequals(key, name)) return value;
  return std::nullopt;
}

uint32_t retry_after_ms(const HeaderList& headers, int64_t now_unix_ms) {
  auto clamp = [](uint64_t ms) {
    return static_cast<uint32_t>(std::min<uint64_t>(ms, std::numeric_limits<uint32_t>::max()));
  };
  if (auto v = find_header(headers, "retry-after-ms"))
    if (auto ms = parse_retry_after_ms(*v)) return clamp(*ms);
  if (auto v = find_header(headers, "retry-after"))
    if (auto ms = parse_retry_after(*v, now_unix_ms)) return clamp(*ms);

  std::optional<uint64_t> openai;
  for (const char* name : {"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"}) {
    if (auto v = find_header(headers, name))
      if (auto ms = parse_go_duration(*v)) openai = std::max(openai.value_or(0), *ms);
  }
  if (openai) return clamp(*openai);

  std::optional<int64_t> latest;
  for (const char* name :
       {"anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset"}) {
    if (auto v = find_header(headers, name))
      if (auto when = parse_rfc3339(*v)) latest = std::max(latest.value_or(*when), *when);
  }
  if (latest)
    return *latest > now_unix_ms ? clamp(static_cast<uint64_t>(*latest - now_unix_ms)) : 0;
  return 0;
}

int64_t unix_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace troupe::kit
