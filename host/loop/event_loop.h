// event_loop.h: the host's single event loop — epoll, libcurl's socket interface, timers,
// posted work.
//
// One EventLoop per host. Everything that touches Lua, plugin hooks or in-flight calls runs
// on the loop thread (the thread that calls run()/run_once()). Other threads talk to it only
// through post(), stop() and now_ns(); post() is thread-safe and wakes the loop at once (an
// eventfd in the epoll set).
//
// Each iteration waits in epoll_wait for ready sockets, the next timer or curl timeout, or a
// wake-up. HTTP transfers are libcurl easy handles spread over several multi handles (shards,
// decision 0007) driven through curl_multi_socket_action; their callbacks run on the loop
// thread. Timers are a min-heap keyed by a monotonic clock. host/loop/README.md has the order
// of work in one iteration.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loop/http_policy.h"
#include "troupe/plugin.h"

namespace troupe {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup (names arrive as the server spelled them). Returns the
// first match's value, or nullptr.
const std::string* find_header(const Headers& headers, std::string_view name);

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;
  uint32_t timeout_ms = 0;          // whole transfer; 0 = none
  uint32_t connect_timeout_ms = 0;  // 0 = default (10 s)
  uint32_t idle_timeout_ms = 0;     // no byte for this long fails the transfer; 0 = none
  // troupe.http's destination policy: checked on the URL's host before anything else and on
  // the address of every connection the transfer opens or reuses, before a byte is sent; a
  // refusal fails the transfer with TROUPE_INVALID_ARGUMENT and says why. Null (provider
  // plugins' transfers): no policy.
  std::shared_ptr<const HttpPolicy> policy;
};

// Callbacks of one transfer, all on the loop thread: on_headers once, on_chunk any number of
// times, on_complete exactly once (also after http_cancel, with TROUPE_CANCELLED). A complete
// response is TROUPE_OK whatever its HTTP status; transport failures map to TROUPE_TRANSPORT,
// deadlines to TROUPE_TIMEOUT.
struct HttpHandlers {
  std::function<void(int status, const Headers& headers)> on_headers;
  std::function<void(std::string_view chunk)> on_chunk;
  std::function<void(troupe_status_t status, const std::string& error)> on_complete;
};

class EventLoop {
 public:
  using Id = uint64_t;  // timers and transfers; never 0

  EventLoop();
  // Drops posted closures and pending timers, and aborts transfers WITHOUT calling their
  // handlers (their owners are usually being torn down too). Not from a loop callback.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs until stop() is called. Loop thread.
  void run();
  // Waits at most max_wait_ms for work, runs what is due, returns. Loop thread.
  void run_once(int max_wait_ms);
  // Makes run() return after the current iteration. Any thread.
  void stop();

  // Runs fn on the loop thread soon, in posting order. Any thread. Returns false (and drops
  // fn) once the loop is being destroyed.
  bool post(std::function<void()> fn);

  // Runs fn once after delay_ms. Loop thread.
  Id add_timer(uint64_t delay_ms, std::function<void()> fn);
  // True when the timer was pending and is now cancelled. Loop thread.
  bool cancel_timer(Id id);

  // Starts an HTTP transfer. Loop thread. Handlers are never called from inside http_start.
  Id http_start(HttpRequest request, HttpHandlers handlers);
  // Cancels a transfer; its on_complete runs soon with TROUPE_CANCELLED. Unknown ids (e.g.
  // already finished) are ignored. Loop thread.
  void http_cancel(Id id);

  // Monotonic clock. Any thread.
  static uint64_t now_ns();

  // Number of pending timers and transfers (for tests and metrics). Loop thread.
  size_t pending_timers() const;
  size_t active_transfers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
