// plugin_contract_test.cpp: the host absorbs every broken promise of a plugin, and honours the
// legal-but-awkward ones (foreign threads, synchronous completion), with real fixture .so files.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/plugin_test_util.h"
#include "plugin/plugin_instance.h"
#include "plugin/plugin_library.h"
#include "support/http_test_server.h"

namespace troupe {
namespace {

using test::CallProbe;
using test::fixture_path;
using test::run_until;

constexpr const char* kSecret = "sk-test-0123456789-very-secret";

class PluginContract : public ::testing::Test {
 protected:
  std::shared_ptr<PluginInstance> make(const std::string& fixture, std::string name = "",
                                       std::string settings = "{}",
                                       std::map<std::string, std::string> secrets = {}) {
    InstanceConfig config;
    config.name = name.empty() ? fixture : name;
    config.settings_json = std::move(settings);
    config.secrets = std::move(secrets);
    return PluginInstance::create(loop, PluginLibrary::load(fixture_path(fixture)),
                                  std::move(config));
  }

  // Runs one call to completion and returns what the caller saw.
  CallProbe call(PluginInstance& instance, const std::string& operation,
                 const std::string& request = "{}", uint32_t timeout_ms = 0) {
    CallProbe probe;
    instance.start_call(operation, request, true, timeout_ms, probe.handlers());
    EXPECT_TRUE(run_until(loop, [&] { return probe.done(); })) << operation;
    return probe;
  }

  void expect_ping_works(PluginInstance& instance) {
    CallProbe probe = call(instance, "ping");
    ASSERT_EQ(probe.results.size(), 1u);
    EXPECT_EQ(probe.results[0].status, TROUPE_OK);
    EXPECT_EQ(probe.results[0].result_json, "{\"pong\":true}");
  }

  // Declared first: outlives the loop and every instance of a test.
  test::LogCapture logs;
  EventLoop loop;
};

TEST_F(PluginContract, SynchronousCompletionIsDeliveredLaterOnTheLoopNeverInsideInvoke) {
  auto instance = make("sync_complete");
  CallProbe probe;
  uint64_t id = instance->start_call("chat", "{}", true, 0, probe.handlers());
  EXPECT_NE(id, 0u);
  EXPECT_TRUE(probe.results.empty()) << "on_complete ran inside invoke";
  EXPECT_TRUE(probe.events.empty()) << "on_event ran inside invoke";
  ASSERT_TRUE(run_until(loop, [&] { return probe.done(); }));
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_OK);
  EXPECT_EQ(probe.results[0].result_json, "{\"sync\":true}");
  EXPECT_EQ(probe.text, "sync");
  EXPECT_EQ(instance->calls_in_flight(), 0u);
  EXPECT_EQ(instance->contract_violations(), 0u);
}

TEST_F(PluginContract, CallIdsAreNeverReusedAcrossInstances) {
  auto a = make("sync_complete", "a");
  auto b = make("sync_complete", "b");
  std::set<uint64_t> ids;
  std::vector<std::unique_ptr<CallProbe>> probes;
  for (int i = 0; i < 10; ++i) {
    for (auto* inst : {a.get(), b.get()}) {
      probes.push_back(std::make_unique<CallProbe>());
      ids.insert(inst->start_call("ping", "{}", false, 0, probes.back()->handlers()));
    }
  }
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(ids.count(0), 0u);
  ASSERT_TRUE(run_until(loop, [&] {
    for (auto& p : probes)
      if (!p->done()) return false;
    return true;
  }));
}

TEST_F(PluginContract, ForeignThreadEventsAndCompletionRunOnTheLoopThread) {
  auto instance = make("foreign_thread");
  const auto loop_thread = std::this_thread::get_id();
  constexpr int kCalls = 25;
  struct Seen {
    int completions = 0;
    int off_thread = 0;
    std::string text;
  };
  std::vector<Seen> seen(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    CallHandlers h;
    h.on_event = [&, i](const StreamEvent& e) {
      if (std::this_thread::get_id() != loop_thread) ++seen[i].off_thread;
      EXPECT_EQ(seen[i].completions, 0) << "event after completion";
      seen[i].text += e.text;
    };
    h.on_complete = [&, i](CallResult r) {
      if (std::this_thread::get_id() != loop_thread) ++seen[i].off_thread;
      EXPECT_EQ(r.status, TROUPE_OK);
      EXPECT_EQ(r.result_json, "{\"thread\":true}");
      ++seen[i].completions;
    };
    instance->start_call("chat", "{}", true, 0, std::move(h));
  }
  EXPECT_EQ(instance->calls_in_flight(), static_cast<size_t>(kCalls));
  ASSERT_TRUE(run_until(loop, [&] { return instance->calls_in_flight() == 0; }));
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_EQ(seen[i].completions, 1) << i;
    EXPECT_EQ(seen[i].off_thread, 0) << i;
    EXPECT_EQ(seen[i].text, "hello from a thread") << i;
  }
  EXPECT_EQ(instance->contract_violations(), 0u);
}

TEST_F(PluginContract, ADoubleCompletionIsAbsorbedCountedAndLoggedOnce) {
  auto instance = make("complete_twice", "twice");
  CallProbe probe;
  uint64_t id = instance->start_call("chat", "{}", false, 0, probe.handlers());
  // Both completions were posted inside invoke; the count proves the second was processed.
  ASSERT_TRUE(run_until(loop, [&] { return instance->contract_violations() == 1; }));
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_OK);
  EXPECT_EQ(probe.results[0].result_json, "{\"n\":1}");
  EXPECT_EQ(logs.count(log::Level::warn,
                       "call " + std::to_string(id) + ": completed the call a second time"),
            1u)
      << logs.text();
  EXPECT_TRUE(logs.contains("plugin 'complete_twice' (instance 'twice')")) << logs.text();
  EXPECT_EQ(instance->calls_in_flight(), 0u);

  // A second breach counts again; the instance keeps working.
  CallProbe again = call(*instance, "chat");
  ASSERT_TRUE(run_until(loop, [&] { return instance->contract_violations() == 2; }));
  EXPECT_EQ(again.results.size(), 1u);
  expect_ping_works(*instance);
  EXPECT_EQ(instance->contract_violations(), 2u);
}

TEST_F(PluginContract, AnEmitAfterCompletionIsDroppedAndCounted) {
  auto instance = make("emit_after_complete");
  CallProbe probe;
  uint64_t id = instance->start_call("chat", "{}", true, 0, probe.handlers());
  ASSERT_TRUE(run_until(loop, [&] { return instance->contract_violations() == 1; }));
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_OK);
  EXPECT_TRUE(probe.events.empty()) << "the late event reached the caller";
  EXPECT_EQ(logs.count(log::Level::warn, "call " + std::to_string(id) +
                                             ": emitted an event after completing the call"),
            1u)
      << logs.text();
  expect_ping_works(*instance);
}

TEST_F(PluginContract, ACompletionForAnUnknownCallIdIsIgnoredAndCounted) {
  auto instance = make("sync_complete");
  CallProbe probe;
  uint64_t id = instance->start_call("unknown_id", "{}", false, 0, probe.handlers());
  ASSERT_TRUE(run_until(loop, [&] { return probe.done(); }));
  ASSERT_TRUE(run_until(loop, [&] { return instance->contract_violations() == 1; }));
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].result_json, "{\"real\":true}");
  uint64_t bogus = id + (uint64_t{1} << 62);
  EXPECT_EQ(logs.count(log::Level::warn,
                       "call " + std::to_string(bogus) + ": completed an unknown call id"),
            1u)
      << logs.text();
  expect_ping_works(*instance);
}

TEST_F(PluginContract, AnInvokeThatThrowsCompletesTheCallWithInternalLater) {
  auto instance = make("invoke_throws", "thrower");
  CallProbe probe;
  instance->start_call("chat", "{}", false, 0, probe.handlers());
  EXPECT_TRUE(probe.results.empty()) << "on_complete ran inside invoke";
  EXPECT_EQ(instance->contract_violations(), 1u);
  EXPECT_EQ(instance->calls_in_flight(), 0u);
  ASSERT_TRUE(run_until(loop, [&] { return probe.done(); }));
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_INTERNAL);
  EXPECT_EQ(probe.results[0].error, "thrower: invoke threw: fixture invoke exploded");
  // The process and the instance survive; later calls still get exactly one answer each.
  CallProbe again = call(*instance, "chat");
  EXPECT_EQ(again.results.size(), 1u);
  EXPECT_EQ(instance->contract_violations(), 2u);
  expect_ping_works(*instance);
}

TEST_F(PluginContract, ACallPastItsDeadlineCompletesWithTimeout) {
  auto instance = make("never_completes", "slowpoke");
  CallProbe probe = call(*instance, "chat", "{}", 100);
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_TIMEOUT);
  EXPECT_EQ(probe.results[0].error, "slowpoke: call timed out after 100 ms");
  // The plugin never completed it: still in flight from the plugin's side, but no breach.
  EXPECT_EQ(instance->calls_in_flight(), 1u);
  EXPECT_EQ(instance->contract_violations(), 0u);
  EXPECT_EQ(loop.pending_timers(), 0u);
  expect_ping_works(*instance);
}

TEST_F(PluginContract, ACompletionInTimeCancelsTheDeadline) {
  auto instance = make("foreign_thread");
  CallProbe probe = call(*instance, "chat", "{}", 60000);
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_OK);
  EXPECT_EQ(loop.pending_timers(), 0u);
}

TEST_F(PluginContract, CancelCompletesOnceWithCancelledThenAbsorbsTheLateCompletion) {
  auto instance = make("complete_after_cancel", "stubborn");
  CallProbe probe;
  uint64_t id = instance->start_call("chat", "{}", false, 0, probe.handlers());
  instance->cancel_call(id);
  ASSERT_EQ(probe.results.size(), 1u);  // "at once": before cancel returns
  EXPECT_EQ(probe.results[0].status, TROUPE_CANCELLED);
  EXPECT_EQ(probe.results[0].error, "stubborn: call cancelled");
  EXPECT_EQ(instance->calls_in_flight(), 1u);
  instance->cancel_call(id);  // a second cancel is ignored
  // The plugin's own OK completion arrives ~50 ms later from its thread: absorbed silently.
  ASSERT_TRUE(run_until(loop, [&] { return instance->calls_in_flight() == 0; }));
  EXPECT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(instance->contract_violations(), 0u);
  EXPECT_EQ(logs.count(log::Level::warn, "contract violation"), 0u) << logs.text();
  instance->cancel_call(id);          // finished: ignored
  instance->cancel_call(id + 12345);  // unknown: ignored
  expect_ping_works(*instance);
}

TEST_F(PluginContract, ALateCompletionAfterATimeoutIsAbsorbedSilently) {
  auto instance = make("complete_after_cancel");
  // The deadline (10 ms) passes before the plugin's completion (50 ms) is even posted.
  CallProbe probe = call(*instance, "chat", "{}", 10);
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_TIMEOUT);
  ASSERT_TRUE(run_until(loop, [&] { return instance->calls_in_flight() == 0; }));
  EXPECT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(instance->contract_violations(), 0u);
}

TEST_F(PluginContract, DestroyRunsAtOnceWhenNoCallIsInFlight) {
  auto instance = make("sync_complete");
  call(*instance, "chat");
  EXPECT_FALSE(logs.contains("fixture destroyed"));
  instance.reset();
  EXPECT_TRUE(logs.contains("fixture destroyed"));
}

TEST_F(PluginContract, DroppingAnInstanceWithACallInFlightDefersDestroyUntilThePluginCompletes) {
  auto lib = PluginLibrary::load(fixture_path("foreign_thread"));
  std::weak_ptr<PluginLibrary> weak_lib = lib;
  InstanceConfig config;
  config.name = "orphan";
  auto instance = PluginInstance::create(loop, std::move(lib), config);
  CallProbe probe;
  instance->start_call("chat", "{}", true, 0, probe.handlers());
  instance.reset();  // the plugin's thread is still going to complete the call
  EXPECT_FALSE(logs.contains("fixture destroyed"));
  EXPECT_FALSE(weak_lib.expired());
  // The caller still hears exactly once, with CANCELLED; then the plugin completes from its
  // thread, the host absorbs it and only then runs destroy() (which joins that thread).
  ASSERT_TRUE(run_until(loop, [&] { return logs.contains("fixture destroyed"); }));
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_CANCELLED);
  EXPECT_EQ(probe.results[0].error, "orphan: instance destroyed while the call was in flight");
  EXPECT_TRUE(probe.events.empty());
  ASSERT_TRUE(run_until(loop, [&] { return weak_lib.expired(); }));
}

TEST_F(PluginContract, DroppingAnInstanceWhoseCallNeverEndsDoesNotCrash) {
  auto instance = make("never_completes");
  CallProbe probe;
  instance->start_call("chat", "{}", false, 0, probe.handlers());
  instance.reset();
  ASSERT_TRUE(run_until(loop, [&] { return probe.done(); }));
  EXPECT_EQ(probe.results[0].status, TROUPE_CANCELLED);
  EXPECT_FALSE(logs.contains("fixture destroyed"));  // destroy waits for a completion
}

TEST_F(PluginContract, ConfigGetGivesScalarsAsTextAndStructuresAsJson) {
  auto instance = make(
      "sync_complete", "configured",
      R"({"model":"m-1","temperature":0.5,"stream":true,"n":3,"nested":{"a":[1,2]},"none":null})");
  auto get = [&](const std::string& key) {
    CallProbe p = call(*instance, "config", key);
    return p.results.at(0);
  };
  EXPECT_EQ(get("model").result_json, "m-1");
  EXPECT_EQ(get("temperature").result_json, "0.5");
  EXPECT_EQ(get("stream").result_json, "true");
  EXPECT_EQ(get("n").result_json, "3");
  EXPECT_EQ(get("nested").result_json, "{\"a\":[1,2]}");
  EXPECT_EQ(get("/nested/a").result_json, "[1,2]");
  EXPECT_EQ(get("model").result_json, "m-1");  // cached: same answer
  EXPECT_EQ(get("missing").status, TROUPE_NOT_FOUND);
  EXPECT_EQ(get("none").status, TROUPE_NOT_FOUND);
}

TEST_F(PluginContract, PluginLogsGoToTheHostLoggerUnderThePluginsName) {
  auto instance = make("sync_complete", "chatty");
  bool found = false;
  for (const auto& line : logs.lines())
    if (line.component == "plugin:chatty" && line.message == "fixture created") found = true;
  EXPECT_TRUE(found) << logs.text();
}

TEST_F(PluginContract, SecretsAreRedactedFromPluginLogsAndErrorMessages) {
  auto instance = make("secrets", "leaky", "{}", {{"api_key", kSecret}});
  CallProbe probe = call(*instance, "chat");
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_AUTH);
  EXPECT_EQ(probe.results[0].error, "the server rejected key [REDACTED]");
  EXPECT_TRUE(logs.contains("plugin:leaky: using api key [REDACTED]")) << logs.text();
  EXPECT_FALSE(logs.contains(kSecret));
}

TEST_F(PluginContract, SecretPlaceholdersInHeadersReachTheServerButNeverTheLogs) {
  test::HttpTestServer server;
  server.route("/v1/echo", [](const test::TestRequest& req) {
    return test::Script::text(200, "{\"seen\":\"" + req.header("X-Fixture") + "\"}",
                              "application/json");
  });
  auto instance = make("secrets", "authed", "{\"url\":\"" + server.url("/v1/echo") + "\"}",
                       {{"api_key", kSecret}});
  CallProbe probe = call(*instance, "http");
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_OK) << probe.results[0].error;
  EXPECT_EQ(probe.results[0].result_json, "{\"seen\":\"secrets\"}");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].header("Authorization"), std::string("Bearer ") + kSecret);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].body, "{\"hello\":true}");
  EXPECT_FALSE(logs.contains(kSecret));
  EXPECT_FALSE(logs.contains("${secret:"));
}

TEST_F(PluginContract, AnUnknownSecretPlaceholderRefusesTheTransfer) {
  test::HttpTestServer server;
  auto instance = make("secrets", "keyless", "{\"url\":\"" + server.url("/v1/echo") + "\"}");
  CallProbe probe = call(*instance, "http");
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_NOT_FOUND);
  EXPECT_TRUE(logs.contains("refers to unknown secret 'api_key'")) << logs.text();
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(PluginContract, CancellingACallCancelsItsTransfers) {
  test::HttpTestServer server;
  server.route("/v1/hang", [](const test::TestRequest&) {
    test::Script s;
    s.never_respond = true;
    return s;
  });
  auto instance = make("secrets", "hung", "{\"url\":\"" + server.url("/v1/hang") + "\"}",
                       {{"api_key", kSecret}});
  CallProbe probe;
  uint64_t id = instance->start_call("http", "{}", false, 0, probe.handlers());
  ASSERT_TRUE(run_until(loop, [&] { return server.request_count() == 1; }));
  EXPECT_EQ(loop.active_transfers(), 1u);
  instance->cancel_call(id);
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_CANCELLED);
  // The transfer's on_complete(CANCELLED) reaches the plugin, which then completes its call.
  ASSERT_TRUE(run_until(loop, [&] { return instance->calls_in_flight() == 0; }));
  EXPECT_EQ(loop.active_transfers(), 0u);
  EXPECT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(instance->contract_violations(), 0u);
}

TEST_F(PluginContract, ATimeoutCancelsTheCallsTransfers) {
  test::HttpTestServer server;
  server.route("/v1/hang", [](const test::TestRequest&) {
    test::Script s;
    s.never_respond = true;
    return s;
  });
  auto instance = make("secrets", "hung", "{\"url\":\"" + server.url("/v1/hang") + "\"}",
                       {{"api_key", kSecret}});
  CallProbe probe = call(*instance, "http", "{}", 200);
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_TIMEOUT);
  ASSERT_TRUE(run_until(loop, [&] { return instance->calls_in_flight() == 0; }));
  EXPECT_EQ(loop.active_transfers(), 0u);
}

}  // namespace
}  // namespace troupe
