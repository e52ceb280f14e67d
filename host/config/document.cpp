// document.cpp: the strict JSON and YAML readers (see document.h).
//
// Both parsers feed events (nlohmann's SAX, yaml-cpp's EventHandler) into one Builder that
// keeps an explicit stack of open containers: no recursion on the document here, and none in
// the parsers beyond yaml-cpp's own depth guard, which our depth limit trips first.
#include "config/document.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <sstream>
#include <vector>

#include "core/utf8.h"

namespace troupe {
namespace {

using nlohmann::json;

// Builds the value from parser events, checking every limit as it goes.
class Builder {
 public:
  explicit Builder(const DocumentLimits& limits) : limits_(limits) {}

  // A key of the mapping on top. Duplicate keys are refused, naming where the first one is.
  void key(const std::string& k, TextMark mark) {
    Frame& f = frames_.back();
    if (f.value->contains(k)) {
      std::string first;
      if (auto it = doc_.marks.find(child_path(k)); it != doc_.marks.end())
        first = " (first at line " + std::to_string(it->second.line) + ")";
      fail(mark, child_path(k), "duplicate key '" + printable(k) + "'" + first);
    }
    f.key = k;
    f.has_key = true;
    if (limits_.record_marks) doc_.marks[child_path(k)] = mark;
  }

  bool expecting_key() const {
    return !frames_.empty() && !frames_.back().array && !frames_.back().has_key;
  }

  // A scalar, or a copy of an anchored value (with the values and depth it brings).
  void value(json v, TextMark mark, size_t values = 1, int depth = 0) {
    count(mark, values);
    if (static_cast<int>(frames_.size()) + depth > limits_.max_depth) too_deep(mark);
    place(std::move(v), mark);
  }

  void begin(bool array, TextMark mark, int anchor = 0) {
    if (static_cast<int>(frames_.size()) >= limits_.max_depth) too_deep(mark);
    count(mark, 1);
    std::string at = path();
    json* slot = place(array ? json::array() : json::object(), mark);
    frames_.push_back({slot, array, "", false, 0, anchor, values_, std::move(at)});
  }

  // Closes the container on top; returns it with the values and depth it holds.
  struct Closed {
    const json* value;
    int anchor;
    size_t values;
    int depth;
  };
  Closed end() {
    Frame f = std::move(frames_.back());
    frames_.pop_back();
    int depth = 1 + f.inner_depth;
    if (!frames_.empty()) frames_.back().inner_depth = std::max(frames_.back().inner_depth, depth);
    return {f.value, f.anchor, values_ - f.values_before + 1, depth};
  }

  bool open_anchor(int anchor) const {
    for (const auto& f : frames_)
      if (f.anchor == anchor) return true;
    return false;
  }

  // The path of the value being read (in a mapping before its first key: the mapping's).
  std::string path() const {
    if (frames_.empty()) return limits_.root;
    const Frame& f = frames_.back();
    if (f.array) return f.path + "[" + std::to_string(f.index) + "]";
    if (!f.has_key && f.key.empty()) return f.path;
    return join(f.path, f.key);
  }

  [[noreturn]] void fail(TextMark mark, const std::string& at, const std::string& what) const {
    throw DocumentError(mark, at, what);
  }

  void note_depth(int depth) {
    if (!frames_.empty()) frames_.back().inner_depth = std::max(frames_.back().inner_depth, depth);
  }

  Document take() { return std::move(doc_); }
  bool started() const { return started_; }

 private:
  struct Frame {
    json* value;
    bool array;
    std::string key;  // the mapping's current key
    bool has_key;
    size_t index;  // the list's next index
    int anchor;    // YAML anchor id of this container, 0 = none
    size_t values_before;
    std::string path;
    int inner_depth = 0;  // deepest container inside, relative to this one
  };

  static std::string join(const std::string& base, const std::string& key) {
    return base.empty() ? key : base + "." + key;
  }

  std::string child_path(const std::string& k) const { return join(frames_.back().path, k); }

  void count(TextMark mark, size_t n) {
    values_ += n;
    if (values_ > limits_.max_values) {
      fail(mark, path(),
           "more than " + std::to_string(limits_.max_values) +
               " values (with aliases expanded): refusing a document this large");
    }
  }

  [[noreturn]] void too_deep(TextMark mark) const {
    fail(mark, path(), "nested deeper than " + std::to_string(limits_.max_depth) + " levels");
  }

  json* place(json v, TextMark mark) {
    if (frames_.empty()) {
      started_ = true;
      doc_.value = std::move(v);
      if (limits_.record_marks) doc_.marks[limits_.root] = mark;
      return &doc_.value;
    }
    Frame& f = frames_.back();
    if (f.array) {
      if (limits_.record_marks) doc_.marks[path()] = mark;
      f.value->push_back(std::move(v));
      ++f.index;
      return &f.value->back();
    }
    f.has_key = false;
    return &((*f.value)[f.key] = std::move(v));
  }

  DocumentLimits limits_;
  Document doc_;
  std::vector<Frame> frames_;
  size_t values_ = 0;
  bool started_ = false;
};

// "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..." ->
// "syntax error ...": the place is given by our own prefix.
std::string plain_message(const std::string& what) {
  std::string s = what;
  if (size_t at = s.find("] "); s.rfind("[json.exception", 0) == 0 && at != std::string::npos)
    s = s.substr(at + 2);
  if (s.rfind("parse error at line", 0) == 0) {
    if (size_t at = s.find(": "); at != std::string::npos) s = s.substr(at + 2);
  }
  return s;
}

// Line and column of byte offsets in text, for offsets that mostly only grow (parser events
// come in order), so finding each one costs what the text between them costs.
class LineCounter {
 public:
  explicit LineCounter(std::string_view text) : text_(text) {}

  TextMark at(size_t offset) {
    offset = std::min(offset, text_.size());
    if (offset < offset_) {  // back to the start: rare
      offset_ = 0;
      mark_ = {1, 1};
    }
    for (; offset_ < offset; ++offset_) {
      if (text_[offset_] == '\n') {
        ++mark_.line;
        mark_.column = 1;
      } else {
        ++mark_.column;
      }
    }
    return mark_;
  }

 private:
  std::string_view text_;
  size_t offset_ = 0;
  TextMark mark_{1, 1};
};

// An iterator over the text that lets the SAX handler see how far the lexer has read.
struct TrackingIterator {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  const char* at;
  const char** furthest;

  reference operator*() const { return *at; }
  TrackingIterator& operator++() {
    *furthest = ++at;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const TrackingIterator& o) const { return at == o.at; }
  bool operator!=(const TrackingIterator& o) const { return at != o.at; }
};

class JsonSax : public nlohmann::json_sax<json> {
 public:
  JsonSax(std::string_view text, const DocumentLimits& limits)
      : text_(text), read_(text.data()), lines_(text), b_(limits) {}

  const char** read_pointer() { return &read_; }

  bool null() override { return scalar(nullptr); }
  bool boolean(bool v) override { return scalar(v); }
  bool number_integer(number_integer_t v) override { return scalar(v); }
  bool number_unsigned(number_unsigned_t v) override { return scalar(v); }
  bool number_float(number_float_t v, const string_t&) override { return scalar(v); }
  bool string(string_t& v) override { return scalar(std::move(v)); }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override {
    b_.begin(false, token_mark());
    return true;
  }
  bool key(string_t& k) override {
    b_.key(k, token_mark());
    return true;
  }
  bool end_object() override {
    b_.end();
    return true;
  }
  bool start_array(std::size_t) override {
    b_.begin(true, token_mark());
    return true;
  }
  bool end_array() override {
    b_.end();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    std::string what = printable(plain_message(ex.what()));
    if (ex.id == 406) {  // valid JSON, but the number does not fit a double
      b_.fail(lines_.at(position), b_.path(), what + " (beyond the range of a double)");
    }
    b_.fail(lines_.at(position), b_.path(), kNotJson + what);
  }

  Document take() { return b_.take(); }

 private:
  bool scalar(json v) {
    b_.value(std::move(v), token_mark());
    return true;
  }

  // The last character of the token just read: the lexer may have read one character past a
  // number (a newline, say), so step back over whitespace first.
  TextMark token_mark() {
    const char* p = read_;
    while (p > text_.data() && (p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\r' || p[-1] == '\t'))
      --p;
    size_t offset = static_cast<size_t>(p - text_.data());
    return lines_.at(offset == 0 ? 0 : offset - 1);
  }

  std::string_view text_;
  const char* read_;
  LineCounter lines_;
  Builder b_;
};

TextMark mark_of(const YAML::Mark& m) {
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

// A plain scalar typed by YAML 1.2's core schema; numbers that do not fit are refused.
json resolve_plain(const std::string& s, TextMark mark, const Builder& b) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  auto out_of_range = [&](const std::string& what) {
    b.fail(mark, b.path(), "the number " + printable(s) + " " + what);
  };
  // Integers: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+.
  auto integer = [&](std::string_view digits, int base, bool negative) -> json {
    uint64_t u = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), u, base);
    if (ec == std::errc::result_out_of_range ||
        u > (negative ? uint64_t{1} << 63 : uint64_t{INT64_MAX})) {
      out_of_range("is out of range: integers are limited to -2^63 .. 2^63-1");
    }
    if (negative) return u == uint64_t{1} << 63 ? INT64_MIN : -static_cast<int64_t>(u);
    return static_cast<int64_t>(u);
  };
  auto all_of = [](std::string_view t, const char* set) {
    return !t.empty() && t.find_first_not_of(set) == std::string_view::npos;
  };
  std::string_view v = s;
  bool negative = false;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    negative = v[0] == '-';
    v.remove_prefix(1);
  }
  if (all_of(v, "0123456789")) return integer(v, 10, negative);
  std::string_view prefixed = std::string_view(s).substr(std::min<size_t>(2, s.size()));
  if (s.rfind("0o", 0) == 0 && all_of(prefixed, "01234567")) return integer(prefixed, 8, false);
  if (s.rfind("0x", 0) == 0 && all_of(prefixed, "0123456789abcdefABCDEF"))
    return integer(prefixed, 16, false);
  // Floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, and .inf / .nan.
  if (v == ".inf" || v == ".Inf" || v == ".INF" || v == ".nan" || v == ".NaN" || v == ".NAN")
    out_of_range("has no JSON form (infinity and NaN are not allowed)");
  size_t e = v.find_first_of("eE");
  std::string_view mantissa = v.substr(0, e);
  size_t dot = mantissa.find('.');
  std::string_view whole = mantissa.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? "" : mantissa.substr(dot + 1);
  bool mantissa_ok = (whole.empty() || all_of(whole, "0123456789")) &&
                     (frac.empty() || all_of(frac, "0123456789")) &&
                     (!whole.empty() || !frac.empty());
  bool exponent_ok = true;
  if (e != std::string_view::npos) {
    std::string_view exponent = v.substr(e + 1);
    if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) exponent.remove_prefix(1);
    exponent_ok = all_of(exponent, "0123456789");
  }
  if (mantissa_ok && exponent_ok) {  // not an integer (above), so it has a '.' or an exponent
    double d = std::strtod(s.c_str(), nullptr);
    if (!std::isfinite(d)) out_of_range("is too large (beyond the range of a double)");
    return d;
  }
  return s;
}

// yaml-cpp's events into the Builder. Aliases are expanded by copying the anchored value,
// counted against the value and depth budgets; an alias inside its own anchor is refused.
class YamlHandler : public YAML::EventHandler {
 public:
  explicit YamlHandler(const DocumentLimits& limits) : b_(limits) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (b_.expecting_key()) b_.fail(mark_of(mark), b_.path(), "a key must be a string, not null");
    b_.value(nullptr, mark_of(mark));
    remember(anchor, nullptr, 1, 0);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    TextMark at = mark_of(mark);
    if (b_.open_anchor(static_cast<int>(anchor)))
      b_.fail(at, b_.path(), "an alias refers to the value that contains it (a recursive alias)");
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) b_.fail(at, b_.path(), "an alias to an unknown anchor");
    const Anchored& a = it->second;
    if (b_.expecting_key()) {
      if (!a.value.is_string())
        b_.fail(at, b_.path(),
                std::string("a key must be a string, not ") + json_type_name(a.value));
      b_.key(a.value.get<std::string>(), at);
      return;
    }
    b_.value(a.value, at, a.values, a.depth);
    b_.note_depth(a.depth);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    TextMark at = mark_of(mark);
    // yaml-cpp passes raw bytes (and "\uD800" escapes) through; no JSON string holds them.
    if (utf8::first_invalid(value) != std::string::npos) {
      b_.fail(at, b_.path(), "a string that is not valid UTF-8");
    }
    if (b_.expecting_key()) {
      check_tag(tag, at, "tag:yaml.org,2002:str");
      b_.key(value, at);
      remember(anchor, value, 1, 0);
      return;
    }
    json v;
    if (tag == "?") {
      v = resolve_plain(value, at, b_);
    } else {
      check_tag(tag, at, "tag:yaml.org,2002:str");
      v = value;  // quoted ("!") or tagged !!str: always a string
    }
    remember(anchor, v, 1, 0);
    b_.value(std::move(v), at);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    start(true, mark, tag, anchor, "tag:yaml.org,2002:seq");
  }
  void OnSequenceEnd() override { finish(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    start(false, mark, tag, anchor, "tag:yaml.org,2002:map");
  }
  void OnMapEnd() override { finish(); }

  Document take() { return b_.take(); }
  bool started() const { return b_.started(); }

 private:
  struct Anchored {
    json value;
    size_t values;
    int depth;
  };

  void check_tag(const std::string& tag, TextMark at, const char* standard) const {
    if (tag == "?" || tag == "!" || tag.empty() || tag == standard) return;
    b_.fail(at, b_.path(), "the tag " + printable(tag) + " is not supported");
  }

  void start(bool array, const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
             const char* standard) {
    TextMark at = mark_of(mark);
    if (b_.expecting_key()) {
      b_.fail(at, b_.path(),
              std::string("a key must be a string, not ") + (array ? "a list" : "a mapping"));
    }
    check_tag(tag, at, standard);
    b_.begin(array, at, static_cast<int>(anchor));
  }

  void finish() {
    Builder::Closed c = b_.end();
    if (c.anchor != 0) remember(static_cast<YAML::anchor_t>(c.anchor), *c.value, c.values, c.depth);
  }

  void remember(YAML::anchor_t anchor, const json& v, size_t values, int depth) {
    if (anchor != 0) anchors_[anchor] = {v, values, depth};
  }

  Builder b_;
  std::map<YAML::anchor_t, Anchored> anchors_;
};

}  // namespace

DocumentError::DocumentError(TextMark m, std::string p, std::string w)
    : std::runtime_error(format_error("", m, p, w)),
      mark(m),
      path(std::move(p)),
      what_text(std::move(w)) {}

std::string format_error(const std::string& file, TextMark mark, const std::string& path,
                         const std::string& what) {
  std::string out = file;
  if (mark.line > 0) out += ":" + std::to_string(mark.line) + ":" + std::to_string(mark.column);
  if (!out.empty()) out += ": ";
  if (!path.empty()) out += printable(path) + ": ";
  return out + what;
}

const char* json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "a mapping";
    case json::value_t::array:
      return "a list";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_float:
      return "a number";
    default:
      return "an integer";
  }
}

std::string printable(std::string_view text) {
  constexpr size_t kMax = 200;
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > kMax) out = out.substr(0, kMax / 2) + "…" + out.substr(out.size() - kMax / 2);
  return out;
}

Document read_json_document(std::string_view text, const DocumentLimits& limits) {
  JsonSax sax(text, limits);
  TrackingIterator first{text.data(), sax.read_pointer()};
  TrackingIterator last{text.data() + text.size(), sax.read_pointer()};
  json::sax_parse(first, last, &sax);  // every failure throws from the handler
  return sax.take();
}

Document read_yaml_document(const std::string& text, const DocumentLimits& limits) {
  std::istringstream in(text);
  YamlHandler handler(limits);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(handler);
    YamlHandler second(limits);
    if (parser.HandleNextDocument(second)) {
      throw DocumentError({}, "", "more than one YAML document (a second '---'): write one");
    }
  } catch (const YAML::Exception& e) {
    throw DocumentError(mark_of(e.mark), "", "not valid YAML: " + printable(e.msg));
  }
  if (!handler.started()) {
    throw DocumentError({1, 1}, "",
                        "the file is empty (or only comments): write {} for a configuration "
                        "that keeps every default");
  }
  return handler.take();
}

}  // namespace troupe
