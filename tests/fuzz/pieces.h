// pieces.h: cutting a fuzz input into network-sized pieces, the way a socket may deliver it.
//
// The cut points come from a seed byte of the input, so libFuzzer explores them too: the
// parsers must give the same result whatever the cuts (a read may end anywhere, inside a CRLF
// or a UTF-8 code point).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace troupe::fuzz {

// Pieces of 1 to 64 bytes, from a small linear congruential generator seeded by seed.
inline std::vector<std::string_view> cut_into_pieces(std::string_view bytes, uint8_t seed) {
  std::vector<std::string_view> pieces;
  uint32_t state = 0x9E3779B9u ^ seed;
  while (!bytes.empty()) {
    state = state * 1664525u + 1013904223u;
    size_t n = 1 + (state >> 24) % 64;
    if (n > bytes.size()) n = bytes.size();
    pieces.push_back(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
  return pieces;
}

}  // namespace troupe::fuzz
