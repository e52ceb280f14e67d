// sse_parser.cpp: the incremental Server-Sent Events parser (see sse_parser.h).
#include "common/sse_parser.h"

namespace troupe::kit {
namespace {

constexpr char kBom[3] = {'\xEF', '\xBB', '\xBF'};

}  // namespace

bool SseParser::feed(std::string_view bytes, const Handler& on_event) {
  if (failed_) return false;
  // A leading BOM may itself arrive split; bytes that turn out not to be one are data.
  while (!bom_done_ && !bytes.empty()) {
    if (bytes.front() == kBom[bom_bytes_seen_]) {
      bytes.remove_prefix(1);
      if (++bom_bytes_seen_ == sizeof kBom) bom_done_ = true;
      continue;
    }
    bom_done_ = true;
    if (bom_bytes_seen_ > 0 && !feed(std::string_view(kBom, bom_bytes_seen_), on_event))
      return false;
  }

  size_t pos = 0;
  while (pos < bytes.size()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes[pos] == '\n') {  // the LF of a CRLF whose CR ended the line already
        ++pos;
        continue;
      }
    }
    size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      break;
    }
    line_.append(bytes.substr(pos, end - pos));
    after_cr_ = bytes[end] == '\r';
    pos = end + 1;
    process_line(line_, on_event);
    line_.clear();
  }
  if (max_buffer_bytes_ != 0 && line_.size() + data_.size() > max_buffer_bytes_) failed_ = true;
  return !failed_;
}

bool SseParser::has_pending() const {
  return !line_.empty() || has_fields_;
}

void SseParser::process_line(std::string_view line, const Handler& on_event) {
  if (line.empty()) {
    dispatch(on_event);
    return;
  }
  if (line.front() == ':') return;  // a comment (servers send them as keep-alives)
  std::string_view field = line;
  std::string_view value;
  if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  has_fields_ = true;
  if (field == "event") {
    event_type_.assign(value);
  } else if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (field == "retry") {
    uint64_t ms = 0;
    bool digits = !value.empty() && value.size() <= 18;  // 18 digits cannot overflow
    for (char c : value) {
      if (c < '0' || c > '9') {
        digits = false;
        break;
      }
      ms = ms * 10 + static_cast<uint64_t>(c - '0');
    }
    if (digits) retry_ms_ = ms;
  }
  // Other field names are ignored, as the standard says.
}

void SseParser::dispatch(const Handler& on_event) {
  has_fields_ = false;
  if (data_.empty()) {  // no data field: nothing to dispatch, the event type is dropped too
    event_type_.clear();
    return;
  }
  SseEvent event;
  data_.pop_back();  // the "\n" after the last data line
  event.data = std::move(data_);
  event.event = event_type_.empty() ? std::string("message") : std::move(event_type_);
  event.id = last_id_;
  data_.clear();
  event_type_.clear();
  if (on_event) on_event(event);
}

}  // namespace troupe::kit
