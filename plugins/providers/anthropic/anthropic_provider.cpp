// anthropic_provider.cpp: the "anthropic" provider plugin — Anthropic's Messages API.
//
// The translation is anthropic_wire's; the HTTP call (status, errors, streams, limits,
// completion) is the provider kit's chat_call. The API key stays in the host: the x-api-key
// header is written as "${secret:api_key}" and substituted there.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <troupe/plugin.hpp>

#include "anthropic_wire.h"
#include "common/chat_call.h"
#include "common/chat_request.h"
#include "common/json_access.h"
#include "common/settings.h"

namespace {

using nlohmann::json;
namespace kit = troupe::kit;
namespace anthropic = troupe::anthropic;

class AnthropicProvider : public troupe::sdk::Plugin {
 public:
  AnthropicProvider(troupe::sdk::Host host, std::string_view config) : Plugin(host, config) {
    json settings = kit::parse_settings_object(anthropic::kVendor, config);
    std::vector<std::string> warnings;
    settings_ = kit::read_common_settings(anthropic::kVendor, settings, anthropic::kDefaultBaseUrl,
                                          {"anthropic_version", "default_max_tokens"}, &warnings);
    for (const std::string& warning : warnings)
      host.warn(warning);
    version_ = kit::optional_string(anthropic::kVendor, settings, "anthropic_version")
                   .value_or(anthropic::kDefaultVersion);
    if (version_.empty())
      throw std::invalid_argument(
          "anthropic: settings.anthropic_version: expected a non-empty string");
    options_.default_max_tokens =
        kit::optional_integer(anthropic::kVendor, settings, "default_max_tokens", 1, 1 << 30)
            .value_or(anthropic::kDefaultMaxTokens);
    has_key_ = kit::has_secret(host, "api_key");
  }

  void invoke(std::shared_ptr<troupe::sdk::Call> call) override {
    if (!kit::accept_chat_operation(*call, anthropic::kVendor)) return;
    if (!has_key_) {
      call->fail(TROUPE_AUTH,
                 "anthropic: no API key (set the provider's secrets.api_key, e.g. "
                 "ANTHROPIC_API_KEY)");
      return;
    }
    std::optional<json> request = kit::parse_chat_request(*call, anthropic::kVendor);
    if (!request) return;
    anthropic::RequestOptions options = options_;
    options.stream = call->stream();
    json body;
    anthropic::WireContext context;
    if (auto error = anthropic::build_request_body(*request, options, &body, &context)) {
      kit::fail_call(*call, *error);
      return;
    }

    kit::ChatCallSpec spec;
    spec.vendor = anthropic::kVendor;
    spec.request.method = "POST";
    spec.request.url = settings_.base_url + "/v1/messages";
    spec.request.headers = {{"Content-Type", "application/json"},
                            {"Accept", options.stream ? "text/event-stream" : "application/json"},
                            {"x-api-key", "${secret:api_key}"},
                            {"anthropic-version", version_}};
    spec.request.body = kit::json_text(body);
    spec.stream = options.stream;
    spec.framing = kit::Framing::sse;
    if (options.stream) spec.decoder = std::make_unique<anthropic::StreamDecoder>(context);
    spec.end_marker = "message_stop";
    spec.parse_body = [context](std::string_view text, kit::ChatResponse* out) {
      return anthropic::parse_response(text, context, out);
    };
    spec.read_error = &kit::read_anthropic_error;
    spec.request_id_header = "request-id";
    kit::start_chat_call(host(), std::move(call), settings_, std::move(spec));
  }

  // Nothing to do on cancel: the host cancels the call's transfer, and the kit completes the
  // call with TROUPE_CANCELLED when the transfer reports it.

 private:
  kit::CommonSettings settings_;
  anthropic::RequestOptions options_;
  std::string version_;
  bool has_key_ = false;
};

}  // namespace

TROUPE_PLUGIN(AnthropicProvider, TROUPE_PLUGIN_PROVIDER, "anthropic", "1.0.0",
              "Anthropic Messages API (Claude)",
              R"({"operations":["chat"],"streaming":true,"tools":true,"structured_output":true})")
