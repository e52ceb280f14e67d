// http_redirect.cpp: origins by curl's URL parser, and the headers a redirect hop keeps.
#include "loop/http_redirect.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "core/text.h"

namespace troupe {
namespace {

// One part of a parsed URL, or nothing.
std::optional<std::string> part(CURLU* url, CURLUPart which, unsigned int flags) {
  char* value = nullptr;
  if (curl_url_get(url, which, &value, flags) != CURLUE_OK || value == nullptr) return std::nullopt;
  std::string out(value);
  curl_free(value);
  return out;
}

}  // namespace

std::optional<UrlOrigin> url_origin(const std::string& url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> handle(curl_url(), &curl_url_cleanup);
  if (!handle || curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
    return std::nullopt;
  auto scheme = part(handle.get(), CURLUPART_SCHEME, 0);
  auto host = part(handle.get(), CURLUPART_HOST, CURLU_URLDECODE);
  auto port = part(handle.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (!scheme || !host || !port) return std::nullopt;
  UrlOrigin o;
  o.scheme = text::ascii_lower(*scheme);
  o.host = text::ascii_lower(*host);
  while (!o.host.empty() && o.host.back() == '.')
    o.host.pop_back();  // "example.com." is "example.com"
  o.port = std::atoi(port->c_str());
  return o;
}

bool crosses_origins_safely(const std::string& header_name) {
  static const char* const safe[] = {"accept",       "accept-language", "content-language",
                                     "content-type", "range",           "user-agent"};
  std::string name = text::ascii_lower(header_name);
  return std::any_of(std::begin(safe), std::end(safe), [&](const char* s) { return name == s; });
}

std::string prepare_redirect(const std::string& from, const std::string& to, Headers& headers) {
  auto a = url_origin(from);
  auto b = url_origin(to);
  if (!a || !b) return "redirected to a URL that cannot be parsed";
  if (a->scheme == "https" && b->scheme == "http")
    return "refused a redirect from https to http: the exchange would continue unencrypted";
  if (*a == *b) return "";
  headers.erase(std::remove_if(headers.begin(), headers.end(),
                               [](const auto& h) { return !crosses_origins_safely(h.first); }),
                headers.end());
  return "";
}

}  // namespace troupe
