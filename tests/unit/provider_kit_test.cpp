// provider_kit_test.cpp: the provider kit's pure parts — SSE parser, NDJSON line splitter,
// retry hints, HTTP/vendor error mapping, tool-call accumulation, the normalized response and
// the common settings.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/chat_response.h"
#include "common/http_error.h"
#include "common/line_splitter.h"
#include "common/retry_after.h"
#include "common/settings.h"
#include "common/sse_parser.h"

namespace {

using nlohmann::json;
using troupe::kit::CallError;
using troupe::kit::HeaderList;
using troupe::kit::LineSplitter;
using troupe::kit::SseEvent;
using troupe::kit::SseParser;

// ---------------------------------------------------------------------------------------
// SSE parser

struct Parsed {
  std::vector<SseEvent> events;
  bool pending = false;
};

bool same(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].event != b[i].event || a[i].data != b[i].data || a[i].id != b[i].id) return false;
  return true;
}

// Feeds the pieces in order and collects the events.
Parsed parse_pieces(const std::vector<std::string>& pieces) {
  Parsed out;
  SseParser parser;
  for (const std::string& piece : pieces)
    EXPECT_TRUE(parser.feed(piece, [&](const SseEvent& e) { out.events.push_back(e); }));
  out.pending = parser.has_pending();
  return out;
}

Parsed parse_whole(const std::string& stream) {
  return parse_pieces({stream});
}

// A stream that exercises every rule: BOM, comments, CRLF / LF / CR line ends, multi-line data,
// event names, ids, retry, multi-byte UTF-8 (2, 3 and 4 bytes), an event with no data.
const std::string kRealisticStream =
    "\xEF\xBB\xBF"
    ": keep-alive comment\r\n"
    "retry: 1500\r\n"
    "\r\n"
    "event: message_start\r\n"
    "id: 1\r\n"
    "data: {\"type\":\"message_start\",\"text\":\"h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C\"}\r\n"
    "\r\n"
    "data: first line\n"
    "data:second line without space\n"
    "data:  two spaces keep one\n"
    "\n"
    "event: only-a-name\n"
    "\n"
    "id: 7\r"
    "data: cr line ends \xF0\x9F\x8E\x89\r"
    "\r"
    "event: ping\n"
    "data\n"
    "\n"
    "data: [DONE]\n"
    "\n";

std::vector<SseEvent> expected_realistic() {
  return {
      {"message_start",
       "{\"type\":\"message_start\",\"text\":\"h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C\"}", "1"},
      {"message", "first line\nsecond line without space\n two spaces keep one", "1"},
      {"message", "cr line ends \xF0\x9F\x8E\x89", "7"},
      {"ping", "", "7"},
      {"message", "[DONE]", "7"},
  };
}

TEST(SseParser, RealisticStreamWholeGivesTheExpectedEvents) {
  Parsed p = parse_whole(kRealisticStream);
  ASSERT_TRUE(same(p.events, expected_realistic()));
  EXPECT_FALSE(p.pending);
}

TEST(SseParser, SplitAtEveryByteOffsetGivesIdenticalEvents) {
  const auto expected = expected_realistic();
  for (size_t cut = 0; cut <= kRealisticStream.size(); ++cut) {
    Parsed p = parse_pieces({kRealisticStream.substr(0, cut), kRealisticStream.substr(cut)});
    ASSERT_TRUE(same(p.events, expected)) << "split at " << cut;
  }
}

TEST(SseParser, SplitAtEveryPairOfOffsetsGivesIdenticalEvents) {
  const auto expected = expected_realistic();
  const std::string& s = kRealisticStream;
  for (size_t a = 0; a <= s.size(); a += 3) {
    for (size_t b = a; b <= s.size(); b += 5) {
      Parsed p = parse_pieces({s.substr(0, a), s.substr(a, b - a), s.substr(b)});
      ASSERT_TRUE(same(p.events, expected)) << "split at " << a << " and " << b;
    }
  }
}

TEST(SseParser, ByteByByteGivesIdenticalEvents) {
  std::vector<std::string> bytes;
  for (char c : kRealisticStream)
    bytes.emplace_back(1, c);
  Parsed p = parse_pieces(bytes);
  EXPECT_TRUE(same(p.events, expected_realistic()));
  EXPECT_FALSE(p.pending);
}

TEST(SseParser, CrlfSplitBetweenCrAndLfIsOneLineEnd) {
  Parsed p = parse_pieces({"data: a\r", "\ndata: b\r", "\n\r", "\n"});
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].data, "a\nb");
}

TEST(SseParser, LoneCrEndsALineAndCrCrIsABlankLine) {
  Parsed p = parse_pieces({"data: x\r\r", "data: y\r", "\r"});
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].data, "x");
  EXPECT_EQ(p.events[1].data, "y");
}

TEST(SseParser, Utf8CodePointSplitAcrossFeedsComesOutWhole) {
  const std::string emoji = "\xF0\x9F\x98\x80";  // 4 bytes
  const std::string stream = "data: <" + emoji + "\xE2\x82\xAC>\n\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    Parsed p = parse_pieces({stream.substr(0, cut), stream.substr(cut)});
    ASSERT_EQ(p.events.size(), 1u) << cut;
    EXPECT_EQ(p.events[0].data, "<" + emoji + "\xE2\x82\xAC>") << cut;
  }
}

TEST(SseParser, CommentsAreIgnoredAndRetryAndIdAreKept) {
  SseParser parser;
  std::vector<SseEvent> events;
  auto collect = [&](const SseEvent& e) { events.push_back(e); };
  parser.feed(": hello\n:\nretry: 250\nid: abc\ndata: 1\n\n", collect);
  EXPECT_EQ(parser.retry_ms(), 250u);
  const std::string nul_id("retry: 12x\nid: with\0nul\ndata: 2\n\n", 33);
  parser.feed(nul_id, collect);
  parser.feed("id\ndata: 3\n\n", collect);  // "id" with no value resets it
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].id, "abc");
  EXPECT_EQ(events[1].id, "abc") << "an id containing NUL is ignored";
  EXPECT_EQ(events[2].id, "");
  EXPECT_EQ(parser.retry_ms(), 250u) << "a retry that is not all digits is ignored";
}

TEST(SseParser, FieldsWithoutDataAndUnknownFieldsDispatchNothing) {
  Parsed p = parse_whole("event: x\nfoo: bar\nid: 3\n\nevent: y\ndata: z\n\n");
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].event, "y") << "the unused event name of the first block is dropped";
  EXPECT_EQ(p.events[0].id, "3");
}

TEST(SseParser, ReportsAPendingEventAtEndOfStream) {
  EXPECT_TRUE(parse_whole("data: {\"half\":").pending) << "a line without its end";
  EXPECT_TRUE(parse_whole("data: whole line\n").pending) << "no blank line after the fields";
  EXPECT_FALSE(parse_whole("data: x\n\n").pending);
  EXPECT_FALSE(parse_whole(": only a comment\n").pending);
}

TEST(SseParser, BomIsSkippedOnlyAtTheStartEvenWhenSplit) {
  Parsed p = parse_pieces({"\xEF", "\xBB",
                           "\xBF"
                           "data: a\n\n"});
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].data, "a");
  // Not a BOM: the bytes belong to the line (here to a field name nobody knows).
  Parsed q = parse_pieces({"\xEF\xBB",
                           "x: 1\ndata: b\n\n\xEF\xBB\xBF"
                           "data: c\n\n"});
  ASSERT_EQ(q.events.size(), 1u) << "a BOM in the middle makes its line an unknown field";
  EXPECT_EQ(q.events[0].data, "b");
}

TEST(SseParser, StopsWhenALineGrowsPastTheBound) {
  SseParser parser(16);
  int events = 0;
  auto count = [&](const SseEvent&) { ++events; };
  EXPECT_TRUE(parser.feed("data: short\n\n", count));
  EXPECT_FALSE(parser.feed("data: " + std::string(40, 'x'), count));
  EXPECT_FALSE(parser.feed("\n\n", count)) << "it stays stopped";
  EXPECT_EQ(events, 1);
}

// ---------------------------------------------------------------------------------------
// NDJSON line splitter

std::vector<std::string> split_pieces(const std::vector<std::string>& pieces, std::string* rest) {
  std::vector<std::string> lines;
  LineSplitter splitter;
  for (const std::string& piece : pieces)
    EXPECT_TRUE(splitter.feed(piece, [&](std::string_view l) { lines.emplace_back(l); }));
  if (rest != nullptr) *rest = splitter.pending();
  return lines;
}

const std::string kNdjson =
    "{\"message\":{\"content\":\"h\xC3\xA9\"},\"done\":false}\r\n"
    "{\"message\":{\"content\":\"\xF0\x9F\x8E\x89\"},\"done\":false}\n"
    "\n"
    "{\"done\":true}";

TEST(LineSplitter, SplitAtEveryByteOffsetGivesIdenticalLines) {
  std::string rest;
  const auto whole = split_pieces({kNdjson}, &rest);
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_EQ(whole[0], "{\"message\":{\"content\":\"h\xC3\xA9\"},\"done\":false}");
  EXPECT_EQ(whole[2], "");
  EXPECT_EQ(rest, "{\"done\":true}") << "the last line had no newline";
  for (size_t cut = 0; cut <= kNdjson.size(); ++cut) {
    std::string r;
    ASSERT_EQ(split_pieces({kNdjson.substr(0, cut), kNdjson.substr(cut)}, &r), whole) << cut;
    EXPECT_EQ(r, rest);
  }
  std::vector<std::string> bytes;
  for (char c : kNdjson)
    bytes.emplace_back(1, c);
  EXPECT_EQ(split_pieces(bytes, nullptr), whole);
}

TEST(LineSplitter, CrlfSplitBetweenCrAndLfDropsTheCr) {
  EXPECT_EQ(split_pieces({"{\"a\":1}\r", "\n{\"b\":2}\r\n"}, nullptr),
            (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
}

TEST(LineSplitter, StopsWhenALineGrowsPastTheBound) {
  LineSplitter splitter(8);
  int lines = 0;
  auto count = [&](std::string_view) { ++lines; };
  EXPECT_TRUE(splitter.feed("12345678\n", count));
  EXPECT_FALSE(splitter.feed("123456789", count));
  EXPECT_EQ(lines, 1);
  LineSplitter whole_line(8);
  EXPECT_FALSE(whole_line.feed("123456789\n", count)) << "also when the line is in one piece";
}

// ---------------------------------------------------------------------------------------
// Retry hints

constexpr int64_t kOct21 = 1445412480000;  // 2015-10-21T07:28:00Z

TEST(RetryAfter, MillisecondsHeaderMayBeFractional) {
  EXPECT_EQ(troupe::kit::parse_retry_after_ms("1500"), 1500u);
  EXPECT_EQ(troupe::kit::parse_retry_after_ms(" 20.5 "), 21u) << "rounded up";
  EXPECT_EQ(troupe::kit::parse_retry_after_ms("-5"), std::nullopt);
  EXPECT_EQ(troupe::kit::parse_retry_after_ms("soon"), std::nullopt);
  EXPECT_EQ(troupe::kit::parse_retry_after_ms(""), std::nullopt);
}

TEST(RetryAfter, SecondsOrHttpDate) {
  EXPECT_EQ(troupe::kit::parse_retry_after("2", 0), 2000u);
  EXPECT_EQ(troupe::kit::parse_retry_after("1.5", 0), 1500u);
  EXPECT_EQ(troupe::kit::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", kOct21 - 30000),
            30000u);
  EXPECT_EQ(troupe::kit::parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", kOct21 - 1000),
            1000u);
  EXPECT_EQ(troupe::kit::parse_retry_after("Wed Oct 21 07:28:00 2015", kOct21 - 5000), 5000u);
  EXPECT_EQ(troupe::kit::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", kOct21 + 9000), 0u)
      << "a date in the past means now";
  for (const char* junk :
       {"", "tomorrow", "Wed, 32 Oct 2015 07:28:00 GMT", "Wed, 21 Foo 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 07:28 GMT", "Wed, 21 Oct 2015 07:28:00 PST", "1e3", "0x10"}) {
    EXPECT_EQ(troupe::kit::parse_retry_after(junk, 0), std::nullopt) << junk;
  }
}

TEST(RetryAfter, GoDurationsAsOpenAISendsThem) {
  EXPECT_EQ(troupe::kit::parse_go_duration("1s"), 1000u);
  EXPECT_EQ(troupe::kit::parse_go_duration("6m0s"), 360000u);
  EXPECT_EQ(troupe::kit::parse_go_duration("59.5ms"), 60u);
  EXPECT_EQ(troupe::kit::parse_go_duration("1h2m3s"), 3723000u);
  EXPECT_EQ(troupe::kit::parse_go_duration("2.5s"), 2500u);
  EXPECT_EQ(troupe::kit::parse_go_duration("250us"), 1u);
  EXPECT_EQ(troupe::kit::parse_go_duration("0s"), 0u);
  EXPECT_EQ(troupe::kit::parse_go_duration("3"), 3000u) << "a bare number is seconds";
  for (const char* junk : {"", "s", "1x", "1m2", "-1s", "abc"})
    EXPECT_EQ(troupe::kit::parse_go_duration(junk), std::nullopt) << junk;
}

TEST(RetryAfter, Rfc3339TimesWithFractionsAndOffsets) {
  const int64_t t = 1704164645000;  // 2024-01-02T03:04:05Z
  EXPECT_EQ(troupe::kit::parse_rfc3339("2024-01-02T03:04:05Z"), t);
  EXPECT_EQ(troupe::kit::parse_rfc3339("2024-01-02T03:04:05.250Z"), t + 250);
  EXPECT_EQ(troupe::kit::parse_rfc3339("2024-01-02T05:04:05+02:00"), t);
  EXPECT_EQ(troupe::kit::parse_rfc3339("2024-01-02T01:34:05-01:30"), t);
  EXPECT_EQ(troupe::kit::parse_rfc3339("2024-01-02t03:04:05z"), t);
  for (const char* junk : {"", "2024-01-02", "2024-01-02T03:04:05", "2024-13-02T03:04:05Z",
                           "2024-01-02T03:04:05+2", "yesterday", "2024-01-02T03:04:05Zjunk"})
    EXPECT_EQ(troupe::kit::parse_rfc3339(junk), std::nullopt) << junk;
}

TEST(RetryAfter, GoogleDurations) {
  EXPECT_EQ(troupe::kit::parse_google_duration("30s"), 30000u);
  EXPECT_EQ(troupe::kit::parse_google_duration("1.5s"), 1500u);
  EXPECT_EQ(troupe::kit::parse_google_duration("30"), std::nullopt);
  EXPECT_EQ(troupe::kit::parse_google_duration("1m"), std::nullopt);
}

TEST(RetryAfter, HeadersFirstFoundWinsInTheContractOrder) {
  using troupe::kit::retry_after_ms;
  EXPECT_EQ(retry_after_ms({{"Retry-After", "3"}, {"retry-after-ms", "250"}}, 0), 250u);
  EXPECT_EQ(retry_after_ms({{"RETRY-AFTER", "3"}, {"x-ratelimit-reset-requests", "9s"}}, 0), 3000u);
  EXPECT_EQ(retry_after_ms(
                {{"x-ratelimit-reset-requests", "1s"}, {"x-ratelimit-reset-tokens", "6m0s"}}, 0),
            360000u)
      << "the larger of OpenAI's two resets";
  EXPECT_EQ(retry_after_ms({{"anthropic-ratelimit-requests-reset", "2024-01-02T03:04:05Z"},
                            {"anthropic-ratelimit-tokens-reset", "2024-01-02T03:04:09Z"},
                            {"anthropic-ratelimit-output-tokens-reset", "junk"}},
                           1704164645000 - 1000),
            5000u)
      << "the latest of Anthropic's resets, minus now";
  EXPECT_EQ(retry_after_ms({{"retry-after-ms", "junk"}, {"retry-after", "2"}}, 0), 2000u)
      << "an unreadable hint is skipped";
  EXPECT_EQ(retry_after_ms({{"content-type", "application/json"}}, 0), 0u);
  EXPECT_EQ(retry_after_ms({{"retry-after", "99999999999"}}, 0), UINT32_MAX) << "clamped";
}

// ---------------------------------------------------------------------------------------
// Error mapping

CallError map(int status, const std::string& body, const HeaderList& headers = {},
              const troupe::kit::ErrorReader& reader = &troupe::kit::read_openai_error,
              const std::string& request_id = "") {
  return troupe::kit::map_http_error("openai", status, headers, body, reader, request_id, 0);
}

std::string openai_error(const std::string& message, const std::string& code = "",
                         const std::string& type = "invalid_request_error") {
  json e = {{"error", {{"message", message}, {"type", type}, {"code", nullptr}}}};
  if (!code.empty()) e["error"]["code"] = code;
  return e.dump();
}

TEST(HttpError, EachStatusOfTheContractMapsToItsCodeAndRetryability) {
  struct Row {
    int http;
    troupe_status_t status;
    bool retryable;
  };
  const Row rows[] = {
      {400, TROUPE_INVALID_ARGUMENT, false},
      {422, TROUPE_INVALID_ARGUMENT, false},
      {401, TROUPE_AUTH, false},
      {403, TROUPE_AUTH, false},
      {404, TROUPE_NOT_FOUND, false},
      {408, TROUPE_TIMEOUT, true},
      {413, TROUPE_TOO_LARGE, false},
      {429, TROUPE_RATE_LIMITED, true},
      {500, TROUPE_UNAVAILABLE, true},
      {502, TROUPE_UNAVAILABLE, true},
      {503, TROUPE_UNAVAILABLE, true},
      {529, TROUPE_UNAVAILABLE, true},
      {507, TROUPE_UNAVAILABLE, true},
      {504, TROUPE_TIMEOUT, true},
      {402, TROUPE_BUDGET_EXCEEDED, false},
      {418, TROUPE_INVALID_ARGUMENT, false},
      {301, TROUPE_TRANSPORT, false},
  };
  for (const Row& row : rows) {
    CallError e = map(row.http, openai_error("boom"));
    EXPECT_EQ(e.status, row.status) << row.http;
    EXPECT_EQ(e.retryable, row.retryable) << row.http;
    EXPECT_EQ(e.message.rfind("openai: HTTP " + std::to_string(row.http) + ": boom", 0), 0u)
        << e.message;
  }
}

TEST(HttpError, ContextLengthErrorsAreTooLargeForEveryVendor) {
  CallError openai = map(400, openai_error("This model's maximum context length is 8192 tokens",
                                           "context_length_exceeded"));
  EXPECT_EQ(openai.status, TROUPE_TOO_LARGE);
  EXPECT_FALSE(openai.retryable);
  CallError anthropic = map(
      400,
      R"({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}})",
      {}, &troupe::kit::read_anthropic_error);
  EXPECT_EQ(anthropic.status, TROUPE_TOO_LARGE);
  CallError gemini = map(
      400,
      R"({"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}})",
      {}, &troupe::kit::read_gemini_error);
  EXPECT_EQ(gemini.status, TROUPE_TOO_LARGE);
  EXPECT_EQ(map(400, openai_error("bad temperature")).status, TROUPE_INVALID_ARGUMENT);
}

TEST(HttpError, InsufficientQuotaIsBudgetExceededAndNotRetryable) {
  CallError e = map(
      429,
      openai_error("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
      {{"retry-after", "20"}});
  EXPECT_EQ(e.status, TROUPE_BUDGET_EXCEEDED);
  EXPECT_FALSE(e.retryable);
  EXPECT_EQ(e.retry_after_ms, 0u) << "no retry hint for an error that retrying cannot fix";
  CallError rate = map(429, openai_error("Rate limit reached", "rate_limit_exceeded"),
                       {{"x-ratelimit-reset-tokens", "1.5s"}});
  EXPECT_EQ(rate.status, TROUPE_RATE_LIMITED);
  EXPECT_TRUE(rate.retryable);
  EXPECT_EQ(rate.retry_after_ms, 1500u);
}

// The host cuts error messages after redacting them (decision 0013): a cut made here could
// leave part of a key that the host's redactor no longer recognizes.
TEST(HttpError, VendorMessageIsKeptWholeForTheHostToRedactBeforeCutting) {
  std::string long_message;
  while (long_message.size() < 2000)
    long_message += "\xE2\x82\xAC";  // 3-byte euro signs
  long_message += " key sk-the-end-of-a-long-message";
  CallError e = map(400, openai_error(long_message), {}, &troupe::kit::read_openai_error, "req_1");
  EXPECT_EQ(e.message, "openai: HTTP 400: " + long_message + " (request req_1)");
  CallError streamed = troupe::kit::map_vendor_error(
      "openai", troupe::kit::VendorError{true, long_message, std::string(300, 't'), "", 0, 0},
      std::string(300, 'r'));
  EXPECT_EQ(streamed.message, "openai: " + std::string(300, 't') + ": " + long_message +
                                  " (request " + std::string(300, 'r') + ")");
}

TEST(HttpError, MessagesNeverContainHeaderValues) {
  const HeaderList headers = {{"x-request-id", "req_42"},
                              {"set-cookie", "session=HEADER-SECRET-VALUE"},
                              {"openai-organization", "org-HEADER-SECRET-VALUE"},
                              {"retry-after", "1"}};
  for (int status : {400, 401, 404, 429, 500, 503}) {
    CallError e =
        map(status, openai_error("nope"), headers, &troupe::kit::read_openai_error, "req_42");
    EXPECT_EQ(e.message.find("HEADER-SECRET-VALUE"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("(request req_42)"), std::string::npos) << e.message;
  }
}

TEST(HttpError, BodiesWithoutAVendorMessageFallBackToTheReasonOrPlainText) {
  EXPECT_EQ(map(502, "<html><body>Bad gateway</body></html>").message,
            "openai: HTTP 502: Bad Gateway");
  EXPECT_EQ(map(503, "").message, "openai: HTTP 503: Service Unavailable");
  EXPECT_EQ(map(404, "404 page not found\n").message, "openai: HTTP 404: 404 page not found");
  EXPECT_EQ(map(500, "line one\nline\x1b[31m two").message,
            "openai: HTTP 500: line one line [31m two")
      << "control characters become spaces";
}

TEST(HttpError, RetryHintComesFromHeadersElseFromGeminiRetryInfo) {
  const std::string gemini_body =
      R"({"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED",)"
      R"("details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},)"
      R"({"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}})";
  CallError body_hint = map(429, gemini_body, {}, &troupe::kit::read_gemini_error);
  EXPECT_EQ(body_hint.status, TROUPE_RATE_LIMITED);
  EXPECT_EQ(body_hint.retry_after_ms, 30000u);
  CallError header_hint =
      map(429, gemini_body, {{"Retry-After", "2"}}, &troupe::kit::read_gemini_error);
  EXPECT_EQ(header_hint.retry_after_ms, 2000u) << "headers come first";
  EXPECT_EQ(map(400, openai_error("x"), {{"retry-after", "5"}}).retry_after_ms, 0u);
}

TEST(HttpError, VendorReadersUnderstandTheirShapes) {
  auto a = troupe::kit::read_anthropic_error(json::parse(
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  EXPECT_TRUE(a.found);
  EXPECT_EQ(a.type, "overloaded_error");
  auto o = troupe::kit::read_ollama_error(json::parse(R"({"error":"model 'x' not found"})"));
  EXPECT_TRUE(o.found);
  EXPECT_EQ(o.message, "model 'x' not found");
  auto v = troupe::kit::read_openai_error(json::parse(
      R"({"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400})"));
  EXPECT_TRUE(v.found) << "vLLM's flat error";
  EXPECT_EQ(v.http_status, 400);
  EXPECT_FALSE(troupe::kit::read_openai_error(json::parse(R"({"choices":[]})")).found);
}

TEST(HttpError, ErrorsInsideAStreamMapByTheirType) {
  using troupe::kit::map_vendor_error;
  using troupe::kit::VendorError;
  struct Row {
    std::string type;
    std::string code;
    troupe_status_t status;
    bool retryable;
  };
  const Row rows[] = {
      {"overloaded_error", "", TROUPE_UNAVAILABLE, true},
      {"rate_limit_error", "", TROUPE_RATE_LIMITED, true},
      {"api_error", "", TROUPE_UNAVAILABLE, true},
      {"invalid_request_error", "", TROUPE_INVALID_ARGUMENT, false},
      {"authentication_error", "", TROUPE_AUTH, false},
      {"RESOURCE_EXHAUSTED", "", TROUPE_RATE_LIMITED, true},
      {"server_error", "", TROUPE_UNAVAILABLE, true},
      {"invalid_request_error", "context_length_exceeded", TROUPE_TOO_LARGE, false},
      {"something_new", "", TROUPE_UNAVAILABLE, true},
  };
  for (const Row& row : rows) {
    VendorError v;
    v.found = true;
    v.type = row.type;
    v.code = row.code;
    v.message = "it broke";
    CallError e = map_vendor_error("anthropic", v, "req_9");
    EXPECT_EQ(e.status, row.status) << row.type;
    EXPECT_EQ(e.retryable, row.retryable) << row.type;
    EXPECT_EQ(e.message, "anthropic: " + row.type + ": it broke (request req_9)");
  }
}

// ---------------------------------------------------------------------------------------
// Tool calls and the normalized response

TEST(ToolCalls, InterleavedPiecesByIndexComeOutInOrderWithParsedArguments) {
  troupe::kit::ToolCallAccumulator acc;
  acc.add(1, "call_b", "lookup", "");
  acc.add(0, "call_a", "search", "{\"q\":");
  acc.add(1, "", "", "{\"id\":");
  acc.add(0, "", "", "\"caf\xC3\xA9\"}");
  acc.add(1, "", "", "7}");
  acc.add(2, "", "noargs", "");
  std::vector<troupe::kit::ToolCall> calls;
  ASSERT_EQ(acc.finish("openai", &calls), std::nullopt);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].id, "call_a");
  EXPECT_EQ(calls[0].arguments, json({{"q", "caf\xC3\xA9"}}));
  EXPECT_EQ(calls[1].arguments, json({{"id", 7}}));
  EXPECT_EQ(calls[2].id, "call_3") << "a call without an id gets one";
  EXPECT_EQ(calls[2].arguments, json::object()) << "empty arguments are {}";
}

TEST(ToolCalls, ArgumentsThatAreNotJsonFailRetryablyNamingTheTool) {
  troupe::kit::ToolCallAccumulator acc;
  acc.add(0, "call_1", "get_weather", "{\"city\": \"Par");
  std::vector<troupe::kit::ToolCall> calls;
  auto error = acc.finish("openai", &calls);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(error->retryable);
  EXPECT_EQ(error->message, "openai: tool call 'get_weather' has arguments that are not JSON");
  json out;
  EXPECT_TRUE(troupe::kit::parse_tool_arguments("openai", "x", "[1,2]", &out).has_value())
      << "arguments must be an object";
}

TEST(ChatResponse, JsonHasAllUsageFieldsAndOmitsAnEmptyRequestId) {
  troupe::kit::ChatResponse r;
  r.text = "hi";
  r.usage = {10, 5, 4, 2};
  r.model = "m";
  json j = r.to_json();
  EXPECT_EQ(j["usage"], json({{"input_tokens", 10},
                              {"output_tokens", 5},
                              {"cached_input_tokens", 4},
                              {"reasoning_tokens", 2},
                              {"total_tokens", 15}}));
  EXPECT_FALSE(j.contains("request_id"));
  EXPECT_EQ(j["tool_calls"], json::array());
  r.request_id = "req_\xFF";
  EXPECT_NO_THROW(json::parse(r.to_json_text())) << "a bad byte from a header is replaced";
}

// ---------------------------------------------------------------------------------------
// Settings

std::string settings_error(const std::string& config) {
  try {
    std::vector<std::string> warnings;
    troupe::kit::read_common_settings("openai",
                                      troupe::kit::parse_settings_object("openai", config),
                                      "https://api.openai.com/v1", {}, &warnings);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(Settings, DefaultsAndValues) {
  std::vector<std::string> warnings;
  auto d = troupe::kit::read_common_settings("openai", json::object(), "https://x.test/v1/", {},
                                             &warnings);
  EXPECT_EQ(d.base_url, "https://x.test/v1");
  EXPECT_EQ(d.max_response_bytes, size_t{64} << 20);
  EXPECT_EQ(d.connect_timeout_ms, 10000u);
  EXPECT_EQ(d.idle_timeout_ms, 300000u);
  EXPECT_TRUE(warnings.empty());
  auto s = troupe::kit::read_common_settings(
      "openai",
      json::parse(R"({"base_url":"http://127.0.0.1:8000/v1","headers":{"X-Title":"troupe"},)"
                  R"("max_response_bytes":1000,"connect_timeout_s":2.5,"idle_timeout_s":0,)"
                  R"("max_tokens_param":"max_tokens","bse_url":"typo"})"),
      "https://api.openai.com/v1", {"max_tokens_param"}, &warnings);
  EXPECT_EQ(s.base_url, "http://127.0.0.1:8000/v1");
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0].first, "X-Title");
  EXPECT_EQ(s.max_response_bytes, 1000u);
  EXPECT_EQ(s.connect_timeout_ms, 2500u);
  EXPECT_EQ(s.idle_timeout_ms, 0u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "openai: unknown setting 'bse_url' (ignored)");
}

TEST(Settings, ErrorsNameTheKeyAndNeverEchoHeaderValues) {
  EXPECT_EQ(settings_error(R"({"base_url":42})"), "openai: settings.base_url: expected a string");
  EXPECT_EQ(settings_error(R"({"base_url":"ftp://x"})"),
            "openai: settings.base_url: expected an http:// or https:// URL");
  EXPECT_EQ(settings_error(R"({"headers":[]})"),
            "openai: settings.headers: expected an object of header: value");
  EXPECT_EQ(settings_error(R"({"headers":{"X-A":1}})"),
            "openai: settings.headers.X-A: expected a string");
  std::string injected = settings_error(R"({"headers":{"X-A":"v\r\nX-Evil: SECRETISH"}})");
  EXPECT_EQ(injected, "openai: settings.headers.X-A: line breaks are not allowed");
  EXPECT_EQ(settings_error(R"({"max_response_bytes":0})"),
            "openai: settings.max_response_bytes: expected a whole number from 1 to 1099511627776");
  EXPECT_EQ(settings_error(R"({"idle_timeout_s":"10"})"),
            "openai: settings.idle_timeout_s: expected a number of seconds");
  EXPECT_EQ(settings_error("[1]"), "openai: settings: expected a JSON object");
  EXPECT_EQ(settings_error(""), "") << "no settings at all is fine";
}

TEST(Settings, UrlHost) {
  EXPECT_EQ(troupe::kit::url_host("https://API.openai.com/v1"), "api.openai.com");
  EXPECT_EQ(troupe::kit::url_host("http://user:pw@127.0.0.1:8080/v1"), "127.0.0.1");
  EXPECT_EQ(troupe::kit::url_host("http://[::1]:11434"), "[::1]");
}

}  // namespace
