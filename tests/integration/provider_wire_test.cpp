// provider_wire_test.cpp: the four real provider plugins (openai, anthropic, gemini, ollama)
// from build/plugins, in a real host loop, against the fake vendor server
// (tests/support/vendor_server.h): the normalized results of the happy paths, the status,
// retryability, retry hint and message of every fault, cancel and timeouts, and that the API
// key reaches the vendor only in its auth header and appears nowhere else.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "integration/plugin_test_util.h"
#include "plugin/plugin_instance.h"
#include "plugin/plugin_library.h"
#include "support/test_paths.h"
#include "support/test_text.h"
#include "support/vendor_server.h"
#include "troupe/plugin.hpp"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::FakeReply;
using test::FakeToolCall;
using test::FakeUsage;
using test::Vendor;
using test::VendorServer;

constexpr char kKey[] = "sk-test-SECRET-1234";
const Vendor kVendors[] = {Vendor::openai, Vendor::anthropic, Vendor::gemini, Vendor::ollama};

std::string model_for(Vendor vendor) {
  switch (vendor) {
    case Vendor::openai:
      return "gpt-4o";
    case Vendor::anthropic:
      return "claude-sonnet-4-5";
    case Vendor::gemini:
      return "gemini-2.5-flash";
    case Vendor::ollama:
      return "llama3.2";
  }
  return "";
}

// The header that carries the key, and its exact value.
std::pair<std::string, std::string> auth_header(Vendor vendor) {
  switch (vendor) {
    case Vendor::openai:
    case Vendor::ollama:
      return {"authorization", std::string("Bearer ") + kKey};
    case Vendor::anthropic:
      return {"x-api-key", kKey};
    case Vendor::gemini:
      return {"x-goog-api-key", kKey};
  }
  return {};
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// sdk/schemas/chat_response.schema.json, parsed once.
const valijson::Schema& response_schema() {
  static std::unique_ptr<valijson::Schema> schema = [] {
    fs::path dir = test::source_dir() / "sdk" / "schemas";
    std::ifstream in(dir / "chat_response.schema.json");
    if (!in)
      throw std::runtime_error("cannot open " + (dir / "chat_response.schema.json").string());
    json doc = json::parse(in);
    auto s = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(doc);
    parser.populateSchema(adapter, *s);
    return s;
  }();
  return *schema;
}

// "" when the response follows the schema, else the validator's complaints.
std::string schema_errors(const json& response) {
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(response);
  if (validator.validate(response_schema(), target, &results)) return "";
  std::string all;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    std::string where;
    for (const auto& p : error.context)
      where += p;
    all += where + ": " + error.description + "\n";
  }
  return all;
}

json user_request(Vendor vendor, const std::string& text) {
  return {{"model", model_for(vendor)},
          {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
}

json weather_tools() {
  return json::array(
      {{{"name", "get_weather"},
        {"description", "Current weather in a city"},
        {"parameters",
         {{"type", "object"},
          {"properties", {{"city", {{"type", "string"}}}}},
          {"required", json::array({"city"})}}}},
       {{"name", "get_time"},
        {"description", "Current time in a time zone"},
        {"parameters",
         {{"type", "object"},
          {"properties", {{"tz", {{"type", "string"}}}, {"precise", {{"type", "boolean"}}}}}}}}});
}

// What one call delivered.
struct Outcome {
  bool completed = false;
  CallResult result;
  std::vector<StreamEvent> events;
  std::string deltas;     // TEXT_DELTA texts, concatenated
  std::string reasoning;  // REASONING_DELTA texts, concatenated
  json response;          // the parsed result when OK

  bool ok() const { return completed && result.status == TROUPE_OK; }
  std::string describe() const {
    if (!completed) return "the call did not complete";
    if (result.status == TROUPE_OK) return "OK: " + result.result_json.substr(0, 600);
    return std::string(sdk::status_name(result.status)) + ": " + result.error;
  }
};

// Owns a fake vendor, a loop and one plugin instance; checks after every test that the key
// leaked nowhere.
class WireTest {
 protected:
  void start(Vendor vendor) {
    vendor_ = vendor;
    name_ = test::vendor_name(vendor);
    plugin_path_ = test::plugins_dir() + "/" + name_ + ".so";
    ASSERT_TRUE(fs::exists(plugin_path_))
        << plugin_path_ << " is missing: build the troupe_" << name_ << " target";
    plugin_ = make(json::object(), true);
  }

  std::shared_ptr<PluginInstance> make(json settings, bool with_key) {
    settings["base_url"] = server_.base_url(vendor_);
    InstanceConfig config;
    config.name = name_;
    config.settings_json = settings.dump();
    if (with_key) config.secrets["api_key"] = kKey;
    return PluginInstance::create(loop_, PluginLibrary::load(plugin_path_), config);
  }

  Outcome call(const json& request, bool stream, uint32_t timeout_ms = 0, int wait_ms = 60000) {
    return call_with(plugin_, request, stream, timeout_ms, wait_ms);
  }

  Outcome call_with(const std::shared_ptr<PluginInstance>& plugin, const json& request, bool stream,
                    uint32_t timeout_ms = 0, int wait_ms = 60000) {
    Outcome out;
    CallHandlers handlers;
    handlers.on_event = [&out](const StreamEvent& e) {
      out.events.push_back(e);
      if (e.type == TROUPE_EVENT_TEXT_DELTA) out.deltas += e.text;
      if (e.type == TROUPE_EVENT_REASONING_DELTA) out.reasoning += e.text;
    };
    handlers.on_complete = [&out](CallResult r) {
      out.result = std::move(r);
      out.completed = true;
    };
    plugin->start_call("chat", request.dump(), stream, timeout_ms, std::move(handlers));
    test::run_until(
        loop_, [&] { return out.completed; }, wait_ms);
    if (out.ok()) out.response = json::parse(out.result.result_json, nullptr, false);
    results_.push_back(out.result);
    return out;
  }

  // Checks that the response follows the schema and has the expected text and usage.
  void expect_text_reply(const Outcome& out, const std::string& text, const FakeUsage& usage = {}) {
    ASSERT_TRUE(out.ok()) << out.describe();
    EXPECT_EQ(schema_errors(out.response), "") << out.response.dump();
    EXPECT_EQ(out.response.value("text", ""), text);
    EXPECT_EQ(out.response.value("tool_calls", json()), json::array());
    EXPECT_EQ(out.response.value("finish_reason", ""), "stop");
    EXPECT_EQ(out.response.value("usage", json()), VendorServer::normalized_usage(vendor_, usage));
  }

  // The request id the reply carried must be in the response (ollama has none).
  void expect_request_id(const Outcome& out, const test::SeenChat& seen) {
    if (vendor_ == Vendor::ollama) {
      EXPECT_FALSE(out.response.contains("request_id")) << out.response.dump();
    } else {
      ASSERT_FALSE(seen.request_id.empty());
      EXPECT_EQ(out.response.value("request_id", ""), seen.request_id);
    }
  }

  test::SeenChat last_chat() {
    auto chats = server_.chats();
    if (chats.empty()) {
      ADD_FAILURE() << "the server saw no chat request";
      return {};
    }
    return chats.back();
  }

  // The key must reach the server only in the vendor's auth header, and appear in no result,
  // error or log line.
  void check_secret_kept() {
    if (plugin_path_.empty()) return;
    for (const auto& r : results_) {
      EXPECT_EQ(r.error.find(kKey), std::string::npos) << r.error;
      EXPECT_EQ(r.result_json.find(kKey), std::string::npos);
    }
    EXPECT_FALSE(logs_.contains(kKey)) << logs_.text();
    auto [auth_name, auth_value] = auth_header(vendor_);
    for (const auto& request : server_.requests()) {
      EXPECT_EQ(request.target.find(kKey), std::string::npos) << request.target;
      EXPECT_EQ(request.body.find(kKey), std::string::npos) << request.path;
      for (const auto& [name, value] : request.headers) {
        if (test::lower(name) == auth_name) {
          EXPECT_EQ(value, auth_value) << name;
        } else {
          EXPECT_EQ(value.find(kKey), std::string::npos) << "the key is in header " << name;
        }
      }
    }
  }

  void finish() {
    check_secret_kept();
    if (plugin_) {
      test::run_until(
          loop_, [&] { return plugin_->calls_in_flight() == 0; }, 5000);
      EXPECT_EQ(plugin_->calls_in_flight(), 0u);
      EXPECT_EQ(plugin_->contract_violations(), 0u);
      plugin_.reset();
      loop_.run_once(10);
    }
  }

  test::LogCapture logs_;
  VendorServer server_;
  EventLoop loop_;
  Vendor vendor_ = Vendor::openai;
  std::string name_;
  std::string plugin_path_;
  std::shared_ptr<PluginInstance> plugin_;
  std::vector<CallResult> results_;
};

std::string vendor_param_name(const ::testing::TestParamInfo<Vendor>& info) {
  return test::vendor_name(info.param);
}

// ---------------------------------------------------------------------------------------------
// Happy paths, per vendor

class ProviderWire : public WireTest, public ::testing::TestWithParam<Vendor> {
 protected:
  void SetUp() override { start(GetParam()); }
  void TearDown() override { finish(); }
};

TEST_P(ProviderWire, PlainReplyIsNormalizedWithUsageAndRequestId) {
  Outcome out = call(user_request(vendor_, "hello wire"), false);
  expect_text_reply(out, "echo: hello wire");
  EXPECT_EQ(out.response.value("model", ""), model_for(vendor_));
  auto seen = last_chat();
  expect_request_id(out, seen);
  EXPECT_EQ(seen.model, model_for(vendor_));
  EXPECT_FALSE(seen.stream);
  EXPECT_EQ(seen.last_user, "hello wire");
  EXPECT_TRUE(out.events.empty()) << "no stream events when the caller does not stream";
}

TEST_P(ProviderWire, StreamedDeltasConcatenateToTheFinalText) {
  Outcome out = call(user_request(vendor_, "stream this to me please"), true);
  expect_text_reply(out, "echo: stream this to me please");
  EXPECT_EQ(out.deltas, "echo: stream this to me please");
  size_t deltas = 0, usages = 0;
  for (const auto& e : out.events) {
    if (e.type == TROUPE_EVENT_TEXT_DELTA) ++deltas;
    if (e.type == TROUPE_EVENT_USAGE) {
      ++usages;
      json usage = json::parse(e.json, nullptr, false);
      EXPECT_TRUE(usage.is_object() && !usage.empty()) << e.json;
    }
  }
  EXPECT_GE(deltas, 2u) << "the server sends the text in several pieces";
  EXPECT_GE(usages, 1u);
  auto seen = last_chat();
  EXPECT_TRUE(seen.stream);
  expect_request_id(out, seen);
}

TEST_P(ProviderWire, UsageIsNormalizedWithCachedAndReasoningTokens) {
  FakeUsage usage;
  usage.input = 1000;
  usage.cached = 600;
  usage.output = 300;
  usage.reasoning = 120;
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    FakeReply reply = FakeReply::with_text("counted");
    reply.usage = usage;
    server_.push(reply);
    Outcome out = call(user_request(vendor_, "count tokens"), stream);
    expect_text_reply(out, "counted", usage);
  }
}

TEST_P(ProviderWire, ReasoningStaysOutOfTheText) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    FakeReply reply = FakeReply::with_text("the answer is 4");
    reply.reasoning = "two plus two is four";
    server_.push(reply);
    Outcome out = call(user_request(vendor_, "what is 2+2?"), stream);
    expect_text_reply(out, "the answer is 4");
    if (stream) {
      EXPECT_EQ(out.deltas, "the answer is 4");
      // Anthropic's thinking blocks are part of the contract; the others may or may not
      // surface their reasoning fields, but never as text.
      if (vendor_ == Vendor::anthropic) {
        EXPECT_EQ(out.reasoning, "two plus two is four");
      }
      if (!out.reasoning.empty()) {
        EXPECT_EQ(out.reasoning, "two plus two is four");
      }
    }
  }
}

TEST_P(ProviderWire, TwoToolCallsInOneTurn) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    FakeReply reply;
    FakeToolCall weather;
    weather.name = "get_weather";
    weather.arguments = {{"city", "Oslo"}};
    FakeToolCall time;
    time.name = "get_time";
    time.arguments = {{"tz", "Europe/Oslo"}, {"precise", true}};
    reply.tool_calls = {weather, time};
    server_.push(reply);
    json request = user_request(vendor_, "weather and time in Oslo?");
    request["tools"] = weather_tools();
    Outcome out = call(request, stream);
    ASSERT_TRUE(out.ok()) << out.describe();
    EXPECT_EQ(schema_errors(out.response), "") << out.response.dump();
    EXPECT_EQ(out.response.value("finish_reason", ""), "tool_calls");
    EXPECT_EQ(out.response.value("text", "?"), "");
    const json calls = out.response.value("tool_calls", json::array());
    ASSERT_EQ(calls.size(), 2u) << out.response.dump();
    EXPECT_EQ(calls[0].value("name", ""), "get_weather");
    EXPECT_EQ(calls[0].value("arguments", json()), weather.arguments);
    EXPECT_EQ(calls[1].value("name", ""), "get_time");
    EXPECT_EQ(calls[1].value("arguments", json()), time.arguments);
    std::string id0 = calls[0].value("id", ""), id1 = calls[1].value("id", "");
    EXPECT_FALSE(id0.empty());
    EXPECT_NE(id0, id1);
    if (vendor_ == Vendor::gemini || vendor_ == Vendor::ollama) {
      // These vendors send no ids: the plugin numbers the calls.
      EXPECT_EQ(id0, "call_1");
      EXPECT_EQ(id1, "call_2");
    } else {
      std::string prefix = vendor_ == Vendor::anthropic ? "toolu_fake" : "call_fake";
      EXPECT_TRUE(id0.starts_with(prefix)) << id0 << ": the vendor's own id is kept";
      EXPECT_TRUE(id1.starts_with(prefix)) << id1;
    }
    auto seen = last_chat();
    EXPECT_EQ(seen.tools, (std::vector<std::string>{"get_weather", "get_time"}));
    if (stream) {
      // Per index: the first delta names the call, the argument pieces add up to its JSON.
      std::map<int32_t, std::string> arguments;
      std::map<int32_t, std::string> names;
      for (const auto& e : out.events) {
        if (e.type != TROUPE_EVENT_TOOL_CALL_DELTA) continue;
        if (!e.tool_name.empty() && names.count(e.index) == 0) names[e.index] = e.tool_name;
        arguments[e.index] += e.text;
      }
      ASSERT_EQ(names.size(), 2u);
      EXPECT_EQ(names[0], "get_weather");
      EXPECT_EQ(names[1], "get_time");
      EXPECT_EQ(json::parse(arguments[0], nullptr, false), weather.arguments) << arguments[0];
      EXPECT_EQ(json::parse(arguments[1], nullptr, false), time.arguments) << arguments[1];
    }
  }
}

TEST_P(ProviderWire, ToolArgumentsThatAreNotJsonFailRetryably) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    FakeReply reply;
    FakeToolCall broken;
    broken.name = "get_weather";
    broken.raw_arguments = "{\"city\": \"Os";
    reply.tool_calls = {broken};
    server_.push(reply);
    json request = user_request(vendor_, "weather?");
    request["tools"] = weather_tools();
    Outcome out = call(request, stream);
    ASSERT_TRUE(out.completed);
    EXPECT_EQ(out.result.status, TROUPE_TRANSPORT) << out.describe();
    EXPECT_TRUE(out.result.retryable);
    EXPECT_TRUE(out.result.error.starts_with(name_ + ": ")) << out.result.error;
    // Where arguments travel as text (openai; anthropic's input_json_delta pieces) the JSON
    // around them stays valid and the plugin must name the tool. Elsewhere the arguments are
    // a JSON object in the body, so broken ones make the body itself not JSON.
    bool arguments_are_text = vendor_ == Vendor::openai || (vendor_ == Vendor::anthropic && stream);
    if (arguments_are_text) {
      EXPECT_NE(out.result.error.find("'get_weather'"), std::string::npos) << out.result.error;
    }
  }
}

TEST_P(ProviderWire, ToolResultsRoundTripInOrder) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    json request = {
        {"model", model_for(vendor_)},
        {"tools", weather_tools()},
        {"messages",
         json::array(
             {{{"role", "user"}, {"content", "weather and time in Oslo?"}},
              {{"role", "assistant"},
               {"content", ""},
               {"tool_calls",
                json::array(
                    {{{"id", "call_a"}, {"name", "get_weather"}, {"arguments", {{"city", "Oslo"}}}},
                     {{"id", "call_b"}, {"name", "get_time"}, {"arguments", {{"tz", "CET"}}}}})}},
              {{"role", "tool"},
               {"tool_call_id", "call_a"},
               {"name", "get_weather"},
               {"content", "sunny, 21C"}},
              {{"role", "tool"},
               {"tool_call_id", "call_b"},
               {"name", "get_time"},
               {"content", "14:05"}}})}};
    Outcome out = call(request, stream);
    expect_text_reply(out, "tool results: sunny, 21C | 14:05");
    auto seen = last_chat();
    EXPECT_TRUE(seen.ends_with_tool_results);
    EXPECT_EQ(seen.tool_results, (std::vector<std::string>{"sunny, 21C", "14:05"}));
    EXPECT_EQ(seen.last_user, "weather and time in Oslo?");
    // The results point back at their calls the vendor's way.
    std::string body = seen.body.dump();
    switch (vendor_) {
      case Vendor::openai:
      case Vendor::anthropic:
        EXPECT_NE(body.find("call_a"), std::string::npos) << body;
        EXPECT_NE(body.find("call_b"), std::string::npos) << body;
        break;
      case Vendor::gemini:
        EXPECT_NE(body.find("functionResponse"), std::string::npos) << body;
        EXPECT_NE(body.find("functionCall"), std::string::npos) << body;
        break;
      case Vendor::ollama:
        EXPECT_NE(body.find("tool_calls"), std::string::npos) << body;
        break;
    }
  }
}

TEST_P(ProviderWire, StructuredOutputFollowsTheSchema) {
  const json schema = {
      {"type", "object"},
      {"properties",
       {{"verdict", {{"type", "string"}, {"enum", json::array({"approve", "reject"})}}},
        {"score", {{"type", "integer"}}},
        {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}},
        {"note", {{"type", "string"}}}}},
      {"required", json::array({"verdict", "score", "tags"})}};
  const json expected = {{"verdict", "approve"}, {"score", 1}, {"tags", json::array({"example"})}};
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    json request = user_request(vendor_, "review this");
    request["response_format"] = {{"type", "json_schema"}, {"name", "review"}, {"schema", schema}};
    Outcome out = call(request, stream);
    ASSERT_TRUE(out.ok()) << out.describe();
    EXPECT_EQ(schema_errors(out.response), "") << out.response.dump();
    EXPECT_EQ(json::parse(out.response.value("text", ""), nullptr, false), expected)
        << out.response.dump();
    EXPECT_EQ(out.response.value("tool_calls", json()), json::array());
    EXPECT_EQ(out.response.value("finish_reason", ""), "stop");
    auto seen = last_chat();
    if (vendor_ == Vendor::anthropic) {
      // No JSON mode: one extra tool named after the format, forced.
      EXPECT_EQ(seen.forced_tool, "review");
      EXPECT_EQ(seen.tools, std::vector<std::string>{"review"});
    } else {
      EXPECT_EQ(seen.schema, schema) << seen.body.dump();
    }
  }
}

TEST_P(ProviderWire, FinishReasonsAreNormalized) {
  std::vector<std::pair<std::string, std::string>> cases;
  switch (vendor_) {
    case Vendor::openai:
      cases = {{"stop", "stop"}, {"length", "length"}, {"content_filter", "content_filter"}};
      break;
    case Vendor::anthropic:
      cases = {{"end_turn", "stop"},
               {"stop_sequence", "stop"},
               {"pause_turn", "stop"},
               {"max_tokens", "length"},
               {"refusal", "content_filter"}};
      break;
    case Vendor::gemini:
      cases = {{"STOP", "stop"},
               {"MAX_TOKENS", "length"},
               {"SAFETY", "content_filter"},
               {"RECITATION", "content_filter"},
               {"BLOCKLIST", "content_filter"},
               {"PROHIBITED_CONTENT", "content_filter"},
               {"SPII", "content_filter"},
               {"OTHER", "error"},
               {"MALFORMED_FUNCTION_CALL", "error"}};
      break;
    case Vendor::ollama:
      cases = {{"stop", "stop"}, {"length", "length"}};
      break;
  }
  for (bool stream : {false, true}) {
    for (const auto& [vendor_value, normalized] : cases) {
      SCOPED_TRACE(vendor_value + (stream ? " streamed" : " not streamed"));
      FakeReply reply = FakeReply::with_text("partial answer");
      reply.vendor_finish = vendor_value;
      server_.push(reply);
      Outcome out = call(user_request(vendor_, "finish?"), stream);
      ASSERT_TRUE(out.ok()) << out.describe();
      EXPECT_EQ(out.response.value("finish_reason", ""), normalized);
      EXPECT_EQ(out.response.value("text", ""), "partial answer");
    }
  }
}

TEST_P(ProviderWire, MetadataIsNeverSentToTheVendor) {
  json request = user_request(vendor_, "who am I?");
  request["metadata"] = {{"agent", "zz-agent-7"}, {"role", "zz-role-7"}, {"run_id", "zz-run-7"}};
  Outcome out = call(request, false);
  ASSERT_TRUE(out.ok()) << out.describe();
  std::string body = last_chat().request.body;
  EXPECT_EQ(body.find("zz-"), std::string::npos) << body;
}

TEST_P(ProviderWire, TheKeyTravelsOnlyInTheAuthHeader) {
  // A success, a stream and an error whose body quotes (a masked form of) the key.
  call(user_request(vendor_, "one"), false);
  call(user_request(vendor_, "two"), true);
  server_.push(FakeReply::with_fault("http-401"));
  Outcome denied = call(user_request(vendor_, "three"), false);
  EXPECT_EQ(denied.result.status, TROUPE_AUTH) << denied.describe();
  auto [name, value] = auth_header(vendor_);
  for (const auto& seen : server_.chats())
    EXPECT_EQ(seen.request.header(name), value);
  // check_secret_kept() in TearDown checks the rest.
}

TEST_P(ProviderWire, MissingKeyIsRefusedOrOmittedPerVendor) {
  auto keyless = make(json::object(), false);
  Outcome out = call_with(keyless, user_request(vendor_, "no key"), false);
  if (vendor_ == Vendor::anthropic || vendor_ == Vendor::gemini) {
    EXPECT_EQ(out.result.status, TROUPE_AUTH) << out.describe();
    EXPECT_FALSE(out.result.retryable);
    EXPECT_NE(out.result.error.find("no API key"), std::string::npos) << out.result.error;
    EXPECT_EQ(server_.chat_count(), 0u) << "nothing is sent without a key";
  } else {
    // Local servers need no key: no Authorization header at all.
    ASSERT_TRUE(out.ok()) << out.describe();
    EXPECT_FALSE(last_chat().request.has_header("Authorization"));
  }
  test::run_until(
      loop_, [&] { return keyless->calls_in_flight() == 0; }, 5000);
}

TEST_P(ProviderWire, CancelOfAHangingCallCompletesCancelledPromptly) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    size_t before = server_.chat_count();
    Outcome out;
    CallHandlers handlers;
    handlers.on_complete = [&out](CallResult r) {
      out.result = std::move(r);
      out.completed = true;
    };
    json request = user_request(vendor_, "never answered");
    request["model"] = "fault-hang";
    uint64_t id = plugin_->start_call("chat", request.dump(), stream, 0, std::move(handlers));
    ASSERT_TRUE(test::run_until(
        loop_, [&] { return server_.chat_count() > before; }, 10000))
        << "the request reached the server";
    test::run_until(
        loop_, [] { return false; }, 100);  // it hangs: nothing completes
    EXPECT_FALSE(out.completed);
    plugin_->cancel_call(id);
    ASSERT_TRUE(out.completed);
    EXPECT_EQ(out.result.status, TROUPE_CANCELLED);
    results_.push_back(out.result);
    // The plugin's own late completion is absorbed; nothing stays in flight.
    EXPECT_TRUE(test::run_until(
        loop_, [&] { return plugin_->calls_in_flight() == 0; }, 5000));
  }
}

TEST_P(ProviderWire, CallTimeoutOnSlowHeadersGivesTimeout) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "not streamed");
    json request = user_request(vendor_, "slow");
    request["model"] = "fault-slow-headers";  // headers after 3 s
    Outcome out = call(request, stream, 1000);
    ASSERT_TRUE(out.completed);
    EXPECT_EQ(out.result.status, TROUPE_TIMEOUT) << out.describe();
    EXPECT_TRUE(out.result.retryable);
    test::run_until(
        loop_, [&] { return plugin_->calls_in_flight() == 0; }, 5000);
  }
}

TEST_P(ProviderWire, QueuedAndScenarioFaultsWorkLikeModelNamedOnes) {
  server_.load_scenario(json::parse(R"({"rules":[
    {"match": "flaky", "times": 1, "fault": "http-503"},
    {"match": "flaky", "reply": "recovered"}]})"));
  Outcome first = call(user_request(vendor_, "flaky call"), false);
  EXPECT_EQ(first.result.status, TROUPE_UNAVAILABLE) << first.describe();
  EXPECT_TRUE(first.result.retryable);
  Outcome second = call(user_request(vendor_, "flaky call"), false);
  expect_text_reply(second, "recovered");
  server_.push(FakeReply::with_fault("http-404"));
  Outcome third = call(user_request(vendor_, "queued"), false);
  EXPECT_EQ(third.result.status, TROUPE_NOT_FOUND) << third.describe();
}

INSTANTIATE_TEST_SUITE_P(Vendors, ProviderWire, ::testing::ValuesIn(kVendors), vendor_param_name);

// ---------------------------------------------------------------------------------------------
// Every fault, per vendor, streamed and not

struct Expectation {
  troupe_status_t status = TROUPE_OK;
  bool retryable = false;
  uint32_t min_retry_ms = 0;
  uint32_t max_retry_ms = 0;
  int http_status = 0;       // the error message names "HTTP <code>"
  std::string text;          // OK: the expected text
  std::string message_part;  // a part the error message must contain
};

Expectation expectation(Vendor vendor, const std::string& fault, bool stream,
                        const std::string& prompt) {
  Expectation e;
  auto http = [&](troupe_status_t status, bool retryable, int code) {
    e.status = status;
    e.retryable = retryable;
    e.http_status = code;
    e.message_part = VendorServer::error_message(vendor, fault, "fault-" + fault, kKey);
  };
  if (fault == "rate-limit-retry-after") {
    http(TROUPE_RATE_LIMITED, true, 429);
    e.min_retry_ms = e.max_retry_ms = 2000;
  } else if (fault == "rate-limit-retry-after-date") {
    http(TROUPE_RATE_LIMITED, true, 429);
    e.min_retry_ms = 1000;  // an HTTP-date 3 whole seconds ahead: 2-3 s, less what passed
    e.max_retry_ms = 3500;
  } else if (fault == "rate-limit-retry-after-ms") {
    http(TROUPE_RATE_LIMITED, true, 429);
    e.min_retry_ms = e.max_retry_ms = 1500;  // wins over the Retry-After: 2 next to it
  } else if (fault == "rate-limit-reset") {
    http(TROUPE_RATE_LIMITED, true, 429);
    if (vendor == Vendor::openai) {
      e.min_retry_ms = e.max_retry_ms = 2000;  // the larger of "2s" and "1.5s"
    } else if (vendor == Vendor::anthropic) {
      e.min_retry_ms = 300;  // RFC 3339 2 whole seconds ahead: 1-2 s, less what passed
      e.max_retry_ms = 2500;
    } else if (vendor == Vendor::gemini) {
      e.min_retry_ms = e.max_retry_ms = 2000;  // RetryInfo "2s"
    }
  } else if (fault == "http-400") {
    http(TROUPE_INVALID_ARGUMENT, false, 400);
  } else if (fault == "http-401") {
    http(TROUPE_AUTH, false, 401);
  } else if (fault == "http-403") {
    http(TROUPE_AUTH, false, 403);
  } else if (fault == "http-404") {
    http(TROUPE_NOT_FOUND, false, 404);
  } else if (fault == "http-408") {
    http(TROUPE_TIMEOUT, true, 408);
  } else if (fault == "http-413") {
    http(TROUPE_TOO_LARGE, false, 413);
  } else if (fault == "http-500" || fault == "http-502" || fault == "http-503" ||
             fault == "http-529") {
    http(TROUPE_UNAVAILABLE, true, std::atoi(fault.c_str() + 5));
    if (vendor == Vendor::openai && fault == "http-502") e.message_part = "";  // an HTML page
  } else if (fault == "http-504") {
    http(TROUPE_TIMEOUT, true, 504);
  } else if (fault == "insufficient-quota") {
    switch (vendor) {
      case Vendor::openai:
        http(TROUPE_BUDGET_EXCEEDED, false, 429);
        break;
      case Vendor::anthropic:  // "credit balance is too low" is a 400
        http(TROUPE_INVALID_ARGUMENT, false, 400);
        break;
      default:
        http(TROUPE_RATE_LIMITED, true, 429);
        break;
    }
  } else if (fault == "context-too-long") {
    http(vendor == Vendor::ollama ? TROUPE_INVALID_ARGUMENT : TROUPE_TOO_LARGE, false, 400);
  } else if (fault == "stream-error") {
    if (stream) {
      e.status = TROUPE_UNAVAILABLE;  // overloaded_error, server_error, UNAVAILABLE, {"error"}
      e.retryable = true;
      e.message_part = vendor == Vendor::anthropic ? "Overloaded"
                       : vendor == Vendor::openai  ? "The server had an error"
                       : vendor == Vendor::gemini  ? "The model is overloaded"
                                                   : "unexpected EOF";
    } else {
      http(TROUPE_UNAVAILABLE, true,
           vendor == Vendor::anthropic ? 529
           : vendor == Vendor::gemini  ? 503
                                       : 500);
    }
  } else if (fault == "reset-mid-stream" || fault == "malformed-json") {
    e.status = TROUPE_TRANSPORT;
    e.retryable = true;
  } else if (fault == "no-terminator") {
    if (stream) {
      e.status = TROUPE_TRANSPORT;
      e.retryable = true;
      e.message_part = "stream ended before";
    } else {
      e.text = "echo: " + prompt;  // a body delimited by closing the connection is complete
    }
  } else if (fault == "utf8-split") {
    e.text = VendorServer::utf8_text();
  } else if (fault == "huge") {
    e.text = VendorServer::huge_text();
  } else {  // slow-headers (no deadline), slow-body, split-bytes
    e.text = "echo: " + prompt;
  }
  return e;
}

using FaultParam = std::tuple<Vendor, std::string, bool>;

std::vector<std::string> tested_faults() {
  std::vector<std::string> faults;
  for (const auto& f : VendorServer::fault_names())
    if (f != "hang") faults.push_back(f);  // hang: CancelOfAHangingCallCompletesCancelledPromptly
  return faults;
}

std::string fault_param_name(const ::testing::TestParamInfo<FaultParam>& info) {
  std::string name = std::string(test::vendor_name(std::get<0>(info.param))) + "_" +
                     std::get<1>(info.param) + (std::get<2>(info.param) ? "_stream" : "_plain");
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

class ProviderWireFault : public WireTest, public ::testing::TestWithParam<FaultParam> {
 protected:
  void SetUp() override { start(std::get<0>(GetParam())); }
  void TearDown() override { finish(); }
};

TEST_P(ProviderWireFault, MapsToTheContractsOutcome) {
  const std::string fault = std::get<1>(GetParam());
  const bool stream = std::get<2>(GetParam());
  const std::string prompt = "fault test " + fault;
  Expectation want = expectation(vendor_, fault, stream, prompt);

  json request = user_request(vendor_, prompt);
  request["model"] = "fault-" + fault;  // the fault by model name, as Lua and e2e tests do
  Outcome out = call(request, stream, 0, 120000);
  ASSERT_TRUE(out.completed) << "no completion";
  auto seen = last_chat();
  EXPECT_EQ(seen.fault, fault);

  if (want.status == TROUPE_OK) {
    ASSERT_TRUE(out.ok()) << out.describe();
    EXPECT_EQ(schema_errors(out.response), "");
    std::string text = out.response.value("text", "");
    EXPECT_EQ(text.size(), want.text.size());
    EXPECT_TRUE(text == want.text) << "text differs: " << text.substr(0, 200);
    EXPECT_EQ(out.response.value("finish_reason", ""), "stop");
    EXPECT_EQ(out.response.value("usage", json()), VendorServer::normalized_usage(vendor_, {}));
    if (stream) {
      EXPECT_TRUE(out.deltas == want.text) << "the deltas add up to the text";
      for (const auto& e : out.events) {
        if (e.type == TROUPE_EVENT_TEXT_DELTA) {
          EXPECT_TRUE(valid_utf8(e.text)) << "a delta cut a code point";
        }
      }
    }
    return;
  }

  EXPECT_EQ(sdk::status_name(out.result.status), std::string(sdk::status_name(want.status)))
      << out.describe();
  EXPECT_EQ(out.result.retryable, want.retryable) << out.describe();
  EXPECT_GE(out.result.retry_after_ms, want.min_retry_ms) << out.describe();
  EXPECT_LE(out.result.retry_after_ms, want.max_retry_ms) << out.describe();
  const std::string& message = out.result.error;
  EXPECT_TRUE(message.starts_with(name_ + ": ")) << message;
  if (want.http_status != 0) {
    EXPECT_NE(message.find("HTTP " + std::to_string(want.http_status)), std::string::npos)
        << message;
  }
  if (!want.message_part.empty()) {
    EXPECT_NE(message.find(want.message_part), std::string::npos) << message;
  }
  // Known request ids are quoted (openai and anthropic send them in a header, errors too).
  if (want.http_status != 0 && (vendor_ == Vendor::openai || vendor_ == Vendor::anthropic)) {
    EXPECT_NE(message.find("(request " + seen.request_id + ")"), std::string::npos) << message;
  }
  EXPECT_LE(message.size(), 1000u);
}

INSTANTIATE_TEST_SUITE_P(Vendors, ProviderWireFault,
                         ::testing::Combine(::testing::ValuesIn(kVendors),
                                            ::testing::ValuesIn(tested_faults()),
                                            ::testing::Bool()),
                         fault_param_name);

}  // namespace
}  // namespace troupe
