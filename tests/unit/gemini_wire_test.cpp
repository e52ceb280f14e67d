// gemini_wire_test.cpp: the gemini plugin's pure translation — normalized request ->
// generateContent body, response body -> normalized response, and the alt=sse stream decoder
// (fed through the kit's SSE parser, split at every byte offset).
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/event_sink.h"
#include "common/sse_parser.h"
#include "common/url_encode.h"
#include "gemini_wire.h"

namespace {

using nlohmann::json;
using troupe::kit::ChatResponse;
using troupe::kit::RecordingSink;
namespace gemini = troupe::gemini;

json body_for(const json& request, gemini::RequestOptions options = {}) {
  json body;
  auto error = gemini::build_request_body(request, options, &body);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
  return body;
}

const json kToolRequest = json::parse(R"({
  "model": "gemini-2.5-flash",
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "system", "content": "Use metric units."},
    {"role": "user", "content": "Weather and time in Paris?", "name": "alice"},
    {"role": "assistant", "content": "Let me look.", "tool_calls": [
      {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
      {"id": "call_2", "name": "get_time", "arguments": {}}]},
    {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\":21}"},
    {"role": "assistant", "content": "21°C at 14:05. Anything else?"},
    {"role": "user", "content": "And in Rome?"},
    {"role": "assistant", "content": "", "tool_calls": [
      {"id": "call_1", "name": "get_time", "arguments": {"tz": "Europe/Rome"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "[1, 2]"}
  ],
  "tools": [
    {"name": "get_weather", "description": "Current weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                    "additionalProperties": false, "required": ["city"]}},
    {"name": "get_time", "description": "",
     "parameters": {"type": "object", "properties": {"tz": {"$ref": "#/$defs/tz"}},
                    "$defs": {"tz": {"type": ["string", "null"]}}}}
  ],
  "tool_choice": {"name": "get_weather"},
  "temperature": 0.2,
  "max_tokens": 300,
  "stop": ["END"],
  "metadata": {"agent": "coder", "run_id": "r1", "step_key": "1"}
})");

TEST(GeminiWire, SystemMessagesBecomeOneSystemInstruction) {
  json body = body_for(kToolRequest);
  EXPECT_EQ(body["systemInstruction"],
            json({{"parts", {{{"text", "Be brief."}}, {{"text", "Use metric units."}}}}}));
  for (const json& turn : body["contents"])
    EXPECT_NE(turn["role"], "system");
}

TEST(GeminiWire, RequestMapsTurnsToolCallsAndNamedToolResults) {
  json body = body_for(kToolRequest);
  EXPECT_FALSE(body.contains("model")) << "the model goes in the URL";
  const json& c = body["contents"];
  ASSERT_EQ(c.size(), 7u) << c.dump(2);
  EXPECT_EQ(c[0], json({{"role", "user"}, {"parts", {{{"text", "Weather and time in Paris?"}}}}}));
  EXPECT_EQ(c[1]["role"], "model");
  EXPECT_EQ(c[1]["parts"], json::parse(R"([
    {"text": "Let me look."},
    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
    {"functionCall": {"name": "get_time", "args": {}}}])"));
  // Both results of one step in ONE user turn, named after the calls their ids answer; a
  // JSON-object result goes as it is, anything else wrapped in {"result": ...}.
  EXPECT_EQ(c[2], json::parse(R"({"role": "user", "parts": [
    {"functionResponse": {"name": "get_time", "response": {"result": "14:05"}}},
    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]})"));
  EXPECT_EQ(c[3], json::parse(R"({"role": "model", "parts": [
    {"text": "21°C at 14:05. Anything else?"}]})"));
  EXPECT_EQ(c[4], json::parse(R"({"role": "user", "parts": [{"text": "And in Rome?"}]})"));
  // An assistant turn that only calls tools has no text part.
  EXPECT_EQ(c[5], json::parse(R"({"role": "model", "parts": [
    {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Rome"}}}]})"));
}

TEST(GeminiWire, ToolResultIdsResolveAgainstTheLatestAssistantTurn) {
  // The last assistant turn reuses the id call_1 (Gemini sends no ids, so every answer
  // numbers its calls from 1): the final result answers that turn's get_time, not the first
  // turn's get_weather.
  json body = body_for(kToolRequest);
  const json& last = body["contents"].back();
  EXPECT_EQ(last["role"], "user");
  EXPECT_EQ(last["parts"], json::parse(R"([{"functionResponse": {"name": "get_time",
                                                   "response": {"result": [1, 2]}}}])"));
}

TEST(GeminiWire, ToolsUseParametersJsonSchemaAndToolChoiceForcesOne) {
  json body = body_for(kToolRequest);
  ASSERT_EQ(body["tools"].size(), 1u);
  const json& decls = body["tools"][0]["functionDeclarations"];
  ASSERT_EQ(decls.size(), 2u);
  EXPECT_EQ(decls[0]["name"], "get_weather");
  EXPECT_EQ(decls[0]["description"], "Current weather");
  EXPECT_EQ(decls[0]["parametersJsonSchema"], kToolRequest["tools"][0]["parameters"])
      << "the JSON Schema goes unchanged (additionalProperties, $ref, type arrays)";
  EXPECT_FALSE(decls[0].contains("parameters"));
  EXPECT_FALSE(decls[1].contains("description")) << "an empty description is left out";
  EXPECT_EQ(body["toolConfig"], json::parse(R"({"functionCallingConfig":
      {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})"));
}

TEST(GeminiWire, ToolChoiceStringsMapToModes) {
  for (auto [choice, mode] : std::vector<std::pair<std::string, std::string>>{
           {"auto", "AUTO"}, {"none", "NONE"}, {"required", "ANY"}}) {
    json request = kToolRequest;
    request["tool_choice"] = choice;
    json body = body_for(request);
    EXPECT_EQ(body["toolConfig"], json({{"functionCallingConfig", {{"mode", mode}}}})) << choice;
  }
}

TEST(GeminiWire, GenerationConfigCarriesTemperatureLimitAndStops) {
  json body = body_for(kToolRequest);
  EXPECT_EQ(body["generationConfig"],
            json({{"temperature", 0.2}, {"maxOutputTokens", 300}, {"stopSequences", {"END"}}}));
}

TEST(GeminiWire, MetadataIsNeverSent) {
  json body = body_for(kToolRequest);
  std::string text = body.dump();
  EXPECT_FALSE(body.contains("metadata"));
  EXPECT_EQ(text.find("coder"), std::string::npos) << text;
  EXPECT_EQ(text.find("step_key"), std::string::npos) << text;
}

TEST(GeminiWire, StructuredOutputSendsJsonMimeTypeAndResponseJsonSchema) {
  json schema = json::parse(
      R"({"type": "object", "properties": {"answer": {"type": "string"}},
          "required": ["answer"], "additionalProperties": false})");
  json request = {
      {"model", "gemini-2.5-pro"},
      {"messages", {{{"role", "user"}, {"content", "Answer in JSON"}}}},
      {"response_format", {{"type", "json_schema"}, {"name", "a"}, {"schema", schema}}}};
  json body = body_for(request);
  EXPECT_EQ(body["generationConfig"]["responseMimeType"], "application/json");
  EXPECT_EQ(body["generationConfig"]["responseJsonSchema"], schema);
  EXPECT_FALSE(body["generationConfig"].contains("responseSchema"));
  EXPECT_FALSE(body.contains("tools"));
  EXPECT_FALSE(body.contains("toolConfig"));
}

TEST(GeminiWire, IncludeThoughtsOptionAsksForThoughtSummaries) {
  json request = {{"model", "gemini-2.5-pro"},
                  {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  gemini::RequestOptions options;
  options.include_thoughts = true;
  EXPECT_EQ(body_for(request, options)["generationConfig"],
            json({{"thinkingConfig", {{"includeThoughts", true}}}}));
  EXPECT_FALSE(body_for(request).contains("generationConfig")) << "nothing to configure";
}

TEST(GeminiWire, ToolResultWithoutMatchingCallUsesItsNameOrFails) {
  json request = {{"model", "gemini-2.5-flash"},
                  {"messages",
                   {{{"role", "user"}, {"content", "hi"}},
                    {{"role", "tool"}, {"tool_call_id", "x9"}, {"content", "ok"}, {"name", "f"}}}}};
  json body = body_for(request);
  EXPECT_EQ(body["contents"][0]["parts"][1]["functionResponse"]["name"], "f");

  request["messages"][1].erase("name");
  json out;
  auto error = gemini::build_request_body(request, {}, &out);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, TROUPE_INVALID_ARGUMENT);
  EXPECT_NE(error->message.find("x9"), std::string::npos) << error->message;
}

TEST(GeminiWire, Gemini3ReplaysGetThoughtSignatures) {
  json request = kToolRequest;
  request["model"] = "gemini-3-pro-preview";
  // Older models: no signature is invented.
  EXPECT_FALSE(body_for(kToolRequest)["contents"][1]["parts"][1].contains("thoughtSignature"));
  // Gemini 3: the first call of each model turn carries the placeholder...
  json body = body_for(request);
  EXPECT_EQ(body["contents"][1]["parts"][1]["thoughtSignature"], gemini::kSkipSignature);
  EXPECT_FALSE(body["contents"][1]["parts"][2].contains("thoughtSignature"));
  EXPECT_EQ(body["contents"][5]["parts"][0]["thoughtSignature"], gemini::kSkipSignature);
  // ...unless the real signature is known.
  gemini::RequestOptions options;
  options.signature_for = [](const std::string& name, const json& args) -> std::string {
    return name == "get_weather" && args == json({{"city", "Paris"}}) ? "c2lnLTE=" : "";
  };
  body = body_for(request, options);
  EXPECT_EQ(body["contents"][1]["parts"][1]["thoughtSignature"], "c2lnLTE=");
  EXPECT_TRUE(gemini::requires_thought_signatures("models/gemini-3-flash"));
  EXPECT_TRUE(gemini::requires_thought_signatures("gemini-flash-latest"));
  EXPECT_FALSE(gemini::requires_thought_signatures("gemini-2.5-flash"));
  EXPECT_FALSE(gemini::requires_thought_signatures("gemma-3-27b-it"));
}

TEST(GeminiWire, EndpointPutsModelAndMethodInThePath) {
  EXPECT_EQ(gemini::endpoint_url("https://g.example", "v1beta", "models/gemini-2.5-flash", false),
            "https://g.example/v1beta/models/gemini-2.5-flash:generateContent");
  EXPECT_EQ(gemini::endpoint_url("https://g.example", "v1", "gemini-2.5-flash", true),
            "https://g.example/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
}

TEST(GeminiWire, AHostileModelNameStaysInsideItsPathSegment) {
  EXPECT_EQ(gemini::endpoint_url("https://g.example", "v1beta", "../../x?y#z", false),
            "https://g.example/v1beta/models/..%2F..%2Fx%3Fy%23z:generateContent");
  EXPECT_EQ(gemini::endpoint_url("https://g.example", "v1beta", "models/a b/c%d", true),
            "https://g.example/v1beta/models/a%20b%2Fc%25d:streamGenerateContent?alt=sse");
  EXPECT_EQ(gemini::endpoint_url("https://g.example", "v1beta", "..", false),
            "https://g.example/v1beta/models/%2E%2E:generateContent");
}

TEST(ProviderKit, PercentEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(troupe::kit::percent_encode("gemini-2.5-flash_x~y"), "gemini-2.5-flash_x~y");
  EXPECT_EQ(troupe::kit::percent_encode("a/b?c#d&e=f g%h:i@j"),
            "a%2Fb%3Fc%23d%26e%3Df%20g%25h%3Ai%40j");
  EXPECT_EQ(troupe::kit::percent_encode(std::string("\r\n\0\xff", 4)), "%0D%0A%00%FF");
  EXPECT_EQ(troupe::kit::percent_encode("."), "%2E");
  EXPECT_EQ(troupe::kit::percent_encode("..."), "...");  // not a dot segment
  EXPECT_EQ(troupe::kit::percent_encode(""), "");
}

// -- responses --------------------------------------------------------------------------------

const char* kToolResponse = R"({
  "candidates": [{
    "content": {"role": "model", "parts": [
      {"text": "Thinking about weather.", "thought": true},
      {"text": "Checking "},
      {"text": "both."},
      {"functionCall": {"name": "get_weather", "args": {"city": "Zürich"}},
       "thoughtSignature": "c2lnLWE="},
      {"functionCall": {"name": "get_time"}}
    ]},
    "finishReason": "STOP", "index": 0
  }],
  "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 33,
                    "thoughtsTokenCount": 12, "cachedContentTokenCount": 64,
                    "totalTokenCount": 165},
  "modelVersion": "gemini-2.5-flash-001",
  "responseId": "resp-abc"
})";

TEST(GeminiWire, ResponseWithTextAndTwoFunctionCalls) {
  ChatResponse r;
  std::vector<std::string> signatures;
  auto error = gemini::parse_response(
      kToolResponse, &r, [&](const std::string& name, const json& args, const std::string& sig) {
        signatures.push_back(name + " " + args.dump() + " " + sig);
      });
  ASSERT_FALSE(error.has_value()) << error->message;
  EXPECT_EQ(r.text, "Checking both.") << "thought parts are not text";
  EXPECT_EQ(r.finish_reason, "tool_calls") << "STOP with function calls";
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "call_1");
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, json({{"city", "Zürich"}}));
  EXPECT_EQ(r.tool_calls[1].id, "call_2");
  EXPECT_EQ(r.tool_calls[1].arguments, json::object()) << "absent args are {}";
  EXPECT_EQ(r.model, "gemini-2.5-flash-001");
  EXPECT_EQ(r.request_id, "resp-abc");
  EXPECT_EQ(r.to_json()["usage"], json({{"input_tokens", 120},
                                        {"output_tokens", 45},
                                        {"cached_input_tokens", 64},
                                        {"reasoning_tokens", 12},
                                        {"total_tokens", 165}}));
  ASSERT_EQ(signatures.size(), 1u);
  EXPECT_EQ(signatures[0], "get_weather {\"city\":\"Zürich\"} c2lnLWE=");
}

TEST(GeminiWire, FinishReasonsMap) {
  EXPECT_EQ(gemini::map_finish_reason("STOP", false), "stop");
  EXPECT_EQ(gemini::map_finish_reason("STOP", true), "tool_calls");
  EXPECT_EQ(gemini::map_finish_reason("MAX_TOKENS", true), "length");
  for (const char* filtered :
       {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})
    EXPECT_EQ(gemini::map_finish_reason(filtered, false), "content_filter") << filtered;
  for (const char* other :
       {"OTHER", "MALFORMED_FUNCTION_CALL", "LANGUAGE", "FINISH_REASON_UNSPECIFIED"})
    EXPECT_EQ(gemini::map_finish_reason(other, false), "error") << other;
  EXPECT_EQ(gemini::map_finish_reason(json(), false), "stop");

  ChatResponse r;
  ASSERT_FALSE(gemini::parse_response(
      R"({"candidates":[{"content":{"parts":[{"text":"cut"}]},"finishReason":"MAX_TOKENS"}]})",
      &r));
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.text, "cut");
  ASSERT_FALSE(gemini::parse_response(R"({"candidates":[{"finishReason":"SAFETY"}]})", &r));
  EXPECT_EQ(r.finish_reason, "content_filter");
  EXPECT_EQ(r.text, "");
}

TEST(GeminiWire, BlockedPromptIsContentFilterWithEmptyText) {
  ChatResponse r;
  auto error = gemini::parse_response(
      R"({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
          "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
          "modelVersion": "gemini-2.5-flash", "responseId": "r1"})",
      &r);
  ASSERT_FALSE(error.has_value()) << error->message;
  EXPECT_EQ(r.finish_reason, "content_filter");
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.usage.input, 9);
  EXPECT_EQ(r.request_id, "r1");
}

TEST(GeminiWire, GarbledOrErrorBodiesFail) {
  ChatResponse r;
  auto e = gemini::parse_response("<html>oops</html>", &r);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(e->retryable);
  e = gemini::parse_response(R"({"candidates": []})", &r);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, TROUPE_TRANSPORT);
  e = gemini::parse_response(
      R"({"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
          "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}})",
      &r);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, TROUPE_RATE_LIMITED);
  EXPECT_EQ(e->retry_after_ms, 7000u);
  EXPECT_EQ(e->message.rfind("gemini: ", 0), 0u) << e->message;
  e = gemini::parse_response(
      R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":[1]}}]}}]})", &r);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, TROUPE_TRANSPORT);
  EXPECT_NE(e->message.find("'f'"), std::string::npos) << e->message;
}

// -- streams ----------------------------------------------------------------------------------

// A recorded alt=sse stream (CRLF line ends, as Gemini sends them): a thought, text with a
// multi-byte character, two function calls in one chunk, usage growing to the last chunk.
const std::string kStream =
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Let me think.\",\"thought\": "
    "true}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": "
    "120,\"totalTokenCount\": 120},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": "
    "\"resp-s1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Checking Zürich "
    "\xF0\x9F\x8C\xA6 \"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": "
    "{\"promptTokenCount\": 120,\"totalTokenCount\": 120},\"modelVersion\": "
    "\"gemini-2.5-flash\",\"responseId\": \"resp-s1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"and the time.\"}],\"role\": "
    "\"model\"},\"index\": 0}],\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": "
    "\"resp-s1\"}\r\n\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": "
    "\"get_weather\",\"args\": {\"city\": \"Zürich\"}},\"thoughtSignature\": \"c2ln\"},"
    "{\"functionCall\": {\"name\": \"get_time\",\"args\": {\"tz\": "
    "\"Europe/Zurich\"}}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": "
    "0}],\"usageMetadata\": {\"promptTokenCount\": 120,\"candidatesTokenCount\": "
    "33,\"thoughtsTokenCount\": 12,\"cachedContentTokenCount\": 64,\"totalTokenCount\": "
    "165},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"resp-s1\"}\r\n\r\n";

struct Decoded {
  bool done = false;
  std::optional<troupe::kit::CallError> error;
  ChatResponse response;
  RecordingSink sink;
  int signatures = 0;
};

Decoded decode(const std::vector<std::string>& pieces) {
  Decoded out;
  gemini::StreamDecoder decoder(
      [&](const std::string&, const json&, const std::string&) { ++out.signatures; });
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

TEST(GeminiWire, RecordedStreamDecodesTextThoughtsToolCallsAndUsage) {
  Decoded d = decode({kStream});
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  ASSERT_TRUE(d.done);
  const std::string text = "Checking Zürich \xF0\x9F\x8C\xA6 and the time.";
  EXPECT_EQ(d.response.text, text);
  EXPECT_EQ(d.sink.text, text) << "the deltas add up to the text";
  EXPECT_EQ(d.sink.reasoning, "Let me think.") << "thought parts are reasoning, not text";
  EXPECT_EQ(d.response.finish_reason, "tool_calls");
  EXPECT_EQ(d.response.model, "gemini-2.5-flash");
  EXPECT_EQ(d.response.request_id, "resp-s1");
  ASSERT_EQ(d.response.tool_calls.size(), 2u);
  EXPECT_EQ(d.response.tool_calls[0].id, "call_1");
  EXPECT_EQ(d.response.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.response.tool_calls[0].arguments, json({{"city", "Zürich"}}));
  EXPECT_EQ(d.response.tool_calls[1].id, "call_2");
  EXPECT_EQ(d.response.tool_calls[1].arguments, json({{"tz", "Europe/Zurich"}}));
  EXPECT_EQ(d.response.to_json()["usage"], json({{"input_tokens", 120},
                                                 {"output_tokens", 45},
                                                 {"cached_input_tokens", 64},
                                                 {"reasoning_tokens", 12},
                                                 {"total_tokens", 165}}));
  ASSERT_FALSE(d.sink.usages.empty());
  EXPECT_EQ(d.sink.usages.back()["output_tokens"], 45);
  // Each function call arrives whole: one delta with id, name and the full arguments.
  ASSERT_EQ(d.sink.tool_deltas.size(), 2u);
  EXPECT_EQ(d.sink.tool_deltas[0].index, 0);
  EXPECT_EQ(d.sink.tool_deltas[0].id, "call_1");
  EXPECT_EQ(d.sink.tool_deltas[0].name, "get_weather");
  EXPECT_EQ(json::parse(d.sink.tool_deltas[0].arguments), json({{"city", "Zürich"}}));
  EXPECT_EQ(d.sink.tool_deltas[1].index, 1);
  EXPECT_EQ(d.sink.tool_deltas[1].id, "call_2");
  EXPECT_EQ(d.signatures, 1);
}

TEST(GeminiWire, RecordedStreamSplitAtEveryByteOffsetDecodesIdentically) {
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
  EXPECT_EQ(decode(bytes).response.to_json_text(), expected);
}

TEST(GeminiWire, StreamWithoutFinishReasonIsNotDone) {
  std::string cut = kStream.substr(0, kStream.rfind("data: "));
  Decoded d = decode({cut});
  EXPECT_FALSE(d.error.has_value());
  EXPECT_FALSE(d.done);
}

TEST(GeminiWire, StreamedBlockedPromptEndsWithContentFilter) {
  Decoded d = decode(
      {"data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"},\"usageMetadata\": "
       "{\"promptTokenCount\": 5},\"responseId\": \"r9\"}\r\n\r\n"});
  ASSERT_FALSE(d.error.has_value()) << d.error->message;
  ASSERT_TRUE(d.done);
  EXPECT_EQ(d.response.finish_reason, "content_filter");
  EXPECT_EQ(d.response.text, "");
}

TEST(GeminiWire, StreamErrorChunkAndGarbageFail) {
  Decoded d = decode(
      {"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}}],"
       "\"responseId\": \"r7\"}\r\n\r\n"
       "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": "
       "\"UNAVAILABLE\"}}\r\n\r\n"});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(d.error->retryable);
  EXPECT_NE(d.error->message.find("The model is overloaded"), std::string::npos);
  EXPECT_NE(d.error->message.find("r7"), std::string::npos) << d.error->message;

  d = decode({"data: {\"candidates\": [\r\n\r\n"});
  ASSERT_TRUE(d.error.has_value());
  EXPECT_EQ(d.error->status, TROUPE_TRANSPORT);
  EXPECT_TRUE(d.error->retryable);
}

}  // namespace
