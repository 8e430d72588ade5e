// Upstream: where a Bookinfo service sends its calls, as a host and a port, the way a
// Kubernetes Service is named ("details:9080"). The host stays a name: it is resolved only
// when the call is made, and then only if it is an IP literal or "localhost" (see
// HttpClient). Plain value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/result.h"

namespace meshbox::bookinfo {

struct Upstream {
  std::string host;  // a name or an IP literal (IPv6 without brackets)
  uint16_t port = 9080;

  /// "details:9080", "[::1]:9080": the Host header and the authority of an absolute URL.
  std::string authority() const;
};

/// Parses "HOST:PORT" or "[IPv6]:PORT". The host is checked for shape only (no spaces, no
/// '/', '@' or '?'), never resolved.
Result<Upstream> parse_upstream(std::string_view text);

/// True if `host` can be a host name or IP literal in a URL authority.
bool is_valid_host(std::string_view host);

/// Parses a port number 1–65535.
Result<uint16_t> parse_port(std::string_view text);

}  // namespace meshbox::bookinfo
