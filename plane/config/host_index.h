// HostIndex: how meshbox names hosts, and which service or service entry a host written in
// a resource means. Used by validation, and by the compiler to turn hosts into clusters.
//
// A service NAME in namespace NS is the host NAME.NS.svc.SUFFIX, SUFFIX being
// mesh.domain_suffix ("cluster.local" by default), as on Kubernetes. A host written in a
// resource of namespace NS resolves so (case-insensitively):
//   - "NAME" (no dot)                       → NAME.NS.svc.SUFFIX, the resource's namespace
//   - "NAME.OTHER" or "NAME.OTHER.svc"      → NAME.OTHER.svc.SUFFIX, if that service exists
//                                             (what Kubernetes' DNS search path would find)
//   - anything else                          → itself, a fully qualified name
// Service-entry hosts are fully qualified names ("httpbin.org"); a short one resolves like a
// service's. "*.example.com" matches every name that ends in ".example.com"; "*" matches
// every name. A service wins over a service entry with the same host.
//
// Holds pointers into the Config it was built from: that Config must outlive it and not
// change. Immutable after construction.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plane/config/resources.h"

namespace meshbox::config {

/// What a host refers to: one service, or one service entry, or nothing.
struct HostTarget {
  const Service* service = nullptr;
  const ServiceEntry* entry = nullptr;
  std::string fqdn;  // the resolved name

  explicit operator bool() const { return service || entry; }
};

class HostIndex {
 public:
  explicit HostIndex(const Config& config);

  /// The fully qualified, lower-case name `host` means in namespace `ns` (rules above).
  std::string resolve(std::string_view host, std::string_view ns) const;
  /// The service or service entry a host (not a wildcard) means in namespace `ns`.
  HostTarget find(std::string_view host, std::string_view ns) const;
  /// True if `host` (a wildcard allowed) names at least one service or service-entry host.
  bool matches_any(std::string_view host, std::string_view ns) const;

  /// NAME.NS.svc.SUFFIX.
  std::string fqdn(const Service& service) const;
  /// Every known host: service FQDNs and service-entry hosts (for "did you mean").
  std::vector<std::string> all_hosts() const;

  /// True if `pattern` ("*", "*.example.com" or a plain name) matches `host`.
  static bool wildcard_match(std::string_view pattern, std::string_view host);

 private:
  std::string suffix_;
  std::map<std::string, const Service*, std::less<>> services_;           // FQDN → service
  std::vector<std::pair<std::string, const ServiceEntry*>> entry_hosts_;  // resolved hosts
};

}  // namespace meshbox::config
