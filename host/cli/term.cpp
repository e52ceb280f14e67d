// term.cpp: terminal output helpers for the CLI.
#include "cli/term.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace troupe::cli {
namespace {

// Display width of UTF-8 text: counts code points (good enough for names and ids).
size_t width_of(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

}  // namespace

bool is_terminal(int fd) {
  return ::isatty(fd) == 1;
}

Style style_for(int fd) {
  Style s;
  const char* no_color = std::getenv("NO_COLOR");
  s.color = is_terminal(fd) && (no_color == nullptr || *no_color == '\0');
  return s;
}

std::string format_ms(double ms) {
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  } else if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%.2f s", ms / 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%d min %d s", static_cast<int>(ms / 60000),
                  static_cast<int>(ms / 1000) % 60);
  }
  return buf;
}

std::string format_time(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string pad(const std::string& s, size_t width) {
  size_t w = width_of(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string one_line(const std::string& s, size_t width) {
  std::string out;
  size_t w = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n' || c == '\r' || c == '\t') {
      if (!out.empty() && out.back() != ' ') {
        out += ' ';
        ++w;
      }
      continue;
    }
    if ((c & 0xC0) != 0x80) {
      if (w + 1 >= width && i + 1 < s.size()) {
        out += "…";
        return out;
      }
      ++w;
    }
    out += static_cast<char>(c);
  }
  return out;
}

void print_table(const std::vector<std::vector<std::string>>& rows, const Style& style) {
  if (rows.empty()) return;
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    // A row's last cell is printed unpadded, so it must not widen its column: a short row
    // (show's "error: ..." line under a step) would otherwise stretch the whole table.
    for (size_t i = 0; i + 1 < row.size(); ++i)
      widths[i] = std::max(widths[i], width_of(row[i]));
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows[r].size(); ++i) {
      bool last = i + 1 == rows[r].size();
      line += last ? rows[r][i] : pad(rows[r][i], widths[i] + 2);
    }
    std::printf("%s\n", r == 0 ? style.bold(line).c_str() : line.c_str());
  }
}

}  // namespace troupe::cli
