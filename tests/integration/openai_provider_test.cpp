// openai_provider_test.cpp: the openai plugin (build/plugins/openai.so) in a real host loop
// against a scripted loopback server: non-streamed and streamed calls, the API key (sent as
// Authorization only when configured, never in logs, errors or results), custom headers and
// base_url. Fault handling shared by every vendor is in provider_wire_test.cpp.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "integration/plugin_test_util.h"
#include "plugin/plugin_instance.h"
#include "plugin/plugin_library.h"
#include "support/http_test_server.h"

namespace troupe {
namespace {

using nlohmann::json;
using test::CallProbe;
using test::run_until;
using test::Script;
using test::TestRequest;

// Fake, but shaped like a real key so a leak would be easy to spot.
const char* const kKey = "sk-test-FAKEKEY-0123456789abcdef";

const char* const kRequest =
    R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},)"
    R"({"role":"user","content":"Say hi"}],"max_tokens":50,)"
    R"("metadata":{"agent":"greeter","run_id":"run-1","step_key":"1"}})";

const char* const kCompletion = R"({
  "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini-2024-07-18",
  "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
               "message": {"role": "assistant", "content": "Hi there!", "refusal": null}}],
  "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
})";

std::string sse_chunk(const std::string& choices_and_usage) {
  return "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
         "\"model\":\"gpt-4o-mini-2024-07-18\"," +
         choices_and_usage + "}\n\n";
}

// A stream cut into network pieces at awkward places: inside "data:", inside a CRLF-free
// JSON string, and between the bytes of a 4-byte emoji.
std::vector<test::Chunk> stream_pieces() {
  std::string all =
      sse_chunk(
          R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}])") +
      sse_chunk(R"("choices":[{"index":0,"delta":{"content":"Hello "},"finish_reason":null}])") +
      sse_chunk(
          "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w\xC3\xB6rld \xF0\x9F\x91\x8B\"},"
          "\"finish_reason\":null}]") +
      sse_chunk(
          R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"wave","arguments":"{\"times\":"}}]},"finish_reason":null}])") +
      sse_chunk(
          R"("choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"2}"}}]},"finish_reason":null}])") +
      sse_chunk(R"("choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}])") +
      sse_chunk(
          R"("choices":[],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":0}})") +
      "data: [DONE]\n\n";
  size_t emoji = all.find("\xF0\x9F\x91\x8B");
  std::vector<size_t> cuts = {3, all.find("Hello") + 2, emoji + 1, emoji + 3,
                              all.find("[DONE]") - 2};
  std::vector<test::Chunk> pieces;
  size_t start = 0;
  for (size_t cut : cuts) {
    pieces.push_back({all.substr(start, cut - start), 10});
    start = cut;
  }
  pieces.push_back({all.substr(start), 10});
  return pieces;
}

class OpenAIProvider : public ::testing::Test {
 protected:
  std::shared_ptr<PluginInstance> make(json settings, bool with_key = true) {
    if (!settings.contains("base_url")) settings["base_url"] = server.url("/v1");
    InstanceConfig config;
    config.name = "openai";
    config.settings_json = settings.dump();
    if (with_key) config.secrets["api_key"] = kKey;
    std::string path = find_plugin("openai", {test::plugins_dir()});
    return PluginInstance::create(loop, PluginLibrary::load(path), config);
  }

  CallResult call(PluginInstance& instance, CallProbe& probe, bool stream,
                  const std::string& request = kRequest) {
    instance.start_call("chat", request, stream, 10000, probe.handlers());
    EXPECT_TRUE(run_until(loop, [&] { return probe.done(); }));
    EXPECT_EQ(probe.results.size(), 1u);
    return probe.results.empty() ? CallResult{} : probe.results[0];
  }

  void expect_no_key_anywhere(const CallResult& r) {
    EXPECT_EQ(r.result_json.find(kKey), std::string::npos);
    EXPECT_EQ(r.error.find(kKey), std::string::npos) << r.error;
    EXPECT_FALSE(logs.contains(kKey)) << logs.text();
  }

  test::LogCapture logs;
  EventLoop loop;
  test::HttpTestServer server;
};

TEST_F(OpenAIProvider, NonStreamedCallSendsTheChatCompletionAndNormalizesTheAnswer) {
  server.route("/v1/chat/completions", [](const TestRequest&) {
    Script s = Script::text(200, kCompletion, "application/json");
    s.headers.push_back({"x-request-id", "req_abc123"});
    return s;
  });
  auto openai = make(json::object());
  CallProbe probe;
  CallResult r = call(*openai, probe, false);
  ASSERT_EQ(r.status, TROUPE_OK) << r.error;

  json response = json::parse(r.result_json);
  EXPECT_EQ(response["text"], "Hi there!");
  EXPECT_EQ(response["finish_reason"], "stop");
  EXPECT_EQ(response["model"], "gpt-4o-mini-2024-07-18");
  EXPECT_EQ(response["request_id"], "req_abc123");
  EXPECT_EQ(response["tool_calls"], json::array());
  EXPECT_EQ(response["usage"]["total_tokens"], 15);
  EXPECT_TRUE(probe.events.empty()) << "no stream events for a non-streamed call";

  ASSERT_EQ(server.request_count(), 1u);
  TestRequest req = server.requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/v1/chat/completions");
  EXPECT_EQ(req.header("Content-Type"), "application/json");
  json body = json::parse(req.body);
  EXPECT_EQ(body["model"], "gpt-4o-mini");
  EXPECT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["max_tokens"], 50) << "a server other than api.openai.com gets max_tokens";
  EXPECT_FALSE(body.contains("metadata"));
  EXPECT_FALSE(body.contains("stream"));
  EXPECT_EQ(openai->contract_violations(), 0u);
}

TEST_F(OpenAIProvider, StreamedCallEmitsDeltasAndCompletesWithTheWholeResponse) {
  server.route("/v1/chat/completions", [](const TestRequest&) {
    Script s;
    s.headers = {{"Content-Type", "text/event-stream"}, {"x-request-id", "req_stream"}};
    s.framing = test::Framing::chunked;
    s.chunks = stream_pieces();
    return s;
  });
  auto openai = make(json::object());
  CallProbe probe;
  CallResult r = call(*openai, probe, true);
  ASSERT_EQ(r.status, TROUPE_OK) << r.error;

  json response = json::parse(r.result_json);
  const std::string text = "Hello w\xC3\xB6rld \xF0\x9F\x91\x8B";
  EXPECT_EQ(response["text"], text);
  EXPECT_EQ(probe.text, text) << "the deltas add up to the text, code points intact";
  EXPECT_EQ(response["finish_reason"], "tool_calls");
  ASSERT_EQ(response["tool_calls"].size(), 1u);
  EXPECT_EQ(response["tool_calls"][0],
            json({{"id", "call_1"}, {"name", "wave"}, {"arguments", {{"times", 2}}}}));
  EXPECT_EQ(response["usage"], json({{"input_tokens", 9},
                                     {"output_tokens", 7},
                                     {"cached_input_tokens", 4},
                                     {"reasoning_tokens", 0},
                                     {"total_tokens", 16}}));
  EXPECT_EQ(response["request_id"], "req_stream");

  size_t tool_deltas = 0, usages = 0;
  std::string arguments;
  for (const StreamEvent& e : probe.events) {
    if (e.type == TROUPE_EVENT_TOOL_CALL_DELTA) {
      ++tool_deltas;
      arguments += e.text;
      if (tool_deltas == 1) {
        EXPECT_EQ(e.tool_id, "call_1");
        EXPECT_EQ(e.tool_name, "wave");
      }
    }
    if (e.type == TROUPE_EVENT_USAGE) {
      ++usages;
      EXPECT_EQ(json::parse(e.json)["input_tokens"], 9);
    }
  }
  EXPECT_EQ(tool_deltas, 2u);
  EXPECT_EQ(arguments, "{\"times\":2}");
  EXPECT_EQ(usages, 1u);

  json body = json::parse(server.requests()[0].body);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"], json({{"include_usage", true}}));
  EXPECT_EQ(server.requests()[0].header("Accept"), "text/event-stream");
  EXPECT_EQ(openai->contract_violations(), 0u);
}

TEST_F(OpenAIProvider, KeyGoesOnlyIntoTheAuthorizationHeader) {
  server.route("/v1/chat/completions", [](const TestRequest&) {
    return Script::text(200, kCompletion, "application/json");
  });
  auto openai = make(json::object());
  CallProbe probe;
  CallResult r = call(*openai, probe, false);
  ASSERT_EQ(r.status, TROUPE_OK) << r.error;
  TestRequest req = server.requests()[0];
  EXPECT_EQ(req.header("Authorization"), std::string("Bearer ") + kKey);
  EXPECT_EQ(req.body.find(kKey), std::string::npos);
  expect_no_key_anywhere(r);
}

TEST_F(OpenAIProvider, RejectedKeyEchoedByTheServerLeaksIntoNoErrorOrLog) {
  // OpenAI's 401 names the key it got; a careless proxy might echo all of it.
  server.route("/v1/chat/completions", [](const TestRequest&) {
    json error = {{"error",
                   {{"message", std::string("Incorrect API key provided: ") + kKey + "."},
                    {"type", "invalid_request_error"},
                    {"code", "invalid_api_key"}}}};
    Script s = Script::text(401, error.dump(), "application/json");
    s.headers.push_back({"x-request-id", "req_denied"});
    return s;
  });
  auto openai = make(json::object());
  for (bool stream : {false, true}) {
    CallProbe probe;
    CallResult r = call(*openai, probe, stream);
    EXPECT_EQ(r.status, TROUPE_AUTH);
    EXPECT_FALSE(r.retryable);
    EXPECT_NE(r.error.find("openai: HTTP 401: Incorrect API key provided"), std::string::npos)
        << r.error;
    EXPECT_NE(r.error.find("(request req_denied)"), std::string::npos) << r.error;
    expect_no_key_anywhere(r);
  }
}

TEST_F(OpenAIProvider, NoAuthorizationHeaderWithoutAKey) {
  server.route("/v1/chat/completions", [](const TestRequest&) {
    return Script::text(200, kCompletion, "application/json");
  });
  auto local = make(json::object(), /*with_key=*/false);
  CallProbe probe;
  CallResult r = call(*local, probe, false);
  ASSERT_EQ(r.status, TROUPE_OK) << r.error;
  EXPECT_FALSE(server.requests()[0].has_header("Authorization"));
}

TEST_F(OpenAIProvider, CustomHeadersAndBaseUrlAreHonoured) {
  server.route("/api/v1/chat/completions", [](const TestRequest&) {
    return Script::text(200, kCompletion, "application/json");
  });
  json settings = {
      {"base_url", server.url("/api/v1/")},
      {"headers", {{"HTTP-Referer", "https://example.test/app"}, {"X-Title", "troupe tests"}}},
      {"max_tokens_param", "max_completion_tokens"}};
  auto openrouter = make(settings);
  CallProbe probe;
  CallResult r = call(*openrouter, probe, false);
  ASSERT_EQ(r.status, TROUPE_OK) << r.error;
  TestRequest req = server.requests()[0];
  EXPECT_EQ(req.path, "/api/v1/chat/completions") << "the trailing slash of base_url is dropped";
  EXPECT_EQ(req.header("HTTP-Referer"), "https://example.test/app");
  EXPECT_EQ(req.header("X-Title"), "troupe tests");
  EXPECT_EQ(json::parse(req.body)["max_completion_tokens"], 50) << "max_tokens_param overrides";
}

TEST_F(OpenAIProvider, UnknownSettingIsAWarningAndBadSettingRefusesTheInstance) {
  auto openai = make({{"bse_url", "http://typo.test"}});
  EXPECT_TRUE(logs.contains("openai: unknown setting 'bse_url' (ignored)")) << logs.text();
  try {
    make({{"idle_timeout_s", "soon"}});
    ADD_FAILURE() << "a bad setting must refuse the instance";
  } catch (const std::exception& e) {
    EXPECT_NE(
        std::string(e.what()).find("openai: settings.idle_timeout_s: expected a number of seconds"),
        std::string::npos)
        << e.what();
  }
}

TEST_F(OpenAIProvider, StreamCutBeforeDoneFailsRetryably) {
  server.route("/v1/chat/completions", [](const TestRequest&) {
    Script s;
    s.headers = {{"Content-Type", "text/event-stream"}};
    s.framing = test::Framing::chunked;
    s.chunks = {
        {sse_chunk(R"("choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}])"), 0},
        {"data: {\"id\":\"x\",\"cho", 10}};
    return s;
  });
  auto openai = make(json::object());
  CallProbe probe;
  CallResult r = call(*openai, probe, true);
  EXPECT_EQ(r.status, TROUPE_TRANSPORT);
  EXPECT_TRUE(r.retryable);
  EXPECT_EQ(r.error, "openai: stream ended before [DONE] (in the middle of an event)");
  EXPECT_EQ(probe.text, "Hel");
}

TEST_F(OpenAIProvider, CancelMidStreamCompletesOnceWithCancelled) {
  server.route("/v1/chat/completions", [](const TestRequest&) {
    Script s;
    s.headers = {{"Content-Type", "text/event-stream"}};
    s.framing = test::Framing::chunked;
    s.chunks = {
        {sse_chunk(R"("choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}])"), 0},
        {"data: [DONE]\n\n", 30000}};
    return s;
  });
  auto openai = make(json::object());
  CallProbe probe;
  uint64_t id = openai->start_call("chat", kRequest, true, 0, probe.handlers());
  ASSERT_TRUE(run_until(loop, [&] { return !probe.events.empty(); }));
  openai->cancel_call(id);
  ASSERT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(probe.results[0].status, TROUPE_CANCELLED);
  ASSERT_TRUE(run_until(loop, [&] { return openai->calls_in_flight() == 0; }));
  EXPECT_EQ(probe.results.size(), 1u);
  EXPECT_EQ(openai->contract_violations(), 0u);
}

TEST_F(OpenAIProvider, ErrorChunkMidStreamFailsAtOnceMappedByItsType) {
  server.route("/v1/chat/completions", [](const TestRequest&) {
    Script s;
    s.headers = {{"Content-Type", "text/event-stream"}, {"x-request-id", "req_mid"}};
    s.framing = test::Framing::chunked;
    s.chunks = {
        {sse_chunk(R"("choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}])") +
             "data: {\"error\":{\"message\":\"The server is "
             "overloaded\",\"type\":\"server_error\"}}\n\n",
         0},
        {"data: [DONE]\n\n", 30000}};  // never reached: the plugin stops the transfer
    return s;
  });
  auto openai = make(json::object());
  CallProbe probe;
  CallResult r = call(*openai, probe, true);
  EXPECT_EQ(r.status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(r.retryable);
  EXPECT_EQ(r.error, "openai: server_error: The server is overloaded (request req_mid)");
  ASSERT_TRUE(run_until(loop, [&] { return openai->calls_in_flight() == 0; }));
  EXPECT_EQ(loop.active_transfers(), 0u);
  EXPECT_EQ(openai->contract_violations(), 0u);
}

TEST_F(OpenAIProvider, BodyOverMaxResponseBytesIsTooLarge) {
  std::string big =
      json({{"model", "m"},
            {"choices",
             {{{"index", 0},
               {"finish_reason", "stop"},
               {"message", {{"role", "assistant"}, {"content", std::string(5000, 'x')}}}}}}})
          .dump();
  server.route("/v1/chat/completions", [big](const TestRequest&) {
    Script s;
    s.headers = {{"Content-Type", "application/json"}};
    for (size_t i = 0; i < big.size(); i += 1000)
      s.chunks.push_back({big.substr(i, 1000), 5});
    return s;
  });
  auto openai = make({{"max_response_bytes", 2048}});
  CallProbe probe;
  CallResult r = call(*openai, probe, false);
  EXPECT_EQ(r.status, TROUPE_TOO_LARGE);
  EXPECT_FALSE(r.retryable);
  EXPECT_EQ(r.error, "openai: response larger than max_response_bytes (2048 bytes)");
  ASSERT_TRUE(run_until(loop, [&] { return openai->calls_in_flight() == 0; }));
  EXPECT_EQ(openai->contract_violations(), 0u);
}

}  // namespace
}  // namespace troupe
