// digest.h: SHA-256 of a byte string, as lowercase hex (OpenSSL's libcrypto).
//
// Names a script by its content (a run records the hash of the script it runs) and a request by
// what it asks (resume checks a served step against the call the script makes again).
#pragma once

#include <string>
#include <string_view>

namespace troupe {

// 64 hex digits.
std::string sha256_hex(std::string_view bytes);

// HMAC-SHA256 of bytes under key, in standard base64 (a webhook's signature).
std::string hmac_sha256_base64(std::string_view key, std::string_view bytes);

}  // namespace troupe
