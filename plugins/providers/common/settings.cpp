// settings.cpp: reading the common provider settings (see settings.h).
#include "common/settings.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/text.h"

namespace troupe::kit {
namespace {

using nlohmann::json;

[[noreturn]] void fail(std::string_view vendor, const std::string& key, const std::string& what) {
  throw std::invalid_argument(std::string(vendor) + ": settings." + key + ": " + what);
}

const json* find(const json& settings, const char* key) {
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null()) return nullptr;
  return &*it;
}

// Seconds (a number >= 0, fractions allowed) as milliseconds.
std::optional<uint32_t> optional_seconds(std::string_view vendor, const json& settings,
                                         const char* key) {
  const json* v = find(settings, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) fail(vendor, key, "expected a number of seconds");
  double seconds = v->get<double>();
  if (!(seconds >= 0) || seconds > 4000000) fail(vendor, key, "expected 0 to 4000000 seconds");
  return static_cast<uint32_t>(std::llround(seconds * 1000));
}

// A header name is an HTTP token; a value has no line breaks (header injection).
bool valid_header_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

}  // namespace

json parse_settings_object(std::string_view vendor, std::string_view config_json) {
  if (config_json.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  json parsed = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object())
    throw std::invalid_argument(std::string(vendor) + ": settings: expected a JSON object");
  return parsed;
}

std::optional<std::string> optional_string(std::string_view vendor, const json& settings,
                                           const char* key) {
  const json* v = find(settings, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) fail(vendor, key, "expected a string");
  return v->get<std::string>();
}

std::optional<bool> optional_bool(std::string_view vendor, const json& settings, const char* key) {
  const json* v = find(settings, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) fail(vendor, key, "expected true or false");
  return v->get<bool>();
}

std::optional<int64_t> optional_integer(std::string_view vendor, const json& settings,
                                        const char* key, int64_t min, int64_t max) {
  const json* v = find(settings, key);
  if (v == nullptr) return std::nullopt;
  std::string range = std::to_string(min) + " to " + std::to_string(max);
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (d != std::floor(d)) fail(vendor, key, "expected a whole number from " + range);
    if (d < static_cast<double>(min) || d > static_cast<double>(max))
      fail(vendor, key, "expected a whole number from " + range);
    return static_cast<int64_t>(d);
  }
  if (!v->is_number_integer()) fail(vendor, key, "expected a whole number from " + range);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(max))
    fail(vendor, key, "expected a whole number from " + range);
  int64_t n = v->get<int64_t>();
  if (n < min || n > max) fail(vendor, key, "expected a whole number from " + range);
  return n;
}

CommonSettings read_common_settings(std::string_view vendor, const json& settings,
                                    std::string_view default_base_url,
                                    const std::vector<std::string>& vendor_keys,
                                    std::vector<std::string>* warnings) {
  CommonSettings out;
  out.base_url =
      optional_string(vendor, settings, "base_url").value_or(std::string(default_base_url));
  if (out.base_url.rfind("http://", 0) != 0 && out.base_url.rfind("https://", 0) != 0)
    fail(vendor, "base_url", "expected an http:// or https:// URL");
  while (!out.base_url.empty() && out.base_url.back() == '/')
    out.base_url.pop_back();

  if (const json* headers = find(settings, "headers")) {
    if (!headers->is_object()) fail(vendor, "headers", "expected an object of header: value");
    for (const auto& [name, value] : headers->items()) {
      if (!valid_header_name(name)) fail(vendor, "headers", "'" + name + "' is not a header name");
      if (!value.is_string()) fail(vendor, "headers." + name, "expected a string");
      std::string text = value.get<std::string>();
      if (text.find_first_of("\r\n") != std::string::npos || text.find('\0') != std::string::npos)
        fail(vendor, "headers." + name, "line breaks are not allowed");  // never echo the value
      out.headers.emplace_back(name, std::move(text));
    }
  }
  if (auto bytes = optional_integer(vendor, settings, "max_response_bytes", 1, int64_t{1} << 40))
    out.max_response_bytes = static_cast<size_t>(*bytes);
  if (auto ms = optional_seconds(vendor, settings, "connect_timeout_s"))
    out.connect_timeout_ms = *ms;
  if (auto ms = optional_seconds(vendor, settings, "idle_timeout_s")) out.idle_timeout_ms = *ms;

  static const char* const common[] = {"base_url", "headers", "max_response_bytes",
                                       "connect_timeout_s", "idle_timeout_s"};
  for (const auto& [key, value] : settings.items()) {
    bool known = std::find(std::begin(common), std::end(common), key) != std::end(common) ||
                 std::find(vendor_keys.begin(), vendor_keys.end(), key) != vendor_keys.end();
    if (!known && warnings != nullptr)
      warnings->push_back(std::string(vendor) + ": unknown setting '" + key + "' (ignored)");
  }
  return out;
}

std::string url_host(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find_first_of("/?#"));
  if (size_t at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  if (!url.empty() && url.front() == '[') {
    url = url.substr(0, url.find(']') + 1);
  } else {
    url = url.substr(0, url.find(':'));
  }
  return ascii_lower(url);
}

}  // namespace troupe::kit
