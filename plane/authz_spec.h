// Istio's AuthorizationPolicy, compiled for one listener (Envoy's RBAC filter config): the
// policies that apply to the workload or gateway behind it, with every value already in the
// form the data plane compares (ip blocks as CIDRs, Istio's `*` values as exact, prefix,
// suffix or presence matches, ports as numbers). Built by the control plane's compiler, put on
// ListenerSpec (snapshot.h), evaluated by plane/data/authz.h. Value types; immutable after
// publish like the rest of the snapshot.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshbox {

/// An IP address block. An address alone is a /32 (IPv4) or /128 (IPv6) block; an
/// IPv4-mapped IPv6 address ("::ffff:10.1.2.3") is taken as the IPv4 address.
struct CidrBlock {
  uint8_t family = 0;  // 4 or 6
  uint8_t prefix_len = 0;
  std::array<uint8_t, 16> bytes{};  // the network's address: host bits are zero

  /// "10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"; nullopt for anything else.
  static std::optional<CidrBlock> parse(std::string_view text);
  /// Whether `ip` (a parsed address) is inside this block.
  bool contains(const CidrBlock& ip) const;
  bool operator==(const CidrBlock&) const = default;
};

/// One of Istio's authorization values: "*" (presence: any value at all), "abc*" (prefix),
/// "*abc" (suffix), anything else exact.
struct AuthzMatch {
  enum class Kind : uint8_t { Exact, Prefix, Suffix, Presence };
  Kind kind = Kind::Exact;
  std::string value;         // without the '*'; lower case when ignore_case
  bool ignore_case = false;  // hosts

  static AuthzMatch parse(std::string_view text, bool ignore_case = false);
  /// `present` false: there is no value (no such header, no peer identity): only a
  /// not_... list matches then.
  bool matches(std::string_view s, bool present = true) const;
  bool operator==(const AuthzMatch&) const = default;
};

/// Istio's Source: every field given must match (AND); values inside a field are ORed, not_
/// fields match when no value does. Principals are SPIFFE IDs without "spiffe://"
/// ("cluster.local/ns/default/sa/sleep"); namespaces are the principal's.
struct AuthzSourceSpec {
  std::vector<AuthzMatch> principals, not_principals;
  std::vector<AuthzMatch> request_principals, not_request_principals;
  std::vector<AuthzMatch> namespaces, not_namespaces;
  std::vector<CidrBlock> ip_blocks, not_ip_blocks;                // the connection's peer
  std::vector<CidrBlock> remote_ip_blocks, not_remote_ip_blocks;  // the original client
  bool operator==(const AuthzSourceSpec&) const = default;
};

/// Istio's Operation, compiled the same way. Hosts compare without regard to case, with and
/// without the Host header's port; paths are the request's path without its query.
struct AuthzOperationSpec {
  std::vector<AuthzMatch> hosts, not_hosts;
  std::vector<uint32_t> ports, not_ports;
  std::vector<AuthzMatch> methods, not_methods;
  std::vector<AuthzMatch> paths, not_paths;
  bool operator==(const AuthzOperationSpec&) const = default;
};

/// Istio's Condition (`when`): the key's value must match one of `values` (if any) and none of
/// `not_values`.
struct AuthzConditionSpec {
  enum class Key : uint8_t {
    Header,            // request.headers[NAME]
    SourceIp,          // source.ip
    RemoteIp,          // remote.ip
    SourceNamespace,   // source.namespace
    SourcePrincipal,   // source.principal
    RequestPrincipal,  // request.auth.principal
    Audiences,         // request.auth.audiences
    Presenter,         // request.auth.presenter
    Claim,             // request.auth.claims[NAME] (or [A][B] for a nested claim)
    DestinationIp,     // destination.ip
    DestinationPort,   // destination.port
    Sni,               // connection.sni
    Unsupported,       // a key meshbox does not evaluate (experimental.envoy.filters.*)
  };
  Key key = Key::Unsupported;
  std::string header;                          // Header: the name, lower case
  std::vector<std::string> claim;              // Claim: the path, outermost first
  std::vector<AuthzMatch> values, not_values;  // the string keys
  std::vector<CidrBlock> ips, not_ips;         // the three ip keys
  std::vector<uint32_t> ports, not_ports;      // destination.port
  bool operator==(const AuthzConditionSpec&) const = default;
};

/// Istio's Rule: from (ORed sources) AND to (ORed operations) AND every condition. An empty
/// rule matches every request.
struct AuthzRuleSpec {
  std::vector<AuthzSourceSpec> from;
  std::vector<AuthzOperationSpec> to;
  std::vector<AuthzConditionSpec> when;
  bool operator==(const AuthzRuleSpec&) const = default;
};

struct AuthzPolicySpec {
  enum class Action : uint8_t { Allow, Deny, Audit };
  std::string ns, name;  // the policy's namespace and name (Envoy names it ns[NS]-policy[NAME])
  Action action = Action::Allow;
  std::vector<AuthzRuleSpec> rules;  // none: matches nothing (an ALLOW without rules denies all)
  bool operator==(const AuthzPolicySpec&) const = default;
};

/// The policies of one listener, in config order. Empty: every request is allowed.
struct AuthzSpec {
  std::vector<AuthzPolicySpec> policies;
  /// What `ports` and destination.port compare with: an inbound sidecar's workload port and
  /// its service's ports (a workload started by meshbox listens on a port of its own, while
  /// a policy names the service's); a gateway listener's port.
  std::vector<uint32_t> destination_ports;
  bool empty() const { return policies.empty(); }
  bool operator==(const AuthzSpec&) const = default;
};

/// Process-wide counters of the data plane's authorization decisions (Envoy's rbac.allowed
/// and rbac.denied, and AUDIT matches), summed over every worker; the admin API reports them
/// (GET /stats/authz). Thread-safe.
struct AuthzCounters {
  std::atomic<uint64_t> allowed{0}, denied{0}, audited{0};
};
AuthzCounters& authz_counters();

}  // namespace meshbox
