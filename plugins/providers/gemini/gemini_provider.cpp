// gemini_provider.cpp: the "gemini" provider plugin — Google's Gemini API (generateContent /
// streamGenerateContent with alt=sse) on generativelanguage.googleapis.com or a compatible proxy.
//
// The translation is gemini_wire's; the HTTP call (status, errors, streams, limits,
// completion) is the provider kit's chat_call. The API key stays in the host: the
// x-goog-api-key header is written as "${secret:api_key}" and substituted there (never a
// "?key=" URL parameter, which would end up in logs).
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <troupe/plugin.hpp>

#include "common/chat_call.h"
#include "common/chat_request.h"
#include "common/json_access.h"
#include "common/settings.h"
#include "gemini_wire.h"

namespace {

using nlohmann::json;
namespace kit = troupe::kit;
namespace gemini = troupe::gemini;

// The thought signatures of recent function calls, keyed by the call (name + arguments): the
// normalized tool call cannot carry them, yet Gemini 3 wants each one back with its call in
// the next request. Bounded; an unknown call falls back to the documented placeholder.
class SignatureCache {
 public:
  void put(const std::string& name, const json& args, const std::string& signature) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string key = key_of(name, args);
    if (signatures_.insert_or_assign(key, signature).second) order_.push_back(key);
    while (order_.size() > kMaxEntries) {
      signatures_.erase(order_.front());
      order_.pop_front();
    }
  }

  std::string get(const std::string& name, const json& args) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = signatures_.find(key_of(name, args));
    return it != signatures_.end() ? it->second : "";
  }

 private:
  static constexpr size_t kMaxEntries = 1024;
  static std::string key_of(const std::string& name, const json& args) {
    return name + '\n' + kit::json_text(args);
  }

  mutable std::mutex mutex_;
  std::map<std::string, std::string> signatures_;
  std::deque<std::string> order_;  // insertion order, for eviction
};

class GeminiProvider : public troupe::sdk::Plugin {
 public:
  GeminiProvider(troupe::sdk::Host host, std::string_view config) : Plugin(host, config) {
    json settings = kit::parse_settings_object(gemini::kVendor, config);
    std::vector<std::string> warnings;
    settings_ = kit::read_common_settings(gemini::kVendor, settings, gemini::kDefaultBaseUrl,
                                          {"api_version", "include_thoughts"}, &warnings);
    for (const std::string& warning : warnings)
      host.warn(warning);
    api_version_ = kit::optional_string(gemini::kVendor, settings, "api_version")
                       .value_or(gemini::kDefaultApiVersion);
    if (api_version_.empty() || api_version_.find_first_of("/?#") != std::string::npos)
      throw std::invalid_argument(
          "gemini: settings.api_version: expected a version such as \"v1beta\" or \"v1\"");
    options_.include_thoughts =
        kit::optional_bool(gemini::kVendor, settings, "include_thoughts").value_or(false);
    has_key_ = kit::has_secret(host, "api_key");
  }

  void invoke(std::shared_ptr<troupe::sdk::Call> call) override {
    if (!kit::accept_chat_operation(*call, gemini::kVendor)) return;
    if (!has_key_) {
      call->fail(TROUPE_AUTH,
                 "gemini: no API key (set the provider's secrets.api_key, e.g. GEMINI_API_KEY)");
      return;
    }
    std::optional<json> request = kit::parse_chat_request(*call, gemini::kVendor);
    if (!request) return;
    std::string model = request->value("model", "");
    if (model.empty()) {
      call->fail(TROUPE_INVALID_ARGUMENT, "gemini: the request has no model");
      return;
    }
    std::shared_ptr<SignatureCache> cache = signatures_;
    gemini::RequestOptions options = options_;
    options.signature_for = [cache](const std::string& name, const json& args) {
      return cache->get(name, args);
    };
    json body;
    if (auto error = gemini::build_request_body(*request, options, &body)) {
      kit::fail_call(*call, *error);
      return;
    }
    gemini::SignatureHandler remember = [cache](const std::string& name, const json& args,
                                                const std::string& signature) {
      cache->put(name, args, signature);
    };

    const bool stream = call->stream();
    kit::ChatCallSpec spec;
    spec.vendor = gemini::kVendor;
    spec.request.method = "POST";
    spec.request.url = gemini::endpoint_url(settings_.base_url, api_version_, model, stream);
    spec.request.headers = {{"Content-Type", "application/json"},
                            {"Accept", stream ? "text/event-stream" : "application/json"},
                            {"x-goog-api-key", "${secret:api_key}"}};
    spec.request.body = kit::json_text(body);
    spec.stream = stream;
    spec.framing = kit::Framing::sse;
    if (stream) spec.decoder = std::make_unique<gemini::StreamDecoder>(remember);
    spec.end_marker = "a chunk with finishReason";
    spec.parse_body = [remember](std::string_view text, kit::ChatResponse* out) {
      return gemini::parse_response(text, out, remember);
    };
    spec.read_error = &kit::read_gemini_error;
    spec.request_id_header = "";  // Gemini's id is the body's responseId
    kit::start_chat_call(host(), std::move(call), settings_, std::move(spec));
  }

  // Nothing to do on cancel: the host cancels the call's transfer, and the kit completes the
  // call with TROUPE_CANCELLED when the transfer reports it.

 private:
  kit::CommonSettings settings_;
  std::string api_version_;
  gemini::RequestOptions options_;
  bool has_key_ = false;
  std::shared_ptr<SignatureCache> signatures_ = std::make_shared<SignatureCache>();
};

}  // namespace

TROUPE_PLUGIN(GeminiProvider, TROUPE_PLUGIN_PROVIDER, "gemini", "1.0.0",
              "Google Gemini API (generateContent, streamed over SSE)",
              R"({"operations":["chat"],"streaming":true,"tools":true,"structured_output":true})")
