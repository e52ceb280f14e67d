// mock_scan.cpp: reading code out of a prompt — diff lines, key words, files, functions, risks.
#include "mock_scan.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <unordered_map>
#include <unordered_set>

namespace troupe::mock {

namespace {

constexpr size_t npos = std::string_view::npos;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

bool is_ident(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

bool is_quote(char c) {
  return c == '"' || c == '\'' || c == '`';
}

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  return s;
}

std::string_view trim(std::string_view s) {
  s = trim_left(s);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool has(std::string_view s, std::string_view needle) {
  return s.find(needle) != npos;
}

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

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

// Parses "@@ -a[,b] +c[,d] @@ rest"; false when the line is not one. A missing length is 1.
bool parse_hunk_header(std::string_view line, uint32_t& old_len, uint32_t& new_start,
                       uint32_t& new_len, std::string_view& rest) {
  if (!starts_with(line, "@@ -")) return false;
  size_t i = 4;
  uint32_t ignored = 0;
  if (!read_number(line, i, ignored)) return false;
  old_len = 1;
  if (i < line.size() && line[i] == ',') {
    ++i;
    if (!read_number(line, i, old_len)) return false;
  }
  if (line.substr(i, 2) != " +") return false;
  i += 2;
  if (!read_number(line, i, new_start)) return false;
  new_len = 1;
  if (i < line.size() && line[i] == ',') {
    ++i;
    if (!read_number(line, i, new_len)) return false;
  }
  if (line.substr(i, 3) != " @@") return false;
  rest = trim(line.substr(i + 3));
  return true;
}

// A file name from a "--- a/x" or "+++ b/x" line: without the a/ b/ prefix and the timestamp
// some tools append after a tab.
std::string_view diff_file_name(std::string_view line) {
  std::string_view name = line.substr(4);
  if (size_t tab = name.find('\t'); tab != npos) name = name.substr(0, tab);
  name = trim(name);
  if (starts_with(name, "a/") || starts_with(name, "b/")) name.remove_prefix(2);
  return name;
}

bool is_git_header(std::string_view line) {
  for (std::string_view p :
       {"diff ", "index ", "new file mode", "deleted file mode", "old mode", "new mode",
        "similarity index", "rename from", "rename to", "Binary files "}) {
    if (starts_with(line, p)) return true;
  }
  return false;
}

// --- risky patterns ---------------------------------------------------------------------

// The word w in s at or after `from`, between non-identifier characters; npos if absent.
size_t find_word(std::string_view s, std::string_view w, size_t from = 0) {
  for (size_t at = s.find(w, from); at != npos; at = s.find(w, at + 1)) {
    size_t end = at + w.size();
    if ((at == 0 || !is_ident(s[at - 1])) && (end >= s.size() || !is_ident(s[end]))) return at;
  }
  return npos;
}

bool word_then_word(std::string_view s, std::string_view a, std::string_view b) {
  size_t at = find_word(s, a);
  return at != npos && find_word(s, b, at + a.size()) != npos;
}

// A call of `callee` (which ends with '(') with an argument: "exec(code)", not the "exec()" of
// prose naming the function. With `alone`, the name must not be part of a longer name or a
// method ("literal_eval(", "regex.exec(").
bool call_with_argument(std::string_view s, std::string_view callee, bool alone) {
  for (size_t at = s.find(callee); at != npos; at = s.find(callee, at + 1)) {
    if (alone && at > 0 && (is_ident(s[at - 1]) || s[at - 1] == '.')) continue;
    size_t j = at + callee.size();
    while (j < s.size() && s[j] == ' ')
      ++j;
    if (j < s.size() && s[j] != ')') return true;
  }
  return false;
}

bool sql_statement(std::string_view l) {
  return word_then_word(l, "select", "from") || word_then_word(l, "insert", "into") ||
         word_then_word(l, "update", "set") || word_then_word(l, "delete", "from");
}

// A string built at run time: f"..{x}", .format(, "%s" % x, "..." + x, x + "...", ".." .. x,
// `${x}`, sprintf(.
bool interpolated(std::string_view l) {
  if (has(l, ".format(") || has(l, "sprintf(") || has(l, "${")) return true;
  size_t last_brace = l.rfind('{');  // one search, not one per quote
  for (size_t q = 0; q < l.size(); ++q) {
    if (!is_quote(l[q])) continue;
    // A Python f-string opening here: f"...{", rf"...", fr"..."
    size_t p = q;
    while (p > 0 && is_ident(l[p - 1]))
      --p;
    std::string_view prefix = l.substr(p, q - p);
    if ((prefix == "f" || prefix == "rf" || prefix == "fr") && last_brace != npos &&
        last_brace > q) {
      return true;
    }
    // "..." + x, "..." .. x, "..." % x
    size_t j = q + 1;
    while (j < l.size() && l[j] == ' ')
      ++j;
    size_t gap = j - q - 1;
    if (j < l.size() && l[j] == '+' && (j + 1 >= l.size() || l[j + 1] != '+')) return true;
    if (l.substr(j, 3) == ".. ") return true;
    if (j < l.size() && l[j] == '%') {
      size_t k = j + 1;
      while (k < l.size() && l[k] == ' ')
        ++k;
      // a space on one side at least: "'%{term}%'" is a LIKE pattern, not formatting
      if (gap + (k - j - 1) >= 1 && k < l.size() && (is_ident(l[k]) || l[k] == '(')) return true;
    }
    // x + "...", x .. "..."
    size_t b = q;
    while (b > 0 && l[b - 1] == ' ')
      --b;
    if (b > 0 && l[b - 1] == '+' && (b < 2 || l[b - 2] != '+')) return true;
    if (b > 1 && l[b - 1] == '.' && l[b - 2] == '.') return true;
  }
  return false;
}

bool sql_injection(std::string_view l, std::string_view) {
  return sql_statement(l) && interpolated(l);
}

bool command_execution(std::string_view l, std::string_view compact) {
  if (has(compact, "shell=true") || has(compact, "shell:true")) return true;
  for (std::string_view callee : {"os.system(", "os.popen(", "subprocess.getoutput(",
                                  "subprocess.getstatusoutput(", "commands.getoutput("}) {
    if (call_with_argument(l, callee, false)) return true;
  }
  if (call_with_argument(l, "exec(", true) || call_with_argument(l, "eval(", true) ||
      call_with_argument(l, "execsync(", true)) {
    return true;
  }
  return (has(l, "child_process") || has(l, "runtime")) && call_with_argument(l, ".exec(", false);
}

bool unsafe_deserialization(std::string_view l, std::string_view) {
  for (std::string_view callee :
       {"pickle.loads(", "pickle.load(", "marshal.loads(", "marshal.load(", "dill.loads(",
        "dill.load(", "jsonpickle.decode(", "yaml.unsafe_load(", "shelve.open("}) {
    if (call_with_argument(l, callee, false)) return true;
  }
  if ((call_with_argument(l, "yaml.load(", false) ||
       call_with_argument(l, "yaml.load_all(", false)) &&
      !has(l, "safeloader") && !has(l, "safe_load")) {
    return true;
  }
  return has(l, "objectinputstream(");
}

bool tls_disabled(std::string_view, std::string_view compact) {
  for (std::string_view n :
       {"verify=false", "verify_ssl=false", "verify_ssl:false", "ssl_verify:false",
        "sslverify=false", "insecureskipverify:true", "rejectunauthorized:false",
        "check_hostname=false", "cert_none", "_create_unverified_context(", "ssl_verifypeer,0",
        "ssl_verifypeer,false", "ssl_verifyhost,0", "node_tls_reject_unauthorized=", "--insecure",
        "--no-check-certificate"}) {
    if (has(compact, n)) return true;
  }
  return false;
}

// name = "value" / name: "value" / "name": "value" / name := "value", where the name ends
// like a credential's and the value is not empty or a placeholder ("${X}", "<token>").
bool hard_coded_credential(std::string_view l, std::string_view) {
  static const std::string_view kNames[] = {"password",  "passwd",     "secret",    "secret_key",
                                            "secretkey", "api_key",    "apikey",    "api-key",
                                            "token",     "access_key", "accesskey", "private_key"};
  size_t i = 0;
  while (i < l.size()) {
    if (!is_ident(l[i]) && l[i] != '-') {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < l.size() && (is_ident(l[i]) || l[i] == '-'))
      ++i;
    std::string_view name = l.substr(start, i - start);
    if (std::none_of(std::begin(kNames), std::end(kNames),
                     [&](std::string_view n) { return ends_with(name, n); })) {
      continue;
    }
    size_t j = i;
    if (j < l.size() && is_quote(l[j])) ++j;  // a quoted key: "password": "..."
    while (j < l.size() && l[j] == ' ')
      ++j;
    if (l.substr(j, 2) == ":=") {
      j += 2;
    } else if (j < l.size() && (l[j] == ':' || (l[j] == '=' && l.substr(j, 2) != "=="))) {
      ++j;
    } else {
      continue;
    }
    while (j < l.size() && l[j] == ' ')
      ++j;
    if (j >= l.size() || !is_quote(l[j])) continue;
    size_t close = l.find(l[j], j + 1);
    if (close == npos) continue;
    std::string_view value = l.substr(j + 1, close - j - 1);
    if (value.empty() || value.front() == '$' || value.front() == '<' || value.front() == '{' ||
        value.front() == '%' || value.find_first_not_of("*x.") == npos) {
      continue;
    }
    return true;
  }
  return false;
}

struct Check {
  const char* kind;
  const char* advice;
  bool high;
  bool (*matches)(std::string_view lowered, std::string_view compact);
};

// In order of severity: a line gets the first check it matches.
const Check kChecks[] = {
    {"SQL injection",
     "the query is built by string interpolation; pass the values as bound parameters", true,
     sql_injection},
    {"command injection",
     "a shell or eval runs on run-time input; call the program with an argument list, without "
     "a shell, and never exec or eval input",
     true, command_execution},
    {"unsafe deserialization",
     "loading untrusted data this way can run code; use a data-only format (JSON) or "
     "yaml.safe_load",
     false, unsafe_deserialization},
    {"TLS verification disabled",
     "certificates are not checked, so the traffic can be intercepted; keep verification on", false,
     tls_disabled},
    {"hard-coded credential",
     "a secret in the source leaks with it; read it from the environment or a secret store, and "
     "rotate it",
     false, hard_coded_credential},
};

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

std::string cut(std::string_view text, size_t max) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (chars == max) return std::string(text.substr(0, i)) + "...";
      ++chars;
    }
  }
  return std::string(text);
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
    if (loose && (starts_with(raw, "+++ ") || starts_with(raw, "--- ") || starts_with(raw, "@@") ||
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

    if (starts_with(raw, "+++ ")) {
      std::string_view name = diff_file_name(raw);
      file = name == "/dev/null" ? old_file : name;  // a deleted file keeps its old name
      function = {};
      line.kind = LineKind::diff_header;
      line.file = file;
    } else if (starts_with(raw, "--- ")) {
      old_file = diff_file_name(raw);
      line.kind = LineKind::diff_header;
    } else if (starts_with(raw, "@@")) {
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
    return l.kind == LineKind::diff_header && starts_with(l.text, "@@");
  });
}

std::string_view defined_name(std::string_view line) {
  std::string_view s = trim_left(line);
  for (bool again = true; again;) {
    again = false;
    for (std::string_view modifier : {"export ", "default ", "async ", "pub ", "public ",
                                      "private ", "protected ", "static "}) {
      if (starts_with(s, modifier)) {
        s = trim_left(s.substr(modifier.size()));
        again = true;
      }
    }
  }
  bool assigned = false;  // const f = (...) => / const f = function
  if (starts_with(s, "def ") || starts_with(s, "fn ") || starts_with(s, "function ")) {
    s = trim_left(s.substr(s.find(' ')));
  } else if (starts_with(s, "func ")) {
    s = trim_left(s.substr(5));
    if (!s.empty() && s[0] == '(') {  // a Go method: func (s *Server) Name(
      size_t close = s.find(')');
      if (close == npos) return {};
      s = trim_left(s.substr(close + 1));
    }
  } else if (starts_with(s, "const ") || starts_with(s, "let ") || starts_with(s, "var ")) {
    s = trim_left(s.substr(s.find(' ')));
    assigned = true;
  } else {
    return {};
  }
  size_t n = 0;
  while (n < s.size() && (is_ident(s[n]) || s[n] == '$'))
    ++n;
  if (n == 0 || std::isdigit(static_cast<unsigned char>(s[0]))) return {};
  std::string_view name = s.substr(0, n);
  std::string_view rest = trim_left(s.substr(n));
  if (assigned) {
    if (rest.empty() || rest[0] != '=' || starts_with(rest, "==")) return {};
    return has(rest, "=>") || has(rest, "function") ? name : std::string_view();
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
    if (l.kind == LineKind::diff_header && starts_with(l.text, "+++ ")) add(facts.files, l.file);
    if (l.kind == LineKind::added || (!diff && l.kind == LineKind::text)) {
      add(facts.functions, defined_name(l.text));
    }
  }
  return facts;
}

std::string Finding::where() const {
  std::string w = file;
  // Appends rather than `"x" + string`, which trips GCC 12's false -Wrestrict at -O3.
  if (!w.empty() && line > 0) w.append(":").append(std::to_string(line));
  if (!function.empty()) w.append(w.empty() ? "in " : " in ").append(function);
  return w;
}

std::vector<Finding> find_risks(std::string_view text) {
  std::vector<Line> lines = read_lines(text);
  bool diff = has_hunks(lines);
  std::vector<Finding> found;
  std::unordered_set<std::string> reported;  // kind + code: a line repeated is one finding
  std::string lowered, compact;
  for (const Line& l : lines) {
    // In a diff, what the change adds; otherwise everything but diff headers.
    if (diff ? l.kind != LineKind::added : l.kind == LineKind::diff_header) continue;
    std::string_view code = trim(l.text);
    if (code.empty()) continue;
    lowered = lower(code);
    compact.clear();
    for (char c : lowered) {
      if (c != ' ' && c != '\t') compact += c;
    }
    for (const Check& check : kChecks) {
      if (!check.matches(lowered, compact)) continue;
      std::string quoted = cut(code, 100);
      if (reported.insert(std::string(check.kind) + '\n' + quoted).second) {
        found.push_back(Finding{check.kind, check.advice, check.high, std::move(quoted),
                                std::string(l.file), l.number, std::string(l.function)});
      }
      break;  // one finding per line: the most severe
    }
  }
  return found;
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
    if (code_points(word) >= 4 && !has_digit && !starts_with(word, "__")) {
      std::string key = lower(word);
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
    std::string_view line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (starts_with(line, "```") || starts_with(line, "~~~")) {  // code is not structure
      fenced = !fenced;
      continue;
    }
    if (fenced || line.empty()) continue;
    bool was_first = first;
    first = false;
    if (starts_with(line, "##")) {
      std::string_view h = trim(line.substr(std::min(line.find_first_not_of('#'), line.size())));
      if (!h.empty() && h.back() == ':') h.remove_suffix(1);
      add(headings, trim(h));
    } else if (!was_first && line.back() == ':' && code_points(line) <= 40 &&
               std::isalpha(static_cast<unsigned char>(line[0]))) {
      add(labels, trim(line.substr(0, line.size() - 1)));
    }
  }
  std::vector<std::string>& parts = headings.empty() ? labels : headings;
  if (parts.size() > max) parts.resize(max);
  return parts;
}

}  // namespace troupe::mock
