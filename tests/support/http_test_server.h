// http_test_server.h: a scriptable HTTP/1.1 server on 127.0.0.1 for tests (no dependencies).
//
// Start it, register routes by exact path (or by path prefix), point a client at url("/path").
// Each route's handler
// gets the parsed request and returns a Script: the status and headers, then body pieces each
// written after its own delay, then how the connection ends (kept alive, closed, or reset).
// That is enough to play a streaming API, slow headers or bodies, resets mid-stream,
// truncated and garbled responses, or a server that never answers.
//
//   troupe::test::HttpTestServer server;
//   server.route("/v1/chat", [](const troupe::test::TestRequest& req) {
//     troupe::test::Script s;
//     s.headers = {{"Content-Type", "text/event-stream"}};
//     s.framing = troupe::test::Framing::chunked;
//     s.chunks = {{"data: a\n\n", 0}, {"data: b\n\n", 50}};
//     return s;
//   });
//
// Threads: one accept thread and one thread per connection; handlers run on connection
// threads, possibly concurrently, so they must be thread-safe. stop() (and the destructor)
// interrupts delays, "never respond" waits and blocked writes, and joins every thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace troupe::test {

using TestHeaders = std::vector<std::pair<std::string, std::string>>;

struct TestRequest {
  std::string method;
  std::string target;   // path and query, as on the request line
  std::string path;     // target without the query
  std::string version;  // "HTTP/1.1"
  TestHeaders headers;
  std::string body;            // Content-Length bodies only
  uint64_t connection_id = 0;  // 1, 2, ... per accepted connection: shows keep-alive reuse

  // Case-insensitive; the first value, or "" when absent.
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

// How the response body is delimited.
enum class Framing {
  content_length,  // Content-Length: sum of the chunks (or Script::content_length)
  chunked,         // Transfer-Encoding: chunked, one HTTP chunk per Script chunk
  until_close,     // no length; the connection closes after the body
};

// How the connection ends after the response.
enum class After {
  keep_alive,  // serve the next request (unless the request said Connection: close)
  close,       // orderly close (FIN) — with a short Content-Length this is a truncated body
  reset,       // abortive close (RST), e.g. to simulate a reset mid-stream
};

struct Chunk {
  std::string data;
  uint32_t delay_ms = 0;  // wait this long before writing data
};

struct Script {
  int status = 200;
  TestHeaders headers;         // framing headers (Content-Length, Transfer-Encoding) are added
  uint32_t head_delay_ms = 0;  // wait this long before writing the status line and headers
  std::vector<Chunk> chunks;   // the body, piece by piece
  Framing framing = Framing::content_length;
  int64_t content_length = -1;     // >= 0 overrides the announced Content-Length
  bool chunked_terminator = true;  // chunked: write the final "0\r\n\r\n"
  After after = After::keep_alive;
  bool never_respond = false;  // write nothing; hold the connection until the client or stop()
  bool raw = false;            // write the chunks verbatim: no status line, headers or framing

  // A complete response with one body piece.
  static Script text(int status, std::string body, std::string content_type = "text/plain");
};

using Handler = std::function<Script(const TestRequest&)>;

class HttpTestServer {
 public:
  // Listens on 127.0.0.1 on an ephemeral port and starts accepting at once.
  HttpTestServer();
  // Listens on 127.0.0.1 at `port` (0: ephemeral). Throws std::runtime_error when taken.
  explicit HttpTestServer(uint16_t port);
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  // Registers (or replaces) the handler for an exact path (query ignored). Unknown paths
  // get 404. Any thread, any time.
  void route(const std::string& path, Handler handler);
  // Registers (or replaces) the handler for every path starting with `prefix` that has no
  // exact route; the longest matching prefix wins.
  void route_prefix(const std::string& prefix, Handler handler);

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port>" + path
  std::string url(std::string_view path = "") const;

  // Every request received so far, in arrival order (recorded before its handler runs).
  std::vector<TestRequest> requests() const;
  size_t request_count() const;
  // Waits until at least n requests arrived; false on timeout.
  bool wait_for_requests(size_t n, uint32_t timeout_ms) const;
  // Connections accepted so far.
  uint64_t connection_count() const;

  // Closes everything and joins the threads. Idempotent; the destructor calls it.
  void stop();

 private:
  struct Connection;
  void accept_loop();
  void serve(const std::shared_ptr<Connection>& connection);
  bool serve_one(Connection& connection, std::string& buffer);
  bool write_script(Connection& connection, const Script& script, bool head_only);
  bool pause_ms(uint32_t ms);  // false when stopping
  bool stopping() const { return stopping_.load(); }

  int listen_fd_ = -1;
  int wake_read_fd_ = -1;  // readable once stop() ran: interrupts every poll()
  int wake_write_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connection_count_{0};
  std::thread accept_thread_;

  mutable std::mutex mutex_;
  mutable std::condition_variable requests_changed_;
  std::map<std::string, Handler> routes_;
  std::map<std::string, Handler> prefix_routes_;
  std::vector<TestRequest> requests_;
  std::vector<std::shared_ptr<Connection>> connections_;
  bool stopped_ = false;
};

}  // namespace troupe::test
