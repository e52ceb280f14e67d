// vendor_wire.cpp: the pieces the fake vendor's four wire formats share — vendor names, text in
// UTF-8-safe stream pieces, dates, ids, request paths, message content, raw tool arguments.
#include "support/vendor_wire.h"

#include <cstdio>

namespace troupe::test {

const char* vendor_name(Vendor vendor) {
  switch (vendor) {
    case Vendor::openai:
      return "openai";
    case Vendor::anthropic:
      return "anthropic";
    case Vendor::gemini:
      return "gemini";
    case Vendor::ollama:
      return "ollama";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& out, Vendor vendor) {
  return out << vendor_name(vendor);
}

bool vendor_from_name(std::string_view name, Vendor* vendor) {
  for (Vendor v : {Vendor::openai, Vendor::anthropic, Vendor::gemini, Vendor::ollama}) {
    if (name == vendor_name(v)) {
      *vendor = v;
      return true;
    }
  }
  return false;
}

const VendorWire& vendor_wire(Vendor vendor) {
  switch (vendor) {
    case Vendor::anthropic:
      return kAnthropicWire;
    case Vendor::gemini:
      return kGeminiWire;
    case Vendor::ollama:
      return kOllamaWire;
    case Vendor::openai:
      break;
  }
  return kOpenAiWire;
}

json VendorServer::normalized_usage(Vendor vendor, const FakeUsage& u) {
  const VendorWire& wire = vendor_wire(vendor);
  json out = {{"input_tokens", u.input},
              {"output_tokens", u.output},
              {"cached_input_tokens", wire.reports_cached ? u.cached : 0},
              {"reasoning_tokens", wire.reports_reasoning ? u.reasoning : 0},
              {"total_tokens", u.input + u.output}};
  // The fake Anthropic writes 2 of the uncached input tokens to its cache (usage_of in
  // vendor_anthropic.cpp), which the plugin reports as cache writes.
  if (vendor == Vendor::anthropic && u.input - u.cached >= 2) out["cache_write_tokens"] = 2;
  return out;
}

// -- Text in pieces ---------------------------------------------------------------------------

namespace {

// Length of the UTF-8 sequence that starts with byte c (1 for stray continuation bytes).
size_t utf8_sequence_length(unsigned char c) {
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}

size_t utf8_code_points(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += utf8_sequence_length(static_cast<unsigned char>(s[i])))
    ++n;
  return n;
}

// A JSON value that stands for raw text in a dumped document (see splice_raw).
std::string raw_placeholder(size_t i) {
  return "\x01raw-arguments-" + std::to_string(i) + "\x01";
}

}  // namespace

std::vector<std::string> split_code_points(const std::string& text, size_t per_piece) {
  std::vector<std::string> pieces;
  if (per_piece == 0) per_piece = 1;
  size_t start = 0;
  size_t i = 0;
  size_t count = 0;
  while (i < text.size()) {
    i += utf8_sequence_length(static_cast<unsigned char>(text[i]));
    if (i > text.size()) i = text.size();
    if (++count == per_piece) {
      pieces.push_back(text.substr(start, i - start));
      start = i;
      count = 0;
    }
  }
  if (start < text.size()) pieces.push_back(text.substr(start));
  return pieces;
}

std::vector<std::string> argument_pieces(const std::string& text) {
  return split_code_points(text, (utf8_code_points(text) + 2) / 3);
}

std::vector<std::string> stream_pieces(const std::string& text) {
  size_t n = utf8_code_points(text);
  size_t per_piece = (n + 3) / 4;
  if (per_piece > 16384) per_piece = 16384;
  return split_code_points(text, per_piece);
}

// -- Dates and ids ------------------------------------------------------------------------------

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string rfc3339(std::time_t t, const char* fraction) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf) + fraction + "Z";
}

std::time_t seconds_ahead(int seconds) {
  return std::time(nullptr) + seconds;
}

std::string hex_id(uint64_t n, size_t width) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%0*llx", static_cast<int>(width),
                static_cast<unsigned long long>(n));
  return buf;
}

// -- Requests -------------------------------------------------------------------------------------

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int value = 0;
      if (std::sscanf(std::string(s.substr(i + 1, 2)).c_str(), "%2x", &value) == 1) {
        out += static_cast<char>(value);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string query_param(const std::string& target, const std::string& name) {
  size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::string query = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string::npos) end = query.size();
    std::string pair = query.substr(pos, end - pos);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    pos = end + 1;
  }
  return "";
}

std::string content_text(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string text;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (part.is_string()) {
        text += part.get<std::string>();
      } else if (part.is_object() && part.contains("text") && part["text"].is_string()) {
        std::string type = part.value("type", "text");
        if (type == "text" || type == "input_text") {
          if (!text.empty()) text += "\n";
          text += part["text"].get<std::string>();
        }
      }
    }
  }
  return text;
}

const json* member(const json& obj, const char* camel, const char* snake) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(camel);
  if (it != obj.end()) return &*it;
  it = obj.find(snake);
  if (it != obj.end()) return &*it;
  return nullptr;
}

// -- Replies
// ----------------------------------------------------------------------------------------

ojson tool_arguments_value(const ToolOut& tool, size_t i) {
  return tool.raw.empty() ? tool.arguments : ojson(raw_placeholder(i));
}

std::string splice_raw(std::string body, const std::vector<ToolOut>& tools) {
  for (size_t i = 0; i < tools.size(); ++i) {
    if (tools[i].raw.empty()) continue;
    std::string quoted = ojson(raw_placeholder(i)).dump();
    size_t pos = body.find(quoted);
    if (pos != std::string::npos) body.replace(pos, quoted.size(), tools[i].raw);
  }
  return body;
}

std::string sse_event(const char* name, const ojson& data) {
  return std::string("event: ") + name + "\ndata: " + data.dump() + "\n\n";
}

}  // namespace troupe::test
