// log.h: the host's logger — one sink, levels, and secret redaction.
//
// Every component logs through here. The sink is replaceable (the CLI prints to stderr, the
// Python module forwards to logging). Registered secret values are replaced by "[REDACTED]"
// in every message before it reaches the sink, so a plugin or an error message that echoes a
// key cannot leak it. The redactor itself (redact.cpp) is what every other exit of the host
// uses too: events, the store's writes, run outcomes, what reaches Lua (docs/security.md §5).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
//
// What is redacted (decision 0013): every occurrence of a secret, and of any run of at least
// kSecretFragment consecutive bytes of it (a key cut by a truncation, or echoed in part), in
// each of its forms: as is, JSON-escaped (also with "\/"), percent-encoded (upper- and
// lower-case hex). Overlapping or adjacent matches become one "[REDACTED]". One pass over the
// text whatever the number of secrets (an Aho-Corasick automaton, rebuilt by add_secret).
inline constexpr size_t kSecretFragment = 12;
void add_secret(std::string_view value);
std::string redact(std::string_view text);

// Redacts, then cuts the result to at most max_bytes (max_bytes >= 32): the start and the end
// are kept, " ... " between, never inside a UTF-8 sequence. The one way to shorten text that
// may hold a secret: cutting first could leave a piece of a key the redactor no longer sees.
std::string redact_cut(std::string_view text, size_t max_bytes);

class SecretMatcher;  // the automaton (redact.cpp)

// Redacts a text that arrives in pieces (a streamed model answer): a secret split across
// pieces is still caught. feed() returns what is safe to hand out now; it holds back only the
// bytes that could be the start of a secret (fewer than kSecretFragment, plus escape sequences)
// and an unfinished UTF-8 sequence, so each piece it returns is whole code points. finish()
// returns the rest at the end of the stream. Not thread-safe (one per stream).
class StreamRedactor {
 public:
  StreamRedactor();
  ~StreamRedactor();
  StreamRedactor(StreamRedactor&&) noexcept;
  StreamRedactor& operator=(StreamRedactor&&) noexcept;

  std::string feed(std::string_view piece);
  std::string finish();

 private:
  std::string take(size_t n);  // hands out held_[0, n), redacted

  std::shared_ptr<const SecretMatcher> matcher_;
  uint64_t version_ = 0;  // of the secrets matcher_ was built from
  uint32_t state_ = 0;
  std::string held_;                              // bytes not handed out yet
  std::vector<std::pair<size_t, size_t>> cover_;  // [begin, end) of held_ that are secrets
  bool in_mark_ = false;                          // what was handed out last was "[REDACTED]"
};

}  // namespace troupe::log
