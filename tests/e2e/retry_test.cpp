// retry_test.cpp: retries and dead letters through the binary, against the fake vendor in
// OpenAI's wire format — a failed call tried again under its policy (Retry-After honoured), each
// attempt journaled under the step's key and shown by `troupe show`; errors retrying cannot fix
// fail at once; a stream tried again only before its first delta; a tool that raises run again; a
// crash between two attempts resumed with the attempts it had made; runs whose retries ran out kept
// as dead letters, re-driven from their journal by `troupe dlq replay` (finished steps served) or
// dropped by `troupe dlq discard`.
#include <gtest/gtest.h>
#include <signal.h>

#include <sstream>
#include <thread>

#include "e2e/cli_fixture.h"
#include "support/vendor_server.h"

namespace troupe::test {
namespace {

using nlohmann::json;

class Retry : public CliFixture {
 protected:
  void SetUp() override {
    CliFixture::SetUp();
    write("troupe.yaml",
          "store: troupe.db\nlease_s: 1\nproviders:\n  openai:\n    plugin: openai\n"
          "    settings: {base_url: \"" +
              server_.base_url(Vendor::openai) + "\"}\n    secrets: {api_key: TEST_VENDOR_KEY}\n");
    env_["TEST_VENDOR_KEY"] = "sk-retry-test";
  }
  // A workflow whose body is `body` (an agent `a` on the fake vendor is in scope, made with
  // `agent_fields` added).
  void workflow(const std::string& agent_fields, const std::string& body) {
    write("wf.lua",
          "local troupe = require(\"troupe\")\n"
          "return troupe.workflow{ name = \"retrying\", run = function(input)\n"
          "  local a = troupe.agent{ name = \"a\", model = \"openai/gpt-4o-mini\", "
          "history = false" +
              agent_fields + " }\n" + body + "\nend }\n");
  }
  void push_faults(const std::string& fault, int n) {
    for (int i = 0; i < n; ++i)
      server_.push(FakeReply::with_fault(fault));
  }
  // The step of a `troupe show --json` with this key (null when none).
  static json step(const json& shown, const std::string& key) {
    for (const json& s : shown["steps"])
      if (s["step_key"] == key) return s;
    return nullptr;
  }

  VendorServer server_;
};

TEST_F(Retry, AFailedCallIsTriedAgainHonouringRetryAfterEachAttemptJournaledUnderItsStepKey) {
  workflow(", retry = { attempts = 3, initial = 0.05 }", "  return a:ask(\"hello\")");
  push_faults("rate-limit-retry-after", 1);  // 429 + Retry-After: 2
  push_faults("http-503", 1);
  json run = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(run["status"], "succeeded") << run.dump();
  EXPECT_EQ(server_.chat_count(), 3u);

  json shown = troupe_json({"show", run["run_id"]});
  json s = step(shown, "1");
  ASSERT_TRUE(s.is_object()) << shown.dump();
  EXPECT_EQ(s["status"], "succeeded");
  EXPECT_EQ(s["attempts"], 3);
  ASSERT_EQ(s["failed_attempts"].size(), 2u) << s.dump();
  const json& first = s["failed_attempts"][0];
  EXPECT_EQ(first["attempt"], 1);
  EXPECT_EQ(first["status"], "rate_limited");
  EXPECT_EQ(first["retry_after_ms"], 2000);
  EXPECT_GE(first["delay_ms"].get<int64_t>(), 2000) << "Retry-After is honoured";
  const json& second = s["failed_attempts"][1];
  EXPECT_EQ(second["attempt"], 2);
  EXPECT_LE(second["delay_ms"].get<int64_t>(), 100) << "the policy's own wait: 0.05 s, doubled";

  // The text form shows each attempt under the step.
  ProcessResult text = troupe({"show", run["run_id"]});
  EXPECT_NE(text.out.find("attempt 1: rate_limited"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("attempt 3: succeeded"), std::string::npos) << text.out;
  int retrying = 0;
  std::istringstream lines(troupe({"--json", "events", run["run_id"]}).out);  // JSON lines
  for (std::string line; std::getline(lines, line);)
    retrying += json::parse(line)["type"] == "step.retrying";
  EXPECT_EQ(retrying, 2);
}

TEST_F(Retry, AnErrorRetryingCannotFixAndAStatusThePolicyExcludesFailAtOnce) {
  workflow("", "  return a:ask(\"hello\")");
  push_faults("http-401", 1);
  json auth = troupe_json({"run", "wf.lua"});
  EXPECT_EQ(auth["status"], "failed") << auth.dump();
  EXPECT_EQ(server_.chat_count(), 1u) << "auth errors are never retried";
  EXPECT_TRUE(troupe_json({"dlq", "list"}).empty()) << "nor kept as dead letters";

  server_.reset();
  workflow("", "  return a:ask(\"hello\", { retry = { non_retryable = { \"rate_limited\" } } })");
  push_faults("rate-limit-retry-after", 1);
  json limited = troupe_json({"run", "wf.lua"});
  EXPECT_EQ(limited["status"], "failed") << limited.dump();
  EXPECT_EQ(server_.chat_count(), 1u);

  // A policy that cannot be is an error where it is written.
  workflow(", retry = { attempts = 3, initail = 1 }", "  return 1");
  json typo = troupe_json({"run", "wf.lua"});
  EXPECT_EQ(typo["status"], "failed");
  EXPECT_NE(typo.value("error", "").find("unknown retry field 'initail'"), std::string::npos)
      << typo.dump();
  EXPECT_NE(typo.value("error", "").find("wf.lua:3"), std::string::npos) << typo.dump();
}

TEST_F(Retry, ARunWhoseRetriesRanOutIsADeadLetterThatReplayReDrivesServingFinishedSteps) {
  workflow(", retry = { attempts = 2, initial = 0.01 }",
           "  return { a:ask(\"one\"), a:ask(\"two\") }");
  server_.push(FakeReply::with_text("first answer"));
  push_faults("http-503", 2);
  json failed = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(failed["status"], "failed") << failed.dump();
  std::string id = failed["run_id"];
  EXPECT_NE(failed.value("error", "").find("(after 2 attempts)"), std::string::npos)
      << failed.dump();

  json dead = troupe_json({"dlq", "list"});
  ASSERT_EQ(dead.size(), 1u) << dead.dump();
  EXPECT_EQ(dead[0]["run_id"], id);
  EXPECT_EQ(dead[0]["reason"], "retries_exhausted");
  EXPECT_EQ(dead[0]["step_key"], "2");
  EXPECT_EQ(dead[0]["attempts"], 2);
  json shown = troupe_json({"dlq", "show", id});
  EXPECT_EQ(shown["failed_attempts"].size(), 1u) << shown.dump();

  // The vendor is fine again: the replay asks only the step that failed.
  size_t before = server_.chat_count();
  json replayed = troupe_json({"dlq", "replay", id});
  ASSERT_EQ(replayed["status"], "succeeded") << replayed.dump();
  EXPECT_EQ(server_.chat_count(), before + 1) << "the finished first step is served";
  EXPECT_EQ(replayed["output"][0], "first answer");
  json s = step(troupe_json({"show", id}), "2");
  EXPECT_EQ(s["attempts"], 3) << "numbered after the attempts it had made: " << s.dump();
  EXPECT_EQ(s["failed_attempts"].size(), 2u) << s.dump();
  EXPECT_TRUE(troupe_json({"dlq", "list"}).empty()) << "a run that succeeded is no dead letter";

  // Another one, dropped: the run stays, the dead letter goes.
  push_faults("http-503", 2);
  json again = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(again["status"], "failed") << again.dump();
  json discarded = troupe_json({"dlq", "discard", again["run_id"]});
  EXPECT_EQ(discarded["discarded"], true) << discarded.dump();
  EXPECT_TRUE(troupe_json({"dlq", "list"}).empty());
  EXPECT_EQ(troupe({"dlq", "show", again["run_id"]}).exit_code, 2);
  EXPECT_EQ(troupe_json({"show", again["run_id"]})["status"], "failed");
}

TEST_F(Retry, AStreamIsTriedAgainOnlyWhileNothingOfItReachedTheWorkflow) {
  workflow(", retry = { attempts = 3, initial = 0.01 }",
           "  local text = \"\"\n"
           "  for ev in a:stream(\"hello\") do\n"
           "    if ev.type == \"text_delta\" then text = text .. ev.text end\n"
           "  end\n"
           "  return text");
  push_faults("http-503", 1);  // fails before the first delta: tried again
  json run = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(run["status"], "succeeded") << run.dump();
  EXPECT_EQ(run["output"], "echo: hello");
  EXPECT_EQ(server_.chat_count(), 2u);
  EXPECT_EQ(step(troupe_json({"show", run["run_id"]}), "1")["attempts"], 2);

  server_.reset();
  push_faults("reset-mid-stream", 1);  // part of the answer went out: the failure is the stream's
  json cut = troupe_json({"run", "wf.lua"});
  EXPECT_EQ(cut["status"], "failed") << cut.dump();
  EXPECT_EQ(server_.chat_count(), 1u);
}

TEST_F(Retry, AToolThatRaisesIsRunAgainUnderItsPolicy) {
  write("wf.lua", R"lua(local troupe = require("troupe")
local calls = 0
local flaky = troupe.tool{
  name = "flaky", description = "fails twice", retry = { attempts = 3, initial = 0.01 },
  run = function(args)
    calls = calls + 1
    if calls < 3 then error("not yet (" .. calls .. ")") end
    return "done after " .. calls
  end,
}
return troupe.workflow{ name = "tools", run = function(input)
  local a = troupe.agent{ name = "a", model = "openai/gpt-4o-mini", tools = { flaky } }
  return a:run("go", { tool_choice = "flaky" })
end }
)lua");
  json run = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(run["status"], "succeeded") << run.dump();
  EXPECT_NE(run["output"].get<std::string>().find("done after 3"), std::string::npos) << run.dump();
  json shown = troupe_json({"show", run["run_id"]});
  json tool;
  for (const json& s : shown["steps"])
    if (s["kind"] == "tool") tool = s;
  ASSERT_TRUE(tool.is_object()) << shown.dump();
  EXPECT_EQ(tool["status"], "succeeded");
  EXPECT_EQ(tool["attempts"], 3);
  ASSERT_EQ(tool["failed_attempts"].size(), 2u) << tool.dump();
  EXPECT_EQ(tool["failed_attempts"][0]["status"], "tool_error");
  EXPECT_NE(tool["failed_attempts"][1]["error"].get<std::string>().find("not yet (2)"),
            std::string::npos)
      << tool.dump();
}

TEST_F(Retry, ACrashBetweenTwoAttemptsResumesWithTheAttemptsItHadMade) {
  workflow(", retry = { attempts = 2, initial = 3 }", "  return a:ask(\"hello\")");
  push_faults("http-503", 2);
  Process victim(options({"run", "wf.lua"}));
  std::string id;
  for (int i = 0; i < 400 && id.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    ProcessResult runs = troupe({"--json", "runs"});
    json list = json::parse(runs.out, nullptr, false);
    if (!list.is_array() || list.empty()) continue;
    json shown = json::parse(troupe({"--json", "show", list[0]["id"]}).out, nullptr, false);
    json s = shown.is_object() ? step(shown, "1") : json();
    if (s.is_object() && s["status"] == "retrying") id = list[0]["id"];
  }
  ASSERT_FALSE(id.empty()) << "the first attempt was never journaled";
  victim.send_signal(SIGKILL);
  victim.wait();
  EXPECT_EQ(server_.chat_count(), 1u);

  // The resumed step is its second attempt, the last its policy allows: it fails for good.
  json resumed = troupe_json({"resume", id});
  EXPECT_EQ(resumed["status"], "failed") << resumed.dump();
  EXPECT_NE(resumed.value("error", "").find("(after 2 attempts)"), std::string::npos)
      << resumed.dump();
  EXPECT_EQ(server_.chat_count(), 2u);
  json s = step(troupe_json({"show", id}), "1");
  EXPECT_EQ(s["attempts"], 2) << s.dump();
}

}  // namespace
}  // namespace troupe::test
