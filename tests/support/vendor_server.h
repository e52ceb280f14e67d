// vendor_server.h: a fake LLM vendor (OpenAI, Anthropic, Gemini, Ollama wire formats) with faults.
//
// One loopback server speaks all four vendors' real chat APIs, non-streaming and streaming:
//
//   openai     POST /v1/chat/completions                     base_url(openai)    = url("/v1")
//   anthropic  POST /v1/messages                             base_url(anthropic) = url("")
//   gemini     POST /v1beta/models/{model}:generateContent   base_url(gemini)    = url("")
//              POST /v1beta/models/{model}:streamGenerateContent?alt=sse
//   ollama     POST /api/chat                                base_url(ollama)    = url("")
//   any        GET  /pages/<name>  (pages added by the test or the scenario), GET /health
//
// It reads each request in its vendor's format (model, stream, last user message, trailing tool
// results, tools offered, a forced tool, a structured-output schema), records it, and answers
// with, in order of precedence:
//   1. the next reply a test pushed (push(FakeReply)), then
//   2. the fault named by the model, "fault-<name>" (e.g. model "fault-http-503"), then
//   3. the first scenario rule that applies (load_scenario; the format is in tests/README.md),
//   4. else the default: a forced tool (tool_choice) gets a call with arguments generated from
//      its schema; a structured-output schema gets JSON generated from it; a conversation
//      ending with tool results gets "tool results: " + the results joined with " | ";
//      anything else gets "echo: " + the last user message.
// Every reply carries usage in the vendor's own fields (see FakeUsage), a request id where the
// vendor has one, and the vendor's finish reason. Streams send the text in several pieces.
//
// Faults (fault_names()): rate-limit-retry-after, rate-limit-retry-after-date,
// rate-limit-retry-after-ms, rate-limit-reset, http-400/401/403/404/408/413/500/502/503/504/529,
// insufficient-quota, context-too-long, stream-error, slow-headers, slow-body,
// reset-mid-stream, malformed-json, split-bytes, utf8-split, no-terminator, huge, hang.
// What each one sends, per vendor, is described at the top of vendor_faults.cpp.
//
// Thread-safe: handlers run on the server's connection threads; every public method may be
// called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "support/http_test_server.h"

namespace troupe::test {

enum class Vendor { openai, anthropic, gemini, ollama };

const char* vendor_name(Vendor vendor);  // "openai", ...
// Writes the vendor's name (so test names and messages read "openai", not a byte dump).
std::ostream& operator<<(std::ostream& out, Vendor vendor);
// false when the name is not one of the four
bool vendor_from_name(std::string_view name, Vendor* vendor);

// Token counts of a reply, in normalized terms: input includes cached, output includes
// reasoning. Each vendor gets them in its own fields:
//   openai     prompt_tokens=input, completion_tokens=output,
//              prompt_tokens_details.cached_tokens=cached,
//              completion_tokens_details.reasoning_tokens=reasoning
//   anthropic  input_tokens=input-cached-2, cache_creation_input_tokens=2,
//              cache_read_input_tokens=cached, output_tokens=output (no reasoning field)
//   gemini     promptTokenCount=input, cachedContentTokenCount=cached,
//              candidatesTokenCount=output-reasoning, thoughtsTokenCount=reasoning
//   ollama     prompt_eval_count=input, eval_count=output (no cached, no reasoning)
struct FakeUsage {
  int64_t input = 12;
  int64_t cached = 4;
  int64_t output = 7;
  int64_t reasoning = 2;
};

struct FakeToolCall {
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();
  // When not empty, sent verbatim instead of arguments (e.g. "{broken" to test a plugin's
  // handling of arguments that are not JSON; for gemini and ollama, whose arguments are JSON
  // objects in the body, the body then is not JSON either).
  std::string raw_arguments;
};

struct FakeReply {
  std::string text;
  std::vector<FakeToolCall> tool_calls;
  std::string reasoning;  // visible reasoning, in the vendor's field (see vendor_<name>.cpp)
  // Normalized finish reason: stop, length, tool_calls, content_filter. Empty: tool_calls
  // when there are tool calls, else stop. Sent as the vendor's own value.
  std::string finish;
  // When not empty, sent verbatim as the vendor's finish/stop reason ("pause_turn", "SAFETY").
  std::string vendor_finish;
  FakeUsage usage;
  // A fault name (fault_names()); when set, the fields above only fill the parts of the
  // reply the fault still sends (e.g. the text of slow-body).
  std::string fault;
  // When not empty: the request id the reply carries (header and body), instead of a made-up
  // one; the vendor's message in the body of an HTTP error fault, instead of the canned one.
  std::string request_id;
  std::string error_message;
  // OpenAI streams only: when not empty, the "delta" objects of the chunks, sent in this order
  // instead of those made from text, reasoning and tool_calls (e.g. a tool call's id in pieces).
  std::vector<nlohmann::json> openai_deltas;

  static FakeReply with_text(std::string text);
  static FakeReply with_fault(std::string fault);
  // From the JSON form used by scenario rules and the control endpoint:
  // {"reply", "tool_calls":[{"name","arguments"}], "reasoning", "finish", "vendor_finish",
  //  "usage":{"input","cached","output","reasoning"}, "fault", "request_id", "error_message",
  //  "openai_deltas":[{...}]}. Throws std::invalid_argument naming the field on bad input.
  static FakeReply from_json(const nlohmann::json& j);
};

// What the server understood of one chat request, and what it answered.
struct SeenChat {
  Vendor vendor = Vendor::openai;
  std::string model;
  bool stream = false;
  std::string last_user;                  // text of the last user message
  bool ends_with_tool_results = false;    // the conversation ends with tool results
  std::vector<std::string> tool_results;  // their contents, in order
  std::vector<std::string> tools;         // names of the tools offered, in order
  std::string forced_tool;                // the tool tool_choice forces, if any
  nlohmann::json schema;                  // the structured-output schema, null when none
  nlohmann::json body;                    // the parsed request body
  TestRequest request;                    // method, path, headers, raw body
  std::string answer;                     // "queue", "model", "rule <i>", or "default"
  std::string fault;                      // the fault applied, "" when none
  std::string request_id;  // the id the reply carried ("" for ollama and faults without one)
};

class VendorServer {
 public:
  // Listens on 127.0.0.1 at `port` (0: an ephemeral port) and serves at once.
  explicit VendorServer(uint16_t port = 0);
  ~VendorServer();
  VendorServer(const VendorServer&) = delete;
  VendorServer& operator=(const VendorServer&) = delete;

  uint16_t port() const;
  // "http://127.0.0.1:<port>" + path
  std::string url(std::string_view path = "") const;
  // The base_url setting for a vendor's plugin: url("/v1") for openai, url("") otherwise.
  std::string base_url(Vendor vendor) const;
  // A troupe.yaml `providers:` section naming each vendor after its plugin, every one pointed at
  // this server in its own wire format, its key in the environment variable `key_env`.
  std::string providers_config(const std::string& key_env) const;

  // Queues a reply: the next chat request (any vendor) gets it.
  void push(FakeReply reply);
  size_t queued() const;

  // Scenario: {"rules":[{"match","model","vendor","times", + the FakeReply JSON keys}],
  // "pages":{"name":"content"}}. Replaces the rules, adds the pages. Throws
  // std::invalid_argument naming the field (unknown keys included: a typo must be visible).
  void load_scenario(const nlohmann::json& scenario);
  void load_scenario_text(std::string_view json_text);
  void load_scenario_file(const std::string& path);

  // Serves content at GET /pages/<name>; the content type defaults to text/html when the
  // content starts with '<', else text/plain (both UTF-8).
  void add_page(const std::string& name, std::string content, std::string content_type = "");

  // Every request received (chat, pages, health, control), in arrival order.
  std::vector<TestRequest> requests() const;
  // Every chat request, in arrival order.
  std::vector<SeenChat> chats() const;
  size_t chat_count() const;
  bool wait_for_chats(size_t n, uint32_t timeout_ms) const;
  // Forgets the queue, the rules' use counts, and the recorded chats.
  void reset();

  // Prints one line per chat request to stderr (method, path, model, answer, fault).
  void set_verbose(bool verbose);

  // Every fault name, in a fixed order.
  static const std::vector<std::string>& fault_names();
  static bool is_fault(std::string_view name);
  // The usage a plugin should report for `usage` from this vendor (all five fields).
  static nlohmann::json normalized_usage(Vendor vendor, const FakeUsage& usage);
  // The text of the utf8-split fault.
  static const std::string& utf8_text();
  // The text of the huge fault (20 MiB of ASCII lines).
  static const std::string& huge_text();
  // The vendor's error message in the body of an HTTP error fault (e.g. "http-503",
  // "context-too-long") for a request for `model` that sent `api_key` (some messages quote
  // the model, or a masked key); "" for faults that are not HTTP errors.
  static std::string error_message(Vendor vendor, std::string_view fault,
                                   const std::string& model = "", const std::string& api_key = "");

  HttpTestServer& http();
  void stop();

 private:
  struct State;
  Script handle_chat(Vendor vendor, const TestRequest& request);
  Script handle_control(const TestRequest& request);

  std::unique_ptr<HttpTestServer> server_;
  std::shared_ptr<State> state_;
};

}  // namespace troupe::test
