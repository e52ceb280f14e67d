// term.h: terminal output helpers for the CLI — colours when on a terminal, durations, tables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe::cli {

struct Style {
  bool color = false;
  std::string dim(const std::string& s) const { return wrap("2", s); }
  std::string bold(const std::string& s) const { return wrap("1", s); }
  std::string green(const std::string& s) const { return wrap("32", s); }
  std::string red(const std::string& s) const { return wrap("31", s); }
  std::string yellow(const std::string& s) const { return wrap("33", s); }
  std::string cyan(const std::string& s) const { return wrap("36", s); }
  std::string wrap(const char* code, const std::string& s) const {
    return color ? "\033[" + std::string(code) + "m" + s + "\033[0m" : s;
  }
};

bool is_terminal(int fd);
// Colours on when fd is a terminal and NO_COLOR is not set.
Style style_for(int fd);

std::string format_ms(double ms);          // "212 ms", "1.52 s", "2 min 3 s"
std::string format_time(int64_t unix_ms);  // local "2026-11-22 03:12:45"
std::string pad(const std::string& s, size_t width);
// One line of text, shortened with "…" to at most width display columns.
std::string one_line(const std::string& s, size_t width);

// Prints rows as aligned columns (first row is the header).
void print_table(const std::vector<std::vector<std::string>>& rows, const Style& style);

}  // namespace troupe::cli
