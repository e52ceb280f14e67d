// cost_e2e_test.cpp: the cost of every model call through the troupe binary, against the fake
// vendor server (tests/support/vendor_server.h) in each of the four wire formats, streamed and
// not: the stored cost equals the pricing table's arithmetic on the vendor's usage fields
// (cached, cache-write and reasoning tokens included); and what an unknown model costs under
// unknown_model: refuse | zero | price (docs/governance.md).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>

#include "e2e/process.h"
#include "support/test_paths.h"
#include "support/test_text.h"
#include "support/vendor_server.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CostFixture {
 protected:
  void make_dir(const std::string& extra_config) {
    std::string pattern = (fs::temp_directory_path() / "troupe-cost-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    ASSERT_TRUE(fs::exists(troupe_binary())) << "build the troupe_cli target";
    std::ofstream cfg(dir_ / "troupe.yaml");
    cfg << "store: troupe.db\n"
        << server_.providers_config("TEST_VENDOR_KEY") << "retry: {attempts: 1}\n"
        << extra_config;
  }

  ProcessResult troupe(std::vector<std::string> args) {
    args.insert(args.begin(), troupe_binary());
    ProcessOptions o;
    o.args = std::move(args);
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_PLUGIN_PATH", "NO_COLOR", "TROUPE_CONFIG", "TROUPE_MODEL"};
    o.env["TEST_VENDOR_KEY"] = "sk-cost-test";
    return Process(o).wait();
  }

  // A workflow asking `model` `calls` times, by ask or by a stream read to its end.
  fs::path workflow(const std::string& model, bool stream, int calls = 1) {
    fs::path wf = dir_ / "cost.lua";
    std::ofstream(wf) << "local troupe = require('troupe')\n"
                         "return troupe.workflow{ name = 'cost', run = function()\n"
                         "  local a = troupe.agent{ model = '"
                      << model
                      << "' }\n"
                         "  local out = {}\n"
                         "  for i = 1, "
                      << calls << " do\n"
                      << (stream ? "    local parts = {}\n"
                                   "    for ev in a:stream('hello ' .. i) do\n"
                                   "      if ev.type == 'text_delta' then parts[#parts + 1] = "
                                   "ev.text end\n"
                                   "    end\n"
                                   "    out[i] = table.concat(parts)\n"
                                 : "    out[i] = a:ask('hello ' .. i)\n")
                      << "  end\n"
                         "  return out\nend }\n";
    return wf;
  }

  json show(const std::string& run_id) {
    ProcessResult r = troupe({"--json", "show", run_id});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    return json::parse(r.out);
  }

  json events(const std::string& run_id) {
    ProcessResult r = troupe({"--json", "events", run_id});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    json out = json::array();
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) out.push_back(json::parse(line));
    return out;
  }

  void remove_dir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_;
  VendorServer server_;
};

// The usage every reply carries (big enough that each part shows in the cents).
constexpr int64_t kInput = 250'000;  // above Gemini 2.5 Pro's 200k tier
constexpr int64_t kCached = 40'000;
constexpr int64_t kOutput = 9'000;
constexpr int64_t kReasoning = 3'000;

struct Expected {
  std::string model;  // provider/model the workflow asks
  int64_t input, cached, cache_write, output, reasoning;
  double cost;  // the table's arithmetic, USD
};

// What each vendor reports of the fake usage (FakeUsage's field mapping) and what it costs at
// the built-in table's prices (share/pricing.yaml, as of 2026-06).
Expected expected_for(Vendor v) {
  const double I = kInput, C = kCached, O = kOutput, R = kReasoning;
  switch (v) {
    case Vendor::openai:  // gpt-4o: 2.50 in, 1.25 cached, 10 out (reasoning at output)
      return {"openai/gpt-4o-2024-08-06",
              kInput,
              kCached,
              0,
              kOutput,
              kReasoning,
              ((I - C) * 2.50 + C * 1.25 + (O - R) * 10 + R * 10) / 1e6};
    case Vendor::anthropic:  // sonnet 4.5: 3 in, 0.30 read, 3.75 write (2 tokens), 15 out
      return {"anthropic/claude-sonnet-4-5-20250929",
              kInput,
              kCached,
              2,
              kOutput,
              0,
              ((I - C - 2) * 3.0 + C * 0.30 + 2 * 3.75 + O * 15.0) / 1e6};
    case Vendor::gemini:  // 2.5 pro above 200k: 2.50 in, 0.25 cached, 15 out
      return {"gemini/gemini-2.5-pro",
              kInput,
              kCached,
              0,
              kOutput,
              kReasoning,
              ((I - C) * 2.50 + C * 0.25 + (O - R) * 15.0 + R * 15.0) / 1e6};
    case Vendor::ollama:  // local: nothing, but priced (not unpriced)
      return {"ollama/llama3.2", kInput, 0, 0, kOutput, 0, 0.0};
  }
  return {};
}

class CostOfEveryCall : public CostFixture,
                        public ::testing::TestWithParam<std::tuple<Vendor, bool>> {
 protected:
  void SetUp() override { make_dir(""); }
  void TearDown() override {
    if (!HasFailure()) remove_dir();
  }
};

TEST_P(CostOfEveryCall, StoredCostEqualsTheTablesArithmeticOnTheVendorsUsage) {
  auto [vendor, stream] = GetParam();
  Expected want = expected_for(vendor);
  for (int i = 0; i < 2; ++i) {
    FakeReply reply = FakeReply::with_text("priced answer");
    reply.usage = FakeUsage{kInput, kCached, kOutput, kReasoning};
    server_.push(reply);
  }
  ProcessResult r = troupe({"--json", "run", workflow(want.model, stream, 2).string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string run_id = json::parse(r.out)["run_id"];
  ASSERT_EQ(server_.chat_count(), 2u);
  EXPECT_EQ(server_.chats()[0].stream, stream);

  json run = show(run_id);
  ASSERT_EQ(run["steps"].size(), 2u) << run.dump(2);
  for (const json& step : run["steps"]) {
    EXPECT_EQ(step["input_tokens"], want.input) << step.dump();
    EXPECT_EQ(step["cached_input_tokens"], want.cached) << step.dump();
    EXPECT_EQ(step["cache_write_tokens"], want.cache_write) << step.dump();
    EXPECT_EQ(step["output_tokens"], want.output) << step.dump();
    EXPECT_EQ(step["reasoning_tokens"], want.reasoning) << step.dump();
    EXPECT_EQ(step["unpriced"], false);
    ASSERT_TRUE(step["cost_usd"].is_number()) << step.dump();
    EXPECT_NEAR(step["cost_usd"].get<double>(), want.cost, 1e-9) << step.dump();
  }
  EXPECT_NEAR(run["cost_usd"].get<double>(), 2 * want.cost, 1e-9);
  EXPECT_EQ(run["unpriced_steps"], 0);

  // The events carry it too: each step.finished, and run.finished the run's total.
  int priced_events = 0;
  for (const json& ev : events(run_id)) {
    if (ev["type"] == "step.finished") {
      EXPECT_NEAR(ev["data"]["cost_usd"].get<double>(), want.cost, 1e-9) << ev.dump();
      ++priced_events;
    }
    if (ev["type"] == "run.finished") {
      EXPECT_NEAR(ev["data"]["cost_usd"].get<double>(), 2 * want.cost, 1e-9) << ev.dump();
    }
  }
  EXPECT_EQ(priced_events, 2);

  // troupe runs --json has the total; troupe show's table has a COST column and the total.
  ProcessResult runs = troupe({"--json", "runs"});
  ASSERT_EQ(runs.exit_code, 0) << runs.describe();
  EXPECT_NEAR(json::parse(runs.out)[0]["cost_usd"].get<double>(), 2 * want.cost, 1e-9);
  ProcessResult text = troupe({"show", run_id});
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_TRUE(contains(text.out, "COST")) << text.out;
  EXPECT_TRUE(contains(text.out, "  cost      $")) << text.out;
}

INSTANTIATE_TEST_SUITE_P(AllWireFormats, CostOfEveryCall,
                         ::testing::Combine(::testing::Values(Vendor::openai, Vendor::anthropic,
                                                              Vendor::gemini, Vendor::ollama),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<Vendor, bool>>& p) {
                           return std::string(vendor_name(std::get<0>(p.param))) +
                                  (std::get<1>(p.param) ? "_streamed" : "_not_streamed");
                         });

class UnknownModels : public CostFixture, public ::testing::Test {
 protected:
  void TearDown() override {
    if (!HasFailure()) remove_dir();
  }
};

TEST_F(UnknownModels, RefuseFailsTheCallBeforeItIsSentNamingTheModelAndHowToPriceIt) {
  make_dir("unknown_model: refuse\n");
  ProcessResult r = troupe({"run", workflow("openai/gpt-unheard-of", false).string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "'openai/gpt-unheard-of' has no price")) << r.err;
  EXPECT_TRUE(contains(r.err, "pricing:")) << r.err;
  EXPECT_EQ(server_.chat_count(), 0u);
}

TEST_F(UnknownModels, ZeroByDefaultMakesTheCallFlagsItUnpricedAndWarnsOncePerRun) {
  make_dir("");
  ProcessResult r = troupe({"--json", "run", workflow("openai/gpt-unheard-of", true, 3).string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(server_.chat_count(), 3u);
  size_t first = r.err.find("'openai/gpt-unheard-of' has no price");
  ASSERT_NE(first, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("'openai/gpt-unheard-of' has no price", first + 1), std::string::npos)
      << "warned once: " << r.err;
  std::string run_id = json::parse(r.out)["run_id"];
  json run = show(run_id);
  for (const json& step : run["steps"]) {
    EXPECT_TRUE(step["cost_usd"].is_null()) << step.dump();
    EXPECT_EQ(step["unpriced"], true) << step.dump();
    EXPECT_GT(step["input_tokens"].get<int64_t>(), 0);
  }
  EXPECT_EQ(run["unpriced_steps"], 3);
  int warnings = 0;
  for (const json& ev : events(run_id)) {
    if (ev["type"] == "pricing.unknown_model") {
      ++warnings;
      EXPECT_EQ(ev["data"]["model"], "openai/gpt-unheard-of");
    }
    if (ev["type"] == "run.finished") {
      EXPECT_EQ(ev["data"]["unpriced_steps"], 3);
    }
  }
  EXPECT_EQ(warnings, 1);
  ProcessResult text = troupe({"show", run_id});
  EXPECT_TRUE(contains(text.out, "unpriced")) << text.out;
  EXPECT_TRUE(contains(text.out, "3 unpriced calls")) << text.out;
}

TEST_F(UnknownModels, PriceChargesUnknownPriceAndStillWarns) {
  make_dir("unknown_model: price\nunknown_price: {input: 4, output: 16, cached_input: 2}\n");
  FakeReply reply = FakeReply::with_text("x");
  reply.usage = FakeUsage{1000, 400, 100, 30};
  server_.push(reply);
  ProcessResult r = troupe({"--json", "run", workflow("openai/gpt-unheard-of", false).string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.err, "priced at unknown_price")) << r.err;
  json run = show(json::parse(r.out)["run_id"]);
  ASSERT_EQ(run["steps"].size(), 1u);
  const json& step = run["steps"][0];
  EXPECT_EQ(step["unpriced"], false);
  EXPECT_NEAR(step["cost_usd"].get<double>(), (600 * 4.0 + 400 * 2.0 + 100 * 16.0) / 1e6, 1e-12);
}

TEST_F(UnknownModels, AConfiguredPriceMakesAModelKnown) {
  make_dir("unknown_model: refuse\npricing:\n  openai/gpt-unheard-of: {input: 1, output: 2}\n");
  FakeReply reply = FakeReply::with_text("x");
  reply.usage = FakeUsage{1000, 0, 100, 0};
  server_.push(reply);
  ProcessResult r = troupe({"--json", "run", workflow("openai/gpt-unheard-of", false).string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json run = show(json::parse(r.out)["run_id"]);
  EXPECT_NEAR(run["steps"][0]["cost_usd"].get<double>(), (1000 * 1.0 + 100 * 2.0) / 1e6, 1e-12);
}

}  // namespace
}  // namespace troupe::test
