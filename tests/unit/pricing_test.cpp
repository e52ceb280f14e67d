// pricing_test.cpp: the pricing table (share/pricing.yaml as built in, config/pricing_file.h)
// and its lookup and cost formula (core/pricing.h).
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "config/pricing_file.h"
#include "core/pricing.h"

namespace troupe {
namespace {

const ModelPrice& builtin(const std::string& provider, const std::string& model) {
  const ModelPrice* p = builtin_pricing().exact(provider, model);
  if (p == nullptr) throw std::runtime_error("no entry " + provider + "/" + model);
  return *p;
}

// The built-in table with no provider configured: each provider is priced under its own name.
std::shared_ptr<const Pricing> default_pricing() {
  return make_pricing(Config{});
}

TEST(PricingTable, BuiltInTableCoversEveryVendorsCurrentModelsWithSourceAndDate) {
  const char* const models[][2] = {{"openai", "gpt-4o"},
                                   {"openai", "gpt-4o-mini"},
                                   {"openai", "gpt-4.1"},
                                   {"openai", "gpt-4.1-mini"},
                                   {"openai", "gpt-4.1-nano"},
                                   {"openai", "o3"},
                                   {"openai", "o3-mini"},
                                   {"openai", "o4-mini"},
                                   {"openai", "gpt-5"},
                                   {"openai", "gpt-5-mini"},
                                   {"openai", "gpt-5-nano"},
                                   {"anthropic", "claude-sonnet-4-5"},
                                   {"anthropic", "claude-sonnet-4"},
                                   {"anthropic", "claude-haiku-4-5"},
                                   {"anthropic", "claude-3-5-haiku"},
                                   {"anthropic", "claude-opus-4-1"},
                                   {"anthropic", "claude-opus-4-5"},
                                   {"gemini", "gemini-2.5-pro"},
                                   {"gemini", "gemini-2.5-flash"},
                                   {"gemini", "gemini-2.5-flash-lite"},
                                   {"ollama", "*"},
                                   {"mock", "*"}};
  for (const auto& m : models) {
    const ModelPrice& p = builtin(m[0], m[1]);
    EXPECT_EQ(p.as_of, "2026-06") << m[0] << "/" << m[1];
    EXPECT_FALSE(p.source.empty()) << m[0] << "/" << m[1];
  }
  EXPECT_EQ(builtin("openai", "gpt-4o").source, "https://openai.com/api/pricing/");
  EXPECT_EQ(builtin("anthropic", "claude-opus-4-1").source,
            "https://docs.anthropic.com/en/docs/about-claude/pricing");
  EXPECT_EQ(builtin("gemini", "gemini-2.5-flash").source,
            "https://ai.google.dev/gemini-api/docs/pricing");
}

TEST(PricingTable, BuiltInFiguresAreTheVendorsOnes) {
  const ModelPrice& gpt4o = builtin("openai", "gpt-4o");
  EXPECT_DOUBLE_EQ(gpt4o.base.input, 2.50);
  EXPECT_DOUBLE_EQ(gpt4o.base.output, 10.0);
  EXPECT_DOUBLE_EQ(gpt4o.base.cached_input, 1.25);
  EXPECT_LT(gpt4o.base.reasoning, 0);  // not given: the output price
  const ModelPrice& nano = builtin("openai", "gpt-5-nano");
  EXPECT_DOUBLE_EQ(nano.base.cached_input, 0.005);
  const ModelPrice& opus = builtin("anthropic", "claude-opus-4-1");
  EXPECT_DOUBLE_EQ(opus.base.input, 15);
  EXPECT_DOUBLE_EQ(opus.base.output, 75);
  EXPECT_DOUBLE_EQ(opus.base.cache_write, 18.75);
  EXPECT_DOUBLE_EQ(opus.base.cached_input, 1.50);
  const ModelPrice& haiku = builtin("anthropic", "claude-3-5-haiku");
  EXPECT_DOUBLE_EQ(haiku.base.cache_write, 1.0);
  EXPECT_DOUBLE_EQ(haiku.base.cached_input, 0.08);
  const ModelPrice& lite = builtin("gemini", "gemini-2.5-flash-lite");
  EXPECT_DOUBLE_EQ(lite.base.cached_input, 0.01);
  EXPECT_DOUBLE_EQ(builtin("ollama", "*").base.output, 0);
}

TEST(PricingTable, DatedOrSuffixedModelFindsItsBaseEntryByTheLongestPrefixAtADash) {
  auto p = default_pricing();
  EXPECT_EQ(p->find("openai/gpt-4o-2024-08-06").entry, "openai/gpt-4o");
  EXPECT_EQ(p->find("openai/gpt-4o-mini-2024-07-18").entry, "openai/gpt-4o-mini");
  EXPECT_EQ(p->find("openai/gpt-4.1-nano").entry, "openai/gpt-4.1-nano");
  EXPECT_EQ(p->find("openai/o3-mini-2025-01-31").entry, "openai/o3-mini");
  EXPECT_EQ(p->find("anthropic/claude-sonnet-4-5-20250929").entry, "anthropic/claude-sonnet-4-5");
  EXPECT_EQ(p->find("anthropic/claude-sonnet-4-20250514").entry, "anthropic/claude-sonnet-4");
  EXPECT_EQ(p->find("gemini/gemini-2.5-flash-001").entry, "gemini/gemini-2.5-flash");
  EXPECT_EQ(p->find("gemini/gemini-2.5-flash-lite-preview").entry, "gemini/gemini-2.5-flash-lite");
  // Only at a '-': "gpt-4oo" is not gpt-4o, "o3x" is not o3.
  EXPECT_EQ(p->find("openai/gpt-4oo").price, nullptr);
  EXPECT_EQ(p->find("openai/o3x").price, nullptr);
  EXPECT_EQ(p->find("openai/gpt-3.5-turbo").price, nullptr);
  // Every model of a local or offline provider costs nothing.
  EXPECT_EQ(p->find("ollama/llama3.2:3b").entry, "ollama/*");
  EXPECT_EQ(p->find("mock/anything").entry, "mock/*");
}

TEST(PricingTable, ProviderInstanceIsPricedByItsPluginAndUnconfiguredOnesByTheFallback) {
  Config c;
  c.providers["openai-eu"] = ProviderConfig{"openai-eu", "openai", "{}", {}};
  c.providers["mock"] = ProviderConfig{"mock", "mock", "{}", {}};
  c.fallback_provider = "mock";
  auto p = make_pricing(c);
  EXPECT_EQ(p->find("openai-eu/gpt-4o").entry, "openai/gpt-4o");
  // Not configured: served by the mock, which costs nothing, whatever the name says.
  EXPECT_EQ(p->find("anthropic/claude-sonnet-4-5").entry, "mock/*");
  c.fallback_provider.clear();
  EXPECT_EQ(make_pricing(c)->find("anthropic/claude-sonnet-4-5").entry,
            "anthropic/claude-sonnet-4-5");
}

TEST(PricingTable, GeminiProsHigherTierPricesTheWholeCallAbove200kInputTokens) {
  const ModelPrice& pro = builtin("gemini", "gemini-2.5-pro");
  EXPECT_EQ(pro.tier_above, 200000);
  TokenUsage at{200000, 1000, 0, 0, 0};
  EXPECT_DOUBLE_EQ(cost_usd(pro, at), (200000 * 1.25 + 1000 * 10.0) / 1e6);
  TokenUsage above{200001, 1000, 100000, 0, 0};
  EXPECT_DOUBLE_EQ(cost_usd(pro, above), (100001 * 2.50 + 100000 * 0.25 + 1000 * 15.0) / 1e6);
}

TEST(PricingTable, CostFormulaPricesUncachedCachedCacheWritesOutputAndReasoningApart) {
  ModelPrice m;
  m.base = TokenPrices{3.0, 15.0, 0.30, 3.75, 20.0};
  // 1000 input of which 300 read from the cache and 200 written to it; 500 output of which
  // 100 reasoning.
  TokenUsage u{1000, 500, 300, 200, 100};
  double want = (500 * 3.0 + 300 * 0.30 + 200 * 3.75 + 400 * 15.0 + 100 * 20.0) / 1e6;
  EXPECT_DOUBLE_EQ(cost_usd(m, u), want);
}

TEST(PricingTable, PricesNotGivenFallBackToInputForCacheAndToOutputForReasoning) {
  ModelPrice m;
  m.base.input = 2.0;
  m.base.output = 8.0;
  TokenUsage u{1000, 500, 300, 200, 100};
  EXPECT_DOUBLE_EQ(cost_usd(m, u), (1000 * 2.0 + 500 * 8.0) / 1e6);
}

TEST(PricingTable, CountsThatDoNotAddUpAreClampedNeverNegative) {
  ModelPrice m;
  m.base = TokenPrices{1.0, 1.0, 0.5, 2.0, 1.0};
  TokenUsage u{10, 5, 50, 50, 9};  // more cached than input, more reasoning than output
  EXPECT_DOUBLE_EQ(cost_usd(m, u), (10 * 0.5 + 5 * 1.0) / 1e6);
  EXPECT_DOUBLE_EQ(cost_usd(m, TokenUsage{-4, -1, 0, 0, 0}), 0.0);
}

TEST(PricingTable, ConfiguredEntriesOverrideAndAddAndAnInstancesOwnEntryWins) {
  std::string file = ::testing::TempDir() + "pricing_override.yaml";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    std::fputs(
        "providers:\n"
        "  openai: {plugin: openai}\n"
        "  openai-eu: {plugin: openai}\n"
        "pricing:\n"
        "  openai/gpt-4o: {input: 2.0, output: 9.0}\n"
        "  openai-eu/gpt-4o-mini: {input: 0.2, output: 0.7}\n"
        "  openai/my-finetune: {input: 3, output: 12, cached_input: 1.5}\n",
        f);
    std::fclose(f);
  }
  auto p = make_pricing(load_config(file));
  ASSERT_NE(p->find("openai/gpt-4o").price, nullptr);
  EXPECT_DOUBLE_EQ(p->find("openai/gpt-4o").price->base.input, 2.0);      // overridden
  EXPECT_DOUBLE_EQ(p->find("openai-eu/gpt-4o").price->base.output, 9.0);  // by its plugin
  EXPECT_EQ(p->find("openai-eu/gpt-4o-mini").entry, "openai-eu/gpt-4o-mini");
  EXPECT_DOUBLE_EQ(p->find("openai-eu/gpt-4o-mini").price->base.input, 0.2);
  EXPECT_DOUBLE_EQ(p->find("openai/gpt-4o-mini").price->base.input, 0.15);  // untouched
  EXPECT_EQ(p->find("openai/my-finetune-v2").entry, "openai/my-finetune");  // added
  std::remove(file.c_str());
}

TEST(PricingTable, TableFileErrorsNameTheLineAndKey) {
  try {
    read_pricing_table("openai:\n  gpt-x: {input: 1, output: -2, source: s, as_of: x}\n",
                       "pricing.yaml");
    FAIL() << "read";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pricing.yaml:2:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("openai.gpt-x.output"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_pricing_table("openai:\n  gpt-x: {input: 1, output: 2}\n", "p.yaml"),
               ConfigError);  // the table's entries need source and as_of
}

TEST(PricingTable, FormatUsdShowsCheapCallsAndCents) {
  EXPECT_EQ(format_usd(0), "$0");
  EXPECT_EQ(format_usd(0.000123), "$0.000123");
  EXPECT_EQ(format_usd(1.5), "$1.5000");
}

}  // namespace
}  // namespace troupe
