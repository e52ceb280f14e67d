// vendor_server_test.cpp: the fake LLM vendor (tests/support/vendor_server.h) speaks each
// vendor's wire format — checked on the raw bytes with a minimal blocking HTTP client, so the
// server is pinned independently of the plugins that are tested against it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_text.h"
#include "support/vendor_server.h"

namespace troupe::test {
namespace {

using nlohmann::json;

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercased names
  std::string body;                            // de-chunked
};

// One request on its own connection (Connection: close); reads until the server closes.
Reply http(uint16_t port, const std::string& method, const std::string& target,
           const std::string& body = "", const std::vector<std::string>& headers = {}) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    throw std::runtime_error("connect failed");
  }
  std::string request =
      method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& h : headers)
    request += h + "\r\n";
  request += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);

  Reply reply;
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return reply;
  std::string head = raw.substr(0, head_end);
  std::string rest = raw.substr(head_end + 4);
  reply.status = std::atoi(head.substr(9, 3).c_str());
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    size_t end = head.find("\r\n", pos + 2);
    std::string line =
        head.substr(pos + 2, end == std::string::npos ? std::string::npos : end - pos - 2);
    size_t colon = line.find(':');
    if (colon != std::string::npos)
      reply.headers[lower(line.substr(0, colon))] =
          line.substr(line.find_first_not_of(' ', colon + 1));
    pos = end;
  }
  if (lower(reply.headers["transfer-encoding"]) == "chunked") {
    size_t p = 0;
    for (;;) {
      size_t eol = rest.find("\r\n", p);
      if (eol == std::string::npos) break;
      size_t size = std::strtoul(rest.substr(p, eol - p).c_str(), nullptr, 16);
      if (size == 0) break;
      reply.body += rest.substr(eol + 2, size);
      p = eol + 2 + size + 2;
    }
  } else {
    reply.body = rest;
  }
  return reply;
}

// SSE events as (name, data) pairs; separators may be "\n\n" or "\r\n\r\n".
std::vector<std::pair<std::string, std::string>> sse_events(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> events;
  std::string name, data;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    pos = end + 1;
    if (line.empty()) {
      if (!data.empty() || !name.empty()) events.emplace_back(name, data);
      name.clear();
      data.clear();
    } else if (line.rfind("event: ", 0) == 0) {
      name = line.substr(7);
    } else if (line.rfind("data: ", 0) == 0) {
      data += line.substr(6);
    }
  }
  return events;
}

std::vector<json> ndjson_lines(const std::string& body) {
  std::vector<json> lines;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    if (end > pos) lines.push_back(json::parse(body.substr(pos, end - pos)));
    pos = end + 1;
  }
  return lines;
}

json two_tools_reply() {
  return json::parse(R"({"tool_calls":[{"name":"get_weather","arguments":{"city":"Oslo"}},
                                      {"name":"get_time","arguments":{"tz":"CET"}}]})");
}

const char* kOpenAIChat = R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})";

TEST(VendorServer, OpenAIPlainReplyHasTheVendorsShape) {
  VendorServer server;
  Reply r = http(server.port(), "POST", "/v1/chat/completions", kOpenAIChat);
  ASSERT_EQ(r.status, 200);
  json body = json::parse(r.body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "gpt-4o");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "echo: hi");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["usage"]["prompt_tokens"], 12);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
  EXPECT_EQ(body["usage"]["completion_tokens_details"]["reasoning_tokens"], 2);
  auto chats = server.chats();
  ASSERT_EQ(chats.size(), 1u);
  EXPECT_EQ(r.headers["x-request-id"], chats[0].request_id);
  EXPECT_EQ(chats[0].last_user, "hi");
  EXPECT_EQ(chats[0].answer, "default");
}

TEST(VendorServer, OpenAIStreamSendsToolCallDeltasByIndexThenUsageThenDone) {
  VendorServer server;
  server.push(FakeReply::from_json(two_tools_reply()));
  json request = json::parse(kOpenAIChat);
  request["stream"] = true;
  request["stream_options"] = {{"include_usage", true}};
  Reply r = http(server.port(), "POST", "/v1/chat/completions", request.dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"].rfind("text/event-stream", 0), 0u);
  auto events = sse_events(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back().second, "[DONE]");
  json usage_chunk = json::parse(events[events.size() - 2].second);
  EXPECT_EQ(usage_chunk["choices"], json::array());
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], 7);
  std::map<int, std::string> arguments, names;
  std::string finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json chunk = json::parse(events[i].second);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (chunk["choices"].empty()) continue;
    if (!chunk["choices"][0]["finish_reason"].is_null())
      finish = chunk["choices"][0]["finish_reason"];
    for (const auto& call : chunk["choices"][0]["delta"].value("tool_calls", json::array())) {
      int index = call["index"];
      if (call["function"].contains("name")) names[index] = call["function"]["name"];
      arguments[index] += call["function"].value("arguments", "");
    }
  }
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(names[0], "get_weather");
  EXPECT_EQ(names[1], "get_time");
  EXPECT_EQ(json::parse(arguments[0]), json::parse(R"({"city":"Oslo"})"));
  EXPECT_EQ(json::parse(arguments[1]), json::parse(R"({"tz":"CET"})"));
}

TEST(VendorServer, AnthropicStreamFollowsTheEventSequence) {
  VendorServer server;
  json reply = two_tools_reply();
  reply["reply"] = "Checking.";
  server.push(FakeReply::from_json(reply));
  Reply r = http(server.port(), "POST", "/v1/messages",
                 R"({"model":"claude","max_tokens":100,"stream":true,
                     "messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.headers["request-id"].empty());
  auto events = sse_events(r.body);
  ASSERT_GE(events.size(), 6u);
  EXPECT_EQ(events.front().first, "message_start");
  EXPECT_EQ(events[events.size() - 2].first, "message_delta");
  EXPECT_EQ(events.back().first, "message_stop");
  std::string text;
  std::map<int, std::string> partial;
  bool ping = false;
  for (const auto& [name, data] : events) {
    json e = json::parse(data);
    EXPECT_EQ(e["type"], name) << "the event name matches the data's type";
    if (name == "ping") ping = true;
    if (name == "content_block_delta" && e["delta"]["type"] == "text_delta")
      text += e["delta"]["text"];
    if (name == "content_block_delta" && e["delta"]["type"] == "input_json_delta")
      partial[e["index"]] += e["delta"]["partial_json"];
    if (name == "message_delta") {
      EXPECT_EQ(e["delta"]["stop_reason"], "tool_use");
    }
    if (name == "message_start") {
      EXPECT_EQ(e["message"]["usage"]["input_tokens"], 6);
      EXPECT_EQ(e["message"]["usage"]["cache_read_input_tokens"], 4);
      EXPECT_EQ(e["message"]["usage"]["cache_creation_input_tokens"], 2);
    }
  }
  EXPECT_TRUE(ping);
  EXPECT_EQ(text, "Checking.");
  EXPECT_EQ(json::parse(partial[1]), json::parse(R"({"city":"Oslo"})"));
  EXPECT_EQ(json::parse(partial[2]), json::parse(R"({"tz":"CET"})"));
}

TEST(VendorServer, AnthropicSeesToolResultsAndForcedTools) {
  VendorServer server;
  Reply r = http(server.port(), "POST", "/v1/messages", R"({"model":"claude","max_tokens":100,
    "tools":[{"name":"out","input_schema":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}}],
    "tool_choice":{"type":"tool","name":"out"},
    "messages":[{"role":"user","content":"q"}]})");
  json body = json::parse(r.body);
  EXPECT_EQ(body["stop_reason"], "tool_use");
  EXPECT_EQ(body["content"][0]["input"], json::parse(R"({"n":1})"));
  r = http(server.port(), "POST", "/v1/messages", R"({"model":"claude","max_tokens":100,
    "messages":[{"role":"user","content":"q"},
      {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"a","input":{}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r1"},
                                {"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"r2"}]}]}]})");
  EXPECT_EQ(json::parse(r.body)["content"][0]["text"], "tool results: r1 | r2");
  EXPECT_EQ(server.chats().back().last_user, "q");
}

TEST(VendorServer, GeminiStreamsCrlfSseWithFinishReasonLast) {
  VendorServer server;
  Reply r =
      http(server.port(), "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
           R"({"contents":[{"role":"user","parts":[{"text":"hello there"}]}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\r\n\r\n"), std::string::npos) << "Gemini ends events with CRLF";
  auto events = sse_events(r.body);
  ASSERT_GE(events.size(), 2u);
  std::string text, response_id;
  for (size_t i = 0; i < events.size(); ++i) {
    json chunk = json::parse(events[i].second);
    const json& candidate = chunk["candidates"][0];
    EXPECT_EQ(candidate.contains("finishReason"), i + 1 == events.size());
    for (const auto& part : candidate["content"]["parts"])
      text += part.value("text", "");
    if (response_id.empty()) response_id = chunk["responseId"];
    EXPECT_EQ(chunk["responseId"], response_id);
  }
  EXPECT_EQ(text, "echo: hello there");
  json last = json::parse(events.back().second);
  EXPECT_EQ(last["usageMetadata"]["candidatesTokenCount"], 5);
  EXPECT_EQ(last["usageMetadata"]["thoughtsTokenCount"], 2);
  EXPECT_EQ(last["usageMetadata"]["cachedContentTokenCount"], 4);
  EXPECT_EQ(server.chats().back().model, "gemini-2.5-flash");
  EXPECT_TRUE(server.chats().back().stream);
}

TEST(VendorServer, GeminiFunctionCallsAndStructuredOutput) {
  VendorServer server;
  server.push(FakeReply::from_json(two_tools_reply()));
  Reply r = http(server.port(), "POST", "/v1beta/models/g:generateContent",
                 R"({"contents":[{"role":"user","parts":[{"text":"q"}]}]})");
  json parts = json::parse(r.body)["candidates"][0]["content"]["parts"];
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0]["functionCall"]["name"], "get_weather");
  EXPECT_EQ(parts[1]["functionCall"]["args"], json::parse(R"({"tz":"CET"})"));
  r = http(server.port(), "POST", "/v1beta/models/g:generateContent",
           R"({"contents":[{"role":"user","parts":[{"text":"q"}]}],
               "generationConfig":{"responseMimeType":"application/json","responseJsonSchema":
                 {"type":"object","properties":{"ok":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"}}},
                  "required":["ok","tags"]}}})");
  std::string text = json::parse(r.body)["candidates"][0]["content"]["parts"][0]["text"];
  EXPECT_EQ(json::parse(text), json::parse(R"({"ok":true,"tags":["example"]})"));
}

TEST(VendorServer, OllamaStreamsNdjsonEndingWithDone) {
  VendorServer server;
  server.push(FakeReply::from_json(two_tools_reply()));
  Reply r = http(server.port(), "POST", "/api/chat",
                 R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200);
  auto lines = ndjson_lines(r.body);  // no "stream": Ollama's default is to stream
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.back()["done"], true);
  EXPECT_EQ(lines.back()["prompt_eval_count"], 12);
  EXPECT_EQ(lines.back()["eval_count"], 7);
  json calls;
  for (const auto& line : lines)
    if (line["message"].contains("tool_calls")) calls = line["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["function"]["arguments"], json::parse(R"({"city":"Oslo"})"));
}

TEST(VendorServer, ScenarioRulesApplyInOrderWithTimes) {
  VendorServer server;
  server.load_scenario_text(R"({"rules":[
    {"match":"flaky","times":1,"fault":"http-503"},
    {"match":"weather","tool_calls":[{"name":"get_weather","arguments":{"city":"Oslo"}}]},
    {"match":"flaky","reply":"fine now"}],
    "pages":{"doc":"<html>hi</html>"}})");
  auto ask = [&](const std::string& text, bool tools) {
    json request = {{"model", "gpt-4o"},
                    {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
    if (tools)
      request["tools"] =
          json::parse(R"([{"type":"function","function":{"name":"get_weather","parameters":{}}}])");
    return http(server.port(), "POST", "/v1/chat/completions", request.dump());
  };
  EXPECT_EQ(ask("flaky", false).status, 503);
  EXPECT_EQ(json::parse(ask("flaky", false).body)["choices"][0]["message"]["content"], "fine now");
  // A tool_calls rule needs tools offered.
  EXPECT_EQ(json::parse(ask("weather?", false).body)["choices"][0]["message"]["content"],
            "echo: weather?");
  EXPECT_EQ(json::parse(ask("weather?", true).body)["choices"][0]["finish_reason"], "tool_calls");
  Reply page = http(server.port(), "GET", "/pages/doc");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.body, "<html>hi</html>");
  EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_EQ(http(server.port(), "GET", "/pages/nope").status, 404);
  EXPECT_EQ(http(server.port(), "GET", "/health").status, 200);
}

TEST(VendorServer, ScenarioTyposAreErrorsNamingTheField) {
  VendorServer server;
  try {
    server.load_scenario_text(R"({"rules":[{"match":"x","reply":"a"},{"mtach":"y"}]})");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("rules[1]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mtach"), std::string::npos) << e.what();
  }
  EXPECT_THROW(server.load_scenario_text(R"({"rules":[{"fault":"http-999"}]})"),
               std::invalid_argument);
  EXPECT_THROW(server.load_scenario_text(R"({"rule":[]})"), std::invalid_argument);
}

TEST(VendorServer, FaultsByModelNameCarryTheVendorsRetryHints) {
  VendorServer server;
  Reply r =
      http(server.port(), "POST", "/v1/chat/completions",
           R"({"model":"fault-rate-limit-reset","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers["x-ratelimit-reset-requests"], "2s");
  EXPECT_EQ(r.headers["x-ratelimit-reset-tokens"], "1.5s");
  r = http(
      server.port(), "POST", "/v1/messages",
      R"({"model":"fault-rate-limit-reset","max_tokens":5,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 429);
  EXPECT_FALSE(r.headers["anthropic-ratelimit-requests-reset"].empty());
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "rate_limit_error");
  r = http(server.port(), "POST", "/v1beta/models/fault-rate-limit-reset:generateContent",
           R"({"contents":[]})");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.body.find("\"retryDelay\": \"2s\""), std::string::npos) << r.body;
  r = http(
      server.port(), "POST", "/v1/chat/completions",
      R"({"model":"fault-rate-limit-retry-after-ms","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.headers["retry-after-ms"], "1500");
  r = http(server.port(), "POST", "/v1/chat/completions",
           R"({"model":"fault-insufficient-quota","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "insufficient_quota");
  r = http(server.port(), "POST", "/api/chat",
           R"({"model":"fault-context-too-long","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(json::parse(r.body)["error"].is_string());
  // A misspelt fault is refused, not silently answered.
  r = http(server.port(), "POST", "/v1/chat/completions",
           R"({"model":"fault-htp-500","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("unknown fault"), std::string::npos);
}

TEST(VendorServer, StreamFaultsBreakOnlyTheEnd) {
  VendorServer server;
  for (
      const char* vendor_body :
      {R"({"model":"fault-no-terminator","stream":true,"messages":[{"role":"user","content":"x"}]})"}) {
    Reply r = http(server.port(), "POST", "/v1/chat/completions", vendor_body);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
    EXPECT_NE(r.body.find("\"finish_reason\":\"stop\""), std::string::npos);
  }
  Reply r = http(
      server.port(), "POST", "/v1/messages",
      R"({"model":"fault-stream-error","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]})");
  auto events = sse_events(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().first, "error");
  EXPECT_EQ(json::parse(events.back().second)["error"]["type"], "overloaded_error");
  r = http(
      server.port(), "POST", "/api/chat",
      R"({"model":"fault-split-bytes","stream":true,"messages":[{"role":"user","content":"abc"}]})");
  std::string text;
  for (const auto& line : ndjson_lines(r.body))
    text += line["message"].value("content", "");
  EXPECT_EQ(text, "echo: abc") << "one byte per write, still the same stream";
}

TEST(VendorServer, ControlEndpointsQueueRepliesAndReportChats) {
  VendorServer server;
  Reply r =
      http(server.port(), "POST", "/_fake/push", R"([{"reply":"first"},{"fault":"http-500"}])");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server.queued(), 2u);
  r = http(server.port(), "POST", "/api/chat",
           R"({"model":"m","stream":false,"messages":[{"role":"user","content":"x"}]})",
           {"Authorization: Bearer k"});
  EXPECT_EQ(json::parse(r.body)["message"]["content"], "first");
  EXPECT_EQ(http(server.port(), "POST", "/api/chat", R"({"model":"m","messages":[]})").status, 500);
  json chats = json::parse(http(server.port(), "GET", "/_fake/chats").body);
  ASSERT_EQ(chats.size(), 2u);
  EXPECT_EQ(chats[0]["vendor"], "ollama");
  EXPECT_EQ(chats[0]["answer"], "queue");
  EXPECT_EQ(chats[0]["headers"]["authorization"], "Bearer k");
  EXPECT_EQ(chats[1]["fault"], "http-500");
  EXPECT_EQ(http(server.port(), "POST", "/_fake/push", R"({"replly":"x"})").status, 400);
}

TEST(VendorServer, NormalizedUsageFollowsTheContract) {
  FakeUsage u;
  EXPECT_EQ(VendorServer::normalized_usage(Vendor::openai, u),
            json::parse(R"({"input_tokens":12,"output_tokens":7,"cached_input_tokens":4,
                            "reasoning_tokens":2,"total_tokens":19})"));
  EXPECT_EQ(VendorServer::normalized_usage(Vendor::anthropic, u)["reasoning_tokens"], 0);
  EXPECT_EQ(VendorServer::normalized_usage(Vendor::ollama, u)["cached_input_tokens"], 0);
  EXPECT_EQ(VendorServer::huge_text().size(), 20u * 1024u * 1024u);
}

}  // namespace
}  // namespace troupe::test
