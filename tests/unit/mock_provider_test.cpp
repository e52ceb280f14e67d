// mock_provider_test.cpp: the mock provider's decisions — settings, rules, injected failures,
// replies, usage.
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mock_logic.h"

namespace {

using nlohmann::json;
using troupe::mock::Engine;
using troupe::mock::Outcome;

std::string request(const std::string& user, const std::string& model = "gpt-4o",
                    json extra = json::object()) {
  json r = {{"model", model}, {"messages", {{{"role", "user"}, {"content", user}}}}};
  for (auto& [k, v] : extra.items())
    r[k] = v;
  return r.dump();
}

std::string request_with(json messages, json extra = json::object()) {
  json r = {{"model", "m"}, {"messages", std::move(messages)}};
  for (auto& [k, v] : extra.items())
    r[k] = v;
  return r.dump();
}

Engine engine(const std::string& settings = "") {
  return Engine(troupe::mock::parse_settings(settings));
}

std::string message_of(const std::string& settings) {
  try {
    troupe::mock::parse_settings(settings);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(MockSettings, EmptySettingsGiveDefaults) {
  for (const char* text : {"", "{}", "  \n"}) {
    auto s = troupe::mock::parse_settings(text);
    EXPECT_EQ(s.latency_ms, 0u);
    EXPECT_EQ(s.stream_chunk_chars, 12u);
    EXPECT_TRUE(s.rules.empty());
  }
}

TEST(MockSettings, ParsesEveryRuleField) {
  auto s = troupe::mock::parse_settings(R"({"latency_ms":5,"stream_chunk_chars":3,"rules":[
    {"match":"a","model":"m","reply":"r","latency_ms":7,"times":2,
     "tool_calls":[{"name":"t","arguments":{"x":1}}],
     "error":{"status":"rate_limited","message":"slow","retry_after_ms":250}}]})");
  EXPECT_EQ(s.latency_ms, 5u);
  EXPECT_EQ(s.stream_chunk_chars, 3u);
  ASSERT_EQ(s.rules.size(), 1u);
  const auto& r = s.rules[0];
  EXPECT_EQ(*r.match, "a");
  EXPECT_EQ(*r.model, "m");
  EXPECT_EQ(*r.reply, "r");
  EXPECT_EQ(*r.latency_ms, 7u);
  EXPECT_EQ(*r.times, 2u);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(json::parse(r.tool_calls[0].arguments_json), json({{"x", 1}}));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->status, TROUPE_RATE_LIMITED);
  EXPECT_TRUE(r.error->retryable);  // rate limits are retryable unless the rule says otherwise
  EXPECT_EQ(r.error->retry_after_ms, 250u);
}

TEST(MockSettings, BadSettingsAreRejectedNamingTheField) {
  EXPECT_NE(message_of("[1]").find("settings"), std::string::npos);
  EXPECT_NE(message_of("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(message_of(R"({"latency_ms":-1})").find("latency_ms"), std::string::npos);
  EXPECT_NE(message_of(R"({"stream_chunk_chars":0})").find("stream_chunk_chars"),
            std::string::npos);
  EXPECT_NE(
      message_of(R"({"rules":[{},{"error":{"status":"slow"}}]})").find("rules[1].error.status"),
      std::string::npos);
  EXPECT_NE(message_of(R"({"rules":[{"replay":"x"}]})").find("rules[0].replay"), std::string::npos);
  EXPECT_NE(message_of(R"({"rules":[{"tool_calls":[{"name":"t","arguments":"{}"}]}]})")
                .find("rules[0].tool_calls[0].arguments"),
            std::string::npos);
  EXPECT_EQ(message_of(R"({"unrelated_host_setting":true})"), "(accepted)");
}

TEST(MockRules, FirstMatchingRuleWinsOnTheLastUserMessage) {
  auto e = engine(R"({"rules":[{"match":"alpha","reply":"A"},{"match":"beta","reply":"B"},
                               {"reply":"catch-all"}]})");
  EXPECT_EQ(e.plan(request("say beta then alpha")).text, "A");
  EXPECT_EQ(e.plan(request("only beta")).text, "B");
  EXPECT_EQ(e.plan(request("neither")).text, "catch-all");
  // Only the last user message counts, not earlier turns.
  auto r = e.plan(request_with({{{"role", "user"}, {"content", "alpha"}},
                                {{"role", "assistant"}, {"content", "ok"}},
                                {{"role", "user"}, {"content", "beta"}}}));
  EXPECT_EQ(r.text, "B");
}

TEST(MockRules, ModelAndMatchMustBothHoldWhenBothAreGiven) {
  auto e = engine(R"({"rules":[{"model":"small","match":"hi","reply":"small hi"},
                               {"model":"small","reply":"small"}]})");
  EXPECT_EQ(e.plan(request("hi", "small")).text, "small hi");
  EXPECT_EQ(e.plan(request("bye", "small")).text, "small");
  EXPECT_NE(e.plan(request("hi", "large")).text, "small");
}

TEST(MockRules, TimesLimitsARuleSoAFailureCanHappenTwiceThenSucceed) {
  auto e = engine(R"({"rules":[
      {"match":"flaky","times":2,"error":{"status":"unavailable","message":"down"}},
      {"match":"flaky","reply":"finally"}]})");
  for (int i = 0; i < 2; ++i) {
    auto r = e.plan(request("flaky call"));
    ASSERT_EQ(r.kind, Outcome::Kind::fail) << i;
    EXPECT_EQ(r.failure.status, TROUPE_UNAVAILABLE);
    EXPECT_EQ(r.failure.message, "down");
    EXPECT_TRUE(r.failure.retryable);
  }
  auto ok = e.plan(request("flaky call"));
  EXPECT_EQ(ok.kind, Outcome::Kind::reply);
  EXPECT_EQ(ok.text, "finally");
  // Other calls do not use the rule's budget up.
  auto e2 = engine(R"({"rules":[{"match":"x","times":1,"reply":"once"}]})");
  e2.plan(request("nothing"));
  EXPECT_EQ(e2.plan(request("x")).text, "once");
  EXPECT_NE(e2.plan(request("x")).text, "once");
}

TEST(MockRules, RuleLatencyOverridesTheDefault) {
  auto e = engine(R"({"latency_ms":20,"rules":[{"match":"slow","latency_ms":500}]})");
  EXPECT_EQ(e.plan(request("slow one")).latency_ms, 500u);
  EXPECT_EQ(e.plan(request("fast one")).latency_ms, 20u);
}

TEST(MockInjection, ErrorModelNamesFailWithoutConfiguration) {
  auto e = engine();
  auto rl = e.plan(request("x", "error-rate-limited"));
  ASSERT_EQ(rl.kind, Outcome::Kind::fail);
  EXPECT_EQ(rl.failure.status, TROUPE_RATE_LIMITED);
  EXPECT_TRUE(rl.failure.retryable);
  EXPECT_EQ(rl.failure.retry_after_ms, 1000u);

  auto server = e.plan(request("x", "error-server"));
  EXPECT_EQ(server.failure.status, TROUPE_UNAVAILABLE);
  EXPECT_TRUE(server.failure.retryable);

  EXPECT_EQ(e.plan(request("x", "error-timeout")).failure.status, TROUPE_TIMEOUT);

  auto auth = e.plan(request("x", "error-auth"));
  EXPECT_EQ(auth.failure.status, TROUPE_AUTH);
  EXPECT_FALSE(auth.failure.retryable);
  EXPECT_NE(auth.failure.message.find("error-auth"), std::string::npos);

  EXPECT_EQ(e.plan(request("x", "hang")).kind, Outcome::Kind::hang);
}

TEST(MockInjection, ErrorModelsWinOverACatchAllRule) {
  auto e = engine(R"({"rules":[{"reply":"always"}]})");
  EXPECT_EQ(e.plan(request("x", "error-server")).kind, Outcome::Kind::fail);
  EXPECT_EQ(e.plan(request("x", "hang")).kind, Outcome::Kind::hang);
}

TEST(MockRequests, InvalidRequestsFailWithInvalidArgumentNamingTheField) {
  auto e = engine();
  auto bad_json = e.plan("{oops");
  ASSERT_EQ(bad_json.kind, Outcome::Kind::fail);
  EXPECT_EQ(bad_json.failure.status, TROUPE_INVALID_ARGUMENT);
  EXPECT_EQ(bad_json.latency_ms, 0u);

  auto no_messages = e.plan(R"({"model":"m"})");
  EXPECT_EQ(no_messages.failure.status, TROUPE_INVALID_ARGUMENT);
  EXPECT_NE(no_messages.failure.message.find("request.messages"), std::string::npos);

  auto bad_content = e.plan(R"({"model":"m","messages":[{"role":"user","content":5}]})");
  EXPECT_NE(bad_content.failure.message.find("request.messages[0].content"), std::string::npos);
}

TEST(MockRequests, RequestIdsCountPerInstanceAndTheModelIsEchoed) {
  auto e = engine();
  auto first = e.plan(request("a", "claude-x"));
  auto second = e.plan(request("b", "gpt-y"));
  EXPECT_EQ(first.request_id, "mock-1");
  EXPECT_EQ(second.request_id, "mock-2");
  EXPECT_EQ(first.model, "claude-x");
  json response = json::parse(second.response_json());
  EXPECT_EQ(response["model"], "gpt-y");
  EXPECT_EQ(response["request_id"], "mock-2");
  EXPECT_EQ(response["finish_reason"], "stop");
  EXPECT_EQ(engine().plan(request("a")).request_id, "mock-1");  // a new instance starts over
}

TEST(MockTools, RuleToolCallsAreReturnedWhenTheRequestOffersTools) {
  auto e = engine(R"({"rules":[{"match":"weather","reply":"Checking.","tool_calls":[
      {"name":"get_weather","arguments":{"city":"Oslo"}},{"name":"get_time"}]}]})");
  json tools = {{"tools", json::parse(R"([{"name":"get_weather","description":"d",
                                           "parameters":{"type":"object"}}])")}};
  auto r = e.plan(request("weather in Oslo?", "m", tools));
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.text, "Checking.");
  json response = json::parse(r.response_json());
  EXPECT_EQ(response["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(response["tool_calls"][0]["name"], "get_weather");
  EXPECT_EQ(response["tool_calls"][0]["arguments"], json({{"city", "Oslo"}}));
  EXPECT_EQ(response["tool_calls"][1]["id"], "call_2");
  EXPECT_EQ(response["tool_calls"][1]["arguments"], json::object());

  // Without tools in the request the rule's text is the answer.
  auto plain = e.plan(request("weather in Oslo?"));
  EXPECT_TRUE(plain.tool_calls.empty());
  EXPECT_EQ(plain.finish_reason, "stop");
  EXPECT_EQ(plain.text, "Checking.");
}

TEST(MockTools, AToolResultIsAnsweredWithTextQuotingItSoAgentLoopsEnd) {
  auto e = engine(R"({"rules":[{"match":"weather","tool_calls":[{"name":"get_weather"}]}]})");
  json messages = json::parse(R"([
      {"role":"user","content":"weather in Oslo?"},
      {"role":"assistant","content":"","tool_calls":[{"id":"call_1","name":"get_weather","arguments":{}}]},
      {"role":"tool","content":"{\"temp_c\":4}","tool_call_id":"call_1"}])");
  json tools = {{"tools", json::parse(R"([{"name":"get_weather","description":"d",
                                           "parameters":{"type":"object"}}])")}};
  auto r = e.plan(request_with(messages, tools));
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_NE(r.text.find("{\"temp_c\":4}"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("get_weather"), std::string::npos) << r.text;
}

TEST(MockUsage, TokensAreCeilingOfCharactersOverFour) {
  EXPECT_EQ(troupe::mock::tokens_for_chars(0), 0u);
  EXPECT_EQ(troupe::mock::tokens_for_chars(1), 1u);
  EXPECT_EQ(troupe::mock::tokens_for_chars(4), 1u);
  EXPECT_EQ(troupe::mock::tokens_for_chars(5), 2u);
  EXPECT_EQ(troupe::mock::count_chars("h\xC3\xA9llo"), 5u);  // "héllo": code points, not bytes

  auto e = engine(R"({"rules":[{"reply":"12345"}]})");
  auto r = e.plan(request_with(
      {{{"role", "system"}, {"content", "abc"}}, {{"role", "user"}, {"content", "defgh"}}}));
  EXPECT_EQ(r.usage.input_tokens, 2u);   // 8 chars
  EXPECT_EQ(r.usage.output_tokens, 2u);  // 5 chars
  json usage = json::parse(r.usage_json());
  EXPECT_EQ(usage, json::parse(R"({"input_tokens":2,"output_tokens":2,"cached_input_tokens":0,
                                   "reasoning_tokens":0,"total_tokens":4})"));
}

TEST(MockStreaming, ChunksSplitOnCodePointsAndReassembleExactly) {
  using troupe::mock::split_chunks;
  auto chunks = split_chunks("abcdefghij", 4);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0], "abcd");
  EXPECT_EQ(chunks[2], "ij");
  EXPECT_TRUE(split_chunks("", 4).empty());

  std::string text = "gr\xC3\xBC\xC3\x9F dich \xE2\x9C\x93!";  // "grüß dich ✓!"
  auto pieces = split_chunks(text, 3);
  std::string joined;
  for (const auto& p : pieces) {
    EXPECT_LE(troupe::mock::count_chars(p), 3u);
    EXPECT_NE(static_cast<unsigned char>(p[0]) & 0xC0, 0x80) << "piece starts mid code point";
    joined += p;
  }
  EXPECT_EQ(joined, text);
}

std::string reply_for(json metadata, const std::string& user, const std::string& system = "") {
  json messages = json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  json extra = json::object();
  if (!metadata.is_null()) extra["metadata"] = metadata;
  return engine().plan(request_with(messages, extra)).text;
}

TEST(MockDefaultReply, SecurityRoleGivesASecurityReviewOfTheInput) {
  std::string text = reply_for({{"agent", "security"}, {"role", "security_auditor"}},
                               "Review for vulnerabilities:\nparser buffer handling in parser.c");
  EXPECT_NE(text.find("Security review"), std::string::npos) << text;
  EXPECT_NE(text.find("Review for vulnerabilities"), std::string::npos) << text;  // first line
  EXPECT_NE(text.find("parser"), std::string::npos) << text;                      // a key word
}

TEST(MockDefaultReply, CoderSuggestsChangesAndLeaderPlansOrSynthesises) {
  std::string coder = reply_for({{"agent", "coder"}}, "Suggest fixes:\nretry logic in uploader");
  EXPECT_NE(coder.find("Suggested changes"), std::string::npos) << coder;
  EXPECT_NE(coder.find("retry"), std::string::npos) << coder;

  std::string builder = reply_for({{"role", "builder"}}, "Implement caching");
  EXPECT_NE(builder.find("Suggested changes"), std::string::npos) << builder;

  std::string plan = reply_for({{"agent", "leader"}}, "Analyse this pull request:\ndiff --git a/x");
  EXPECT_NE(plan.find("Analysis of \"Analyse this pull request\""), std::string::npos) << plan;
  EXPECT_NE(plan.find("Plan:"), std::string::npos) << plan;

  std::string synthesis =
      reply_for({{"agent", "leader"}}, "Synthesise a review.\nFixes:\ncaching\nSecurity:\nnone");
  EXPECT_NE(synthesis.find("Synthesis"), std::string::npos) << synthesis;
  EXPECT_NE(synthesis.find("caching"), std::string::npos) << synthesis;
}

TEST(MockDefaultReply, TheSystemPromptDecidesWhenThereIsNoMetadata) {
  std::string text = reply_for(nullptr, "Check the login form", "You are a security auditor.");
  EXPECT_NE(text.find("Security review"), std::string::npos) << text;
  std::string generic = reply_for(nullptr, "Tell me about penguins in Antarctica");
  EXPECT_NE(generic.find("penguins"), std::string::npos) << generic;
  EXPECT_NE(generic.find("Tell me about penguins in Antarctica"), std::string::npos) << generic;
}

TEST(MockDefaultReply, IsDeterministic) {
  json meta = {{"agent", "planner"}};
  EXPECT_EQ(reply_for(meta, "Plan the migration of the billing database"),
            reply_for(meta, "Plan the migration of the billing database"));
  EXPECT_NE(reply_for(meta, "Plan the migration of the billing database"),
            reply_for(meta, "Plan the rollout of the search service"));
}

TEST(MockDefaultReply, KeyWordsAreFrequentNonTrivialWordsInFirstSeenOrder) {
  auto words = troupe::mock::key_words(
      "The parser reads the buffer. The buffer holds tokens; the parser checks tokens and "
      "buffer sizes, which matters.",
      3);
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0], "buffer");  // 3 times
  EXPECT_EQ(words[1], "parser");  // 2 times, seen before "tokens"
  EXPECT_EQ(words[2], "tokens");
  EXPECT_TRUE(troupe::mock::key_words("a an the of", 3).empty());
}

TEST(MockDefaultReply, EmptyInputStillGetsAPlausibleReply) {
  std::string text = reply_for(nullptr, "");
  EXPECT_NE(text.find("your request"), std::string::npos) << text;
}

}  // namespace
