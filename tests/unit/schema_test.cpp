// schema_test.cpp: the JSON Schemas in sdk/schemas accept the documented formats and reject broken
// ones.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "mock_engine.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// sdk/schemas of the source tree: $TROUPE_SOURCE_DIR (set by CTest), else the nearest
// parent of the working directory that has it.
fs::path schema_dir() {
  if (const char* src = std::getenv("TROUPE_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return fs::path(src) / "sdk" / "schemas";
  }
  for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p / "sdk" / "schemas" / "chat_request.schema.json"))
      return p / "sdk" / "schemas";
    if (p == p.parent_path()) break;
  }
  return "sdk/schemas";
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return json::parse(in);
}

// One parsed schema per file, parsed once.
const valijson::Schema& schema(const std::string& name) {
  static std::map<std::string, std::unique_ptr<valijson::Schema>> cache;
  auto& slot = cache[name];
  if (!slot) {
    json doc = read_json(schema_dir() / (name + ".schema.json"));
    slot = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(doc);
    parser.populateSchema(adapter, *slot);
  }
  return *slot;
}

// Empty when valid, else the validator's complaints.
std::string errors(const std::string& schema_name, const json& doc) {
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  if (validator.validate(schema(schema_name), adapter, &results)) return {};
  std::ostringstream out;
  valijson::ValidationResults::Error e;
  while (results.popError(e)) {
    for (const auto& part : e.context)
      out << part;
    out << ": " << e.description << "\n";
  }
  return out.str();
}

::testing::AssertionResult Valid(const std::string& schema_name, const json& doc) {
  std::string e = errors(schema_name, doc);
  if (e.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << doc.dump() << "\nrejected by " << schema_name << ":\n"
                                       << e;
}

::testing::AssertionResult Invalid(const std::string& schema_name, const json& doc) {
  if (!errors(schema_name, doc).empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << doc.dump() << "\naccepted by " << schema_name;
}

json full_request() {
  return json::parse(R"({
    "model": "gpt-4o",
    "messages": [
      {"role": "system", "content": "You are a security auditor."},
      {"role": "user", "content": "Review this diff", "name": "alice"},
      {"role": "assistant", "content": "",
       "tool_calls": [{"id": "call_1", "name": "github.get_pull_request", "arguments": {"number": 7}}]},
      {"role": "tool", "content": "{\"title\":\"Fix\"}", "tool_call_id": "call_1"}
    ],
    "temperature": 0.2,
    "max_tokens": 512,
    "tools": [{"name": "github.get_pull_request", "description": "Fetch a PR",
               "parameters": {"type": "object", "properties": {"number": {"type": "integer"}}}}],
    "tool_choice": {"name": "github.get_pull_request"},
    "response_format": {"type": "json_schema", "schema": {"type": "object"}},
    "stop": ["END"],
    "metadata": {"agent": "security", "role": "security_auditor", "run_id": "r1", "step_key": "0/3"}
  })");
}

json minimal_response() {
  return json::parse(R"({
    "text": "Hello", "tool_calls": [], "finish_reason": "stop", "model": "gpt-4o",
    "usage": {"input_tokens": 10, "output_tokens": 2, "cached_input_tokens": 0,
              "reasoning_tokens": 0, "total_tokens": 12}
  })");
}

TEST(SchemaFiles, EverySchemaIsDraft07AndParses) {
  for (const char* name :
       {"chat_request", "chat_response", "stream_event", "tool_manifest", "error"}) {
    json doc = read_json(schema_dir() / (std::string(name) + ".schema.json"));
    EXPECT_EQ(doc.value("$schema", ""), "http://json-schema.org/draft-07/schema#") << name;
    EXPECT_FALSE(doc.value("title", "").empty()) << name;
    EXPECT_NO_THROW(schema(name)) << name;
  }
}

TEST(ChatRequestSchema, AcceptsMinimalAndFullRequests) {
  EXPECT_TRUE(
      Valid("chat_request",
            json::parse(R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})")));
  EXPECT_TRUE(Valid("chat_request", full_request()));
  json r = full_request();
  for (const char* choice : {"auto", "none", "required"}) {
    r["tool_choice"] = choice;
    EXPECT_TRUE(Valid("chat_request", r)) << choice;
  }
}

TEST(ChatRequestSchema, RejectsMissingOrMistypedFields) {
  json r = full_request();
  r.erase("model");
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["messages"] = json::array();
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["messages"][1]["role"] = "robot";
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["messages"][1]["content"] = 42;
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["max_tokens"] = 1.5;
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["tool_choice"] = "always";
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["response_format"]["type"] = "json_object";
  EXPECT_TRUE(Invalid("chat_request", r));
}

TEST(ChatRequestSchema, RejectsMisspelledKeys) {
  json r = full_request();
  r["maxTokens"] = 100;
  EXPECT_TRUE(Invalid("chat_request", r));
  r = full_request();
  r["metadata"]["agnet"] = "x";
  EXPECT_TRUE(Invalid("chat_request", r));
}

TEST(ChatRequestSchema, ToolMessagesNeedToolCallIdAndOnlyAssistantsCallTools) {
  json r = full_request();
  r["messages"][3].erase("tool_call_id");
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["messages"][1]["tool_call_id"] = "call_1";  // a user message answering a tool call
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["messages"][1]["tool_calls"] = r["messages"][2]["tool_calls"];
  EXPECT_TRUE(Invalid("chat_request", r));

  r = full_request();
  r["messages"][2]["tool_calls"][0]["arguments"] = "{\"number\":7}";  // must be parsed
  EXPECT_TRUE(Invalid("chat_request", r));
}

TEST(ChatRequestSchema, ToolParametersMustBeAnObjectSchema) {
  json r = full_request();
  r["tools"][0]["parameters"] = {{"type", "string"}};
  EXPECT_TRUE(Invalid("chat_request", r));
  r["tools"][0]["parameters"] = json::object();
  EXPECT_TRUE(Invalid("chat_request", r));
}

TEST(ChatResponseSchema, AcceptsTextAndToolCallResponses) {
  EXPECT_TRUE(Valid("chat_response", minimal_response()));
  json r = minimal_response();
  r["text"] = "";
  r["finish_reason"] = "tool_calls";
  r["tool_calls"] = json::parse(R"([{"id":"call_1","name":"search","arguments":{"q":"x"}}])");
  r["request_id"] = "req-123";
  EXPECT_TRUE(Valid("chat_response", r));
}

TEST(ChatResponseSchema, RejectsBrokenResponses) {
  json r = minimal_response();
  r.erase("usage");
  EXPECT_TRUE(Invalid("chat_response", r));

  r = minimal_response();
  r["finish_reason"] = "done";
  EXPECT_TRUE(Invalid("chat_response", r));

  r = minimal_response();
  r["usage"]["input_tokens"] = -1;
  EXPECT_TRUE(Invalid("chat_response", r));

  r = minimal_response();
  r["usage"]["output_tokens"] = "2";
  EXPECT_TRUE(Invalid("chat_response", r));

  r = minimal_response();
  r["usage"].erase("cached_input_tokens");
  EXPECT_TRUE(Invalid("chat_response", r));

  r = minimal_response();
  r["tool_calls"] = json::parse(R"([{"id":"call_1","arguments":{}}])");  // no name
  EXPECT_TRUE(Invalid("chat_response", r));
}

TEST(StreamEventSchema, AcceptsEachEventType) {
  EXPECT_TRUE(Valid("stream_event", json::parse(R"({"type":"text_delta","text":"Hel"})")));
  EXPECT_TRUE(Valid("stream_event", json::parse(R"({"type":"reasoning_delta","text":"hmm"})")));
  EXPECT_TRUE(
      Valid("stream_event", json::parse(R"({"type":"tool_call_delta","index":0,"id":"call_1",
                                    "name":"search","arguments":"{\"q\":"})")));
  EXPECT_TRUE(Valid("stream_event",
                    json::parse(R"({"type":"tool_call_delta","index":0,"arguments":"\"x\"}"})")));
  EXPECT_TRUE(Valid("stream_event", json::parse(R"({"type":"usage","usage":{"input_tokens":5}})")));
}

TEST(StreamEventSchema, RejectsBrokenEvents) {
  EXPECT_TRUE(Invalid("stream_event", json::parse(R"({"type":"text_delta"})")));
  EXPECT_TRUE(Invalid("stream_event", json::parse(R"({"type":"sparkle","text":"x"})")));
  EXPECT_TRUE(Invalid("stream_event", json::parse(R"({"text":"x"})")));
  EXPECT_TRUE(Invalid("stream_event",
                      json::parse(R"({"type":"tool_call_delta","index":-1,"arguments":""})")));
  EXPECT_TRUE(Invalid("stream_event", json::parse(R"({"type":"usage","usage":{}})")));
  EXPECT_TRUE(
      Invalid("stream_event",
              json::parse(R"({"type":"text_delta","text":"x","usage":{"input_tokens":1}})")));
}

TEST(ToolManifestSchema, AcceptsToolsAndRejectsBrokenOnes) {
  json m = json::parse(R"({"tools":[
    {"name":"get_pull_request","description":"Fetch a pull request",
     "parameters":{"type":"object","properties":{"number":{"type":"integer"}},"required":["number"]}},
    {"name":"list_repos","description":"List repositories","parameters":{"type":"object"}}]})");
  EXPECT_TRUE(Valid("tool_manifest", m));
  EXPECT_TRUE(Valid("tool_manifest", json::parse(R"({"tools":[]})")));

  EXPECT_TRUE(Invalid("tool_manifest", json::object()));
  json bad = m;
  bad["tools"][0]["name"] = "get pull request";  // spaces are not allowed
  EXPECT_TRUE(Invalid("tool_manifest", bad));
  bad = m;
  bad["tools"][1].erase("description");
  EXPECT_TRUE(Invalid("tool_manifest", bad));
  bad = m;
  bad["tools"][1]["parameters"] = "object";
  EXPECT_TRUE(Invalid("tool_manifest", bad));
}

TEST(ErrorSchema, AcceptsEveryStatusNameButOk) {
  for (const char* status :
       {"invalid_argument", "unsupported", "not_found", "auth", "rate_limited", "transport",
        "timeout", "cancelled", "budget_exceeded", "unavailable", "too_large", "internal"}) {
    json e = {{"status", status}, {"message", "x"}, {"retryable", false}, {"retry_after_ms", 0}};
    EXPECT_TRUE(Valid("error", e)) << status;
  }
  EXPECT_TRUE(
      Invalid("error",
              json::parse(R"({"status":"ok","message":"","retryable":false,"retry_after_ms":0})")));
}

TEST(ErrorSchema, RejectsBrokenErrors) {
  json e = json::parse(
      R"({"status":"rate_limited","message":"slow down","retryable":true,"retry_after_ms":1000})");
  EXPECT_TRUE(Valid("error", e));
  json bad = e;
  bad["status"] = "RATE_LIMITED";
  EXPECT_TRUE(Invalid("error", bad));
  bad = e;
  bad["retry_after_ms"] = -5;
  EXPECT_TRUE(Invalid("error", bad));
  bad = e;
  bad.erase("message");
  EXPECT_TRUE(Invalid("error", bad));
  bad = e;
  bad["retryable"] = "yes";
  EXPECT_TRUE(Invalid("error", bad));
}

// The mock provider is the reference producer of these formats: what it returns must pass.
TEST(SchemaConformance, MockProviderResponsesFollowTheResponseAndEventSchemas) {
  auto settings = troupe::mock::parse_settings(
      R"({"rules":[{"match":"weather","tool_calls":[{"name":"get_weather","arguments":{"city":"Oslo"}}]}]})");
  troupe::mock::Engine engine(settings);

  json request = full_request();
  ASSERT_TRUE(Valid("chat_request", request));
  auto reply = engine.plan(request.dump());
  ASSERT_EQ(reply.kind, troupe::mock::Outcome::Kind::reply);
  EXPECT_TRUE(Valid("chat_response", json::parse(reply.response_json())));
  EXPECT_TRUE(
      Valid("stream_event", {{"type", "usage"}, {"usage", json::parse(reply.usage_json())}}));

  json tools_request =
      json::parse(R"({"model":"m","messages":[{"role":"user","content":"weather?"}],
      "tools":[{"name":"get_weather","description":"d","parameters":{"type":"object"}}]})");
  ASSERT_TRUE(Valid("chat_request", tools_request));
  auto calls = engine.plan(tools_request.dump());
  ASSERT_EQ(calls.tool_calls.size(), 1u);
  EXPECT_TRUE(Valid("chat_response", json::parse(calls.response_json())));
}

}  // namespace
