// host_api.cpp: the troupe_host_api_t function table every plugin instance receives.
//
// One static table for all instances; the troupe_host_t* argument is the instance's
// HostContext. Each entry is an exception barrier: no C++ exception may cross into the plugin,
// so a failure inside the host (e.g. out of memory) becomes a status or is logged.
#include <exception>
#include <string>

#include "core/log.h"
#include "loop/event_loop.h"
#include "plugin/host_context.h"

namespace troupe {
namespace {

void host_failure(const char* function, const char* what) {
  log::error("plugin-host", std::string(function) + " failed inside the host: " + what);
}

// Runs fn(context) and returns its value; fallback on a NULL host or a host-side exception.
template <typename R, typename Fn>
R barrier(const char* function, troupe_host_t* host, R fallback, Fn fn) {
  if (host == nullptr) return fallback;
  try {
    return fn(*HostContext::from(host));
  } catch (const std::exception& e) {
    host_failure(function, e.what());
  } catch (...) {
    host_failure(function, "unknown exception");
  }
  return fallback;
}

void api_log(troupe_host_t* host, troupe_log_level_t level, troupe_str_t message) {
  barrier("log", host, 0, [&](HostContext& c) {
    c.api_log(level, message);
    return 0;
  });
}

troupe_status_t api_config_get(troupe_host_t* host, troupe_str_t key, troupe_str_t* out) {
  return barrier<troupe_status_t>("config_get", host, TROUPE_INTERNAL,
                                  [&](HostContext& c) { return c.api_config_get(key, out); });
}

troupe_status_t api_secret_get(troupe_host_t* host, troupe_str_t name, troupe_str_t* out) {
  return barrier<troupe_status_t>("secret_get", host, TROUPE_INTERNAL,
                                  [&](HostContext& c) { return c.api_secret_get(name, out); });
}

void api_emit(troupe_host_t* host, troupe_call_id_t call, const troupe_event_t* event) {
  barrier("emit", host, 0, [&](HostContext& c) {
    c.api_emit(call, event);
    return 0;
  });
}

void api_complete(troupe_host_t* host, troupe_call_id_t call,
                  const troupe_completion_t* completion) {
  barrier("complete", host, 0, [&](HostContext& c) {
    c.api_complete(call, completion);
    return 0;
  });
}

troupe_status_t api_http_start(troupe_host_t* host, troupe_call_id_t call,
                               const troupe_http_request_t* request,
                               const troupe_http_callbacks_t* callbacks,
                               troupe_handle_t* out_handle) {
  return barrier<troupe_status_t>("http_start", host, TROUPE_INTERNAL, [&](HostContext& c) {
    return c.api_http_start(call, request, callbacks, out_handle);
  });
}

void api_http_cancel(troupe_host_t* host, troupe_handle_t transfer) {
  barrier("http_cancel", host, 0, [&](HostContext& c) {
    c.api_http_cancel(transfer);
    return 0;
  });
}

troupe_handle_t api_timer_start(troupe_host_t* host, uint64_t delay_ms, void (*fn)(void*),
                                void* user_data) {
  return barrier("timer_start", host, troupe_handle_t{0},
                 [&](HostContext& c) { return c.api_timer_start(delay_ms, fn, user_data); });
}

bool api_timer_cancel(troupe_host_t* host, troupe_handle_t timer) {
  return barrier("timer_cancel", host, false,
                 [&](HostContext& c) { return c.api_timer_cancel(timer); });
}

troupe_status_t api_post(troupe_host_t* host, void (*fn)(void*), void* user_data) {
  return barrier<troupe_status_t>("post", host, TROUPE_UNAVAILABLE,
                                  [&](HostContext& c) { return c.api_post(fn, user_data); });
}

uint64_t api_now_ns(troupe_host_t*) {
  return EventLoop::now_ns();
}

const troupe_host_api_t kHostApi = {
    sizeof(troupe_host_api_t),
    api_log,
    api_config_get,
    api_secret_get,
    api_emit,
    api_complete,
    api_http_start,
    api_http_cancel,
    api_timer_start,
    api_timer_cancel,
    api_post,
    api_now_ns,
};

}  // namespace

const troupe_host_api_t* host_api_table() {
  return &kHostApi;
}

}  // namespace troupe
