// openai_provider.cpp: the "openai" provider plugin — OpenAI's Chat Completions API and the
// servers that speak it (OpenRouter, Groq, vLLM, llama.cpp server, LM Studio, Ollama's /v1).
//
// The translation is openai_wire's; the HTTP call (status, errors, streams, limits,
// completion) is the provider kit's chat_call. The API key stays in the host: the
// Authorization header is written as "${secret:api_key}" and substituted there.
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
#include "openai_wire.h"

namespace {

using nlohmann::json;
namespace kit = troupe::kit;
namespace openai = troupe::openai;

class OpenAIProvider : public troupe::sdk::Plugin {
 public:
  OpenAIProvider(troupe::sdk::Host host, std::string_view config) : Plugin(host, config) {
    json settings = kit::parse_settings_object(openai::kVendor, config);
    std::vector<std::string> warnings;
    settings_ = kit::read_common_settings(openai::kVendor, settings, openai::kDefaultBaseUrl,
                                          {"max_tokens_param", "stream_include_usage"}, &warnings);
    for (const std::string& warning : warnings)
      host.warn(warning);
    auto param = kit::optional_string(openai::kVendor, settings, "max_tokens_param");
    if (param && *param != "max_tokens" && *param != "max_completion_tokens")
      throw std::invalid_argument(
          "openai: settings.max_tokens_param: expected \"max_tokens\" or "
          "\"max_completion_tokens\"");
    options_.max_tokens_param =
        param.value_or(openai::default_max_tokens_param(settings_.base_url));
    options_.include_usage =
        kit::optional_bool(openai::kVendor, settings, "stream_include_usage").value_or(true);
    has_key_ = kit::has_secret(host, "api_key");  // local servers need none
  }

  void invoke(std::shared_ptr<troupe::sdk::Call> call) override {
    if (!kit::accept_chat_operation(*call, openai::kVendor)) return;
    std::optional<json> request = kit::parse_chat_request(*call, openai::kVendor);
    if (!request) return;
    openai::RequestOptions options = options_;
    options.stream = call->stream();
    json body;
    if (auto error = openai::build_request_body(*request, options, &body)) {
      kit::fail_call(*call, *error);
      return;
    }

    kit::ChatCallSpec spec;
    spec.vendor = openai::kVendor;
    spec.request.method = "POST";
    spec.request.url = settings_.base_url + "/chat/completions";
    spec.request.headers = {{"Content-Type", "application/json"},
                            {"Accept", options.stream ? "text/event-stream" : "application/json"}};
    if (has_key_) spec.request.headers.emplace_back("Authorization", "Bearer ${secret:api_key}");
    spec.request.body = kit::json_text(body);
    spec.stream = options.stream;
    spec.framing = kit::Framing::sse;
    if (options.stream) spec.decoder = std::make_unique<openai::StreamDecoder>();
    spec.end_marker = "[DONE]";
    spec.parse_body = &openai::parse_response;
    spec.read_error = &kit::read_openai_error;
    spec.request_id_header = "x-request-id";
    kit::start_chat_call(host(), std::move(call), settings_, std::move(spec));
  }

  // Nothing to do: the host cancels the call's transfer, and the kit completes the call
  // with TROUPE_CANCELLED when the transfer reports it.

 private:
  kit::CommonSettings settings_;
  openai::RequestOptions options_;
  bool has_key_ = false;
};

}  // namespace

TROUPE_PLUGIN(OpenAIProvider, TROUPE_PLUGIN_PROVIDER, "openai", "1.0.0",
              "OpenAI Chat Completions and compatible servers (OpenRouter, Groq, vLLM, "
              "llama.cpp, LM Studio, Ollama /v1)",
              R"({"operations":["chat"],"streaming":true,"tools":true,"structured_output":true})")
