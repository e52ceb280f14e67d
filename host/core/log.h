// log.h: the host's logger — one sink, levels, and secret redaction.
//
// Every component logs through here. The sink is replaceable (the CLI prints to stderr, the
// Python module forwards to logging). Registered secret values are replaced by "[REDACTED]"
// in every message before it reaches the sink, so a plugin or an error message that echoes a
// key cannot leak it.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace troupe::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

using Sink = std::function<void(Level, std::string_view component, std::string_view message)>;

// Replaces the sink (default: stderr, level >= warn). Not thread-safe against concurrent
// logging; call at start-up.
void set_sink(Sink sink);
void set_min_level(Level level);

// Thread-safe.
void write(Level level, std::string_view component, std::string_view message);
inline void debug(std::string_view c, std::string_view m) {
  write(Level::debug, c, m);
}
inline void info(std::string_view c, std::string_view m) {
  write(Level::info, c, m);
}
inline void warn(std::string_view c, std::string_view m) {
  write(Level::warn, c, m);
}
inline void error(std::string_view c, std::string_view m) {
  write(Level::error, c, m);
}

// Secrets: values registered here are redacted from log messages and from redact().
// Thread-safe. Values shorter than 4 bytes are ignored (they would redact ordinary text).
void add_secret(std::string_view value);
std::string redact(std::string_view text);

}  // namespace troupe::log
