// http_policy.cpp: parsing destination rules and matching host names and addresses to them.
#include "loop/http_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "core/text.h"

namespace troupe {
namespace {

// An address as the rules hold it: the family, its bytes (IPv4 in the first 4), a port.
struct Endpoint {
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  int port = 0;
};

bool parse_ip(const std::string& text, int* family, std::array<uint8_t, 16>* bytes) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    *family = AF_INET;
    std::memcpy(bytes->data(), &v4, 4);
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    *family = AF_INET6;
    std::memcpy(bytes->data(), &v6, 16);
    return true;
  }
  return false;
}

// ::ffff:a.b.c.d reaches a.b.c.d: match it as the IPv4 address it is.
void unmap_v4(Endpoint& e) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (e.family != AF_INET6 || std::memcmp(e.bytes.data(), prefix, 12) != 0) return;
  e.family = AF_INET;
  std::memmove(e.bytes.data(), e.bytes.data() + 12, 4);
  std::memset(e.bytes.data() + 4, 0, 12);
}

std::string endpoint_text(const Endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(e.family, e.bytes.data(), buf, sizeof buf);
  std::string host = e.family == AF_INET6 ? "[" + std::string(buf) + "]" : std::string(buf);
  return host + ":" + std::to_string(e.port);
}

std::string lowercase_name(std::string_view host) {
  std::string out = text::ascii_lower(host);
  while (!out.empty() && out.back() == '.')
    out.pop_back();
  return out;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.front() == '.' || name.find("..") != std::string::npos) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool port_matches(const DestinationRule& r, int port) {
  return r.port == 0 || r.port == port;
}

bool name_matches(const DestinationRule& r, const std::string& host, int port) {
  if (!r.is_name || !port_matches(r, port)) return false;
  if (!r.wildcard) return host == r.name;
  return host.size() > r.name.size() &&
         host.compare(host.size() - r.name.size(), r.name.size(), r.name) == 0;
}

bool address_matches(const DestinationRule& r, const Endpoint& e) {
  if (r.is_name || r.family != e.family || !port_matches(r, e.port)) return false;
  int full = r.prefix_bits / 8, rest = r.prefix_bits % 8;
  if (std::memcmp(r.address.data(), e.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (r.address[static_cast<size_t>(full)] & mask) ==
         (e.bytes[static_cast<size_t>(full)] & mask);
}

std::string denied(const std::string& what, const DestinationRule& r) {
  if (!r.reason.empty())
    return "destination " + what + " denied by http.deny (built in: " + r.reason + ")";
  return "destination " + what + " denied by http.deny entry '" + r.text + "'";
}

DestinationRule builtin(const std::string& text, const std::string& reason) {
  DestinationRule r = parse_destination_rule(text);
  r.reason = reason;
  return r;
}

std::string check_endpoint(const HttpPolicy& policy, Endpoint e, bool host_allowed) {
  unmap_v4(e);
  std::string what = endpoint_text(e);
  for (const auto& r : builtin_deny())
    if (address_matches(r, e)) return denied(what, r);
  for (const auto& r : policy.deny)
    if (address_matches(r, e)) return denied(what, r);
  if (policy.allow.empty() || host_allowed) return "";
  for (const auto& r : policy.allow)
    if (address_matches(r, e)) return "";
  return "destination " + what + " is not in http.allow";
}

}  // namespace

DestinationRule parse_destination_rule(const std::string& text) {
  DestinationRule r;
  r.text = text;
  if (text.empty()) throw std::invalid_argument("an empty entry");
  std::string host = text;
  std::string port;
  bool has_port = false;
  size_t colons = static_cast<size_t>(std::count(text.begin(), text.end(), ':'));
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) throw std::invalid_argument("'[' without a closing ']'");
    host = text.substr(1, close - 1);
    std::string after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw std::invalid_argument("expected ':<port>' after ']'");
      has_port = true;
      port = after.substr(1);
    }
  } else if (colons == 1) {  // host:port (an IPv6 address has two colons or more)
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    has_port = true;
    port = text.substr(colon + 1);
  }
  if (host.empty()) throw std::invalid_argument("no host, address or CIDR");
  if (host.find_first_of("[]") != std::string::npos)
    throw std::invalid_argument("unbalanced '[' or ']'");
  if (has_port) {
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535)
      throw std::invalid_argument("the port must be a number from 1 to 65535");
    r.port = std::stoi(port);
  }

  std::string address = host;
  int bits = -1;
  if (size_t slash = host.find('/'); slash != std::string::npos) {
    address = host.substr(0, slash);
    std::string b = host.substr(slash + 1);
    if (b.empty() || b.size() > 3 || b.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("the prefix length after '/' must be a number");
    bits = std::stoi(b);
  }
  if (parse_ip(address, &r.family, &r.address)) {
    int max_bits = r.family == AF_INET ? 32 : 128;
    if (bits > max_bits)
      throw std::invalid_argument("the prefix length must be at most " + std::to_string(max_bits));
    r.prefix_bits = bits < 0 ? max_bits : bits;
    return r;
  }
  if (bits >= 0) throw std::invalid_argument("'" + address + "' is not an IPv4 or IPv6 address");
  r.is_name = true;
  std::string name = lowercase_name(host);
  if (name.rfind("*.", 0) == 0) {
    r.wildcard = true;
    name = name.substr(1);  // keeps the dot: ".example.com"
    if (!valid_name(name.substr(1)))
      throw std::invalid_argument("'" + host + "' is not a host name pattern");
  } else if (!valid_name(name)) {
    throw std::invalid_argument("'" + host + "' is not a host name, an IP address or a CIDR");
  }
  r.name = name;
  return r;
}

const std::vector<DestinationRule>& builtin_deny() {
  // Specific entries first: the message names the most telling reason.
  static const std::vector<DestinationRule> rules = {
      builtin("169.254.169.254", "cloud metadata"),  // AWS, Azure, GCP, Oracle, ...
      builtin("fd00:ec2::254", "cloud metadata"),    // AWS over IPv6
      builtin("100.100.100.200", "cloud metadata"),  // Alibaba Cloud
      builtin("metadata.google.internal", "cloud metadata"),
      builtin("169.254.0.0/16", "link-local"),
      builtin("fe80::/10", "link-local"),
  };
  return rules;
}

NameVerdict HttpPolicy::check_name(std::string_view host, int port) const {
  NameVerdict v;
  std::string bare(host);
  if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']')
    bare = bare.substr(1, bare.size() - 2);
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  if (parse_ip(bare, &family, &bytes)) {
    // An IP literal is checked now too: through an HTTP proxy the socket goes to the proxy,
    // and the literal would never be seen by the address check.
    v.refusal = check_endpoint(*this, Endpoint{family, bytes, port}, false);
    v.host_allowed = v.refusal.empty() && !allow.empty();
    return v;
  }
  std::string name = lowercase_name(bare);
  std::string what = name + ":" + std::to_string(port);
  for (const auto& r : builtin_deny()) {
    if (name_matches(r, name, port)) {
      v.refusal = denied(what, r);
      return v;
    }
  }
  for (const auto& r : deny) {
    if (name_matches(r, name, port)) {
      v.refusal = denied(what, r);
      return v;
    }
  }
  for (const auto& r : allow)
    if (name_matches(r, name, port)) v.host_allowed = true;
  return v;
}

std::string HttpPolicy::check_address(const sockaddr* address, bool host_allowed) const {
  Endpoint e;
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    e.family = AF_INET;
    std::memcpy(e.bytes.data(), &in->sin_addr, 4);
    e.port = ntohs(in->sin_port);
  } else if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    e.family = AF_INET6;
    std::memcpy(e.bytes.data(), &in6->sin6_addr, 16);
    e.port = ntohs(in6->sin6_port);
  } else {
    return "destination of address family " + std::to_string(address->sa_family) +
           " refused: only IPv4 and IPv6 are checked";
  }
  return check_endpoint(*this, e, host_allowed);
}

std::string HttpPolicy::check_address_text(const char* ip, int port, bool host_allowed) const {
  Endpoint e;
  e.port = port;
  if (ip == nullptr || !parse_ip(ip, &e.family, &e.bytes))
    return "destination '" + std::string(ip != nullptr ? ip : "") + "' refused: not an IP address";
  return check_endpoint(*this, e, host_allowed);
}

}  // namespace troupe
