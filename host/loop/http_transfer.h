// http_transfer.h: one HTTP transfer of the event loop — curl easy setup, header parsing, errors.
//
// Internal to host/loop. The EventLoop owns HttpTransfer objects and drives them through its
// multi handle; this file holds the parts that do not need the loop: turning an HttpRequest
// into easy-handle options, parsing response header lines as curl hands them over, and
// mapping curl results to troupe status codes.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "loop/event_loop.h"

namespace troupe::loop_detail {

// Parses response header lines one at a time (as CURLOPT_HEADERFUNCTION delivers them).
// Every status line starts a new header block, so interim responses (100 Continue) and any
// earlier block are dropped; the block that ends with a status >= 200 is the final one.
class HeaderParser {
 public:
  // Feeds one line including its line ending. Returns true when this line completed the
  // final header block (the empty line after a status >= 200).
  bool feed(std::string_view line);

  bool complete() const { return complete_; }
  int status() const { return status_; }
  const Headers& headers() const { return headers_; }

 private:
  int status_ = 0;
  bool complete_ = false;
  Headers headers_;
};

// Everything about one transfer except the loop bookkeeping. Not copyable: curl keeps
// pointers into it (error buffer, body, private pointer).
struct HttpTransfer {
  HttpTransfer() = default;
  ~HttpTransfer();
  HttpTransfer(const HttpTransfer&) = delete;
  HttpTransfer& operator=(const HttpTransfer&) = delete;

  EventLoop::Id id = 0;
  void* owner = nullptr;  // the loop driving it; curl callbacks reach the loop through this
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  std::string body;  // kept alive here: CURLOPT_POSTFIELDS points into it
  char error_buffer[CURL_ERROR_SIZE] = {};
  HttpHandlers handlers;
  HeaderParser parser;

  std::shared_ptr<const HttpPolicy> policy;  // null: no destination policy
  bool host_allowed = false;                 // the URL's host matched an http.allow entry
  std::string refusal;  // set when the policy refused a connection: the transfer's error

  uint32_t idle_timeout_ms = 0;
  uint64_t last_activity_ns = 0;  // start, then every received header line or body chunk

  int shard = -1;                  // the loop's multi handle it was added to; -1: none
  bool headers_delivered = false;  // on_headers has been called
  // Set once the transfer's outcome is decided outside curl (cancel, idle timeout, a setup
  // error, a throwing handler): curl callbacks then abort and curl's own result is ignored.
  bool terminal = false;
  troupe_status_t terminal_status = TROUPE_OK;
  std::string terminal_message;
};

// Creates the easy handle and applies the request to it. On failure returns false with a
// status and a message that never contains header values (they may hold API keys).
bool configure_transfer(HttpTransfer& transfer, HttpRequest& request, troupe_status_t* status,
                        std::string* message);

// Maps a finished transfer's curl result to a troupe status and a human message built from
// curl's error text (never from request headers); a policy refusal is TROUPE_INVALID_ARGUMENT
// with the refusal's text. The message is empty for CURLE_OK.
troupe_status_t map_curl_result(const HttpTransfer& transfer, CURLcode code, std::string* message);

}  // namespace troupe::loop_detail
