// cli_fixture.h: the base of end-to-end tests that drive the troupe binary in a scratch folder —
// the folder (kept when the test failed), the process options every call shares, and the
// calls themselves, plain or with --json.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/process.h"
#include "support/test_dir.h"
#include "support/test_paths.h"

namespace troupe::test {

class CliFixture : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("e2e"); }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
  }

  // Writes a file of the scratch folder (a workflow, troupe.yaml).
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
  }
  ProcessOptions options(std::vector<std::string> args) const {
    args.insert(args.begin(), troupe_binary());
    ProcessOptions o;
    o.args = std::move(args);
    o.cwd = dir_.string();
    o.unset_env = unset_env_;
    o.env = env_;
    o.timeout = std::chrono::milliseconds(120'000);
    return o;
  }
  ProcessResult troupe(std::vector<std::string> args) const {
    return Process(options(std::move(args))).wait();
  }
  // `troupe --json ARGS`, parsed; a discarded value (and a failed expectation) when it is not
  // JSON.
  nlohmann::json troupe_json(std::vector<std::string> args) const {
    args.insert(args.begin(), "--json");
    ProcessResult r = troupe(std::move(args));
    nlohmann::json out = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(out.is_discarded()) << r.describe();
    return out;
  }

  std::filesystem::path dir_;
  std::map<std::string, std::string> env_;                                   // set for every call
  std::vector<std::string> unset_env_ = {"TROUPE_PLUGIN_PATH", "NO_COLOR"};  // removed
};

}  // namespace troupe::test
