// mock_text.h: counting and cutting UTF-8 text by code points, never inside one — for usage
// counts, quotes in replies and stream chunks. (ASCII helpers such as lower() and trim() are
// the provider kit's, common/text.h.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::mock {

// The number of UTF-8 code points (bytes that are not continuation bytes).
uint64_t count_chars(std::string_view utf8);

// Cuts text to at most max code points, adding "..." when it had to cut.
std::string cut(std::string_view text, size_t max);

// Splits text into pieces of at most chunk_chars code points (0 counts as 1).
std::vector<std::string> split_chunks(std::string_view text, size_t chunk_chars);

}  // namespace troupe::mock
