// config_test.cpp: the config loader (host/config/config.cpp) on files with the inputs its
// fuzzer (tests/fuzz/fuzz_config.cpp) found wrong: each must be a ConfigError naming the file
// and the line, never another exception.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

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

}  // namespace
}  // namespace troupe
