// mock_scan.cpp: reading code out of a prompt — diff lines, files, functions, key words,
// section headings (see mock_scan.h).
#include "mock_scan.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <unordered_map>
#include <unordered_set>

#include "common/text.h"
#include "mock_text.h"

namespace troupe::mock {

namespace {

constexpr size_t npos = std::string_view::npos;

using kit::contains;

// Reads a decimal number at s[i], advancing i; false when there is none.
bool read_number(std::string_view s, size_t& i, uint32_t& value) {
  size_t start = i;
  uint64_t v = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && v < UINT32_MAX) {
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
  }
  value = static_cast<uint32_t>(std::min<uint64_t>(v, UINT32_MAX));
  return i > start;
}

// Reads one side of a hunk header, "a[,b]", at s[i], advancing i: its start line and its
// length (1 when missing). False when it is not one.
bool read_range(std::string_view s, size_t& i, uint32_t& start, uint32_t& length) {
  if (!read_number(s, i, start)) return false;
  length = 1;
  if (i < s.size() && s[i] == ',') {
    ++i;
    return read_number(s, i, length);
  }
  return true;
}

// Parses "@@ -a[,b] +c[,d] @@ rest"; false when the line is not one. A missing length is 1.
bool parse_hunk_header(std::string_view line, uint32_t& old_len, uint32_t& new_start,
                       uint32_t& new_len, std::string_view& rest) {
  if (!line.starts_with("@@ -")) return false;
  size_t i = 4;
  uint32_t old_start = 0;  // not needed: line numbers are the new file's
  if (!read_range(line, i, old_start, old_len)) return false;
  if (line.substr(i, 2) != " +") return false;
  i += 2;
  if (!read_range(line, i, new_start, new_len)) return false;
  if (line.substr(i, 3) != " @@") return false;
  rest = kit::trim(line.substr(i + 3));
  return true;
}

// A file name from a "--- a/x" or "+++ b/x" line: without the a/ b/ prefix and the timestamp
// some tools append after a tab.
std::string_view diff_file_name(std::string_view line) {
  std::string_view name = line.substr(4);
  if (size_t tab = name.find('\t'); tab != npos) name = name.substr(0, tab);
  name = kit::trim(name);
  if (name.starts_with("a/") || name.starts_with("b/")) name.remove_prefix(2);
  return name;
}

bool is_git_header(std::string_view line) {
  for (std::string_view p :
       {"diff ", "index ", "new file mode", "deleted file mode", "old mode", "new mode",
        "similarity index", "rename from", "rename to", "Binary files "}) {
    if (line.starts_with(p)) return true;
  }
  return false;
}

// --- key words ----------------------------------------------------------------------------

// Common English, words of prompts, diff noise, and keywords and everyday names of Python,
// JavaScript/TypeScript, Go, C/C++, Java and SQL. Only words of 4+ characters can be key
// words, so shorter ones are left out.
const char* const kStopWords[] = {
    // English and prompt words
    "about", "above", "after", "again", "against", "also", "analyse", "analyze", "because", "been",
    "before", "being", "below", "between", "both", "cannot", "could", "does", "doing", "done",
    "down", "during", "each", "every", "first", "following", "from", "further", "give", "have",
    "having", "here", "into", "just", "last", "like", "make", "many", "more", "most", "much",
    "must", "need", "only", "onto", "other", "over", "please", "same", "shall", "should", "show",
    "some", "such", "suggest", "synthesise", "synthesize", "tell", "than", "that", "their", "them",
    "then", "there", "these", "they", "this", "those", "through", "under", "until", "upon", "very",
    "want", "were", "what", "when", "where", "which", "while", "will", "with", "within", "without",
    "would", "write", "your", "yours", "review", "fixes",
    // diff noise
    "diff", "index", "hunk",
    // Python
    "assert", "async", "await", "break", "class", "continue", "elif", "else", "except", "false",
    "finally", "global", "import", "lambda", "none", "nonlocal", "pass", "raise", "return", "true",
    "self", "yield", "print", "dict", "list", "tuple", "float", "bool", "bytes", "range",
    "isinstance", "super", "kwargs", "args", "object", "property", "staticmethod", "classmethod",
    "optional",
    // JavaScript / TypeScript
    "const", "function", "typeof", "instanceof", "undefined", "null", "export", "default",
    "extends", "implements", "interface", "type", "enum", "require", "module", "exports", "switch",
    "case", "throw", "catch", "void", "static", "public", "private", "protected", "readonly",
    "string", "number", "boolean", "console", "promise", "delete",
    // Go
    "func", "package", "chan", "defer", "goto", "struct", "select", "fallthrough", "error",
    "errors", "fmt",
    // C / C++ / Java
    "auto", "char", "double", "extern", "long", "register", "short", "signed", "sizeof", "unsigned",
    "volatile", "union", "typedef", "include", "define", "ifdef", "ifndef", "endif", "pragma",
    "template", "typename", "namespace", "using", "virtual", "override", "final", "abstract",
    "synchronized", "throws", "byte", "java", "println", "printf", "inline", "constexpr", "nullptr",
    "size_t", "std", "vector", "this",
    // SQL
    "from", "where", "insert", "update", "values", "order", "group", "having", "join", "inner",
    "outer", "left", "right", "table", "create", "drop", "alter", "primary", "foreign",
    "references", "distinct", "exists", "begin", "end",
    // URLs
    "http", "https"};

bool is_stop_word(std::string_view lowered) {
  static const std::unordered_set<std::string_view> kSet(std::begin(kStopWords),
                                                         std::end(kStopWords));
  return kSet.count(lowered) != 0;
}

// snake_case (an underscore between letters) or camelCase (a lowercase letter before an
// uppercase one): names from code, which keep their spelling.
bool looks_like_identifier(std::string_view w) {
  for (size_t i = 1; i + 1 < w.size(); ++i) {
    if (w[i] == '_' && w[i - 1] != '_' && w[i + 1] != '_') return true;
  }
  for (size_t i = 1; i < w.size(); ++i) {
    if (std::islower(static_cast<unsigned char>(w[i - 1])) &&
        std::isupper(static_cast<unsigned char>(w[i]))) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool is_identifier_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

// ---------------------------------------------------------------------------------------

std::vector<Line> read_lines(std::string_view text) {
  std::vector<Line> out;
  std::string_view file, old_file, function;
  uint32_t new_line = 0, old_left = 0, new_left = 0;
  bool loose = false;  // in a hunk whose header gave no lengths
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);

    Line line;
    line.text = raw;
    if (loose && (raw.starts_with("+++ ") || raw.starts_with("--- ") || raw.starts_with("@@") ||
                  is_git_header(raw))) {
      loose = false;
    }
    if (old_left > 0 || new_left > 0 || loose) {
      char c = raw.empty() ? ' ' : raw[0];  // some tools strip a context line's space
      if (c == '+' || c == '-' || c == ' ') {
        line.text = raw.empty() ? raw : raw.substr(1);
        line.file = file;
        if (c == '-') {
          line.kind = LineKind::removed;
          if (old_left > 0) --old_left;
        } else {
          line.kind = c == '+' ? LineKind::added : LineKind::context;
          if (std::string_view name = defined_name(line.text); !name.empty()) function = name;
          line.number = new_line++;
          if (new_left > 0) --new_left;
          if (c == ' ' && old_left > 0) --old_left;
        }
        line.function = function;
        out.push_back(line);
        continue;
      }
      if (c == '\\') {  // "\ No newline at end of file"
        out.push_back(line);
        continue;
      }
      old_left = new_left = 0;  // a hunk shorter than its header said: it ends here
      loose = false;
    }

    if (raw.starts_with("+++ ")) {
      std::string_view name = diff_file_name(raw);
      file = name == "/dev/null" ? old_file : name;  // a deleted file keeps its old name
      function = {};
      line.kind = LineKind::diff_header;
      line.file = file;
    } else if (raw.starts_with("--- ")) {
      old_file = diff_file_name(raw);
      line.kind = LineKind::diff_header;
    } else if (raw.starts_with("@@")) {
      line.kind = LineKind::diff_header;
      std::string_view rest;
      uint32_t old_len = 0, new_len = 0, start = 0;
      if (parse_hunk_header(raw, old_len, start, new_len, rest)) {
        new_line = start;
        old_left = old_len;
        new_left = new_len;
        function = defined_name(rest);  // git names the definition the hunk starts in
      } else {
        new_line = 0;
        loose = true;
        function = {};
      }
    } else if (is_git_header(raw)) {
      line.kind = LineKind::diff_header;
    } else if (raw.size() > 1 && raw[0] == '+') {
      line.kind = LineKind::added;  // a '+' line outside a hunk (a diff without headers)
      line.text = raw.substr(1);
    }
    out.push_back(line);
  }
  return out;
}

bool has_hunks(const std::vector<Line>& lines) {
  return std::any_of(lines.begin(), lines.end(), [](const Line& l) {
    return l.kind == LineKind::diff_header && l.text.starts_with("@@");
  });
}

std::string_view defined_name(std::string_view line) {
  std::string_view s = kit::trim_left(line);
  for (bool again = true; again;) {
    again = false;
    for (std::string_view modifier : {"export ", "default ", "async ", "pub ", "public ",
                                      "private ", "protected ", "static "}) {
      if (s.starts_with(modifier)) {
        s = kit::trim_left(s.substr(modifier.size()));
        again = true;
      }
    }
  }
  bool assigned = false;  // const f = (...) => / const f = function
  if (s.starts_with("def ") || s.starts_with("fn ") || s.starts_with("function ")) {
    s = kit::trim_left(s.substr(s.find(' ')));
  } else if (s.starts_with("func ")) {
    s = kit::trim_left(s.substr(5));
    if (!s.empty() && s[0] == '(') {  // a Go method: func (s *Server) Name(
      size_t close = s.find(')');
      if (close == npos) return {};
      s = kit::trim_left(s.substr(close + 1));
    }
  } else if (s.starts_with("const ") || s.starts_with("let ") || s.starts_with("var ")) {
    s = kit::trim_left(s.substr(s.find(' ')));
    assigned = true;
  } else {
    return {};
  }
  size_t n = 0;
  while (n < s.size() && (is_identifier_char(s[n]) || s[n] == '$'))
    ++n;
  if (n == 0 || std::isdigit(static_cast<unsigned char>(s[0]))) return {};
  std::string_view name = s.substr(0, n);
  std::string_view rest = kit::trim_left(s.substr(n));
  if (assigned) {
    if (rest.empty() || rest[0] != '=' || rest.starts_with("==")) return {};
    return contains(rest, "=>") || contains(rest, "function") ? name : std::string_view();
  }
  if (rest.empty() || (rest[0] != '(' && rest[0] != '<' && rest[0] != '[')) return {};
  return name;
}

CodeFacts code_facts(std::string_view text) {
  std::vector<Line> lines = read_lines(text);
  bool diff = has_hunks(lines);
  CodeFacts facts;
  auto add = [](std::vector<std::string>& list, std::string_view item) {
    if (!item.empty() && std::find(list.begin(), list.end(), item) == list.end()) {
      list.emplace_back(item);
    }
  };
  for (const Line& l : lines) {
    if (l.kind == LineKind::diff_header && l.text.starts_with("+++ ")) add(facts.files, l.file);
    if (l.kind == LineKind::added || (!diff && l.kind == LineKind::text)) {
      add(facts.functions, defined_name(l.text));
    }
  }
  return facts;
}

std::vector<std::string> key_words(std::string_view text, size_t max) {
  struct Seen {
    std::string shown;  // lowercase, or an identifier's first spelling
    size_t in_added = 0;
    size_t elsewhere = 0;
    size_t first = 0;
    bool identifier = false;
  };
  std::unordered_map<std::string, size_t> index;
  std::vector<Seen> seen;
  std::string word;
  bool added = false;
  auto flush = [&] {
    // Words with digits are mostly hashes, numbers and versions: noise, not topics. Dunder
    // names (__init__) are Python plumbing.
    bool has_digit = std::any_of(word.begin(), word.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
    if (count_chars(word) >= 4 && !has_digit && !word.starts_with("__")) {
      std::string key = kit::ascii_lower(word);
      if (!is_stop_word(key)) {
        auto [it, inserted] = index.try_emplace(key, seen.size());
        if (inserted) seen.push_back(Seen{key, 0, 0, seen.size(), false});
        Seen& s = seen[it->second];
        ++(added ? s.in_added : s.elsewhere);
        if (!s.identifier && looks_like_identifier(word)) {
          s.identifier = true;
          s.shown = word;
        }
      }
    }
    word.clear();
  };
  for (const Line& line : read_lines(text)) {
    if (line.kind == LineKind::diff_header || line.kind == LineKind::removed) continue;
    added = line.kind == LineKind::added;
    for (char c : line.text) {
      unsigned char u = static_cast<unsigned char>(c);
      if (std::isalnum(u) || c == '_' || u >= 0x80) {  // bytes >= 0x80: non-ASCII letters
        word += c;
      } else {
        flush();
      }
    }
    flush();
  }
  auto group = [](const Seen& s) { return (s.in_added > 0 ? 0 : 2) + (s.identifier ? 0 : 1); };
  auto count = [](const Seen& s) { return s.in_added > 0 ? s.in_added : s.elsewhere; };
  std::vector<const Seen*> order;
  for (const Seen& s : seen)
    order.push_back(&s);
  std::sort(order.begin(), order.end(), [&](const Seen* a, const Seen* b) {
    if (group(*a) != group(*b)) return group(*a) < group(*b);
    if (count(*a) != count(*b)) return count(*a) > count(*b);
    return a->first < b->first;
  });
  std::vector<std::string> words;
  for (size_t i = 0; i < order.size() && i < max; ++i)
    words.push_back(order[i]->shown);
  return words;
}

std::vector<std::string> section_headings(std::string_view text, size_t max) {
  std::vector<std::string> headings, labels;
  auto add = [](std::vector<std::string>& list, std::string_view item) {
    if (!item.empty() && std::find(list.begin(), list.end(), item) == list.end()) {
      list.emplace_back(item);
    }
  };
  bool first = true, fenced = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == npos) end = text.size();
    std::string_view line = kit::trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.starts_with("```") || line.starts_with("~~~")) {  // code is not structure
      fenced = !fenced;
      continue;
    }
    if (fenced || line.empty()) continue;
    bool was_first = first;
    first = false;
    if (line.starts_with("##")) {
      std::string_view h =
          kit::trim(line.substr(std::min(line.find_first_not_of('#'), line.size())));
      if (!h.empty() && h.back() == ':') h.remove_suffix(1);
      add(headings, kit::trim(h));
    } else if (!was_first && line.back() == ':' && count_chars(line) <= 40 &&
               std::isalpha(static_cast<unsigned char>(line[0]))) {
      add(labels, kit::trim(line.substr(0, line.size() - 1)));
    }
  }
  std::vector<std::string>& parts = headings.empty() ? labels : headings;
  if (parts.size() > max) parts.resize(max);
  return parts;
}

}  // namespace troupe::mock
