// url_encode.h: percent-encoding of a value a plugin puts into a URL (a model name in a path).
//
// A model name comes from the workflow, which is untrusted: "../../x?y#z" pasted into
// "/v1beta/models/{model}:generateContent" would change the path, add a query and cut the rest
// off as a fragment. Every value a plugin puts into a URL goes through percent_encode() once.
#pragma once

#include <string>
#include <string_view>

namespace troupe::kit {

// Encodes every byte except RFC 3986's unreserved characters (letters, digits, '-', '.', '_',
// '~') as %XX with uppercase hex, so the result is one path segment or query value whatever
// the input; "." and ".." (dot segments a URL resolver would remove) become "%2E" and "%2E%2E".
std::string percent_encode(std::string_view value);

}  // namespace troupe::kit
