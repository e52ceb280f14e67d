// chat_call.h: the driver of ONE chat call over the host's HTTP service, shared by every
// provider plugin.
//
// The plugin builds the vendor request (URL, headers, body) and supplies a ChatCallSpec:
// how to parse a non-streamed body, how to decode a stream (a StreamDecoder), how to read the
// vendor's error bodies. start_chat_call() then does the rest and completes the Call exactly
// once:
//   - HTTP status 2xx -> the success path; anything else -> the error body is collected (up
//     to 64 KiB) and mapped by map_http_error() (http_error.h)
//   - non-streamed: the body is collected up to settings.max_response_bytes (TOO_LARGE past
//     it) and handed to parse_body; the request id header is added to the response
//   - streamed: bytes -> SSE events or NDJSON lines -> decoder; the decoder's events reach the
//     caller through an EventSink (only when the caller streams); text, reasoning and
//     argument bytes past max_response_bytes fail with TOO_LARGE; a stream that ends before
//     the decoder saw the vendor's end marker fails with TRANSPORT, retryable
//     ("openai: stream ended before [DONE]")
//   - timeouts: call->timeout_ms() is the whole transfer's deadline, settings give the
//     connect timeout and (streams only) the idle timeout; the host enforces them and
//     reports TIMEOUT; transport failures and cancellation keep the host's status
//
//   kit::ChatCallSpec spec;
//   spec.vendor = "openai";
//   spec.request = std::move(http_request);         // method, url, headers, body
//   spec.stream = call->stream();
//   spec.framing = kit::Framing::sse;
//   spec.decoder = std::make_unique<MyDecoder>();   // when streaming
//   spec.parse_body = &my_parse_body;               // when not streaming
//   spec.read_error = &kit::read_openai_error;
//   spec.request_id_header = "x-request-id";
//   spec.end_marker = "[DONE]";
//   kit::start_chat_call(host(), call, settings, std::move(spec));
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <troupe/plugin.hpp>

#include "common/call_error.h"
#include "common/chat_response.h"
#include "common/event_sink.h"
#include "common/http_error.h"
#include "common/settings.h"
#include "common/sse_parser.h"

namespace troupe::kit {

// How a vendor frames its stream.
enum class Framing {
  sse,     // Server-Sent Events: the decoder gets on_sse()
  ndjson,  // one JSON object per line: the decoder gets on_line() (empty lines skipped)
};

// Decodes one streamed response. One object per call; everything runs on the loop thread.
// Return an error from on_sse/on_line to fail the call at once (a chunk that is not JSON, an
// error object inside the stream, ...); the driver then cancels the transfer.
class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;

  virtual std::optional<CallError> on_sse(const SseEvent& event, EventSink& sink) {
    (void)event, (void)sink;
    return CallError{TROUPE_INTERNAL, "decoder does not take SSE events", false, 0};
  }
  virtual std::optional<CallError> on_line(std::string_view line, EventSink& sink) {
    (void)line, (void)sink;
    return CallError{TROUPE_INTERNAL, "decoder does not take NDJSON lines", false, 0};
  }

  // True once the vendor's end marker arrived (e.g. "data: [DONE]").
  virtual bool done() const = 0;

  // After the stream ended with done(): the final normalized response, or an error (e.g. a
  // tool call whose arguments are not JSON).
  virtual std::optional<CallError> finish(ChatResponse* out) = 0;
};

struct ChatCallSpec {
  std::string vendor;        // "openai": starts every message the driver writes
  sdk::HttpRequest request;  // method, url, headers, body; the driver sets call and timeouts
  bool stream = false;       // the request asked the vendor for a stream

  // Streamed calls.
  Framing framing = Framing::sse;
  std::unique_ptr<StreamDecoder> decoder;
  std::string end_marker;  // names the end marker in "stream ended before <end_marker>"

  // Non-streamed calls: a complete 2xx body -> the normalized response.
  std::function<std::optional<CallError>(std::string_view body, ChatResponse* out)> parse_body;

  // Error bodies of non-2xx responses.
  ErrorReader read_error;
  // The response header that carries the vendor's request id ("x-request-id"); "" = none.
  std::string request_id_header;
};

// Starts the call; returns at once. The Call is completed exactly once, later (or now, when
// the host refuses the transfer). Headers from settings.headers are added to the request
// (replacing a plugin header of the same name). Loop thread.
void start_chat_call(const sdk::Host& host, std::shared_ptr<sdk::Call> call,
                     const CommonSettings& settings, ChatCallSpec spec);

// True when the instance has the secret. Checks presence only: the value is never copied.
bool has_secret(const sdk::Host& host, std::string_view name);

}  // namespace troupe::kit
