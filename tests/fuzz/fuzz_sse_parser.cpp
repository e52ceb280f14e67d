// fuzz_sse_parser.cpp: libFuzzer target for the SSE parser
// (plugins/providers/common/sse_parser.cpp).
//
// Input: byte 0 seeds where the stream is cut (pieces.h), byte 1 picks the buffer bound
// (0: none, else 16 * byte), the rest is the stream. Checked beyond "no sanitizer report":
//   - fed whole or in pieces, the parser dispatches the same events (type, data, id) and ends
//     with the same pending state and retry value;
//   - an event's type and id hold no line end, its data no CR, its id no NUL;
//   - with a bound B, fed in pieces of at most 64 bytes, no event carries more than B + 64
//     bytes of data, and after a refused feed every later feed is refused.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/sse_parser.h"
#include "fuzz/pieces.h"

namespace {

using troupe::kit::SseEvent;
using troupe::kit::SseParser;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_sse_parser: %s\n", what);
  std::abort();
}

struct Outcome {
  std::vector<SseEvent> events;
  bool refused = false;
  bool pending = false;
  std::optional<uint64_t> retry;
};

void check_event(const SseEvent& e) {
  if (e.event.empty() || e.event.find_first_of("\r\n") != std::string::npos)
    fail("an event type is empty or holds a line end");
  if (e.data.find('\r') != std::string::npos) fail("event data holds a CR");
  if (e.id.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    fail("an event id holds a line end or a NUL");
}

Outcome parse(const std::vector<std::string_view>& pieces, size_t bound) {
  Outcome out;
  SseParser parser(bound);
  for (std::string_view piece : pieces) {
    bool ok = parser.feed(piece, [&](const SseEvent& e) {
      check_event(e);
      out.events.push_back(e);
    });
    if (out.refused && ok) fail("a feed after a refused one was accepted");
    out.refused = out.refused || !ok;
  }
  out.pending = parser.has_pending();
  out.retry = parser.retry_ms();
  return out;
}

bool same_events(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].event != b[i].event || a[i].data != b[i].data || a[i].id != b[i].id) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t seed = data[0];
  size_t bound = 16u * data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  std::vector<std::string_view> pieces = troupe::fuzz::cut_into_pieces(stream, seed);

  Outcome whole = parse({stream}, 0);
  Outcome split = parse(pieces, 0);
  if (!same_events(whole.events, split.events)) fail("the cuts changed the events");
  if (whole.pending != split.pending) fail("the cuts changed has_pending()");
  if (whole.retry != split.retry) fail("the cuts changed retry_ms()");

  if (bound != 0) {
    Outcome bounded = parse(pieces, bound);
    for (const SseEvent& e : bounded.events) {
      if (e.data.size() > bound + 64) fail("an event is larger than the bound allows");
    }
    if (!bounded.refused && !same_events(bounded.events, split.events))
      fail("a bound that was never reached changed the events");
  }
  return 0;
}
