// ProxyConfig: the HTTP forward proxy a Bookinfo service sends its calls through, from the
// http_proxy / no_proxy conventions. meshbox starts each workload with HTTP_PROXY pointing at
// the workload's own outbound sidecar listener, so an app that calls `http://details:9080/…`
// by plain name reaches details through its sidecar, as on Kubernetes. Built once in main
// (options parsing), then immutable; the HttpClient reads it on the loop thread.
//
// Semantics (curl's and Python requests', not Go's): no_proxy is a comma-separated list of
// host names, domain suffixes (".example.com" or "example.com" both match sub.example.com) and
// IP literals, an optional ":PORT" is ignored, and "*" turns the proxy off. There is no
// implicit bypass for localhost and no CIDR matching.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/loop/address.h"

namespace meshbox::bookinfo {

class ProxyConfig {
 public:
  /// No proxy: every call connects directly.
  ProxyConfig() = default;

  /// `http_proxy`: "http://HOST:PORT[/]" or "HOST:PORT" (port 80 if absent); empty means
  /// none. The proxy's host is resolved here, at start-up (getaddrinfo blocks: never on a
  /// running loop). Credentials in the URL and schemes other than http are rejected.
  static Result<ProxyConfig> parse(std::string_view http_proxy, std::string_view no_proxy);

  bool enabled() const { return enabled_; }
  /// True if a call to `host` goes through the proxy (enabled and not excluded by no_proxy).
  bool applies_to(std::string_view host) const;
  const loop::Address& address() const { return address_; }
  /// The proxy as configured, for logs.
  const std::string& url() const { return url_; }

 private:
  bool enabled_ = false;
  bool bypass_all_ = false;
  loop::Address address_;
  std::string url_;
  std::vector<std::string> no_proxy_;  // lower case, without leading "." / "*." or port
};

}  // namespace meshbox::bookinfo
