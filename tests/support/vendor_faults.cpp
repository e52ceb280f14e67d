// vendor_faults.cpp: the fake vendor's faults — their names, the HTTP errors with their retry
// hints, and the transport faults applied to a rendered reply on its way to a Script.
//
//   rate-limit-retry-after       429 + Retry-After: 2
//   rate-limit-retry-after-date  429 + Retry-After: an HTTP-date ~3 s ahead
//   rate-limit-retry-after-ms    429 + retry-after-ms: 1500 (and Retry-After: 2, which loses)
//   rate-limit-reset             429 + the vendor's own hint: openai x-ratelimit-reset-requests
//                                "2s" and -tokens "1.5s"; anthropic
//                                anthropic-ratelimit-requests-reset RFC 3339 ~2 s ahead; gemini
//                                RetryInfo retryDelay "2s" in the body; ollama none
//   http-NNN                     that status with the vendor's error body (openai 502: the HTML
//                                page a proxy sends)
//   insufficient-quota           openai 429 code insufficient_quota; anthropic 400 "credit
//                                balance is too low"; gemini 429 RESOURCE_EXHAUSTED with a
//                                QuotaFailure; ollama 429
//   context-too-long             400 with the vendor's context-length message
//   stream-error                 streamed: two events, then the vendor's in-stream error
//                                (anthropic overloaded_error, openai server_error chunk, gemini
//                                UNAVAILABLE chunk, ollama {"error"} line); not streamed: the
//                                same error as an HTTP status (529, 500, 503, 500)
//   slow-headers                 the normal reply, its headers after 3 s
//   slow-body                    the normal reply in 5 pieces 300 ms apart
//   reset-mid-stream             two events (or half the body), then a TCP RST
//   malformed-json               200 with broken JSON (streamed: one broken event mid-stream)
//   split-bytes                  the whole response one byte per write, 1 ms apart
//   utf8-split                   "héllo wörld — 日本語 🎉", written in pieces cut inside
//                                multi-byte code points
//   no-terminator                streamed: the vendor's end marker is missing ([DONE],
//                                message_stop, finishReason, "done": true); not streamed: the
//                                body delimited by closing the connection (valid: succeeds)
//   huge                         a 20 MiB text answer
//   hang                         nothing at all, until the client goes away
#include <cstdio>
#include <cstdlib>

#include "support/vendor_wire.h"

namespace troupe::test {
namespace {

const std::vector<std::string> kFaults = {"rate-limit-retry-after",
                                          "rate-limit-retry-after-date",
                                          "rate-limit-retry-after-ms",
                                          "rate-limit-reset",
                                          "http-400",
                                          "http-401",
                                          "http-403",
                                          "http-404",
                                          "http-408",
                                          "http-413",
                                          "http-500",
                                          "http-502",
                                          "http-503",
                                          "http-504",
                                          "http-529",
                                          "insufficient-quota",
                                          "context-too-long",
                                          "stream-error",
                                          "slow-headers",
                                          "slow-body",
                                          "reset-mid-stream",
                                          "malformed-json",
                                          "split-bytes",
                                          "utf8-split",
                                          "no-terminator",
                                          "huge",
                                          "hang"};

std::string join(const std::vector<std::string>& pieces) {
  std::string all;
  size_t size = 0;
  for (const auto& p : pieces)
    size += p.size();
  all.reserve(size);
  for (const auto& p : pieces)
    all += p;
  return all;
}

// The whole response as bytes on the wire, one byte per write, 1 ms apart.
Script split_bytes_script(const Rendered& r) {
  std::string wire = "HTTP/1.1 " + std::to_string(r.status) + " OK\r\n";
  for (const auto& [name, value] : r.headers)
    wire += name + ": " + value + "\r\n";
  if (r.stream) {
    wire += "Transfer-Encoding: chunked\r\n\r\n";
    for (const auto& e : r.events) {
      char size_line[32];
      std::snprintf(size_line, sizeof size_line, "%zx\r\n", e.size());
      wire += size_line + e + "\r\n";
    }
    wire += "0\r\n\r\n";
  } else {
    std::string body = join(r.events);
    wire += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  Script s;
  s.raw = true;
  s.chunks.reserve(wire.size());
  for (char c : wire)
    s.chunks.push_back({std::string(1, c), 1});
  return s;
}

// The body cut inside every multi-byte code point (before each continuation byte), each piece
// written on its own after a short pause so the client reads them separately.
Script utf8_split_script(const Rendered& r) {
  Script s;
  s.status = r.status;
  s.headers = r.headers;
  s.framing = r.stream ? Framing::chunked : Framing::content_length;
  std::string body = join(r.events);
  size_t start = 0;
  for (size_t i = 1; i < body.size(); ++i) {
    if ((static_cast<unsigned char>(body[i]) & 0xC0) == 0x80 &&
        (static_cast<unsigned char>(body[i - 1]) & 0x80) != 0) {
      s.chunks.push_back({body.substr(start, i - start), start == 0 ? 0u : 3u});
      start = i;
    }
  }
  s.chunks.push_back({body.substr(start), 3});
  return s;
}

// Five pieces, 300 ms apart.
Script slow_body_script(const Rendered& r) {
  Script s;
  s.status = r.status;
  s.headers = r.headers;
  std::vector<std::string> groups(5);
  if (r.stream) {
    s.framing = Framing::chunked;
    for (size_t i = 0; i < r.events.size(); ++i)
      groups[i * 5 / r.events.size()] += r.events[i];
  } else {
    std::string body = join(r.events);
    size_t step = (body.size() + 4) / 5;
    for (size_t i = 0; i < 5; ++i)
      if (i * step < body.size()) groups[i] = body.substr(i * step, step);
  }
  for (auto& g : groups)
    if (!g.empty()) s.chunks.push_back({std::move(g), 300});
  return s;
}

}  // namespace

int fault_status(const VendorWire& wire, std::string_view fault) {
  if (fault.starts_with("rate-limit-")) return 429;
  if (fault.starts_with("http-")) return std::atoi(std::string(fault.substr(5)).c_str());
  if (fault == "insufficient-quota") return wire.quota_status;
  if (fault == "context-too-long") return 400;
  return 0;
}

Rendered render_error(const VendorWire& wire, int status, std::string_view fault,
                      const std::string& model, const std::string& request_id,
                      const std::string& api_key, const std::string& message) {
  ErrorInfo e = wire.error_info(status, fault, model, api_key);
  if (!message.empty()) e.message = message;
  Rendered r = wire.render_error(status, fault, e, request_id);
  // The standard rate-limit hints (rate-limit-reset's are the vendor's own, added above).
  if (fault == "rate-limit-retry-after") {
    r.headers.emplace_back("Retry-After", "2");
  } else if (fault == "rate-limit-retry-after-date") {
    r.headers.emplace_back("Retry-After", http_date(seconds_ahead(3)));
  } else if (fault == "rate-limit-retry-after-ms") {
    r.headers.emplace_back("retry-after-ms", "1500");
    r.headers.emplace_back("Retry-After", "2");  // retry-after-ms is more precise and wins
  }
  return r;
}

Script plain_script(const Rendered& r) {
  Script s;
  s.status = r.status;
  s.headers = r.headers;
  if (r.stream) {
    s.framing = Framing::chunked;
    for (const auto& e : r.events)
      s.chunks.push_back({e, 0});
  } else {
    s.chunks.push_back({join(r.events), 0});
  }
  return s;
}

Script faulty_script(const VendorWire& wire, Rendered r, std::string_view fault, bool stream) {
  if (fault == "utf8-split") return utf8_split_script(r);
  if (fault == "slow-headers") {
    Script s = plain_script(r);
    s.head_delay_ms = 3000;
    return s;
  }
  if (fault == "slow-body") return slow_body_script(r);
  if (fault == "split-bytes") return split_bytes_script(r);
  if (fault == "no-terminator") {
    Script s = plain_script(r);
    if (!stream) {
      s.framing = Framing::until_close;
      s.after = After::close;
    }
    return s;
  }
  if (fault == "reset-mid-stream") {
    Script s = plain_script(r);
    s.after = After::reset;
    if (stream) {
      if (s.chunks.size() > 2) s.chunks.resize(2);
      s.chunked_terminator = false;
    } else {
      std::string body = s.chunks[0].data;
      s.content_length = static_cast<int64_t>(body.size());
      s.chunks = {{body.substr(0, body.size() / 2), 0}};
    }
    return s;
  }
  if (fault == "malformed-json") {
    if (stream) {
      r.events.insert(r.events.begin() + (r.events.size() > 1 ? 1 : 0), wire.broken_event());
      return plain_script(r);
    }
    std::string body = join(r.events);
    r.events = {body.substr(0, body.size() / 2)};
    return plain_script(r);
  }
  if (fault == "stream-error") {
    // Streamed (the non-streamed case is an HTTP error): two events, then the error.
    if (r.events.size() > 2) r.events.resize(2);
    r.events.push_back(wire.stream_error_event());
    return plain_script(r);
  }
  return plain_script(r);  // no fault, huge, and the error faults (rendered as errors)
}

const std::vector<std::string>& VendorServer::fault_names() {
  return kFaults;
}

bool VendorServer::is_fault(std::string_view name) {
  for (const auto& f : kFaults)
    if (f == name) return true;
  return false;
}

const std::string& VendorServer::utf8_text() {
  static const std::string text =
      "h\xC3\xA9llo w\xC3\xB6rld \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
      "\xF0\x9F\x8E\x89";
  return text;
}

const std::string& VendorServer::huge_text() {
  static const std::string text = [] {
    const std::string line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefgh.\n";
    const size_t size = 20u * 1024u * 1024u;
    std::string t;
    t.reserve(size);
    while (t.size() + line.size() <= size)
      t += line;
    t.append(line, 0, size - t.size());
    return t;
  }();
  return text;
}

std::string VendorServer::error_message(Vendor vendor, std::string_view fault,
                                        const std::string& model, const std::string& api_key) {
  const VendorWire& wire = vendor_wire(vendor);
  int status = fault == "stream-error" ? wire.stream_error_status : fault_status(wire, fault);
  if (status == 0) return "";
  return wire.error_info(status, fault, model, api_key).message;
}

}  // namespace troupe::test
