// mock_text.cpp: UTF-8 text by code points (see mock_text.h).
#include "mock_text.h"

namespace troupe::mock {

uint64_t count_chars(std::string_view utf8) {
  uint64_t n = 0;
  for (char c : utf8) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;  // not a continuation byte
  }
  return n;
}

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

std::vector<std::string> split_chunks(std::string_view text, size_t chunk_chars) {
  std::vector<std::string> chunks;
  if (chunk_chars == 0) chunk_chars = 1;
  size_t start = 0, chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {  // a code point starts here
      if (chars == chunk_chars) {
        chunks.emplace_back(text.substr(start, i - start));
        start = i;
        chars = 0;
      }
      ++chars;
    }
  }
  if (start < text.size()) chunks.emplace_back(text.substr(start));
  return chunks;
}

}  // namespace troupe::mock
