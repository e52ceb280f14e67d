// mock_risks.cpp: finding risky lines in a prompt's code (see mock_risks.h).
#include "mock_risks.h"

#include <algorithm>
#include <iterator>
#include <unordered_set>

#include "common/text.h"
#include "mock_scan.h"
#include "mock_text.h"

namespace troupe::mock {

namespace {

constexpr size_t npos = std::string_view::npos;

using kit::contains;

bool is_quote(char c) {
  return c == '"' || c == '\'' || c == '`';
}

// The word w in s at or after `from`, between non-identifier characters; npos if absent.
size_t find_word(std::string_view s, std::string_view w, size_t from = 0) {
  for (size_t at = s.find(w, from); at != npos; at = s.find(w, at + 1)) {
    size_t end = at + w.size();
    if ((at == 0 || !is_identifier_char(s[at - 1])) &&
        (end >= s.size() || !is_identifier_char(s[end])))
      return at;
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
    if (alone && at > 0 && (is_identifier_char(s[at - 1]) || s[at - 1] == '.')) continue;
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
  if (contains(l, ".format(") || contains(l, "sprintf(") || contains(l, "${")) return true;
  size_t last_brace = l.rfind('{');  // one search, not one per quote
  for (size_t q = 0; q < l.size(); ++q) {
    if (!is_quote(l[q])) continue;
    // A Python f-string opening here: f"...{", rf"...", fr"..."
    size_t p = q;
    while (p > 0 && is_identifier_char(l[p - 1]))
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
      if (gap + (k - j - 1) >= 1 && k < l.size() && (is_identifier_char(l[k]) || l[k] == '('))
        return true;
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
  if (contains(compact, "shell=true") || contains(compact, "shell:true")) return true;
  for (std::string_view callee : {"os.system(", "os.popen(", "subprocess.getoutput(",
                                  "subprocess.getstatusoutput(", "commands.getoutput("}) {
    if (call_with_argument(l, callee, false)) return true;
  }
  if (call_with_argument(l, "exec(", true) || call_with_argument(l, "eval(", true) ||
      call_with_argument(l, "execsync(", true)) {
    return true;
  }
  return (contains(l, "child_process") || contains(l, "runtime")) &&
         call_with_argument(l, ".exec(", false);
}

bool unsafe_deserialization(std::string_view l, std::string_view) {
  for (std::string_view callee :
       {"pickle.loads(", "pickle.load(", "marshal.loads(", "marshal.load(", "dill.loads(",
        "dill.load(", "jsonpickle.decode(", "yaml.unsafe_load(", "shelve.open("}) {
    if (call_with_argument(l, callee, false)) return true;
  }
  if ((call_with_argument(l, "yaml.load(", false) ||
       call_with_argument(l, "yaml.load_all(", false)) &&
      !contains(l, "safeloader") && !contains(l, "safe_load")) {
    return true;
  }
  return contains(l, "objectinputstream(");
}

bool tls_disabled(std::string_view, std::string_view compact) {
  for (std::string_view n :
       {"verify=false", "verify_ssl=false", "verify_ssl:false", "ssl_verify:false",
        "sslverify=false", "insecureskipverify:true", "rejectunauthorized:false",
        "check_hostname=false", "cert_none", "_create_unverified_context(", "ssl_verifypeer,0",
        "ssl_verifypeer,false", "ssl_verifyhost,0", "node_tls_reject_unauthorized=", "--insecure",
        "--no-check-certificate"}) {
    if (contains(compact, n)) return true;
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
    if (!is_identifier_char(l[i]) && l[i] != '-') {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < l.size() && (is_identifier_char(l[i]) || l[i] == '-'))
      ++i;
    std::string_view name = l.substr(start, i - start);
    if (std::none_of(std::begin(kNames), std::end(kNames),
                     [&](std::string_view n) { return name.ends_with(n); })) {
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

}  // namespace

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
    std::string_view code = kit::trim(l.text);
    if (code.empty()) continue;
    lowered = kit::ascii_lower(code);
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

}  // namespace troupe::mock
