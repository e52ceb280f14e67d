// host_services.cpp: the host services a plugin calls — the troupe_host_api_t function table
// every instance receives, and the PluginInstance members it forwards to.
//
// One static table for all instances; the troupe_host_t* argument is the PluginInstance. Each
// entry is an exception barrier: no C++ exception may cross into the plugin, so a failure
// inside the host (e.g. out of memory) becomes a status or is logged. Events and completions
// are copied on the plugin's thread and posted to the loop (plugin_instance.cpp takes over).
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/log.h"
#include "loop/event_loop.h"
#include "plugin/abi_values.h"
#include "plugin/plugin_instance.h"

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
    return fn(*PluginInstance::from(host));
  } catch (const std::exception& e) {
    host_failure(function, e.what());
  } catch (...) {
    host_failure(function, "unknown exception");
  }
  return fallback;
}

void api_log(troupe_host_t* host, troupe_log_level_t level, troupe_str_t message) {
  barrier("log", host, 0, [&](PluginInstance& c) {
    c.service_log(level, message);
    return 0;
  });
}

troupe_status_t api_config_get(troupe_host_t* host, troupe_str_t key, troupe_str_t* out) {
  return barrier<troupe_status_t>("config_get", host, TROUPE_INTERNAL, [&](PluginInstance& c) {
    return c.service_config_get(key, out);
  });
}

troupe_status_t api_secret_get(troupe_host_t* host, troupe_str_t name, troupe_str_t* out) {
  return barrier<troupe_status_t>("secret_get", host, TROUPE_INTERNAL, [&](PluginInstance& c) {
    return c.service_secret_get(name, out);
  });
}

void api_emit(troupe_host_t* host, troupe_call_id_t call, const troupe_event_t* event) {
  barrier("emit", host, 0, [&](PluginInstance& c) {
    c.service_emit(call, event);
    return 0;
  });
}

void api_complete(troupe_host_t* host, troupe_call_id_t call,
                  const troupe_completion_t* completion) {
  barrier("complete", host, 0, [&](PluginInstance& c) {
    c.service_complete(call, completion);
    return 0;
  });
}

troupe_status_t api_http_start(troupe_host_t* host, troupe_call_id_t call,
                               const troupe_http_request_t* request,
                               const troupe_http_callbacks_t* callbacks,
                               troupe_handle_t* out_handle) {
  return barrier<troupe_status_t>("http_start", host, TROUPE_INTERNAL, [&](PluginInstance& c) {
    return c.service_http_start(call, request, callbacks, out_handle);
  });
}

void api_http_cancel(troupe_host_t* host, troupe_handle_t transfer) {
  barrier("http_cancel", host, 0, [&](PluginInstance& c) {
    c.service_http_cancel(transfer);
    return 0;
  });
}

troupe_handle_t api_timer_start(troupe_host_t* host, uint64_t delay_ms, void (*fn)(void*),
                                void* user_data) {
  return barrier("timer_start", host, troupe_handle_t{0},
                 [&](PluginInstance& c) { return c.service_timer_start(delay_ms, fn, user_data); });
}

bool api_timer_cancel(troupe_host_t* host, troupe_handle_t timer) {
  return barrier("timer_cancel", host, false,
                 [&](PluginInstance& c) { return c.service_timer_cancel(timer); });
}

troupe_status_t api_post(troupe_host_t* host, void (*fn)(void*), void* user_data) {
  return barrier<troupe_status_t>("post", host, TROUPE_UNAVAILABLE,
                                  [&](PluginInstance& c) { return c.service_post(fn, user_data); });
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

const troupe_host_api_t* host_services_table() {
  return &kHostApi;
}

// ---------------------------------------------------------------------------------------
// Host services: any thread

void PluginInstance::service_log(troupe_log_level_t level, troupe_str_t message) {
  log::Level lvl = log::Level::info;
  switch (level) {
    case TROUPE_LOG_DEBUG:
      lvl = log::Level::debug;
      break;
    case TROUPE_LOG_INFO:
      lvl = log::Level::info;
      break;
    case TROUPE_LOG_WARN:
      lvl = log::Level::warn;
      break;
    case TROUPE_LOG_ERROR:
      lvl = log::Level::error;
      break;
    default:
      lvl = log::Level::warn;
      break;
  }
  log::write(lvl, component_, text(message));  // write() redacts registered secrets
}

troupe_status_t PluginInstance::service_config_get(troupe_str_t key, troupe_str_t* out) {
  if (out == nullptr) return TROUPE_INVALID_ARGUMENT;
  std::string k = text(key);
  std::lock_guard lock(mutex_);
  auto cached = config_cache_.find(k);
  if (cached == config_cache_.end()) {
    const nlohmann::json* value = nullptr;
    auto found = settings_->find(k);
    if (found != settings_->end()) {
      value = &*found;
    } else if (!k.empty() && k[0] == '/') {  // a JSON pointer reaches nested settings
      try {
        value = &settings_->at(nlohmann::json::json_pointer(k));
      } catch (const nlohmann::json::exception&) {
        value = nullptr;
      }
    }
    if (value == nullptr || value->is_null()) return TROUPE_NOT_FOUND;
    std::string rendered = value->is_string() ? value->get<std::string>() : value->dump();
    // std::map nodes never move: the string stays put until the context dies (after destroy).
    cached = config_cache_.emplace(k, std::move(rendered)).first;
  }
  *out = view(cached->second);
  return TROUPE_OK;
}

troupe_status_t PluginInstance::service_secret_get(troupe_str_t name, troupe_str_t* out) {
  if (out == nullptr) return TROUPE_INVALID_ARGUMENT;
  auto it = config_.secrets.find(text(name));  // never modified after create: no lock
  if (it == config_.secrets.end()) return TROUPE_NOT_FOUND;
  *out = view(it->second);
  return TROUPE_OK;
}

void PluginInstance::service_emit(troupe_call_id_t call, const troupe_event_t* event) {
  if (event == nullptr) {
    violation(call, "emit with a NULL event");
    return;
  }
  troupe_event_t e = read_struct(event);
  StreamEvent copy;
  copy.type = e.type;
  copy.index = e.index;
  copy.text = text(e.text);
  copy.tool_id = text(e.tool_id);
  copy.tool_name = text(e.tool_name);
  copy.json = text(e.json);
  loop_.post([self = shared_from_this(), call, copy = std::move(copy)]() mutable {
    self->on_plugin_event(call, std::move(copy));
  });
}

void PluginInstance::service_complete(troupe_call_id_t call,
                                      const troupe_completion_t* completion) {
  CallResult result;
  if (completion == nullptr) {
    violation(call, "complete with a NULL completion");
    result.status = TROUPE_INTERNAL;
    result.error = config_.name + ": plugin completed the call without a completion";
  } else {
    troupe_completion_t c = read_struct(completion);
    result.status = c.status;
    result.result_json = text(c.result);
    result.error = log::redact(text(c.error_message));
    result.retryable = c.retryable;
    result.retry_after_ms = c.retry_after_ms;
    if (c.status < TROUPE_OK || c.status > TROUPE_INTERNAL) {
      violation(call, "completed with unknown status " + std::to_string(c.status));
      result.status = TROUPE_INTERNAL;
    }
    if (result.status != TROUPE_OK && result.error.empty())
      result.error = config_.name + ": call failed with status " + std::to_string(c.status);
    if (result.status == TROUPE_OK) result.error.clear();
  }
  loop_.post([self = shared_from_this(), call, result = std::move(result)]() mutable {
    self->on_plugin_complete(call, std::move(result));
  });
}

troupe_status_t PluginInstance::service_post(void (*fn)(void*), void* user_data) {
  if (fn == nullptr) {
    violation(0, "post with a NULL function");
    return TROUPE_INVALID_ARGUMENT;
  }
  bool queued = loop_.post([self = shared_from_this(), fn, user_data] {
    if (self->destroyed_) return;
    guarded(*self, 0, "posted function", [&] { fn(user_data); });
  });
  return queued ? TROUPE_OK : TROUPE_UNAVAILABLE;
}

// ---------------------------------------------------------------------------------------
// Host services: loop thread only

bool PluginInstance::substitute_secrets(std::string& value, std::string& missing) const {
  static const std::string open = "${secret:";
  size_t pos = 0;
  while ((pos = value.find(open, pos)) != std::string::npos) {
    size_t close = value.find('}', pos + open.size());
    if (close == std::string::npos) return true;  // not a reference: leave the text alone
    std::string name = value.substr(pos + open.size(), close - pos - open.size());
    auto it = config_.secrets.find(name);
    if (it == config_.secrets.end()) {
      missing = name;
      return false;
    }
    value.replace(pos, close + 1 - pos, it->second);
    pos += it->second.size();
  }
  return true;
}

troupe_status_t PluginInstance::service_http_start(troupe_call_id_t call,
                                                   const troupe_http_request_t* request,
                                                   const troupe_http_callbacks_t* callbacks,
                                                   troupe_handle_t* out_handle) {
  if (!on_loop_thread()) {
    violation(call, "http_start called off the loop thread");
    return TROUPE_INTERNAL;
  }
  if (request == nullptr || callbacks == nullptr || out_handle == nullptr) {
    violation(call, "http_start with a NULL argument");
    return TROUPE_INVALID_ARGUMENT;
  }
  if (destroyed_) return TROUPE_UNAVAILABLE;
  if (call != 0) {
    auto it = calls_.find(call);
    if (it == calls_.end()) {
      violation(call, "http_start for an unknown or finished call id");
      return TROUPE_INVALID_ARGUMENT;
    }
    if (it->second.caller_done) return TROUPE_CANCELLED;  // cancelled or timed out already
  }
  troupe_http_request_t r = read_struct(request);
  troupe_http_callbacks_t cb = read_struct(callbacks);

  HttpRequest req;
  req.method = r.method.len ? text(r.method) : "GET";
  req.url = text(r.url);
  for (size_t i = 0; i < r.header_count && r.headers != nullptr; ++i) {
    std::string name = text(r.headers[i].name);
    std::string value = text(r.headers[i].value);
    std::string missing;
    if (!substitute_secrets(value, missing)) {
      log::warn(component_,
                "http_start: header '" + name + "' refers to unknown secret '" + missing + "'");
      return TROUPE_NOT_FOUND;
    }
    req.headers.emplace_back(std::move(name), std::move(value));
  }
  req.body = text(r.body);
  req.timeout_ms = r.timeout_ms;
  req.connect_timeout_ms = r.connect_timeout_ms;
  req.idle_timeout_ms = r.idle_timeout_ms;

  // The loop never calls handlers from inside http_start, so the id is known by then.
  auto id_cell = std::make_shared<EventLoop::Id>(0);
  auto self = shared_from_this();
  HttpHandlers handlers;
  handlers.on_headers = [self, cb, call](int status, const Headers& headers) {
    if (self->destroyed_ || cb.on_headers == nullptr) return;
    std::vector<troupe_http_header_t> list;
    list.reserve(headers.size());
    for (const auto& [name, value] : headers)
      list.push_back({view(name), view(value)});
    guarded(*self, call, "http on_headers",
            [&] { cb.on_headers(cb.user_data, status, list.data(), list.size()); });
  };
  handlers.on_chunk = [self, cb, call](std::string_view chunk) {
    if (self->destroyed_ || cb.on_chunk == nullptr) return;
    guarded(*self, call, "http on_chunk", [&] {
      cb.on_chunk(cb.user_data, troupe_str_t{chunk.data(), chunk.size()});
    });
  };
  handlers.on_complete = [self, cb, call, id_cell](troupe_status_t status,
                                                   const std::string& error) {
    self->transfers_.erase(*id_cell);
    if (self->destroyed_ || cb.on_complete == nullptr) return;
    guarded(*self, call, "http on_complete",
            [&] { cb.on_complete(cb.user_data, status, view(error)); });
  };
  EventLoop::Id id = loop_.http_start(std::move(req), std::move(handlers));
  *id_cell = id;
  transfers_[id] = call;
  *out_handle = id;
  return TROUPE_OK;
}

void PluginInstance::service_http_cancel(troupe_handle_t transfer) {
  if (!on_loop_thread()) {
    violation(0, "http_cancel called off the loop thread");
    return;
  }
  // Only this instance's own transfers; unknown or finished ones are ignored.
  if (transfers_.count(transfer) != 0) loop_.http_cancel(transfer);
}

troupe_handle_t PluginInstance::service_timer_start(uint64_t delay_ms, void (*fn)(void*),
                                                    void* user_data) {
  if (!on_loop_thread()) {
    violation(0, "timer_start called off the loop thread");
    return 0;
  }
  if (fn == nullptr) {
    violation(0, "timer_start with a NULL function");
    return 0;
  }
  if (destroyed_) return 0;
  auto id_cell = std::make_shared<EventLoop::Id>(0);
  EventLoop::Id id = loop_.add_timer(delay_ms, [self = shared_from_this(), fn, user_data, id_cell] {
    self->timers_.erase(*id_cell);
    if (self->destroyed_) return;
    guarded(*self, 0, "timer function", [&] { fn(user_data); });
  });
  *id_cell = id;
  timers_.insert(id);
  return id;
}

bool PluginInstance::service_timer_cancel(troupe_handle_t timer) {
  if (!on_loop_thread()) {
    violation(0, "timer_cancel called off the loop thread");
    return false;
  }
  if (timers_.erase(timer) == 0) return false;
  return loop_.cancel_timer(timer);
}

}  // namespace troupe
