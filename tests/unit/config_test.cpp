// config_test.cpp: the config loader (host/config/config.cpp) on files with the inputs its
// fuzzer (tests/fuzz/fuzz_config.cpp) found wrong: each must be a ConfigError naming the file
// and the line, never another exception.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "support/test_dir.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("config"); }
  void TearDown() override { fs::remove_all(dir_); }

  // load_config on a troupe.yaml holding text; the ConfigError's message ("" when none).
  std::string error_loading(const std::string& text) {
    path_ = (dir_ / "troupe.yaml").string();
    std::ofstream(path_, std::ios::binary) << text;
    try {
      load_config(path_);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(ConfigTest, SettingThatIsNotUtf8IsAConfigErrorAtItsLine) {
  // Found by fuzz_config (corpus/config/crash-settings-not-utf8): the raw bytes reached the
  // settings' JSON text, and nlohmann's dump threw a type_error instead of a ConfigError.
  std::string error = error_loading(
      "providers:\n  a: {plugin: mock, settings: {latency_ms: \xe0\xcf}}\nfallback_provider: a\n");
  EXPECT_EQ(error.rfind(path_ + ":2:", 0), 0u) << error;
  EXPECT_NE(error.find("not valid UTF-8"), std::string::npos) << error;
}

TEST_F(ConfigTest, SettingKeyThatIsNotUtf8IsAConfigErrorAtItsLine) {
  std::string error = error_loading(
      "providers:\n  a:\n    plugin: mock\n    settings: {\"k\xff\": 1}\nfallback_provider: a\n");
  EXPECT_EQ(error.rfind(path_ + ":4:", 0), 0u) << error;
  EXPECT_NE(error.find("not valid UTF-8"), std::string::npos) << error;
}

TEST_F(ConfigTest, JsonNumberTooLargeIsAConfigError) {
  // Found by fuzz_config (corpus/config/crash-json-number-overflow): nlohmann reports 1e99999
  // as out_of_range, which load_config let through instead of a ConfigError.
  path_ = (dir_ / "troupe.json").string();
  std::ofstream(path_) << R"({"limits": {"max_instructions": 5E55555555555555}})";
  try {
    load_config(path_);
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path_ + ":1:", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("beyond the range of a double"), std::string::npos)
        << e.what();
  }
}

TEST_F(ConfigTest, ValidUtf8SettingsLoad) {
  EXPECT_EQ(
      error_loading("providers:\n  a: {plugin: mock, settings: {name: \"caf\xc3\xa9 \\u00e9\"}}\n"
                    "fallback_provider: a\n"),
      "");
}

TEST_F(ConfigTest, RetryAndDeadLettersSetTheRuntimesDefaults) {
  path_ = (dir_ / "troupe.yaml").string();
  std::ofstream(path_) << "retry: {attempts: 5, initial: 0.5, non_retryable: [timeout]}\n"
                          "dead_letters: all\n";
  Config c = load_config(path_);
  EXPECT_EQ(c.runtime.retry.attempts, 5);
  EXPECT_EQ(c.runtime.retry.initial_ms, 500);
  EXPECT_EQ(c.runtime.retry.max_ms, 50'000) << "Temporal's default: 100 times the initial wait";
  EXPECT_EQ(c.runtime.retry.non_retryable, std::vector<std::string>{"timeout"});
  EXPECT_EQ(c.runtime.dead_letters, DeadLetters::all);
  EXPECT_EQ(default_config().runtime.retry.attempts, 3);
  EXPECT_EQ(default_config().runtime.dead_letters, DeadLetters::retryable);
}

TEST_F(ConfigTest, AWrongRetryOrDeadLettersSettingIsAConfigErrorNamingIt) {
  std::string error = error_loading("retry: {attempts: -1}\n");
  EXPECT_NE(error.find("retry.attempts"), std::string::npos) << error;
  error = error_loading("retry: {backof: 2}\n");
  EXPECT_NE(error.find("retry.backof: unknown setting"), std::string::npos) << error;
  error = error_loading("retry: {non_retryable: [rate_limted]}\n");
  EXPECT_NE(error.find("'rate_limted'"), std::string::npos) << error;
  error = error_loading("retry: {initial: 10, max: 1}\n");
  EXPECT_NE(error.find("'max' must be at least 'initial'"), std::string::npos) << error;
  error = error_loading("dead_letters: some\n");
  EXPECT_NE(error.find("expected 'off', 'retryable' or 'all'"), std::string::npos) << error;
}

}  // namespace
}  // namespace troupe
