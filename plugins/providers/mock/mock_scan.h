// mock_scan.h: reading code out of a prompt for the mock's default replies — diff lines,
// changed files and functions, key words, section headings (the risky lines: mock_risks.h).
//
// Plain string scanning, no regular expressions: a mock reply must cost microseconds, and the
// same text must always give the same answer. The heuristics are deliberately simple; they make
// the offline demo's replies refer to the actual input, they are not a security scanner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::mock {

// How a line of a prompt reads when the prompt holds a unified diff.
enum class LineKind {
  text,         // prose, or code outside a diff
  diff_header,  // diff, index, ---, +++, @@ and the like
  added,        // '+' in a hunk (or any '+' line outside one, not "+++")
  removed,      // '-' in a hunk
  context,      // ' ' in a hunk
};

struct Line {
  LineKind kind = LineKind::text;
  std::string_view text;      // without the diff marker for added/removed/context lines
  std::string_view file;      // the hunk's file (new name), "" outside hunks
  uint32_t number = 0;        // the line's number in the new file (added/context lines)
  std::string_view function;  // the definition the line is in, when the diff shows it
};

// Splits text into classified lines. Hunk lengths decide what is a hunk line (a removed
// "-- comment" is not a "--- file" header); a hunk header without lengths is read loosely.
// The views point into `text`.
std::vector<Line> read_lines(std::string_view text);

// A letter, digit or '_' (ASCII): a character of a name in code.
bool is_identifier_char(char c);

// True when the text holds a hunk ("@@ -a,b +c,d @@").
bool has_hunks(const std::vector<Line>& lines);

// The name a line defines ("def search_users(", "func (s *S) Run(", "function f(",
// "fn main(", "const f = (...) =>"), or "".
std::string_view defined_name(std::string_view line);

// The files a diff changes (the "+++" names; the "---" name for a deleted file) and the
// functions its added lines define, each in order of appearance, without repeats. Outside a
// diff, the functions are those any line defines.
struct CodeFacts {
  std::vector<std::string> files;
  std::vector<std::string> functions;
};
CodeFacts code_facts(std::string_view text);

// The key words of a text, at most `max`: words of 4+ characters that are neither common
// English nor language keywords (Python, JavaScript, Go, C, Java, SQL), with diff headers
// skipped. Identifiers from added diff lines come first (search_users, PAGE_SIZE), then other
// words from added lines, then identifiers, then the rest; within each group the most
// frequent first (ties: first occurrence). Words are lowercased unless they are identifiers
// (snake_case, camelCase), which keep their spelling.
std::vector<std::string> key_words(std::string_view text, size_t max);

// The parts a text is made of: its "##" headings, or, when it has none, its short "Label:"
// lines after the first line; trimmed, without '#' and ':', at most `max`.
std::vector<std::string> section_headings(std::string_view text, size_t max);

}  // namespace troupe::mock
