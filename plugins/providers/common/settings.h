// settings.h: the settings every provider plugin reads from its instance config (a JSON
// object), with errors that say which key is wrong and warnings for keys nobody knows.
//
//   nlohmann::json config = kit::parse_settings_object("openai", config_json);   // throws
//   std::vector<std::string> warnings;
//   kit::CommonSettings s = kit::read_common_settings("openai", config,
//       "https://api.openai.com/v1", {"max_tokens_param"}, &warnings);
//   for (auto& w : warnings) host.warn(w);
//   auto param = kit::optional_string("openai", config, "max_tokens_param");
//
// Common keys (all optional): base_url (http:// or https://; a trailing "/" is dropped),
// headers (object of extra HTTP headers, string values), max_response_bytes (default 64 MiB),
// connect_timeout_s (default 10), idle_timeout_s (default 300; 0 = none; streams only).
// Errors throw std::invalid_argument("openai: settings.base_url: expected a string"), which
// the SDK turns into the plugin's create() error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::kit {

struct CommonSettings {
  std::string base_url;  // no trailing "/"; the plugin's default when not set
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, in config order
  size_t max_response_bytes = size_t{64} << 20;
  uint32_t connect_timeout_ms = 10000;  // 0 = the host's default
  uint32_t idle_timeout_ms = 300000;    // 0 = none
};

// Parses the instance config text ("" counts as {}); throws unless it is a JSON object.
nlohmann::json parse_settings_object(std::string_view vendor, std::string_view config_json);

// Reads the common keys; vendor_keys are the plugin's own keys (read them with the helpers
// below). Every other key adds a warning "openai: unknown setting 'bse_url' (ignored)".
CommonSettings read_common_settings(std::string_view vendor, const nlohmann::json& settings,
                                    std::string_view default_base_url,
                                    const std::vector<std::string>& vendor_keys,
                                    std::vector<std::string>* warnings);

// Typed reads of one optional key; absent (or null) -> nullopt; wrong type -> throws
// std::invalid_argument("<vendor>: settings.<key>: expected ...").
std::optional<std::string> optional_string(std::string_view vendor, const nlohmann::json& settings,
                                           const char* key);
std::optional<bool> optional_bool(std::string_view vendor, const nlohmann::json& settings,
                                  const char* key);
// A whole number in [min, max].
std::optional<int64_t> optional_integer(std::string_view vendor, const nlohmann::json& settings,
                                        const char* key, int64_t min, int64_t max);

// The host part of a URL ("https://api.openai.com/v1" -> "api.openai.com"), lowercased.
std::string url_host(std::string_view url);

}  // namespace troupe::kit
