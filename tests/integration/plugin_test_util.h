// plugin_test_util.h: helpers shared by the plugin integration tests (loop, logs; the paths are
// in support/test_paths.h).
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "loop/event_loop.h"
#include "plugin/plugin_instance.h"
#include "support/test_paths.h"

namespace troupe::test {

// Drives the loop until done() holds; false when timeout_ms passed first (a generous bound:
// tests wait for events, the bound only stops a broken test from hanging).
inline bool run_until(EventLoop& loop, const std::function<bool()>& done, int timeout_ms = 10000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    loop.run_once(20);
  }
  return true;
}

// Captures every log line (debug and up) while alive; restores the default sink after.
class LogCapture {
 public:
  struct Line {
    log::Level level;
    std::string component;
    std::string message;
  };

  LogCapture() {
    log::set_min_level(log::Level::debug);
    log::set_sink([this](log::Level level, std::string_view component, std::string_view message) {
      std::lock_guard lock(mutex_);
      lines_.push_back({level, std::string(component), std::string(message)});
    });
  }
  ~LogCapture() {
    log::set_sink(nullptr);
    log::set_min_level(log::Level::warn);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<Line> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  // Every line as "component: message\n", for substring checks.
  std::string text() const {
    std::string all;
    for (const auto& line : lines())
      all += line.component + ": " + line.message + "\n";
    return all;
  }
  bool contains(std::string_view needle) const { return text().find(needle) != std::string::npos; }
  size_t count(log::Level level, std::string_view needle) const {
    size_t n = 0;
    for (const auto& line : lines())
      if (line.level == level && line.message.find(needle) != std::string::npos) ++n;
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Line> lines_;
};

// Records what the host delivered for one call.
struct CallProbe {
  std::vector<StreamEvent> events;
  std::vector<CallResult> results;
  std::string text;  // concatenated TEXT_DELTA events

  CallHandlers handlers() {
    CallHandlers h;
    h.on_event = [this](const StreamEvent& e) {
      events.push_back(e);
      if (e.type == TROUPE_EVENT_TEXT_DELTA) text += e.text;
    };
    h.on_complete = [this](CallResult r) { results.push_back(std::move(r)); };
    return h;
  }
  bool done() const { return !results.empty(); }
};

}  // namespace troupe::test
