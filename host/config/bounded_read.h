// bounded_read.h: reading a file a user named, without trusting what it is.
//
// A path on the command line or in the environment may name a fifo (opening it waits for a
// writer), a device that never ends (/dev/zero) or something huge. read_bounded() looks at
// what the file is before reading, and never reads more than a limit.
#pragma once

#include <cstdint>
#include <string>

namespace troupe {

enum class FileKind {
  regular,  // read by path (maybe more than once): only a regular file; a fifo is refused
  stream,   // read once: a regular file, a pipe, a fifo (waits for its writer) or a device
};

// Reads at most `limit` bytes of `path` into *out. Returns false with *error ("<path>: what")
// when it cannot be opened, is a folder, is not a regular file (FileKind::regular) or holds
// more than `limit` bytes (`what` names the file in that message: "a configuration file").
bool read_bounded(const std::string& path, uint64_t limit, FileKind kind, const char* what,
                  std::string* out, std::string* error);

// "16 MiB", "512 KiB", "100 bytes".
std::string describe_size(uint64_t bytes);

}  // namespace troupe
