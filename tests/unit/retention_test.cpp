// retention_test.cpp: the retention policy of troupe gc (host/config/retention.cpp) — which
// durations and statuses are accepted, the configuration's `retention:` default, and the store
// request made of them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "config/config.h"
#include "config/retention.h"
#include "support/test_dir.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kSecond = 1000;
constexpr int64_t kDay = 24 * 60 * 60 * kSecond;

std::string refusal(const std::string& text) {
  try {
    parse_retention_ms(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(RetentionTest, DurationsInDaysHoursMinutesAndSecondsAreMilliseconds) {
  EXPECT_EQ(parse_retention_ms("30d"), 30 * kDay);
  EXPECT_EQ(parse_retention_ms("12h"), 12 * 60 * 60 * kSecond);
  EXPECT_EQ(parse_retention_ms("90m"), 90 * 60 * kSecond);
  EXPECT_EQ(parse_retention_ms("45s"), 45 * kSecond);
  EXPECT_EQ(parse_retention_ms("0s"), 0);
  EXPECT_EQ(parse_retention_ms("36500d"), kMaxRetentionMs);
}

TEST(RetentionTest, AnythingElseIsRefusedNamingTheValue) {
  for (const char* bad : {"", "30", "d", "3x", "30D", "1h30m", "-5d", "+5d", " 5d", "5d ", "1.5h",
                          "5 d", "5w", "5ms"}) {
    std::string why = refusal(bad);
    EXPECT_THAT(why, HasSubstr("'" + std::string(bad) + "'")) << bad;
    EXPECT_THAT(why, HasSubstr("30d, 12h, 90m, 45s")) << bad;
  }
}

TEST(RetentionTest, AgesPastAHundredYearsAreRefusedWithoutOverflow) {
  EXPECT_THAT(refusal("36501d"), HasSubstr("longer than the longest age accepted, 36500d"));
  EXPECT_THAT(refusal("99999999999999999999999999s"), HasSubstr("longer than"));
}

TEST(RetentionTest, OnlyEndedStatusesMayBeDeleted) {
  for (const char* ok : {"succeeded", "failed", "cancelled"})
    EXPECT_NO_THROW(check_retention_status(ok)) << ok;
  for (const char* bad : {"running", "queued", "", "Failed"})
    EXPECT_THROW(check_retention_status(bad), std::invalid_argument) << bad;
}

TEST(RetentionTest, TheRequestTakesTheArgumentsBeforeTheConfiguration) {
  RetentionConfig config;
  config.older_than = "7d";
  config.older_than_ms = 7 * kDay;
  config.statuses = {"failed"};
  const int64_t now = 1000 * kDay;

  GcOptions from_config = retention_request(config, std::nullopt, {}, false, now, "--older-than");
  EXPECT_EQ(from_config.cutoff_ms, now - 7 * kDay);
  EXPECT_EQ(from_config.statuses, std::vector<std::string>{"failed"});
  EXPECT_FALSE(from_config.dry_run);

  GcOptions given = retention_request(config, "12h", {"succeeded", "cancelled"}, true, now, "x");
  EXPECT_EQ(given.cutoff_ms, now - 12 * 60 * 60 * kSecond);
  EXPECT_EQ(given.statuses, (std::vector<std::string>{"succeeded", "cancelled"}));
  EXPECT_TRUE(given.dry_run);
}

TEST(RetentionTest, WithoutAnAgeAnywhereTheRequestSaysHowToGiveOne) {
  try {
    retention_request(RetentionConfig{}, std::nullopt, {}, false, 0, "--older-than");
    FAIL() << "no age, and no refusal";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("--older-than"));
    EXPECT_THAT(e.what(), HasSubstr("retention: { older_than: 30d }"));
  }
}

TEST(RetentionTest, ABadArgumentIsRefusedNamingTheOption) {
  try {
    retention_request(RetentionConfig{}, "3x", {}, false, 0, "--older-than");
    FAIL() << "accepted 3x";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("--older-than: '3x'"));
  }
  EXPECT_THROW(retention_request(RetentionConfig{}, "1d", {"running"}, false, 0, "--older-than"),
               std::invalid_argument);
  // An empty age given on purpose is refused, not taken for "none given".
  EXPECT_THROW(retention_request(RetentionConfig{}, "", {}, false, 0, "--older-than"),
               std::invalid_argument);
}

class RetentionConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("retention"); }
  void TearDown() override { fs::remove_all(dir_); }

  Config load(const std::string& yaml) {
    path_ = (dir_ / "troupe.yaml").string();
    std::ofstream(path_, std::ios::binary) << yaml;
    return load_config(path_);
  }
  std::string error_loading(const std::string& yaml) {
    try {
      load(yaml);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(RetentionConfigTest, RetentionSetsTheDefaultAgeAndStatuses) {
  Config c = load("retention:\n  older_than: 30d\n  status: [failed, cancelled]\n");
  EXPECT_EQ(c.retention.older_than, "30d");
  EXPECT_EQ(c.retention.older_than_ms, 30 * kDay);
  EXPECT_EQ(c.retention.statuses, (std::vector<std::string>{"failed", "cancelled"}));
  EXPECT_EQ(load("{}").retention.older_than, "");  // no default without one
}

TEST_F(RetentionConfigTest, BadRetentionSettingsAreErrorsNamingFileLineAndKey) {
  std::string e = error_loading("store: x.db\nretention:\n  older_than: 3x\n");
  EXPECT_EQ(e.rfind(path_ + ":3:", 0), 0u) << e;
  EXPECT_THAT(e, HasSubstr("retention.older_than: '3x' is not a duration"));

  e = error_loading("retention:\n  older_than: 30\n");
  EXPECT_THAT(e, HasSubstr("retention.older_than: expected a duration such as 30d"));

  e = error_loading("retention:\n  older_than: 30d\n  status: [failed, running]\n");
  EXPECT_THAT(e, HasSubstr("retention.status[1]: 'running' is not a status gc deletes"));

  e = error_loading("retention:\n  status: []\n");
  EXPECT_THAT(e, HasSubstr("retention.status: expected a list of one or more"));

  e = error_loading("retention:\n  older_than: 30d\n  keep: 5\n");
  EXPECT_THAT(e, HasSubstr("retention.keep: unknown setting"));
}

}  // namespace
}  // namespace troupe
