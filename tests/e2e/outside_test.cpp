// outside_test.cpp: waiting for the world outside a run, through the binary — approvals with
// deadlines, escalation tiers and signed webhooks; parallel approvals of a parked run, each
// resumed once; signals buffered before the wait and delivered once.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "e2e/cli_fixture.h"
#include "support/http_test_server.h"

namespace troupe::test {
namespace {

using nlohmann::json;

constexpr const char* kSecret = "whsec-test-secret";

// What a receiver computes to check a Standard Webhooks signature (OpenSSL, not troupe's code).
std::string expected_signature(const std::string& id, const std::string& ts,
                               const std::string& body) {
  std::string signed_text = id + "." + ts + "." + body;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret, static_cast<int>(std::strlen(kSecret)),
       reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), md, &len);
  std::string b64(4 * ((len + 2) / 3) + 1, '\0');
  b64.resize(static_cast<size_t>(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), md, static_cast<int>(len))));
  return "v1," + b64;
}

class Outside : public CliFixture {
 protected:
  void SetUp() override {
    CliFixture::SetUp();
    write("troupe.yaml", "store: troupe.db\npark_after_s: 1\n");
    unset_env_.insert(unset_env_.end(), {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"});
    env_["TROUPE_OFFLINE"] = "1";
    env_["TROUPE_WEBHOOK_SECRET"] = kSecret;
  }
  void write_workflow(const std::string& name, const std::string& body) {
    write(name,
          "local troupe = require(\"troupe\")\n"
          "return troupe.workflow{ name = \"w\", run = function(input)\n" +
              body + "\nend }\n");
  }
};

TEST_F(Outside, ADeadlineAppliesTheDefaultAfterEscalationTiersFiredInOrderWithSignedWebhooks) {
  HttpTestServer receiver;
  receiver.route_prefix("/hook", [](const TestRequest&) { return Script{}; });
  write_workflow("wf.lua", R"(
  local d = troupe.approve{ title = "deploy?", choices = { "yes", "no" }, timeout = 1.5,
    default = "no", escalate = { { after = 0.7, webhook = ")" +
                               receiver.url("/hook/2") + R"(" }, { after = 0.2, webhook = ")" +
                               receiver.url("/hook/1") + R"(" } } }
  return d)");
  json out = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(out["status"], "succeeded") << out.dump();
  EXPECT_EQ(out["output"]["choice"], "no");
  EXPECT_EQ(out["output"]["by"], "deadline");
  EXPECT_EQ(out["output"]["defaulted"], true);

  // The tiers fired in the order of their times, each once, before the deadline.
  ASSERT_TRUE(receiver.wait_for_requests(2, 5000));
  std::vector<TestRequest> hooks = receiver.requests();
  ASSERT_EQ(hooks.size(), 2u);
  EXPECT_EQ(hooks[0].path, "/hook/1");
  EXPECT_EQ(hooks[1].path, "/hook/2");
  for (const TestRequest& hook : hooks) {
    EXPECT_EQ(hook.method, "POST");
    EXPECT_EQ(
        hook.header("webhook-signature"),
        expected_signature(hook.header("webhook-id"), hook.header("webhook-timestamp"), hook.body))
        << hook.body;
    json note = json::parse(hook.body);
    EXPECT_EQ(note["title"], "deploy?");
  }
  std::vector<int64_t> at;
  std::istringstream lines(troupe({"--json", "events", out["run_id"]}).out);  // JSON lines
  for (std::string line; std::getline(lines, line);) {
    json ev = json::parse(line);
    if (ev["type"] == "approval.escalated") at.push_back(ev["data"]["at_ms"]);
  }
  ASSERT_EQ(at.size(), 2u);
  EXPECT_LT(at[0], at[1]);
}

TEST_F(Outside, ParallelApprovalsOfAParkedRunAreEachResumedOnceByTheirOwnDecision) {
  write_workflow("wf.lua", R"(
  local a, b
  troupe.parallel(
    function() a = troupe.approve{ title = "legal", choices = { "ok", "veto" } } end,
    function() b = troupe.approve{ title = "security", choices = { "ok", "veto" } } end)
  return a.choice .. "/" .. a.by .. " " .. b.choice .. "/" .. b.by)");
  json parked = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(parked["status"], "waiting") << parked.dump();
  const std::string id = parked["run_id"];
  json pending = troupe_json({"approvals", id});
  ASSERT_EQ(pending.size(), 2u) << pending.dump();
  const std::string legal = pending[0]["key"], security = pending[1]["key"];

  ProcessResult first = troupe({"approve", id, legal, "--choice", "ok", "--by", "lea"});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  ProcessResult again = troupe({"approve", id, legal, "--choice", "veto", "--by", "max"});
  EXPECT_EQ(again.exit_code, 1) << "the first decision wins: " << again.describe();
  // A worker resumes it for the one decision; the other approval parks it again.
  ProcessResult w1 = troupe({"worker", "--once", "--poll-ms", "50"});
  ASSERT_EQ(w1.exit_code, 0) << w1.describe();
  EXPECT_EQ(troupe_json({"status", id})["status"], "waiting");
  EXPECT_EQ(troupe_json({"approvals", id}).size(), 1u);

  ASSERT_EQ(troupe({"approve", id, "--choice", "veto", "--by", "sam"}).exit_code, 0);
  ProcessResult w2 = troupe({"worker", "--once", "--poll-ms", "50"});
  ASSERT_EQ(w2.exit_code, 0) << w2.describe();
  json shown = troupe_json({"show", id});
  EXPECT_EQ(shown["status"], "succeeded") << shown.dump();
  EXPECT_EQ(shown["output"], "ok/lea veto/sam");
  int decided = 0;
  for (const json& step : shown["steps"])
    decided += step["kind"] == "approval" && step["status"] == "succeeded";
  EXPECT_EQ(decided, 2);
  EXPECT_EQ(shown["epoch"], 3);  // started, resumed for legal, resumed for security
}

TEST_F(Outside, AnEscalationAndADeadlineThatComeDueWhileTheRunIsParkedFireWhenAWorkerTakesIt) {
  const std::string faketime = find_libfaketime();
  if (faketime.empty()) GTEST_SKIP() << "libfaketime is not installed (Debian: libfaketime)";
  write_workflow("wf.lua", R"(
  local d = troupe.approve{ title = "release?", choices = { "go", "hold" }, timeout = 7200,
    default = "hold", escalate = { { after = 3600 } } }
  return d)");
  json parked = troupe_json({"run", "wf.lua"});
  ASSERT_EQ(parked["status"], "waiting") << parked.dump();
  const std::string id = parked["run_id"];
  // Not due: a worker leaves it alone.
  ProcessResult early = troupe({"worker", "--once", "--poll-ms", "50"});
  EXPECT_EQ(early.out, "") << early.describe();

  // Three hours later (libfaketime): the escalation and then the deadline are due. One worker
  // pass takes the run for each time it parked until, and it ends with the default.
  ProcessOptions later = options({"worker", "--once", "--poll-ms", "50"});
  later.env["LD_PRELOAD"] = faketime;
  later.env["FAKETIME"] = "+3h";
  later.env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1";
  later.env["ASAN_OPTIONS"] = "verify_asan_link_order=0";  // libfaketime comes first
  json shown;
  for (int pass = 0; pass < 3; ++pass) {
    ProcessResult worker = Process(later).wait();
    ASSERT_EQ(worker.exit_code, 0) << worker.describe();
    shown = troupe_json({"show", id});
    if (shown["status"] != "waiting") break;
  }
  ASSERT_EQ(shown["status"], "succeeded") << shown.dump();
  EXPECT_EQ(shown["output"]["choice"], "hold");
  EXPECT_EQ(shown["output"]["by"], "deadline");
  EXPECT_EQ(shown["output"]["defaulted"], true);
  int escalations = 0;
  std::istringstream lines(troupe({"--json", "events", id}).out);  // JSON lines
  for (std::string line; std::getline(lines, line);)
    escalations += json::parse(line)["type"] == "approval.escalated";
  EXPECT_EQ(escalations, 1) << "the tier fired once, though its time passed while parked";
}

TEST_F(Outside, SignalsSentBeforeTheWaitAreBufferedAndEachIsDeliveredOnce) {
  write_workflow("wf.lua", R"(
  local first = troupe.wait_signal("go")
  local second = troupe.wait_signal("go")
  local third, why = troupe.wait_signal("go", 0.2)
  return { first.n, second.n, why })");
  ProcessResult queued = troupe({"run", "--detach", "wf.lua"});
  ASSERT_EQ(queued.exit_code, 0) << queued.describe();
  const std::string id = queued.out.substr(0, queued.out.find('\n'));
  ASSERT_EQ(troupe({"signal", id, "go", "--data", R"({"n":1})"}).exit_code, 0);
  ASSERT_EQ(troupe({"signal", id, "go", "--data", R"({"n":2})"}).exit_code, 0);
  ProcessResult worker = troupe({"worker", "--once", "--poll-ms", "50"});
  ASSERT_EQ(worker.exit_code, 0) << worker.describe();
  json shown = troupe_json({"show", id});
  EXPECT_EQ(shown["output"], json::parse(R"([1, 2, "timeout"])")) << shown.dump();
  ProcessResult late = troupe({"signal", id, "go"});
  EXPECT_EQ(late.exit_code, 1) << "a run that ended takes no signal: " << late.describe();
}

}  // namespace
}  // namespace troupe::test
