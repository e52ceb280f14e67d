// provider_plugins_test.cpp: the shipped plugins (mock, echo_c) from build/plugins, through the
// real loader and host services.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "integration/plugin_test_util.h"
#include "plugin/plugin_instance.h"
#include "plugin/plugin_library.h"

namespace troupe {
namespace {

using test::CallProbe;
using test::run_until;

const char* const kHello =
    R"({"model":"mock-1","messages":[{"role":"system","content":"Be brief."},)"
    R"({"role":"user","content":"Hello there, plugin"}]})";

class ProviderPlugins : public ::testing::Test {
 protected:
  std::shared_ptr<PluginInstance> make(const std::string& plugin, const std::string& settings) {
    std::string path = find_plugin(plugin, {test::plugins_dir()});
    InstanceConfig config;
    config.name = plugin;
    config.settings_json = settings;
    return PluginInstance::create(loop, PluginLibrary::load(path), config);
  }

  test::LogCapture logs;
  EventLoop loop;
};

TEST_F(ProviderPlugins, MockStreamsDeltasAndUsageThenCompletesAfterItsLatency) {
  auto mock = make("mock", R"({"latency_ms":50})");
  EXPECT_EQ(mock->info().name, "mock");
  EXPECT_EQ(mock->info().kind, TROUPE_PLUGIN_PROVIDER);

  CallProbe probe;
  bool event_after_completion = false;
  CallHandlers handlers = probe.handlers();
  auto record_event = handlers.on_event;
  handlers.on_event = [&](const StreamEvent& e) {
    if (probe.done()) event_after_completion = true;
    record_event(e);
  };
  uint64_t start = EventLoop::now_ns();
  mock->start_call("chat", kHello, true, 10000, std::move(handlers));
  EXPECT_TRUE(probe.results.empty());
  ASSERT_TRUE(run_until(loop, [&] { return probe.done(); }));
  uint64_t elapsed_ms = (EventLoop::now_ns() - start) / 1000000;

  ASSERT_EQ(probe.results.size(), 1u);
  const CallResult& r = probe.results[0];
  ASSERT_EQ(r.status, TROUPE_OK) << r.error;
  EXPECT_FALSE(event_after_completion);
  EXPECT_GE(elapsed_ms, 45u);  // it waited for its latency (lower bound only)

  auto response = nlohmann::json::parse(r.result_json);
  std::string text = response.at("text").get<std::string>();
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(probe.text, text) << "the deltas add up to the final text";
  size_t deltas = 0, usages = 0;
  for (const auto& e : probe.events) {
    if (e.type == TROUPE_EVENT_TEXT_DELTA) ++deltas;
    if (e.type == TROUPE_EVENT_USAGE) {
      ++usages;
      EXPECT_TRUE(nlohmann::json::parse(e.json).contains("output_tokens")) << e.json;
    }
  }
  EXPECT_GE(deltas, 1u);
  EXPECT_EQ(usages, 1u);
  EXPECT_EQ(mock->calls_in_flight(), 0u);
  EXPECT_EQ(mock->contract_violations(), 0u);
}

TEST_F(ProviderPlugins, MockCancelledMidStreamAnswersOnceAndCleansUp) {
  auto mock = make("mock", R"({"latency_ms":5000})");
  CallProbe probe;
  uint64_t id = mock->start_call("chat", kHello, true, 0, probe.handlers());
  EXPECT_EQ(loop.pending_timers(), 1u);
  mock->cancel_call(id);
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_CANCELLED);
  // The mock completes its cancelled call itself (CANCELLED): absorbed, nothing left over.
  ASSERT_TRUE(run_until(loop, [&] { return mock->calls_in_flight() == 0; }));
  EXPECT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(loop.pending_timers(), 0u);
  EXPECT_EQ(mock->contract_violations(), 0u);
}

TEST_F(ProviderPlugins, EchoCEchoesTheLastUserMessage) {
  auto echo = make("echo_c", "{}");
  CallProbe probe;
  echo->start_call("chat", kHello, false, 0, probe.handlers());
  ASSERT_TRUE(run_until(loop, [&] { return probe.done(); }));
  ASSERT_EQ(probe.results[0].status, TROUPE_OK) << probe.results[0].error;
  auto response = nlohmann::json::parse(probe.results[0].result_json);
  EXPECT_EQ(response.at("text"), "echo: Hello there, plugin");
  EXPECT_EQ(response.at("model"), "mock-1");
  EXPECT_EQ(echo->contract_violations(), 0u);
}

TEST_F(ProviderPlugins, EchoCReadsItsPrefixThroughConfigGet) {
  auto echo = make("echo_c", R"({"prefix":"you said: "})");
  CallProbe probe;
  echo->start_call("chat", kHello, false, 0, probe.handlers());
  ASSERT_TRUE(run_until(loop, [&] { return probe.done(); }));
  ASSERT_EQ(probe.results[0].status, TROUPE_OK) << probe.results[0].error;
  EXPECT_EQ(nlohmann::json::parse(probe.results[0].result_json).at("text"),
            "you said: Hello there, plugin");
}

TEST_F(ProviderPlugins, ScanOfThePluginFolderListsBoth) {
  auto entries = scan_plugins({test::plugins_dir()});
  bool mock = false, echo = false;
  for (const auto& e : entries) {
    EXPECT_TRUE(e.library) << e.path << ": " << e.error;
    if (!e.library) continue;
    if (e.library->info().name == "mock") {
      mock = true;
      EXPECT_STREQ(plugin_kind_name(e.library->info().kind), "provider");
      EXPECT_NE(e.library->info().capabilities_json.find("\"streaming\":true"), std::string::npos);
    }
    if (e.library->info().name == "echo_c") echo = true;
  }
  EXPECT_TRUE(mock);
  EXPECT_TRUE(echo);
  // Test fixtures live elsewhere and never show up here.
  for (const auto& e : entries)
    EXPECT_EQ(std::filesystem::path(e.path).parent_path(),
              std::filesystem::path(test::plugins_dir()));
}

}  // namespace
}  // namespace troupe
