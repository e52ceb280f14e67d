// sdk_test.cpp: plugin.hpp keeps the ABI's promises for C++ plugins — one completion, barriers,
// closures.
//
// A test plugin is compiled into this executable with TROUPE_PLUGIN and driven through its
// descriptor exactly as the host drives a loaded .so, against the FakeHost.
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include <troupe/plugin.hpp>

#include "abi/fake_host.h"

namespace {

using troupe::sdk::Call;
using troupe::sdk::Host;
using troupe::testing::FakeHost;

// Captured by callbacks that never run, to see that destroy() frees them.
std::shared_ptr<int> g_token = std::make_shared<int>(0);

// What the test plugin does is chosen by the request text.
class Probe : public troupe::sdk::Plugin {
 public:
  Probe(Host host, std::string_view config) : Plugin(host, config) {
    if (config.find("\"fail\"") != std::string_view::npos) {
      throw std::runtime_error("probe: the setting \"fail\" is not allowed");
    }
    if (config.find("\"weird\"") != std::string_view::npos) throw 42;
  }

  void invoke(std::shared_ptr<Call> call) override {
    const std::string& r = call->request();
    if (r == "finish") {
      call->text_delta("Hel");
      call->text_delta("lo");
      call->tool_call_delta(0, "call_1", "search", "{\"q\":1}");
      call->usage(R"({"input_tokens":1})");
      EXPECT_TRUE(call->finish(R"({"text":"Hello"})"));
      EXPECT_FALSE(call->finish(R"({"text":"again"})"));
      EXPECT_FALSE(call->fail(TROUPE_INTERNAL, "too late"));
      call->text_delta("after the end");  // ignored by the SDK
    } else if (r == "drop") {
      // forgets the call
    } else if (r == "throw") {
      throw std::logic_error("kaboom");
    } else if (r == "throw-after-keeping") {
      kept_ = call;
      throw std::runtime_error("half done");
    } else if (r == "timer") {
      host().timer(50, [call] { call->finish("{}"); });
    } else if (r == "timer-cancelled") {
      auto handle = host().timer(50, [call] { call->finish("{}"); });
      EXPECT_TRUE(host().cancel_timer(handle));
      EXPECT_FALSE(host().cancel_timer(handle));
      call->fail(TROUPE_CANCELLED, "stopped");
    } else if (r == "timer-throws") {
      host().timer(1, [] { throw std::runtime_error("timer trouble"); });
      call->finish("{}");
    } else if (r == "pending-timer") {
      host().timer(100000, [call] { call->finish("{}"); });  // outlives the instance
      kept_ = call;
    } else if (r == "pending-callbacks") {
      // A post the loop never runs and a transfer that never completes before destroy.
      std::shared_ptr<int> token = g_token;
      host().post([token] {});
      troupe::sdk::HttpRequest req;
      req.url = "http://127.0.0.1:1/";
      troupe::sdk::HttpHandlers handlers;
      handlers.on_complete = [token](troupe_status_t, std::string_view) {};
      host().http(req, std::move(handlers));
      host().timer(1000, [token] {});
      call->finish("{}");
    } else if (r == "thread") {
      // Work on another thread, completion posted back to the loop.
      Host h = host();
      std::thread([h, call] { h.post([call] { call->finish(R"({"from":"post"})"); }); }).join();
    } else if (r == "thread-complete") {
      std::thread([call] { call->fail(TROUPE_UNAVAILABLE, "worker failed", true, 250); }).join();
    } else if (r == "config") {
      auto key = host().config("model");
      auto missing = host().config("nope");
      auto secret = host().secret("api_key");
      call->finish(std::string(R"({"model":")") + key.value_or("?") + R"(","missing":)" +
                   (missing ? "false" : "true") + R"(,"secret_len":)" +
                   std::to_string(secret ? secret->size() : 0) + "}");
    } else if (r == "http") {
      troupe::sdk::HttpRequest req;
      req.method = "POST";
      req.url = "http://127.0.0.1:1/v1/chat";
      req.headers = {{"Authorization", "Bearer ${secret:api_key}"}};
      req.body = "{}";
      req.call = call->id();
      auto body = std::make_shared<std::string>();
      auto status = std::make_shared<int>(0);
      troupe::sdk::HttpHandlers handlers;
      handlers.on_headers = [status](int code, const troupe::sdk::HttpHeaders& headers) {
        *status = code;
        EXPECT_EQ(headers.at(0).first, "Content-Type");
      };
      handlers.on_chunk = [body](std::string_view chunk) { body->append(chunk); };
      handlers.on_complete = [call, body, status](troupe_status_t s, std::string_view) {
        if (s == TROUPE_OK && *status == 200) {
          call->finish(*body);
        } else {
          call->fail(s == TROUPE_OK ? TROUPE_UNAVAILABLE : s, "http failed");
        }
      };
      auto transfer = host().http(req, std::move(handlers));
      if (!transfer) call->fail(transfer.status, "no http");
    } else {
      call->fail(TROUPE_INVALID_ARGUMENT, "probe: unknown request " + r);
    }
  }

  void cancel(troupe_call_id_t id) override {
    if (kept_ && kept_->id() == id) {
      kept_->fail(TROUPE_CANCELLED, "cancelled");
      kept_.reset();
    }
    if (id == 999) throw std::runtime_error("cancel trouble");
  }

 private:
  std::shared_ptr<Call> kept_;
};

}  // namespace

TROUPE_PLUGIN(Probe, TROUPE_PLUGIN_PROVIDER, "probe", "0.1.0", "SDK test plugin",
              R"({"operations":["chat"]})")

namespace {

class SdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = troupe_plugin_describe(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR);
    ASSERT_NE(d_, nullptr);
  }
  void TearDown() override {
    if (instance_ != nullptr) d_->destroy(instance_);
  }
  void create(std::string_view config = "{}") {
    troupe_str_t error{nullptr, 0};
    ASSERT_EQ(
        d_->create(host_.api(), host_.handle(), {config.data(), config.size()}, &instance_, &error),
        TROUPE_OK);
  }
  void call(troupe_call_id_t id, std::string_view request, bool stream = false) {
    host_.invoke(d_, instance_, id, "chat", request, stream);
  }

  FakeHost host_;
  const troupe_plugin_descriptor_t* d_ = nullptr;
  void* instance_ = nullptr;
};

TEST_F(SdkTest, DescribeFillsTheDescriptorAndRefusesAnotherMajor) {
  EXPECT_EQ(d_->struct_size, sizeof(troupe_plugin_descriptor_t));
  EXPECT_EQ(d_->abi_major, TROUPE_ABI_MAJOR);
  EXPECT_EQ(d_->abi_minor, TROUPE_ABI_MINOR);
  EXPECT_EQ(d_->kind, TROUPE_PLUGIN_PROVIDER);
  EXPECT_STREQ(d_->name, "probe");
  EXPECT_STREQ(d_->version, "0.1.0");
  EXPECT_STREQ(d_->capabilities, R"({"operations":["chat"]})");
  EXPECT_NE(d_->create, nullptr);
  EXPECT_NE(d_->destroy, nullptr);
  EXPECT_NE(d_->invoke, nullptr);
  EXPECT_NE(d_->cancel, nullptr);
  EXPECT_EQ(troupe_plugin_describe(TROUPE_ABI_MAJOR + 1, 0), nullptr);
  EXPECT_EQ(troupe_plugin_describe(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR + 5), d_);
  EXPECT_EQ(troupe_plugin_describe(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR), d_);  // static, stable
}

TEST_F(SdkTest, ConstructorExceptionBecomesACreateErrorWithItsMessage) {
  void* instance = nullptr;
  troupe_str_t error{nullptr, 0};
  std::string config = R"({"fail":true})";
  EXPECT_NE(
      d_->create(host_.api(), host_.handle(), {config.data(), config.size()}, &instance, &error),
      TROUPE_OK);
  EXPECT_EQ(instance, nullptr);
  EXPECT_EQ(std::string(error.ptr, error.len), "probe: the setting \"fail\" is not allowed");

  config = R"({"weird":1})";
  EXPECT_NE(
      d_->create(host_.api(), host_.handle(), {config.data(), config.size()}, &instance, &error),
      TROUPE_OK);
  EXPECT_NE(std::string(error.ptr, error.len).find("unknown exception"), std::string::npos);
}

TEST_F(SdkTest, EventsPrecedeExactlyOneCompletionAndLaterOnesAreIgnored) {
  create();
  call(1, "finish", true);
  ASSERT_EQ(host_.completion_count(1), 1u);
  EXPECT_EQ(host_.completion(1).status, TROUPE_OK);
  EXPECT_EQ(host_.completion(1).result, R"({"text":"Hello"})");
  const auto& events = host_.events[1];
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, TROUPE_EVENT_TEXT_DELTA);
  EXPECT_EQ(events[0].text + events[1].text, "Hello");
  EXPECT_EQ(events[2].type, TROUPE_EVENT_TOOL_CALL_DELTA);
  EXPECT_EQ(events[2].tool_id, "call_1");
  EXPECT_EQ(events[2].tool_name, "search");
  EXPECT_EQ(events[2].text, "{\"q\":1}");
  EXPECT_EQ(events[3].type, TROUPE_EVENT_USAGE);
  EXPECT_EQ(events[3].json, R"({"input_tokens":1})");
}

TEST_F(SdkTest, ACallDroppedWithoutCompletionCompletesAsInternal) {
  create();
  call(2, "drop");
  ASSERT_EQ(host_.completion_count(2), 1u);
  EXPECT_EQ(host_.completion(2).status, TROUPE_INTERNAL);
  EXPECT_EQ(host_.completion(2).error, "plugin dropped the call without completing it");
}

TEST_F(SdkTest, AnExceptionFromInvokeCompletesTheCallAsInternalOnce) {
  create();
  call(3, "throw");
  ASSERT_EQ(host_.completion_count(3), 1u);
  EXPECT_EQ(host_.completion(3).status, TROUPE_INTERNAL);
  EXPECT_NE(host_.completion(3).error.find("kaboom"), std::string::npos);

  call(4, "throw-after-keeping");  // the plugin kept the call, then threw
  ASSERT_EQ(host_.completion_count(4), 1u);
  EXPECT_NE(host_.completion(4).error.find("half done"), std::string::npos);
  d_->cancel(instance_, 4);  // the kept call's late completion is swallowed by the SDK
  EXPECT_EQ(host_.completion_count(4), 1u);
}

TEST_F(SdkTest, TimerClosuresRunOnceAndCancelledOnesNever) {
  create();
  call(5, "timer");
  EXPECT_EQ(host_.completion_count(5), 0u);
  host_.advance(49);
  EXPECT_EQ(host_.completion_count(5), 0u);
  host_.advance(1);
  EXPECT_EQ(host_.completion_count(5), 1u);
  EXPECT_EQ(host_.completion(5).status, TROUPE_OK);

  call(6, "timer-cancelled");
  EXPECT_EQ(host_.timers_cancelled, 1u);
  host_.advance(100);
  ASSERT_EQ(host_.completion_count(6), 1u);
  EXPECT_EQ(host_.completion(6).status, TROUPE_CANCELLED);
  EXPECT_EQ(host_.pending_timers(), 0u);
}

TEST_F(SdkTest, AnExceptionFromATimerIsLoggedNotPropagated) {
  create();
  call(7, "timer-throws");
  host_.advance(5);
  EXPECT_TRUE(host_.logged(TROUPE_LOG_ERROR, "timer trouble"));
}

TEST_F(SdkTest, AnExceptionFromCancelIsLoggedNotPropagated) {
  create();
  d_->cancel(instance_, 999);
  EXPECT_TRUE(host_.logged(TROUPE_LOG_ERROR, "cancel trouble"));
}

TEST_F(SdkTest, DestroyCancelsTheTimersTheSdkStillOwns) {
  create();
  call(8, "pending-timer");
  EXPECT_EQ(host_.pending_timers(), 1u);
  d_->cancel(instance_, 8);  // the host destroys only once calls are done
  d_->destroy(instance_);
  instance_ = nullptr;
  EXPECT_EQ(host_.pending_timers(), 0u);  // and the closure was freed (ASan checks leaks)
}

TEST_F(SdkTest, DestroyFreesTheClosuresOfCallbacksTheHostWillNeverRun) {
  create();
  call(14, "pending-callbacks");
  EXPECT_EQ(g_token.use_count(), 4);  // held by the post, the transfer and the timer
  d_->destroy(instance_);             // like the real host, the fake never runs them after this
  instance_ = nullptr;
  EXPECT_EQ(g_token.use_count(), 1);
  EXPECT_EQ(host_.pending_timers(), 0u);
}

TEST_F(SdkTest, WorkerThreadsCanPostOrCompleteDirectly) {
  create();
  call(9, "thread");
  EXPECT_EQ(host_.completion_count(9), 0u);
  EXPECT_EQ(host_.drain_posts(), 1u);
  ASSERT_EQ(host_.completion_count(9), 1u);
  EXPECT_EQ(host_.completion(9).result, R"({"from":"post"})");

  call(10, "thread-complete");
  ASSERT_EQ(host_.completion_count(10), 1u);
  EXPECT_EQ(host_.completion(10).status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(host_.completion(10).retryable);
  EXPECT_EQ(host_.completion(10).retry_after_ms, 250u);
}

TEST_F(SdkTest, APostRefusedAtShutdownFreesTheClosure) {
  create();
  host_.shutting_down = true;
  Host h(host_.api(), host_.handle());
  auto token = std::make_shared<int>(1);
  EXPECT_FALSE(h.post([token] {}));
  EXPECT_EQ(token.use_count(), 1);  // the closure (and its capture) is gone
}

TEST_F(SdkTest, ConfigAndSecretsAreReadThroughTheHost) {
  host_.config["model"] = "gpt-4o";
  host_.secrets["api_key"] = "sk-12345";
  create();
  call(11, "config");
  EXPECT_EQ(host_.completion(11).result, R"({"model":"gpt-4o","missing":true,"secret_len":8})");
}

TEST_F(SdkTest, HttpHandlersReceiveTheTransferAndAreFreedAfterCompletion) {
  create();
  call(12, "http");
  ASSERT_EQ(host_.transfers.size(), 1u);
  auto& [handle, t] = *host_.transfers.begin();
  (void)handle;
  EXPECT_EQ(t.call, 12u);
  EXPECT_EQ(t.method, "POST");
  EXPECT_EQ(t.url, "http://127.0.0.1:1/v1/chat");
  ASSERT_EQ(t.headers.size(), 1u);
  EXPECT_EQ(t.headers[0].second, "Bearer ${secret:api_key}");

  troupe_http_header_t header{{"Content-Type", 12}, {"application/json", 16}};
  t.callbacks.on_headers(t.callbacks.user_data, 200, &header, 1);
  t.callbacks.on_chunk(t.callbacks.user_data, {"{\"ok\":", 6});
  t.callbacks.on_chunk(t.callbacks.user_data, {"true}", 5});
  EXPECT_EQ(host_.completion_count(12), 0u);
  t.callbacks.on_complete(t.callbacks.user_data, TROUPE_OK, {nullptr, 0});
  ASSERT_EQ(host_.completion_count(12), 1u);
  EXPECT_EQ(host_.completion(12).result, R"({"ok":true})");
}

TEST_F(SdkTest, ARefusedHttpStartRunsNoHandler) {
  host_.refuse_http = true;
  create();
  call(13, "http");
  ASSERT_EQ(host_.completion_count(13), 1u);
  EXPECT_EQ(host_.completion(13).status, TROUPE_UNSUPPORTED);
  EXPECT_EQ(host_.completion(13).error, "no http");
}

TEST(SdkCall, AMovedCallCompletesOnceFromItsNewOwner) {
  FakeHost host;
  troupe_call_t c{};
  c.struct_size = sizeof c;
  c.id = 77;
  c.operation = {"chat", 4};
  c.request = {"{}", 2};
  {
    Call a(host.api(), host.handle(), c);
    Call b(std::move(a));
    EXPECT_EQ(b.id(), 77u);
    EXPECT_EQ(b.operation(), "chat");
    EXPECT_EQ(b.request(), "{}");
    EXPECT_TRUE(a.completed());  // a moved-from Call will not complete anything
    EXPECT_FALSE(b.completed());
  }
  ASSERT_EQ(host.completion_count(77), 1u);
  EXPECT_EQ(host.completion(77).status, TROUPE_INTERNAL);

  c.id = 78;
  Call x(host.api(), host.handle(), c);
  c.id = 79;
  Call y(host.api(), host.handle(), c);
  x = std::move(y);  // x's own call (78) is dropped, so it completes now
  EXPECT_EQ(host.completion_count(78), 1u);
  EXPECT_EQ(host.completion_count(79), 0u);
  EXPECT_TRUE(x.finish("{}"));
  EXPECT_EQ(host.completion(79).status, TROUPE_OK);
}

TEST(SdkStatus, NamesAreTheLowercaseCodeNames) {
  EXPECT_STREQ(troupe::sdk::status_name(TROUPE_RATE_LIMITED), "rate_limited");
  EXPECT_STREQ(troupe::sdk::status_name(TROUPE_BUDGET_EXCEEDED), "budget_exceeded");
  EXPECT_STREQ(troupe::sdk::status_name(1234), "unknown");
  EXPECT_EQ(troupe::sdk::status_from_name("too_large"), TROUPE_TOO_LARGE);
  EXPECT_FALSE(troupe::sdk::status_from_name("TOO_LARGE").has_value());
}

}  // namespace
