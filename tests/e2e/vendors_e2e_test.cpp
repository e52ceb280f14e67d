// vendors_e2e_test.cpp: end-to-end tests of the real provider plugins through the troupe binary,
// against the fake vendor server (tests/support/vendor_server.h) in each wire format: the
// tool-using research agent, the demo workflow, keys from the environment, live streaming.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <strings.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "e2e/process.h"
#include "support/test_paths.h"
#include "support/test_text.h"
#include "support/vendor_server.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Never a real key: the tests check it reaches the server only in the vendor's auth header.
constexpr const char* kKey = "sk-e2e-SECRET-9876";

const char* const kPage =
    "<html><head><title>troupe</title><style>p{color:red}</style></head><body>"
    "<h1>troupe</h1><p>troupe speaks four wire formats &amp; runs agents in Lua.</p></body></html>";

class Vendors : public ::testing::TestWithParam<Vendor> {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "troupe-vendors-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    ASSERT_TRUE(fs::exists(troupe_binary())) << "build the troupe_cli target";
    server_.add_page("troupe", kPage);
    // Every vendor name of the config points at the fake server in its own wire format.
    std::ofstream cfg(dir_ / "troupe.yaml");
    cfg << "store: troupe.db\n" << server_.providers_config("TEST_VENDOR_KEY");
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  std::string vendor() const { return vendor_name(GetParam()); }

  ProcessResult troupe(std::vector<std::string> args, bool tty = false) {
    args.insert(args.begin(), troupe_binary());
    ProcessOptions o;
    o.args = std::move(args);
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_PLUGIN_PATH", "NO_COLOR"};
    o.env["TEST_VENDOR_KEY"] = kKey;
    o.stderr_is_tty = tty;
    return Process(o).wait();
  }

  // The key must not be anywhere a user or a log collector could see it.
  void expect_no_key_leak(const ProcessResult& r) {
    EXPECT_FALSE(contains(r.out, kKey)) << r.out;
    EXPECT_FALSE(contains(r.err, kKey)) << r.err;
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
      if (entry.is_regular_file()) {
        EXPECT_FALSE(contains(read_text(entry.path()), kKey)) << entry.path();
      }
    }
    for (const SeenChat& c : server_.chats()) {
      std::string auth = vendor_auth_header(c.vendor);
      for (const auto& [name, value] : c.request.headers) {
        if (contains(value, kKey)) {
          EXPECT_EQ(strcasecmp(name.c_str(), auth.c_str()), 0) << name;
        }
      }
      EXPECT_FALSE(contains(c.request.body, kKey));
      EXPECT_FALSE(contains(c.request.target, kKey));
    }
  }

  static std::string vendor_auth_header(Vendor v) {
    switch (v) {
      case Vendor::anthropic:
        return "x-api-key";
      case Vendor::gemini:
        return "x-goog-api-key";
      default:
        return "authorization";
    }
  }

  fs::path dir_;
  VendorServer server_;
};

TEST_P(Vendors, ResearchAgentCallsBothToolsInOneTurnAndAnswersFromTheirResults) {
  std::string page_url = server_.url("/pages/troupe");
  server_.load_scenario(
      json{{"rules",
            {{{"match", "research"},
              {"tool_calls",
               {{{"name", "calculator"}, {"arguments", {{"expression", "17% * 2340"}}}},
                {{"name", "fetch_page"}, {"arguments", {{"url", page_url}}}}}}}}}});
  json input = {{"question", "research: what is 17% of 2,340, and what does " + page_url + " say?"},
                {"model", vendor() + "/test-model"}};
  fs::path script = source_dir() / "scripts" / "workflows" / "research_agent.lua";
  ProcessResult r = troupe({"--json", "run", script.string(), "--input", input.dump()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json out = json::parse(r.out);
  std::string answer = out["output"]["answer"];
  // The fake model's final turn quotes the tool results it was sent: both tools really ran.
  EXPECT_TRUE(contains(answer, "tool results: ")) << answer;
  EXPECT_TRUE(contains(answer, "397.8")) << answer;
  EXPECT_TRUE(contains(answer, "troupe speaks four wire formats & runs agents in Lua.")) << answer;
  EXPECT_FALSE(contains(answer, "<p>")) << "markup is stripped: " << answer;

  // Two model calls in this vendor's format; the second carries both results.
  std::vector<SeenChat> chats = server_.chats();
  ASSERT_EQ(chats.size(), 2u);
  for (const SeenChat& c : chats)
    EXPECT_EQ(c.vendor, GetParam());
  EXPECT_EQ(chats[0].tools, (std::vector<std::string>{"calculator", "fetch_page"}));
  EXPECT_TRUE(chats[1].ends_with_tool_results);
  EXPECT_EQ(chats[1].tool_results.size(), 2u);

  // Every model call and tool call is a recorded step.
  ProcessResult show = troupe({"--json", "show", out["run_id"]});
  ASSERT_EQ(show.exit_code, 0) << show.describe();
  json run = json::parse(show.out);
  int chat_steps = 0, tool_steps = 0, http_steps = 0;
  for (const json& s : run["steps"]) {
    std::string kind = s.value("kind", "");
    EXPECT_EQ(s.value("status", ""), "succeeded") << s.dump();
    if (kind == "chat") ++chat_steps;
    if (kind == "tool") ++tool_steps;
    if (kind == "http") ++http_steps;
  }
  EXPECT_EQ(chat_steps, 2);
  EXPECT_EQ(tool_steps, 2);
  EXPECT_EQ(http_steps, 1);
  expect_no_key_leak(r);
}

TEST_P(Vendors, AProviderErrorFailsTheRunWithTheVendorsStatusAndNoKey) {
  fs::path wf = dir_ / "one.lua";
  std::ofstream(wf) << "local troupe = require('troupe')\n"
                       "return troupe.workflow{ name = 'one', run = function()\n"
                       "  return troupe.agent{ model = '"
                    << vendor() << "/fault-http-401' }:ask('hello')\nend }\n";
  ProcessResult r = troupe({"run", wf.string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "auth")) << r.err;
  EXPECT_TRUE(contains(r.err, vendor() + ": HTTP 401")) << r.err;
  expect_no_key_leak(r);
}

TEST_P(Vendors, StreamedTextShowsLiveOnATerminal) {
  fs::path wf = dir_ / "stream.lua";
  std::ofstream(wf) << "local troupe = require('troupe')\n"
                       "return troupe.workflow{ name = 'stream', run = function()\n"
                       "  local parts = {}\n"
                       "  for ev in troupe.agent{ model = '"
                    << vendor()
                    << "/m' }:stream('hello there') do\n"
                       "    if ev.type == 'text_delta' then parts[#parts + 1] = ev.text end\n"
                       "  end\n"
                       "  return table.concat(parts)\nend }\n";
  ProcessResult r = troupe({"run", wf.string()}, /*tty=*/true);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "echo: hello there")) << r.out;
  // Shown under the streaming prefix while the call runs, before the step's ✓ line.
  size_t streamed = r.err.find("echo: hello there");
  ASSERT_NE(streamed, std::string::npos) << r.err;
  EXPECT_NE(r.err.rfind("│", streamed), std::string::npos) << r.err;
  EXPECT_LT(streamed, r.err.find("✓")) << r.err;
  ASSERT_EQ(server_.chat_count(), 1u);
  EXPECT_TRUE(server_.chats()[0].stream);
}

INSTANTIATE_TEST_SUITE_P(AllWireFormats, Vendors,
                         ::testing::Values(Vendor::openai, Vendor::anthropic, Vendor::gemini,
                                           Vendor::ollama),
                         [](const ::testing::TestParamInfo<Vendor>& param_info) {
                           return std::string(vendor_name(param_info.param));
                         });

class VendorsDemo : public Vendors {};

TEST_F(VendorsDemo, TheDemoWorkflowRunsUnchangedWithEachAgentOnItsVendorsWireFormat) {
  fs::path script = source_dir() / "scripts" / "workflows" / "pr_review.lua";
  ProcessResult r = troupe({"run", script.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.rfind("# Review: Add user search endpoint\n", 0), 0u) << r.out;
  EXPECT_TRUE(contains(r.out, "## Lead's analysis (anthropic/claude-sonnet-4-5)")) << r.out;
  // The agents' text came from the vendors (the fake echoes), not from the offline mock.
  EXPECT_TRUE(contains(r.out, "echo: ")) << r.out;
  std::set<Vendor> seen;
  for (const SeenChat& c : server_.chats())
    seen.insert(c.vendor);
  EXPECT_EQ(seen, (std::set<Vendor>{Vendor::openai, Vendor::anthropic, Vendor::gemini}));
  expect_no_key_leak(r);
}

TEST_F(VendorsDemo, AKeyInTheEnvironmentSelectsTheRealVendorWithoutAConfigFile) {
  fs::remove(dir_ / "troupe.yaml");
  fs::path wf = dir_ / "hello.lua";
  std::ofstream(wf) << "local troupe = require('troupe')\n"
                       "return troupe.workflow{ name = 'hello', run = function()\n"
                       "  local a = troupe.agent{ model = 'openai/gpt-test' }\n"
                       "  local b = troupe.agent{ model = 'anthropic/claude-test' }\n"
                       "  return { a = a:ask('hi openai'), b = b:ask('hi anthropic') }\nend }\n";
  ProcessOptions o;
  o.args = {troupe_binary(), "--json", "run", wf.string()};
  o.cwd = dir_.string();
  o.unset_env = {"TROUPE_PLUGIN_PATH", "NO_COLOR"};
  o.env["OPENAI_API_KEY"] = kKey;
  o.env["OPENAI_BASE_URL"] = server_.base_url(Vendor::openai);
  ProcessResult r = Process(o).wait();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json out = json::parse(r.out)["output"];
  EXPECT_EQ(out["a"], "echo: hi openai");     // the openai plugin, against the server
  EXPECT_NE(out["b"], "echo: hi anthropic");  // no Anthropic key: the offline mock answered
  ASSERT_EQ(server_.chat_count(), 1u);
  EXPECT_EQ(server_.chats()[0].request.header("authorization"), std::string("Bearer ") + kKey);
  expect_no_key_leak(r);
}

}  // namespace
}  // namespace troupe::test
