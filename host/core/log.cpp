// log.cpp: the host logger's sink and level filter (secret redaction: redact.cpp).
#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace troupe::log {
namespace {

std::mutex g_mutex;
Sink g_sink;
std::atomic<int> g_min_level{static_cast<int>(Level::warn)};

const char* level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
  }
  return "?";
}

}  // namespace

void set_sink(Sink sink) {
  std::lock_guard lock(g_mutex);
  g_sink = std::move(sink);
}

void set_min_level(Level level) {
  g_min_level = static_cast<int>(level);
}

void write(Level level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_min_level.load()) return;
  std::string clean = redact(message);
  std::lock_guard lock(g_mutex);
  if (g_sink) {
    g_sink(level, component, clean);
  } else {
    std::fprintf(stderr, "troupe %s [%.*s] %s\n", level_name(level),
                 static_cast<int>(component.size()), component.data(), clean.c_str());
  }
}

}  // namespace troupe::log
