// mock_provider_test.cpp: the mock provider's decisions — settings, rules, injected failures,
// replies, usage.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mock_engine.h"
#include "mock_persona.h"
#include "mock_risks.h"
#include "mock_scan.h"
#include "mock_settings.h"
#include "mock_text.h"

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

// --- default replies that read the code in the prompt --------------------------------------

namespace more {

using troupe::mock::code_facts;
using troupe::mock::find_risks;
using troupe::mock::key_words;
using troupe::mock::persona_name;

// The demo's sample: a search endpoint with an SQL query built by an f-string.
const char* const kDiff = R"(diff --git a/app/routes.py b/app/routes.py
index 5d41c2a..e3b7f90 100644
--- a/app/routes.py
+++ b/app/routes.py
@@ -1,3 +1,3 @@
-from app.users import get_user
+from app.users import get_user, search_users
 
 bp = Blueprint("users", __name__)
@@ -11,3 +11,8 @@ def show_user(user_id: int):
     if user is None:
         abort(404)
     return jsonify(user)
+
+@bp.get("/users/search")
+def users_search():
+    term = request.args.get("q", "")
+    return jsonify(search_users(term, 1))
diff --git a/app/users.py b/app/users.py
index 3f2a1c4..8b9d0e7 100644
--- a/app/users.py
+++ b/app/users.py
@@ -8,3 +8,14 @@ def get_user(user_id: int) -> dict | None:
     )
     row = cur.fetchone()
     return dict(row) if row else None
+
+PAGE_SIZE = 20
+
+def search_users(term: str, page: int = 1) -> list[dict]:
+    conn = get_connection()
+    cur = conn.execute(
+        f"SELECT id, name FROM users WHERE name LIKE '%{term}%'"
+    )
+    rows = cur.fetchall()
+    start = page * PAGE_SIZE
+    return [dict(row) for row in rows[start:start + PAGE_SIZE]]
)";

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string security(const std::string& user) {
  return reply_for({{"role", "security_auditor"}}, user);
}

TEST(MockSecurityReply, AnInterpolatedSqlQueryIsQuotedWithItsLocationAndRatedHigh) {
  std::string text =
      security(std::string("Security audit of the pull request:\n```diff\n") + kDiff + "```\n");
  EXPECT_TRUE(has(text, "SQL injection at app/users.py:17 in search_users")) << text;
  EXPECT_TRUE(has(text, "`f\"SELECT id, name FROM users WHERE name LIKE '%{term}%'\"`")) << text;
  EXPECT_TRUE(has(text, "Overall risk: high.")) << text;
  EXPECT_FALSE(has(text, "No critical")) << text;
}

TEST(MockSecurityReply, ConcatenatedSqlOutsideADiffIsInjectionToo) {
  for (const char* line : {R"~(query = "SELECT * FROM users WHERE id = " + user_id)~",
                           R"~(db.query("DELETE FROM carts WHERE owner = '" .. name .. "'"))~",
                           R"~(q := fmt.Sprintf("UPDATE accounts SET plan = '%s'", plan))~",
                           R"~(sql = "INSERT INTO logs VALUES ('%s')" % message)~",
                           "db.all(`SELECT * FROM t WHERE id = ${req.params.id}`)"}) {
    std::string text = security(std::string("Check this code:\n  ") + line + "  \n");
    EXPECT_TRUE(has(text, "SQL injection")) << line << "\n" << text;
    EXPECT_TRUE(has(text, line)) << "quotes the trimmed line: " << text;
    EXPECT_TRUE(has(text, "Overall risk: high.")) << text;
  }
}

TEST(MockSecurityReply, ShellAndCodeExecutionAreRatedHigh) {
  for (const char* line :
       {"os.system(\"convert \" + path)", "subprocess.run(cmd, shell=True, check=True)",
        "result = eval(request.form[\"expr\"])", "exec(user_code)",
        "child_process.exec(`ls ${dir}`)"}) {
    std::string text = security(std::string("Audit:\n") + line);
    EXPECT_TRUE(has(text, "command injection")) << line << "\n" << text;
    EXPECT_TRUE(has(text, "Overall risk: high.")) << text;
  }
}

TEST(MockSecurityReply, DeserializationTlsAndCredentialsAreRatedMedium) {
  struct Case {
    const char* line;
    const char* kind;
  };
  for (const Case& c : {Case{"obj = pickle.loads(blob)", "unsafe deserialization"},
                        Case{"config = yaml.load(stream)", "unsafe deserialization"},
                        Case{"r = requests.get(url, verify=False)", "TLS verification disabled"},
                        Case{"tls.Config{InsecureSkipVerify: true}", "TLS verification disabled"},
                        Case{"DB_PASSWORD = \"hunter2\"", "hard-coded credential"},
                        Case{"headers = {\"api_key\": \"sk-live-123\"}", "hard-coded credential"},
                        Case{"token := \"ghp_abc\"", "hard-coded credential"}}) {
    std::string text = security(std::string("Audit:\n") + c.line);
    EXPECT_TRUE(has(text, std::string("Medium: ") + c.kind)) << c.line << "\n" << text;
    EXPECT_TRUE(has(text, c.line)) << text;
    EXPECT_TRUE(has(text, "Overall risk: medium.")) << text;
  }
}

TEST(MockSecurityReply, NoCriticalIssueOnlyWhenNothingMatches) {
  std::string text = security(
      "Audit this:\n"
      "cur.execute(\"SELECT * FROM users WHERE id = ?\", (user_id,))\n"
      "config = yaml.load(stream, Loader=yaml.SafeLoader)\n"
      "data = yaml.safe_load(stream)\n"
      "value = ast.literal_eval(text)\n"
      "if password == \"\": abort(400)\n"
      "password = os.environ[\"DB_PASSWORD\"]\n"
      "api_key = \"${API_KEY}\"\n"
      "Avoid exec() and eval() and never use shell mode.\n");
  EXPECT_TRUE(has(text, "No critical vulnerability")) << text;
  EXPECT_TRUE(has(text, "Overall risk: low.")) << text;
}

TEST(MockSecurityReply, InADiffOnlyAddedLinesCount) {
  // The injection is removed by this change, and the context line is not part of it.
  std::string diff =
      "--- a/db.py\n+++ b/db.py\n@@ -1,3 +1,3 @@\n"
      "-q = \"SELECT * FROM t WHERE id = \" + tid\n"
      "+q = \"SELECT * FROM t WHERE id = ?\"\n"
      " os.system(\"rm -rf \" + tmp)\n";
  std::string text = security("Audit the change:\n" + diff);
  EXPECT_TRUE(has(text, "Overall risk: low.")) << text;
}

TEST(MockSecurityReply, QuotesAtMostThreeLinesAndCountsTheRest) {
  std::string text = security(
      "Audit:\n"
      "os.system(a)\nos.system(b)\nos.system(c)\nos.system(d)\npassword = \"x1\"\n");
  EXPECT_TRUE(has(text, "Found 5 risky lines")) << text;
  EXPECT_TRUE(has(text, "`os.system(c)`")) << text;
  EXPECT_FALSE(has(text, "`os.system(d)`")) << text;
  EXPECT_TRUE(has(text, "(2 more risky lines not quoted here.)")) << text;
}

TEST(MockScan, FindRisksReportsOneFindingPerDistinctLineMostSevereFirst) {
  auto findings = find_risks(
      "x:\nos.system(\"psql -c 'SELECT * FROM t WHERE a = \" + a + \"'\")\nos.system(cmd)\n"
      "os.system(cmd)\n");
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].kind, "SQL injection");  // SQL is checked before the shell
  EXPECT_TRUE(findings[0].high);
  EXPECT_EQ(findings[1].code, "os.system(cmd)");
  EXPECT_EQ(findings[1].where(), "");  // no diff, no location
}

TEST(MockLeaderReply, SynthesisIsDecidedByTheFirstLineOfTheLastUserMessageOnly) {
  json leader = {{"agent", "leader"}};
  std::string analysis = reply_for(
      leader, "Analyse the reports below:\nThey summarise and combine what the team found.");
  EXPECT_TRUE(has(analysis, "Analysis of \"Analyse the reports below\"")) << analysis;

  std::string synthesis = reply_for(leader, "Summarise the findings:\ncaching\nretries");
  EXPECT_TRUE(has(synthesis, "Synthesis of")) << synthesis;

  // An earlier user turn asking for a synthesis does not count.
  json messages = {{{"role", "user"}, {"content", "Synthesise everything"}},
                   {{"role", "assistant"}, {"content", "ok"}},
                   {{"role", "user"}, {"content", "Plan the rollout of the search service"}}};
  std::string later = engine().plan(request_with(messages, {{"metadata", leader}})).text;
  EXPECT_TRUE(has(later, "Analysis of")) << later;
}

TEST(MockKeyWords, DiffHeadersAndLanguageKeywordsAreSkippedAndAddedIdentifiersComeFirst) {
  auto words = key_words(kDiff, 3);
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0], "search_users");  // 3 times on added lines, seen before PAGE_SIZE
  EXPECT_EQ(words[1], "PAGE_SIZE");     // identifiers keep their spelling
  EXPECT_EQ(words[2], "get_user");
  auto many = key_words(kDiff, 100);
  for (const char* noise : {"return", "diff", "index", "import", "from", "none", "dict", "self",
                            "routes", "show_user", "__name__"}) {
    EXPECT_EQ(std::find(many.begin(), many.end(), noise), many.end()) << noise;
  }
  // "routes" is only in headers, "show_user" only in a hunk header; "user" is removed.
  auto code = key_words(
      "Fix this:\nconst value = await fetchUser(id);\nfunction render() { return string; }\n"
      "func (s *Server) Handle() error { defer s.mu.Unlock(); return nil }\n"
      "public static void main(String[] args) {}\nSELECT name FROM users WHERE id = 1",
      100);
  for (const char* noise :
       {"const", "await", "function", "return", "string", "func", "error", "defer", "public",
        "static", "void", "main_", "args", "select", "from", "where"}) {
    EXPECT_EQ(std::find(code.begin(), code.end(), noise), code.end()) << noise;
  }
  EXPECT_NE(std::find(code.begin(), code.end(), "fetchUser"), code.end());
}

TEST(MockPersonas, RoleNamesPickTheMostSpecificPartOfACompound) {
  struct Case {
    const char* role;
    const char* persona;
  };
  for (const Case& c :
       {Case{"data_analyst", "analyst"}, Case{"analyst", "analyst"}, Case{"devops", "devops"},
        Case{"devops_engineer", "devops"}, Case{"migrator", "migrator"},
        Case{"db_migration_engineer", "migrator"}, Case{"architect", "architect"},
        Case{"documenter", "writer"}, Case{"reviewer", "reviewer"},
        Case{"code_reviewer", "reviewer"}, Case{"tester", "tester"}, Case{"qa_lead", "tester"},
        Case{"security_auditor", "security"}, Case{"leader", "planner"},
        Case{"lead_developer", "planner"}, Case{"coder", "coder"}, Case{"dataAnalyst", "analyst"},
        Case{"latest", "generic"}, Case{"assistant", "generic"}}) {
    EXPECT_EQ(persona_name(c.role), c.persona) << c.role;
  }
}

TEST(MockPersonas, ASystemPromptIsClassifiedByItsFirstSentenceOnly) {
  std::string analyst = reply_for(
      nullptr, "Look at churn:\nmonthly churn by plan",
      "You are a data analyst. Test every hypothesis, review the code and keep it secure.");
  EXPECT_TRUE(has(analyst, "Data analysis of")) << analyst;
  std::string devops =
      reply_for(nullptr, "Ship it", "You are a devops engineer who keeps deployments secure.");
  EXPECT_TRUE(has(devops, "Operations plan for")) << devops;
  std::string migrator = reply_for(nullptr, "Move billing to Postgres",
                                   "You are a migrator.\nYou write code and tests.");
  EXPECT_TRUE(has(migrator, "Migration plan for")) << migrator;
  std::string generic = reply_for(nullptr, "Hello there", "You are helpful. You audit code.");
  EXPECT_TRUE(has(generic, "Here is my response")) << generic;
}

TEST(MockPersonas, TheBuiltInRolePromptsReadAsTheirRoles) {
  // The first sentences of scripts/troupe/roles/*.lua.
  struct Case {
    const char* sentence;
    const char* persona;
  };
  for (const Case& c : {
           Case{"You are a software architect", "architect"},
           Case{"You are a senior software engineer who writes production code", "coder"},
           Case{"You are a data analyst", "analyst"},
           Case{"You are a DevOps / site reliability engineer", "devops"},
           Case{"You are a technical writer who is also an engineer", "writer"},
           Case{"You are the lead engineer of a small team of AI agents (for example a coder, a "
                "tester and a security auditor)",
                "planner"},
           Case{"You are a migration engineer", "migrator"},
           Case{"You are a technical planner", "planner"},
           Case{"You are a meticulous code reviewer", "reviewer"},
           Case{"You are an application security auditor", "security"},
           Case{"You are a test engineer", "tester"},
       }) {
    EXPECT_EQ(persona_name(c.sentence), c.persona) << c.sentence;
  }
}

TEST(MockPersonas, EachNewPersonaHasItsOwnReply) {
  struct Case {
    const char* role;
    const char* opening;
  };
  for (const Case& c :
       {Case{"data_analyst", "Data analysis of"}, Case{"devops", "Operations plan for"},
        Case{"migrator", "Migration plan for"}, Case{"architect", "Architecture notes on"},
        Case{"documenter", "Documentation for"}, Case{"reviewer", "Review of"},
        Case{"tester", "Test plan for"}}) {
    std::string text = reply_for({{"role", c.role}}, "Look at this:\ninvoice totals per region");
    EXPECT_EQ(text.rfind(c.opening, 0), 0u) << c.role << ": " << text;
    EXPECT_TRUE(has(text, "invoice")) << text;
  }
}

TEST(MockCoderReply, NamesTheChangedFilesAndFunctionsAndFixesTheRiskyLine) {
  std::string text = reply_for({{"agent", "coder"}}, std::string("Suggest fixes:\n") + kDiff);
  EXPECT_TRUE(has(text,
                  "(files: app/routes.py and app/users.py; functions: users_search and "
                  "search_users)"))
      << text;
  EXPECT_TRUE(has(text, "1. Fix the SQL injection at app/users.py:17 in search_users")) << text;
  EXPECT_TRUE(has(text, "Add unit tests covering users_search and search_users")) << text;
}

TEST(MockSynthesisReply, NamesThePartsItMergesAndTheFilesAndRisksOfTheConversation) {
  json messages = {
      {{"role", "user"}, {"content", std::string("Analyse pull request:\n") + kDiff}},
      {{"role", "assistant"}, {"content", "Analysis: looks risky."}},
      {{"role", "user"},
       {"content",
        "Synthesise the final review.\n\n## Suggested fixes (coder)\nUse bound parameters.\n\n"
        "## Security audit\nSQL injection. Overall risk: high."}}};
  std::string text =
      engine().plan(request_with(messages, {{"metadata", {{"agent", "leader"}}}})).text;
  EXPECT_TRUE(has(text, "merging Suggested fixes (coder) and Security audit")) << text;
  EXPECT_TRUE(has(text, "Verdict: request changes")) << text;
  EXPECT_TRUE(has(text, "1. High: SQL injection at app/users.py:17 in search_users")) << text;
  EXPECT_TRUE(has(text, "app/routes.py and app/users.py")) << text;
  EXPECT_TRUE(has(text, "users_search and search_users")) << text;

  // Without "##" headings, short "Label:" lines are the parts.
  std::string labels =
      reply_for({{"agent", "leader"}}, "Synthesise a review.\nFixes:\ncaching\nSecurity:\nnone");
  EXPECT_TRUE(has(labels, "merging Fixes and Security")) << labels;
  EXPECT_FALSE(has(labels, "Verdict")) << "no code, no verdict: " << labels;
}

TEST(MockScan, CodeFactsReadFilesFromDiffHeadersAndDefinitionsFromAddedLines) {
  auto facts = code_facts(
      "--- a/old.go\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-func Gone() {}\n-\n"
      "--- a/web/app.js\n+++ b/web/app.js\t2024-01-01 10:00\n@@ -1 +1,4 @@\n"
      " function kept() {}\n+export async function loadUsers(page) {\n"
      "+const render = (rows) => rows.map(row);\n+let count = (a + b) * 2;\n"
      "--- a/srv/server.go\n+++ b/srv/server.go\n@@ -3,2 +3,3 @@ func (s *Server) Old() {\n"
      "--- removed comment line\n+func (s *Server) Handle(w http.ResponseWriter) {\n"
      "+++ counter\n");
  EXPECT_EQ(facts.files, (std::vector<std::string>{"old.go", "web/app.js", "srv/server.go"}));
  EXPECT_EQ(facts.functions, (std::vector<std::string>{"loadUsers", "render", "Handle"}));

  auto lines = troupe::mock::read_lines(
      "@@ -3,2 +3,3 @@\n--- removed comment line\n+++ counter\n+x\n context\n");
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[1].kind, troupe::mock::LineKind::removed);  // hunk lengths, not the prefix
  EXPECT_EQ(lines[2].kind, troupe::mock::LineKind::added);
  EXPECT_EQ(lines[2].text, "++ counter");
  EXPECT_EQ(lines[3].number, 4u);
  EXPECT_EQ(lines[4].kind, troupe::mock::LineKind::context);
}

TEST(MockScan, SectionHeadingsAreHashHeadingsElseShortLabelsOutsideCode) {
  EXPECT_EQ(
      troupe::mock::section_headings("Merge:\n## A part\ntext\n### B:\n```\n## not\n```\n", 5),
      (std::vector<std::string>{"A part", "B"}));
  EXPECT_EQ(troupe::mock::section_headings("Merge these:\nFixes:\nx\nSecurity:\ny\n", 5),
            (std::vector<std::string>{"Fixes", "Security"}));
  EXPECT_TRUE(troupe::mock::section_headings("Just one line:", 5).empty());
}

}  // namespace more

}  // namespace
