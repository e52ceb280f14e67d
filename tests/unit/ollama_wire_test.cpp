// ollama_wire_test.cpp: the ollama plugin's pure translation — normalized request -> /api/chat
// body, response body -> normalized response, and the NDJSON stream decoder (fed through the
// kit's line splitter, split at every byte offset).
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/event_sink.h"
#include "common/line_splitter.h"
#include "ollama_wire.h"

namespace {

using nlohmann::json;
using troupe::kit::ChatResponse;
using troupe::kit::RecordingSink;
namespace ollama = troupe::ollama;

json body_for(const json& request, ollama::RequestOptions options = {}) {
  json body;
  auto error = ollama::build_request_body(request, options, &body);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return body;
}

const json kToolRequest = json::parse(R"({
  "model": "llama3.2",
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
  "temperature": 0.2,
  "max_tokens": 300,
  "stop": ["END"],
  "metadata": {"agent": "coder", "run_id": "r1", "step_key": "1"}
})");

TEST(OllamaWire, RequestMapsMessagesToolCallsAndToolResultsByToolName) {
  json body = body_for(kToolRequest);
  EXPECT_EQ(body["model"], "llama3.2");
  const json& m = body["messages"];
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0], json({{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(m[1], json({{"role", "user"}, {"content", "Weather and time in Paris?"}}))
      << "the speaker name has no place on this wire";
  EXPECT_EQ(m[2], json::parse(R"({"role": "assistant", "content": "", "tool_calls": [
      {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
      {"function": {"name": "get_time", "arguments": {}}}]})"))
      << "arguments travel as objects, ids do not travel";
  EXPECT_EQ(m[3],
            json({{"role", "tool"}, {"content", "{\"temp_c\":21}"}, {"tool_name", "get_weather"}}))
      << "tool_name found through the tool_call_id";
  EXPECT_EQ(m[4], json({{"role", "tool"}, {"content", "14:05"}, {"tool_name", "get_time"}}));
  EXPECT_EQ(m[5], json({{"role", "assistant"}, {"content", "It is 21°C."}}));

  ASSERT_EQ(body["tools"].size(), 2u);
  EXPECT_EQ(body["tools"][0], json({{"type", "function"},
                                    {"function",
                                     {{"name", "get_weather"},
                                      {"description", "Current weather"},
                                      {"parameters", kToolRequest["tools"][0]["parameters"]}}}}));
  EXPECT_FALSE(body["tools"][1]["function"].contains("description"));
  EXPECT_FALSE(body.contains("tool_choice")) << "Ollama has no tool_choice";
}

TEST(OllamaWire, OptionsCarryTemperatureNumPredictAndStop) {
  json body = body_for(kToolRequest);
  EXPECT_EQ(body["options"], json({{"temperature", 0.2}, {"num_predict", 300}, {"stop", {"END"}}}));
  EXPECT_FALSE(body.contains("max_tokens"));
  EXPECT_FALSE(body.contains("temperature"));
  EXPECT_FALSE(body.contains("stop"));

  json plain = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  EXPECT_FALSE(body_for(plain).contains("options")) << "no empty options object";
}

TEST(OllamaWire, SettingsOptionsMergeAndTheRequestWins) {
  ollama::RequestOptions options;
  options.model_options = {{"num_ctx", 8192}, {"temperature", 1.0}};
  options.keep_alive = "10m";
  options.think = "high";
  json body = body_for(kToolRequest, options);
  EXPECT_EQ(body["options"]["num_ctx"], 8192);
  EXPECT_EQ(body["options"]["temperature"], 0.2) << "the request's own temperature wins";
  EXPECT_EQ(body["keep_alive"], "10m");
  EXPECT_EQ(body["think"], "high");

  json plain = body_for(kToolRequest);
  EXPECT_FALSE(plain.contains("keep_alive")) << "unset settings are not sent";
  EXPECT_FALSE(plain.contains("think"));
}

TEST(OllamaWire, StreamFlagIsAlwaysExplicit) {
  json off = body_for(kToolRequest);
  ASSERT_TRUE(off.contains("stream"));
  EXPECT_EQ(off["stream"], false) << "Ollama streams unless told not to";
  ollama::RequestOptions options;
  options.stream = true;
  EXPECT_EQ(body_for(kToolRequest, options)["stream"], true);
}

TEST(OllamaWire, MetadataIsNeverSent) {
  json body = body_for(kToolRequest);
  EXPECT_FALSE(body.contains("metadata"));
  EXPECT_EQ(body.dump().find("coder"), std::string::npos);
  EXPECT_EQ(body.dump().find("step_key"), std::string::npos);
}

TEST(OllamaWire, StructuredOutputBecomesFormatWithTheSchema) {
  json schema = {{"type", "object"}, {"properties", {{"score", {{"type", "integer"}}}}}};
  json request = {
      {"model", "llama3.2"},
      {"messages", {{{"role", "user"}, {"content", "Rate it"}}}},
      {"response_format", {{"type", "json_schema"}, {"name", "rating"}, {"schema", schema}}}};
  json body = body_for(request);
  EXPECT_EQ(body["format"], schema);
  EXPECT_FALSE(body.contains("response_format"));
  EXPECT_FALSE(body.contains("tools"));
}

TEST(OllamaWire, ToolChoiceNoneDropsToolsAndANamedChoiceOffersOnlyThatTool) {
  json request = kToolRequest;
  request["tool_choice"] = "none";
  EXPECT_FALSE(body_for(request).contains("tools"));
  request["tool_choice"] = {{"name", "get_time"}};
  json body = body_for(request);
  ASSERT_EQ(body["tools"].size(), 1u);
  EXPECT_EQ(body["tools"][0]["function"]["name"], "get_time");
  for (const char* choice : {"auto", "required"}) {
    request["tool_choice"] = choice;
    EXPECT_EQ(body_for(request)["tools"].size(), 2u) << choice;
  }
  request["tool_choice"] = {{"name", "nope"}};
  json out;
  auto error = ollama::build_request_body(request, {}, &out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, TROUPE_INVALID_ARGUMENT);
  EXPECT_EQ(error->message, "ollama: tool_choice names 'nope', which is not among the tools");
}

TEST(OllamaWire, MalformedRequestIsInvalidArgument) {
  json body;
  auto error = ollama::build_request_body(json::parse(R"({"model":"m"})"), {}, &body);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, TROUPE_INVALID_ARGUMENT);
  EXPECT_FALSE(error->retryable);
  EXPECT_EQ(error->message.rfind("ollama: malformed request", 0), 0u);
}

// ---------------------------------------------------------------------------------------
// Non-streamed responses

ChatResponse parse_ok(const std::string& body) {
  ChatResponse r;
  auto error = ollama::parse_response(body, &r);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return r;
}

TEST(OllamaWire, ResponseWithTextAndUsage) {
  ChatResponse r = parse_ok(R"({
    "model": "llama3.2", "created_at": "2025-01-01T00:00:00.000000Z",
    "message": {"role": "assistant", "content": "Hello, Z\u00fcrich!", "thinking": "greet"},
    "done": true, "done_reason": "stop", "total_duration": 512000000, "load_duration": 2000000,
    "prompt_eval_count": 26, "prompt_eval_duration": 38000000, "eval_count": 9,
    "eval_duration": 470000000})");
  EXPECT_EQ(r.text, "Hello, Zürich!") << "thinking stays out of the text";
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.model, "llama3.2");
  EXPECT_TRUE(r.tool_calls.empty());
  json j = r.to_json();
  EXPECT_EQ(j["usage"], json({{"input_tokens", 26},
                              {"output_tokens", 9},
                              {"cached_input_tokens", 0},
                              {"reasoning_tokens", 0},
                              {"total_tokens", 35}}));
  EXPECT_FALSE(j.contains("request_id")) << "Ollama has no request id";
}

TEST(OllamaWire, ResponseToolCallsGetNumberedIds) {
  ChatResponse r = parse_ok(R"({"model": "qwen3", "message": {"role": "assistant", "content": "",
    "tool_calls": [
      {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}},
      {"function": {"index": 1, "name": "get_time", "arguments": {}}}]},
    "done": true, "done_reason": "stop", "prompt_eval_count": 155, "eval_count": 81})");
  EXPECT_EQ(r.finish_reason, "tool_calls") << "Ollama says stop for an answer that calls tools";
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "call_1");
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, json({{"city", "Oslo"}}));
  EXPECT_EQ(r.tool_calls[1].id, "call_2");
  EXPECT_EQ(r.tool_calls[1].arguments, json::object());
}

TEST(OllamaWire, FinishReasonsAreNormalized) {
  EXPECT_EQ(ollama::map_finish_reason("stop", false), "stop");
  EXPECT_EQ(ollama::map_finish_reason("length", false), "length");
  EXPECT_EQ(ollama::map_finish_reason(nullptr, false), "stop");
  EXPECT_EQ(ollama::map_finish_reason("stop", true), "tool_calls");
  EXPECT_EQ(ollama::map_finish_reason("connection_closed", false), "error");
  ChatResponse r =
      parse_ok(R"({"model":"m","message":{"role":"assistant","content":"Once upon"},"done":true,)"
               R"("done_reason":"length"})");
  EXPECT_EQ(r.text, "Once upon");
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.to_json()["usage"]["total_tokens"], 0) << "all five usage fields even when absent";
}

TEST(OllamaWire, BadResponseBodiesFailClearly) {
  ChatResponse r;
  auto not_json = ollama::parse_response("<html>", &r);
  ASSERT_TRUE(not_json.has_value());
  EXPECT_EQ(not_json->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(not_json->retryable);
  EXPECT_EQ(not_json->message, "ollama: response body is not a JSON object");

  auto no_message = ollama::parse_response(R"({"model":"m","done":true})", &r);
  ASSERT_TRUE(no_message.has_value());
  EXPECT_EQ(no_message->status, TROUPE_TRANSPORT);
  EXPECT_EQ(no_message->message, "ollama: response has no message");

  auto bad_args = ollama::parse_response(
      R"({"message":{"content":"","tool_calls":[{"function":{"name":"search","arguments":[1]}}]},)"
      R"("done":true})",
      &r);
  ASSERT_TRUE(bad_args.has_value());
  EXPECT_EQ(bad_args->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(bad_args->retryable);
  EXPECT_NE(bad_args->message.find("'search'"), std::string::npos) << bad_args->message;

  auto error_body =
      ollama::parse_response(R"({"error":"llama runner process has terminated"})", &r);
  ASSERT_TRUE(error_body.has_value());
  EXPECT_EQ(error_body->status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(error_body->retryable);
  EXPECT_EQ(error_body->message, "ollama: llama runner process has terminated");
}

// ---------------------------------------------------------------------------------------
// Streams

std::string line(const std::string& message_json, const std::string& tail = "\"done\":false") {
  return "{\"model\":\"qwen3\",\"created_at\":\"2025-01-01T00:00:00.000000Z\",\"message\":" +
         message_json + "," + tail + "}\n";
}

// A recorded-style stream: thinking, text (with a 4-byte code point), one chunk carrying two
// whole tool calls, the final done line with the counts.
const std::string kStream =
    line(R"({"role":"assistant","content":"","thinking":"The user wants "})") +
    line(R"({"role":"assistant","content":"","thinking":"weather."})") +
    line(R"({"role":"assistant","content":"Checking Z\u00fcrich "})") +
    line("{\"role\":\"assistant\",\"content\":\"\xF0\x9F\x8C\xA6 now.\"}") +
    line(R"({"role":"assistant","content":"","tool_calls":[)"
         R"({"function":{"index":0,"name":"get_weather","arguments":{"city":"Z\u00fcrich"}}},)"
         R"({"function":{"index":1,"name":"get_time","arguments":{"tz":"Europe/Zurich"}}}]})") +
    line(R"({"role":"assistant","content":""})",
         R"("done":true,"done_reason":"stop","total_duration":512000000,)"
         R"("prompt_eval_count":120,"prompt_eval_duration":38000000,"eval_count":45,)"
         R"("eval_duration":470000000)");

struct Decoded {
  bool done = false;
  std::optional<troupe::kit::CallError> error;
  ChatResponse response;
  RecordingSink sink;
};

// Feeds the pieces as the kit's call driver does: lines, empty ones skipped, a last line
// without its newline still counts.
Decoded decode(const std::vector<std::string>& pieces) {
  Decoded out;
  ollama::StreamDecoder decoder;
  troupe::kit::LineSplitter lines;
  auto on_line = [&](std::string_view l) {
    if (out.error || decoder.done() || l.empty()) return;
    out.error = decoder.on_line(l, out.sink);
  };
  for (const std::string& piece : pieces)
    lines.feed(piece, on_line);
  if (!lines.pending().empty()) on_line(lines.pending());
  out.done = decoder.done();
  if (!out.error && out.done) out.error = decoder.finish(&out.response);
  return out;
}

TEST(OllamaWire, RecordedStreamDecodesTextThinkingToolCallsAndUsage) {
  Decoded d = decode({kStream});
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  ASSERT_TRUE(d.done);
  const std::string text = "Checking Zürich \xF0\x9F\x8C\xA6 now.";
  EXPECT_EQ(d.response.text, text);
  EXPECT_EQ(d.sink.text, text) << "the deltas add up to the text";
  EXPECT_EQ(d.sink.reasoning, "The user wants weather.");
  EXPECT_EQ(d.response.finish_reason, "tool_calls");
  EXPECT_EQ(d.response.model, "qwen3");
  ASSERT_EQ(d.response.tool_calls.size(), 2u);
  EXPECT_EQ(d.response.tool_calls[0].id, "call_1");
  EXPECT_EQ(d.response.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.response.tool_calls[0].arguments, json({{"city", "Zürich"}}));
  EXPECT_EQ(d.response.tool_calls[1].id, "call_2");
  EXPECT_EQ(d.response.tool_calls[1].arguments, json({{"tz", "Europe/Zurich"}}));
  EXPECT_EQ(d.response.to_json()["usage"], json({{"input_tokens", 120},
                                                 {"output_tokens", 45},
                                                 {"cached_input_tokens", 0},
                                                 {"reasoning_tokens", 0},
                                                 {"total_tokens", 165}}));
  ASSERT_EQ(d.sink.usages.size(), 1u);
  EXPECT_EQ(d.sink.usages[0]["input_tokens"], 120);
  // Each tool call arrives whole: one delta with id, name and the full arguments JSON.
  ASSERT_EQ(d.sink.tool_deltas.size(), 2u);
  EXPECT_EQ(d.sink.tool_deltas[0].index, 0);
  EXPECT_EQ(d.sink.tool_deltas[0].id, "call_1");
  EXPECT_EQ(d.sink.tool_deltas[0].name, "get_weather");
  EXPECT_EQ(json::parse(d.sink.tool_deltas[0].arguments), json({{"city", "Zürich"}}));
  EXPECT_EQ(d.sink.tool_deltas[1].index, 1);
  EXPECT_EQ(d.sink.tool_deltas[1].id, "call_2");
  EXPECT_EQ(json::parse(d.sink.tool_deltas[1].arguments), json({{"tz", "Europe/Zurich"}}));
}

TEST(OllamaWire, RecordedStreamSplitAtEveryByteOffsetDecodesIdentically) {
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
    ASSERT_EQ(d.sink.usages, whole.sink.usages) << cut;
  }
  std::vector<std::string> bytes;
  for (char c : kStream)
    bytes.emplace_back(1, c);
  EXPECT_EQ(decode(bytes).response.to_json_text(), expected);
}

TEST(OllamaWire, CrlfLinesAndALastLineWithoutNewlineDecode) {
  std::string crlf;
  for (char c : kStream) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  crlf.resize(crlf.size() - 2);  // the done line ends without its CRLF
  Decoded d = decode({crlf});
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  ASSERT_TRUE(d.done);
  EXPECT_EQ(d.response.to_json_text(), decode({kStream}).response.to_json_text());
}

TEST(OllamaWire, StreamWithoutTheDoneLineIsNotDone) {
  std::string cut = kStream.substr(0, kStream.rfind("{\"model\""));
  Decoded d = decode({cut});
  EXPECT_FALSE(d.error.has_value());
  EXPECT_FALSE(d.done);
}

TEST(OllamaWire, StreamLineThatIsNotJsonFailsRetryably) {
  Decoded d = decode({line(R"({"role":"assistant","content":"hi"})") + "{\"message\": {tru\n"});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(d.error->retryable);
  EXPECT_EQ(d.error->message, "ollama: stream line is not a JSON object");
}

TEST(OllamaWire, ErrorLineMidStreamFailsTheCall) {
  std::string stream = line(R"({"role":"assistant","content":"hi"})") +
                       "{\"error\":\"an error was encountered while running the model: "
                       "unexpected EOF\"}\n" +
                       line(R"({"role":"assistant","content":" there"})");
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    Decoded d = decode({stream.substr(0, cut), stream.substr(cut)});
    ASSERT_TRUE(d.error.has_value()) << cut;
    EXPECT_EQ(d.error->status, TROUPE_UNAVAILABLE) << cut;
    EXPECT_TRUE(d.error->retryable) << cut;
    EXPECT_EQ(d.error->message,
              "ollama: an error was encountered while running the model: unexpected EOF")
        << cut;
    EXPECT_EQ(d.sink.text, "hi") << "nothing after the error line is decoded";
  }
}

TEST(OllamaWire, StreamedToolCallWithArgumentsThatAreNotJsonFailsNamingTheTool) {
  Decoded d = decode({line(R"({"role":"assistant","content":"","tool_calls":[)"
                           R"({"function":{"name":"run","arguments":"{\"a\":"}}]})") +
                      line(R"({"role":"assistant","content":""})", R"("done":true)")});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->message, "ollama: tool call 'run' has arguments that are not JSON");
  EXPECT_EQ(d.error->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(d.error->retryable);
}

TEST(OllamaWire, ToolCallsAcrossChunksAreNumberedInOrder) {
  Decoded d = decode(
      {line(
           R"({"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{}}}]})") +
       line(
           R"({"role":"assistant","content":"","tool_calls":[{"function":{"name":"b","arguments":null}}]})") +
       line(R"({"role":"assistant","content":""})", R"("done":true,"done_reason":"stop")")});
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  ASSERT_EQ(d.response.tool_calls.size(), 2u);
  EXPECT_EQ(d.response.tool_calls[0].id, "call_1");
  EXPECT_EQ(d.response.tool_calls[1].id, "call_2");
  EXPECT_EQ(d.response.tool_calls[1].arguments, json::object()) << "null arguments are {}";
  ASSERT_EQ(d.sink.tool_deltas.size(), 2u);
  EXPECT_EQ(d.sink.tool_deltas[1].index, 1);
  EXPECT_EQ(d.sink.tool_deltas[1].arguments, "{}");
  EXPECT_EQ(d.response.finish_reason, "tool_calls");
}

}  // namespace
