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

TEST_F(ConfigTest, UnknownModelDefaultsToZeroAndAcceptsRefuseAndPriceWithItsPrice) {
  path_ = (dir_ / "troupe.yaml").string();
  std::ofstream(path_) << "{}\n";
  EXPECT_EQ(load_config(path_).pricing.unknown_model, UnknownModel::zero);
  std::ofstream(path_) << "unknown_model: refuse\n";
  EXPECT_EQ(load_config(path_).pricing.unknown_model, UnknownModel::refuse);
  std::ofstream(path_) << "unknown_model: price\n"
                          "unknown_price: {input: 5, output: 20, cached_input: 2.5}\n";
  Config c = load_config(path_);
  EXPECT_EQ(c.pricing.unknown_model, UnknownModel::price);
  EXPECT_DOUBLE_EQ(c.pricing.unknown_price.base.input, 5);
  EXPECT_DOUBLE_EQ(c.pricing.unknown_price.base.output, 20);
  EXPECT_DOUBLE_EQ(c.pricing.unknown_price.base.cached_input, 2.5);
}

TEST_F(ConfigTest, PricingEntriesAreReadByProviderAndModelWithATier) {
  path_ = (dir_ / "troupe.yaml").string();
  std::ofstream(path_) << "pricing:\n"
                          "  openai/gpt-4o: {input: 2, output: 9, reasoning: 12}\n"
                          "  acme/big:\n"
                          "    input: 1\n"
                          "    output: 2\n"
                          "    above_input_tokens: 1000\n"
                          "    above: {input: 3, output: 4}\n"
                          "    source: https://acme.example/pricing\n"
                          "    as_of: 2026-06\n";
  Config c = load_config(path_);
  const ModelPrice* gpt = c.pricing.overrides.exact("openai", "gpt-4o");
  ASSERT_NE(gpt, nullptr);
  EXPECT_DOUBLE_EQ(gpt->base.reasoning, 12);
  const ModelPrice* big = c.pricing.overrides.exact("acme", "big");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->tier_above, 1000);
  EXPECT_DOUBLE_EQ(big->tier.output, 4);
  EXPECT_EQ(big->source, "https://acme.example/pricing");
}

TEST_F(ConfigTest, PricingMistakesAreErrorsNamingLineAndKey) {
  struct Case {
    std::string text;
    std::string where;  // ":<line>:" and the key path the error must name
    std::string key;
  };
  const Case cases[] = {
      {"unknown_model: maybe\n", ":1:", "unknown_model: expected 'refuse', 'zero' or 'price'"},
      {"unknown_model: price\n", ":1:", "unknown_model: 'price' needs unknown_price"},
      {"unknown_price: {input: 1, output: 1}\n",
       ":1:", "unknown_price: is used only with unknown_model: price"},
      {"pricing:\n  gpt-4o: {input: 1, output: 2}\n", ":2:", "pricing.gpt-4o: 'gpt-4o' must be"},
      {"pricing:\n  openai/gpt-4o: {input: 1}\n", ":2:", "pricing.openai/gpt-4o: missing 'output'"},
      {"pricing:\n  openai/gpt-4o:\n    input: 1\n    output: -3\n",
       ":4:", "pricing.openai/gpt-4o.output: expected a price"},
      {"pricing:\n  openai/gpt-4o: {input: 1, output: 2, cache_read: 1}\n",
       ":2:", "pricing.openai/gpt-4o.cache_read: unknown setting"},
      {"pricing:\n  openai/gpt-4o: {input: 1, output: 2, above_input_tokens: 10}\n",
       ":2:", "needs both 'above_input_tokens' and 'above'"},
      {"pricing: [1]\n", ":1:", "pricing: expected a mapping"},
  };
  for (const Case& c : cases) {
    std::string error = error_loading(c.text);
    EXPECT_EQ(error.rfind(path_ + c.where, 0), 0u) << c.text << " -> " << error;
    EXPECT_NE(error.find(c.key), std::string::npos) << c.text << " -> " << error;
  }
}

}  // namespace
}  // namespace troupe
