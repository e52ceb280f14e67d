// run_cancel.cpp: cancels — asked from any thread (Runtime::cancel, signals) or from another
// process through the store (troupe cancel, polled by a watcher thread), applied on the loop.
#include <chrono>

#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

namespace {

constexpr uint64_t kStoreCancelPollMs = 250;  // how often live runs look for troupe cancel

}  // namespace

void Core::cancel(const std::string& run_id, const std::string& reason) {
  {
    std::lock_guard lock(cancel_mutex_);
    cancel_requests_.emplace_back(run_id, reason);
  }
  cancel_pending_.store(true, std::memory_order_release);
  Liveness::Watch token = alive.watch();
  loop.post([this, token] {
    if (!token.gone()) apply_cancel_requests();
  });
}

void Core::set_live(const std::string& run_id, bool live) {
  if (store == nullptr) return;
  std::lock_guard lock(watch_mutex_);
  if (live) {
    live_ids_.insert(run_id);
  } else {
    live_ids_.erase(run_id);
  }
  if (live && !watcher_.joinable()) watcher_ = std::thread([this] { watch_store_cancels(); });
  if (live) watch_wake_.notify_all();
}

void Core::watch_store_cancels() {
  std::unique_lock lock(watch_mutex_);
  while (!watch_stop_) {
    // Idle (no live run): sleep until one starts or the core goes, instead of polling.
    watch_wake_.wait(lock, [this] { return watch_stop_ || !live_ids_.empty(); });
    watch_wake_.wait_for(lock, std::chrono::milliseconds(kStoreCancelPollMs));
    if (watch_stop_ || live_ids_.empty()) continue;
    lock.unlock();
    std::vector<CancelRequest> requests;
    try {
      requests = store->cancel_requests();
    } catch (const StoreError& e) {
      log::warn("runtime", std::string("cannot read cancel requests: ") + e.what());
    }
    lock.lock();
    std::vector<CancelRequest> ours;
    for (auto& request : requests) {
      // Another process's run (or one already over) is not ours to touch.
      if (live_ids_.count(request.run_id) != 0) ours.push_back(std::move(request));
    }
    lock.unlock();
    for (const auto& request : ours) {
      store->clear_cancel(request.run_id);
      cancel(request.run_id, request.reason);
    }
    lock.lock();
  }
}

void Core::apply_cancel_requests() {
  std::vector<std::pair<std::string, std::string>> requests;
  {
    std::lock_guard lock(cancel_mutex_);
    requests.swap(cancel_requests_);
    cancel_pending_.store(false, std::memory_order_release);
  }
  for (const auto& [run_id, reason] : requests)
    cancel_now(run_id, reason);
}

void Core::cancel_now(const std::string& run_id, const std::string& reason) {
  auto it = runs.find(run_id);
  if (it == runs.end()) return;
  std::shared_ptr<Run> run = it->second;
  run->cancelled = true;
  finish_run(*run, "cancelled", "", reason);
}

}  // namespace troupe::rt
