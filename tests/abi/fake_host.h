// fake_host.h: a minimal, deterministic troupe_host_api_t for testing plugins at the C ABI.
//
// Not the real host: timers run on a virtual clock the test advances, posted functions run
// when the test drains them, HTTP transfers are driven by hand. That makes the plugin side
// of the contract (exactly one completion, closures freed, events before completion)
// observable without an event loop. emit/complete/post/log are thread-safe, as plugin.h
// promises the plugin.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "troupe/plugin.h"

namespace troupe::testing {

struct RecordedEvent {
  troupe_event_type_t type = 0;
  int32_t index = 0;
  std::string text, tool_id, tool_name, json;
};

struct RecordedCompletion {
  troupe_status_t status = TROUPE_OK;
  std::string result, error;
  bool retryable = false;
  uint32_t retry_after_ms = 0;
};

struct RecordedTransfer {
  troupe_call_id_t call = 0;
  std::string method, url, body;
  std::vector<std::pair<std::string, std::string>> headers;
  troupe_http_callbacks_t callbacks{};
  bool cancelled = false;
};

class FakeHost {
 public:
  FakeHost() {
    api_.struct_size = sizeof api_;
    api_.log = &log;
    api_.config_get = &config_get;
    api_.secret_get = &secret_get;
    api_.emit = &emit;
    api_.complete = &complete;
    api_.http_start = &http_start;
    api_.http_cancel = &http_cancel;
    api_.timer_start = &timer_start;
    api_.timer_cancel = &timer_cancel;
    api_.post = &post;
    api_.now_ns = &now_ns;
  }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  const troupe_host_api_t* api() const { return &api_; }
  troupe_host_t* handle() { return reinterpret_cast<troupe_host_t*>(this); }

  // --- what the test sets up ---
  std::map<std::string, std::string> config;
  std::map<std::string, std::string> secrets;
  bool refuse_http = false;    // http_start fails with TROUPE_UNSUPPORTED
  bool shutting_down = false;  // post() fails with TROUPE_UNAVAILABLE

  // --- what the plugin did (lock mu before reading while other threads may write) ---
  std::mutex mu;
  std::vector<std::pair<troupe_log_level_t, std::string>> logs;
  std::map<troupe_call_id_t, std::vector<RecordedEvent>> events;
  std::map<troupe_call_id_t, std::vector<RecordedCompletion>> completions;
  std::map<troupe_handle_t, RecordedTransfer> transfers;
  size_t timers_started = 0;
  size_t timers_cancelled = 0;

  size_t completion_count(troupe_call_id_t id) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = completions.find(id);
    return it == completions.end() ? 0 : it->second.size();
  }
  RecordedCompletion completion(troupe_call_id_t id) {
    std::lock_guard<std::mutex> lock(mu);
    return completions.at(id).at(0);
  }
  bool logged(troupe_log_level_t level, std::string_view needle) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [l, m] : logs) {
      if (l == level && m.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  size_t pending_timers() const { return timers_.size(); }
  uint64_t now_ms() const { return now_ms_; }

  // Moves the virtual clock forward, firing due timers in order (timers started by a firing
  // timer fire too when they fall due within the interval).
  void advance(uint64_t ms) {
    uint64_t target = now_ms_ + ms;
    for (;;) {
      auto next = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (it->second.due <= target &&
            (next == timers_.end() || it->second.due < next->second.due)) {
          next = it;
        }
      }
      if (next == timers_.end()) break;
      Timer t = next->second;
      timers_.erase(next);
      if (t.due > now_ms_) now_ms_ = t.due;
      t.fn(t.user_data);
    }
    now_ms_ = target;
  }

  // Runs posted functions (on the calling thread, which plays the loop).
  size_t drain_posts() {
    size_t n = 0;
    for (;;) {
      std::vector<std::pair<void (*)(void*), void*>> batch;
      {
        std::lock_guard<std::mutex> lock(mu);
        batch.swap(posts_);
      }
      if (batch.empty()) return n;
      for (auto& [fn, ud] : batch) {
        fn(ud);
        ++n;
      }
    }
  }

  // Starts a call on a plugin the way the host does.
  void invoke(const troupe_plugin_descriptor_t* d, void* instance, troupe_call_id_t id,
              std::string_view operation, std::string_view request, bool stream = false) {
    troupe_call_t call{};
    call.struct_size = sizeof call;
    call.id = id;
    call.operation = troupe_str_t{operation.data(), operation.size()};
    call.request = troupe_str_t{request.data(), request.size()};
    call.stream = stream;
    d->invoke(instance, &call);
  }

 private:
  struct Timer {
    uint64_t due = 0;
    void (*fn)(void*) = nullptr;
    void* user_data = nullptr;
  };

  static FakeHost* self(troupe_host_t* h) { return reinterpret_cast<FakeHost*>(h); }
  static std::string str(troupe_str_t s) {
    return s.len ? std::string(s.ptr, s.len) : std::string();
  }

  static void log(troupe_host_t* h, troupe_log_level_t level, troupe_str_t message) {
    std::lock_guard<std::mutex> lock(self(h)->mu);
    self(h)->logs.emplace_back(level, str(message));
  }
  static troupe_status_t lookup(const std::map<std::string, std::string>& m, troupe_str_t key,
                                troupe_str_t* out) {
    auto it = m.find(str(key));
    if (it == m.end()) return TROUPE_NOT_FOUND;
    *out = troupe_str_t{it->second.data(), it->second.size()};
    return TROUPE_OK;
  }
  static troupe_status_t config_get(troupe_host_t* h, troupe_str_t key, troupe_str_t* out) {
    return lookup(self(h)->config, key, out);
  }
  static troupe_status_t secret_get(troupe_host_t* h, troupe_str_t name, troupe_str_t* out) {
    return lookup(self(h)->secrets, name, out);
  }
  static void emit(troupe_host_t* h, troupe_call_id_t call, const troupe_event_t* e) {
    RecordedEvent r{e->type,         e->index,          str(e->text),
                    str(e->tool_id), str(e->tool_name), str(e->json)};
    std::lock_guard<std::mutex> lock(self(h)->mu);
    self(h)->events[call].push_back(std::move(r));
  }
  static void complete(troupe_host_t* h, troupe_call_id_t call, const troupe_completion_t* c) {
    RecordedCompletion r{c->status, str(c->result), str(c->error_message), c->retryable,
                         c->retry_after_ms};
    std::lock_guard<std::mutex> lock(self(h)->mu);
    self(h)->completions[call].push_back(std::move(r));
  }
  static troupe_status_t http_start(troupe_host_t* h, troupe_call_id_t call,
                                    const troupe_http_request_t* req,
                                    const troupe_http_callbacks_t* cb, troupe_handle_t* out) {
    FakeHost* s = self(h);
    if (s->refuse_http) return TROUPE_UNSUPPORTED;
    RecordedTransfer t;
    t.call = call;
    t.method = str(req->method);
    t.url = str(req->url);
    t.body = str(req->body);
    for (size_t i = 0; i < req->header_count; ++i) {
      t.headers.emplace_back(str(req->headers[i].name), str(req->headers[i].value));
    }
    t.callbacks = *cb;
    *out = ++s->next_handle_;
    s->transfers[*out] = std::move(t);
    return TROUPE_OK;
  }
  static void http_cancel(troupe_host_t* h, troupe_handle_t transfer) {
    auto it = self(h)->transfers.find(transfer);
    if (it != self(h)->transfers.end()) it->second.cancelled = true;
  }
  static troupe_handle_t timer_start(troupe_host_t* h, uint64_t delay_ms, void (*fn)(void*),
                                     void* user_data) {
    FakeHost* s = self(h);
    troupe_handle_t id = ++s->next_handle_;
    s->timers_[id] = Timer{s->now_ms_ + delay_ms, fn, user_data};
    ++s->timers_started;
    return id;
  }
  static bool timer_cancel(troupe_host_t* h, troupe_handle_t timer) {
    FakeHost* s = self(h);
    if (s->timers_.erase(timer) == 0) return false;
    ++s->timers_cancelled;
    return true;
  }
  static troupe_status_t post(troupe_host_t* h, void (*fn)(void*), void* user_data) {
    FakeHost* s = self(h);
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->shutting_down) return TROUPE_UNAVAILABLE;
    s->posts_.emplace_back(fn, user_data);
    return TROUPE_OK;
  }
  static uint64_t now_ns(troupe_host_t* h) { return self(h)->now_ms_ * 1000000; }

  troupe_host_api_t api_{};
  std::map<troupe_handle_t, Timer> timers_;
  std::vector<std::pair<void (*)(void*), void*>> posts_;
  uint64_t now_ms_ = 1000;
  troupe_handle_t next_handle_ = 0;
};

}  // namespace troupe::testing
