// fuzz_line_splitter.cpp: libFuzzer target for the NDJSON line splitter
// (plugins/providers/common/line_splitter.cpp).
//
// Input: byte 0 seeds where the stream is cut (pieces.h), byte 1 picks the line bound
// (0: none, else 4 * byte), the rest is the stream. Checked beyond "no sanitizer report":
//   - fed whole or in pieces (bounded or not), the same lines come out, the splitter refuses at
//     the same line, and what is left pending is the same;
//   - no line holds an LF or is longer than the bound; a refused splitter stays refused;
//   - unbounded, the lines, each followed by its LF, and the pending bytes give back the
//     stream, but for the one CR dropped before an LF.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/line_splitter.h"
#include "fuzz/pieces.h"

namespace {

using troupe::kit::LineSplitter;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_line_splitter: %s\n", what);
  std::abort();
}

struct Outcome {
  std::vector<std::string> lines;
  bool refused = false;
  std::string pending;
};

Outcome split(const std::vector<std::string_view>& pieces, size_t bound) {
  Outcome out;
  LineSplitter splitter(bound);
  for (std::string_view piece : pieces) {
    bool ok = splitter.feed(piece, [&](std::string_view line) {
      if (line.find('\n') != std::string_view::npos) fail("a line holds an LF");
      if (bound != 0 && line.size() > bound) fail("a line is longer than the bound");
      out.lines.emplace_back(line);
    });
    if (out.refused && ok) fail("a feed after a refused one was accepted");
    out.refused = out.refused || !ok;
  }
  out.pending = splitter.pending();
  return out;
}

// The stream with the CR of every CRLF removed.
std::string without_crlf_cr(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t seed = data[0];
  size_t bound = 4u * data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  std::vector<std::string_view> pieces = troupe::fuzz::cut_into_pieces(stream, seed);

  for (size_t b : {size_t{0}, bound}) {
    Outcome whole = split({stream}, b);
    Outcome cut = split(pieces, b);
    if (whole.lines != cut.lines) fail("the cuts changed the lines");
    if (whole.refused != cut.refused) fail("the cuts changed whether the bound was hit");
    if (!whole.refused && whole.pending != cut.pending) fail("the cuts changed pending()");
    if (b == 0) {
      std::string joined;
      for (const std::string& line : whole.lines)
        joined += line + "\n";
      joined += whole.pending;
      if (joined != without_crlf_cr(stream)) fail("lines and pending do not give the stream back");
    }
  }
  return 0;
}
