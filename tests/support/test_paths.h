// test_paths.h: where a test finds the build tree (plugins, fixtures, the troupe binary) and the
// source tree (scripts, schemas, specs).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace troupe::test {

// The build tree: TROUPE_BUILD_DIR (set by CTest), else the parent of the test binary's
// folder (tests are built into <build>/tests).
inline std::filesystem::path build_dir() {
  if (const char* env = std::getenv("TROUPE_BUILD_DIR"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().parent_path();
}

// The source tree: TROUPE_SOURCE_DIR (set by CTest), else the tree this header was compiled
// from (tests/support/test_paths.h, two folders down).
inline std::filesystem::path source_dir() {
  if (const char* env = std::getenv("TROUPE_SOURCE_DIR"); env != nullptr && *env != '\0')
    return env;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// <build>/troupe, the CLI.
inline std::string troupe_binary() {
  return (build_dir() / "troupe").string();
}

// <build>/plugins, where the shipped plugins are built.
inline std::string plugins_dir() {
  return (build_dir() / "plugins").string();
}

// <build>/tests/fixtures, where the contract-breaking fixture plugins are built.
inline std::string fixtures_dir() {
  return (build_dir() / "tests" / "fixtures").string();
}

inline std::string fixture_path(const std::string& name) {
  return fixtures_dir() + "/" + name + ".so";
}

// Debian's libfaketime (package libfaketime), found under /usr/lib/<multiarch>/faketime: tests
// move a child's clock with it (LD_PRELOAD). "" when it is not installed.
inline std::string find_libfaketime() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib", ec)) {
    std::filesystem::path lib = entry.path() / "faketime" / "libfaketimeMT.so.1";
    if (std::filesystem::exists(lib, ec)) return lib.string();
  }
  return "";
}

}  // namespace troupe::test
