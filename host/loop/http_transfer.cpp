// http_transfer.cpp: curl easy-handle setup, response header parsing and curl error mapping.
#include "loop/http_transfer.h"

#include <sys/socket.h>

#include <memory>
#include <string>

#include "core/log.h"
#include "core/text.h"
#include "loop/http_redirect.h"

namespace troupe::loop_detail {
namespace {

constexpr long kDefaultConnectTimeoutMs = 10'000;

// RFC 9110 token characters: what a method or a header name may consist of.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) {
      switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
          ok = true;
          break;
        default:
          break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

// A value with CR, LF or NUL could smuggle extra headers into the request.
bool is_safe_value(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool fail(troupe_status_t code, std::string text, troupe_status_t* status, std::string* message) {
  *status = code;
  *message = std::move(text);
  return false;
}

// CURLOPT_OPENSOCKETFUNCTION: curl has resolved the host and is about to open a socket to one
// of its addresses. A denied address gets no socket, so no packet ever leaves for it.
curl_socket_t open_checked_socket(void* user, curlsocktype, curl_sockaddr* address) {
  auto* t = static_cast<HttpTransfer*>(user);
  if (t->terminal || !t->refusal.empty()) return CURL_SOCKET_BAD;
  std::string refusal = t->policy->check_address(&address->addr, t->host_allowed);
  if (!refusal.empty()) {
    t->refusal = std::move(refusal);
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// CURLOPT_PREREQFUNCTION: a connection is ready (new or reused from the pool, which the
// function above never saw) and the request is about to be sent on it.
int check_connection(void* user, char* primary_ip, char*, int primary_port, int) {
  auto* t = static_cast<HttpTransfer*>(user);
  if (!t->refusal.empty()) return CURL_PREREQFUNC_ABORT;
  std::string refusal = t->policy->check_address_text(primary_ip, primary_port, t->host_allowed);
  if (refusal.empty()) return CURL_PREREQFUNC_OK;
  t->refusal = std::move(refusal);
  return CURL_PREREQFUNC_ABORT;
}

}  // namespace

bool HeaderParser::feed(std::string_view line) {
  if (line.size() >= 5 && line.substr(0, 5) == "HTTP/") {
    // A new response head: an interim 1xx (or an earlier block) is superseded.
    headers_.clear();
    complete_ = false;
    status_ = 0;
    size_t space = line.find(' ');
    if (space != std::string_view::npos) {
      int code = 0;
      size_t i = space + 1;
      for (; i < line.size() && line[i] >= '0' && line[i] <= '9' && code < 1000; ++i)
        code = code * 10 + (line[i] - '0');
      status_ = code;
    }
    return false;
  }
  std::string_view content = line;
  while (!content.empty() && (content.back() == '\r' || content.back() == '\n'))
    content.remove_suffix(1);
  if (content.empty()) {
    if (status_ >= 200 && !complete_) {
      complete_ = true;
      return true;
    }
    return false;
  }
  if (complete_) return false;  // trailers after a chunked body: not part of the head
  if ((content.front() == ' ' || content.front() == '\t') && !headers_.empty()) {
    // Obsolete line folding: the line continues the previous header's value.
    std::string& value = headers_.back().second;
    value += ' ';
    value += text::trim(content);
    return false;
  }
  size_t colon = content.find(':');
  if (colon == std::string_view::npos) return false;
  headers_.emplace_back(std::string(text::trim(content.substr(0, colon))),
                        std::string(text::trim(content.substr(colon + 1))));
  return false;
}

HttpTransfer::~HttpTransfer() {
  if (easy != nullptr) curl_easy_cleanup(easy);
  if (header_list != nullptr) curl_slist_free_all(header_list);
}

bool configure_transfer(HttpTransfer& t, HttpRequest& request, troupe_status_t* status,
                        std::string* message) {
  std::string method = request.method.empty() ? std::string("GET") : request.method;
  if (!is_token(method))
    return fail(TROUPE_INVALID_ARGUMENT, "invalid HTTP method", status, message);
  if (request.url.empty()) return fail(TROUPE_INVALID_ARGUMENT, "empty URL", status, message);
  if (!is_safe_value(request.url))
    return fail(TROUPE_INVALID_ARGUMENT, "URL contains a line break or NUL", status, message);
  if (request.policy) {
    auto origin = url_origin(request.url);
    if (!origin) return fail(TROUPE_INVALID_ARGUMENT, "the URL cannot be parsed", status, message);
    NameVerdict verdict = request.policy->check_name(origin->host, origin->port);
    if (!verdict.refusal.empty())
      return fail(TROUPE_INVALID_ARGUMENT, verdict.refusal, status, message);
    t.policy = request.policy;
    t.host_allowed = verdict.host_allowed;
  }

  bool has_expect = false;
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name))
      return fail(TROUPE_INVALID_ARGUMENT, "invalid HTTP header name '" + log::redact(name) + "'",
                  status, message);
    // Never echo the value: it may be an API key.
    if (!is_safe_value(value))
      return fail(TROUPE_INVALID_ARGUMENT,
                  "value of HTTP header '" + name + "' contains a line break or NUL", status,
                  message);
    if (text::iequals(name, "Expect")) has_expect = true;
    // "Name:" would make curl drop the header; "Name;" sends it with an empty value.
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    curl_slist* grown = curl_slist_append(t.header_list, line.c_str());
    if (grown == nullptr) return fail(TROUPE_INTERNAL, "out of memory", status, message);
    t.header_list = grown;
  }
  if (!has_expect) {
    // curl would otherwise send "Expect: 100-continue" for large bodies and stall up to 1 s
    // on servers that ignore it.
    curl_slist* grown = curl_slist_append(t.header_list, "Expect:");
    if (grown == nullptr) return fail(TROUPE_INTERNAL, "out of memory", status, message);
    t.header_list = grown;
  }

  t.easy = curl_easy_init();
  if (t.easy == nullptr) return fail(TROUPE_INTERNAL, "curl_easy_init failed", status, message);
  CURL* e = t.easy;
  t.body = std::move(request.body);
  long connect_ms = request.connect_timeout_ms != 0 ? static_cast<long>(request.connect_timeout_ms)
                                                    : kDefaultConnectTimeoutMs;

  CURLcode rc = CURLE_OK;
  auto set = [&rc](CURLcode r) {
    if (rc == CURLE_OK) rc = r;
  };
  set(curl_easy_setopt(e, CURLOPT_URL, request.url.c_str()));
  set(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));  // the loop may run in any thread
  set(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""));  // every encoding curl can decode
  set(curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list));
  set(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error_buffer));
  set(curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms));
  if (request.timeout_ms != 0)
    set(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms)));
  // A proxy's "200 Connection established" must not look like the response head.
  set(curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L));
  set(curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L));
  // Redirects are not followed: custom headers such as x-api-key would go along to the new
  // host. A 3xx is delivered like any other complete response.
  set(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L));
  if (t.policy) {
    set(curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &open_checked_socket));
    set(curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t));
    set(curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &check_connection));
    set(curl_easy_setopt(e, CURLOPT_PREREQDATA, &t));
  }

  if (method == "GET" && t.body.empty()) {
    set(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L));
  } else if (method == "HEAD") {
    set(curl_easy_setopt(e, CURLOPT_NOBODY, 1L));
  } else {
    if (!t.body.empty() || method == "POST") {
      // POSTFIELDS (not COPYPOSTFIELDS): t.body lives as long as the easy handle.
      set(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body.size())));
      set(curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.body.data()));
    }
    if (method != "POST") set(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str()));
  }
  if (rc != CURLE_OK)
    return fail(TROUPE_INTERNAL, std::string("curl setup failed: ") + curl_easy_strerror(rc),
                status, message);
  return true;
}

troupe_status_t map_curl_result(const HttpTransfer& t, CURLcode code, std::string* message) {
  if (!t.refusal.empty()) {
    *message = t.refusal;
    return TROUPE_INVALID_ARGUMENT;
  }
  const char* error_buffer = t.error_buffer;
  if (code == CURLE_OK) {
    message->clear();
    return TROUPE_OK;
  }
  std::string text = "HTTP transfer failed: ";
  text += curl_easy_strerror(code);
  if (error_buffer != nullptr && error_buffer[0] != '\0') {
    text += ": ";
    text += error_buffer;
  }
  *message = log::redact(text);
  return code == CURLE_OPERATION_TIMEDOUT ? TROUPE_TIMEOUT : TROUPE_TRANSPORT;
}

}  // namespace troupe::loop_detail
