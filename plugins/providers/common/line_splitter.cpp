// line_splitter.cpp: the incremental NDJSON line splitter (see line_splitter.h).
#include "common/line_splitter.h"

namespace troupe::kit {

bool LineSplitter::feed(std::string_view bytes, const Handler& on_line) {
  if (failed_) return false;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t end = bytes.find('\n', pos);
    if (end == std::string_view::npos) {
      partial_.append(bytes.substr(pos));
      break;
    }
    std::string_view piece = bytes.substr(pos, end - pos);
    pos = end + 1;
    if (partial_.empty()) {  // the common case: the whole line is in this piece, no copy
      if (!piece.empty() && piece.back() == '\r') piece.remove_suffix(1);
      if (max_line_bytes_ != 0 && piece.size() > max_line_bytes_) {
        failed_ = true;
        return false;
      }
      if (on_line) on_line(piece);
      continue;
    }
    partial_.append(piece);
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    if (max_line_bytes_ != 0 && partial_.size() > max_line_bytes_) {
      failed_ = true;
      return false;
    }
    std::string line;
    line.swap(partial_);
    if (on_line) on_line(line);
  }
  // A trailing CR may be the first half of a CRLF: it stays in partial_ until the LF comes,
  // and does not count against the bound.
  size_t cr = !partial_.empty() && partial_.back() == '\r' ? 1 : 0;
  if (max_line_bytes_ != 0 && partial_.size() > max_line_bytes_ + cr) failed_ = true;
  return !failed_;
}

}  // namespace troupe::kit
