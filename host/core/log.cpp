// log.cpp: the host logger's sink, level filter and secret redaction.
#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <vector>

namespace troupe::log {
namespace {

std::mutex g_mutex;
Sink g_sink;
std::atomic<int> g_min_level{static_cast<int>(Level::warn)};
std::vector<std::string> g_secrets;

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

std::string redact_locked(std::string_view text) {
  std::string out(text);
  for (const auto& secret : g_secrets) {
    for (size_t pos = out.find(secret); pos != std::string::npos; pos = out.find(secret, pos)) {
      out.replace(pos, secret.size(), "[REDACTED]");
      pos += 10;
    }
  }
  return out;
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
  std::lock_guard lock(g_mutex);
  std::string clean = redact_locked(message);
  if (g_sink) {
    g_sink(level, component, clean);
  } else {
    std::fprintf(stderr, "troupe %s [%.*s] %s\n", level_name(level),
                 static_cast<int>(component.size()), component.data(), clean.c_str());
  }
}

void add_secret(std::string_view value) {
  if (value.size() < 4) return;
  std::lock_guard lock(g_mutex);
  for (const auto& s : g_secrets)
    if (s == value) return;
  g_secrets.emplace_back(value);
}

std::string redact(std::string_view text) {
  std::lock_guard lock(g_mutex);
  return redact_locked(text);
}

}  // namespace troupe::log
