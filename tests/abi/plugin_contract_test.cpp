// plugin_contract_test.cpp: the built echo_c.so and mock.so honour the C ABI when loaded with
// dlopen.
//
// This pins the plugins' side of the contract at the raw C level (the host's loader and
// PluginInstance have their own tests): the one exported entry, create errors, exactly one
// completion, events before it, timers for latency, cancel.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "abi/fake_host.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using troupe::testing::FakeHost;

// build/plugins: $TROUPE_BUILD_DIR/plugins (CTest sets it), else next to this test's folder.
fs::path plugin_dir() {
  if (const char* b = std::getenv("TROUPE_BUILD_DIR"); b != nullptr && *b != '\0') {
    return fs::path(b) / "plugins";
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("plugins") : exe.parent_path().parent_path() / "plugins";
}

// One loaded plugin library and, optionally, one instance of it.
class Loaded {
 public:
  explicit Loaded(const std::string& name) {
    fs::path path = plugin_dir() / (name + ".so");
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      error_ = dlerror();
      return;
    }
    auto describe =
        reinterpret_cast<troupe_plugin_describe_fn>(dlsym(handle_, TROUPE_PLUGIN_ENTRY));
    if (describe == nullptr) {
      error_ = "no entry symbol";
      return;
    }
    d = describe(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR);
    wrong_major = describe(TROUPE_ABI_MAJOR + 1, 0);
  }
  ~Loaded() {
    if (instance != nullptr) d->destroy(instance);
    if (handle_ != nullptr) dlclose(handle_);
  }
  const std::string& error() const { return error_; }

  // Creates the instance; returns the create error ("" on success).
  std::string create(const std::string& config = "{}") {
    troupe_str_t error{nullptr, 0};
    if (d->create(host.api(), host.handle(), {config.data(), config.size()}, &instance, &error) !=
        TROUPE_OK) {
      instance = nullptr;
      return error.len ? std::string(error.ptr, error.len) : std::string("(no message)");
    }
    return {};
  }
  void invoke(troupe_call_id_t id, const std::string& request, bool stream = false,
              const std::string& operation = "chat") {
    host.invoke(d, instance, id, operation, request, stream);
  }

  FakeHost host;
  const troupe_plugin_descriptor_t* d = nullptr;
  const troupe_plugin_descriptor_t* wrong_major = nullptr;
  void* instance = nullptr;

 private:
  void* handle_ = nullptr;
  std::string error_;
};

std::string chat(const std::string& user, const std::string& model = "m") {
  return json({{"model", model}, {"messages", {{{"role", "user"}, {"content", user}}}}}).dump();
}

// ---- echo_c -----------------------------------------------------------------------------

TEST(EchoCPlugin, DescribesItselfAsAProviderAndRefusesAnotherMajor) {
  Loaded p("echo_c");
  ASSERT_NE(p.d, nullptr) << p.error();
  EXPECT_STREQ(p.d->name, "echo_c");
  EXPECT_EQ(p.d->kind, TROUPE_PLUGIN_PROVIDER);
  EXPECT_EQ(p.d->struct_size, sizeof(troupe_plugin_descriptor_t));
  EXPECT_TRUE(json::parse(p.d->capabilities).is_object());
  EXPECT_EQ(p.wrong_major, nullptr);
}

TEST(EchoCPlugin, EchoesTheLastUserMessageInsideInvoke) {
  Loaded p("echo_c");
  ASSERT_NE(p.d, nullptr) << p.error();
  ASSERT_EQ(p.create(), "");
  std::string req = json::parse(R"({"model":"gpt-4o","temperature":0.5,"messages":[
      {"role":"system","content":"be brief"},
      {"content":"first","role":"user"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c","name":"t","arguments":{"a":[1,{"b":"]"}]}}]},
      {"role":"user","content":"say \"hi\"\nthen \\ stop \u00e9"}]})")
                        .dump();
  p.invoke(1, req);
  ASSERT_EQ(p.host.completion_count(1), 1u);  // synchronously, inside invoke
  auto c = p.host.completion(1);
  ASSERT_EQ(c.status, TROUPE_OK) << c.error;
  json r = json::parse(c.result);
  EXPECT_EQ(r["text"], "echo: say \"hi\"\nthen \\ stop \u00e9");
  EXPECT_EQ(r["model"], "gpt-4o");
  EXPECT_EQ(r["finish_reason"], "stop");
  EXPECT_EQ(r["tool_calls"], json::array());
  EXPECT_EQ(r["usage"]["total_tokens"].get<int>(),
            r["usage"]["input_tokens"].get<int>() + r["usage"]["output_tokens"].get<int>());
  EXPECT_GT(r["usage"]["output_tokens"].get<int>(), 0);
  EXPECT_TRUE(p.host.logged(TROUPE_LOG_DEBUG, "echoing"));
}

TEST(EchoCPlugin, HonoursThePrefixSetting) {
  Loaded p("echo_c");
  ASSERT_NE(p.d, nullptr) << p.error();
  p.host.config["prefix"] = "you said \"";
  ASSERT_EQ(p.create(R"({"prefix":"you said \""})"), "");
  p.invoke(1, chat("hello"));
  EXPECT_EQ(json::parse(p.host.completion(1).result)["text"], "you said \"hello");
}

TEST(EchoCPlugin, RejectsBadRequestsAndOtherOperations) {
  Loaded p("echo_c");
  ASSERT_NE(p.d, nullptr) << p.error();
  ASSERT_EQ(p.create(), "");
  p.invoke(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"unterminated}]}");
  EXPECT_EQ(p.host.completion(1).status, TROUPE_INVALID_ARGUMENT);
  p.invoke(2, R"({"model":"m","messages":[{"role":"system","content":"x"}]})");
  EXPECT_EQ(p.host.completion(2).status, TROUPE_INVALID_ARGUMENT);
  EXPECT_NE(p.host.completion(2).error.find("no user message"), std::string::npos);
  p.invoke(3, chat("x"), false, "tool.search");
  EXPECT_EQ(p.host.completion(3).status, TROUPE_UNSUPPORTED);
  for (troupe_call_id_t id = 1; id <= 3; ++id)
    EXPECT_EQ(p.host.completion_count(id), 1u);
}

// ---- mock -------------------------------------------------------------------------------

TEST(MockPlugin, ZeroLatencyCompletesInsideInvokeWithoutTimers) {
  Loaded p("mock");
  ASSERT_NE(p.d, nullptr) << p.error();
  EXPECT_STREQ(p.d->name, "mock");
  EXPECT_EQ(p.wrong_major, nullptr);
  ASSERT_EQ(p.create(), "");
  p.invoke(1, chat("hello there", "gpt-4o"));
  ASSERT_EQ(p.host.completion_count(1), 1u);
  EXPECT_EQ(p.host.timers_started, 0u);
  json r = json::parse(p.host.completion(1).result);
  EXPECT_EQ(r["model"], "gpt-4o");
  EXPECT_EQ(r["request_id"], "mock-1");
  EXPECT_FALSE(r["text"].get<std::string>().empty());
}

TEST(MockPlugin, StreamsTextChunksThenToolCallsThenUsageThenCompletes) {
  Loaded p("mock");
  ASSERT_NE(p.d, nullptr) << p.error();
  ASSERT_EQ(p.create(R"({"stream_chunk_chars":4,"rules":[{"match":"go","reply":"abcdefghij",
      "tool_calls":[{"name":"search","arguments":{"q":"x"}}]}]})"),
            "");
  json req = json::parse(chat("go"));
  req["tools"] =
      json::parse(R"([{"name":"search","description":"d","parameters":{"type":"object"}}])");
  p.invoke(1, req.dump(), true);
  ASSERT_EQ(p.host.completion_count(1), 1u);
  const auto& ev = p.host.events[1];
  ASSERT_EQ(ev.size(), 5u);  // 3 text chunks, 1 tool call, usage
  EXPECT_EQ(ev[0].text + ev[1].text + ev[2].text, "abcdefghij");
  EXPECT_EQ(ev[0].text, "abcd");
  EXPECT_EQ(ev[3].type, TROUPE_EVENT_TOOL_CALL_DELTA);
  EXPECT_EQ(ev[3].tool_id, "call_1");
  EXPECT_EQ(ev[3].tool_name, "search");
  EXPECT_EQ(json::parse(ev[3].text), json({{"q", "x"}}));
  EXPECT_EQ(ev[4].type, TROUPE_EVENT_USAGE);
  json r = json::parse(p.host.completion(1).result);
  EXPECT_EQ(r["finish_reason"], "tool_calls");
  EXPECT_EQ(json::parse(ev[4].json), r["usage"]);
}

TEST(MockPlugin, LatencyUsesHostTimersAndSpreadsTheStream) {
  Loaded p("mock");
  ASSERT_NE(p.d, nullptr) << p.error();
  ASSERT_EQ(p.create(R"({"latency_ms":100,"stream_chunk_chars":2,"rules":[{"reply":"abcdef"}]})"),
            "");
  p.invoke(1, chat("x"), true);
  EXPECT_EQ(p.host.completion_count(1), 0u);
  EXPECT_TRUE(p.host.events[1].empty());
  p.host.advance(50);  // steps at 25, 50, 75 and 100 ms
  EXPECT_EQ(p.host.completion_count(1), 0u);
  EXPECT_EQ(p.host.events[1].size(), 2u);
  p.host.advance(49);
  EXPECT_EQ(p.host.completion_count(1), 0u);
  p.host.advance(1);
  ASSERT_EQ(p.host.completion_count(1), 1u);
  EXPECT_EQ(p.host.completion(1).status, TROUPE_OK);
  EXPECT_EQ(p.host.pending_timers(), 0u);

  p.invoke(2, chat("x"));  // not streaming: one timer, at the full latency
  p.host.advance(99);
  EXPECT_EQ(p.host.completion_count(2), 0u);
  p.host.advance(1);
  EXPECT_EQ(p.host.completion_count(2), 1u);
}

TEST(MockPlugin, CancelStopsTheTimerAndCompletesCancelled) {
  Loaded p("mock");
  ASSERT_NE(p.d, nullptr) << p.error();
  ASSERT_EQ(p.create(R"({"latency_ms":1000})"), "");
  p.invoke(1, chat("x"));
  EXPECT_EQ(p.host.pending_timers(), 1u);
  p.d->cancel(p.instance, 1);
  EXPECT_EQ(p.host.pending_timers(), 0u);
  ASSERT_EQ(p.host.completion_count(1), 1u);
  EXPECT_EQ(p.host.completion(1).status, TROUPE_CANCELLED);
  p.d->cancel(p.instance, 1);  // again, and unknown ids: ignored
  p.d->cancel(p.instance, 12345);
  EXPECT_EQ(p.host.completion_count(1), 1u);
}

TEST(MockPlugin, HangWaitsForCancel) {
  Loaded p("mock");
  ASSERT_NE(p.d, nullptr) << p.error();
  ASSERT_EQ(p.create(), "");
  p.invoke(1, chat("x", "hang"), true);
  p.host.advance(3600 * 1000);
  EXPECT_EQ(p.host.completion_count(1), 0u);
  p.d->cancel(p.instance, 1);
  ASSERT_EQ(p.host.completion_count(1), 1u);
  EXPECT_EQ(p.host.completion(1).status, TROUPE_CANCELLED);
}

TEST(MockPlugin, InjectedFailuresCarryStatusAndRetryHints) {
  Loaded p("mock");
  ASSERT_NE(p.d, nullptr) << p.error();
  ASSERT_EQ(p.create(), "");
  p.invoke(1, chat("x", "error-rate-limited"));
  auto c = p.host.completion(1);
  EXPECT_EQ(c.status, TROUPE_RATE_LIMITED);
  EXPECT_TRUE(c.retryable);
  EXPECT_EQ(c.retry_after_ms, 1000u);
  p.invoke(2, chat("x"), false, "tool.search");
  EXPECT_EQ(p.host.completion(2).status, TROUPE_UNSUPPORTED);
}

TEST(MockPlugin, BadSettingsAreACreateErrorNamingTheField) {
  Loaded p("mock");
  ASSERT_NE(p.d, nullptr) << p.error();
  std::string error = p.create(R"({"rules":[{"error":{"status":"nope"}}]})");
  EXPECT_NE(error.find("rules[0].error.status"), std::string::npos) << error;
}

}  // namespace
