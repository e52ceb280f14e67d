// redact.cpp: secret redaction — the patterns a secret gives, the automaton that finds them all
// in one pass, and the redaction of whole and of streamed text (log.h; decision 0013).
//
// A secret gives patterns in each of its forms (as is, JSON-escaped, percent-encoded): the whole
// form when it is shorter than kSecretFragment bytes, else every run of kSecretFragment bytes
// of it (cut at whole escape sequences), so a key cut anywhere, or echoed in part, still
// matches. Every byte covered by a match is replaced; a run of covered bytes becomes one
// "[REDACTED]".
#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>

#include "core/log.h"

namespace troupe::log {

// Aho-Corasick over the patterns, compiled to a DFA over byte classes: each byte that occurs in
// some pattern has a class of its own; all other bytes share class 0, which leads to the root.
// A state's row has a power-of-two width, so a step is a shift, an or and one load.
class SecretMatcher {
 public:
  explicit SecretMatcher(const std::vector<std::string>& patterns);

  uint32_t step(uint32_t state, unsigned char byte) const {
    return next_[(state << shift_) | class_of_[byte]];
  }
  // The length of the longest pattern that ends in this state; 0 when none does.
  uint32_t match(uint32_t state) const { return match_[state]; }
  // The length of the longest suffix of the text read that is the start of some pattern.
  uint32_t depth(uint32_t state) const { return depth_[state]; }

 private:
  std::array<uint32_t, 256> class_of_{};
  uint32_t classes_ = 1;  // 1 << shift_ (some unused)
  uint32_t shift_ = 0;
  std::vector<uint32_t> next_;  // state * classes_ + class -> state
  std::vector<uint32_t> match_;
  std::vector<uint32_t> depth_;
};

SecretMatcher::SecretMatcher(const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    for (unsigned char c : p)
      if (class_of_[c] == 0) class_of_[c] = classes_++;
  while ((1u << shift_) < classes_)
    ++shift_;
  classes_ = 1u << shift_;
  // The trie: next_ holds the children (0: none; the root is nobody's child).
  next_.assign(classes_, 0);
  match_.assign(1, 0);
  depth_.assign(1, 0);
  for (const auto& p : patterns) {
    uint32_t s = 0;
    for (unsigned char c : p) {
      uint32_t& slot = next_[s * classes_ + class_of_[c]];
      if (slot == 0) {
        slot = static_cast<uint32_t>(depth_.size());
        next_.resize(next_.size() + classes_, 0);
        match_.push_back(0);
        depth_.push_back(depth_[s] + 1);
      }
      s = next_[s * classes_ + class_of_[c]];
    }
    match_[s] = depth_[s];
  }
  // Breadth first, each state's missing transitions become those of its failure state (the
  // longest proper suffix that is in the trie), which is shallower and so already complete.
  std::vector<uint32_t> fail(depth_.size(), 0);
  std::vector<uint32_t> queue = {0};
  for (size_t head = 0; head < queue.size(); ++head) {
    uint32_t s = queue[head];
    for (uint32_t c = 0; c < classes_; ++c) {
      uint32_t& slot = next_[s * classes_ + c];
      uint32_t via_fail = s == 0 ? 0 : next_[fail[s] * classes_ + c];
      if (slot == 0) {
        slot = via_fail;
        continue;
      }
      fail[slot] = via_fail;
      if (match_[slot] == 0) match_[slot] = match_[via_fail];
      queue.push_back(slot);
    }
  }
}

namespace {

using Spans = std::vector<std::pair<size_t, size_t>>;  // [begin, end), sorted, disjoint
using Tokens = std::vector<std::string>;  // a form of a secret: one byte or escape sequence each

constexpr std::string_view kMark = "[REDACTED]";

std::mutex g_mutex;
std::vector<std::string> g_secrets;
std::shared_ptr<const SecretMatcher> g_matcher;
std::atomic<uint64_t> g_version{0};  // how many times g_matcher changed

std::shared_ptr<const SecretMatcher> current_matcher() {
  std::lock_guard lock(g_mutex);
  return g_matcher;
}

Tokens as_is(std::string_view s) {
  Tokens out;
  for (char c : s)
    out.emplace_back(1, c);
  return out;
}

// As nlohmann::json and most encoders write it; escaped_slash: as PHP and some others ("\/").
Tokens json_escaped(std::string_view s, bool escaped_slash) {
  Tokens out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out.emplace_back("\\\"");
        break;
      case '\\':
        out.emplace_back("\\\\");
        break;
      case '\b':
        out.emplace_back("\\b");
        break;
      case '\f':
        out.emplace_back("\\f");
        break;
      case '\n':
        out.emplace_back("\\n");
        break;
      case '\r':
        out.emplace_back("\\r");
        break;
      case '\t':
        out.emplace_back("\\t");
        break;
      case '/':
        out.emplace_back(escaped_slash ? "\\/" : "/");
        break;
      default:
        if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          out.push_back(std::string("\\u00") + hex[c >> 4] + hex[c & 15]);
        } else {
          out.emplace_back(1, ch);
        }
    }
  }
  return out;
}

// RFC 3986: everything but the unreserved characters as %XX (hex: upper- or lower-case digits).
Tokens percent_encoded(std::string_view s, const char* hex) {
  Tokens out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.emplace_back(1, ch);
    } else {
      out.push_back(std::string("%") + hex[c >> 4] + hex[c & 15]);
    }
  }
  return out;
}

// The patterns of one form: the whole form when it is short, else from each token the shortest
// run of whole tokens of at least kSecretFragment bytes, and the shortest such run that ends
// the form (together they cover all of it).
void add_patterns(const Tokens& form, std::vector<std::string>* out) {
  size_t total = 0;
  for (const auto& t : form)
    total += t.size();
  std::string all;
  for (const auto& t : form)
    all += t;
  if (total < kSecretFragment) {
    out->push_back(all);
    return;
  }
  for (size_t i = 0; i < form.size(); ++i) {
    std::string run;
    for (size_t j = i; j < form.size() && run.size() < kSecretFragment; ++j)
      run += form[j];
    if (run.size() < kSecretFragment) break;
    out->push_back(std::move(run));
  }
  std::string tail;
  for (size_t j = form.size(); j > 0 && tail.size() < kSecretFragment; --j)
    tail.insert(0, form[j - 1]);
  out->push_back(std::move(tail));
}

std::vector<std::string> patterns_of(const std::vector<std::string>& secrets) {
  std::vector<std::string> patterns;
  for (const auto& secret : secrets) {
    std::vector<Tokens> forms = {
        as_is(secret), json_escaped(secret, false), json_escaped(secret, true),
        percent_encoded(secret, "0123456789ABCDEF"), percent_encoded(secret, "0123456789abcdef")};
    for (size_t i = 0; i < forms.size(); ++i) {
      bool seen = false;
      for (size_t k = 0; k < i && !seen; ++k)
        seen = forms[k] == forms[i];
      if (!seen) add_patterns(forms[i], &patterns);
    }
  }
  return patterns;
}

// Adds [begin, end) to spans, merged with every span it touches. Ends come in increasing order.
void add_span(Spans* spans, size_t begin, size_t end) {
  while (!spans->empty() && begin <= spans->back().second) {
    begin = std::min(begin, spans->back().first);
    end = std::max(end, spans->back().second);
    spans->pop_back();
  }
  spans->emplace_back(begin, end);
}

// Runs the automaton over text[from, size) from state; records the matches; returns the state.
uint32_t scan(const SecretMatcher& m, uint32_t state, std::string_view text, size_t from,
              Spans* spans) {
  for (size_t i = from; i < text.size(); ++i) {
    state = m.step(state, static_cast<unsigned char>(text[i]));
    if (uint32_t len = m.match(state)) add_span(spans, i + 1 - len, i + 1);
  }
  return state;
}

// Appends text with each span (inside text) replaced by kMark; in_mark: the output so far ends
// with a mark (a span continuing it adds none).
void render(std::string_view text, const Spans& spans, bool* in_mark, std::string* out) {
  size_t pos = 0;
  for (const auto& [begin, end] : spans) {
    if (begin > pos) {
      out->append(text.substr(pos, begin - pos));
      *in_mark = false;
    }
    if (!*in_mark) out->append(kMark);
    *in_mark = true;
    pos = end;
  }
  if (pos < text.size()) {
    out->append(text.substr(pos));
    *in_mark = false;
  }
}

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// n, or less so that text[0, n) does not end inside a UTF-8 sequence.
size_t code_point_boundary(std::string_view text, size_t n) {
  size_t lead = n;
  while (lead > 0 && n - lead < 3 && is_continuation(text[lead - 1]))
    --lead;
  if (lead == 0) return n;
  auto c = static_cast<unsigned char>(text[lead - 1]);
  size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  return n - (lead - 1) < length ? lead - 1 : n;
}

}  // namespace

void add_secret(std::string_view value) {
  if (value.size() < 4) return;
  std::lock_guard lock(g_mutex);
  for (const auto& s : g_secrets)
    if (s == value) return;
  g_secrets.emplace_back(value);
  g_matcher = std::make_shared<const SecretMatcher>(patterns_of(g_secrets));
  g_version.fetch_add(1);
}

std::string redact(std::string_view text) {
  std::shared_ptr<const SecretMatcher> m = current_matcher();
  Spans spans;
  if (m) scan(*m, 0, text, 0, &spans);
  if (spans.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  bool in_mark = false;
  render(text, spans, &in_mark, &out);
  return out;
}

std::string redact_cut(std::string_view text, size_t max_bytes) {
  constexpr std::string_view kGap = " ... ";
  max_bytes = std::max<size_t>(max_bytes, 32);
  std::string clean = redact(text);
  if (clean.size() <= max_bytes) return clean;
  size_t tail = max_bytes / 4;
  size_t head = max_bytes - tail - kGap.size();
  while (head > 0 && is_continuation(clean[head]))
    --head;
  size_t from = clean.size() - tail;
  while (from < clean.size() && is_continuation(clean[from]))
    ++from;
  return clean.substr(0, head) + std::string(kGap) + clean.substr(from);
}

StreamRedactor::StreamRedactor() = default;
StreamRedactor::~StreamRedactor() = default;
StreamRedactor::StreamRedactor(StreamRedactor&&) noexcept = default;
StreamRedactor& StreamRedactor::operator=(StreamRedactor&&) noexcept = default;

std::string StreamRedactor::feed(std::string_view piece) {
  size_t from = held_.size();
  if (uint64_t version = g_version.load(); version != version_) {
    // A secret was added: read what is held again with the new automaton.
    matcher_ = current_matcher();
    version_ = version;
    state_ = 0;
    from = 0;
    cover_.clear();
  }
  held_.append(piece);
  if (!matcher_) return take(code_point_boundary(held_, held_.size()));
  state_ = scan(*matcher_, state_, held_, from, &cover_);
  return take(code_point_boundary(held_, held_.size() - matcher_->depth(state_)));
}

std::string StreamRedactor::finish() {
  std::string out = take(held_.size());
  state_ = 0;
  return out;
}

std::string StreamRedactor::take(size_t n) {
  std::string out;
  if (n == 0) return out;
  Spans now, later;
  for (const auto& [begin, end] : cover_) {
    if (begin < n) now.emplace_back(begin, std::min(end, n));
    if (end > n) later.emplace_back(std::max(begin, n) - n, end - n);
  }
  render(std::string_view(held_).substr(0, n), now, &in_mark_, &out);
  held_.erase(0, n);
  cover_ = std::move(later);
  return out;
}

}  // namespace troupe::log
