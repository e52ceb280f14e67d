// sse_parser.h: an incremental Server-Sent Events parser (WHATWG "event stream" rules).
//
// Feed it the response body in whatever pieces the network delivers; it calls back once per
// dispatched event. Bytes may be split anywhere: inside a field, inside a CRLF pair, inside a
// multi-byte UTF-8 code point (the parser works on bytes and only cuts at line ends, which
// never fall inside a code point, so event data is always whole).
//
//   troupe::kit::SseParser parser;
//   parser.feed(chunk, [&](const troupe::kit::SseEvent& e) { ...e.event, e.data... });
//   ...
//   if (parser.has_pending()) { /* the stream stopped in the middle of an event */ }
//
// Rules implemented: lines end with CRLF, LF or CR; one leading UTF-8 BOM is skipped;
// ":comment" lines are ignored; "field:value" drops one space after the colon; a line without
// a colon is a field with an empty value; fields event, data (several data lines are joined
// with "\n"), id (ignored when it contains NUL; it persists across events) and retry (ASCII
// digits only); a blank line dispatches the event, unless no data field was seen; other fields
// are ignored. Unlike a browser, invalid UTF-8 is passed through unchanged (the vendor JSON
// parser rejects it later).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::kit {

struct SseEvent {
  std::string event = "message";  // the "event:" field; "message" when the event had none
  std::string data;               // the "data:" lines joined with "\n"
  std::string id;                 // the last event id seen so far (it persists)
};

class SseParser {
 public:
  using Handler = std::function<void(const SseEvent&)>;

  // max_buffer_bytes bounds the unfinished line plus the undispatched data (0 = no bound).
  explicit SseParser(size_t max_buffer_bytes = 0) : max_buffer_bytes_(max_buffer_bytes) {}

  // Parses the next bytes of the stream, calling on_event for each event completed by them.
  // Returns false once the buffered line or event grew past max_buffer_bytes; the parser
  // then stops (feed it nothing more).
  bool feed(std::string_view bytes, const Handler& on_event);

  // At end of stream: true when bytes of an event that was never dispatched are buffered
  // (a line without its end, or fields without the closing blank line). WHATWG discards
  // such an event; a caller may want to say the stream was cut short.
  bool has_pending() const;

  // The last "retry:" value in milliseconds, if the stream sent one.
  std::optional<uint64_t> retry_ms() const { return retry_ms_; }

 private:
  void process_line(std::string_view line, const Handler& on_event);
  void dispatch(const Handler& on_event);

  size_t max_buffer_bytes_;
  bool failed_ = false;
  size_t bom_bytes_seen_ = 0;  // of the leading BOM EF BB BF, while still possible
  bool bom_done_ = false;
  bool after_cr_ = false;  // the last byte was CR: a following LF belongs to it
  std::string line_;       // the current line, without its end
  std::string data_;       // data lines, each followed by "\n"
  std::string event_type_;
  bool has_fields_ = false;  // any field line since the last dispatch
  std::string last_id_;
  std::optional<uint64_t> retry_ms_;
};

}  // namespace troupe::kit
