// workflows_test.cpp: end-to-end tests of what ships in scripts/ — the demo and example workflows,
// the built-in agent roles, and every Lua example of scripts/README.md — run offline (mock).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "e2e/process.h"
#include "support/test_paths.h"
#include "support/test_text.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Workflows : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "troupe-wf-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    scripts_ = source_dir() / "scripts";
    ASSERT_TRUE(fs::exists(scripts_ / "workflows" / "pr_review.lua")) << scripts_;
    ASSERT_TRUE(fs::exists(troupe_binary())) << "build the troupe_cli target";
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  // Runs `troupe <args...>` in the test's folder, with no configuration (everything is mock).
  ProcessResult troupe(std::vector<std::string> args) {
    args.insert(args.begin(), troupe_binary());
    ProcessOptions o;
    o.args = std::move(args);
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_CONFIG", "TROUPE_PLUGIN_PATH", "NO_COLOR"};
    return Process(o).wait();
  }

  std::string workflow(const std::string& name) const {
    return (scripts_ / "workflows" / name).string();
  }

  // `troupe --json run ...` parsed; fails the test unless the run succeeded.
  json run_json(const std::string& script, const std::string& input = "{}") {
    ProcessResult r = troupe({"--json", "run", script, "--input", input});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.describe();
    return j;
  }

  // The run's steps from `troupe --json show`, as "key kind agent model status" lines.
  std::vector<std::string> steps_of(const std::string& run_id) {
    ProcessResult r = troupe({"--json", "show", run_id});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    std::vector<std::string> out;
    json run = json::parse(r.out);  // kept: a range-for over a temporary's member dangles
    for (const json& s : run["steps"]) {
      auto field = [&](const char* key) {  // agent and model are empty or null for a sleep
        std::string v = s.contains(key) && s[key].is_string() ? s[key].get<std::string>() : "";
        return v.empty() ? std::string("-") : v;
      };
      out.push_back(s.value("step_key", "") + " " + s.value("kind", "") + " " + field("agent") +
                    " " + field("model") + " " + s.value("status", ""));
    }
    return out;
  }

  fs::path dir_;
  fs::path scripts_;
};

TEST_F(Workflows, PrReviewRunsOfflineWithNoInputAndPrintsAMarkdownReview) {
  ProcessResult r = troupe({"run", workflow("pr_review.lua")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.rfind("# Review: Add user search endpoint\n", 0), 0u) << r.out;
  EXPECT_TRUE(contains(r.out, "`app/users.py:20`: SQL built by string interpolation")) << r.out;
  EXPECT_TRUE(contains(r.out, "## Lead's analysis (anthropic/claude-sonnet-4-5)")) << r.out;
  EXPECT_TRUE(contains(r.out, "## Suggested fixes (openai/gpt-4o)")) << r.out;
  EXPECT_TRUE(contains(r.out, "## Security audit (gemini/gemini-2.5-pro)")) << r.out;
  EXPECT_TRUE(contains(r.err, "no input.diff given")) << r.err;
}

TEST_F(Workflows, PrReviewExampleInputGivesTheSameReviewAsTheBuiltInSample) {
  fs::path input = scripts_ / "workflows" / "examples" / "pr_review_input.json";
  json example = json::parse(read_text(input));
  EXPECT_EQ(example["diff"], read_text(scripts_ / "workflows" / "examples" / "sample.diff"));
  ProcessResult builtin = troupe({"run", workflow("pr_review.lua"), "-q"});
  ProcessResult from_file =
      troupe({"run", workflow("pr_review.lua"), "-q", "--input", "@" + input.string()});
  ASSERT_EQ(builtin.exit_code, 0) << builtin.describe();
  ASSERT_EQ(from_file.exit_code, 0) << from_file.describe();
  EXPECT_EQ(builtin.out, from_file.out);
}

TEST_F(Workflows, PrReviewRunsTheLeadThenCoderAndSecurityInParallelThenTheLead) {
  json j = run_json(workflow("pr_review.lua"));
  EXPECT_EQ(j["workflow"], "pr_review");
  EXPECT_EQ(steps_of(j["run_id"]), (std::vector<std::string>{
                                       "1 chat leader anthropic/claude-sonnet-4-5 succeeded",
                                       "2.1/1 chat coder openai/gpt-4o succeeded",
                                       "2.2/1 chat security gemini/gemini-2.5-pro succeeded",
                                       "3 chat leader anthropic/claude-sonnet-4-5 succeeded",
                                   }));
}

TEST_F(Workflows, PrReviewJsonFormatReturnsTheReviewAndEachAgentsPart) {
  json diff = {{"diff",
                "--- a/db.py\n+++ b/db.py\n@@ -1,2 +1,3 @@\n x = 1\n-y = 2\n+y = 3\n"
                "+cur.execute(\"DELETE FROM t WHERE id = \" + tid)\n"},
               {"format", "json"}};
  json out = run_json(workflow("pr_review.lua"), diff.dump())["output"];
  EXPECT_EQ(out["title"], "changes to db.py");
  EXPECT_EQ(out["files"], json::array({"db.py"}));
  ASSERT_EQ(out["prechecks"].size(), 1u) << out.dump(2);
  EXPECT_TRUE(contains(out["prechecks"][0].get<std::string>(), "`db.py:3`: SQL built by string"));
  for (const char* part : {"review", "analysis", "fixes", "security"}) {
    ASSERT_TRUE(out[part].is_string()) << part;
    EXPECT_FALSE(out[part].get<std::string>().empty()) << part;
  }
}

TEST_F(Workflows, PrReviewRejectsAnEmptyDiffSayingWhatItNeeds) {
  ProcessResult r = troupe({"run", workflow("pr_review.lua"), "--input", R"({"diff": ""})"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "input.diff must be a non-empty string holding a unified diff"))
      << r.err;
}

TEST_F(Workflows, FanoutMapReturnsOneNotePerTopicInListOrderThenASummary) {
  json j = run_json(workflow("fanout_map.lua"), R"({"topics": ["backpressure", "idempotency"]})");
  const json& notes = j["output"]["notes"];
  ASSERT_EQ(notes.size(), 2u) << j.dump(2);
  EXPECT_EQ(notes[0]["topic"], "backpressure");
  EXPECT_EQ(notes[0]["position"], 1);
  EXPECT_EQ(notes[1]["topic"], "idempotency");
  EXPECT_TRUE(j["output"]["summary"].is_string());
  auto steps = steps_of(j["run_id"]);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].substr(0, 6), "1.1/1 ");
  EXPECT_EQ(steps[1].substr(0, 6), "1.2/1 ");
  EXPECT_EQ(steps[2].substr(0, 2), "2 ");
}

TEST_F(Workflows, RetryOnErrorTriesTheCallAgainAfterRetryAfterThenFallsBack) {
  ProcessResult r = troupe({"--json", "run", workflow("retry_on_error.lua")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = json::parse(r.out);
  EXPECT_EQ(j["output"]["model"], "openai/gpt-4o");
  EXPECT_EQ(steps_of(j["run_id"]), (std::vector<std::string>{
                                       "1 chat writer mock/error-rate-limited failed",
                                       "2 chat fallback openai/gpt-4o succeeded",
                                   }));
  json shown = json::parse(troupe({"--json", "show", j["run_id"]}).out);
  EXPECT_EQ(shown["steps"][0]["attempts"], 2);
  ASSERT_EQ(shown["steps"][0]["failed_attempts"].size(), 1u);
  EXPECT_GE(shown["steps"][0]["failed_attempts"][0]["delay_ms"].get<int64_t>(), 1000)
      << "the mock's Retry-After (1 s) beats the policy's 0.5 s";
  ProcessResult events = troupe({"events", j["run_id"]});
  EXPECT_TRUE(contains(events.out, "status=rate_limited retryable=true retry_after_ms=1000"))
      << events.out;
}

TEST_F(Workflows, EveryBuiltInRoleHasANameADescriptionAndASystemPrompt) {
  std::ofstream(dir_ / "roles.lua") << R"(
local troupe = require("troupe")
return troupe.workflow{ name = "roles", run = function(input)
  local out = {}
  for _, r in ipairs(input.roles) do
    local m = require("troupe.roles." .. r)
    local agent = troupe.agent{ role = r }
    assert(agent.system == m.system, r .. ": the agent does not use the role's prompt")
    out[r] = { name = m.name, description = m.description, lines = select(2, m.system:gsub("\n", "")) }
  end
  return out
end })";
  json roles =
      json::array({"leader", "planner", "builder", "coder", "tester", "reviewer", "architect",
                   "documenter", "data_analyst", "devops", "security_auditor", "migrator"});
  json out = run_json((dir_ / "roles.lua").string(), json{{"roles", roles}}.dump())["output"];
  for (const auto& role : roles) {
    std::string r = role.get<std::string>();
    ASSERT_TRUE(out.contains(r)) << r;
    EXPECT_EQ(out[r]["name"], r);
    EXPECT_GT(out[r]["description"].get<std::string>().size(), 20u) << r;
    EXPECT_GE(out[r]["lines"].get<int>(), 8) << r;
    EXPECT_LE(out[r]["lines"].get<int>(), 20) << r;
  }
  // coder is the builder's prompt under the name most workflows use.
  EXPECT_EQ(out["coder"]["description"], out["builder"]["description"]);
}

TEST_F(Workflows, EveryLuaExampleInTheScriptsGuideRuns) {
  std::string guide = read_text(scripts_ / "README.md");
  const std::string open = "```lua\n", close = "```";
  int n = 0;
  for (size_t at = guide.find(open); at != std::string::npos; at = guide.find(open, at)) {
    size_t start = at + open.size(), end = guide.find(close, start);
    ASSERT_NE(end, std::string::npos) << "an unclosed ```lua block in scripts/README.md";
    std::string code = guide.substr(start, end - start);
    at = end + close.size();
    fs::path file = dir_ / ("example" + std::to_string(++n) + ".lua");
    std::ofstream(file) << code;
    ProcessResult r = troupe({"run", file.string(), "-q"});
    EXPECT_EQ(r.exit_code, 0) << "example " << n << " of scripts/README.md:\n"
                              << code << "\n"
                              << r.describe();
  }
  EXPECT_GE(n, 5) << "the guide's Lua examples were not found";
}

}  // namespace
}  // namespace troupe::test
