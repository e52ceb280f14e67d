// http_test_server.cpp: the scriptable loopback HTTP/1.1 test server (POSIX sockets, threads).
#include "support/http_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "support/test_text.h"

namespace troupe::test {
namespace {

constexpr size_t kMaxHead = 1 << 20;  // a request head larger than this is refused

const std::string* find(const TestHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers)
    if (iequals(key, name)) return &value;
  return nullptr;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 529:
      return "Overloaded";
    default:
      return "Status";
  }
}

}  // namespace

std::string TestRequest::header(std::string_view name) const {
  const std::string* value = find(headers, name);
  return value != nullptr ? *value : std::string();
}

bool TestRequest::has_header(std::string_view name) const {
  return find(headers, name) != nullptr;
}

Script Script::text(int status, std::string body, std::string content_type) {
  Script s;
  s.status = status;
  s.headers = {{"Content-Type", std::move(content_type)}};
  s.chunks = {Chunk{std::move(body), 0}};
  return s;
}

struct HttpTestServer::Connection {
  int fd = -1;  // guarded by the server mutex once registered; closed by its own thread
  uint64_t id = 0;
  std::thread thread;
  bool done = false;  // guarded by the server mutex
  bool reset_on_close = false;
};

HttpTestServer::HttpTestServer() : HttpTestServer(0) {}

HttpTestServer::HttpTestServer(uint16_t port) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  wake_read_fd_ = pipe_fds[0];
  wake_write_fd_ = pipe_fds[1];

  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);  // 0: ephemeral
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 1024) != 0) {
    std::string error = strerror(errno);
    close(listen_fd_);
    close(wake_read_fd_);
    close(wake_write_fd_);
    throw std::runtime_error("bind/listen on 127.0.0.1:" + std::to_string(port) +
                             " failed: " + error);
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

HttpTestServer::~HttpTestServer() {
  stop();
}

void HttpTestServer::route(const std::string& path, Handler handler) {
  std::lock_guard lock(mutex_);
  routes_[path] = std::move(handler);
}

void HttpTestServer::route_prefix(const std::string& prefix, Handler handler) {
  std::lock_guard lock(mutex_);
  prefix_routes_[prefix] = std::move(handler);
}

std::string HttpTestServer::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

std::vector<TestRequest> HttpTestServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

size_t HttpTestServer::request_count() const {
  std::lock_guard lock(mutex_);
  return requests_.size();
}

bool HttpTestServer::wait_for_requests(size_t n, uint32_t timeout_ms) const {
  std::unique_lock lock(mutex_);
  return requests_changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                    [&] { return requests_.size() >= n; });
}

uint64_t HttpTestServer::connection_count() const {
  return connection_count_.load();
}

void HttpTestServer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
  }
  stopping_ = true;
  // The pipe stays readable from now on, so every poll() in every thread returns.
  ssize_t ignored = write(wake_write_fd_, "x", 1);
  (void)ignored;
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::shared_ptr<Connection>> connections;
  {
    std::lock_guard lock(mutex_);
    // Unblocks a connection thread stuck in send() to a client that stopped reading.
    for (auto& c : connections_)
      if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
    connections.swap(connections_);
  }
  for (auto& c : connections)
    if (c->thread.joinable()) c->thread.join();
  close(listen_fd_);
  close(wake_read_fd_);
  close(wake_write_fd_);
  listen_fd_ = wake_read_fd_ = wake_write_fd_ = -1;
}

void HttpTestServer::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_fd_, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || stopping() || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    // Each scripted piece must leave at once, not wait for Nagle.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto connection = std::make_shared<Connection>();
    connection->fd = fd;
    connection->id = ++connection_count_;
    std::lock_guard lock(mutex_);
    // Reap finished connections so long tests do not pile up threads.
    for (size_t i = 0; i < connections_.size();) {
      if (connections_[i]->done) {
        connections_[i]->thread.join();
        connections_.erase(connections_.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
    connections_.push_back(connection);
    connection->thread = std::thread([this, connection] { serve(connection); });
  }
}

bool HttpTestServer::pause_ms(uint32_t ms) {
  if (ms == 0) return !stopping();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return !stopping();
    pollfd fd = {wake_read_fd_, POLLIN, 0};
    // Rounded up: a 1 ms pause must not shrink to a 0 ms poll.
    int n = poll(&fd, 1, static_cast<int>((left.count() + 999) / 1000));
    if (n > 0 || stopping()) return false;
  }
}

namespace {

// Reads more bytes into buffer; false on EOF, error or stop.
bool fill(int fd, int wake_fd, std::string& buffer) {
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN) != 0) return false;
    char data[65536];
    ssize_t got = recv(fd, data, sizeof data, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    buffer.append(data, static_cast<size_t>(got));
    return true;
  }
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t sent = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

// Reads a CRLF-terminated line starting at *pos; false when more data is needed.
bool take_line(const std::string& buffer, size_t* pos, std::string_view* line) {
  size_t end = buffer.find("\r\n", *pos);
  if (end == std::string::npos) return false;
  *line = std::string_view(buffer).substr(*pos, end - *pos);
  *pos = end + 2;
  return true;
}

}  // namespace

void HttpTestServer::serve(const std::shared_ptr<Connection>& connection) {
  std::string buffer;
  try {
    while (!stopping() && serve_one(*connection, buffer)) {
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_test_server: connection failed: %s\n", e.what());
  }
  std::lock_guard lock(mutex_);
  if (connection->reset_on_close) {
    linger hard = {1, 0};  // close() now sends RST instead of FIN
    setsockopt(connection->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  } else {
    shutdown(connection->fd, SHUT_WR);
  }
  close(connection->fd);
  connection->fd = -1;
  connection->done = true;
}

// Reads one request and writes its scripted response. False when the connection must end.
bool HttpTestServer::serve_one(Connection& connection, std::string& buffer) {
  const int fd = connection.fd;
  size_t head_end;
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > kMaxHead) return false;
    if (!fill(fd, wake_read_fd_, buffer)) return false;
  }

  TestRequest request;
  request.connection_id = connection.id;
  size_t pos = 0;
  std::string_view line;
  take_line(buffer, &pos, &line);
  size_t s1 = line.find(' ');
  size_t s2 = line.rfind(' ');
  if (s1 == std::string_view::npos || s2 == s1) {
    write_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return false;
  }
  request.method = std::string(line.substr(0, s1));
  request.target = std::string(line.substr(s1 + 1, s2 - s1 - 1));
  request.version = std::string(line.substr(s2 + 1));
  request.path = request.target.substr(0, request.target.find('?'));
  while (take_line(buffer, &pos, &line) && !line.empty()) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    request.headers.emplace_back(std::string(trim(line.substr(0, colon))),
                                 std::string(trim(line.substr(colon + 1))));
  }
  buffer.erase(0, head_end + 4);

  const std::string* expect = find(request.headers, "Expect");
  if (expect != nullptr && iequals(*expect, "100-continue")) {
    if (!write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return false;
  }

  const std::string* te = find(request.headers, "Transfer-Encoding");
  if (te != nullptr && iequals(*te, "chunked")) {
    // Decode a chunked request body (trailers are read and dropped).
    for (;;) {
      size_t p = 0;
      std::string_view size_line;
      while (!take_line(buffer, &p, &size_line)) {
        if (!fill(fd, wake_read_fd_, buffer)) return false;
      }
      size_t size = std::strtoul(std::string(size_line).c_str(), nullptr, 16);
      if (size == 0) {
        std::string_view trailer;
        for (;;) {
          while (!take_line(buffer, &p, &trailer)) {
            if (!fill(fd, wake_read_fd_, buffer)) return false;
          }
          if (trailer.empty()) break;
        }
        buffer.erase(0, p);
        break;
      }
      while (buffer.size() < p + size + 2) {
        if (!fill(fd, wake_read_fd_, buffer)) return false;
      }
      request.body.append(buffer, p, size);
      buffer.erase(0, p + size + 2);
    }
  } else if (const std::string* cl = find(request.headers, "Content-Length")) {
    size_t length = std::strtoull(cl->c_str(), nullptr, 10);
    while (buffer.size() < length) {
      if (!fill(fd, wake_read_fd_, buffer)) return false;
    }
    request.body = buffer.substr(0, length);
    buffer.erase(0, length);
  }

  Handler handler;
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    auto it = routes_.find(request.path);
    if (it != routes_.end()) {
      handler = it->second;
    } else {
      size_t best = 0;
      for (const auto& [prefix, prefix_handler] : prefix_routes_) {
        if (request.path.compare(0, prefix.size(), prefix) == 0 && prefix.size() >= best) {
          best = prefix.size();
          handler = prefix_handler;
        }
      }
    }
  }
  requests_changed_.notify_all();

  Script script;
  if (!handler) {
    script = Script::text(404, "no route for " + request.path + "\n");
  } else {
    try {
      script = handler(request);
    } catch (const std::exception& e) {
      script = Script::text(500, std::string("handler threw: ") + e.what() + "\n");
    }
  }

  if (script.never_respond) {
    // Hold the connection: swallow whatever arrives until the client goes away or stop().
    std::string ignored;
    while (fill(fd, wake_read_fd_, ignored))
      ignored.clear();
    return false;
  }

  const std::string* conn_header = find(request.headers, "Connection");
  bool client_wants_close = (conn_header != nullptr && iequals(*conn_header, "close")) ||
                            (request.version == "HTTP/1.0" &&
                             !(conn_header != nullptr && iequals(*conn_header, "keep-alive")));
  bool keep_alive = script.after == After::keep_alive && !client_wants_close &&
                    (script.raw || script.framing != Framing::until_close);
  if (script.after == After::reset) connection.reset_on_close = true;
  if (!write_script(connection, script, request.method == "HEAD" && !script.raw)) return false;
  return keep_alive;
}

bool HttpTestServer::write_script(Connection& connection, const Script& script, bool head_only) {
  const int fd = connection.fd;
  if (!pause_ms(script.head_delay_ms)) return false;
  if (!script.raw) {
    std::string head =
        "HTTP/1.1 " + std::to_string(script.status) + " " + reason_phrase(script.status) + "\r\n";
    for (const auto& [name, value] : script.headers)
      head += name + ": " + value + "\r\n";
    if (script.framing == Framing::content_length) {
      int64_t length = script.content_length;
      if (length < 0) {
        length = 0;
        for (const auto& chunk : script.chunks)
          length += static_cast<int64_t>(chunk.data.size());
      }
      head += "Content-Length: " + std::to_string(length) + "\r\n";
    } else if (script.framing == Framing::chunked) {
      head += "Transfer-Encoding: chunked\r\n";
    }
    bool closing = script.after != After::keep_alive || script.framing == Framing::until_close;
    if (closing && find(script.headers, "Connection") == nullptr) head += "Connection: close\r\n";
    head += "\r\n";
    if (!write_all(fd, head)) return false;
    if (head_only) return true;
  }
  for (const auto& chunk : script.chunks) {
    if (!pause_ms(chunk.delay_ms)) return false;
    if (chunk.data.empty()) continue;  // an empty HTTP chunk would end a chunked body
    if (!script.raw && script.framing == Framing::chunked) {
      char size_line[32];
      std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.data.size());
      if (!write_all(fd, size_line) || !write_all(fd, chunk.data) || !write_all(fd, "\r\n"))
        return false;
    } else if (!write_all(fd, chunk.data)) {
      return false;
    }
  }
  if (!script.raw && script.framing == Framing::chunked && script.chunked_terminator)
    return write_all(fd, "0\r\n\r\n");
  return true;
}

}  // namespace troupe::test
