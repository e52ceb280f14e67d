// test_dir.h: a fresh scratch folder for the running test, named after its suite and test.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace troupe::test {

// <tmp>/troupe-<prefix>-<pid>-<test name>, emptied and created. The caller removes it.
inline std::filesystem::path fresh_test_dir(const std::string& prefix) {
  namespace fs = std::filesystem;
  fs::path dir =
      fs::temp_directory_path() / ("troupe-" + prefix + "-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace troupe::test
