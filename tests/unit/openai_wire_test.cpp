// openai_wire_test.cpp: the openai plugin's pure translation — normalized request -> Chat
// Completions body, response body -> normalized response, and the chat.completion.chunk
// stream decoder (fed through the kit's SSE parser, split at every byte offset).
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/event_sink.h"
#include "common/sse_parser.h"
#include "openai_wire.h"

namespace {

using nlohmann::json;
using troupe::kit::ChatResponse;
using troupe::kit::RecordingSink;
namespace openai = troupe::openai;

json body_for(const json& request, openai::RequestOptions options = {}) {
  json body;
  auto error = openai::build_request_body(request, options, &body);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return body;
}

const json kToolRequest = json::parse(R"({
  "model": "gpt-4o",
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather and time in Paris?", "name": "alice"},
    {"role": "assistant", "content": "", "tool_calls": [
      {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
      {"id": "call_2", "name": "get_time", "arguments": {}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\":21}"},
    {"role": "tool", "tool_call_id": "call_2", "content": "14:05", "name": "get_time"},
    {"role": "assistant", "content": "It is 21°C."}
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

TEST(OpenAIWire, RequestMapsMessagesToolsAndToolResults) {
  json body = body_for(kToolRequest);
  EXPECT_EQ(body["model"], "gpt-4o");
  const json& m = body["messages"];
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0], json({{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(m[1],
            json({{"role", "user"}, {"content", "Weather and time in Paris?"}, {"name", "alice"}}));
  EXPECT_TRUE(m[2]["content"].is_null()) << "a turn that only calls tools has null content";
  ASSERT_EQ(m[2]["tool_calls"].size(), 2u);
  EXPECT_EQ(m[2]["tool_calls"][0],
            json({{"id", "call_1"},
                  {"type", "function"},
                  {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}}));
  EXPECT_EQ(m[2]["tool_calls"][1]["function"]["arguments"], "{}");
  EXPECT_EQ(m[3],
            json({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "{\"temp_c\":21}"}}));
  EXPECT_FALSE(m[4].contains("name")) << "tool messages take no name";
  EXPECT_EQ(m[5], json({{"role", "assistant"}, {"content", "It is 21°C."}}));

  ASSERT_EQ(body["tools"].size(), 2u);
  EXPECT_EQ(body["tools"][0], json({{"type", "function"},
                                    {"function",
                                     {{"name", "get_weather"},
                                      {"description", "Current weather"},
                                      {"parameters", kToolRequest["tools"][0]["parameters"]}}}}));
  EXPECT_FALSE(body["tools"][1]["function"].contains("description"));
  EXPECT_EQ(body["tool_choice"],
            json({{"type", "function"}, {"function", {{"name", "get_weather"}}}}));
  EXPECT_EQ(body["temperature"], 0.2);
  EXPECT_EQ(body["max_completion_tokens"], 300);
  EXPECT_FALSE(body.contains("max_tokens"));
  EXPECT_EQ(body["stop"], json({"END"}));
  EXPECT_FALSE(body.contains("stream"));
  EXPECT_FALSE(body.contains("stream_options"));
}

TEST(OpenAIWire, MetadataIsNeverSent) {
  json body = body_for(kToolRequest);
  EXPECT_FALSE(body.contains("metadata"));
  EXPECT_EQ(body.dump().find("coder"), std::string::npos);
  EXPECT_EQ(body.dump().find("step_key"), std::string::npos);
}

TEST(OpenAIWire, StreamingAsksForUsageUnlessTurnedOff) {
  openai::RequestOptions options;
  options.stream = true;
  json body = body_for(kToolRequest, options);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"], json({{"include_usage", true}}));
  options.include_usage = false;
  EXPECT_FALSE(body_for(kToolRequest, options).contains("stream_options"));
}

TEST(OpenAIWire, MaxTokensParamFollowsTheServer) {
  EXPECT_EQ(openai::default_max_tokens_param("https://api.openai.com/v1"), "max_completion_tokens");
  EXPECT_EQ(openai::default_max_tokens_param("https://openrouter.ai/api/v1"), "max_tokens");
  EXPECT_EQ(openai::default_max_tokens_param("http://127.0.0.1:11434/v1"), "max_tokens");
  openai::RequestOptions options;
  options.max_tokens_param = "max_tokens";
  json body = body_for(kToolRequest, options);
  EXPECT_EQ(body["max_tokens"], 300);
  EXPECT_FALSE(body.contains("max_completion_tokens"));
}

TEST(OpenAIWire, ToolChoiceStringsPassThrough) {
  for (const char* choice : {"auto", "none", "required"}) {
    json request = kToolRequest;
    request["tool_choice"] = choice;
    EXPECT_EQ(body_for(request)["tool_choice"], choice);
  }
}

TEST(OpenAIWire, StructuredOutputBecomesAJsonSchemaResponseFormat) {
  json schema = {{"type", "object"}, {"properties", {{"score", {{"type", "integer"}}}}}};
  json request = {
      {"model", "gpt-4o-mini"},
      {"messages", {{{"role", "user"}, {"content", "Rate it"}}}},
      {"response_format", {{"type", "json_schema"}, {"name", "rating"}, {"schema", schema}}}};
  EXPECT_EQ(body_for(request)["response_format"],
            json({{"type", "json_schema"},
                  {"json_schema", {{"name", "rating"}, {"schema", schema}, {"strict", false}}}}));
  request["response_format"].erase("name");
  EXPECT_EQ(body_for(request)["response_format"]["json_schema"]["name"], "structured_output");
  EXPECT_FALSE(body_for(request).contains("tools"));
}

TEST(OpenAIWire, MalformedRequestIsInvalidArgument) {
  json body;
  auto error = openai::build_request_body(json::parse(R"({"model":"m"})"), {}, &body);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, TROUPE_INVALID_ARGUMENT);
  EXPECT_FALSE(error->retryable);
  EXPECT_EQ(error->message.rfind("openai: malformed request", 0), 0u);
}

// ---------------------------------------------------------------------------------------
// Non-streamed responses

ChatResponse parse_ok(const std::string& body) {
  ChatResponse r;
  auto error = openai::parse_response(body, &r);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return r;
}

TEST(OpenAIWire, ResponseWithSeveralToolCallsAndDetailedUsage) {
  ChatResponse r = parse_ok(R"({
    "id": "chatcmpl-123", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
      "message": {"role": "assistant", "content": null, "refusal": null,
        "tool_calls": [
          {"id": "call_a", "type": "function",
           "function": {"name": "get_weather", "arguments": "{\"city\":\"Z\u00fcrich\"}"}},
          {"id": "call_b", "type": "function",
           "function": {"name": "get_time", "arguments": ""}}]}}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
      "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
      "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0}}
  })");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.model, "gpt-4o-2024-08-06");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "call_a");
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, json({{"city", "Zürich"}}));
  EXPECT_EQ(r.tool_calls[1].arguments, json::object());
  EXPECT_EQ(r.to_json()["usage"], json({{"input_tokens", 1200},
                                        {"output_tokens", 300},
                                        {"cached_input_tokens", 1024},
                                        {"reasoning_tokens", 256},
                                        {"total_tokens", 1500}}));
}

TEST(OpenAIWire, FinishReasonsAreNormalized) {
  EXPECT_EQ(openai::map_finish_reason("stop"), "stop");
  EXPECT_EQ(openai::map_finish_reason("length"), "length");
  EXPECT_EQ(openai::map_finish_reason("tool_calls"), "tool_calls");
  EXPECT_EQ(openai::map_finish_reason("function_call"), "tool_calls");
  EXPECT_EQ(openai::map_finish_reason("content_filter"), "content_filter");
  EXPECT_EQ(openai::map_finish_reason(nullptr), "stop");
  EXPECT_EQ(openai::map_finish_reason("something_else"), "error");
  std::string body = R"({"model":"m","choices":[{"index":0,"finish_reason":"length",)"
                     R"("message":{"role":"assistant","content":"Once upon"}}]})";
  ChatResponse r = parse_ok(body);
  EXPECT_EQ(r.text, "Once upon");
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.to_json()["usage"]["total_tokens"], 0) << "all five usage fields even when absent";
}

TEST(OpenAIWire, RefusalIsTextWithContentFilter) {
  ChatResponse r = parse_ok(
      R"({"model":"m","choices":[{"index":0,"finish_reason":"stop",)"
      R"("message":{"role":"assistant","content":null,"refusal":"I can't help with that."}}]})");
  EXPECT_EQ(r.text, "I can't help with that.");
  EXPECT_EQ(r.finish_reason, "content_filter");
}

TEST(OpenAIWire, ToolCallsReportedWithStopBecomeToolCalls) {
  ChatResponse r = parse_ok(
      R"({"model":"llama3","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant",)"
      R"("content":"","tool_calls":[{"type":"function","function":{"name":"f","arguments":{"x":1}}}]}}]})");
  EXPECT_EQ(r.finish_reason, "tool_calls");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].id, "call_1") << "a server that sends no id";
  EXPECT_EQ(r.tool_calls[0].arguments, json({{"x", 1}})) << "arguments already an object";
}

TEST(OpenAIWire, BadResponseBodiesFailClearly) {
  ChatResponse r;
  auto not_json = openai::parse_response("<html>", &r);
  ASSERT_TRUE(not_json.has_value());
  EXPECT_EQ(not_json->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(not_json->retryable);
  EXPECT_EQ(not_json->message, "openai: response body is not a JSON object");

  auto no_choices = openai::parse_response(R"({"model":"m","choices":[]})", &r);
  ASSERT_TRUE(no_choices.has_value());
  EXPECT_EQ(no_choices->message, "openai: response has no choices[0].message");

  auto bad_args = openai::parse_response(
      R"({"choices":[{"finish_reason":"tool_calls","message":{"content":null,"tool_calls":[)"
      R"({"id":"c","type":"function","function":{"name":"search","arguments":"{oops"}}]}}]})",
      &r);
  ASSERT_TRUE(bad_args.has_value());
  EXPECT_EQ(bad_args->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(bad_args->retryable);
  EXPECT_EQ(bad_args->message, "openai: tool call 'search' has arguments that are not JSON");

  auto error_body = openai::parse_response(
      R"({"error":{"message":"The server had an error","type":"server_error","code":null}})", &r);
  ASSERT_TRUE(error_body.has_value());
  EXPECT_EQ(error_body->status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(error_body->retryable);
}

// ---------------------------------------------------------------------------------------
// Streams

// A recorded-style stream: text, then two parallel tool calls whose argument pieces
// interleave by index, the finish chunk, the usage chunk (empty choices), [DONE].
std::string chunk(const std::string& choices_and_usage) {
  return "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
         "\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_1\"," +
         choices_and_usage + "}\n\n";
}
std::string delta(const std::string& delta_json, const std::string& finish = "null") {
  return chunk("\"choices\":[{\"index\":0,\"delta\":" + delta_json +
               ",\"logprobs\":null,\"finish_reason\":" + finish + "}],\"usage\":null");
}

const std::string kStream =
    delta(R"({"role":"assistant","content":"","refusal":null})") +
    delta(R"({"content":"Checking the weather in Z\u00fcrich "})") +
    delta("{\"content\":\"\xF0\x9F\x8C\xA6 and the time.\"}") +
    delta(
        R"({"tool_calls":[{"index":0,"id":"call_w","type":"function","function":{"name":"get_weather","arguments":""}}]})") +
    delta(
        R"({"tool_calls":[{"index":1,"id":"call_t","type":"function","function":{"name":"get_time","arguments":""}}]})") +
    delta(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]})") +
    delta(R"({"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\":\"Europe/"}}]})") +
    delta(R"({"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Z\u00fcrich\"}"}}]})") +
    delta(R"({"tool_calls":[{"index":1,"function":{"arguments":"Zurich\"}"}}]})") +
    delta("{}", "\"tool_calls\"") +
    chunk(R"("choices":[],"usage":{"prompt_tokens":120,"completion_tokens":45,"total_tokens":165,)"
          R"("prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},)"
          R"("completion_tokens_details":{"reasoning_tokens":12,"audio_tokens":0}})") +
    "data: [DONE]\n\n";

struct Decoded {
  bool done = false;
  std::optional<troupe::kit::CallError> error;
  ChatResponse response;
  RecordingSink sink;
};

Decoded decode(const std::vector<std::string>& pieces) {
  Decoded out;
  openai::StreamDecoder decoder;
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

TEST(OpenAIWire, RecordedStreamDecodesTextToolCallsAndUsage) {
  Decoded d = decode({kStream});
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  ASSERT_TRUE(d.done);
  const std::string text = "Checking the weather in Zürich \xF0\x9F\x8C\xA6 and the time.";
  EXPECT_EQ(d.response.text, text);
  EXPECT_EQ(d.sink.text, text) << "the deltas add up to the text";
  EXPECT_EQ(d.response.finish_reason, "tool_calls");
  EXPECT_EQ(d.response.model, "gpt-4o-2024-08-06");
  ASSERT_EQ(d.response.tool_calls.size(), 2u);
  EXPECT_EQ(d.response.tool_calls[0].id, "call_w");
  EXPECT_EQ(d.response.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.response.tool_calls[0].arguments, json({{"city", "Zürich"}}));
  EXPECT_EQ(d.response.tool_calls[1].id, "call_t");
  EXPECT_EQ(d.response.tool_calls[1].arguments, json({{"tz", "Europe/Zurich"}}));
  EXPECT_EQ(d.response.to_json()["usage"], json({{"input_tokens", 120},
                                                 {"output_tokens", 45},
                                                 {"cached_input_tokens", 64},
                                                 {"reasoning_tokens", 12},
                                                 {"total_tokens", 165}}));
  ASSERT_EQ(d.sink.usages.size(), 1u);
  EXPECT_EQ(d.sink.usages[0]["input_tokens"], 120);
  // Tool-call deltas as the caller sees them: id and name first, then argument pieces.
  ASSERT_EQ(d.sink.tool_deltas.size(), 6u);
  EXPECT_EQ(d.sink.tool_deltas[0].index, 0);
  EXPECT_EQ(d.sink.tool_deltas[0].id, "call_w");
  EXPECT_EQ(d.sink.tool_deltas[0].name, "get_weather");
  EXPECT_EQ(d.sink.tool_deltas[3].index, 1);
  EXPECT_EQ(d.sink.tool_deltas[3].arguments, "{\"tz\":\"Europe/");
}

TEST(OpenAIWire, RecordedStreamSplitAtEveryByteOffsetDecodesIdentically) {
  Decoded whole = decode({kStream});
  ASSERT_FALSE(whole.error.has_value());
  const std::string expected = whole.response.to_json_text();
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    Decoded d = decode({kStream.substr(0, cut), kStream.substr(cut)});
    ASSERT_FALSE(d.error.has_value()) << cut << ": " << d.error->message;
    ASSERT_TRUE(d.done) << cut;
    ASSERT_EQ(d.response.to_json_text(), expected) << cut;
    ASSERT_EQ(d.sink.text_pieces, whole.sink.text_pieces) << cut;
    ASSERT_EQ(d.sink.tool_deltas.size(), whole.sink.tool_deltas.size()) << cut;
  }
  std::vector<std::string> bytes;
  for (char c : kStream)
    bytes.emplace_back(1, c);
  EXPECT_EQ(decode(bytes).response.to_json_text(), expected);
}

TEST(OpenAIWire, StreamWithoutDoneIsNotDone) {
  std::string cut = kStream.substr(0, kStream.find("data: [DONE]"));
  Decoded d = decode({cut});
  EXPECT_FALSE(d.error.has_value());
  EXPECT_FALSE(d.done);
}

TEST(OpenAIWire, StreamEventThatIsNotJsonFailsRetryably) {
  Decoded d = decode({delta(R"({"content":"hi"})") + "data: {\"choices\": [tru\n\n"});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(d.error->retryable);
  EXPECT_EQ(d.error->message, "openai: stream event is not a JSON object");
}

TEST(OpenAIWire, ErrorChunkInTheStreamMapsByItsType) {
  Decoded d = decode({delta(R"({"content":"hi"})") +
                      "data: {\"error\":{\"message\":\"Rate limit "
                      "reached\",\"type\":\"rate_limit_exceeded\",\"code\":null}}\n\n"});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->status, TROUPE_RATE_LIMITED);
  EXPECT_TRUE(d.error->retryable);
  EXPECT_EQ(d.error->message, "openai: rate_limit_exceeded: Rate limit reached");
}

TEST(OpenAIWire, ReasoningDeltasOfCompatibleServersAreStreamed) {
  Decoded d = decode(
      {delta(R"({"reasoning_content":"Let me think. "})") +
       delta(R"({"reasoning":"Done thinking."})") + delta(R"({"content":"42"})", "\"stop\"") +
       chunk(R"("choices":[],"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":2}})") +
       "data: [DONE]\n\n"});
  ASSERT_FALSE(d.error.has_value());
  EXPECT_EQ(d.sink.reasoning, "Let me think. Done thinking.");
  EXPECT_EQ(d.response.text, "42");
  EXPECT_EQ(d.response.finish_reason, "stop");
  EXPECT_EQ(d.response.usage.input, 3) << "Groq's x_groq.usage";
  EXPECT_EQ(d.response.usage.output, 2);
}

TEST(OpenAIWire, StreamedToolCallWithBadArgumentsFailsAtTheEnd) {
  Decoded d = decode(
      {delta(
           R"({"tool_calls":[{"index":0,"id":"c1","function":{"name":"run","arguments":"{\"a\":"}}]})",
           "\"tool_calls\"") +
       "data: [DONE]\n\n"});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->message, "openai: tool call 'run' has arguments that are not JSON");
  EXPECT_EQ(d.error->status, TROUPE_TRANSPORT);
}

}  // namespace
