// anthropic_wire_test.cpp: the anthropic plugin's pure translation — normalized request ->
// Messages API body, response body -> normalized response, and the Messages SSE stream
// decoder (fed through the kit's SSE parser, split at every byte offset).
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anthropic_wire.h"
#include "common/event_sink.h"
#include "common/sse_parser.h"

namespace {

using nlohmann::json;
using troupe::kit::ChatResponse;
using troupe::kit::RecordingSink;
namespace anthropic = troupe::anthropic;

json body_for(const json& request, anthropic::RequestOptions options = {},
              anthropic::WireContext* context = nullptr) {
  json body;
  anthropic::WireContext ignored;
  auto error = anthropic::build_request_body(request, options, &body, context ? context : &ignored);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return body;
}

json user_request(const std::string& text) {
  return {{"model", "claude-sonnet-4-5"},
          {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
}

const json kToolRequest = json::parse(R"({
  "model": "claude-sonnet-4-5",
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather and time in Paris?", "name": "alice"},
    {"role": "user", "content": "Also, be quick."},
    {"role": "assistant", "content": "Let me check.", "tool_calls": [
      {"id": "toolu_01", "name": "get_weather", "arguments": {"city": "Paris"}},
      {"id": "toolu_02", "name": "get_time", "arguments": {}}]},
    {"role": "tool", "tool_call_id": "toolu_01", "content": "{\"temp_c\":21}"},
    {"role": "tool", "tool_call_id": "toolu_02", "content": "14:05", "name": "get_time"},
    {"role": "user", "content": "Thanks. And tomorrow?"},
    {"role": "system", "content": "Answer in French."}
  ],
  "tools": [
    {"name": "get_weather", "description": "Current weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "get_time", "description": "",
     "parameters": {"type": "object"}}
  ],
  "tool_choice": {"name": "get_weather"},
  "temperature": 0.2,
  "max_tokens": 300,
  "stop": ["END"],
  "metadata": {"agent": "coder", "run_id": "r1", "step_key": "1"}
})");

// ---------------------------------------------------------------------------------------
// Requests

TEST(AnthropicWire, RequestMergesSameRoleTurnsAndGroupsToolResults) {
  json body = body_for(kToolRequest);
  EXPECT_EQ(body["model"], "claude-sonnet-4-5");
  EXPECT_EQ(body["system"], "Be brief.\n\nAnswer in French.") << "every system message, in order";
  const json& m = body["messages"];
  ASSERT_EQ(m.size(), 3u) << m.dump();
  // Two user messages in a row: one user turn with two text blocks (no "name" on this wire).
  EXPECT_EQ(m[0], json::parse(R"({"role":"user","content":[
      {"type":"text","text":"Weather and time in Paris?"},
      {"type":"text","text":"Also, be quick."}]})"));
  EXPECT_EQ(m[1], json::parse(R"({"role":"assistant","content":[
      {"type":"text","text":"Let me check."},
      {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}},
      {"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}]})"));
  // Both results of the turn in ONE user message, results first, then the next user text.
  EXPECT_EQ(m[2], json::parse(R"({"role":"user","content":[
      {"type":"tool_result","tool_use_id":"toolu_01","content":"{\"temp_c\":21}"},
      {"type":"tool_result","tool_use_id":"toolu_02","content":"14:05"},
      {"type":"text","text":"Thanks. And tomorrow?"}]})"));
}

TEST(AnthropicWire, RequestMapsToolsChoiceLimitsAndStop) {
  json body = body_for(kToolRequest);
  ASSERT_EQ(body["tools"].size(), 2u);
  EXPECT_EQ(body["tools"][0], json({{"name", "get_weather"},
                                    {"description", "Current weather"},
                                    {"input_schema", kToolRequest["tools"][0]["parameters"]}}));
  EXPECT_FALSE(body["tools"][1].contains("description")) << "an empty description is left out";
  EXPECT_EQ(body["tool_choice"], json({{"type", "tool"}, {"name", "get_weather"}}));
  EXPECT_EQ(body["temperature"], 0.2);
  EXPECT_EQ(body["max_tokens"], 300);
  EXPECT_EQ(body["stop_sequences"], json({"END"}));
  EXPECT_FALSE(body.contains("stop"));
  EXPECT_FALSE(body.contains("stream"));
}

TEST(AnthropicWire, MetadataIsNeverSent) {
  json body = body_for(kToolRequest);
  EXPECT_FALSE(body.contains("metadata"));
  EXPECT_EQ(body.dump().find("coder"), std::string::npos);
  EXPECT_EQ(body.dump().find("step_key"), std::string::npos);
}

TEST(AnthropicWire, MaxTokensIsAlwaysSetAndTemperatureCappedAtOne) {
  anthropic::RequestOptions options;
  options.default_max_tokens = 2048;
  options.stream = true;
  json request = user_request("hi");
  request["temperature"] = 1.7;
  json body = body_for(request, options);
  EXPECT_EQ(body["max_tokens"], 2048);
  EXPECT_EQ(body["temperature"], 1.0) << "this API's temperature range ends at 1";
  EXPECT_EQ(body["stream"], true);
  EXPECT_FALSE(body.contains("system"));
  EXPECT_FALSE(body.contains("tools"));
  EXPECT_FALSE(body.contains("tool_choice"));
}

TEST(AnthropicWire, ToolChoiceStringsMapToTheWireForms) {
  json request = user_request("weather?");
  request["tools"] = kToolRequest["tools"];
  request["tool_choice"] = "auto";
  EXPECT_EQ(body_for(request)["tool_choice"], json({{"type", "auto"}}));
  request["tool_choice"] = "required";
  EXPECT_EQ(body_for(request)["tool_choice"], json({{"type", "any"}}));
  request.erase("tool_choice");
  json body = body_for(request);
  EXPECT_EQ(body["tools"].size(), 2u);
  EXPECT_FALSE(body.contains("tool_choice")) << "absent: the API's default (auto)";
}

TEST(AnthropicWire, ToolChoiceNoneOmitsToolsUnlessTheHistoryUsesThem) {
  json request = user_request("just talk");
  request["tools"] = kToolRequest["tools"];
  request["tool_choice"] = "none";
  json body = body_for(request);
  EXPECT_FALSE(body.contains("tools"));
  EXPECT_FALSE(body.contains("tool_choice"));

  // tool_use / tool_result blocks in the history need the tools' definitions: keep them.
  json history = kToolRequest;
  history["tool_choice"] = "none";
  body = body_for(history);
  EXPECT_EQ(body["tools"].size(), 2u);
  EXPECT_EQ(body["tool_choice"], json({{"type", "auto"}}));
}

TEST(AnthropicWire, StructuredOutputIsAForcedToolWhoseInputIsTheAnswer) {
  json schema = {{"type", "object"}, {"properties", {{"score", {{"type", "integer"}}}}}};
  json request = user_request("Rate it");
  request["response_format"] = {{"type", "json_schema"}, {"name", "rating"}, {"schema", schema}};
  anthropic::WireContext context;
  json body = body_for(request, {}, &context);
  ASSERT_EQ(body["tools"].size(), 1u);
  EXPECT_EQ(body["tools"][0]["name"], "rating");
  EXPECT_EQ(body["tools"][0]["input_schema"], schema);
  EXPECT_EQ(body["tool_choice"], json({{"type", "tool"}, {"name", "rating"}}));
  EXPECT_EQ(context.structured_tool, "rating");
  EXPECT_FALSE(body.contains("response_format"));

  request["response_format"].erase("name");
  EXPECT_EQ(body_for(request)["tool_choice"]["name"], "structured_output");

  // The answer: the tool's input, serialized, as text; no tool calls; finish "stop".
  ChatResponse r;
  ASSERT_FALSE(anthropic::parse_response(R"({"type":"message","role":"assistant","model":"m",
      "content":[{"type":"tool_use","id":"toolu_9","name":"rating","input":{"score":4}}],
      "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":3}})",
                                         context, &r));
  EXPECT_EQ(json::parse(r.text), json({{"score", 4}}));
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.finish_reason, "stop");
}

TEST(AnthropicWire, StructuredOutputNextToToolsKeepsThemAndGetsItsOwnName) {
  json request = user_request("Rate it");
  request["tools"] = kToolRequest["tools"];
  request["tool_choice"] = "auto";
  request["response_format"] = {
      {"type", "json_schema"}, {"name", "get_time"}, {"schema", {{"type", "object"}}}};
  anthropic::WireContext context;
  json body = body_for(request, {}, &context);
  ASSERT_EQ(body["tools"].size(), 3u);
  EXPECT_EQ(context.structured_tool, "get_time_2") << "a user tool already has the name";
  EXPECT_EQ(body["tools"][2]["name"], "get_time_2");
  EXPECT_EQ(body["tool_choice"], json({{"type", "tool"}, {"name", "get_time_2"}}));
}

TEST(AnthropicWire, StructuredOutputOfANonObjectSchemaIsWrapped) {
  json schema = {{"type", "array"}, {"items", {{"type", "string"}}}};
  json request = user_request("List them");
  request["response_format"] = {{"type", "json_schema"}, {"name", "list"}, {"schema", schema}};
  anthropic::WireContext context;
  json body = body_for(request, {}, &context);
  EXPECT_TRUE(context.structured_wrapped);
  EXPECT_EQ(body["tools"][0]["input_schema"], json({{"type", "object"},
                                                    {"properties", {{"value", schema}}},
                                                    {"required", json::array({"value"})}}));
  ChatResponse r;
  ASSERT_FALSE(anthropic::parse_response(
      R"({"type":"message","content":[{"type":"tool_use","id":"t","name":"list",
          "input":{"value":["a","b"]}}],"stop_reason":"tool_use","usage":{}})",
      context, &r));
  EXPECT_EQ(r.text, R"(["a","b"])");
}

TEST(AnthropicWire, ToolNamesTheWireRefusesAreRenamedAndMappedBack) {
  json request = user_request("Look at PR 7");
  request["tools"] = json::array({{{"name", "github.get_pull_request"},
                                   {"description", "d"},
                                   {"parameters", {{"type", "object"}}}},
                                  {{"name", "github_get_pull_request"},
                                   {"description", "d"},
                                   {"parameters", {{"type", "object"}}}}});
  request["messages"].push_back({{"role", "assistant"},
                                 {"content", ""},
                                 {"tool_calls", json::array({{{"id", "call.1"},
                                                              {"name", "github.get_pull_request"},
                                                              {"arguments", {{"n", 7}}}}})}});
  request["messages"].push_back(
      {{"role", "tool"}, {"tool_call_id", "call.1"}, {"content", "a PR"}});
  anthropic::WireContext context;
  json body = body_for(request, {}, &context);
  // The valid name keeps its own; the dotted one gets a free sanitized one.
  EXPECT_EQ(body["tools"][0]["name"], "github_get_pull_request_2");
  EXPECT_EQ(body["tools"][1]["name"], "github_get_pull_request");
  EXPECT_EQ(body["messages"][1]["content"][0]["name"], "github_get_pull_request_2");
  EXPECT_EQ(body["messages"][1]["content"][0]["id"], "call_1") << "ids: [a-zA-Z0-9_-] only";
  EXPECT_EQ(body["messages"][2]["content"][0]["tool_use_id"], "call_1");
  EXPECT_EQ(body["messages"][1]["content"].size(), 1u) << "an empty text block is left out";

  ChatResponse r;
  ASSERT_FALSE(anthropic::parse_response(
      R"({"type":"message","content":[
          {"type":"tool_use","id":"toolu_a","name":"github_get_pull_request_2","input":{"n":8}},
          {"type":"tool_use","id":"toolu_b","name":"github_get_pull_request","input":{}}],
          "stop_reason":"tool_use","usage":{}})",
      context, &r));
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].name, "github.get_pull_request");
  EXPECT_EQ(r.tool_calls[1].name, "github_get_pull_request");
}

TEST(AnthropicWire, TrailingAssistantTurnLosesTrailingWhitespace) {
  json request = user_request("Pick A or B");
  request["messages"].push_back({{"role", "assistant"}, {"content", "The answer is (  \n"}});
  json body = body_for(request);
  EXPECT_EQ(body["messages"][1]["content"][0]["text"], "The answer is (");
}

TEST(AnthropicWire, MalformedRequestIsInvalidArgument) {
  json body;
  anthropic::WireContext context;
  auto error = anthropic::build_request_body(json::parse(R"({"model":"m"})"), {}, &body, &context);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, TROUPE_INVALID_ARGUMENT);
  EXPECT_FALSE(error->retryable);
  EXPECT_EQ(error->message.rfind("anthropic: malformed request", 0), 0u);
}

// ---------------------------------------------------------------------------------------
// Non-streamed responses

ChatResponse parse_ok(const std::string& body, const anthropic::WireContext& context = {}) {
  ChatResponse r;
  auto error = anthropic::parse_response(body, context, &r);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return r;
}

TEST(AnthropicWire, ResponseWithTextSeveralToolUsesAndCacheUsage) {
  ChatResponse r = parse_ok(R"({
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [
      {"type": "thinking", "thinking": "Two lookups.", "signature": "c2ln"},
      {"type": "text", "text": "Checking Z\u00fcrich."},
      {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Z\u00fcrich"}},
      {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 50, "cache_creation_input_tokens": 200,
              "cache_read_input_tokens": 1000, "output_tokens": 80, "service_tier": "standard"}
  })");
  EXPECT_EQ(r.text, "Checking Zürich.") << "thinking stays out of the text";
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.model, "claude-sonnet-4-5-20250929");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "toolu_a");
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, json({{"city", "Zürich"}}));
  EXPECT_EQ(r.tool_calls[1].id, "toolu_b");
  EXPECT_EQ(r.tool_calls[1].arguments, json::object());
  // Cache writes are reported apart too (priced at the cache-write price); input counts them.
  EXPECT_EQ(r.to_json()["usage"], json({{"input_tokens", 1250},
                                        {"output_tokens", 80},
                                        {"cached_input_tokens", 1000},
                                        {"reasoning_tokens", 0},
                                        {"cache_write_tokens", 200},
                                        {"total_tokens", 1330}}));
}

TEST(AnthropicWire, StopReasonsAreNormalized) {
  EXPECT_EQ(anthropic::map_stop_reason("end_turn"), "stop");
  EXPECT_EQ(anthropic::map_stop_reason("stop_sequence"), "stop");
  EXPECT_EQ(anthropic::map_stop_reason("pause_turn"), "stop");
  EXPECT_EQ(anthropic::map_stop_reason("max_tokens"), "length");
  EXPECT_EQ(anthropic::map_stop_reason("model_context_window_exceeded"), "length");
  EXPECT_EQ(anthropic::map_stop_reason("tool_use"), "tool_calls");
  EXPECT_EQ(anthropic::map_stop_reason("refusal"), "content_filter");
  EXPECT_EQ(anthropic::map_stop_reason(nullptr), "stop");
  EXPECT_EQ(anthropic::map_stop_reason("something_new"), "error");
  ChatResponse r =
      parse_ok(R"({"type":"message","model":"m","content":[{"type":"text","text":"Once upon"}],)"
               R"("stop_reason":"max_tokens","usage":{"input_tokens":3,"output_tokens":2}})");
  EXPECT_EQ(r.text, "Once upon");
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.to_json()["usage"]["total_tokens"], 5);
}

TEST(AnthropicWire, BadResponseBodiesFailClearly) {
  ChatResponse r;
  auto not_json = anthropic::parse_response("<html>", {}, &r);
  ASSERT_TRUE(not_json.has_value());
  EXPECT_EQ(not_json->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(not_json->retryable);
  EXPECT_EQ(not_json->message, "anthropic: response body is not a JSON object");

  auto no_content = anthropic::parse_response(R"({"type":"message","model":"m"})", {}, &r);
  ASSERT_TRUE(no_content.has_value());
  EXPECT_EQ(no_content->message, "anthropic: response has no content");

  auto bad_input = anthropic::parse_response(
      R"({"type":"message","content":[{"type":"tool_use","id":"t","name":"search","input":"{oops"}]})",
      {}, &r);
  ASSERT_TRUE(bad_input.has_value());
  EXPECT_EQ(bad_input->status, TROUPE_TRANSPORT);
  EXPECT_NE(bad_input->message.find("'search'"), std::string::npos) << bad_input->message;

  auto error_body = anthropic::parse_response(
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})", {}, &r);
  ASSERT_TRUE(error_body.has_value());
  EXPECT_EQ(error_body->status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(error_body->retryable);
  EXPECT_EQ(error_body->message, "anthropic: overloaded_error: Overloaded");
}

// ---------------------------------------------------------------------------------------
// Streams

std::string event(const std::string& name, const std::string& data) {
  return "event: " + name + "\ndata: " + data + "\n\n";
}

// A recorded-style stream: thinking (with its signature), text with multi-byte characters,
// then two tool_use blocks whose input JSON arrives in pieces, ping, message_delta, stop.
const std::string kStream =
    event(
        "message_start",
        R"({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant",)"
        R"("model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,)"
        R"("usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,)"
        R"("output_tokens":2,"service_tier":"standard"}}})") +
    event(
        "content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})") +
    event("ping", R"({"type": "ping"})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Two lookups: weather "}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"and time."}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}})") +
    event("content_block_stop", R"({"type":"content_block_stop","index":0})") +
    event("content_block_start",
          R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking Z\u00fcrich "}})") +
    event("content_block_delta",
          "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
          "\"text\":\"\xF0\x9F\x8C\xA6 and the time.\"}}") +
    event("content_block_stop", R"({"type":"content_block_stop","index":1})") +
    event(
        "content_block_start",
        R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01W","name":"get_weather","input":{}}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Z"}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\u00fcrich\"}"}})") +
    event("content_block_stop", R"({"type":"content_block_stop","index":2})") +
    event(
        "content_block_start",
        R"({"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01T","name":"get_time","input":{}}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"tz\":\"Europe/"}})") +
    event(
        "content_block_delta",
        R"({"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"Zurich\"}"}})") +
    event("content_block_stop", R"({"type":"content_block_stop","index":3})") +
    event(
        "message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}})") +
    event("message_stop", R"({"type":"message_stop"})");

struct Decoded {
  bool done = false;
  std::optional<troupe::kit::CallError> error;
  ChatResponse response;
  RecordingSink sink;
};

Decoded decode(const std::vector<std::string>& pieces, const anthropic::WireContext& context = {}) {
  Decoded out;
  anthropic::StreamDecoder decoder(context);
  troupe::kit::SseParser parser;
  for (const std::string& piece : pieces) {
    parser.feed(piece, [&](const troupe::kit::SseEvent& e) {
      if (out.error || decoder.done()) return;
      out.error = decoder.on_sse(e, out.sink);
    });
  }
  out.done = decoder.done();
  if (!out.error && out.done) out.error = decoder.finish(&out.response);
  return out;
}

TEST(AnthropicWire, RecordedStreamDecodesThinkingTextToolUsesAndUsage) {
  Decoded d = decode({kStream});
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  ASSERT_TRUE(d.done);
  const std::string text = "Checking Zürich \xF0\x9F\x8C\xA6 and the time.";
  EXPECT_EQ(d.response.text, text);
  EXPECT_EQ(d.sink.text, text) << "the deltas add up to the text";
  EXPECT_EQ(d.sink.reasoning, "Two lookups: weather and time.") << "thinking -> REASONING_DELTA";
  EXPECT_EQ(d.response.finish_reason, "tool_calls");
  EXPECT_EQ(d.response.model, "claude-sonnet-4-5-20250929");
  ASSERT_EQ(d.response.tool_calls.size(), 2u);
  EXPECT_EQ(d.response.tool_calls[0].id, "toolu_01W");
  EXPECT_EQ(d.response.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.response.tool_calls[0].arguments, json({{"city", "Zürich"}}));
  EXPECT_EQ(d.response.tool_calls[1].id, "toolu_01T");
  EXPECT_EQ(d.response.tool_calls[1].arguments, json({{"tz", "Europe/Zurich"}}));
  EXPECT_EQ(d.response.to_json()["usage"], json({{"input_tokens", 2520},
                                                 {"output_tokens", 89},
                                                 {"cached_input_tokens", 2048},
                                                 {"reasoning_tokens", 0},
                                                 {"total_tokens", 2609}}));
  ASSERT_EQ(d.sink.usages.size(), 2u) << "message_start and message_delta";
  EXPECT_EQ(d.sink.usages[0]["input_tokens"], 2520);
  EXPECT_EQ(d.sink.usages[1]["output_tokens"], 89);
  // Tool-call deltas as the caller sees them: indexes count tool calls (not content blocks),
  // id and name first, then the argument pieces (empty pieces are not sent).
  ASSERT_EQ(d.sink.tool_deltas.size(), 6u);
  EXPECT_EQ(d.sink.tool_deltas[0].index, 0);
  EXPECT_EQ(d.sink.tool_deltas[0].id, "toolu_01W");
  EXPECT_EQ(d.sink.tool_deltas[0].name, "get_weather");
  EXPECT_EQ(d.sink.tool_deltas[1].arguments, "{\"city\": \"Z");
  EXPECT_EQ(d.sink.tool_deltas[3].index, 1);
  EXPECT_EQ(d.sink.tool_deltas[3].name, "get_time");
  EXPECT_EQ(d.sink.tool_deltas[5].arguments, "Zurich\"}");
}

TEST(AnthropicWire, RecordedStreamSplitAtEveryByteOffsetDecodesIdentically) {
  Decoded whole = decode({kStream});
  ASSERT_FALSE(whole.error.has_value());
  const std::string expected = whole.response.to_json_text();
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    Decoded d = decode({kStream.substr(0, cut), kStream.substr(cut)});
    ASSERT_FALSE(d.error.has_value()) << cut << ": " << d.error->message;
    ASSERT_TRUE(d.done) << cut;
    ASSERT_EQ(d.response.to_json_text(), expected) << cut;
    ASSERT_EQ(d.sink.text_pieces, whole.sink.text_pieces) << cut;
    ASSERT_EQ(d.sink.reasoning, whole.sink.reasoning) << cut;
    ASSERT_EQ(d.sink.tool_deltas.size(), whole.sink.tool_deltas.size()) << cut;
  }
  std::vector<std::string> bytes;
  for (char c : kStream)
    bytes.emplace_back(1, c);
  Decoded byte_by_byte = decode(bytes);
  EXPECT_EQ(byte_by_byte.response.to_json_text(), expected);
  EXPECT_EQ(byte_by_byte.sink.text_pieces, whole.sink.text_pieces);
}

TEST(AnthropicWire, StreamWithoutMessageStopIsNotDone) {
  std::string cut = kStream.substr(0, kStream.find("event: message_stop"));
  Decoded d = decode({cut});
  EXPECT_FALSE(d.error.has_value());
  EXPECT_FALSE(d.done);
}

TEST(AnthropicWire, StreamEventThatIsNotJsonFailsRetryably) {
  Decoded d = decode({event("content_block_delta", R"({"type":"content_block_delta","index":0,)")});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(d.error->retryable);
  EXPECT_EQ(d.error->message, "anthropic: stream event is not a JSON object");
}

TEST(AnthropicWire, ErrorEventInTheStreamMapsByItsType) {
  const std::string start = kStream.substr(0, kStream.find("event: content_block_start"));
  Decoded overloaded = decode(
      {start +
       event("error",
             R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})")});
  ASSERT_TRUE(overloaded.error.has_value());
  EXPECT_EQ(overloaded.error->status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(overloaded.error->retryable);
  EXPECT_EQ(overloaded.error->message, "anthropic: overloaded_error: Overloaded");

  Decoded limited =
      decode({start + event("error", R"({"type":"error","error":{)"
                                     R"("type":"rate_limit_error","message":"slow down"}})")});
  ASSERT_TRUE(limited.error.has_value());
  EXPECT_EQ(limited.error->status, TROUPE_RATE_LIMITED);
  EXPECT_TRUE(limited.error->retryable);
}

TEST(AnthropicWire, StreamedToolUseWithBadInputFailsAtTheEndNamingTheTool) {
  std::string stream =
      event("message_start", R"({"type":"message_start","message":{"model":"m","usage":{}}})") +
      event(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"run","input":{}}})") +
      event(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}})") +
      event(
          "message_delta",
          R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}})") +
      event("message_stop", R"({"type":"message_stop"})");
  Decoded d = decode({stream});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(d.error->retryable);
  EXPECT_EQ(d.error->message, "anthropic: tool call 'run' has arguments that are not JSON");
}

TEST(AnthropicWire, StreamedStructuredOutputBecomesTheText) {
  anthropic::WireContext context;
  context.structured_tool = "review";
  std::string stream =
      event("message_start",
            R"({"type":"message_start","message":{"model":"m","usage":{"input_tokens":9}}})") +
      event(
          "content_block_start",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"review","input":{}}})") +
      event(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"verdict\": \"appr"}})") +
      event(
          "content_block_delta",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"ove\"}"}})") +
      event(
          "message_delta",
          R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}})") +
      event("message_stop", R"({"type":"message_stop"})");
  Decoded d = decode({stream}, context);
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  EXPECT_EQ(json::parse(d.response.text), json({{"verdict", "approve"}}));
  EXPECT_EQ(d.sink.text, d.response.text) << "the answer is streamed as text";
  EXPECT_TRUE(d.sink.tool_deltas.empty());
  EXPECT_TRUE(d.response.tool_calls.empty());
  EXPECT_EQ(d.response.finish_reason, "stop");

  // Cut off by max_tokens: the partial JSON is the text, and finish_reason says "length".
  std::string cut = stream;
  cut.replace(cut.find("ove\\\"}"), 6, "");
  cut.replace(cut.find("\"tool_use\"},\"usage\""), 10, "\"max_tokens\"");
  Decoded truncated = decode({cut}, context);
  ASSERT_FALSE(truncated.error.has_value()) << truncated.error->message;
  EXPECT_EQ(truncated.response.text, "{\"verdict\": \"appr");
  EXPECT_EQ(truncated.response.finish_reason, "length");
}

// Caught by fuzz_anthropic_wire's UBSan build (input:
// corpus/anthropic_wire/crash-huge-usage-counts): a count of 1e300 was cast to int64 (undefined),
// and two counts near 2^63 were summed into the input tokens (signed overflow). Counts now read at
// most 2^53 (kit::count_at).
TEST(AnthropicWire, HugeOrFloatUsageCountsAreCappedNotOverflowed) {
  ChatResponse r;
  ASSERT_FALSE(anthropic::parse_response(
      R"({"type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"x"}],
          "stop_reason":"end_turn","usage":{"input_tokens":9223372036854775807,
          "cache_read_input_tokens":18446744073709551615,"cache_creation_input_tokens":1e300,
          "output_tokens":1e300}})",
      {}, &r));
  const int64_t max = int64_t{1} << 53;
  EXPECT_EQ(r.usage.cached_input, max);
  EXPECT_EQ(r.usage.cache_write, max);
  EXPECT_EQ(r.usage.input, 3 * max);
  EXPECT_EQ(r.usage.output, max);
  EXPECT_EQ(r.to_json()["usage"]["total_tokens"], 4 * max);
}

}  // namespace
