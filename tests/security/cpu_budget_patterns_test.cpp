// cpu_budget_patterns_test.cpp: class 2 (CPU budget escapes) through JSON Schema's regular
// expressions. A workflow hands troupe.validate a schema and a value it both controls; valijson
// would run the schema's regular expressions with std::regex, which backtracks exponentially and
// recurses once per character. Each test runs a real Host (mock provider from its .so, SQLite
// journal, the event loop) and checks that the run ends with a result or a clear error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/host.h"
#include "support/test_dir.h"
#include "support/test_host.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CpuBudgetPatternsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("cpu_budget_patterns"); }
  void TearDown() override {
    host_.reset();
    fs::remove_all(dir_);
  }

  // Runs `body` as the run function of a workflow on a fresh host.
  RunOutcome run_body(const std::string& body) {
    host_ = std::make_unique<Host>(test::mock_host_config(dir_));
    fs::path script = dir_ / "wf.lua";
    std::ofstream(script) << test::workflow_source(body, "patterns");
    RunSpec spec;
    spec.source_path = script.string();
    spec.input_json = "{}";
    return host_->run_to_completion(spec);
  }

  fs::path dir_;
  std::unique_ptr<Host> host_;
};

// `^(a+)+$` against 40 a's and a b: 2^40 ways to split the a's for a backtracking engine (hours);
// RE2 answers in one pass. The same expression as a patternProperties key, against a hostile
// property name, and patternProperties still selecting their schemas (with additionalProperties).
TEST_F(CpuBudgetPatternsTest, NestedQuantifierPatternInValidateCompletes) {
  RunOutcome out = run_body(R"lua(
    local hostile = string.rep("a", 40) .. "b"
    local ok, errors = troupe.validate({ type = "string", pattern = "^(a+)+$" }, hostile)
    local by_name = { type = "object",
                      properties = { id = { type = "number" } },
                      patternProperties = { ["^(a+)+$"] = { type = "number" },
                                            ["^x-"] = { type = "string" } },
                      additionalProperties = false }
    local ok2, errors2 = troupe.validate(by_name, { [hostile] = 1 })
    local ok3 = troupe.validate(by_name, { id = 1, aaaa = 2, ["x-a"] = "s" })
    local ok4, errors4 = troupe.validate(by_name, { id = 1, aaaa = "two" })
    local ok5, errors5 = troupe.validate(by_name, { id = 1, ["x-a"] = 3 })
    return { ok = ok, errors = errors, ok2 = ok2, errors2 = errors2, ok3 = ok3,
             ok4 = ok4, errors4 = errors4, ok5 = ok5, errors5 = errors5 }
  )lua");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json output = json::parse(out.output_json);
  EXPECT_EQ(output["ok"], false);
  EXPECT_EQ(output["errors"], json::array({"/: Failed to match regex specified by 'pattern' "
                                           "constraint."}));
  EXPECT_EQ(output["ok2"], false);  // the hostile name matches no pattern: not allowed
  EXPECT_NE(output["errors2"][0].get<std::string>().find("could not be validated"),
            std::string::npos)
      << output.dump();
  EXPECT_EQ(output["ok3"], true);
  EXPECT_EQ(output["ok4"], false);
  EXPECT_EQ(output["errors4"][0], "/aaaa: Value type not permitted by 'type' constraint.")
      << output.dump();
  EXPECT_EQ(output["ok5"], false);
  EXPECT_EQ(output["errors5"][0], "/x-a: Value type not permitted by 'type' constraint.")
      << output.dump();
}

// std::regex recurses once per character of `[0-9]+`: a 1 MB string overflowed the loop
// thread's stack (the host process died). Through RE2 the run gets its answer.
TEST_F(CpuBudgetPatternsTest, MegabyteStringAgainstFormatAndPatternDoesNotCrash) {
  RunOutcome out = run_body(R"lua(
    local digits = string.rep("1", 1000000)
    local r = {}
    for _, format in ipairs({ "date", "time", "date-time" }) do
      local ok, errors = troupe.validate({ type = "string", format = format }, digits)
      r[format] = { ok = ok, errors = errors }
    end
    r.valid_date = troupe.validate({ format = "date-time" }, digits .. "-01-31T10:20:30.5+02:00")
    r.bad_day = troupe.validate({ format = "date" }, "2026-04-31")
    r.pattern = troupe.validate({ type = "string", pattern = "^[0-9]+$" }, digits)
    return r
  )lua");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json output = json::parse(out.output_json);
  EXPECT_EQ(output["date"]["ok"], false);
  EXPECT_EQ(output["date"]["errors"], json::array({"/: String should be a valid date"}));
  EXPECT_EQ(output["time"]["errors"], json::array({"/: String should be a valid time"}));
  EXPECT_EQ(output["date-time"]["errors"], json::array({"/: String should be a valid date-time"}));
  EXPECT_EQ(output["valid_date"], true);
  EXPECT_EQ(output["bad_day"], false);
  EXPECT_EQ(output["pattern"], true);
}

// A backreference (or lookaround) needs a backtracking engine: the schema is refused when it is
// compiled, with an error that says why, instead of being run by std::regex.
TEST_F(CpuBudgetPatternsTest, BackreferencePatternIsRefusedWithAClearError) {
  RunOutcome out = run_body(R"lua(
    local ok1, e1 = pcall(troupe.validate, { type = "string", pattern = "^(a+)\\1$" }, "aa")
    local ok2, e2 = pcall(troupe.validate,
                          { patternProperties = { ["^(?=x)"] = { type = "string" } } }, {})
    return { ok1 = ok1, e1 = tostring(e1), ok2 = ok2, e2 = tostring(e2) }
  )lua");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json output = json::parse(out.output_json);
  EXPECT_EQ(output["ok1"], false);
  std::string e1 = output["e1"];
  EXPECT_NE(e1.find("troupe.validate: not a valid JSON Schema: /pattern: not supported by the "
                    "linear-time engine (no backreferences or lookaround)"),
            std::string::npos)
      << e1;
  EXPECT_EQ(output["ok2"], false);
  std::string e2 = output["e2"];
  EXPECT_NE(e2.find("/patternProperties/^(?=x): not supported by the linear-time engine"),
            std::string::npos)
      << e2;
}

// valijson matches "$ref" and "id" against a URN grammar with std::regex, one recursion per
// character: a megabyte-long URN reference overflowed the stack while the schema was compiled.
TEST_F(CpuBudgetPatternsTest, MegabyteUrnReferenceInSchemaIsRefused) {
  RunOutcome out = run_body(R"lua(
    local urn = "urn:ab:" .. string.rep("a", 1000000)
    local ok, e = pcall(troupe.validate, { properties = { x = { ["$ref"] = urn } } }, {})
    return { ok = ok, e = tostring(e) }
  )lua");
  ASSERT_EQ(out.status, "succeeded") << out.error;
  json output = json::parse(out.output_json);
  EXPECT_EQ(output["ok"], false);
  EXPECT_NE(output["e"].get<std::string>().find("/properties/x/$ref: longer than 4096 bytes"),
            std::string::npos)
      << output["e"];
}

}  // namespace
}  // namespace troupe
