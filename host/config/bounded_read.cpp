// bounded_read.cpp: open without blocking, fstat, then read up to the limit (see bounded_read.h).
#include "config/bounded_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace troupe {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

std::string describe_size(uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

bool read_bounded(const std::string& path, uint64_t limit, FileKind kind, const char* what,
                  std::string* out, std::string* error) {
  // A regular file is opened without O_NONBLOCK's effect mattering; a fifo opened with it
  // does not wait for a writer, so it can be looked at and refused.
  int flags = O_RDONLY | O_CLOEXEC | (kind == FileKind::regular ? O_NONBLOCK : 0);
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    *error = path + ": cannot open " + what + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    *error = path + ": cannot read " + what + ": " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    *error = path + ": is a folder, not " + what;
    ::close(fd);
    return false;
  }
  if (kind == FileKind::regular && !S_ISREG(st.st_mode)) {
    *error = path + ": is " + kind_of(st.st_mode) + ", not " + what + " (a regular file)";
    ::close(fd);
    return false;
  }
  auto too_large = [&] {
    *error =
        path + ": " + what + " may hold at most " + describe_size(limit) + "; this one holds more";
    ::close(fd);
    return false;
  };
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > limit) return too_large();
  if (kind == FileKind::regular) ::fcntl(fd, F_SETFL, O_RDONLY);  // plain blocking reads
  out->clear();
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = path + ": cannot read " + what + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    if (out->size() + static_cast<uint64_t>(n) > limit) return too_large();  // endless files too
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

}  // namespace troupe
