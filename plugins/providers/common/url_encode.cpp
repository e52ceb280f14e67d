// url_encode.cpp: RFC 3986 percent-encoding of a single URL component.
#include "common/url_encode.h"

namespace troupe::kit {

std::string percent_encode(std::string_view value) {
  static const char hex[] = "0123456789ABCDEF";
  if (value == "." || value == "..") return value.size() == 1 ? "%2E" : "%2E%2E";
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0x0f];
    }
  }
  return out;
}

}  // namespace troupe::kit
