// chat_call.cpp: the driver of one chat call over the host's HTTP service (see chat_call.h).
#include "common/chat_call.h"

#include <utility>

#include "common/chat_request.h"
#include "common/line_splitter.h"
#include "common/retry_after.h"
#include "common/text.h"

namespace troupe::kit {
namespace {

// Error bodies are only read for their message: no need to keep more. A body cut here is not
// shown at all: its end could be the start of a key the host's redactor would not recognize.
constexpr size_t kMaxErrorBody = 64 * 1024;

// Forwards decoder events to the Call when the caller streams, and counts the decoded bytes
// (text, reasoning, arguments) against max_response_bytes either way.
class CallSink : public EventSink {
 public:
  CallSink(std::shared_ptr<sdk::Call> call, bool forward)
      : call_(std::move(call)), forward_(forward) {}

  void text_delta(std::string_view text) override {
    bytes_ += text.size();
    if (forward_) call_->text_delta(text);
  }
  void reasoning_delta(std::string_view text) override {
    bytes_ += text.size();
    if (forward_) call_->reasoning_delta(text);
  }
  void tool_call_delta(int32_t index, std::string_view id, std::string_view name,
                       std::string_view arguments) override {
    bytes_ += arguments.size();
    if (forward_) call_->tool_call_delta(index, id, name, arguments);
  }
  void usage(const nlohmann::json& usage) override {
    if (forward_) call_->usage(usage.dump());
  }

  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<sdk::Call> call_;
  bool forward_;
  size_t bytes_ = 0;
};

// Everything one call needs across the HTTP callbacks (all on the loop thread).
class ChatCallState {
 public:
  ChatCallState(const sdk::Host& host, std::shared_ptr<sdk::Call> call,
                const CommonSettings& settings, ChatCallSpec spec)
      : host_(host),
        call_(call),
        spec_(std::move(spec)),
        max_bytes_(settings.max_response_bytes),
        sink_(call, call->stream()),
        sse_(settings.max_response_bytes),
        lines_(settings.max_response_bytes) {}

  void set_transfer(troupe_handle_t handle) { transfer_ = handle; }

  void on_headers(int status, const sdk::HttpHeaders& headers) {
    http_status_ = status;
    headers_ = headers;
    success_ = status >= 200 && status <= 299;
    if (!spec_.request_id_header.empty())
      request_id_ = find_header(headers, spec_.request_id_header).value_or("");
  }

  void on_chunk(std::string_view chunk) {
    if (finished_) return;
    if (!success_) {  // an error body: keep the start, it is only read for the message
      size_t room = kMaxErrorBody - std::min(kMaxErrorBody, body_.size());
      error_body_cut_ = error_body_cut_ || chunk.size() > room;
      body_.append(chunk.substr(0, room));
      return;
    }
    if (!spec_.stream) {
      if (body_.size() + chunk.size() > max_bytes_) {
        fail(CallError{TROUPE_TOO_LARGE,
                       spec_.vendor + ": response larger than max_response_bytes (" +
                           std::to_string(max_bytes_) + " bytes)",
                       false, 0});
        return;
      }
      body_.append(chunk);
      return;
    }
    bool within_limit = spec_.framing == Framing::sse
                            ? sse_.feed(chunk, [this](const SseEvent& e) { decode_event(e); })
                            : lines_.feed(chunk, [this](std::string_view l) { decode_line(l); });
    if (!within_limit) too_large("a stream event");
  }

  void on_complete(troupe_status_t status, std::string_view error) {
    transfer_done_ = true;
    if (finished_) return;
    bool stream_complete = spec_.stream && success_ && spec_.decoder && spec_.decoder->done();
    if (status == TROUPE_CANCELLED) {
      fail(CallError{TROUPE_CANCELLED, spec_.vendor + ": cancelled", false, 0});
      return;
    }
    if (status != TROUPE_OK && !stream_complete) {
      // The host's own message (already free of secrets): connection refused, reset, timeout.
      bool retryable =
          status == TROUPE_TRANSPORT || status == TROUPE_TIMEOUT || status == TROUPE_UNAVAILABLE;
      std::string message =
          spec_.vendor + ": " +
          (error.empty() ? std::string(sdk::status_name(status)) : std::string(error));
      fail(CallError{status, message + request_suffix(request_id_), retryable, 0});
      return;
    }
    if (http_status_ == 0) {
      fail(transport_error(spec_.vendor + ": no HTTP response"));
      return;
    }
    if (!success_) {
      fail(map_http_error(spec_.vendor, http_status_, headers_,
                          error_body_cut_ ? std::string_view() : std::string_view(body_),
                          spec_.read_error, request_id_, unix_now_ms()));
      return;
    }
    ChatResponse response;
    if (!spec_.stream) {
      if (!spec_.parse_body) {
        fail(CallError{TROUPE_INTERNAL, spec_.vendor + ": no body parser", false, 0});
        return;
      }
      if (auto e = spec_.parse_body(body_, &response)) {
        fail(std::move(*e));
        return;
      }
    } else {
      if (spec_.framing == Framing::ndjson && !lines_.pending().empty()) {
        std::string last = lines_.pending();  // a last line without its newline still counts
        decode_line(last);
        if (finished_) return;
      }
      if (!spec_.decoder->done()) {
        std::string message = spec_.vendor + ": stream ended before " + spec_.end_marker;
        if (spec_.framing == Framing::sse && sse_.has_pending())
          message += " (in the middle of an event)";
        fail(transport_error(message));
        return;
      }
      if (auto e = spec_.decoder->finish(&response)) {
        fail(std::move(*e));
        return;
      }
    }
    if (response.request_id.empty()) response.request_id = request_id_;
    finished_ = true;
    call_->finish(response.to_json_text());
  }

 private:
  void decode_event(const SseEvent& event) {
    if (finished_ || spec_.decoder->done()) return;  // after the end marker nothing counts
    if (auto e = spec_.decoder->on_sse(event, sink_)) {
      fail(std::move(*e));
      return;
    }
    if (sink_.bytes() > max_bytes_) too_large("the streamed response");
  }

  void decode_line(std::string_view line) {
    if (finished_ || spec_.decoder->done()) return;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
    if (auto e = spec_.decoder->on_line(line, sink_)) {
      fail(std::move(*e));
      return;
    }
    if (sink_.bytes() > max_bytes_) too_large("the streamed response");
  }

  void too_large(const std::string& what) {
    fail(CallError{TROUPE_TOO_LARGE,
                   spec_.vendor + ": " + what + " is larger than max_response_bytes (" +
                       std::to_string(max_bytes_) + " bytes)",
                   false, 0});
  }

  // Completes the call with an error and stops the transfer if it is still running.
  void fail(CallError error) {
    if (finished_) return;
    finished_ = true;
    if (!request_id_.empty() && error.message.find("(request ") == std::string::npos)
      error.message += request_suffix(request_id_);
    fail_call(*call_, error);
    if (!transfer_done_ && transfer_ != 0) host_.http_cancel(transfer_);
  }

  sdk::Host host_;
  std::shared_ptr<sdk::Call> call_;
  ChatCallSpec spec_;
  size_t max_bytes_;
  CallSink sink_;
  SseParser sse_;
  LineSplitter lines_;

  troupe_handle_t transfer_ = 0;
  bool transfer_done_ = false;
  bool finished_ = false;
  int http_status_ = 0;
  bool success_ = false;
  sdk::HttpHeaders headers_;
  std::string request_id_;
  std::string body_;             // the non-streamed body, or the start of an error body
  bool error_body_cut_ = false;  // the error body was longer than kMaxErrorBody
};

}  // namespace

void start_chat_call(const sdk::Host& host, std::shared_ptr<sdk::Call> call,
                     const CommonSettings& settings, ChatCallSpec spec) {
  sdk::HttpRequest& request = spec.request;
  request.call = call->id();
  request.timeout_ms = call->timeout_ms();
  request.connect_timeout_ms = settings.connect_timeout_ms;
  request.idle_timeout_ms = spec.stream ? settings.idle_timeout_ms : 0;
  for (const auto& header : settings.headers) {  // configured headers win
    // A plain reference: clang 14 cannot capture a structured binding in a lambda.
    const std::string& name = header.first;
    std::erase_if(request.headers, [&](const auto& h) { return iequals(h.first, name); });
    request.headers.emplace_back(name, header.second);
  }
  if (spec.stream && !spec.decoder) {
    call->fail(TROUPE_INTERNAL, spec.vendor + ": streamed call without a decoder");
    return;
  }
  sdk::HttpRequest to_send = std::move(spec.request);
  std::string vendor = spec.vendor;
  auto state = std::make_shared<ChatCallState>(host, call, settings, std::move(spec));

  sdk::HttpHandlers handlers;
  handlers.on_headers = [state](int status, const sdk::HttpHeaders& headers) {
    state->on_headers(status, headers);
  };
  handlers.on_chunk = [state](std::string_view chunk) { state->on_chunk(chunk); };
  handlers.on_complete = [state](troupe_status_t status, std::string_view error) {
    state->on_complete(status, error);
  };
  sdk::HttpTransfer transfer = host.http(to_send, std::move(handlers));
  if (!transfer) {  // no handler will run
    if (transfer.status == TROUPE_CANCELLED) {
      call->fail(TROUPE_CANCELLED, vendor + ": cancelled");
    } else {
      call->fail(transfer.status,
                 vendor + ": the host refused the HTTP request (" +
                     sdk::status_name(transfer.status) + ")",
                 transfer.status == TROUPE_UNAVAILABLE);
    }
    return;
  }
  state->set_transfer(transfer.handle);
}

bool has_secret(const sdk::Host& host, std::string_view name) {
  troupe_str_t out{nullptr, 0};
  return host.api()->secret_get(host.handle(), sdk::to_str(name), &out) == TROUPE_OK;
}

}  // namespace troupe::kit
