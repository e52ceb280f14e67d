// http_step_test.cpp: troupe.http in a real host against a loopback server — responses, redirects,
// limits, refused schemes, transport errors, and the step each request records.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/host.h"
#include "loop/event_loop.h"
#include "store/store.h"
#include "support/http_test_server.h"
#include "support/test_dir.h"
#include "support/test_host.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::HttpTestServer;
using test::Script;
using test::TestRequest;

class HttpStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::fresh_test_dir("http");
    Config c = default_config();
    c.store_path = (dir_ / "troupe.db").string();
    host_ = std::make_unique<Host>(c);
  }
  void TearDown() override {
    host_.reset();
    fs::remove_all(dir_);
  }

  // Runs `body` as a workflow's run function; the output is its JSON.
  RunOutcome run_body(const std::string& body) {
    RunSpec spec;
    spec.source_path = (dir_ / "wf.lua").string();
    std::ofstream(spec.source_path) << test::workflow_source(body, "http");
    return host_->run_to_completion(spec);
  }

  std::vector<StepRecord> steps(const std::string& run_id) {
    host_->store()->flush();
    return host_->store()->get_steps(run_id);
  }

  std::string url(const std::string& path) { return server_.url(path); }

  fs::path dir_;
  HttpTestServer server_;
  std::unique_ptr<Host> host_;
};

TEST_F(HttpStepTest, GetReturnsStatusBodyAndLowercasedHeadersAndRecordsAStep) {
  server_.route("/page", [](const TestRequest&) {
    Script s = Script::text(200, "hello", "text/plain");
    s.headers.push_back({"X-Custom-Thing", "42"});
    return s;
  });
  RunOutcome o =
      run_body("local r = troupe.http.get('" + url("/page") +
               "')\n"
               "return { status = r.status, body = r.body, h = r.headers['x-custom-thing'] }");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  EXPECT_EQ(json::parse(o.output_json), (json{{"status", 200}, {"body", "hello"}, {"h", "42"}}));
  auto st = steps(o.run_id);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].kind, "http");
  EXPECT_EQ(st[0].status, "succeeded");
  EXPECT_EQ(json::parse(st[0].request_json)["url"], url("/page"));
  EXPECT_EQ(json::parse(st[0].response_json)["bytes"], 5);
}

TEST_F(HttpStepTest, PostOfATableSendsJsonWithItsContentTypeAndHeadersAreNotJournaled) {
  server_.route("/echo", [](const TestRequest& r) {
    return Script::text(201, r.header("content-type") + " " + r.body);
  });
  RunOutcome o = run_body("local r = troupe.http.post('" + url("/echo") +
                          "', { a = 1 }, { headers = { Authorization = 'Bearer tok-SECRET-1' } })\n"
                          "return r.status .. ' ' .. r.body");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  EXPECT_EQ(json::parse(o.output_json), "201 application/json {\"a\":1}");
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].header("authorization"), "Bearer tok-SECRET-1");
  for (const auto& s : steps(o.run_id)) {
    EXPECT_EQ(s.request_json.find("tok-SECRET-1"), std::string::npos) << s.request_json;
  }
}

TEST_F(HttpStepTest, RedirectsAreFollowedAndAPostBecomesAGetAfter303) {
  server_.route("/old", [this](const TestRequest&) {
    Script s = Script::text(303, "");
    s.headers.push_back({"Location", "/new"});
    return s;
  });
  server_.route("/new", [](const TestRequest& r) { return Script::text(200, r.method); });
  RunOutcome o = run_body("local r = troupe.http.post('" + url("/old") +
                          "', 'x')\n"
                          "return r.body .. ' ' .. r.url");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  EXPECT_EQ(json::parse(o.output_json), "GET " + url("/new"));
  auto st = steps(o.run_id);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(json::parse(st[0].response_json)["redirected_from"], json::array({url("/old")}));
}

TEST_F(HttpStepTest, ARedirectLoopStopsAtTheLimitWithAClearError) {
  server_.route("/loop", [](const TestRequest&) {
    Script s = Script::text(302, "");
    s.headers.push_back({"Location", "/loop"});
    return s;
  });
  RunOutcome o = run_body("troupe.http.get('" + url("/loop") + "', { redirects = 3 })");
  EXPECT_EQ(o.status, "failed");
  EXPECT_NE(o.error.find("more than 3 redirects"), std::string::npos) << o.error;
  EXPECT_EQ(server_.request_count(), 4u);
}

TEST_F(HttpStepTest, AResponseLargerThanMaxBytesFailsAsTooLarge) {
  server_.route("/big",
                [](const TestRequest&) { return Script::text(200, std::string(5000, 'x')); });
  RunOutcome o = run_body("local ok, err = pcall(troupe.http.get, '" + url("/big") +
                          "', { max_bytes = 1000 })\n"
                          "return { ok = ok, status = err.status }");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  EXPECT_EQ(json::parse(o.output_json), (json{{"ok", false}, {"status", "too_large"}}));
}

TEST_F(HttpStepTest, OnlyHttpAndHttpsUrlsAreAccepted) {
  RunOutcome o = run_body("troupe.http.get('file:///etc/passwd')");
  EXPECT_EQ(o.status, "failed");
  EXPECT_NE(o.error.find("is not an http:// or https:// URL"), std::string::npos) << o.error;
}

TEST_F(HttpStepTest, AConnectionResetIsARetryableTransportErrorLiveAndWhenReplayed) {
  server_.route("/reset", [](const TestRequest&) {
    Script s;
    s.never_respond = false;
    s.raw = true;
    s.after = test::After::reset;
    return s;
  });
  RunOutcome o = run_body("local ok, err = pcall(troupe.http.get, '" + url("/reset") +
                          "')\n"
                          "return { ok = ok, status = err.status, retryable = err.retryable }");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  EXPECT_EQ(json::parse(o.output_json),
            (json{{"ok", false}, {"status", "transport"}, {"retryable", true}}));

  // Served from the journal (a replay), the failure reads the same: still retryable.
  ForkSpec replay;
  replay.run_id = o.run_id;
  replay.offline = true;
  RunOutcome replayed;
  std::string error;
  std::string id = host_->runtime().fork(
      replay, [&](const RunOutcome& r) { replayed = r; }, &error);
  ASSERT_FALSE(id.empty()) << error;
  for (int i = 0; i < 200 && replayed.status.empty(); ++i)
    host_->loop().run_once(50);
  ASSERT_EQ(replayed.status, "succeeded") << replayed.error;
  EXPECT_EQ(json::parse(replayed.output_json), json::parse(o.output_json));
}

}  // namespace
}  // namespace troupe
