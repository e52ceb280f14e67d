// agent_test.cpp: agents in a real host (mock plugin from .so, SQLite journal, event loop) —
// streaming, conversation history, tools and the agent loop, structured output, validation.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "api/host.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "store/store.h"
#include "support/test_dir.h"
#include "support/test_host.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("agent"); }
  void TearDown() override {
    host_.reset();
    fs::remove_all(dir_);
  }

  Host& host(const json& mock_settings = json::object()) {
    host_ = std::make_unique<Host>(test::mock_host_config(dir_, mock_settings.dump()));
    return *host_;
  }

  // Runs `body` as the run function of a workflow; events go to `events` when given.
  RunOutcome run_body(const std::string& body, std::vector<RunEvent>* events = nullptr) {
    if (!host_) host();
    RunSpec spec;
    spec.source_path = (dir_ / "wf.lua").string();
    std::ofstream(spec.source_path) << test::workflow_source(body);
    return host_->run_to_completion(spec, [events](const RunEvent& ev) {
      if (events) events->push_back(ev);
    });
  }

  std::map<std::string, StepRecord> steps(const std::string& run_id) {
    host_->store()->flush();
    std::map<std::string, StepRecord> out;
    for (auto& s : host_->store()->get_steps(run_id))
      out[s.step_key] = s;
    return out;
  }

  fs::path dir_;
  std::unique_ptr<Host> host_;
};

// ---------------------------------------------------------------------------------------
// Streaming

TEST_F(AgentTest, StreamYieldsDeltasThenExactlyOneUsageEventAndTheDeltasMakeTheText) {
  host({{"stream_chunk_chars", 7}});
  std::vector<RunEvent> events;
  auto out = run_body(R"(
    local a = troupe.agent{ name = "streamer", model = "mock/m" }
    local parts, types, last = {}, {}, nil
    for ev in a:stream("Tell me about rivers and lakes") do
      types[#types + 1] = ev.type
      if ev.type == "text_delta" then parts[#parts + 1] = ev.text end
      last = ev
    end
    return { text = table.concat(parts), deltas = #parts, types = types, last = last.type,
             final = last.response.text, usage = last.usage,
             finish = last.response.finish_reason })",
                      &events);
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_GT(o["deltas"].get<int>(), 2);
  EXPECT_EQ(o["text"], o["final"]);
  EXPECT_EQ(o["last"], "usage");
  EXPECT_EQ(o["finish"], "stop");
  EXPECT_GT(o["usage"]["output_tokens"].get<int>(), 0);
  EXPECT_TRUE(o["usage"].contains("total_tokens"));
  int usage_events = 0;
  for (const auto& t : o["types"])
    usage_events += t == "usage";
  EXPECT_EQ(usage_events, 1);

  auto st = steps(out.run_id);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st["1"].kind, "chat");
  EXPECT_EQ(st["1"].status, "succeeded");
  EXPECT_EQ(st["1"].agent, "streamer");
  std::vector<std::string> types;
  int text_events = 0;
  for (const auto& ev : events) {
    if (ev.type == "text.delta") {
      ++text_events;
      EXPECT_EQ(ev.step_key, "1");
    } else {
      types.push_back(ev.type);
    }
  }
  EXPECT_EQ(text_events, o["deltas"].get<int>());
  EXPECT_EQ(types, (std::vector<std::string>{"run.started", "step.started", "step.finished",
                                             "run.finished"}));
}

TEST_F(AgentTest, BreakingOutOfAStreamCancelsTheCallAndRecordsItCancelled) {
  // 3 s of latency spread over many deltas: the loop leaves after two of them.
  host({{"latency_ms", 3000}, {"stream_chunk_chars", 2}});
  auto t0 = std::chrono::steady_clock::now();
  auto out = run_body(R"(
    local a = troupe.agent{ name = "s", model = "mock/m" }
    local n = 0
    for ev in a:stream("a long answer please") do
      n = n + 1
      if n == 2 then break end
    end
    local ok = pcall(function()
      for ev in a:stream("again") do error("the body fails") end
    end)
    return { n = n, ok = ok })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_LT(seconds_since(t0), 2.5) << "the calls must be cancelled, not awaited";
  EXPECT_EQ(json::parse(out.output_json), json::parse(R"({"n":2,"ok":false})"));
  auto st = steps(out.run_id);
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st["1"].status, "cancelled");
  EXPECT_EQ(st["2"].status, "cancelled");
}

TEST_F(AgentTest, AStreamWaitingInACancelledBranchIsCancelled) {
  auto t0 = std::chrono::steady_clock::now();
  auto out = run_body(R"(
    local a = troupe.agent{ name = "s", model = "mock/hang" }
    local ok, err = pcall(troupe.parallel,
      function() for ev in a:stream("forever") do end end,
      function() troupe.sleep(0.05) error("sibling failed", 0) end)
    return { ok = ok })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_EQ(steps(out.run_id)["1.1/1"].status, "cancelled");
}

TEST_F(AgentTest, AStreamedProviderErrorRaisesTheTroupeErrorTable) {
  auto out = run_body(R"(
    local a = troupe.agent{ name = "s", model = "mock/error-rate-limited", retry = false }
    local ok, err = pcall(function() for ev in a:stream("x") do end end)
    return { ok = ok, status = err.status, retryable = err.retryable, key = err.step_key })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(json::parse(out.output_json),
            json::parse(R"({"ok":false,"status":"rate_limited","retryable":true,"key":"1"})"));
  EXPECT_EQ(steps(out.run_id)["1"].status, "failed");
}

TEST_F(AgentTest, StreamedTextIsRedactedEvenWhenASecretIsSplitAcrossDeltas) {
  const std::string secret = "sk-h3stream-0123456789abcdefXYZ";
  log::add_secret(secret);
  host({{"stream_chunk_chars", 5},
        {"rules", {{{"match", "key"}, {"reply", "Your key is " + secret + " (keep it safe)."}}}}});
  std::vector<RunEvent> events;
  auto out = run_body(R"(
    local a = troupe.agent{ name = "s", model = "mock/m" }
    local parts = {}
    for ev in a:stream("what is my key?") do
      if ev.type == "text_delta" then parts[#parts + 1] = ev.text end
    end
    return table.concat(parts))",
                      &events);
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(json::parse(out.output_json), "Your key is [REDACTED] (keep it safe).");
  for (const auto& ev : events)
    EXPECT_EQ(ev.data_json.find(secret), std::string::npos) << ev.type << " " << ev.data_json;
  for (const auto& [key, s] : steps(out.run_id))
    EXPECT_EQ(s.response_json.find(secret), std::string::npos);
}

TEST_F(AgentTest, WaitingOnAStreamSuspendsOnlyItsBranch) {
  host({{"latency_ms", 400}, {"stream_chunk_chars", 4}});
  auto out = run_body(R"(
    local a = troupe.agent{ name = "s", model = "mock/m" }
    local order = {}
    troupe.parallel(
      function()
        for ev in a:stream("slowly, please") do end
        order[#order + 1] = "stream"
      end,
      function() troupe.sleep(0.01) order[#order + 1] = "other" end)
    return order)");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(out.output_json, R"(["other","stream"])");
}

// ---------------------------------------------------------------------------------------
// Conversation history

TEST_F(AgentTest, AnAgentKeepsItsConversationAcrossCallsAndResetClearsIt) {
  auto out = run_body(R"(
    local a = troupe.agent{ name = "a", model = "mock/m", system = "You are terse." }
    a:ask("first question")
    a:chat("second question")
    for ev in a:stream("third question") do end
    local h = a:history()
    local roles = {}
    for i, m in ipairs(h) do roles[i] = m.role end
    a:reset()
    local after_reset = #a:history()
    a:ask("fourth question")
    return { roles = roles, first = h[1].content, fifth = h[5].content,
             after_reset = after_reset, after = #a:history() })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["roles"],
            json::parse(R"(["user","assistant","user","assistant","user","assistant"])"));
  EXPECT_EQ(o["first"], "first question");
  EXPECT_EQ(o["fifth"], "third question");
  EXPECT_EQ(o["after_reset"], 0);
  EXPECT_EQ(o["after"], 2);
  auto st = steps(out.run_id);
  // The third call sent: system, 4 messages of history, its prompt.
  json third = json::parse(st["3"].request_json)["messages"];
  ASSERT_EQ(third.size(), 6u);
  EXPECT_EQ(third[0]["role"], "system");
  EXPECT_EQ(third[1]["content"], "first question");
  EXPECT_EQ(third[5]["content"], "third question");
  // After reset: system and the new prompt only.
  EXPECT_EQ(json::parse(st["4"].request_json)["messages"].size(), 2u);
}

TEST_F(AgentTest, AStatelessAgentSendsOnlyTheCurrentPrompt) {
  auto out = run_body(R"(
    local a = troupe.agent{ name = "a", model = "mock/m", history = false }
    a:ask("one")
    a:ask({ { role = "user", content = "two" }, { role = "assistant", content = "ok" },
            { role = "user", content = "three" } })
    return #a:history())");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(out.output_json, "0");
  auto st = steps(out.run_id);
  EXPECT_EQ(json::parse(st["1"].request_json)["messages"].size(), 1u);
  EXPECT_EQ(json::parse(st["2"].request_json)["messages"].size(), 3u);
}

TEST_F(AgentTest, AnExplicitMessageListIsAppendedAfterTheHistory) {
  auto out = run_body(R"(
    local a = troupe.agent{ name = "a", model = "mock/m", system = "agent prompt" }
    a:ask("earlier")
    a:ask({ { role = "system", content = "call prompt" }, { role = "user", content = "now" } })
    return a:history())");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json h = json::parse(out.output_json);
  ASSERT_EQ(h.size(), 4u);
  for (const auto& m : h)
    EXPECT_NE(m["role"], "system") << "the system prompt is not part of the history";
  json sent = json::parse(steps(out.run_id)["2"].request_json)["messages"];
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0], json::parse(R"({"role":"system","content":"call prompt"})"));
  EXPECT_EQ(sent[1]["content"], "earlier");
  EXPECT_EQ(sent[3]["content"], "now");
}

TEST_F(AgentTest, ConcurrentCallsOnOneAgentSeeTheHistoryAsItWasWhenTheyStarted) {
  host({{"rules", {{{"match", "slow"}, {"latency_ms", 150}}, {{"latency_ms", 10}}}}});
  auto out = run_body(R"(
    local a = troupe.agent{ name = "a", model = "mock/m" }
    a:ask("base")
    troupe.parallel(function() return a:ask("slow one") end,
                    function() return a:ask("fast one") end)
    local order = {}
    for i, m in ipairs(a:history()) do if m.role == "user" then order[#order + 1] = m.content end end
    return order)");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  // Each branch appends its exchange when it finishes: the fast one first.
  EXPECT_EQ(json::parse(out.output_json), json::parse(R"(["base","fast one","slow one"])"));
  auto st = steps(out.run_id);
  EXPECT_EQ(json::parse(st["2.1/1"].request_json)["messages"].size(), 3u);
  EXPECT_EQ(json::parse(st["2.2/1"].request_json)["messages"].size(), 3u);
}

// ---------------------------------------------------------------------------------------
// Tools and agent:run

constexpr const char* kTools = R"(
    local clock = {}
    local function log_call(name) clock[#clock + 1] = name end
    local slow_a = troupe.tool{
      name = "slow_a", description = "waits, then answers A",
      parameters = { type = "object", properties = { n = { type = "integer" } }, required = { "n" } },
      run = function(args) log_call("a+") troupe.sleep(0.3) log_call("a-") return "A" .. args.n end,
    }
    local slow_b = troupe.tool{
      name = "slow_b", description = "waits, then answers B as JSON",
      parameters = { type = "object", properties = { city = { type = "string" } } },
      run = function(args) log_call("b+") troupe.sleep(0.3) log_call("b-") return { city = args.city, temp = 21 } end,
    }
)";

TEST_F(AgentTest, RunExecutesOneTurnsToolCallsConcurrentlyAndReturnsTheFinalAnswer) {
  host({{"rules",
         {{{"match", "weather"},
           {"tool_calls",
            {{{"name", "slow_a"}, {"arguments", {{"n", 7}}}},
             {{"name", "slow_b"}, {"arguments", {{"city", "Oslo"}}}}}}}}}});
  auto t0 = std::chrono::steady_clock::now();
  auto out = run_body(std::string(kTools) + R"(
    local a = troupe.agent{ name = "planner", model = "mock/m", tools = { slow_a, slow_b } }
    local text, res = a:run("what is the weather?")
    return { text = text, finish = res.finish_reason, clock = clock, history = #a:history() })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  double seconds = seconds_since(t0);
  json o = json::parse(out.output_json);
  EXPECT_NE(o["text"].get<std::string>().find("The slow_a tool returned: A7"), std::string::npos)
      << o["text"];
  EXPECT_NE(
      o["text"].get<std::string>().find(R"(The slow_b tool returned: {"city":"Oslo","temp":21})"),
      std::string::npos)
      << o["text"];
  EXPECT_EQ(o["finish"], "stop");
  // Both tools started before either finished.
  EXPECT_EQ(o["clock"][0].get<std::string>().back(), '+');
  EXPECT_EQ(o["clock"][1].get<std::string>().back(), '+');
  EXPECT_LT(seconds, 5.0);
  // user, assistant (tool calls), 2 tool results, assistant.
  EXPECT_EQ(o["history"], 5);

  auto st = steps(out.run_id);
  EXPECT_EQ(st["1"].kind, "chat");
  EXPECT_EQ(st["2.1/1"].kind, "tool");
  EXPECT_EQ(st["2.1/1"].agent, "slow_a");
  EXPECT_EQ(st["2.1/1"].status, "succeeded");
  EXPECT_EQ(json::parse(st["2.1/1"].request_json)["arguments"], json::parse(R"({"n":7})"));
  EXPECT_EQ(json::parse(st["2.1/1"].response_json)["result"], "A7");
  EXPECT_EQ(st["2.1/2"].kind, "sleep");  // the tool's own steps follow in its branch
  EXPECT_EQ(st["2.2/1"].agent, "slow_b");
  EXPECT_EQ(st["3"].kind, "chat");
  json last = json::parse(st["3"].request_json)["messages"];
  ASSERT_EQ(last.size(), 4u);
  EXPECT_EQ(last[1]["tool_calls"][0]["name"], "slow_a");
  EXPECT_EQ(last[2], json::parse(R"({"role":"tool","tool_call_id":"call_1","content":"A7"})"));
  EXPECT_EQ(last[3]["tool_call_id"], "call_2");
}

TEST_F(AgentTest, InvalidArgumentsUnknownToolsAndFailingToolsGoBackToTheModelAsResults) {
  host({{"rules",
         {{{"match", "go"},
           {"tool_calls",
            {{{"name", "slow_a"}, {"arguments", {{"n", "not a number"}}}},
             {{"name", "no_such_tool"}, {"arguments", json::object()}},
             {{"name", "broken"}, {"arguments", json::object()}}}}}}}});
  auto out = run_body(std::string(kTools) + R"(
    local broken = troupe.tool{ name = "broken", description = "always fails",
                                run = function() error("disk on fire", 0) end }
    local a = troupe.agent{ name = "a", model = "mock/m", tools = { slow_a, broken } }
    return (a:run("go")))");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  std::string text = json::parse(out.output_json);
  auto st = steps(out.run_id);
  ASSERT_EQ(st.count("2.1/1"), 1u);
  EXPECT_EQ(st["2.1/1"].status, "failed");
  EXPECT_NE(st["2.1/1"].error.find("invalid arguments for tool 'slow_a'"), std::string::npos)
      << st["2.1/1"].error;
  EXPECT_NE(st["2.1/1"].error.find("/n"), std::string::npos) << st["2.1/1"].error;
  EXPECT_EQ(st.count("2.1/2"), 0u) << "an invalid call must not run the tool";
  EXPECT_EQ(st["2.2/1"].status, "failed");
  EXPECT_EQ(st["2.2/1"].agent, "no_such_tool");
  EXPECT_NE(
      st["2.2/1"].error.find("there is no tool named 'no_such_tool' (available: slow_a, broken)"),
      std::string::npos)
      << st["2.2/1"].error;
  EXPECT_EQ(st["2.3/1"].status, "failed");
  EXPECT_NE(st["2.3/1"].error.find("tool 'broken' failed: disk on fire"), std::string::npos);
  // The model got every error as a tool result and answered.
  json msgs = json::parse(st["3"].request_json)["messages"];
  ASSERT_EQ(msgs.size(), 5u);
  for (int i = 2; i < 5; ++i)
    EXPECT_EQ(msgs[i]["content"].get<std::string>().rfind("error: ", 0), 0u) << msgs[i];
  EXPECT_NE(text.find("The broken tool returned: error: tool 'broken' failed"), std::string::npos)
      << text;
}

TEST_F(AgentTest, RunStopsWithAClearErrorAfterMaxTurns) {
  host({{"rules",
         {{{"match", "loop"},
           {"tool_turns", 100},
           {"tool_calls", {{{"name", "slow_a"}, {"arguments", {{"n", 1}}}}}}}}}});
  auto out = run_body(R"(
    local t = troupe.tool{ name = "slow_a", description = "x",
                           parameters = { type = "object" }, run = function() return "again" end }
    local a = troupe.agent{ name = "looper", model = "mock/m", tools = { t } }
    local ok, err = pcall(a.run, a, "loop forever", { max_turns = 3 })
    return { ok = ok, err = err, history = #a:history() })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["ok"], false);
  EXPECT_NE(o["err"].get<std::string>().find(
                "agent:run: agent 'looper' still asked for tools after max_turns = 3 model calls"),
            std::string::npos)
      << o["err"];
  EXPECT_EQ(o["history"], 0) << "a failed run adds nothing to the history";
  auto st = steps(out.run_id);
  std::set<std::string> keys;
  for (const auto& [k, s] : st)
    keys.insert(k + ":" + s.kind);
  EXPECT_EQ(keys,
            (std::set<std::string>{"1:chat", "2:tool", "3:chat", "4:tool", "5:chat", "6:tool"}));
  // Tool call ids stay unique across turns.
  json third = json::parse(st["5"].request_json)["messages"];
  EXPECT_EQ(third.back()["tool_call_id"], "call_2");
}

TEST_F(AgentTest, ToolsAreSentWithEveryCallAndToolChoiceOnlyOnTheFirstTurn) {
  host(
      {{"rules",
        {{{"match", "use"}, {"tool_calls", {{{"name", "echo"}, {"arguments", {{"s", "hi"}}}}}}}}}});
  auto out = run_body(R"(
    local echo = troupe.tool{ name = "echo", description = "echoes s",
      parameters = { type = "object", properties = { s = { type = "string" } }, required = { "s" } },
      run = function(args) return args.s end }
    local a = troupe.agent{ name = "a", model = "mock/m", tools = { echo } }
    a:ask("plain ask")
    return (a:run("use it", { tool_choice = "echo" })))");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  auto st = steps(out.run_id);
  json ask = json::parse(st["1"].request_json);
  EXPECT_EQ(ask["tools"], json::parse(R"([{"name":"echo","description":"echoes s","parameters":
    {"type":"object","properties":{"s":{"type":"string"}},"required":["s"]}}])"));
  EXPECT_EQ(json::parse(st["2"].request_json)["tool_choice"], json::parse(R"({"name":"echo"})"));
  EXPECT_FALSE(json::parse(st["4"].request_json).contains("tool_choice"));
}

TEST_F(AgentTest, ToolDefinitionsAreValidated) {
  host();
  std::vector<std::pair<std::string, std::string>> cases = {
      {"troupe.tool{ name = 'has space', run = print }", "'name' must be 1 to 64 ASCII letters"},
      {"troupe.tool{ name = string.rep('x', 65), run = print }", "'name' must be 1 to 64"},
      {"troupe.tool{ name = 'github.get_pr', run = print }", "'name' must be 1 to 64"},
      {"troupe.tool{ name = 'ok' }", "'run' must be a function"},
      {"troupe.tool{ name = 'ok', run = print, parameters = { type = 'string' } }",
       "type = \"object\""},
      {"troupe.tool{ name = 'ok', run = print, paramters = {} }", "unknown field 'paramters'"},
      {"troupe.tool{ name = 'ok', run = print, parameters = { type = 'object', properties = 3 } }",
       "not a valid JSON Schema"},
      {"troupe.agent{ tools = { 'calculator' } }", "tools[1] is a string"},
  };
  for (const auto& [code, expected] : cases) {
    auto out = run_body("local x = " + code + "\nreturn x");  // not a tail call: keeps the line
    EXPECT_EQ(out.status, "failed") << code;
    EXPECT_NE(out.error.find(expected), std::string::npos) << code << " -> " << out.error;
    EXPECT_NE(out.error.find("wf.lua:3:"), std::string::npos) << code << " -> " << out.error;
  }
}

// ---------------------------------------------------------------------------------------
// Structured output

constexpr const char* kSchema = R"(
    local schema = {
      type = "object",
      properties = {
        title = { type = "string" },
        severity = { enum = { "low", "medium", "high" } },
        score = { type = "integer", minimum = 3 },
        ratio = { type = "number" },
        ok = { type = "boolean" },
        tags = { type = "array", items = { type = "string" } },
      },
      required = { "title", "severity", "score", "tags" },
      additionalProperties = false,
    }
)";

TEST_F(AgentTest, AskWithASchemaReturnsTheDecodedTable) {
  auto out = run_body(std::string(kSchema) + R"(
    local a = troupe.agent{ name = "a", model = "mock/m" }
    local v = a:ask("Rate this change", { schema = schema, schema_name = "rating" })
    return { v = v, history = #a:history() })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["v"]["severity"], "low");
  EXPECT_EQ(o["v"]["score"], 3);
  EXPECT_TRUE(o["v"]["title"].is_string());
  EXPECT_TRUE(o["v"]["tags"].is_array());
  EXPECT_EQ(o["history"], 2);
  json req = json::parse(steps(out.run_id)["1"].request_json);
  EXPECT_EQ(req["response_format"]["type"], "json_schema");
  EXPECT_EQ(req["response_format"]["name"], "rating");
  EXPECT_EQ(req["response_format"]["schema"]["required"][0], "title");
}

TEST_F(AgentTest, AnInvalidAnswerIsReaskedWithTheProblemsAndThenAccepted) {
  host({{"rules", {{{"model", "flaky-json"}, {"invalid_json", 1}}}}});
  auto out = run_body(std::string(kSchema) + R"(
    local a = troupe.agent{ name = "a", model = "mock/flaky-json" }
    local v = a:ask("Rate this change", { schema = schema })
    return { severity = v.severity, history = #a:history() })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  EXPECT_EQ(json::parse(out.output_json), json::parse(R"({"severity":"low","history":2})"));
  auto st = steps(out.run_id);
  ASSERT_EQ(st.size(), 2u);
  json second = json::parse(st["2"].request_json)["messages"];
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(second[1]["role"], "assistant");
  EXPECT_EQ(second[2]["role"], "user");
  EXPECT_NE(second[2]["content"].get<std::string>().find("not valid JSON"), std::string::npos)
      << second[2];
}

TEST_F(AgentTest, ReaskingGivesUpAfterTheRetriesNamingTheProblems) {
  host({{"rules", {{{"model", "wrong-shape"}, {"reply", R"({"title": 5, "extra": true})"}}}}});
  auto out = run_body(std::string(kSchema) + R"(
    local a = troupe.agent{ name = "a", model = "mock/wrong-shape" }
    local ok, err = pcall(a.ask, a, "Rate", { schema = schema, retries = 1 })
    return { ok = ok, err = err })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["ok"], false);
  std::string err = o["err"];
  EXPECT_NE(err.find("agent 'a': the answer did not match the schema after 2 attempts"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("/title"), std::string::npos) << err;
  EXPECT_NE(err.find("severity"), std::string::npos) << err;
  EXPECT_EQ(steps(out.run_id).size(), 2u);
}

TEST_F(AgentTest, TroupeValidateChecksValuesAgainstASchema) {
  auto out = run_body(std::string(kSchema) + R"(
    local good = { title = "t", severity = "high", score = 4, tags = troupe.array() }
    local bad = { title = 1, severity = "extreme", score = 1, tags = troupe.array(), more = 1 }
    local ok1, e1 = troupe.validate(schema, good)
    local ok2, e2 = troupe.validate(schema, bad)
    local ok3, e3 = pcall(troupe.validate, { type = 12 }, 1)
    return { ok1 = ok1, e1 = e1 == nil, ok2 = ok2, e2 = e2, ok3 = ok3, e3 = e3 })");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json o = json::parse(out.output_json);
  EXPECT_EQ(o["ok1"], true);
  EXPECT_EQ(o["e1"], true);
  EXPECT_EQ(o["ok2"], false);
  std::string all = o["e2"].dump();
  for (const char* path : {"/title", "/severity", "/score"})
    EXPECT_NE(all.find(path), std::string::npos) << path << " in " << all;
  EXPECT_EQ(o["ok3"], false);
  EXPECT_NE(o["e3"].get<std::string>().find("not a valid JSON Schema"), std::string::npos)
      << o["e3"];
}

}  // namespace
}  // namespace troupe
