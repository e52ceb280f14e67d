// line_splitter.h: an incremental splitter of newline-delimited text (NDJSON streams).
//
// Feed it body pieces split anywhere; it calls back once per complete line, without the line
// end (LF, or CRLF: a CR right before the LF is dropped, also when the CR and LF arrived in
// different pieces). Lines are cut only at LF bytes, so a multi-byte UTF-8 code point is never
// split. Empty lines are passed on too (NDJSON readers usually skip them).
//
//   troupe::kit::LineSplitter lines(max_line_bytes);
//   if (!lines.feed(chunk, [&](std::string_view line) { ... })) { /* a line was too long */ }
//   ...
//   if (!lines.pending().empty()) { /* the stream ended in the middle of a line */ }
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace troupe::kit {

class LineSplitter {
 public:
  using Handler = std::function<void(std::string_view line)>;

  // max_line_bytes bounds one line (0 = no bound).
  explicit LineSplitter(size_t max_line_bytes = 0) : max_line_bytes_(max_line_bytes) {}

  // Splits the next bytes, calling on_line for every line they complete. Returns false once a
  // line grew past max_line_bytes; the splitter then stops (feed it nothing more).
  bool feed(std::string_view bytes, const Handler& on_line);

  // The bytes after the last line end: at end of stream, a last line that had no newline.
  const std::string& pending() const { return partial_; }

 private:
  size_t max_line_bytes_;
  bool failed_ = false;
  std::string partial_;
};

}  // namespace troupe::kit
