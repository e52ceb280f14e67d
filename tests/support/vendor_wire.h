// vendor_wire.h: the fake vendor's inside (not for tests; they include vendor_server.h) — one
// chat request as understood, one reply as material for the wire, and the table each vendor's
// file fills (vendor_openai.cpp, vendor_anthropic.cpp, vendor_gemini.cpp, vendor_ollama.cpp).
//
// The path of one chat request through the files:
//   vendor_server.cpp     routes it, records it, and runs the steps below in order
//   vendor_<name>.cpp     VendorWire::parse reads the body into a Chat
//   vendor_answer.cpp     picks the reply (queue, model-named fault, rules, default) and turns it
//                         into Material
//   vendor_<name>.cpp     VendorWire::render writes the Material as the vendor's body
//   vendor_faults.cpp     turns it into a Script, with the fault applied
// vendor_scenario.cpp reads the JSON forms (replies, scenario rules); vendor_wire.cpp holds the
// pieces the four wire formats share (UTF-8 pieces, dates, ids, raw tool arguments).
#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "support/http_test_server.h"
#include "support/vendor_server.h"

namespace troupe::test {

using json = nlohmann::json;
// Replies are written with their fields in the vendors' order (id and type first).
using ojson = nlohmann::ordered_json;

// One chat request as understood.
struct Chat {
  SeenChat seen;
  std::map<std::string, json> tool_schemas;  // tool name -> its parameters schema
  bool include_usage = false;                // openai stream_options.include_usage
  bool gemini_sse = true;                    // gemini: alt=sse (else a JSON array stream)
};

// One tool call as written.
struct ToolOut {
  std::string id;
  std::string name;
  ojson arguments;
  std::string raw;   // raw_arguments, or "" when arguments is used
  std::string text;  // the arguments as text (raw or dumped)
};

// Everything a vendor's render needs to write one reply.
struct Material {
  std::string model;
  uint64_t number = 0;  // the server's request counter
  std::string text;
  std::string reasoning;
  std::vector<ToolOut> tools;
  std::string finish;  // the vendor's own value
  FakeUsage usage;
  bool include_usage = false;
  bool gemini_sse = true;  // Chat::gemini_sse
  bool terminate = true;   // send the vendor's end marker
  std::string request_id;
  std::vector<ojson> openai_deltas;  // FakeReply::openai_deltas
};

// What a handler writes: a status, headers, and the body as events (a stream) or one piece.
struct Rendered {
  int status = 200;
  TestHeaders headers;
  bool stream = false;
  std::vector<std::string> events;
};

// The parts of an HTTP error body.
struct ErrorInfo {
  std::string type;  // openai type, anthropic error.type, gemini status
  std::string code;  // openai code ("" = null)
  std::string message;
};

// One vendor's wire format, read and written; each vendor_<name>.cpp defines one.
struct VendorWire {
  const char* key_header;      // the request header that carries the API key
  const char* tool_id_prefix;  // of the tool call ids a reply makes up
  int quota_status;            // the HTTP status of insufficient-quota
  // Whether the vendor reports cached input and reasoning tokens (VendorServer::normalized_usage).
  bool reports_cached;
  bool reports_reasoning;
  int stream_error_status;  // the HTTP status of stream-error when the request does not stream
  // Reads a chat request body (a JSON object) into chat.
  void (*parse)(const json& body, Chat& chat);
  // The request id of the server's request `number`th reply; "" when the vendor has none.
  std::string (*request_id)(uint64_t number);
  // The vendor's finish reason for a normalized one (stop, length, tool_calls, content_filter).
  std::string (*finish)(const std::string& normalized);
  // A reply, plain or streamed.
  Rendered (*render)(const Material& m, bool stream);
  // The canned error of an HTTP error status; `fault` picks quota and context-length errors.
  ErrorInfo (*error_info)(int status, std::string_view fault, const std::string& model,
                          const std::string& api_key);
  // An HTTP error response with the vendor's body and headers (with rate-limit-reset's own
  // hint, where the vendor has one).
  Rendered (*render_error)(int status, std::string_view fault, const ErrorInfo& error,
                           const std::string& request_id);
  // The body of a refused request (not POST, no JSON, unknown method or fault): the vendor's
  // error shape with `message`.
  std::string (*refusal)(int status, const std::string& message, const std::string& request_id);
  // The error event of stream-error, in the vendor's in-stream shape.
  std::string (*stream_error_event)();
  // An event that is not JSON, in the vendor's stream framing (malformed-json).
  std::string (*broken_event)();
};

extern const VendorWire kOpenAiWire;
extern const VendorWire kAnthropicWire;
extern const VendorWire kGeminiWire;
extern const VendorWire kOllamaWire;
const VendorWire& vendor_wire(Vendor vendor);

// OpenAI's request reading, shared with Ollama (whose chat API is OpenAI-like).
void parse_openai_like(const json& body, Chat& chat, bool ollama);

// -- Pieces the wire formats share (vendor_wire.cpp) -----------------------------------------

// Splits text into pieces of `per_piece` code points (the last one may be shorter); never
// inside a code point, so every piece is valid UTF-8 and a valid JSON string.
std::vector<std::string> split_code_points(const std::string& text, size_t per_piece);
// A tool's arguments as a stream sends them: three pieces.
std::vector<std::string> argument_pieces(const std::string& text);
// The text as a stream sends it: about four pieces, at most 16 Ki code points each.
std::vector<std::string> stream_pieces(const std::string& text);

std::string http_date(std::time_t t);
std::string rfc3339(std::time_t t, const char* fraction = "");
// The current second plus `seconds`: dates have second resolution, so the wait a client
// computes from it is more than seconds - 1 and at most `seconds`.
std::time_t seconds_ahead(int seconds);
// n in hex, zero-padded to `width` digits.
std::string hex_id(uint64_t n, size_t width);

std::string percent_decode(std::string_view s);
// The value of query parameter `name` in a request target, "" when absent.
std::string query_param(const std::string& target, const std::string& name);

// The text of a message's content: a string, or an array of parts/blocks with "text".
std::string content_text(const json& content);
// obj[camel] or else obj[snake] (Gemini accepts both spellings); null when neither.
const json* member(const json& obj, const char* camel, const char* snake);

// A tool's arguments in a document: the JSON object, or a placeholder for raw arguments
// (tool i) that splice_raw then replaces with the raw text in the dumped document.
ojson tool_arguments_value(const ToolOut& tool, size_t i);
std::string splice_raw(std::string body, const std::vector<ToolOut>& tools);

// "event: <name>\ndata: <data>\n\n"
std::string sse_event(const char* name, const ojson& data);

// -- Faults (vendor_faults.cpp) ---------------------------------------------------------------

// The HTTP status of an error fault; 0 for faults that are not an HTTP error.
int fault_status(const VendorWire& wire, std::string_view fault);
// An HTTP error response of the vendor for `fault` (with its retry hint), with `message`
// instead of the canned one when not empty.
Rendered render_error(const VendorWire& wire, int status, std::string_view fault,
                      const std::string& model, const std::string& request_id,
                      const std::string& api_key, const std::string& message = "");
// The response as written, unchanged.
Script plain_script(const Rendered& r);
// The response with a fault that still answers (slow-body, reset-mid-stream, ...) applied;
// plain when `fault` is "" or an error fault.
Script faulty_script(const VendorWire& wire, Rendered r, std::string_view fault, bool stream);

// -- Answers (vendor_answer.cpp) --------------------------------------------------------------

// An instance of a JSON Schema (required properties only; strings "example", numbers 1,
// booleans true, arrays one item, enums their first value).
json generate_from_schema(const json& schema);
// Completes the chosen reply: a reply that must carry content (the default answer, or a fault
// that still answers without text of its own) gets the default content; a rule's JSON text to
// a request that forces a tool becomes that tool's input. `answer` is SeenChat::answer.
void complete_reply(FakeReply& reply, const Chat& chat, const VendorWire& wire,
                    const std::string& answer);
// The reply as material for the vendor's render.
Material material_for(const FakeReply& reply, const Chat& chat, const VendorWire& wire,
                      uint64_t number, const std::string& request_id);

// -- Scenario (vendor_scenario.cpp) ------------------------------------------------------------

struct Rule {
  std::string match;
  std::string model;
  bool has_vendor = false;
  Vendor vendor = Vendor::openai;
  int64_t times = -1;  // -1: unlimited
  int64_t used = 0;
  FakeReply reply;
};

struct Page {
  std::string content;
  std::string content_type;
};

// Whether the rule answers the chat (its times not counted).
bool rule_applies(const Rule& rule, const SeenChat& seen);
// The rules and pages of a scenario (VendorServer::load_scenario describes the form).
void parse_scenario(const json& scenario, std::vector<Rule>* rules,
                    std::map<std::string, Page>* pages);
// A page's content type when none is given: HTML when it starts with '<', else plain text.
std::string default_page_type(const std::string& content);
// What GET /_fake/chats returns for one chat.
json seen_to_json(const SeenChat& seen);

}  // namespace troupe::test
