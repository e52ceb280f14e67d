// cli_test.cpp: end-to-end tests of the troupe binary — each test spawns build/troupe in a
// temp dir of its own (cwd and store), with scripts and configs written there, and checks
// exit codes, stdout/stderr and what `show`/`events` read back from the store.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "e2e/process.h"
#include "support/test_paths.h"
#include "support/test_text.h"
#include "troupe/plugin.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // a pty writes CRLF
    out.push_back(line);
  }
  return out;
}

// The first line of text that starts with prefix, or "" when none does.
std::string line_starting(const std::string& text, const std::string& prefix) {
  for (const auto& line : lines_of(text)) {
    if (line.compare(0, prefix.size(), prefix) == 0) return line;
  }
  return "";
}

// "1.2.3..." — three dot-separated numbers at the start. (No <regex>: GCC 12 reports false
// maybe-uninitialized warnings inside it under the sanitizers.)
bool starts_with_version(const std::string& s) {
  size_t i = 0;
  for (int part = 0; part < 3; ++part) {
    if (part > 0 && (i >= s.size() || s[i++] != '.')) return false;
    size_t digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i, ++digits;
    if (digits == 0) return false;
  }
  return true;
}

// A duration as the CLI formats it: a number followed by " ms" or " s".
bool has_duration(const std::string& line) {
  for (const char* unit : {" ms", " s"}) {
    for (size_t at = line.find(unit); at != std::string::npos; at = line.find(unit, at + 1)) {
      if (at > 0 && std::isdigit(static_cast<unsigned char>(line[at - 1]))) return true;
    }
  }
  return false;
}

// A workflow script: `body` is the body of run(input) and starts on line 3.
std::string workflow(const std::string& name, const std::string& body) {
  return "local troupe = require(\"troupe\")\n"
         "return troupe.workflow{ name = \"" +
         name + "\", run = function(input)\n" + body + "\nend }\n";
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "troupe-e2e-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
    dir_ = pattern;
    binary_ = troupe_binary();
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is missing; build the troupe_cli target";
  }

  void TearDown() override {
    if (HasFailure()) {
      std::fprintf(stderr, "kept the test folder for a look: %s\n", dir_.c_str());
    } else {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  // Options for one troupe invocation in this test's folder, with the environment variables
  // that would change what it reads cleared.
  ProcessOptions options(std::vector<std::string> args) const {
    ProcessOptions o;
    o.args = {binary_.string()};
    o.args.insert(o.args.end(), args.begin(), args.end());
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_CONFIG", "TROUPE_PLUGIN_PATH", "NO_COLOR"};
    return o;
  }

  ProcessResult troupe(std::vector<std::string> args) {
    return run_process(options(std::move(args)));
  }

  // Writes a file under the test's folder (creating folders); returns its path.
  std::string write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  // Parses a command's stdout as JSON, failing the test when it is not.
  static json parse(const ProcessResult& r) {
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "stdout is not JSON:\n" << r.describe();
    return j;
  }

  // Runs a workflow with --json and returns the parsed summary.
  json run_json(const std::string& script, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"run", script, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult r = troupe(args);
    json j = parse(r);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.describe();
    return j;
  }

  // The id of the newest run in this test's store.
  std::string latest_run_id() {
    ProcessResult r = troupe({"runs", "-n", "1", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    json j = parse(r);
    if (!j.is_array() || j.empty()) {
      ADD_FAILURE() << "no runs recorded:\n" << r.describe();
      return "";
    }
    return j[0].value("id", "");
  }

  json show_json(const std::string& id) {
    ProcessResult r = troupe({"show", id, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    return parse(r);
  }

  fs::path dir_;
  fs::path binary_;
};

// The fixtures below only group the tests by the command they exercise.
using CliRun = CliTest;
using CliInspect = CliTest;
using CliPlugins = CliTest;
using CliVersion = CliTest;
using CliErrors = CliTest;
using CliLimits = CliTest;
using CliProviders = CliTest;
using CliInterrupt = CliTest;
using CliConcurrency = CliTest;

const char* kTwoAgents =
    R"(  local planner = troupe.agent{ name = "planner", model = "mock/mock-1" }
  local writer = troupe.agent{ name = "writer", model = "mock/mock-2" }
  local plan = planner:ask("plan the release of " .. input.topic)
  troupe.sleep(0.01)
  local text = writer:ask("write it up:\n" .. plan)
  return { topic = input.topic, plan = plan, text = text })";

// ---------------------------------------------------------------------------------------
// troupe run

TEST_F(CliRun, PrintsAStringResultOnStdoutAndExitsZero) {
  write("hello.lua", workflow("hello", "  return 'hello, ' .. input.who"));
  ProcessResult r = troupe({"run", "hello.lua", "--input", R"({"who":"ada"})"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello, ada\n");
}

TEST_F(CliRun, PrintsATableResultAsJsonOnStdout) {
  write("tbl.lua", workflow("tbl", "  return { n = input.n * 2, tags = { 'a', 'b' } }"));
  write("input.json", R"({"n": 21})");
  ProcessResult r = troupe({"run", "tbl.lua", "-i", "@input.json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json out = parse(r);
  EXPECT_EQ(out, json::parse(R"({"n": 42, "tags": ["a", "b"]})")) << r.describe();
}

TEST_F(CliRun, JsonOutputIsOneObjectWithIdStatusOutputStepsAndTokens) {
  write("two_agents.lua", workflow("two_agents", kTwoAgents));
  ProcessResult r = troupe({"run", "two_agents.lua", "--json", "--input", R"({"topic":"v2"})"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json j = parse(r);
  ASSERT_TRUE(j.is_object()) << r.describe();
  ASSERT_TRUE(j["run_id"].is_string());
  EXPECT_EQ(j["run_id"].get<std::string>().size(), 16u);
  EXPECT_EQ(j["status"], "succeeded");
  EXPECT_EQ(j["workflow"], "two_agents");
  EXPECT_EQ(j["steps"], 3);  // two chats and a sleep
  EXPECT_GT(j["input_tokens"].get<int64_t>(), 0);
  EXPECT_GT(j["output_tokens"].get<int64_t>(), 0);
  EXPECT_TRUE(j["duration_ms"].is_number());
  EXPECT_EQ(j["output"]["topic"], "v2");
  EXPECT_TRUE(j["output"]["text"].is_string());
  EXPECT_FALSE(j.contains("error"));
  // The figures are the journal's: they match what `show` reads back.
  json shown = show_json(j["run_id"].get<std::string>());
  int64_t in = 0, out = 0;
  for (const auto& st : shown["steps"]) {
    in += st["input_tokens"].get<int64_t>();
    out += st["output_tokens"].get<int64_t>();
  }
  EXPECT_EQ(j["input_tokens"], in);
  EXPECT_EQ(j["output_tokens"], out);
}

TEST_F(CliRun, QuietPrintsOnlyTheResult) {
  write("two_agents.lua", workflow("two_agents", kTwoAgents));
  ProcessResult r = troupe({"run", "-q", "two_agents.lua", "--input", R"({"topic":"quiet"})"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "") << r.describe();
  json out = parse(r);
  EXPECT_EQ(out["topic"], "quiet");
}

TEST_F(CliRun, StderrOffATerminalHasNoProgressLinesOrColours) {
  write("two_agents.lua", workflow("two_agents", kTwoAgents));
  ProcessResult r = troupe({"run", "two_agents.lua", "--input", R"({"topic":"pipes"})"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(contains(r.err, "\033[")) << r.describe();
  EXPECT_FALSE(contains(r.out, "\033[")) << r.describe();
  EXPECT_FALSE(contains(r.err, "▶")) << r.describe();
  // Only the one-line summary: no line per step.
  std::vector<std::string> lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.describe();
  EXPECT_TRUE(contains(lines[0], "succeeded")) << r.describe();
  EXPECT_TRUE(contains(lines[0], "3 steps")) << r.describe();
}

TEST_F(CliRun, StderrOnATerminalShowsLiveProgressInColour) {
  write("two_agents.lua", workflow("two_agents", kTwoAgents));
  ProcessOptions o = options({"run", "two_agents.lua", "--input", R"({"topic":"tty"})"});
  o.stderr_is_tty = true;
  ProcessResult r = run_process(o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.err, "▶")) << r.describe();
  EXPECT_TRUE(contains(r.err, "planner")) << r.describe();
  EXPECT_TRUE(contains(r.err, "writer")) << r.describe();
  EXPECT_TRUE(contains(r.err, "\033[")) << r.describe();
  // stdout is still a pipe: the result stays plain.
  EXPECT_FALSE(contains(r.out, "\033[")) << r.describe();
  EXPECT_EQ(parse(r)["topic"], "tty");
}

TEST_F(CliRun, NoColorTurnsColoursOffOnATerminal) {
  write("two_agents.lua", workflow("two_agents", kTwoAgents));
  ProcessOptions o = options({"run", "two_agents.lua", "--input", R"({"topic":"tty"})"});
  o.stderr_is_tty = true;
  o.env["NO_COLOR"] = "1";
  ProcessResult r = run_process(o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.err, "planner")) << r.describe();
  EXPECT_FALSE(contains(r.err, "\033[")) << r.describe();
}

TEST_F(CliRun, FindsTroupeYamlInTheWorkingFolderAndItsStoreRelativeToIt) {
  write("troupe.yaml", "store: data/runs.db\n");
  write("hello.lua", workflow("hello", "  return 'ok'"));
  ProcessResult r = troupe({"run", "hello.lua"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(fs::exists(dir_ / "data" / "runs.db"));
  EXPECT_FALSE(fs::exists(dir_ / ".troupe" / "troupe.db"));
  ProcessResult runs = troupe({"runs", "--json"});
  ASSERT_EQ(runs.exit_code, 0) << runs.describe();
  EXPECT_EQ(parse(runs).size(), 1u);
}

TEST_F(CliRun, StoreOptionPutsTheJournalWhereAsked) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  ProcessResult r = troupe({"--store", "elsewhere.db", "run", "hello.lua"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(fs::exists(dir_ / "elsewhere.db"));
  ProcessResult runs = troupe({"runs", "--store", "elsewhere.db", "--json"});
  ASSERT_EQ(runs.exit_code, 0) << runs.describe();
  EXPECT_EQ(parse(runs).size(), 1u);
}

// ---------------------------------------------------------------------------------------
// troupe runs / show / events

TEST_F(CliInspect, RunsListsEveryRunNewestFirstWithFilters) {
  write("good.lua", workflow("good", "  return 'fine'"));
  write("bad.lua", workflow("bad", "  error('nope')"));
  json first = run_json("good.lua");
  json second = run_json("bad.lua");
  std::string good = first["run_id"], bad = second["run_id"];

  ProcessResult text = troupe({"runs"});
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  std::string good_line = line_starting(text.out, good);
  std::string bad_line = line_starting(text.out, bad);
  EXPECT_TRUE(contains(good_line, "good") && contains(good_line, "succeeded")) << text.out;
  EXPECT_TRUE(contains(bad_line, "bad") && contains(bad_line, "failed")) << text.out;
  EXPECT_TRUE(contains(bad_line, "nope")) << "the error column: " << text.out;

  json all = parse(troupe({"runs", "--json"}));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]["id"], bad);  // newest first
  EXPECT_EQ(all[1]["id"], good);
  EXPECT_EQ(all[1]["output"], "fine");
  EXPECT_TRUE(contains(all[0]["error"].get<std::string>(), "nope"));

  json failed = parse(troupe({"runs", "--status", "failed", "--json"}));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["id"], bad);
  json by_name = parse(troupe({"runs", "--workflow", "good", "--json"}));
  ASSERT_EQ(by_name.size(), 1u);
  EXPECT_EQ(by_name[0]["id"], good);
  json limited = parse(troupe({"runs", "-n", "1", "--json"}));
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0]["id"], bad);
}

TEST_F(CliInspect, RunsBeforeAnyRunSaysSoAndSucceeds) {
  ProcessResult text = troupe({"runs"});
  EXPECT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_TRUE(contains(text.out, "no runs yet")) << text.describe();
  ProcessResult js = troupe({"runs", "--json"});
  EXPECT_EQ(js.exit_code, 0) << js.describe();
  EXPECT_EQ(parse(js), json::array());
  ProcessResult show = troupe({"show", "abc"});
  EXPECT_EQ(show.exit_code, 2) << show.describe();
}

TEST_F(CliInspect, RunsRejectsAnUnknownStatus) {
  ProcessResult r = troupe({"runs", "--status", "sleeping"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST_F(CliInspect, ShowListsEveryStepWithKeyTokensAndLatency) {
  write("two_agents.lua", workflow("two_agents", kTwoAgents));
  json run = run_json("two_agents.lua", {"--input", R"({"topic":"show"})"});
  std::string id = run["run_id"];
  json shown = show_json(id);
  ProcessResult r = troupe({"show", id});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, id));
  EXPECT_TRUE(contains(r.out, "two_agents"));
  EXPECT_TRUE(contains(r.out, "succeeded"));
  ASSERT_EQ(shown["steps"].size(), 3u) << shown.dump(2);
  for (const auto& st : shown["steps"]) {
    std::string key = st["step_key"];
    std::string line = line_starting(r.out, key + " ");
    ASSERT_FALSE(line.empty()) << "no line for step " << key << " in:\n" << r.out;
    EXPECT_TRUE(contains(line, st["kind"].get<std::string>())) << line;
    EXPECT_TRUE(has_duration(line)) << line;
    if (st["kind"] == "chat") {
      EXPECT_TRUE(contains(line, st["agent"].get<std::string>())) << line;
      EXPECT_TRUE(contains(line, st["model"].get<std::string>())) << line;
      std::string tokens = std::to_string(st["input_tokens"].get<int64_t>()) + " → " +
                           std::to_string(st["output_tokens"].get<int64_t>());
      EXPECT_TRUE(contains(line, tokens)) << "want " << tokens << " in: " << line;
    }
  }
  // The totals line and the output.
  std::string totals = std::to_string(run["input_tokens"].get<int64_t>()) + " in, " +
                       std::to_string(run["output_tokens"].get<int64_t>()) + " out, 3 steps";
  EXPECT_TRUE(contains(r.out, totals)) << "want " << totals << " in:\n" << r.out;
  EXPECT_TRUE(contains(r.out, "\"topic\": \"show\"")) << "the output: " << r.out;
}

TEST_F(CliInspect, ShowJsonHasTheRunAndEveryStepsFields) {
  write("two_agents.lua", workflow("two_agents", kTwoAgents));
  json run = run_json("two_agents.lua", {"--input", R"({"topic":"fields"})"});
  json j = show_json(run["run_id"].get<std::string>());
  EXPECT_EQ(j["id"], run["run_id"]);
  EXPECT_EQ(j["workflow"], "two_agents");
  EXPECT_EQ(j["source"], "two_agents.lua");
  EXPECT_EQ(j["status"], "succeeded");
  EXPECT_EQ(j["input"], json::parse(R"({"topic":"fields"})"));
  EXPECT_EQ(j["output"], run["output"]);
  EXPECT_TRUE(j["error"].is_null());
  EXPECT_GT(j["created_ms"].get<int64_t>(), 0);
  EXPECT_GE(j["finished_ms"].get<int64_t>(), j["created_ms"].get<int64_t>());
  EXPECT_TRUE(j["duration_ms"].is_number());
  ASSERT_EQ(j["steps"].size(), 3u);
  // Executed in order: planner (1), the sleep (2), writer (3).
  const json& s = j["steps"];
  EXPECT_EQ(s[0]["step_key"], "1");
  EXPECT_EQ(s[0]["kind"], "chat");
  EXPECT_EQ(s[0]["agent"], "planner");
  EXPECT_EQ(s[0]["model"], "mock/mock-1");
  EXPECT_EQ(s[1]["step_key"], "2");
  EXPECT_EQ(s[1]["kind"], "sleep");
  EXPECT_EQ(s[2]["step_key"], "3");
  EXPECT_EQ(s[2]["agent"], "writer");
  for (const auto& st : s) {
    EXPECT_EQ(st["status"], "succeeded");
    EXPECT_TRUE(st["error"].is_null());
    EXPECT_TRUE(st["latency_ms"].is_number());
    EXPECT_TRUE(st["input_tokens"].is_number_integer());
    EXPECT_TRUE(st["output_tokens"].is_number_integer());
    EXPECT_GE(st["finished_ms"].get<int64_t>(), st["started_ms"].get<int64_t>());
  }
  EXPECT_GE(s[1]["latency_ms"].get<double>(), 5.0);  // slept 10 ms
  // A chat step keeps its request and response.
  EXPECT_EQ(s[0]["request"]["model"], "mock-1");
  EXPECT_EQ(s[0]["request"]["metadata"]["agent"], "planner");
  EXPECT_EQ(s[0]["request"]["messages"][0]["content"], "plan the release of fields");
  EXPECT_EQ(s[0]["response"]["text"], run["output"]["plan"]);
  EXPECT_GT(s[0]["input_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(s[0]["response"]["usage"]["output_tokens"], s[0]["output_tokens"]);
}

TEST_F(CliInspect, TheStoreNamesARunAfterItsWorkflowLikeRunDoes) {
  // The script's file name and the workflow's own name differ here.
  write("flow_file.lua", workflow("release_notes", "  return 'ok'"));
  json run = run_json("flow_file.lua");
  ASSERT_EQ(run["workflow"], "release_notes") << run.dump(2);
  json j = show_json(run["run_id"].get<std::string>());
  EXPECT_EQ(j["workflow"], "release_notes");
  EXPECT_EQ(j["source"], "flow_file.lua");
  json by_name = parse(troupe({"runs", "--workflow", "release_notes", "--json"}));
  EXPECT_EQ(by_name.size(), 1u);
}

TEST_F(CliInspect, ShowAndEventsAcceptAUniquePrefixOfTheId) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  std::string a = run_json("hello.lua")["run_id"];
  std::string b = run_json("hello.lua")["run_id"];
  ASSERT_NE(a, b);
  size_t common = 0;
  while (common < a.size() && a[common] == b[common])
    ++common;
  ASSERT_LT(common, a.size());
  std::string prefix = a.substr(0, common + 1);  // the shortest prefix only a has
  ProcessResult r = troupe({"show", prefix});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, a)) << r.out;
  EXPECT_FALSE(contains(r.out, b)) << r.out;
  json j = show_json(prefix);
  EXPECT_EQ(j["id"], a);
  ProcessResult ev = troupe({"events", prefix});
  ASSERT_EQ(ev.exit_code, 0) << ev.describe();
  EXPECT_TRUE(contains(ev.out, "run.finished")) << ev.out;
}

TEST_F(CliInspect, AnAmbiguousPrefixIsAUsageError) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  std::string a = run_json("hello.lua")["run_id"];
  std::string b = run_json("hello.lua")["run_id"];
  size_t common = 0;
  while (common < a.size() && a[common] == b[common])
    ++common;
  // Ids start with their creation time, so two runs seconds apart share a prefix.
  ASSERT_GT(common, 0u) << a << " " << b;
  std::string prefix = a.substr(0, common);
  for (const char* cmd : {"show", "events"}) {
    ProcessResult r = troupe({cmd, prefix});
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.describe();
    EXPECT_TRUE(contains(r.err, "ambiguous")) << cmd << ": " << r.describe();
    EXPECT_TRUE(contains(r.err, prefix)) << cmd << ": " << r.describe();
    EXPECT_EQ(r.out, "") << cmd;
  }
}

TEST_F(CliInspect, AnUnknownRunIsAUsageError) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  run_json("hello.lua");
  for (const char* cmd : {"show", "events"}) {
    ProcessResult r = troupe({cmd, "zzzzzzzz"});
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.describe();
    EXPECT_TRUE(contains(r.err, "no run with id 'zzzzzzzz'")) << cmd << ": " << r.describe();
  }
}

TEST_F(CliInspect, InspectingAFolderWithoutAStoreSaysSo) {
  ProcessResult r = troupe({"show", "01abc"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "troupe run")) << "a hint at how runs get recorded: " << r.describe();
}

TEST_F(CliInspect, EventsPrintsTheRunsEventsInOrder) {
  write("two_agents.lua",
        workflow("two_agents", "  troupe.log('halfway')\n" + std::string(kTwoAgents)));
  std::string id = run_json("two_agents.lua", {"--input", R"({"topic":"ev"})"})["run_id"];

  ProcessResult text = troupe({"events", id});
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  std::vector<std::string> lines = lines_of(text.out);
  ASSERT_GE(lines.size(), 4u) << text.out;
  EXPECT_TRUE(contains(lines.front(), "run.started")) << text.out;
  EXPECT_TRUE(contains(lines.back(), "run.finished")) << text.out;
  EXPECT_TRUE(contains(text.out, "halfway")) << text.out;

  ProcessResult js = troupe({"events", id, "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.describe();
  std::vector<std::string> types;
  int64_t last_seq = 0;
  for (const auto& line : lines_of(js.out)) {
    json ev = json::parse(line, nullptr, false);
    ASSERT_FALSE(ev.is_discarded()) << "not one JSON object per line: " << line;
    EXPECT_GT(ev["seq"].get<int64_t>(), last_seq);
    last_seq = ev["seq"];
    EXPECT_TRUE(ev["ts_ms"].is_number_integer());
    EXPECT_TRUE(ev["data"].is_object()) << line;
    types.push_back(ev["type"]);
  }
  std::vector<std::string> want = {"run.started",   "log",           "step.started",
                                   "step.finished", "step.started",  "step.finished",
                                   "step.started",  "step.finished", "run.finished"};
  EXPECT_EQ(types, want) << js.out;
  EXPECT_EQ(lines_of(js.out).size(), lines.size());
}

TEST_F(CliInspect, EventsFollowEndsOnAFinishedRun) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  std::string id = run_json("hello.lua")["run_id"];
  ProcessOptions o = options({"events", "--follow", id});
  o.timeout = seconds(30);
  ProcessResult r = run_process(o);
  ASSERT_FALSE(r.timed_out) << "--follow kept waiting on a finished run: " << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(lines_of(r.out).back(), "run.finished")) << r.out;
}

TEST_F(CliInspect, EventsFollowStreamsALiveRunUntilItEnds) {
  // The first sleep's step is committed before the run goes on (durability: sync), and the
  // run's record was queued before it: once 'started' is printed, `runs` can see the run.
  write("slow.lua", workflow("slow",
                             "  troupe.sleep(0.01)\n"
                             "  troupe.log('started')\n"
                             "  troupe.sleep(1.5)\n"
                             "  return 'done'"));
  Process run(options({"run", "slow.lua"}));
  ASSERT_TRUE(run.wait_for_output("started", seconds(30))) << run.wait().describe();
  std::string id = latest_run_id();
  ASSERT_FALSE(id.empty());
  ProcessOptions o = options({"--json", "events", id, "-f"});
  o.timeout = seconds(30);
  ProcessResult follow = run_process(o);
  ProcessResult done = run.wait();
  ASSERT_EQ(done.exit_code, 0) << done.describe();
  ASSERT_FALSE(follow.timed_out) << follow.describe();
  ASSERT_EQ(follow.exit_code, 0) << follow.describe();
  std::vector<std::string> lines = lines_of(follow.out);
  ASSERT_FALSE(lines.empty());
  json last = json::parse(lines.back(), nullptr, false);
  ASSERT_FALSE(last.is_discarded()) << follow.out;
  EXPECT_EQ(last["type"], "run.finished");
  EXPECT_EQ(last["data"]["status"], "succeeded");
  EXPECT_TRUE(contains(follow.out, "\"sleep\"")) << "the sleep step: " << follow.out;
  // Including the step that was still pending when `events -f` started.
  EXPECT_TRUE(contains(follow.out, "\"seconds\":1.5")) << follow.out;
}

TEST_F(CliInspect, JsonFlagWorksBeforeOrAfterTheSubcommand) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  ProcessResult before = troupe({"--json", "run", "hello.lua"});
  ProcessResult after = troupe({"run", "hello.lua", "--json"});
  ASSERT_EQ(before.exit_code, 0) << before.describe();
  ASSERT_EQ(after.exit_code, 0) << after.describe();
  EXPECT_EQ(parse(before)["output"], "ok");
  EXPECT_EQ(parse(after)["output"], "ok");
  std::string id = parse(after)["run_id"];
  for (auto args : std::vector<std::vector<std::string>>{{"--json", "runs"},
                                                         {"runs", "--json"},
                                                         {"--json", "show", id},
                                                         {"show", id, "--json"},
                                                         {"--json", "plugins"},
                                                         {"plugins", "--json"},
                                                         {"--json", "version"},
                                                         {"version", "--json"}}) {
    ProcessResult r = troupe(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.describe();
    EXPECT_FALSE(json::parse(r.out, nullptr, false).is_discarded())
        << args[0] << " " << args[1] << ": " << r.describe();
  }
}

// ---------------------------------------------------------------------------------------
// troupe plugins / version

TEST_F(CliPlugins, ListsTheBuiltPluginsWithKindVersionAbiAndPath) {
  std::string abi = std::to_string(TROUPE_ABI_MAJOR) + "." + std::to_string(TROUPE_ABI_MINOR);
  std::vector<std::string> expected = {"mock"};
#ifdef TROUPE_E2E_HAVE_ECHO_C
  expected.push_back("echo_c");
#endif
  ProcessResult text = troupe({"plugins"});
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  ProcessResult js = troupe({"plugins", "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.describe();
  json j = parse(js);
  for (const std::string& name : expected) {
    std::string line = line_starting(text.out, name + " ");
    ASSERT_FALSE(line.empty()) << name << " is not listed:\n" << text.out;
    EXPECT_TRUE(contains(line, "provider")) << line;
    EXPECT_TRUE(contains(line, " " + abi + " ")) << line;
    EXPECT_TRUE(contains(line, "/" + name + ".so")) << line;
    const json* entry = nullptr;
    for (const auto& p : j["plugins"]) {
      if (p["name"] == name) entry = &p;
    }
    ASSERT_NE(entry, nullptr) << name << " missing in --json: " << js.out;
    EXPECT_EQ((*entry)["kind"], "provider");
    EXPECT_EQ((*entry)["abi"], abi);
    EXPECT_TRUE(starts_with_version((*entry)["version"].get<std::string>())) << *entry;
    EXPECT_TRUE(contains(line, (*entry)["version"].get<std::string>())) << line;
    fs::path path = (*entry)["path"].get<std::string>();
    EXPECT_TRUE(path.is_absolute()) << path;
    EXPECT_TRUE(fs::equivalent(path, build_dir() / "plugins" / (name + ".so"))) << path;
  }
  EXPECT_TRUE(j["refused"].empty()) << js.out;
  EXPECT_FALSE(contains(text.out, "refused")) << text.out;
#ifndef TROUPE_E2E_HAVE_ECHO_C
  GTEST_SKIP() << "echo_c (sdk/examples) is not part of this build; checked mock only";
#endif
}

TEST_F(CliPlugins, ABrokenFileOnThePathIsListedAsRefusedAndTheCommandSucceeds) {
  std::string bad = write("extra/bad.so", "this is a text file, not a shared library\n");
  ProcessOptions o = options({"plugins"});
  o.env["TROUPE_PLUGIN_PATH"] = (dir_ / "extra").string();
  ProcessResult text = run_process(o);
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_FALSE(line_starting(text.out, "mock ").empty()) << "mock still listed:\n" << text.out;
  size_t refused_at = text.out.find("refused");
  ASSERT_NE(refused_at, std::string::npos) << text.out;
  std::string refused = text.out.substr(refused_at);
  EXPECT_TRUE(contains(refused, bad)) << text.out;
  EXPECT_TRUE(contains(refused, "not a shared library")) << text.out;
  EXPECT_TRUE(contains(text.out, (dir_ / "extra").string()))
      << "the searched folders: " << text.out;

  o.args.push_back("--json");
  ProcessResult js = run_process(o);
  ASSERT_EQ(js.exit_code, 0) << js.describe();
  json j = parse(js);
  ASSERT_EQ(j["refused"].size(), 1u) << js.out;
  EXPECT_EQ(j["refused"][0]["path"], bad);
  EXPECT_TRUE(contains(j["refused"][0]["error"].get<std::string>(), "not a shared library"));
  EXPECT_EQ(j["search_path"][0], (dir_ / "extra").string());
}

TEST_F(CliVersion, PrintsTheVersionsOfTroupeAndWhatItIsBuiltOn) {
  std::string abi = std::to_string(TROUPE_ABI_MAJOR) + "." + std::to_string(TROUPE_ABI_MINOR);
  ProcessResult r = troupe({"version"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.rfind("troupe ", 0), 0u) << r.out;
  EXPECT_TRUE(starts_with_version(r.out.substr(7))) << r.out;
  EXPECT_TRUE(contains(r.out, "plugin ABI " + abi)) << r.out;
  EXPECT_TRUE(contains(r.out, "Lua 5.4")) << r.out;
  EXPECT_TRUE(contains(r.out, "SQLite")) << r.out;
  json j = parse(troupe({"version", "--json"}));
  EXPECT_TRUE(contains(r.out, j["troupe"].get<std::string>()));
  EXPECT_EQ(j["plugin_abi"], abi);
  EXPECT_TRUE(j["lua"].is_string());
  EXPECT_TRUE(j["sqlite"].is_string());
  EXPECT_TRUE(j["libcurl"].is_string());
}

TEST_F(CliVersion, NoSubcommandOrAnUnknownOneIsAUsageError) {
  EXPECT_EQ(troupe({}).exit_code, 2);
  ProcessResult r = troupe({"fly"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(troupe({"--help"}).exit_code, 0);
}

// ---------------------------------------------------------------------------------------
// Bad input

TEST_F(CliErrors, AMissingWorkflowFileIsAUsageErrorNamingIt) {
  ProcessResult r = troupe({"run", "no_such_flow.lua"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "no_such_flow.lua")) << r.describe();
  EXPECT_EQ(r.out, "");
}

TEST_F(CliErrors, InvalidInputJsonIsAUsageError) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  ProcessResult r = troupe({"run", "hello.lua", "--input", "{who: ada}"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "--input is not valid JSON")) << r.describe();
  ProcessResult missing = troupe({"run", "hello.lua", "--input", "@nowhere.json"});
  EXPECT_EQ(missing.exit_code, 2) << missing.describe();
  EXPECT_TRUE(contains(missing.err, "nowhere.json")) << missing.describe();
  // Nothing was run.
  EXPECT_EQ(parse(troupe({"runs", "--json"})), json::array());
}

TEST_F(CliErrors, BadYamlNamesTheFileAndTheLine) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  write("broken.yaml", "store: runs.db\ndurability: sync\ndefault_model: mock: x\n");
  ProcessResult r = troupe({"--config", "broken.yaml", "run", "hello.lua"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "broken.yaml:3:")) << r.describe();
  EXPECT_TRUE(contains(r.err, "YAML")) << r.describe();
}

TEST_F(CliErrors, AnUnknownConfigKeyIsNamed) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  write("typo.yaml", "store: runs.db\nlimits:\n  max_instructionz: 5\n");
  ProcessResult r = troupe({"run", "hello.lua", "--config", "typo.yaml"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "typo.yaml")) << r.describe();
  EXPECT_TRUE(contains(r.err, "limits.max_instructionz")) << r.describe();
  EXPECT_TRUE(contains(r.err, "unknown")) << r.describe();
}

TEST_F(CliErrors, AWrongTypeInTheConfigIsNamed) {
  write("hello.lua", workflow("hello", "  return 'ok'"));
  write("types.yaml", "providers:\n  openai:\n    plugin: mock\n    settings: fast\n");
  ProcessResult r = troupe({"run", "hello.lua", "--config", "types.yaml"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "types.yaml")) << r.describe();
  EXPECT_TRUE(contains(r.err, "providers.openai.settings")) << r.describe();
  EXPECT_TRUE(contains(r.err, "expected a mapping")) << r.describe();
}

TEST_F(CliErrors, ABrokenConfigFromTheEnvironmentFailsEveryCommand) {
  write("env.json", R"({"store": "a.db", "limits": {"max_memory_mb": "lots"}})");
  for (const char* cmd : {"runs", "plugins"}) {
    ProcessOptions o = options({cmd});
    o.env["TROUPE_CONFIG"] = (dir_ / "env.json").string();
    ProcessResult r = run_process(o);
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.describe();
    EXPECT_TRUE(contains(r.err, "env.json")) << cmd << ": " << r.describe();
    EXPECT_TRUE(contains(r.err, "limits.max_memory_mb")) << cmd << ": " << r.describe();
  }
}

TEST_F(CliErrors, ALuaSyntaxErrorFailsTheRunNamingFileAndLine) {
  write("syn.lua", workflow("syn", "  local x = 1\n  local y = = 2\n  return x"));
  ProcessResult r = troupe({"run", "syn.lua"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "syn.lua:4:")) << r.describe();
  EXPECT_EQ(r.out, "");
  std::string id = latest_run_id();
  ProcessResult shown = troupe({"show", id});
  ASSERT_EQ(shown.exit_code, 0) << shown.describe();
  EXPECT_TRUE(contains(shown.out, "failed")) << shown.out;
  EXPECT_TRUE(contains(shown.out, "syn.lua:4:")) << shown.out;
  json j = show_json(id);
  EXPECT_EQ(j["status"], "failed");
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "syn.lua:4:")) << j.dump(2);
  EXPECT_TRUE(j["output"].is_null());
}

TEST_F(CliErrors, ARuntimeErrorFailsTheRunWithALuaTraceback) {
  write("flows/rt.lua", workflow("rt",
                                 "  local function inner(v)\n"
                                 "    error('broken value ' .. v)\n"
                                 "  end\n"
                                 "  inner(7)\n"
                                 "  return 'unreachable'"));
  ProcessResult r = troupe({"run", "flows/rt.lua"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "flows/rt.lua:4: broken value 7")) << r.describe();
  EXPECT_TRUE(contains(r.err, "stack traceback")) << r.describe();
  EXPECT_TRUE(contains(r.err, "flows/rt.lua:6:")) << "the caller's line: " << r.describe();
  EXPECT_EQ(r.out, "");
  json j = parse(troupe({"run", "flows/rt.lua", "--json"}));
  EXPECT_EQ(j["status"], "failed");
  EXPECT_TRUE(j["output"].is_null());
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "stack traceback"));
}

TEST_F(CliErrors, AScriptThatReturnsNoWorkflowFailsSayingWhatIsExpected) {
  write("plain.lua", "return 42\n");
  ProcessResult r = troupe({"run", "plain.lua"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "troupe.workflow")) << r.describe();
}

// ---------------------------------------------------------------------------------------
// The sandbox, through the CLI: each attempt fails its run with a message that says why.

class CliSandbox : public CliTest {
 protected:
  ProcessResult attempt(const std::string& body) {
    write("wf/sb.lua", workflow("sb", body));
    return troupe({"run", "wf/sb.lua"});
  }
};

TEST_F(CliSandbox, IoOpenIsRefused) {
  ProcessResult r = attempt("  local f = io.open('/etc/hostname')\n  return f and f:read('a')");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "io.open is not available")) << r.describe();
  EXPECT_EQ(r.out, "");
}

TEST_F(CliSandbox, OsExecuteIsRefused) {
  ProcessResult r = attempt("  os.execute('touch pwned')\n  return 'ran'");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "os.execute is not available")) << r.describe();
  EXPECT_FALSE(fs::exists(dir_ / "pwned"));
}

TEST_F(CliSandbox, OsGetenvIsRefused) {
  ProcessOptions o = options({"run", "wf/sb.lua"});
  o.env["TROUPE_E2E_SECRET"] = "hunter2";
  write("wf/sb.lua", workflow("sb", "  return os.getenv('TROUPE_E2E_SECRET')"));
  ProcessResult r = run_process(o);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "os.getenv is not available")) << r.describe();
  EXPECT_FALSE(contains(r.out + r.err, "hunter2"));
}

TEST_F(CliSandbox, RequireCannotLeaveTheWorkflowsFolder) {
  write("x.lua", "return 'escaped'\n");  // exists, one folder up from the workflow
  ProcessResult r = attempt("  local x = require('../x')\n  return x");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "require('../x')")) << r.describe();
  EXPECT_FALSE(contains(r.out, "escaped"));
}

TEST_F(CliSandbox, RequireLoadsAModuleFromTheWorkflowsFolder) {
  write("wf/helpers.lua", "local M = {}\nfunction M.double(n) return n * 2 end\nreturn M\n");
  write("wf/lib/strings.lua", "return { shout = function(s) return s:upper() end }\n");
  // Run from the test folder: modules resolve against the workflow's folder, not the cwd.
  ProcessResult r = attempt(
      "  local h = require('helpers')\n"
      "  local s = require('lib.strings')\n"
      "  return s.shout('n=') .. h.double(21)");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "N=42\n");
}

TEST_F(CliSandbox, LoadRefusesABinaryChunk) {
  ProcessResult r = attempt("  local f = load('\\27Lua\\84\\0')\n  return f and f()");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "binary chunks are not allowed")) << r.describe();
}

TEST_F(CliSandbox, LoadRefusesBinaryMode) {
  ProcessResult r = attempt("  local f = load('return 1', 'x', 'b')\n  return f and f()");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "only text chunks")) << r.describe();
}

TEST_F(CliSandbox, LoadOfTextStillWorks) {
  ProcessResult r = attempt("  return load('return 6 * 7')()");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "42\n");
}

TEST_F(CliSandbox, StringDumpIsUnavailable) {
  // Not a tail call: a tail call would drop the line the error is reported at.
  ProcessResult r = attempt("  local code = string.dump(function() return 1 end)\n  return code");
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "string.dump is not available")) << r.describe();
  EXPECT_TRUE(contains(r.err, "wf/sb.lua:3:")) << r.describe();
  ProcessResult method = attempt("  return ('x'):dump()");
  EXPECT_EQ(method.exit_code, 1) << method.describe();
  EXPECT_TRUE(contains(method.err, "dump")) << method.describe();
}

// ---------------------------------------------------------------------------------------
// Limits

TEST_F(CliLimits, AnInfiniteLoopIsStoppedByTheInstructionLimit) {
  write("troupe.yaml", "limits: {max_instructions: 5000000}\n");
  write("spin.lua", workflow("spin", "  while true do end"));
  ProcessOptions o = options({"run", "spin.lua"});
  o.timeout = seconds(60);
  ProcessResult r = run_process(o);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "instruction limit")) << r.describe();
  EXPECT_EQ(show_json(latest_run_id())["status"], "failed");
}

TEST_F(CliLimits, AMemoryBombIsStoppedByTheMemoryLimit) {
  write("troupe.yaml", "limits: {max_memory_mb: 16}\n");
  write("bomb.lua", workflow("bomb",
                             "  local t = {}\n"
                             "  for i = 1, math.maxinteger do\n"
                             "    t[i] = string.rep('x', 4096) .. i\n"
                             "  end"));
  ProcessOptions o = options({"run", "bomb.lua"});
  o.timeout = seconds(60);
  ProcessResult r = run_process(o);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "memory limit")) << r.describe();
}

TEST_F(CliLimits, PcallCannotCatchTheInstructionLimit) {
  write("troupe.yaml", "limits: {max_instructions: 5000000}\n");
  write("sly.lua", workflow("sly", "  while true do pcall(function() while true do end end) end"));
  ProcessOptions o = options({"run", "sly.lua"});
  o.timeout = seconds(60);
  ProcessResult r = run_process(o);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "instruction limit")) << r.describe();
}

TEST_F(CliLimits, PcallCannotCatchTheMemoryLimit) {
  write("troupe.yaml", "limits: {max_memory_mb: 16}\n");
  write("sly.lua", workflow("sly",
                            "  local t = {}\n"
                            "  while true do\n"
                            "    pcall(function() t[#t + 1] = string.rep('y', 4096) .. #t end)\n"
                            "  end"));
  ProcessOptions o = options({"run", "sly.lua"});
  o.timeout = seconds(60);
  ProcessResult r = run_process(o);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "memory limit")) << r.describe();
}

// ---------------------------------------------------------------------------------------
// Providers

const char* kOpenAiToMock =
    "providers:\n"
    "  openai:\n"
    "    plugin: mock\n"
    "    settings:\n"
    "      latency_ms: 200\n";

TEST_F(CliProviders, AConfiguredProviderNameIsServedByTheMockWithItsLatency) {
  write("troupe.yaml", kOpenAiToMock);
  write("ask.lua", workflow("ask",
                            "  local a = troupe.agent{ name = 'gpt', model = 'openai/gpt-4o' }\n"
                            "  return a:ask('hello')"));
  json run = run_json("ask.lua");
  ASSERT_EQ(run["status"], "succeeded") << run.dump(2);
  json j = show_json(run["run_id"].get<std::string>());
  ASSERT_EQ(j["steps"].size(), 1u);
  const json& st = j["steps"][0];
  EXPECT_EQ(st["model"], "openai/gpt-4o");
  EXPECT_EQ(st["request"]["model"], "gpt-4o");
  EXPECT_EQ(st["response"]["model"], "gpt-4o");
  EXPECT_GE(st["latency_ms"].get<double>(), 150.0) << st.dump();  // 200 ms configured
}

TEST_F(CliProviders, AProviderThatIsNotConfiguredFailsTheRun) {
  write("troupe.yaml", kOpenAiToMock);
  write(
      "ask.lua",
      workflow("ask", "  return troupe.agent{ name = 'c', model = 'anthropic/claude' }:ask('hi')"));
  ProcessResult r = troupe({"run", "ask.lua"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "anthropic")) << r.describe();
  EXPECT_TRUE(contains(r.err, "openai")) << "what is configured: " << r.describe();
}

TEST_F(CliProviders, ARateLimitedModelFailsTheRunWithRateLimitedAfterTheDefaultThreeAttempts) {
  write("ask.lua",
        workflow("ask",
                 "  local a = troupe.agent{ name = 'busy', model = 'mock/error-rate-limited' }\n"
                 "  return a:ask('hello')"));
  ProcessResult r = troupe({"run", "ask.lua"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "rate_limited")) << r.describe();
  json j = show_json(latest_run_id());
  EXPECT_EQ(j["status"], "failed");
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "rate_limited")) << j.dump(2);
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "(after 3 attempts)")) << j.dump(2);
  ASSERT_EQ(j["steps"].size(), 1u);
  EXPECT_EQ(j["steps"][0]["status"], "failed");
  EXPECT_EQ(j["steps"][0]["attempts"], 3);
  EXPECT_TRUE(contains(j["steps"][0]["error"].get<std::string>(), "rate_limited"));
}

TEST_F(CliProviders, AProviderErrorCanBeCaughtByTheWorkflow) {
  write("ask.lua",
        workflow("ask",
                 "  local a = troupe.agent{ name = 'busy', model = 'mock/error-auth' }\n"
                 "  local ok, err = pcall(a.ask, a, 'hello')\n"
                 "  return { ok = ok, status = err.status, retryable = err.retryable }"));
  ProcessResult r = troupe({"run", "-q", "ask.lua"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(parse(r), json::parse(R"({"ok": false, "status": "auth", "retryable": false})"));
}

TEST_F(CliProviders, AFailingParallelBranchFailsTheRunNamingTheBranch) {
  write("troupe.yaml", kOpenAiToMock);
  write("par.lua", workflow("par",
                            "  return { troupe.parallel(\n"
                            "    function() return troupe.agent{ name = 'good', model = "
                            "'openai/gpt-4o' }:ask('a') end,\n"
                            "    function() return troupe.agent{ name = 'bad', model = "
                            "'openai/error-server', retry = false }:ask('b') end,\n"
                            "    function() return troupe.agent{ name = 'fine', model = "
                            "'openai/gpt-4o' }:ask('c') end) }"));
  ProcessResult r = troupe({"run", "par.lua"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "troupe.parallel: branch 2 failed")) << r.describe();
  EXPECT_TRUE(contains(r.err, "agent 'bad'")) << r.describe();
  EXPECT_TRUE(contains(r.err, "unavailable")) << r.describe();
  json j = show_json(latest_run_id());
  EXPECT_EQ(j["status"], "failed");
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "branch 2")) << j.dump(2);
  bool found = false;
  for (const auto& st : j["steps"]) {
    if (st["agent"] == "bad") {
      found = true;
      EXPECT_EQ(st["status"], "failed");
    }
  }
  EXPECT_TRUE(found) << j.dump(2);
  // `show` puts the step's error on a line of its own without stretching the table.
  ProcessResult shown = troupe({"show", j["id"].get<std::string>()});
  ASSERT_EQ(shown.exit_code, 0) << shown.describe();
  EXPECT_TRUE(contains(shown.out, "error: unavailable")) << shown.out;
  std::string header = line_starting(shown.out, "STEP");
  size_t agent = header.find("AGENT"), model = header.find("MODEL");
  ASSERT_TRUE(agent != std::string::npos && model != std::string::npos) << shown.out;
  EXPECT_LE(model - agent, 12u) << "the AGENT column is as wide as its longest name:\n"
                                << shown.out;
}

// ---------------------------------------------------------------------------------------
// Interrupt

TEST_F(CliInterrupt, SigintCancelsTheRunAndExits130) {
  write("nap.lua", workflow("nap",
                            "  troupe.log('going to sleep')\n"
                            "  troupe.sleep(30)\n"
                            "  return 'rested'"));
  ProcessOptions o = options({"run", "nap.lua"});
  o.timeout = seconds(60);
  Process p(o);
  // The log line means the handler is installed and the sleep is about to start.
  ASSERT_TRUE(p.wait_for_output("going to sleep", seconds(30))) << p.wait().describe();
  auto sent = std::chrono::steady_clock::now();
  p.send_signal(SIGINT);
  ProcessResult r = p.wait();
  auto took = std::chrono::steady_clock::now() - sent;
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 130) << r.describe();
  EXPECT_LT(took, seconds(10)) << "slow to stop: " << r.describe();
  EXPECT_TRUE(contains(r.err, "interrupted")) << r.describe();
  EXPECT_FALSE(contains(r.out, "rested"));
  json j = show_json(latest_run_id());
  EXPECT_EQ(j["status"], "cancelled") << j.dump(2);
  EXPECT_TRUE(contains(j["error"].get<std::string>(), "SIGINT")) << j.dump(2);
  ProcessResult runs = troupe({"runs", "--status", "cancelled", "--json"});
  EXPECT_EQ(parse(runs).size(), 1u) << runs.describe();
}

// ---------------------------------------------------------------------------------------
// Concurrency through the loop

TEST_F(CliConcurrency, TwoHundredParallelAgentCallsOverlap) {
  write("troupe.yaml",
        "providers:\n"
        "  slow:\n"
        "    plugin: mock\n"
        "    settings: {latency_ms: 200}\n");
  write("fan.lua", workflow("fan",
                            "  local branches = {}\n"
                            "  for i = 1, 200 do\n"
                            "    branches[i] = function()\n"
                            "      local a = troupe.agent{ name = 'a' .. i, model = 'slow/m' }\n"
                            "      return a:ask('item ' .. i)\n"
                            "    end\n"
                            "  end\n"
                            "  local results = { troupe.parallel(table.unpack(branches)) }\n"
                            "  return #results"));
  ProcessOptions o = options({"run", "-q", "fan.lua"});
  o.timeout = seconds(120);
  ProcessResult r = run_process(o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "200\n");
  // Sequentially that is 200 × 200 ms = 40 s; overlapped it is one latency plus overhead.
  EXPECT_LT(r.elapsed, seconds(10)) << r.describe();
  json j = show_json(latest_run_id());
  ASSERT_EQ(j["steps"].size(), 200u);
  std::set<std::string> keys, agents;
  for (const auto& st : j["steps"]) {
    EXPECT_EQ(st["status"], "succeeded");
    keys.insert(st["step_key"].get<std::string>());
    agents.insert(st["agent"].get<std::string>());
  }
  EXPECT_EQ(keys.size(), 200u);
  EXPECT_EQ(agents.size(), 200u);
}

}  // namespace
}  // namespace troupe::test
