// config_input_test.cpp: class 7 — bad input to the CLI and the configuration never crashes.
//
// Each test hands the real troupe binary (build/troupe) one hostile input, as a user or a
// script would: a deep or huge --input, numbers that overflow, YAML aliases that recurse or
// explode, duplicate and unknown keys, files that are fifos or endless devices. Each must end
// with exit code 2 and an error naming the file, the line and the key — never a signal, a hang
// or a silently wrapped value. (docs/security.md, section 7; decision 0012.)
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "e2e/process.h"
#include "support/test_dir.h"
#include "support/test_paths.h"
#include "support/test_text.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i)
    out += s;
  return out;
}

class ConfigInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_test_dir("config-input");
    binary_ = troupe_binary();
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is missing; build the troupe_cli target";
    write("hello.lua",
          "local troupe = require(\"troupe\")\n"
          "return troupe.workflow{ name = \"hello\", run = function(input) return 'ok' end }\n");
  }

  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return name;
  }

  ProcessResult troupe(std::vector<std::string> args) {
    ProcessOptions o;
    o.args = {binary_.string()};
    o.args.insert(o.args.end(), args.begin(), args.end());
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_CONFIG", "TROUPE_PLUGIN_PATH", "TROUPE_MODEL"};
    o.env["TROUPE_OFFLINE"] = "1";
    o.timeout = milliseconds(30'000);  // a hang (a fifo, an expansion) fails the test
    return run_process(o);
  }

  // `troupe run hello.lua` with this configuration file.
  ProcessResult run_with_config(const std::string& config) {
    return troupe({"--config", config, "run", "hello.lua", "--store", "runs.db"});
  }

  // `troupe run hello.lua --input ARG`.
  ProcessResult run_with_input(const std::string& arg) {
    return troupe({"run", "hello.lua", "--store", "runs.db", "--input", arg});
  }

  // A usage error (exit 2, no signal, nothing on stdout) whose message has every part given
  // (the file with its line, the key, what is wrong).
  static void expect_refused(const ProcessResult& r, const std::vector<std::string>& parts) {
    EXPECT_FALSE(r.timed_out) << r.describe();
    EXPECT_EQ(r.term_signal, 0) << r.describe();
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_EQ(r.out, "") << r.describe();
    for (const auto& part : parts)
      EXPECT_TRUE(contains(r.err, part)) << "missing '" << part << "' in:\n" << r.describe();
  }

  fs::path dir_;
  fs::path binary_;
};

// ---------------------------------------------------------------------------------------
// --input

TEST_F(ConfigInput, InputArrayNested100kLevelsDeep) {
  write("deep.json", repeat("[", 100'000) + repeat("]", 100'000));
  expect_refused(run_with_input("@deep.json"),
                 {"deep.json:1:201: input[0][0]", "nested deeper than 200 levels"});
}

TEST_F(ConfigInput, InputObjectNested100kLevelsDeepAcrossLines) {
  write("deep.json", "{\n" + repeat("\"a\":{", 100'000) + repeat("}", 100'001));
  expect_refused(run_with_input("@deep.json"),
                 {"deep.json:2:", "input.a.a.a", "nested deeper than 200 levels"});
}

TEST_F(ConfigInput, InputNested201LevelsIsRefusedWhile200StillRun) {
  // The limit is the runtime's own (lua::kMaxJsonDepth): one level more is refused, and what
  // the check lets through the runtime turns into tables the workflow can walk to the bottom.
  write("deep.lua",
        "local troupe = require(\"troupe\")\n"
        "return troupe.workflow{ name = \"deep\", run = function(input)\n"
        "  local n = 0\n"
        "  while type(input) == 'table' do n = n + 1; input = input[1] end\n"
        "  return n\nend }\n");
  write("over.json", repeat("[", 201) + "7" + repeat("]", 201));
  expect_refused(troupe({"run", "deep.lua", "--store", "runs.db", "--input", "@over.json"}),
                 {"over.json:1:201:", "nested deeper than 200 levels"});
  write("deep.json", repeat("[", 200) + "7" + repeat("]", 200));
  ProcessResult r = troupe({"run", "deep.lua", "--store", "runs.db", "--input", "@deep.json"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "200\n") << r.describe();
}

TEST_F(ConfigInput, InputNumber1e999999) {
  expect_refused(run_with_input(R"({"ratio": 1e999999})"),
                 {"--input:1:", "input.ratio", "number overflow parsing '1e999999'"});
}

TEST_F(ConfigInput, InputNumber1e999999InAFileNamesItsLine) {
  write("n.json", "{\n  \"items\": [\n    1,\n    -1e999999\n  ]\n}\n");
  expect_refused(run_with_input("@n.json"), {"n.json:4:", "input.items[1]", "number overflow"});
}

TEST_F(ConfigInput, InputOf50MB) {
  write("big.json", "{\"text\": \"" + std::string(50u << 20, 'x') + "\"}");
  expect_refused(run_with_input("@big.json"), {"big.json", "at most 16 MiB"});
}

TEST_F(ConfigInput, InputWithADuplicateKey) {
  write("dup.json", "{\n  \"who\": \"ada\",\n  \"who\": \"bob\"\n}\n");
  expect_refused(run_with_input("@dup.json"), {"dup.json:3:", "input.who", "duplicate key 'who'"});
}

TEST_F(ConfigInput, InputFromAnEndlessDevice) {
  expect_refused(run_with_input("@/dev/zero"), {"/dev/zero", "at most 16 MiB"});
}

TEST_F(ConfigInput, InputThatIsNotJson) {
  expect_refused(run_with_input("{\"who\": NaN}"),
                 {"--input is not valid JSON at line 1, column ", "input.who: syntax error"});
}

// ---------------------------------------------------------------------------------------
// YAML aliases and nesting

TEST_F(ConfigInput, YamlRecursiveAlias) {
  write("loop.yaml",
        "providers:\n"
        "  mock:\n"
        "    plugin: mock\n"
        "    settings: &loop\n"
        "      again: *loop\n");
  expect_refused(run_with_config("loop.yaml"),
                 {"loop.yaml:5:", "providers.mock.settings.again", "recursive alias"});
}

TEST_F(ConfigInput, YamlRecursiveAliasInAFlowList) {
  write("loop.yaml", "plugin_path: &p [a, *p]\n");
  expect_refused(run_with_config("loop.yaml"),
                 {"loop.yaml:1:", "plugin_path[1]", "recursive alias"});
}

TEST_F(ConfigInput, YamlBillionLaughs) {
  // Ten levels of nine aliases each: 9^10 strings once expanded.
  std::string yaml =
      "providers:\n  mock:\n    plugin: mock\n    settings:\n"
      "      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 10; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    yaml += "      l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + prev;
    for (int k = 1; k < 9; ++k)
      yaml += ", " + prev;
    yaml += "]\n";
  }
  write("laughs.yaml", yaml);
  expect_refused(run_with_config("laughs.yaml"),
                 {"laughs.yaml:", "providers.mock.settings.l", "more than 100000 values"});
}

TEST_F(ConfigInput, YamlNested100kLevelsDeep) {
  write("deep.yaml", "store: " + repeat("[", 100'000) + repeat("]", 100'000) + "\n");
  expect_refused(run_with_config("deep.yaml"),
                 {"deep.yaml:1:", "store[0][0]", "nested deeper than 64 levels"});
}

// ---------------------------------------------------------------------------------------
// Numbers: refused past a named limit, never wrapped

TEST_F(ConfigInput, MaxMemoryMbOf2To44WouldWrapToZero) {
  // 2^44 MB is 2^64 bytes: shifted into a uint64_t it used to become 0.
  write("mem.yaml", "store: runs.db\nlimits:\n  max_memory_mb: 17592186044416\n");
  expect_refused(run_with_config("mem.yaml"),
                 {"mem.yaml:3:", "limits.max_memory_mb", "above the limit of 1048576"});
}

TEST_F(ConfigInput, CallTimeoutOf4294968SecondsWouldWrap) {
  // 4294968 s is more milliseconds than 32 bits hold: it used to wrap to 32 ms.
  write("timeout.yaml", "limits:\n  call_timeout_s: 4294968\n");
  expect_refused(run_with_config("timeout.yaml"),
                 {"timeout.yaml:2:", "limits.call_timeout_s", "above the limit of 4294967"});
}

TEST_F(ConfigInput, IntegerBeyond64Bits) {
  write("big.yaml", "limits:\n  max_instructions: 99999999999999999999\n");
  expect_refused(run_with_config("big.yaml"),
                 {"big.yaml:2:", "limits.max_instructions", "out of range"});
}

TEST_F(ConfigInput, UnsignedIntegerAbove2To63InJson) {
  write("big.json", "{\n  \"limits\": {\n    \"max_memory_mb\": 18446744073709551615\n  }\n}\n");
  expect_refused(run_with_config("big.json"),
                 {"big.json:3:", "limits.max_memory_mb", "above the limit of 1048576"});
}

TEST_F(ConfigInput, YamlFloat1e999999) {
  write("f.yaml", "providers:\n  mock:\n    plugin: mock\n    settings:\n      ratio: 1e999999\n");
  expect_refused(run_with_config("f.yaml"),
                 {"f.yaml:5:", "providers.mock.settings.ratio", "1e999999 is too large"});
}

// ---------------------------------------------------------------------------------------
// Keys

TEST_F(ConfigInput, DuplicateKeyInYaml) {
  write("dup.yaml", "store: a.db\ndurability: sync\nstore: b.db\n");
  expect_refused(run_with_config("dup.yaml"),
                 {"dup.yaml:3:1: store: duplicate key 'store' (first at line 1)"});
}

TEST_F(ConfigInput, DuplicateKeyInJson) {
  write("dup.json",
        "{\n  \"limits\": {\n    \"max_memory_mb\": 64,\n    \"max_memory_mb\": 0\n  }\n}\n");
  expect_refused(run_with_config("dup.json"),
                 {"dup.json:4:", "limits.max_memory_mb", "duplicate key", "(first at line 3)"});
}

TEST_F(ConfigInput, UnknownKeyInYaml) {
  write("typo.yaml", "store: runs.db\nlimits:\n  max_instructionz: 5\n");
  expect_refused(run_with_config("typo.yaml"),
                 {"typo.yaml:3:3: limits.max_instructionz: unknown setting"});
}

TEST_F(ConfigInput, UnknownKeyInJson) {
  write("typo.json", "{\n  \"store\": \"runs.db\",\n  \"limitz\": {}\n}\n");
  expect_refused(run_with_config("typo.json"), {"typo.json:3:", "limitz", "unknown setting"});
}

// ---------------------------------------------------------------------------------------
// The file itself

TEST_F(ConfigInput, ValueOfTheWrongType) {
  write("types.yaml", "store: runs.db\nlimits:\n  max_memory_mb: lots\n");
  expect_refused(
      run_with_config("types.yaml"),
      {"types.yaml:3:3: limits.max_memory_mb: expected a positive integer, got a string"});
}

TEST_F(ConfigInput, RootThatIsNotAMapping) {
  write("list.yaml", "- store\n- runs.db\n");
  expect_refused(run_with_config("list.yaml"), {"list.yaml:1:1:", "expected a mapping"});
}

TEST_F(ConfigInput, EmptyFile) {
  write("empty.yaml", "");
  expect_refused(run_with_config("empty.yaml"), {"empty.yaml:1:1:", "empty", "{}"});
}

TEST_F(ConfigInput, BinaryGarbage) {
  std::string bytes;
  uint32_t x = 12345;  // a fixed xorshift sequence: the same garbage every run
  for (int i = 0; i < 4096; ++i) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    bytes += static_cast<char>(x & 0xff);
  }
  write("garbage.yaml", bytes);
  write("garbage.json", bytes);
  expect_refused(run_with_config("garbage.yaml"), {"garbage.yaml:"});
  expect_refused(run_with_config("garbage.json"), {"garbage.json:1:"});
}

TEST_F(ConfigInput, MoreThanOneYamlDocument) {
  write("two.yaml", "store: a.db\n---\nstore: b.db\n");
  expect_refused(run_with_config("two.yaml"), {"two.yaml", "more than one YAML document"});
}

TEST_F(ConfigInput, UnsupportedYamlTag) {
  write("tag.yaml", "store: !include other.yaml\n");
  expect_refused(run_with_config("tag.yaml"), {"tag.yaml:1:", "store", "not supported"});
}

TEST_F(ConfigInput, ConfigLargerThan1MiB) {
  write("huge.yaml", "store: runs.db\n" + repeat("# padding\n", 120'000));
  expect_refused(run_with_config("huge.yaml"), {"huge.yaml", "at most 1 MiB"});
}

TEST_F(ConfigInput, ConfigThatIsAFifo) {
  ASSERT_EQ(::mkfifo((dir_ / "cfg.yaml").c_str(), 0600), 0);
  expect_refused(run_with_config("cfg.yaml"), {"cfg.yaml", "is a fifo"});
}

TEST_F(ConfigInput, ConfigThatIsAnEndlessDevice) {
  expect_refused(run_with_config("/dev/zero"), {"/dev/zero", "is a character device"});
}

// ---------------------------------------------------------------------------------------
// A store written by another program

TEST_F(ConfigInput, StoredValuesNested100kLevelsDeepAreShownAsText) {
  ProcessResult ran = troupe({"run", "hello.lua", "--store", "runs.db", "--json"});
  ASSERT_EQ(ran.exit_code, 0) << ran.describe();
  // Another program (an older troupe, an embedder) wrote rows nested 100,000 levels deep.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "runs.db").c_str(), &db), SQLITE_OK);
  std::string deep = repeat("[", 100'000) + repeat("]", 100'000);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE runs SET input = ?1, output = ?1", -1, &st, nullptr),
            SQLITE_OK);
  sqlite3_bind_text(st, 1, deep.c_str(), static_cast<int>(deep.size()), SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);
  for (std::vector<std::string> args : {std::vector<std::string>{"runs", "--json"},
                                        std::vector<std::string>{"show", "0", "--json"}}) {
    args.push_back("--store");
    args.push_back("runs.db");
    if (args[0] == "show") args[1] = ran.out.substr(ran.out.find("\"run_id\": \"") + 11, 8);
    ProcessResult r = troupe(args);
    EXPECT_EQ(r.term_signal, 0) << r.describe().substr(0, 2000);
    EXPECT_EQ(r.exit_code, 0) << r.describe().substr(0, 2000);
    EXPECT_TRUE(contains(r.out, "\"[[[[")) << args[0] << ": the row is shown as text";
  }
}

// ---------------------------------------------------------------------------------------
// The workflow file

TEST_F(ConfigInput, WorkflowThatIsAFifo) {
  ASSERT_EQ(::mkfifo((dir_ / "flow.lua").c_str(), 0600), 0);
  expect_refused(troupe({"run", "flow.lua", "--store", "runs.db"}), {"flow.lua", "is a fifo"});
}

TEST_F(ConfigInput, WorkflowThatIsAnEndlessDevice) {
  expect_refused(troupe({"run", "/dev/zero", "--store", "runs.db"}),
                 {"/dev/zero", "is a character device"});
}

}  // namespace
}  // namespace troupe::test
