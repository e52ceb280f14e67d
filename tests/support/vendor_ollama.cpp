// vendor_ollama.cpp: the fake vendor's Ollama chat wire format — POST /api/chat read (the
// OpenAI-like reading of vendor_openai.cpp, streaming by default, `format` for structured
// output), replies written plain or as NDJSON (final "done": true line), and Ollama's
// {"error"} bodies.
#include <ctime>

#include "support/vendor_wire.h"

namespace troupe::test {
// Named, not anonymous: the nine files compile as one unit (UNITY_BUILD), where the
// vendors' functions of the same name must not meet.
namespace ollama_fake {

void parse(const json& body, Chat& chat) {
  parse_openai_like(body, chat, true);
}

std::string request_id(uint64_t) {
  return "";  // Ollama has no request ids
}

std::string finish(const std::string& normalized) {
  if (normalized == "length") return "length";
  return "stop";
}

Rendered render(const Material& m, bool stream) {
  Rendered r;
  r.stream = stream;
  r.headers = {
      {"Content-Type", stream ? "application/x-ndjson" : "application/json; charset=utf-8"}};
  const std::string created = rfc3339(std::time(nullptr), ".000000");
  ojson tool_calls = ojson::array();
  for (size_t i = 0; i < m.tools.size(); ++i)
    tool_calls.push_back({{"function",
                           {{"index", i},
                            {"name", m.tools[i].name},
                            {"arguments", tool_arguments_value(m.tools[i], i)}}}});
  auto final_fields = [&](ojson& line) {
    line["done"] = true;
    line["done_reason"] = m.finish;
    line["total_duration"] = 512000000;
    line["load_duration"] = 2000000;
    line["prompt_eval_count"] = m.usage.input;
    line["prompt_eval_duration"] = 38000000;
    line["eval_count"] = m.usage.output;
    line["eval_duration"] = 470000000;
  };
  if (!stream) {
    ojson message = {{"role", "assistant"}, {"content", m.text}};
    if (!m.reasoning.empty()) message["thinking"] = m.reasoning;
    if (!tool_calls.empty()) message["tool_calls"] = tool_calls;
    ojson body = {{"model", m.model}, {"created_at", created}, {"message", message}};
    final_fields(body);
    r.events.push_back(splice_raw(body.dump(), m.tools));
    return r;
  }
  auto line = [&](ojson message) {
    ojson l = {{"model", m.model},
               {"created_at", created},
               {"message", std::move(message)},
               {"done", false}};
    r.events.push_back(splice_raw(l.dump(), m.tools) + "\n");
  };
  for (const auto& piece : stream_pieces(m.reasoning))
    line({{"role", "assistant"}, {"content", ""}, {"thinking", piece}});
  for (const auto& piece : stream_pieces(m.text))
    line({{"role", "assistant"}, {"content", piece}});
  if (!tool_calls.empty())
    line({{"role", "assistant"}, {"content", ""}, {"tool_calls", tool_calls}});
  if (m.terminate) {
    ojson last = {{"model", m.model},
                  {"created_at", created},
                  {"message", {{"role", "assistant"}, {"content", ""}}}};
    final_fields(last);
    r.events.push_back(last.dump() + "\n");
  }
  return r;
}

ErrorInfo error_info(int status, std::string_view fault, const std::string& model,
                     const std::string&) {
  if (fault == "context-too-long")
    return {"", "", "the input length exceeds the context length (num_ctx 2048)"};
  if (status == 404) return {"", "", "model \"" + model + "\" not found, try pulling it first"};
  if (status == 429) return {"", "", "too many concurrent requests: server busy, please try again"};
  if (status == 401 || status == 403) return {"", "", "unauthorized"};
  if (status == 400) return {"", "", "invalid request: messages must not be empty"};
  if (status >= 500) return {"", "", "llama runner process has terminated: exit status 2"};
  return {"", "", "request failed with status " + std::to_string(status)};
}

Rendered render_error(int status, std::string_view, const ErrorInfo& e, const std::string&) {
  Rendered r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json; charset=utf-8"}};
  r.events.push_back(ojson{{"error", e.message}}.dump());
  return r;
}

std::string refusal(int, const std::string& message, const std::string&) {
  return json{{"error", message}}.dump();
}

std::string stream_error_event() {
  return ojson{{"error", "an error was encountered while running the model: unexpected EOF"}}
             .dump() +
         "\n";
}

std::string broken_event() {
  return "{\"model\":\"broken\",\"message\":{\"role\":\"assistant\",\"content\":\"oo\n";
}

}  // namespace ollama_fake

const VendorWire kOllamaWire = {.key_header = "Authorization",
                                .tool_id_prefix = "call_fake",
                                .quota_status = 429,
                                .reports_cached = false,
                                .reports_reasoning = false,
                                .stream_error_status = 500,
                                .parse = ollama_fake::parse,
                                .request_id = ollama_fake::request_id,
                                .finish = ollama_fake::finish,
                                .render = ollama_fake::render,
                                .error_info = ollama_fake::error_info,
                                .render_error = ollama_fake::render_error,
                                .refusal = ollama_fake::refusal,
                                .stream_error_event = ollama_fake::stream_error_event,
                                .broken_event = ollama_fake::broken_event};

}  // namespace troupe::test
