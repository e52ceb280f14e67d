// ollama_provider.cpp: the "ollama" provider plugin — Ollama's native chat API (/api/chat),
// local or behind a proxy / Ollama's cloud.
//
// The translation is ollama_wire's; the HTTP call (status, errors, NDJSON stream, limits,
// completion) is the provider kit's chat_call. A key is optional: when the instance has one,
// the Authorization header is written as "${secret:api_key}" and substituted by the host.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <troupe/plugin.hpp>

#include "common/chat_call.h"
#include "common/chat_request.h"
#include "common/json_access.h"
#include "common/settings.h"
#include "ollama_wire.h"

namespace {

using nlohmann::json;
namespace kit = troupe::kit;
namespace ollama = troupe::ollama;

// settings.keep_alive: a duration string ("5m", "1h") or a number of seconds (-1 = forever).
json read_keep_alive(const json& settings) {
  auto it = settings.find("keep_alive");
  if (it == settings.end() || it->is_null()) return nullptr;
  if (it->is_string() || it->is_number()) return *it;
  throw std::invalid_argument(
      "ollama: settings.keep_alive: expected a duration string (\"5m\") or a number of seconds");
}

// settings.think: true / false, or an effort level "low" / "medium" / "high".
json read_think(const json& settings) {
  auto it = settings.find("think");
  if (it == settings.end() || it->is_null()) return nullptr;
  if (it->is_boolean()) return *it;
  if (it->is_string()) {
    std::string level = it->get<std::string>();
    if (level == "low" || level == "medium" || level == "high") return *it;
  }
  throw std::invalid_argument(
      "ollama: settings.think: expected true, false, \"low\", \"medium\" or \"high\"");
}

// settings.options: extra model options passed as they are (num_ctx, top_p, seed, ...).
json read_model_options(const json& settings) {
  auto it = settings.find("options");
  if (it == settings.end() || it->is_null()) return json::object();
  if (it->is_object()) return *it;
  throw std::invalid_argument("ollama: settings.options: expected an object");
}

class OllamaProvider : public troupe::sdk::Plugin {
 public:
  OllamaProvider(troupe::sdk::Host host, std::string_view config) : Plugin(host, config) {
    json settings = kit::parse_settings_object(ollama::kVendor, config);
    std::vector<std::string> warnings;
    settings_ = kit::read_common_settings(ollama::kVendor, settings, ollama::kDefaultBaseUrl,
                                          {"keep_alive", "think", "options"}, &warnings);
    for (const std::string& warning : warnings)
      host.warn(warning);
    options_.keep_alive = read_keep_alive(settings);
    options_.think = read_think(settings);
    options_.model_options = read_model_options(settings);
    has_key_ = kit::has_secret(host, "api_key");  // local servers need none
  }

  void invoke(std::shared_ptr<troupe::sdk::Call> call) override {
    if (!kit::accept_chat_operation(*call, ollama::kVendor)) return;
    std::optional<json> request = kit::parse_chat_request(*call, ollama::kVendor);
    if (!request) return;
    ollama::RequestOptions options = options_;
    options.stream = call->stream();
    json body;
    if (auto error = ollama::build_request_body(*request, options, &body)) {
      kit::fail_call(*call, *error);
      return;
    }

    kit::ChatCallSpec spec;
    spec.vendor = ollama::kVendor;
    spec.request.method = "POST";
    spec.request.url = settings_.base_url + "/api/chat";
    spec.request.headers = {
        {"Content-Type", "application/json"},
        {"Accept", options.stream ? "application/x-ndjson" : "application/json"}};
    if (has_key_) spec.request.headers.emplace_back("Authorization", "Bearer ${secret:api_key}");
    spec.request.body = kit::json_text(body);
    spec.stream = options.stream;
    spec.framing = kit::Framing::ndjson;
    if (options.stream) spec.decoder = std::make_unique<ollama::StreamDecoder>();
    spec.end_marker = "a line with \"done\": true";
    spec.parse_body = &ollama::parse_response;
    spec.read_error = &kit::read_ollama_error;
    spec.request_id_header = "";  // Ollama has no request id
    kit::start_chat_call(host(), std::move(call), settings_, std::move(spec));
  }

  // Nothing to do on cancel: the host cancels the call's transfer, and the kit completes the
  // call with TROUPE_CANCELLED when the transfer reports it.

 private:
  kit::CommonSettings settings_;
  ollama::RequestOptions options_;
  bool has_key_ = false;
};

}  // namespace

TROUPE_PLUGIN(OllamaProvider, TROUPE_PLUGIN_PROVIDER, "ollama", "1.0.0",
              "Ollama's native chat API (/api/chat), local or remote",
              R"({"operations":["chat"],"streaming":true,"tools":true,"structured_output":true})")
