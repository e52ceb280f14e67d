// http_policy_test.cpp: class 8 — attacks through troupe.http and through the URLs plugins build.
//
// A workflow tries to reach the cloud metadata service and link-local addresses (by address,
// by name, by other spellings of the address), to get past the configured policy through a
// redirect hop, a name that resolves to a denied address or a pooled connection, to have a
// redirect carry its credentials to another origin or down to plain http, and to steer a
// provider plugin's URL with a hostile model name. Real host, real loopback servers
// (tests/support/http_test_server.h); nothing leaves loopback.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "api/host.h"
#include "config/config.h"
#include "integration/plugin_test_util.h"
#include "loop/http_policy.h"
#include "loop/http_redirect.h"
#include "store/store.h"
#include "support/http_test_server.h"
#include "support/test_dir.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::HttpTestServer;
using test::Script;
using test::TestRequest;

// -- the policy and the redirect rules, without a network ------------------------------------

sockaddr_in v4(const char* ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

sockaddr_in6 v6(const char* ip, int port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return a;
}

std::string check(const HttpPolicy& p, const sockaddr_in& a) {
  return p.check_address(reinterpret_cast<const sockaddr*>(&a), false);
}
std::string check(const HttpPolicy& p, const sockaddr_in6& a) {
  return p.check_address(reinterpret_cast<const sockaddr*>(&a), false);
}

TEST(HttpPolicyRules, MetadataAndLinkLocalAddressesAreDeniedByDefaultInEverySpelling) {
  HttpPolicy p;
  EXPECT_EQ(check(p, v4("169.254.169.254", 80)),
            "destination 169.254.169.254:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(check(p, v4("169.254.10.1", 443)),
            "destination 169.254.10.1:443 denied by http.deny (built in: link-local)");
  EXPECT_EQ(check(p, v4("100.100.100.200", 80)),
            "destination 100.100.100.200:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(check(p, v6("fd00:ec2::254", 80)),
            "destination [fd00:ec2::254]:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(check(p, v6("fe80::1", 80)),
            "destination [fe80::1]:80 denied by http.deny (built in: link-local)");
  // An IPv4-mapped IPv6 address reaches the IPv4 address: it is matched as one.
  EXPECT_EQ(check(p, v6("::ffff:169.254.169.254", 80)),
            "destination 169.254.169.254:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(p.check_address_text("169.254.169.254", 80, false),
            "destination 169.254.169.254:80 denied by http.deny (built in: cloud metadata)");
  for (const char* name :
       {"metadata.google.internal", "METADATA.Google.Internal", "metadata.google.internal."}) {
    EXPECT_EQ(p.check_name(name, 80).refusal,
              "destination metadata.google.internal:80 denied by http.deny (built in: cloud "
              "metadata)")
        << name;
  }
  // Loopback and the rest stay allowed: local servers (ollama) and the tests use them.
  EXPECT_EQ(check(p, v4("127.0.0.1", 11434)), "");
  EXPECT_EQ(check(p, v6("::1", 80)), "");
  EXPECT_EQ(check(p, v4("93.184.216.34", 443)), "");
  EXPECT_EQ(p.check_name("example.com", 443).refusal, "");
}

TEST(HttpPolicyRules, ConfiguredEntriesMatchNamesWildcardsCidrsAndPorts) {
  HttpPolicy p;
  for (const char* e : {"10.0.0.0/8", "*.corp.example", "127.0.0.1:8080", "[::1]:8080", "fd00::/8"})
    p.deny.push_back(parse_destination_rule(e));
  EXPECT_EQ(check(p, v4("10.20.30.40", 80)),
            "destination 10.20.30.40:80 denied by http.deny entry '10.0.0.0/8'");
  EXPECT_EQ(check(p, v4("11.0.0.1", 80)), "");
  EXPECT_NE(p.check_name("git.corp.example", 443).refusal, "");
  EXPECT_EQ(p.check_name("corp.example", 443).refusal, "");  // the wildcard names what is under it
  EXPECT_NE(check(p, v4("127.0.0.1", 8080)), "");
  EXPECT_EQ(check(p, v4("127.0.0.1", 8081)), "");
  EXPECT_NE(check(p, v6("::1", 8080)), "");
  EXPECT_NE(check(p, v6("fd12::1", 80)), "");

  HttpPolicy only;
  only.allow.push_back(parse_destination_rule("api.example.com"));
  only.allow.push_back(parse_destination_rule("192.168.1.0/24"));
  EXPECT_EQ(check(only, v4("192.168.1.7", 80)), "");
  EXPECT_EQ(check(only, v4("192.168.2.7", 80)), "destination 192.168.2.7:80 is not in http.allow");
  NameVerdict named = only.check_name("API.example.com", 443);
  EXPECT_TRUE(named.host_allowed);
  auto public_address = v4("93.184.216.34", 443);
  EXPECT_EQ(only.check_address(reinterpret_cast<const sockaddr*>(&public_address), true), "");
  // An allowed name still cannot lead to a denied address.
  auto metadata = v4("169.254.169.254", 80);
  EXPECT_NE(only.check_address(reinterpret_cast<const sockaddr*>(&metadata), true), "");
}

TEST(HttpPolicyRules, MalformedEntriesAreRefusedWithTheReason) {
  for (const char* bad : {"", "10.0.0.0/33", "10.0.0.0/", "host:0", "host:99999", "[::1", "::1]",
                          "a b", "*.", "not/an/address", "1.2.3.4:port"}) {
    EXPECT_THROW(parse_destination_rule(bad), std::invalid_argument) << bad;
  }
}

TEST(HttpPolicyConfig, TheHttpSectionIsReadAndItsMistakesAreNamed) {
  fs::path dir = test::fresh_test_dir("httpcfg");
  auto load = [&](const std::string& text) {
    std::ofstream(dir / "troupe.yaml") << text;
    return load_config((dir / "troupe.yaml").string());
  };
  Config c = load("http:\n  allow: [api.example.com, '10.1.0.0/16']\n  deny: ['[::1]:9000']\n");
  ASSERT_EQ(c.runtime.http_policy->allow.size(), 2u);
  EXPECT_EQ(c.runtime.http_policy->allow[1].text, "10.1.0.0/16");
  ASSERT_EQ(c.runtime.http_policy->deny.size(), 1u);
  EXPECT_EQ(c.runtime.http_policy->deny[0].port, 9000);
  try {
    load("http:\n  deny: [10.0.0.0/40]\n");
    ADD_FAILURE() << "a bad CIDR was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("http.deny[0]: '10.0.0.0/40'"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load("http:\n  alow: [x]\n"), ConfigError);
  EXPECT_THROW(load("http:\n  deny: 10.0.0.0/8\n"), ConfigError);
  fs::remove_all(dir);
}

TEST(HttpRedirectRules, AnotherOriginKeepsOnlyHeadersThatCarryNoCredentials) {
  Headers sent = {{"Authorization", "Bearer a"},
                  {"Cookie", "s=1"},
                  {"Proxy-Authorization", "Basic b"},
                  {"X-Api-Key", "k"},
                  {"PRIVATE-TOKEN", "t"},
                  {"Accept", "application/json"},
                  {"Content-Type", "text/plain"},
                  {"User-Agent", "wf"}};
  Headers same = sent;
  EXPECT_EQ(prepare_redirect("http://a.example/x", "http://A.example:80/y", same), "");
  EXPECT_EQ(same, sent);
  for (const char* other : {"http://b.example/y", "http://a.example:8080/y", "https://a.example/y",
                            "http://a.example.evil/y"}) {
    Headers h = sent;
    EXPECT_EQ(prepare_redirect("http://a.example/x", other, h), "") << other;
    EXPECT_EQ(h, (Headers{{"Accept", "application/json"},
                          {"Content-Type", "text/plain"},
                          {"User-Agent", "wf"}}))
        << other;
  }
}

TEST(HttpRedirectRules, AnHttpsExchangeIsNeverDowngradedToHttp) {
  Headers h = {{"Authorization", "Bearer a"}};
  EXPECT_EQ(prepare_redirect("https://a.example/x", "http://a.example/y", h),
            "refused a redirect from https to http: the exchange would continue unencrypted");
  EXPECT_EQ(h.size(), 1u);  // refused, not stripped and followed
}

// -- troupe.http in a real host against loopback servers -------------------------------------

class HttpPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::fresh_test_dir("httppolicy"); }
  void TearDown() override {
    host_.reset();
    fs::remove_all(dir_);
  }

  // A host whose policy has these deny / allow entries.
  void start_host(const std::vector<std::string>& deny,
                  const std::vector<std::string>& allow = {}) {
    Config c = default_config();
    c.store_path = (dir_ / "troupe.db").string();
    auto policy = std::make_shared<HttpPolicy>();
    for (const auto& e : deny)
      policy->deny.push_back(parse_destination_rule(e));
    for (const auto& e : allow)
      policy->allow.push_back(parse_destination_rule(e));
    c.runtime.http_policy = policy;
    host_ = std::make_unique<Host>(c);
  }

  RunOutcome run_body(const std::string& body) {
    RunSpec spec;
    spec.source_path = (dir_ / "wf.lua").string();
    std::ofstream(spec.source_path)
        << "local troupe = require('troupe')\n"
           "return troupe.workflow{ name = 'http', run = function(input)\n"
        << body << "\nend }\n";
    return host_->run_to_completion(spec);
  }

  // Runs a GET of `url` under pcall; the output is {ok, status, message}.
  json caught_get(const std::string& url) {
    RunOutcome o = run_body("local ok, err = pcall(troupe.http.get, '" + url +
                            "', { timeout = 20 })\n"
                            "if ok then return { ok = true, status = err.status } end\n"
                            "return { ok = false, status = err.status, message = err.message }");
    EXPECT_EQ(o.status, "succeeded") << o.error;
    last_run_ = o.run_id;
    return json::parse(o.output_json);
  }

  std::vector<StepRecord> steps(const std::string& run_id) {
    host_->store()->flush();
    return host_->store()->get_steps(run_id);
  }

  static Script redirect_to(const std::string& location) {
    Script s = Script::text(302, "");
    s.headers.push_back({"Location", location});
    return s;
  }

  fs::path dir_;
  std::unique_ptr<Host> host_;
  std::string last_run_;
};

TEST_F(HttpPolicyTest, CloudMetadataIsRefusedBeforeAnyConnectionAndTheRefusalIsAFailedStep) {
  start_host({});
  json r = caught_get("http://169.254.169.254/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["status"], "invalid_argument");
  // Refused at the socket, not by a failed or timed-out connection attempt.
  EXPECT_EQ(r["message"],
            "destination 169.254.169.254:80 denied by http.deny (built in: cloud metadata)");
  auto st = steps(last_run_);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].kind, "http");
  EXPECT_EQ(st[0].status, "failed");
  EXPECT_NE(st[0].error.find("denied by http.deny"), std::string::npos) << st[0].error;

  // Uncaught, it fails the run with what was refused and why.
  RunOutcome o = run_body("troupe.http.get('http://169.254.169.254/latest/meta-data/')");
  EXPECT_EQ(o.status, "failed");
  EXPECT_NE(o.error.find("troupe.http GET http://169.254.169.254/latest/meta-data/ (step 1): "
                         "invalid_argument: destination 169.254.169.254:80 denied by http.deny "
                         "(built in: cloud metadata)"),
            std::string::npos)
      << o.error;
}

TEST_F(HttpPolicyTest, OtherSpellingsOfTheMetadataServiceAreRefusedToo) {
  start_host({});
  // By name (refused before any DNS lookup), as an IPv4-mapped IPv6 literal, as the
  // inet_aton forms a resolver accepts, and AWS's IPv6 address.
  EXPECT_EQ(
      caught_get("http://metadata.google.internal/computeMetadata/v1/")["message"],
      "destination metadata.google.internal:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(caught_get("http://[::ffff:169.254.169.254]/latest/")["message"],
            "destination 169.254.169.254:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(caught_get("http://169.254.43518/latest/")["message"],
            "destination 169.254.169.254:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(caught_get("http://0xa9fea9fe/latest/")["message"],
            "destination 169.254.169.254:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(caught_get("http://[fd00:ec2::254]/latest/")["message"],
            "destination [fd00:ec2::254]:80 denied by http.deny (built in: cloud metadata)");
  EXPECT_EQ(caught_get("http://169.254.1.1:8080/")["message"],
            "destination 169.254.1.1:8080 denied by http.deny (built in: link-local)");
}

TEST_F(HttpPolicyTest, ADeniedLoopbackPortGetsNoConnection) {
  HttpTestServer server;
  server.route("/", [](const TestRequest&) { return Script::text(200, "secret page"); });
  start_host({"127.0.0.1:" + std::to_string(server.port())});
  json r = caught_get(server.url("/"));
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["message"],
            "destination 127.0.0.1:" + std::to_string(server.port()) +
                " denied by http.deny entry '127.0.0.1:" + std::to_string(server.port()) + "'");
  EXPECT_EQ(server.connection_count(), 0u);
}

TEST_F(HttpPolicyTest, ANameThatResolvesToADeniedAddressIsRefused) {
  // "localhost" is not denied by name; the address it resolves to is. The same holds for a
  // name an attacker rebinds: the check is on the address connected to, not on the name.
  HttpTestServer server;
  server.route("/", [](const TestRequest&) { return Script::text(200, "secret page"); });
  start_host({"127.0.0.0/8"});
  json r = caught_get("http://localhost:" + std::to_string(server.port()) + "/");
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["message"], "destination 127.0.0.1:" + std::to_string(server.port()) +
                              " denied by http.deny entry '127.0.0.0/8'");
  EXPECT_EQ(server.connection_count(), 0u);
}

TEST_F(HttpPolicyTest, ARedirectHopToADeniedDestinationIsRefused) {
  HttpTestServer allowed;
  HttpTestServer internal;
  internal.route("/admin", [](const TestRequest&) { return Script::text(200, "internal"); });
  allowed.route("/go", [&](const TestRequest&) { return redirect_to(internal.url("/admin")); });
  start_host({"127.0.0.1:" + std::to_string(internal.port())});
  json r = caught_get(allowed.url("/go"));
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["message"],
            "destination 127.0.0.1:" + std::to_string(internal.port()) +
                " denied by http.deny entry '127.0.0.1:" + std::to_string(internal.port()) + "'");
  EXPECT_EQ(allowed.request_count(), 1u);
  EXPECT_EQ(internal.connection_count(), 0u);

  // The same hop by a name that resolves to the denied address, and by a denied name.
  allowed.route("/go-by-name", [&](const TestRequest&) {
    return redirect_to("http://localhost:" + std::to_string(internal.port()) + "/admin");
  });
  EXPECT_EQ(caught_get(allowed.url("/go-by-name"))["message"],
            "destination 127.0.0.1:" + std::to_string(internal.port()) +
                " denied by http.deny entry '127.0.0.1:" + std::to_string(internal.port()) + "'");
  EXPECT_EQ(internal.connection_count(), 0u);
  allowed.route("/go-meta", [](const TestRequest&) {
    return redirect_to("http://metadata.google.internal/computeMetadata/v1/");
  });
  EXPECT_EQ(
      caught_get(allowed.url("/go-meta"))["message"],
      "destination metadata.google.internal:80 denied by http.deny (built in: cloud metadata)");
}

TEST_F(HttpPolicyTest, AnAllowListRefusesEveryOtherDestinationIncludingRedirectHops) {
  HttpTestServer listed;
  HttpTestServer other;
  other.route("/x", [](const TestRequest&) { return Script::text(200, "other"); });
  listed.route("/ok", [](const TestRequest&) { return Script::text(200, "listed"); });
  listed.route("/away", [&](const TestRequest&) { return redirect_to(other.url("/x")); });
  start_host({}, {"127.0.0.1:" + std::to_string(listed.port())});
  EXPECT_EQ(caught_get(listed.url("/ok")), (json{{"ok", true}, {"status", 200}}));
  json r = caught_get(listed.url("/away"));
  EXPECT_EQ(r["message"],
            "destination 127.0.0.1:" + std::to_string(other.port()) + " is not in http.allow");
  EXPECT_EQ(other.connection_count(), 0u);
}

TEST_F(HttpPolicyTest, APooledConnectionOfAPluginCannotCarryADeniedWorkflowRequest) {
  // The openai plugin (trusted, configured by the operator: not subject to the policy) keeps
  // a connection to localhost alive; the workflow's request to the same host and port passes
  // the name check ("localhost" is not denied) and would reuse that connection without opening
  // a socket. The check on the connection itself refuses it.
  HttpTestServer server;
  server.route("/v1/chat/completions", [](const TestRequest&) {
    return Script::text(
        200,
        R"({"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,)"
        R"("message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],)"
        R"("usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})",
        "application/json");
  });
  server.route("/internal", [](const TestRequest&) { return Script::text(200, "internal"); });
  Config c = default_config();
  c.store_path = (dir_ / "troupe.db").string();
  c.plugin_path = {test::plugins_dir()};
  ProviderConfig openai;
  openai.name = "local";
  openai.plugin = "openai";
  std::string origin = "http://localhost:" + std::to_string(server.port());
  openai.settings_json = json{{"base_url", origin + "/v1"}}.dump();
  c.providers["local"] = openai;
  auto policy = std::make_shared<HttpPolicy>();
  policy->deny.push_back(parse_destination_rule("127.0.0.1:" + std::to_string(server.port())));
  c.runtime.http_policy = policy;
  host_ = std::make_unique<Host>(c);
  RunOutcome o = run_body(
      "local a = troupe.agent{ name = 'a', model = 'local/m' }\n"
      "local answer = a:ask('hello')\n"
      "local ok, err = pcall(troupe.http.get, '" +
      origin + "/internal" +
      "')\n"
      "return { answer = answer, ok = ok, message = not ok and err.message or nil }");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  json out = json::parse(o.output_json);
  EXPECT_EQ(out["answer"], "hi");
  EXPECT_EQ(out["ok"], false);
  EXPECT_EQ(out["message"],
            "destination 127.0.0.1:" + std::to_string(server.port()) +
                " denied by http.deny entry '127.0.0.1:" + std::to_string(server.port()) + "'");
  ASSERT_EQ(server.request_count(), 1u);
  EXPECT_EQ(server.requests()[0].path, "/v1/chat/completions");
}

TEST_F(HttpPolicyTest, ARedirectToAnotherOriginCannotStealCredentialHeaders) {
  HttpTestServer first;
  HttpTestServer attacker;  // another port: another origin
  attacker.route("/collect", [](const TestRequest&) { return Script::text(200, "thanks"); });
  first.route("/start", [&](const TestRequest&) { return redirect_to(attacker.url("/collect")); });
  first.route("/same", [](const TestRequest&) { return redirect_to("/landing"); });
  first.route("/landing", [](const TestRequest&) { return Script::text(200, "home"); });
  first.route("/to-localhost", [&](const TestRequest&) {
    return redirect_to("http://localhost:" + std::to_string(first.port()) + "/landing");
  });
  start_host({});
  std::string headers =
      "{ headers = { Authorization = 'Bearer tok-1', Cookie = 'session=tok-2', "
      "['Proxy-Authorization'] = 'Basic tok-3', ['X-Api-Key'] = 'tok-4', "
      "Accept = 'application/json' } }";
  RunOutcome o = run_body("local a = troupe.http.get('" + first.url("/start") + "', " + headers +
                          ")\n"
                          "local b = troupe.http.get('" +
                          first.url("/same") + "', " + headers +
                          ")\n"
                          "local c = troupe.http.get('" +
                          first.url("/to-localhost") + "', " + headers +
                          ")\n"
                          "return { a.body, b.body, c.body }");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  EXPECT_EQ(json::parse(o.output_json), (json{"thanks", "home", "home"}));

  ASSERT_EQ(attacker.request_count(), 1u);
  TestRequest stolen = attacker.requests()[0];
  for (const char* name : {"authorization", "cookie", "proxy-authorization", "x-api-key"})
    EXPECT_FALSE(stolen.has_header(name)) << name << " reached another origin";
  EXPECT_EQ(stolen.header("accept"), "application/json");

  // /start, /same, /landing (same origin: everything kept), /to-localhost, /landing via
  // "localhost" (another host name for the same server is another origin: stripped).
  auto seen = first.requests();
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[2].path, "/landing");
  EXPECT_EQ(seen[2].header("authorization"), "Bearer tok-1");
  EXPECT_EQ(seen[2].header("x-api-key"), "tok-4");
  EXPECT_EQ(seen[4].path, "/landing");
  EXPECT_FALSE(seen[4].has_header("authorization"));
  EXPECT_FALSE(seen[4].has_header("cookie"));
  EXPECT_FALSE(seen[4].has_header("x-api-key"));
  EXPECT_EQ(seen[4].header("accept"), "application/json");
}

// -- provider plugins: a hostile model name stays inside its URL component --------------------

TEST_F(HttpPolicyTest, AHostileModelNameCannotChangeAProvidersUrl) {
  HttpTestServer server;
  server.route_prefix("/", [](const TestRequest&) { return Script::text(400, "{}"); });
  ::setenv("TROUPE_HTTP_POLICY_TEST_KEY", "test-key-1", 1);
  Config c = default_config();
  c.store_path = (dir_ / "troupe.db").string();
  c.plugin_path = {test::plugins_dir()};
  for (const char* vendor : {"openai", "anthropic", "gemini", "ollama"}) {
    ProviderConfig p;
    p.name = vendor;
    p.plugin = vendor;
    p.settings_json = json{{"base_url", server.url("/base")}}.dump();
    p.secret_env["api_key"] = "TROUPE_HTTP_POLICY_TEST_KEY";
    c.providers[vendor] = p;
  }
  host_ = std::make_unique<Host>(c);
  RunOutcome o = run_body(
      "for _, v in ipairs({ 'openai', 'anthropic', 'gemini', 'ollama' }) do\n"
      "  local a = troupe.agent{ name = v, model = v .. '/../../x?y#z' }\n"
      "  pcall(a.ask, a, 'hello')\n"
      "end");
  ASSERT_EQ(o.status, "succeeded") << o.error;
  std::vector<std::string> targets;
  for (const auto& r : server.requests())
    targets.push_back(r.target);
  EXPECT_EQ(targets, (std::vector<std::string>{
                         "/base/chat/completions",
                         "/base/v1/messages",
                         "/base/v1beta/models/..%2F..%2Fx%3Fy%23z:generateContent",
                         "/base/api/chat",
                     }));
}

}  // namespace
}  // namespace troupe
