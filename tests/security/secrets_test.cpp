// secrets_test.cpp: class 5 — secrets at every exit (docs/security.md §5, decision 0013).
//
// First the redactor alone (log.h): every form a key is written in, pieces of a key, a key split
// across the pieces of a stream, a cut made after redacting. Then the whole host through the
// troupe binary: a provider key read from the environment (the config's `secrets: {api_key:
// ENV}`) is planted in a workflow and echoed by the fake vendor every way — streamed text cut
// inside the key, reasoning, a tool call's id, name and arguments in pieces, the request id,
// an error message longer than any cut with the key where a cut falls, a prompt, troupe.log, the
// run's output, a run's error — and no piece of it of kSecretFragment bytes or more, in any
// form, may show on stdout, stderr, in the store's files, in `show`/`events`/`runs` (plain and
// --json), or in what the workflow itself saw.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/log.h"
#include "e2e/process.h"
#include "support/test_paths.h"
#include "support/test_text.h"
#include "support/vendor_server.h"

namespace troupe::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Never a real key. '/', '+', '=', '"' and '\' change under JSON escaping and percent-encoding.
const std::string kKey = R"(sk-proj-T3stK3y/9fQxZr+Lm0p"Wv7\AbCdEfGh=IjKlMnOpQrStUvWx)";
constexpr const char* kKeyEnv = "TROUPE_SECURITY_TEST_OPENAI_KEY";

std::string percent(const std::string& s, const char* hex) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string json_escaped(const std::string& s) {
  std::string quoted = json(s).dump();
  return quoted.substr(1, quoted.size() - 2);
}

std::string slash_escaped(std::string s) {
  for (size_t p = s.find('/'); p != std::string::npos; p = s.find('/', p + 2))
    s.replace(p, 1, "\\/");
  return s;
}

// The forms a key can be written in that the redactor must know.
std::vector<std::string> forms_of(const std::string& key) {
  return {key, json_escaped(key), slash_escaped(json_escaped(key)),
          percent(key, "0123456789ABCDEF"), percent(key, "0123456789abcdef")};
}

// "" when no run of kSecretFragment bytes of any form of key is in text, else what leaked.
std::string leak(const std::string& text, const std::string& key = kKey) {
  for (const std::string& form : forms_of(key)) {
    for (size_t i = 0; i + log::kSecretFragment <= form.size(); ++i) {
      std::string piece = form.substr(i, log::kSecretFragment);
      size_t at = text.find(piece);
      if (at != std::string::npos)
        return "'" + piece + "' at " + std::to_string(at) + " of: " + text.substr(0, 4000);
    }
  }
  return "";
}

// --- the redactor alone -------------------------------------------------------------------

TEST(Secrets, AKeyWrittenInAnyOfItsFormsIsRedacted) {
  const std::string key = R"(tok/A1b2"C3d4\E5f6+G7h8=I9j0-K1l2)";
  log::add_secret(key);
  for (const std::string& form : forms_of(key)) {
    std::string out = log::redact("before " + form + " after");
    EXPECT_EQ(out, "before [REDACTED] after") << form;
  }
  // A JSON dump made after the redaction point cannot hide it either (redacting dumped text).
  std::string dumped = json{{"a", "x " + key}, {"b", json::array({key})}}.dump();
  EXPECT_EQ(leak(log::redact(dumped), key), "");
  EXPECT_EQ(json::parse(log::redact(dumped)),
            json::parse(R"({"a":"x [REDACTED]","b":["[REDACTED]"]})"));
}

TEST(Secrets, APieceOfAKeyLeftByATruncationIsRedacted) {
  log::add_secret(kKey);
  for (size_t len = log::kSecretFragment; len < kKey.size(); ++len) {
    EXPECT_EQ(leak(log::redact("head " + kKey.substr(0, len) + "...")), "") << len;
    EXPECT_EQ(leak(log::redact("..." + kKey.substr(kKey.size() - len))), "") << len;
  }
}

TEST(Secrets, AKeySplitAcrossStreamPiecesAtAnyByteIsRedacted) {
  log::add_secret(kKey);
  const std::string text = "Your key is " + kKey + ", keep it. Ünïcödé stays whole.";
  const std::string run = std::string(1100, 'x');  // no space for more than 1 KiB before the key
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    log::StreamRedactor r;
    std::string out = r.feed(text.substr(0, cut));
    out += r.feed(text.substr(cut));
    out += r.finish();
    EXPECT_EQ(out, "Your key is [REDACTED], keep it. Ünïcödé stays whole.") << cut;
    const std::string glued = run + text.substr(12);
    size_t at = std::min(run.size() + cut, glued.size());
    log::StreamRedactor g;
    out = g.feed(glued.substr(0, at));
    out += g.feed(glued.substr(at));
    out += g.finish();
    EXPECT_EQ(out, run + "[REDACTED], keep it. Ünïcödé stays whole.") << cut;
  }
  log::StreamRedactor bytes;  // one byte per piece: what comes out is whole code points
  std::string out;
  for (char c : text) {
    std::string piece = bytes.feed(std::string(1, c));
    EXPECT_NO_THROW(json(piece).dump()) << "not valid UTF-8: " << piece;
    out += piece;
  }
  out += bytes.finish();
  EXPECT_EQ(out, "Your key is [REDACTED], keep it. Ünïcödé stays whole.");
}

TEST(Secrets, CuttingAfterRedactingLeavesNoPieceOfAKey) {
  log::add_secret(kKey);
  for (size_t at = 0; at < 80; ++at) {
    std::string text = std::string(1000 + at, 'x') + kKey + std::string(500, 'y');
    std::string cut = log::redact_cut(text, 1024);
    EXPECT_LE(cut.size(), 1024u);
    EXPECT_EQ(leak(cut), "") << at;
  }
}

// --- the whole host -------------------------------------------------------------------------

fs::path make_temp_dir(const char* name) {
  std::string pattern = (fs::temp_directory_path() / name).string() + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

// Lua: the key as a long-bracket literal, and a check the workflow makes of what it saw.
std::string lua_prelude() {
  return "local troupe = require('troupe')\nlocal KEY = [==[" + kKey + "]==]\n" +
         "local function pct(s)\n"
         "  return (s:gsub('[^%w%-%._~]', function(c) return string.format('%%%02X', c:byte()) "
         "end))\n"
         "end\n"
         "local function leaks(s)\n"
         "  s = tostring(s or '')\n"
         "  for i = 1, #KEY - " +
         std::to_string(log::kSecretFragment - 1) +
         " do\n"
         "    if s:find(KEY:sub(i, i + " +
         std::to_string(log::kSecretFragment - 1) +
         "), 1, true) then return true end\n"
         "  end\n"
         "  return false\n"
         "end\n";
}

// The vendor answers "stream-me" with the key in every streamed field, cut inside it; "fail-me"
// with an HTTP 400 whose message has the key where the kit used to cut (byte 497) and whose
// request id is the key; a prompt holding the key is echoed back by default.
json scenario() {
  const std::string k = kKey;
  const std::string escaped = json_escaped(k);
  json deltas = json::array({
      {{"content", "Your key: " + k.substr(0, 20)}},
      {{"content", k.substr(20) + " (keep it)"}},
      {{"reasoning_content", "thinking about " + k.substr(0, 15)}},
      {{"reasoning_content", k.substr(15)}},
      {{"tool_calls",
        {{{"index", 0},
          {"id", k.substr(0, 30)},
          {"type", "function"},
          {"function",
           {{"name", k.substr(0, 25)}, {"arguments", "{\"k\": \"" + escaped.substr(0, 9)}}}}}}},
      {{"tool_calls",
        {{{"index", 0},
          {"id", k.substr(30)},
          {"function", {{"name", k.substr(25)}, {"arguments", escaped.substr(9, 20)}}}}}}},
      {{"tool_calls", {{{"index", 0}, {"function", {{"arguments", escaped.substr(29) + "\"}"}}}}}}},
  });
  return {{"rules",
           {{{"match", "stream-me"}, {"openai_deltas", deltas}, {"request_id", "req-" + k}},
            {{"match", "fail-me"},
             {"fault", "http-400"},
             {"request_id", "req-" + k},
             {"error_message", std::string(480, 'x') + " " + k + " " + std::string(2000, 'y')}}}}};
}

class SecretsEverywhere : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(troupe_binary())) << "build the troupe_cli target";
    dir_ = make_temp_dir("troupe-secrets");
    scripts_ = make_temp_dir("troupe-secrets-wf");  // holds the key: not searched
    server_.load_scenario(scenario());
    std::ofstream(dir_ / "troupe.yaml")
        << "store: troupe.db\nproviders:\n  openai:\n    plugin: openai\n"
        << "    settings: {base_url: \"" << server_.base_url(Vendor::openai) << "\"}\n"
        << "    secrets: {api_key: " << kKeyEnv << "}\n";
    std::ofstream(scripts_ / "leaky.lua") << lua_prelude() << R"(
return troupe.workflow{ name = "leaky", run = function(input)
  local a = troupe.agent{ name = "leaky", model = "openai/gpt-4o", history = false }
  local text, reasoning, args, ids, names, response = {}, {}, {}, {}, {}, nil
  for ev in a:stream("stream-me") do
    if ev.type == "text_delta" then text[#text + 1] = ev.text
    elseif ev.type == "reasoning_delta" then reasoning[#reasoning + 1] = ev.text
    elseif ev.type == "tool_call_delta" then
      args[#args + 1] = ev.arguments
      ids[#ids + 1] = ev.id or ""
      names[#names + 1] = ev.name or ""
    elseif ev.type == "usage" then response = ev.response end
  end
  local ok, err = pcall(function() return a:ask("fail-me") end)
  local echoed = a:ask("my key is " .. KEY)
  troupe.log(KEY)
  troupe.log("encoded " .. pct(KEY) .. " json " .. troupe.json.encode({ k = KEY }))
  return {
    saw = { text = leaks(table.concat(text)), reasoning = leaks(table.concat(reasoning)),
            arguments = leaks(table.concat(args)), ids = leaks(table.concat(ids)),
            names = leaks(table.concat(names)), response = leaks(troupe.json.encode(response)),
            error = leaks(err.message) or leaks(err.text), echoed = leaks(echoed) },
    failed = not ok, error = err.text, text = table.concat(text),
    key = KEY, encoded = pct(KEY), nested = { { KEY .. "/" .. KEY } },
  }
end })";
    std::ofstream(scripts_ / "fails.lua") << lua_prelude() << R"(
return troupe.workflow{ name = "fails", run = function(input)
  error("cannot go on with " .. KEY .. " / " .. pct(KEY))
end })";
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scripts_, ec);
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  ProcessResult troupe(std::vector<std::string> args) {
    args.insert(args.begin(), troupe_binary());
    ProcessOptions o;
    o.args = std::move(args);
    o.cwd = dir_.string();
    o.unset_env = {"TROUPE_PLUGIN_PATH", "NO_COLOR"};
    o.env[kKeyEnv] = kKey;
    return Process(o).wait();
  }

  // Runs the command and expects neither of its outputs to hold a piece of the key.
  ProcessResult expect_clean(std::vector<std::string> args) {
    std::string what;
    for (const auto& a : args)
      what += " " + a;
    ProcessResult r = troupe(args);
    EXPECT_EQ(leak(r.out), "") << "stdout of troupe" << what;
    EXPECT_EQ(leak(r.err), "") << "stderr of troupe" << what;
    return r;
  }

  fs::path dir_, scripts_;
  VendorServer server_;
};

TEST_F(SecretsEverywhere, AKeyEchoedEveryWayNeverLeavesTheHost) {
  ProcessResult leaky = expect_clean({"run", (scripts_ / "leaky.lua").string()});
  ASSERT_EQ(leaky.exit_code, 0) << leaky.describe();
  ProcessResult fails = expect_clean({"run", (scripts_ / "fails.lua").string()});
  EXPECT_NE(fails.exit_code, 0) << fails.describe();
  EXPECT_NE(fails.err.find("cannot go on with [REDACTED]"), std::string::npos) << fails.err;

  // The key really came from the environment and reached the vendor, in its auth header only.
  ASSERT_EQ(server_.chat_count(), 3u);
  for (const SeenChat& c : server_.chats())
    EXPECT_EQ(c.request.header("Authorization"), "Bearer " + kKey);

  // The workflow never saw the key, whichever way the vendor sent it.
  json out = json::parse(leaky.out);
  for (const auto& [field, saw] : out["saw"].items())
    EXPECT_EQ(saw, false) << "the workflow saw the key in " << field;
  EXPECT_EQ(out["failed"], true);
  EXPECT_EQ(out["text"], "Your key: [REDACTED] (keep it)");
  EXPECT_EQ(out["key"], "[REDACTED]");
  EXPECT_EQ(out["encoded"], "[REDACTED]");
  EXPECT_EQ(out["nested"][0][0], "[REDACTED]/[REDACTED]");
  EXPECT_NE(out["error"].get<std::string>().find("(request req-[REDACTED])"), std::string::npos)
      << out["error"];

  // Everything one can ask the CLI, in both formats.
  ProcessResult runs = expect_clean({"--json", "runs"});
  ASSERT_EQ(runs.exit_code, 0) << runs.describe();
  json listed = json::parse(runs.out);
  ASSERT_EQ(listed.size(), 2u) << runs.out;
  expect_clean({"runs"});
  for (const json& run : listed) {
    std::string id = run["id"];
    for (const char* cmd : {"show", "events"}) {
      ProcessResult plain = expect_clean({cmd, id});
      EXPECT_EQ(plain.exit_code, 0) << plain.describe();
      ProcessResult as_json = expect_clean({"--json", cmd, id});
      EXPECT_EQ(as_json.exit_code, 0) << as_json.describe();
      EXPECT_NE(as_json.out.find("[REDACTED]"), std::string::npos) << cmd << " " << id;
    }
  }

  // The store's files, byte for byte (tables, indexes, the WAL), and anything else written.
  size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    EXPECT_EQ(leak(read_text(entry.path())), "") << entry.path();
  }
  EXPECT_GE(files, 2u);  // troupe.yaml and the store at least
}

}  // namespace
}  // namespace troupe::test
