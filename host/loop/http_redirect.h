// http_redirect.h: what a redirect hop of troupe.http may carry — origins, headers, downgrades.
//
// troupe.http follows redirects itself (host/runtime/prim_http.cpp), one transfer per hop. A
// hop to another origin (scheme, host and port, as curl parses the URL it will fetch) must not
// take the workflow's credentials along: a server that answers "302 Location: https://evil/"
// would otherwise receive the Authorization, Cookie or API-key header meant for the first
// origin. The host cannot tell which custom header is a key (X-Api-Key, PRIVATE-TOKEN,
// api-key, ...), so a cross-origin hop keeps only headers that never carry credentials and
// drops every other one (decision 0010). A hop from https to http is refused outright.
#pragma once

#include <optional>
#include <string>

#include "loop/event_loop.h"

namespace troupe {

// The origin of an http(s) URL, parsed by curl's own URL parser (so it is the host and port
// curl connects to): lowercase scheme and host (IPv6 in brackets), and the port with the
// scheme's default filled in.
struct UrlOrigin {
  std::string scheme;
  std::string host;
  int port = 0;
  bool operator==(const UrlOrigin&) const = default;
};

// Nothing when curl cannot parse the URL.
std::optional<UrlOrigin> url_origin(const std::string& url);

// Headers that go along to another origin: the CORS-safelisted request headers of the Fetch
// standard (Accept, Accept-Language, Content-Language, Content-Type, Range) and User-Agent.
bool crosses_origins_safely(const std::string& header_name);

// Prepares `headers` for a hop from `from` to `to`: unchanged on the same origin; on another
// origin every header that crosses_origins_safely() does not name is removed (for the rest of
// the exchange, also if a later hop comes back). Returns an empty string, or why the hop must
// not be followed: a URL curl cannot parse, or a downgrade from https to http.
std::string prepare_redirect(const std::string& from, const std::string& to, Headers& headers);

}  // namespace troupe
