// event_loop.cpp: the host's event loop — curl multi polling, timers, posted closures, HTTP.
//
// One iteration: curl_multi_poll (timeout = min(next timer, curl's timeout), woken early by
// curl_multi_wakeup from post()/stop()), curl_multi_perform, finished transfers, deferred
// transfer completions, due timers, posted closures. User handlers run either inside
// curl_multi_perform (on_headers/on_chunk from curl's callbacks) or between the steps; curl
// forbids adding/removing easy handles from its callbacks, so those are deferred while
// in_perform is set.
#include "loop/event_loop.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "core/log.h"
#include "loop/http_transfer.h"

namespace troupe {
namespace {

using loop_detail::HttpTransfer;

constexpr std::string_view kComponent = "loop";

std::once_flag g_curl_once;
CURLcode g_curl_init_result = CURLE_OK;

// curl_global_init is not thread-safe and must run once per process; it is never undone
// (curl_global_cleanup at exit would race other users of libcurl in the process).
void init_curl_once() {
  std::call_once(g_curl_once, [] { g_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (g_curl_init_result != CURLE_OK)
    throw std::runtime_error(std::string("curl_global_init failed: ") +
                             curl_easy_strerror(g_curl_init_result));
}

// Text of the exception being handled; only call inside a catch block.
std::string current_exception_text() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

struct TimerEntry {
  uint64_t deadline_ns;
  uint64_t seq;  // insertion order: equal deadlines fire first-in first-out
  EventLoop::Id id;
  bool idle_check;  // id is a transfer whose idle timeout is checked, not a user timer
};

// Heap order for std::push_heap/pop_heap: the earliest deadline on top.
bool fires_later(const TimerEntry& a, const TimerEntry& b) {
  if (a.deadline_ns != b.deadline_ns) return a.deadline_ns > b.deadline_ns;
  return a.seq > b.seq;
}

uint64_t deadline_after_ms(uint64_t now, uint64_t delay_ms) {
  constexpr uint64_t kMaxMs = UINT64_MAX / 1'000'000 / 2;  // far future, no overflow
  return now + std::min(delay_ms, kMaxMs) * 1'000'000;
}

}  // namespace

const std::string* find_header(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < key.size() && same; ++i)
      same = lower(key[i]) == lower(name[i]);
    if (same) return &value;
  }
  return nullptr;
}

struct EventLoop::Impl {
  CURLM* multi = nullptr;

  // Shared with other threads (post, stop).
  std::mutex mutex;
  std::vector<std::function<void()>> posted;
  bool destroying = false;
  std::atomic<bool> stop_requested{false};

  // Loop thread only.
  Id next_id = 1;
  uint64_t next_seq = 0;
  std::vector<TimerEntry> heap;  // lazily pruned: cancelled timers stay until they surface
  std::unordered_map<Id, std::function<void()>> timers;
  std::unordered_map<Id, std::unique_ptr<HttpTransfer>> transfers;
  std::vector<Id> pending_adds;  // started from inside curl_multi_perform
  std::deque<Id> finishing;      // terminal transfers whose on_complete is due
  bool in_perform = false;
  bool in_iteration = false;

  Impl() {
    init_curl_once();
    multi = curl_multi_init();
    if (multi == nullptr) throw std::runtime_error("curl_multi_init failed");
  }

  ~Impl() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  // ---- timers ----

  void push_entry(const TimerEntry& entry) {
    heap.push_back(entry);
    std::push_heap(heap.begin(), heap.end(), fires_later);
  }

  bool entry_live(const TimerEntry& entry) const {
    if (!entry.idle_check) return timers.count(entry.id) != 0;
    auto it = transfers.find(entry.id);
    return it != transfers.end() && !it->second->terminal;
  }

  // Cancelled timers only leave the heap when they reach the top; rebuild it when they
  // pile up (e.g. many long call deadlines cancelled early).
  void maybe_compact() {
    if (heap.size() < 64 + 2 * (timers.size() + transfers.size())) return;
    std::vector<TimerEntry> live;
    live.reserve(timers.size() + transfers.size());
    for (const auto& entry : heap)
      if (entry_live(entry)) live.push_back(entry);
    heap.swap(live);
    std::make_heap(heap.begin(), heap.end(), fires_later);
  }

  void check_idle(Id transfer_id) {
    auto it = transfers.find(transfer_id);
    if (it == transfers.end() || it->second->terminal) return;
    HttpTransfer& t = *it->second;
    uint64_t deadline = deadline_after_ms(t.last_activity_ns, t.idle_timeout_ms);
    if (now_ns() >= deadline) {
      fail_transfer(t, TROUPE_TIMEOUT,
                    "HTTP transfer failed: idle timeout: no data received for " +
                        std::to_string(t.idle_timeout_ms) + " ms");
    } else {
      push_entry(TimerEntry{deadline, next_seq++, transfer_id, true});
    }
  }

  void run_due_timers() {
    uint64_t now = now_ns();
    uint64_t seq_limit = next_seq;  // timers added while running wait for the next pass
    while (!heap.empty()) {
      TimerEntry top = heap.front();
      if (top.deadline_ns > now || top.seq >= seq_limit) break;
      std::pop_heap(heap.begin(), heap.end(), fires_later);
      heap.pop_back();
      if (top.idle_check) {
        check_idle(top.id);
        continue;
      }
      auto it = timers.find(top.id);
      if (it == timers.end()) continue;  // cancelled
      std::function<void()> fn = std::move(it->second);
      timers.erase(it);
      try {
        if (fn) fn();
      } catch (...) {
        log::error(kComponent, "timer callback threw: " + current_exception_text());
      }
    }
  }

  // ---- posted closures ----

  void run_posted() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard lock(mutex);
      batch.swap(posted);
    }
    for (auto& fn : batch) {
      try {
        if (fn) fn();
      } catch (...) {
        log::error(kComponent, "posted closure threw: " + current_exception_text());
      }
    }
  }

  // ---- transfers ----

  void add_to_multi(HttpTransfer& t) {
    CURLMcode rc = curl_multi_add_handle(multi, t.easy);
    if (rc != CURLM_OK) {
      fail_transfer(t, TROUPE_INTERNAL,
                    std::string("curl_multi_add_handle failed: ") + curl_multi_strerror(rc));
      return;
    }
    t.in_multi = true;
  }

  void detach(HttpTransfer& t) {
    if (!t.in_multi) return;
    curl_multi_remove_handle(multi, t.easy);
    t.in_multi = false;
  }

  // Decides a transfer's outcome outside curl. The completion is always deferred to
  // deliver_finishing(), so callers (http_cancel, curl callbacks) never see handlers run.
  void fail_transfer(HttpTransfer& t, troupe_status_t status, std::string message) {
    if (t.terminal) return;
    t.terminal = true;
    t.terminal_status = status;
    t.terminal_message = std::move(message);
    if (!in_perform) detach(t);  // stop the I/O now; inside perform curl forbids it
    finishing.push_back(t.id);
  }

  // Calls on_headers once. A throwing handler fails the transfer.
  void deliver_headers(HttpTransfer& t, int status, const Headers& headers) {
    if (t.headers_delivered) return;
    t.headers_delivered = true;
    if (!t.handlers.on_headers) return;
    try {
      t.handlers.on_headers(status, headers);
    } catch (...) {
      fail_transfer(t, TROUPE_INTERNAL, "on_headers handler threw: " + current_exception_text());
    }
  }

  int response_status(HttpTransfer& t) {
    if (t.parser.complete()) return t.parser.status();
    long code = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &code);
    return static_cast<int>(code);
  }

  // Removes the transfer from the table and calls its on_complete (last thing it gets).
  void complete_transfer(Id id, troupe_status_t status, const std::string& message) {
    auto it = transfers.find(id);
    if (it == transfers.end()) return;
    std::unique_ptr<HttpTransfer> t = std::move(it->second);
    transfers.erase(it);
    detach(*t);
    auto on_complete = std::move(t->handlers.on_complete);
    t.reset();  // the handler may start a new transfer; free this easy handle first
    if (!on_complete) return;
    try {
      on_complete(status, message);
    } catch (...) {
      log::error(kComponent, "on_complete handler threw: " + current_exception_text());
    }
  }

  void deliver_finishing() {
    while (!finishing.empty()) {
      Id id = finishing.front();
      finishing.pop_front();
      auto it = transfers.find(id);
      if (it == transfers.end()) continue;
      troupe_status_t status = it->second->terminal_status;
      std::string message = std::move(it->second->terminal_message);
      complete_transfer(id, status, message);
    }
  }

  void add_pending() {
    std::vector<Id> ids;
    ids.swap(pending_adds);
    for (Id id : ids) {
      auto it = transfers.find(id);
      if (it == transfers.end() || it->second->terminal) continue;
      add_to_multi(*it->second);
    }
  }

  // Transfers curl reports as done. Collected first: handlers may add or remove handles.
  void process_done() {
    std::vector<std::pair<HttpTransfer*, CURLcode>> done;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      char* priv = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
      done.emplace_back(reinterpret_cast<HttpTransfer*>(priv), msg->data.result);
    }
    for (auto [t, code] : done) {
      // Every transfer in `done` stays alive until its own turn: only complete_transfer
      // frees transfers here, and deliver_finishing runs after this loop.
      if (t->terminal) continue;  // outcome already decided; curl's result is moot
      detach(*t);
      std::string message;
      troupe_status_t status = loop_detail::map_curl_result(code, t->error_buffer, &message);
      if (status == TROUPE_OK && !t->headers_delivered) {
        deliver_headers(*t, response_status(*t), t->parser.headers());
        if (t->terminal) continue;  // on_headers cancelled or threw
      }
      complete_transfer(t->id, status, message);
    }
  }

  // ---- curl callbacks (inside curl_multi_perform) ----

  static size_t on_curl_header(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<HttpTransfer*>(user);
    auto* self = static_cast<Impl*>(t->owner);
    size_t len = size * count;
    if (t->terminal) return 0;  // any short count aborts the transfer
    t->last_activity_ns = now_ns();
    if (t->parser.feed(std::string_view(data, len)))
      self->deliver_headers(*t, t->parser.status(), t->parser.headers());
    return t->terminal ? 0 : len;
  }

  static size_t on_curl_write(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<HttpTransfer*>(user);
    auto* self = static_cast<Impl*>(t->owner);
    size_t len = size * count;
    // CURL_WRITEFUNC_ERROR, unlike 0, is an error even for an empty write.
    if (t->terminal) return CURL_WRITEFUNC_ERROR;
    t->last_activity_ns = now_ns();
    if (!t->headers_delivered)
      self->deliver_headers(*t, self->response_status(*t), t->parser.headers());
    if (t->terminal) return CURL_WRITEFUNC_ERROR;
    if (len > 0 && t->handlers.on_chunk) {
      try {
        t->handlers.on_chunk(std::string_view(data, len));
      } catch (...) {
        self->fail_transfer(*t, TROUPE_INTERNAL,
                            "on_chunk handler threw: " + current_exception_text());
      }
    }
    // Cancelled from inside on_chunk: stop here, no further chunk.
    return t->terminal ? CURL_WRITEFUNC_ERROR : len;
  }

  // ---- the iteration ----

  int compute_wait_ms(int max_wait_ms) {
    if (!finishing.empty() || !pending_adds.empty()) return 0;
    {
      std::lock_guard lock(mutex);
      if (!posted.empty()) return 0;
    }
    long wait = max_wait_ms < 0 ? INT_MAX : max_wait_ms;
    long curl_wait = -1;
    curl_multi_timeout(multi, &curl_wait);
    if (curl_wait >= 0) wait = std::min(wait, curl_wait);
    while (!heap.empty() && !entry_live(heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), fires_later);
      heap.pop_back();
    }
    if (!heap.empty()) {
      uint64_t now = now_ns();
      uint64_t deadline = heap.front().deadline_ns;
      // Round up: waking a little early would only spin until the deadline.
      uint64_t ms = deadline <= now ? 0 : (deadline - now + 999'999) / 1'000'000;
      wait = std::min<long>(wait, static_cast<long>(std::min<uint64_t>(ms, INT_MAX)));
    }
    return static_cast<int>(wait);
  }

  void iterate(int max_wait_ms) {
    if (in_iteration) {
      log::error(kComponent, "run()/run_once() called from inside the loop; ignored");
      return;
    }
    in_iteration = true;
    int wait = compute_wait_ms(max_wait_ms);
    CURLMcode rc = curl_multi_poll(multi, nullptr, 0, wait, nullptr);
    if (rc != CURLM_OK)
      log::error(kComponent, std::string("curl_multi_poll: ") + curl_multi_strerror(rc));
    int running = 0;
    in_perform = true;
    rc = curl_multi_perform(multi, &running);
    in_perform = false;
    if (rc != CURLM_OK)
      log::error(kComponent, std::string("curl_multi_perform: ") + curl_multi_strerror(rc));
    add_pending();
    process_done();
    deliver_finishing();
    run_due_timers();
    run_posted();
    in_iteration = false;
  }

  // Tears everything down without calling handlers. Destroying a closure or handler may run
  // arbitrary destructors that call back into the loop, so state is moved out first and the
  // teardown repeats until nothing is left.
  void shutdown() {
    for (;;) {
      std::vector<std::function<void()>> dropped_posts;
      {
        std::lock_guard lock(mutex);
        destroying = true;
        dropped_posts.swap(posted);
      }
      auto dropped_transfers = std::move(transfers);
      transfers.clear();
      auto dropped_timers = std::move(timers);
      timers.clear();
      heap.clear();
      pending_adds.clear();
      finishing.clear();
      if (dropped_posts.empty() && dropped_transfers.empty() && dropped_timers.empty()) break;
      for (auto& [id, t] : dropped_transfers)
        detach(*t);
      dropped_posts.clear();
      dropped_transfers.clear();
      dropped_timers.clear();
    }
  }
};

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {}

EventLoop::~EventLoop() {
  // Before impl_ is released, so destructors run by shutdown() can still reach the loop.
  impl_->shutdown();
}

void EventLoop::run() {
  while (!impl_->stop_requested.exchange(false))
    impl_->iterate(-1);
}

void EventLoop::run_once(int max_wait_ms) {
  impl_->iterate(max_wait_ms < 0 ? 0 : max_wait_ms);
}

void EventLoop::stop() {
  impl_->stop_requested = true;
  std::lock_guard lock(impl_->mutex);
  if (!impl_->destroying) curl_multi_wakeup(impl_->multi);
}

bool EventLoop::post(std::function<void()> fn) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->destroying) return false;
  bool was_empty = impl_->posted.empty();
  impl_->posted.push_back(std::move(fn));
  // Under the mutex so the multi handle cannot be destroyed meanwhile. Waking only on the
  // empty->non-empty edge suffices: the loop checks the queue before every wait.
  if (was_empty) curl_multi_wakeup(impl_->multi);
  return true;
}

EventLoop::Id EventLoop::add_timer(uint64_t delay_ms, std::function<void()> fn) {
  Impl& m = *impl_;
  Id id = m.next_id++;
  m.push_entry(TimerEntry{deadline_after_ms(now_ns(), delay_ms), m.next_seq++, id, false});
  m.timers.emplace(id, std::move(fn));
  return id;
}

bool EventLoop::cancel_timer(Id id) {
  bool erased = impl_->timers.erase(id) != 0;
  if (erased) impl_->maybe_compact();
  return erased;
}

EventLoop::Id EventLoop::http_start(HttpRequest request, HttpHandlers handlers) {
  Impl& m = *impl_;
  auto owned = std::make_unique<HttpTransfer>();
  HttpTransfer& t = *owned;
  t.id = m.next_id++;
  t.owner = &m;
  t.handlers = std::move(handlers);
  t.idle_timeout_ms = request.idle_timeout_ms;
  t.last_activity_ns = now_ns();
  m.transfers.emplace(t.id, std::move(owned));

  troupe_status_t status = TROUPE_OK;
  std::string message;
  if (!loop_detail::configure_transfer(t, request, &status, &message)) {
    m.fail_transfer(t, status, message);
    return t.id;
  }
  curl_easy_setopt(t.easy, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(t.easy, CURLOPT_HEADERFUNCTION, &Impl::on_curl_header);
  curl_easy_setopt(t.easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION, &Impl::on_curl_write);
  curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t);
  if (m.in_perform)
    m.pending_adds.push_back(t.id);
  else
    m.add_to_multi(t);
  if (t.idle_timeout_ms != 0 && !t.terminal)
    m.push_entry(TimerEntry{deadline_after_ms(t.last_activity_ns, t.idle_timeout_ms), m.next_seq++,
                            t.id, true});
  return t.id;
}

void EventLoop::http_cancel(Id id) {
  auto it = impl_->transfers.find(id);
  if (it == impl_->transfers.end()) return;
  impl_->fail_transfer(*it->second, TROUPE_CANCELLED, "HTTP transfer cancelled");
}

uint64_t EventLoop::now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

size_t EventLoop::pending_timers() const {
  return impl_->timers.size();
}

size_t EventLoop::active_transfers() const {
  return impl_->transfers.size();
}

}  // namespace troupe
