// event_loop.cpp: the host's event loop — epoll, libcurl's socket interface, timers, posted work.
//
// One iteration: epoll_wait (timeout = min(next timer, curl's timeouts), woken early through an
// eventfd by post()/stop()), curl_multi_socket_action for each ready socket and each due curl
// timeout, finished transfers, deferred transfer completions, due timers, posted closures.
// User handlers run either inside curl_multi_socket_action (on_headers/on_chunk from curl's
// callbacks) or between the steps; curl forbids adding/removing easy handles from its
// callbacks, so those are deferred while in_perform is set.
//
// Why epoll and shards: curl_multi_poll + curl_multi_perform look at every socket and every
// transfer on each wake-up, which costs O(connections) per completion; with the socket
// interface curl only touches the sockets epoll reports. And libcurl 7.88 still walks its whole
// connection cache when a transfer is added or removed, so transfers are spread over several
// multi handles (shards) once there are many: each walk stays short.
//
// Over 600 lines on purpose: one iteration's steps share the Impl's private state (the epoll
// set, the shards, the timer heap, the transfer table); http_transfer.cpp already holds the
// per-transfer curl setup.
#include "loop/event_loop.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "core/log.h"
#include "core/text.h"
#include "loop/http_transfer.h"

namespace troupe {
namespace {

using loop_detail::HttpTransfer;

constexpr std::string_view kComponent = "loop";

// A new shard is opened when every open one holds this many transfers (measured with the
// benchmark's 10,000 concurrent calls: fewer shards pay for curl's connection-cache walks,
// more pay for their own bookkeeping).
constexpr size_t kTransfersPerShard = 512;
constexpr size_t kMaxShards = 64;
constexpr int kMaxEvents = 256;              // epoll events taken per wait
constexpr uint64_t kWakeTag = ~uint64_t{0};  // epoll data of the eventfd

// The loop whose iteration runs on this thread, if any: post() from inside an iteration need
// not wake epoll, the iteration looks at the queue before it waits again.
thread_local const void* t_iterating = nullptr;

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

// One multi handle and its curl timeout. Sockets of its transfers are registered in the
// loop's epoll set with (shard index << 32 | fd) as their data.
struct Shard {
  int epfd = -1;  // the loop's epoll set
  uint32_t index = 0;
  CURLM* multi = nullptr;
  size_t transfers = 0;      // added and not yet removed
  bool timeout_set = false;  // curl asked to be called back at timeout_ns
  uint64_t timeout_ns = 0;
};

}  // namespace

const std::string* find_header(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (text::iequals(key, name)) return &value;
  }
  return nullptr;
}

struct EventLoop::Impl {
  int epfd = -1;
  int wakefd = -1;  // eventfd: post() and stop() wake epoll_wait through it
  std::vector<std::unique_ptr<Shard>> shards;

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
  std::vector<Id> pending_adds;  // started from inside curl_multi_socket_action
  std::deque<Id> finishing;      // terminal transfers whose on_complete is due
  bool in_perform = false;
  bool in_iteration = false;

  Impl() {
    init_curl_once();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epfd < 0 || wakefd < 0) {
      std::string why = std::strerror(errno);
      close_fds();
      throw std::runtime_error("cannot create the event loop's epoll set: " + why);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev);
    open_shard();  // throws like the constructor of the loop should
  }

  ~Impl() {
    for (auto& shard : shards)
      curl_multi_cleanup(shard->multi);
    close_fds();
  }

  void close_fds() {
    if (epfd >= 0) ::close(epfd);
    if (wakefd >= 0) ::close(wakefd);
    epfd = wakefd = -1;
  }

  void wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wakefd, &one, sizeof one);
    (void)n;  // EAGAIN: the counter is already non-zero, the loop is woken anyway
  }

  // ---- shards (curl multi handles) ----

  Shard& open_shard() {
    auto shard = std::make_unique<Shard>();
    shard->epfd = epfd;
    shard->index = static_cast<uint32_t>(shards.size());
    shard->multi = curl_multi_init();
    if (shard->multi == nullptr) throw std::runtime_error("curl_multi_init failed");
    curl_multi_setopt(shard->multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_curl_socket);
    curl_multi_setopt(shard->multi, CURLMOPT_SOCKETDATA, shard.get());
    curl_multi_setopt(shard->multi, CURLMOPT_TIMERFUNCTION, &Impl::on_curl_timer);
    curl_multi_setopt(shard->multi, CURLMOPT_TIMERDATA, shard.get());
    shards.push_back(std::move(shard));
    return *shards.back();
  }

  // The least loaded shard, or a new one when all are full. Shard 0 first, so sequential
  // calls keep reusing its connections.
  Shard& pick_shard() {
    Shard* best = shards.front().get();
    for (auto& shard : shards)
      if (shard->transfers < best->transfers) best = shard.get();
    if (best->transfers >= kTransfersPerShard && shards.size() < kMaxShards) {
      try {
        return open_shard();
      } catch (const std::exception& e) {
        log::warn(kComponent, e.what());  // keep going on the shards we have
      }
    }
    return *best;
  }

  // CURLMOPT_SOCKETFUNCTION: curl tells which events it wants on a socket.
  // socketp is curl's per-socket pointer: non-null once the socket is in the epoll set (curl
  // forgets it with the socket, after CURL_POLL_REMOVE).
  static int on_curl_socket(CURL*, curl_socket_t fd, int what, void* user, void* socketp) {
    auto* shard = static_cast<Shard*>(user);
    int epfd = shard->epfd;
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);  // may already be gone with the socket
      return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.u64 = (uint64_t{shard->index} << 32) | static_cast<uint32_t>(fd);
    int op = socketp != nullptr ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(epfd, op, fd, &ev) != 0 &&
        (op == EPOLL_CTL_ADD || errno != ENOENT || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)) {
      log::error(kComponent, std::string("epoll_ctl: ") + std::strerror(errno));
      return -1;  // curl fails the transfer
    }
    if (socketp == nullptr) curl_multi_assign(shard->multi, fd, shard);
    return 0;
  }

  // CURLMOPT_TIMERFUNCTION: curl wants CURL_SOCKET_TIMEOUT after timeout_ms (-1: never).
  static int on_curl_timer(CURLM*, long timeout_ms, void* user) {
    auto* shard = static_cast<Shard*>(user);
    shard->timeout_set = timeout_ms >= 0;
    if (timeout_ms >= 0)
      shard->timeout_ns = now_ns() + static_cast<uint64_t>(timeout_ms) * 1'000'000;
    return 0;
  }

  void socket_action(Shard& shard, curl_socket_t fd, int mask) {
    int running = 0;
    CURLMcode rc = curl_multi_socket_action(shard.multi, fd, mask, &running);
    if (rc != CURLM_OK)
      log::error(kComponent, std::string("curl_multi_socket_action: ") + curl_multi_strerror(rc));
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
    Shard& shard = pick_shard();
    CURLMcode rc = curl_multi_add_handle(shard.multi, t.easy);
    if (rc != CURLM_OK) {
      fail_transfer(t, TROUPE_INTERNAL,
                    std::string("curl_multi_add_handle failed: ") + curl_multi_strerror(rc));
      return;
    }
    t.shard = static_cast<int>(shard.index);
    ++shard.transfers;
  }

  void detach(HttpTransfer& t) {
    if (t.shard < 0) return;
    Shard& shard = *shards[static_cast<size_t>(t.shard)];
    curl_multi_remove_handle(shard.multi, t.easy);
    --shard.transfers;
    t.shard = -1;
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
    for (auto& shard : shards) {
      while (CURLMsg* msg = curl_multi_info_read(shard->multi, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        char* priv = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        done.emplace_back(reinterpret_cast<HttpTransfer*>(priv), msg->data.result);
      }
    }
    for (auto [t, code] : done) {
      // Every transfer in `done` stays alive until its own turn: only complete_transfer
      // frees transfers here, and deliver_finishing runs after this loop.
      if (t->terminal) continue;  // outcome already decided; curl's result is moot
      detach(*t);
      std::string message;
      troupe_status_t status = loop_detail::map_curl_result(*t, code, &message);
      if (status == TROUPE_OK && !t->headers_delivered) {
        deliver_headers(*t, response_status(*t), t->parser.headers());
        if (t->terminal) continue;  // on_headers cancelled or threw
      }
      complete_transfer(t->id, status, message);
    }
  }

  // ---- curl callbacks (inside curl_multi_socket_action) ----

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
    uint64_t now = now_ns();
    for (auto& shard : shards) {
      if (!shard->timeout_set) continue;
      uint64_t ms = shard->timeout_ns <= now ? 0 : (shard->timeout_ns - now + 999'999) / 1'000'000;
      wait = std::min<long>(wait, static_cast<long>(std::min<uint64_t>(ms, INT_MAX)));
    }
    while (!heap.empty() && !entry_live(heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), fires_later);
      heap.pop_back();
    }
    if (!heap.empty()) {
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
    t_iterating = this;
    int wait = compute_wait_ms(max_wait_ms);
    epoll_event events[kMaxEvents];
    int n = epoll_wait(epfd, events, kMaxEvents, wait);
    if (n < 0 && errno != EINTR)
      log::error(kComponent, std::string("epoll_wait: ") + std::strerror(errno));
    in_perform = true;
    for (int i = 0; i < n; ++i) {
      uint64_t data = events[i].data.u64;
      if (data == kWakeTag) {
        uint64_t count = 0;
        ssize_t got = ::read(wakefd, &count, sizeof count);
        (void)got;  // EAGAIN: another wake-up already drained it
        continue;
      }
      size_t index = static_cast<size_t>(data >> 32);
      if (index >= shards.size()) continue;
      uint32_t flags = events[i].events;
      int mask = ((flags & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                 ((flags & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                 ((flags & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
      socket_action(*shards[index], static_cast<curl_socket_t>(data & 0xffffffffu), mask);
    }
    uint64_t now = now_ns();
    for (size_t i = 0; i < shards.size(); ++i) {  // by index: curl's callbacks never add shards
      Shard& shard = *shards[i];
      if (!shard.timeout_set || shard.timeout_ns > now) continue;
      shard.timeout_set = false;  // curl sets it again from inside the call if it needs to
      socket_action(shard, CURL_SOCKET_TIMEOUT, 0);
    }
    in_perform = false;
    add_pending();
    process_done();
    deliver_finishing();
    run_due_timers();
    run_posted();
    t_iterating = nullptr;
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
  if (!impl_->destroying) impl_->wake();
}

bool EventLoop::post(std::function<void()> fn) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->destroying) return false;
  bool was_empty = impl_->posted.empty();
  impl_->posted.push_back(std::move(fn));
  // Under the mutex so the eventfd cannot be closed meanwhile. Waking only on the
  // empty->non-empty edge, and only from outside an iteration of this loop, suffices: the
  // loop checks the queue before every wait.
  if (was_empty && t_iterating != impl_.get()) impl_->wake();
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
