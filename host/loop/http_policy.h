// http_policy.h: where troupe.http may connect — the destination policy of workflow HTTP.
//
// A workflow is untrusted. Without a policy its HTTP reaches whatever the host can reach: the
// cloud's instance metadata service (which hands out the machine's credentials), link-local
// devices, and any address a DNS name can be made to resolve to. The policy is checked twice
// per transfer and per redirect hop: on the URL's host name before anything is resolved
// (check_name), and on the numeric address of every connection the transfer opens or reuses
// (check_address), so a name that resolves — or is rebound — to a denied address is refused
// before a byte is sent. Provider plugins' transfers carry no policy (decision 0010).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

// One allow or deny entry, parsed from text such as
//   "api.example.com"      that host name              "*.example.com"  every name under it
//   "10.0.0.0/8"           a CIDR                      "fd00::/8"       an IPv6 CIDR
//   "127.0.0.1:8080"       an address and one port     "[::1]:8080"     IPv6 with a port
//   "localhost:11434"      a name and one port         "[fe80::]/10"    brackets are optional
// Names are matched case-insensitively and without a trailing dot, against the URL's host;
// addresses and CIDRs against an IP literal in the URL and against the address actually
// connected to (IPv4-mapped IPv6 counts as IPv4). Through an HTTP proxy (curl honours
// http_proxy and friends) the connection goes to the proxy: names the proxy resolves can
// only be matched by name there.
struct DestinationRule {
  std::string text;    // as written, for messages
  std::string reason;  // why a built-in entry is there ("link-local"); empty for configured ones
  bool is_name = false;
  std::string name;  // lowercase; for a wildcard the suffix with its dot (".example.com")
  bool wildcard = false;
  int family = 0;  // AF_INET or AF_INET6 for addresses and CIDRs
  std::array<uint8_t, 16> address{};
  int prefix_bits = 0;
  int port = 0;  // 0: every port
};

// Parses one entry. Throws std::invalid_argument saying what is wrong with it.
DestinationRule parse_destination_rule(const std::string& text);

// The outcome of the check of the URL's host: a refusal, or which check the connected address
// still needs.
struct NameVerdict {
  std::string refusal;  // non-empty: refused, and why
  // An allow entry matched the host (name or IP literal): only deny applies to the addresses
  // connected to (which may be a proxy's).
  bool host_allowed = false;
};

struct HttpPolicy {
  std::vector<DestinationRule> allow;  // empty: every destination that is not denied
  std::vector<DestinationRule> deny;   // the configured ones; builtin_deny() always applies too

  // Checks the URL's host as curl parsed it (a name, or an IP literal checked like an address)
  // and its port, before anything is resolved or connected.
  NameVerdict check_name(std::string_view host, int port) const;
  // Checks the address of a connection about to be opened or reused. Empty when allowed,
  // otherwise why not: "destination 169.254.169.254:80 denied by http.deny (built in:
  // cloud metadata)".
  std::string check_address(const sockaddr* address, bool host_allowed) const;
  // The same for an address given as text (curl's CURLOPT_PREREQFUNCTION hands it so).
  std::string check_address_text(const char* ip, int port, bool host_allowed) const;
};

// Denied whatever the configuration says: link-local addresses (169.254.0.0/16, fe80::/10) and
// the cloud metadata services (169.254.169.254, fd00:ec2::254, 100.100.100.200,
// metadata.google.internal).
const std::vector<DestinationRule>& builtin_deny();

}  // namespace troupe
