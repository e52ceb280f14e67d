// plugin.hpp: the header-only C++17 SDK for troupe plugins, built on the C ABI in plugin.h.
//
// plugin.h is the contract; this header only makes it pleasant to honour from C++. A whole
// provider plugin looks like this:
//
//   #include <troupe/plugin.hpp>
//
//   class Hello : public troupe::sdk::Plugin {
//    public:
//     Hello(troupe::sdk::Host host, std::string_view config) : Plugin(host, config) {}
//
//     void invoke(std::shared_ptr<troupe::sdk::Call> call) override {
//       if (call->operation() != "chat") {
//         call->fail(TROUPE_UNSUPPORTED, "hello: only \"chat\" is supported");
//         return;
//       }
//       if (call->stream()) call->text_delta("Hello!");
//       call->finish(R"({"text":"Hello!","tool_calls":[],"finish_reason":"stop",)"
//                    R"("usage":{"input_tokens":0,"output_tokens":2,"total_tokens":2},)"
//                    R"("model":"hello"})");
//     }
//   };
//
//   TROUPE_PLUGIN(Hello, TROUPE_PLUGIN_PROVIDER, "hello", "1.0.0", "Says hello",
//                 R"({"operations":["chat"],"streaming":true})")
//
// What the SDK takes care of:
//   - The entry point troupe_plugin_describe() and the four hooks (TROUPE_PLUGIN).
//   - Exception barriers: nothing ever unwinds into the host. A constructor that throws
//     becomes a create() error carrying the exception's message; an invoke() that throws
//     completes the call with TROUPE_INTERNAL; a throwing callback (timer, post, HTTP) is
//     logged as an error.
//   - Exactly one completion per call: Call completes at most once, and a Call destroyed
//     without completing completes with TROUPE_INTERNAL, so a forgotten path cannot hang
//     the caller.
//   - Closures: timer(), post() and http() take std::function; the SDK owns the heap state
//     behind the C callback's user_data and frees it when the callback has run (or the timer
//     was cancelled). When the instance is destroyed, pending timers are cancelled and the
//     closures of callbacks that will never run (the host drops them) are freed.
//
// Threading follows plugin.h, which states it per function: hooks (constructor, invoke,
// cancel, destructor) and every timer/post/HTTP callback run on the host's loop thread. Call's
// methods and Host::post, log, config, secret and now_ns may be used from any thread; timer,
// cancel_timer, http and http_cancel only on the loop thread (post() back to it from a worker
// thread). Once the instance is being destroyed no callback runs any more; the SDK frees the
// closures of those that never will.
#pragma once

#include <troupe/plugin.h>
#include <troupe/status_names.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace troupe::sdk {

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

// std::string_view <-> troupe_str_t. Both directions borrow; nothing is copied.
inline troupe_str_t to_str(std::string_view s) {
  return troupe_str_t{s.data(), s.size()};
}
inline std::string_view to_view(troupe_str_t s) {
  return s.ptr != nullptr ? std::string_view(s.ptr, s.len) : std::string_view();
}

// The lowercase name of a status code, as used in JSON (sdk/schemas/error.schema.json):
// TROUPE_RATE_LIMITED -> "rate_limited". Unknown codes give "unknown".
inline const char* status_name(troupe_status_t status) {
  return troupe_status_name(status);
}

// The reverse of status_name(); std::nullopt for a name that is not a status.
inline std::optional<troupe_status_t> status_from_name(std::string_view name) {
  for (troupe_status_t s = TROUPE_OK; s <= TROUPE_INTERNAL; ++s) {
    if (name == status_name(s)) return s;
  }
  return std::nullopt;
}

namespace detail {

// Copies a message into a fixed buffer (no allocation, so it is safe inside a catch block
// that may be handling std::bad_alloc) and returns it as a troupe_str_t.
inline troupe_str_t format_message(char* buffer, size_t size, const char* prefix,
                                   const char* what) {
  int n = std::snprintf(buffer, size, "%s%s", prefix, what != nullptr ? what : "");
  if (n < 0) n = 0;
  size_t len = static_cast<size_t>(n) < size ? static_cast<size_t>(n) : size - 1;
  return troupe_str_t{buffer, len};
}

// Logs an exception that escaped a plugin callback, without allocating.
inline void log_exception(const troupe_host_api_t* api, troupe_host_t* host, const char* where,
                          const char* what) noexcept {
  if (api == nullptr || api->log == nullptr) return;
  char buffer[512];
  char prefix[96];
  std::snprintf(prefix, sizeof prefix, "exception escaped %s: ", where);
  api->log(host, TROUPE_LOG_ERROR, format_message(buffer, sizeof buffer, prefix, what));
}

// Runs fn() and turns any exception into an error log line. Used by every C callback the
// SDK hands to the host.
template <class Fn>
void guarded(const troupe_host_api_t* api, troupe_host_t* host, const char* where,
             Fn&& fn) noexcept {
  try {
    fn();
  } catch (const std::exception& e) {
    log_exception(api, host, where, e.what());
  } catch (...) {
    log_exception(api, host, where, "unknown exception");
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// HTTP through the host
// ---------------------------------------------------------------------------------------

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// An HTTP request. A header value may contain "${secret:NAME}"; the host substitutes the
// instance's secret, so the plugin never needs to hold the key.
struct HttpRequest {
  std::string method = "GET";
  std::string url;
  HttpHeaders headers;
  std::string body;
  uint32_t timeout_ms = 0;          // whole transfer; 0 = none
  uint32_t connect_timeout_ms = 0;  // 0 = host default
  uint32_t idle_timeout_ms = 0;     // no byte for this long fails the transfer; 0 = none
  troupe_call_id_t call = 0;        // cancelling this call cancels the transfer; 0 = none
};

// Callbacks of one transfer, on the loop thread: on_headers at most once (always before an
// OK on_complete), on_chunk any number of times, on_complete exactly once (TROUPE_OK when a
// full response arrived, whatever its HTTP status; the other statuses are listed at
// troupe_http_callbacks_t in plugin.h). Any of them may be empty.
struct HttpHandlers {
  std::function<void(int status_code, const HttpHeaders& headers)> on_headers;
  std::function<void(std::string_view chunk)> on_chunk;
  std::function<void(troupe_status_t status, std::string_view error)> on_complete;
};

// What Host::http() returns: status OK and a handle, or the reason the host refused.
struct HttpTransfer {
  troupe_status_t status = TROUPE_INTERNAL;
  troupe_handle_t handle = 0;
  explicit operator bool() const { return status == TROUPE_OK; }
};

namespace detail {

// ---------------------------------------------------------------------------------------
// What the SDK keeps behind the C callbacks' user_data
// ---------------------------------------------------------------------------------------

struct HostState;

// The heap state behind one timer, posted function or HTTP transfer. Each knows its
// instance's HostState (weakly), so it can unregister itself when its callback has run.
struct TimerClosure {
  std::function<void()> fn;
  const troupe_host_api_t* api = nullptr;
  troupe_host_t* host = nullptr;
  std::weak_ptr<HostState> state;
  troupe_handle_t handle = 0;
};

struct PostClosure {
  std::function<void()> fn;
  const troupe_host_api_t* api = nullptr;
  troupe_host_t* host = nullptr;
  std::weak_ptr<HostState> state;
};

struct HttpClosure {
  HttpHandlers handlers;
  const troupe_host_api_t* api = nullptr;
  troupe_host_t* host = nullptr;
  std::weak_ptr<HostState> state;
};

// Per-instance state shared by every copy of a Host: the closures whose callbacks have not
// run yet. When the instance is destroyed the host drops whatever is still pending (no
// callback runs after destroy()), so the SDK frees those closures itself then.
struct HostState {
  std::mutex mu;  // post() may be called from any thread; the rest is loop-thread only
  std::unordered_map<troupe_handle_t, TimerClosure*> timers;
  std::unordered_set<PostClosure*> posts;
  std::unordered_set<HttpClosure*> transfers;

  // Cancels what can be cancelled and frees every pending closure. Called by destroy(),
  // after the plugin object is gone and while the host api is still valid.
  void release_all(const troupe_host_api_t* api, troupe_host_t* host) noexcept {
    std::unordered_map<troupe_handle_t, TimerClosure*> pending_timers;
    std::unordered_set<PostClosure*> pending_posts;
    std::unordered_set<HttpClosure*> pending_transfers;
    {
      std::lock_guard<std::mutex> lock(mu);
      pending_timers.swap(timers);
      pending_posts.swap(posts);
      pending_transfers.swap(transfers);
    }
    for (auto& [handle, closure] : pending_timers) {
      api->timer_cancel(host, handle);
      delete closure;
    }
    for (PostClosure* closure : pending_posts)
      delete closure;
    for (HttpClosure* closure : pending_transfers)
      delete closure;
  }
};

inline void run_timer(void* user_data) noexcept {
  auto* closure = static_cast<TimerClosure*>(user_data);
  if (auto state = closure->state.lock()) {
    std::lock_guard<std::mutex> lock(state->mu);
    state->timers.erase(closure->handle);
  }
  guarded(closure->api, closure->host, "a timer callback", [&] { closure->fn(); });
  delete closure;
}

inline void run_posted(void* user_data) noexcept {
  auto* closure = static_cast<PostClosure*>(user_data);
  if (auto state = closure->state.lock()) {
    std::lock_guard<std::mutex> lock(state->mu);
    state->posts.erase(closure);
  }
  guarded(closure->api, closure->host, "a posted function", [&] { closure->fn(); });
  delete closure;
}

inline void http_on_headers(void* user_data, int32_t status_code,
                            const troupe_http_header_t* headers, size_t count) noexcept {
  auto* closure = static_cast<HttpClosure*>(user_data);
  guarded(closure->api, closure->host, "an HTTP on_headers handler", [&] {
    if (!closure->handlers.on_headers) return;
    HttpHeaders copy;
    copy.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      copy.emplace_back(std::string(to_view(headers[i].name)),
                        std::string(to_view(headers[i].value)));
    }
    closure->handlers.on_headers(status_code, copy);
  });
}

inline void http_on_chunk(void* user_data, troupe_str_t data) noexcept {
  auto* closure = static_cast<HttpClosure*>(user_data);
  guarded(closure->api, closure->host, "an HTTP on_chunk handler", [&] {
    if (closure->handlers.on_chunk) closure->handlers.on_chunk(to_view(data));
  });
}

inline void http_on_complete(void* user_data, troupe_status_t status, troupe_str_t error) noexcept {
  auto* closure = static_cast<HttpClosure*>(user_data);
  if (auto state = closure->state.lock()) {
    std::lock_guard<std::mutex> lock(state->mu);
    state->transfers.erase(closure);
  }
  guarded(closure->api, closure->host, "an HTTP on_complete handler", [&] {
    if (closure->handlers.on_complete) closure->handlers.on_complete(status, to_view(error));
  });
  delete closure;  // on_complete is the last callback of a transfer
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Host: the host services of one plugin instance
// ---------------------------------------------------------------------------------------

// A cheap, copyable handle on the host services (troupe_host_api_t) of one instance. Valid
// until the instance is destroyed; copies may be captured in callbacks freely.
class Host {
 public:
  Host(const troupe_host_api_t* api, troupe_host_t* host)
      : api_(api), host_(host), state_(std::make_shared<detail::HostState>()) {}

  const troupe_host_api_t* api() const { return api_; }
  troupe_host_t* handle() const { return host_; }

  // Logs under the plugin's name; the host redacts known secrets. Any thread.
  void log(troupe_log_level_t level, std::string_view message) const {
    api_->log(host_, level, to_str(message));
  }
  void debug(std::string_view message) const { log(TROUPE_LOG_DEBUG, message); }
  void info(std::string_view message) const { log(TROUPE_LOG_INFO, message); }
  void warn(std::string_view message) const { log(TROUPE_LOG_WARN, message); }
  void error(std::string_view message) const { log(TROUPE_LOG_ERROR, message); }

  // A setting of this instance: a string as its text, any other value as compact JSON;
  // nullopt when absent or null. key may be a JSON pointer ("/limits/rpm"). Any thread.
  // (The constructor also receives all settings as one JSON object.)
  std::optional<std::string> config(std::string_view key) const {
    troupe_str_t out{nullptr, 0};
    if (api_->config_get(host_, to_str(key), &out) != TROUPE_OK) return std::nullopt;
    return std::string(to_view(out));
  }

  // A secret of this instance, e.g. "api_key"; nullopt when it has none. Any thread. Never
  // log it; prefer "${secret:NAME}" in HTTP header values, which keeps the key in the host.
  std::optional<std::string> secret(std::string_view name) const {
    troupe_str_t out{nullptr, 0};
    if (api_->secret_get(host_, to_str(name), &out) != TROUPE_OK) return std::nullopt;
    return std::string(to_view(out));
  }

  // Runs fn once on the loop thread after delay_ms. Returns the timer's handle, or 0 when
  // the host refused (off the loop thread, or while the instance is being destroyed). Loop
  // thread.
  troupe_handle_t timer(uint64_t delay_ms, std::function<void()> fn) const {
    auto* closure = new detail::TimerClosure{std::move(fn), api_, host_, state_, 0};
    troupe_handle_t handle = api_->timer_start(host_, delay_ms, &detail::run_timer, closure);
    if (handle == 0) {
      delete closure;
      return 0;
    }
    closure->handle = handle;  // timers never fire inside timer_start, so this is in time
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->timers[handle] = closure;
    return handle;
  }

  // Cancels a pending timer and frees its closure; false when it already ran or is
  // unknown. Loop thread.
  bool cancel_timer(troupe_handle_t handle) const {
    detail::TimerClosure* closure = nullptr;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      auto it = state_->timers.find(handle);
      if (it == state_->timers.end()) return false;
      closure = it->second;
      state_->timers.erase(it);
    }
    bool cancelled = api_->timer_cancel(host_, handle);
    delete closure;  // not in the table means it already ran (and freed itself) or is gone
    return cancelled;
  }

  // Runs fn on the loop thread soon. Any thread. False when the host is shutting down (fn
  // is then dropped). A function still pending when the instance is destroyed never runs.
  bool post(std::function<void()> fn) const {
    auto* closure = new detail::PostClosure{std::move(fn), api_, host_, state_};
    {
      // Registered first: from a worker thread, the loop may run it before post() returns.
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->posts.insert(closure);
    }
    if (api_->post(host_, &detail::run_posted, closure) != TROUPE_OK) {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->posts.erase(closure);
      delete closure;
      return false;
    }
    return true;
  }

  // Monotonic clock in nanoseconds. Any thread.
  uint64_t now_ns() const { return api_->now_ns(host_); }

  // Starts an HTTP transfer on the host's loop. On success the handlers run later (never
  // inside http()), and on_complete exactly once. On failure no handler runs and status says
  // why (plugin.h lists http_start's refusals). Loop thread.
  HttpTransfer http(const HttpRequest& request, HttpHandlers handlers) const {
    std::vector<troupe_http_header_t> headers;
    headers.reserve(request.headers.size());
    for (const auto& [name, value] : request.headers) {
      headers.push_back(troupe_http_header_t{to_str(name), to_str(value)});
    }
    troupe_http_request_t req{};
    req.struct_size = sizeof req;
    req.method = to_str(request.method);
    req.url = to_str(request.url);
    req.headers = headers.data();
    req.header_count = headers.size();
    req.body = to_str(request.body);
    req.timeout_ms = request.timeout_ms;
    req.connect_timeout_ms = request.connect_timeout_ms;
    req.idle_timeout_ms = request.idle_timeout_ms;

    auto* closure = new detail::HttpClosure{std::move(handlers), api_, host_, state_};
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->transfers.insert(closure);
    }
    troupe_http_callbacks_t callbacks{};
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = closure;
    callbacks.on_headers = &detail::http_on_headers;
    callbacks.on_chunk = &detail::http_on_chunk;
    callbacks.on_complete = &detail::http_on_complete;

    HttpTransfer transfer;
    transfer.status = api_->http_start(host_, request.call, &req, &callbacks, &transfer.handle);
    if (transfer.status != TROUPE_OK) {  // no callback will run
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->transfers.erase(closure);
      delete closure;
    }
    return transfer;
  }

  // Cancels a transfer; its on_complete follows with TROUPE_CANCELLED (unless the transfer
  // had ended: then with how it ended). Loop thread.
  void http_cancel(troupe_handle_t transfer) const { api_->http_cancel(host_, transfer); }

  // Cancels the timers and frees the closures of every callback that has not run yet. The
  // TROUPE_PLUGIN destroy hook calls it after the plugin object is gone (the host runs no
  // callback of a destroyed instance); plugin code has no reason to.
  void release_callbacks() const { state_->release_all(api_, host_); }

 private:
  const troupe_host_api_t* api_;
  troupe_host_t* host_;
  std::shared_ptr<detail::HostState> state_;
};

// ---------------------------------------------------------------------------------------
// Call: the completion sink of one invoke
// ---------------------------------------------------------------------------------------

// One call the host asked for. It owns copies of the call's data (operation, request) and
// completes the call exactly once: the first finish()/fail() wins, later ones return false
// and do nothing. Destroying a Call that has not completed completes it with
// TROUPE_INTERNAL, so a code path that forgets the call cannot hang the caller.
//
// invoke() receives a std::shared_ptr<Call>: keep a copy in whatever finishes the work
// (a timer, an HTTP handler, a worker thread) and let the others go.
//
// Any thread, but events of one call must not be emitted from two threads at once.
class Call {
 public:
  Call(const troupe_host_api_t* api, troupe_host_t* host, const troupe_call_t& call)
      : api_(api),
        host_(host),
        id_(call.id),
        operation_(to_view(call.operation)),
        request_(to_view(call.request)),
        stream_(call.stream),
        timeout_ms_(call.timeout_ms) {}

  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  Call(Call&& other) noexcept
      : api_(other.api_),
        host_(other.host_),
        id_(other.id_),
        operation_(std::move(other.operation_)),
        request_(std::move(other.request_)),
        stream_(other.stream_),
        timeout_ms_(other.timeout_ms_),
        completed_(other.completed_.exchange(true)) {}

  Call& operator=(Call&& other) noexcept {
    if (this != &other) {
      drop();
      api_ = other.api_;
      host_ = other.host_;
      id_ = other.id_;
      operation_ = std::move(other.operation_);
      request_ = std::move(other.request_);
      stream_ = other.stream_;
      timeout_ms_ = other.timeout_ms_;
      completed_.store(other.completed_.exchange(true));
    }
    return *this;
  }

  ~Call() { drop(); }

  troupe_call_id_t id() const { return id_; }
  const std::string& operation() const { return operation_; }  // "chat", "tool.<name>"
  const std::string& request() const { return request_; }      // JSON
  bool stream() const { return stream_; }                      // the caller wants stream events
  uint32_t timeout_ms() const { return timeout_ms_; }          // the host's deadline; 0 = none
  bool completed() const { return completed_.load(); }

  // Stream events. Ignored once the call has completed. Send them only when stream() is
  // true (they are harmless otherwise, but cost a round trip through the host).
  void text_delta(std::string_view text) {
    troupe_event_t e = event(TROUPE_EVENT_TEXT_DELTA);
    e.text = to_str(text);
    emit(e);
  }
  void reasoning_delta(std::string_view text) {
    troupe_event_t e = event(TROUPE_EVENT_REASONING_DELTA);
    e.text = to_str(text);
    emit(e);
  }
  // A piece of tool call number `index` of this turn: id and name on its first delta,
  // then pieces of the arguments JSON.
  void tool_call_delta(int32_t index, std::string_view id, std::string_view name,
                       std::string_view args_piece) {
    troupe_event_t e = event(TROUPE_EVENT_TOOL_CALL_DELTA);
    e.index = index;
    e.tool_id = to_str(id);
    e.tool_name = to_str(name);
    e.text = to_str(args_piece);
    emit(e);
  }
  // Token usage so far, a JSON object: {"input_tokens":..,"output_tokens":..,...}.
  void usage(std::string_view json) {
    troupe_event_t e = event(TROUPE_EVENT_USAGE);
    e.json = to_str(json);
    emit(e);
  }

  // Completes with TROUPE_OK and a result (chat_response.schema.json for "chat"). Returns
  // false when the call had already completed.
  bool finish(std::string_view result_json) {
    troupe_completion_t c{};
    c.struct_size = sizeof c;
    c.status = TROUPE_OK;
    c.result = to_str(result_json);
    return complete(c);
  }

  // Completes with an error. message is for humans and must not contain secrets.
  // retryable/retry_after_ms tell the host whether and when trying again may succeed.
  bool fail(troupe_status_t status, std::string_view message, bool retryable = false,
            uint32_t retry_after_ms = 0) {
    troupe_completion_t c{};
    c.struct_size = sizeof c;
    c.status = status;
    c.error_message = to_str(message);
    c.retryable = retryable;
    c.retry_after_ms = retry_after_ms;
    return complete(c);
  }

 private:
  static troupe_event_t event(troupe_event_type_t type) {
    troupe_event_t e{};
    e.struct_size = sizeof e;
    e.type = type;
    return e;
  }

  void emit(const troupe_event_t& e) {
    if (!completed_.load()) api_->emit(host_, id_, &e);
  }

  bool complete(const troupe_completion_t& c) noexcept {
    if (completed_.exchange(true)) return false;
    api_->complete(host_, id_, &c);
    return true;
  }

  void drop() noexcept { fail(TROUPE_INTERNAL, "plugin dropped the call without completing it"); }

  const troupe_host_api_t* api_;
  troupe_host_t* host_;
  troupe_call_id_t id_;
  std::string operation_;
  std::string request_;
  bool stream_;
  uint32_t timeout_ms_;
  std::atomic<bool> completed_{false};
};

// ---------------------------------------------------------------------------------------
// Plugin: the base class of a plugin instance
// ---------------------------------------------------------------------------------------

// Derive from Plugin, give the class a constructor taking (Host, std::string_view config),
// override invoke() (and cancel() if calls can take a while), then name the class in
// TROUPE_PLUGIN. One object is created per configured instance.
//
// The constructor receives the instance's settings as a JSON object; throw (any
// std::exception) to refuse them: the message becomes the host's error. All hooks run on
// the loop thread.
class Plugin {
 public:
  Plugin(Host host, std::string_view config_json) : host_(host), config_json_(config_json) {}
  virtual ~Plugin() = default;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // Starts a call. Return at once; complete the call (now or later, from any thread)
  // through the Call. An exception completes the call with TROUPE_INTERNAL.
  virtual void invoke(std::shared_ptr<Call> call) = 0;

  // The caller gave up on a call (cancelled it, or its timeout passed). Advisory: stop the
  // work and complete the call (usually with TROUPE_CANCELLED). HTTP transfers started with
  // the call's id are cancelled by the host already. At most once per call, but it may come
  // after the call finished (its completion still on the way to the loop), so ignore ids
  // you no longer know.
  virtual void cancel(troupe_call_id_t call_id) { (void)call_id; }

  const Host& host() const { return host_; }
  const std::string& config_json() const { return config_json_; }

 private:
  Host host_;
  std::string config_json_;
};

// ---------------------------------------------------------------------------------------
// The C hooks behind TROUPE_PLUGIN (exception barriers live here)
// ---------------------------------------------------------------------------------------

namespace detail {

// One instance as the host sees it: the plugin object plus the host handle.
struct Instance {
  Host host;
  std::unique_ptr<Plugin> plugin;
};

// create()'s error message must outlive the hook; create runs on the loop thread only, so
// one static buffer per plugin library is enough (and needs no allocation).
inline char* create_error_buffer() {
  static char buffer[1024];
  return buffer;
}

template <class P>
troupe_status_t create(const troupe_host_api_t* api, troupe_host_t* host, troupe_str_t config_json,
                       void** out_instance, troupe_str_t* out_error) noexcept {
  static_assert(std::is_base_of_v<Plugin, P>, "TROUPE_PLUGIN: the class must derive from Plugin");
  char* buffer = create_error_buffer();
  try {
    Host h(api, host);
    auto instance = std::make_unique<Instance>(Instance{h, nullptr});
    instance->plugin = std::make_unique<P>(h, to_view(config_json));
    *out_instance = instance.release();
    return TROUPE_OK;
  } catch (const std::exception& e) {
    *out_error = format_message(buffer, 1024, "", e.what());
  } catch (...) {
    *out_error = format_message(buffer, 1024, "", "plugin constructor threw an unknown exception");
  }
  return TROUPE_INVALID_ARGUMENT;
}

inline void destroy(void* instance) noexcept {
  auto* inst = static_cast<Instance*>(instance);
  Host host = inst->host;
  guarded(host.api(), host.handle(), "the plugin destructor", [&] { inst->plugin.reset(); });
  host.release_callbacks();
  delete inst;
}

inline void invoke(void* instance, const troupe_call_t* call) noexcept {
  auto* inst = static_cast<Instance*>(instance);
  const troupe_host_api_t* api = inst->host.api();
  troupe_host_t* host = inst->host.handle();
  std::shared_ptr<Call> sink;
  char buffer[512];
  troupe_str_t message{nullptr, 0};
  try {
    sink = std::make_shared<Call>(api, host, *call);
    inst->plugin->invoke(sink);
    return;  // if nobody kept `sink`, its destructor completes the call with INTERNAL
  } catch (const std::exception& e) {
    message = format_message(buffer, sizeof buffer, "plugin invoke threw: ", e.what());
  } catch (...) {
    message = format_message(buffer, sizeof buffer, "plugin invoke threw: ", "unknown exception");
  }
  if (sink) {
    sink->fail(TROUPE_INTERNAL, to_view(message));
  } else {  // the Call itself could not be made (out of memory): complete directly
    troupe_completion_t c{};
    c.struct_size = sizeof c;
    c.status = TROUPE_INTERNAL;
    c.error_message = message;
    api->complete(host, call->id, &c);
  }
}

inline void cancel(void* instance, troupe_call_id_t call_id) noexcept {
  auto* inst = static_cast<Instance*>(instance);
  guarded(inst->host.api(), inst->host.handle(), "plugin cancel",
          [&] { inst->plugin->cancel(call_id); });
}

}  // namespace detail
}  // namespace troupe::sdk

// TROUPE_PLUGIN(Class, kind, "name", "version", "description", "capabilities json")
//
// Emits the plugin's one exported symbol, troupe_plugin_describe(), returning a static
// descriptor whose hooks create/destroy/invoke/cancel an instance of Class. Use it once,
// at namespace scope, in one .cpp of the plugin. kind is TROUPE_PLUGIN_PROVIDER or
// TROUPE_PLUGIN_INTEGRATION; name matches [a-z0-9_-]+ and is the .so's file name.
// describe() returns NULL for a host of another ABI major, as plugin.h requires.
#define TROUPE_PLUGIN(Class, kind, name, version, description, capabilities)              \
  extern "C" TROUPE_EXPORT const troupe_plugin_descriptor_t* troupe_plugin_describe(      \
      uint32_t host_abi_major, uint32_t host_abi_minor) {                                 \
    static constexpr troupe_plugin_descriptor_t descriptor = {                            \
        sizeof(troupe_plugin_descriptor_t),                                               \
        TROUPE_ABI_MAJOR,                                                                 \
        TROUPE_ABI_MINOR,                                                                 \
        (kind),                                                                           \
        (name),                                                                           \
        (version),                                                                        \
        (description),                                                                    \
        (capabilities),                                                                   \
        &::troupe::sdk::detail::create<Class>,                                            \
        &::troupe::sdk::detail::destroy,                                                  \
        &::troupe::sdk::detail::invoke,                                                   \
        &::troupe::sdk::detail::cancel,                                                   \
    };                                                                                    \
    (void)host_abi_minor; /* a newer host minor is fine; the host refuses an older one */ \
    return host_abi_major == TROUPE_ABI_MAJOR ? &descriptor : nullptr;                    \
  }
