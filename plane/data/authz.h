// Authorization (Istio's AuthorizationPolicy, Envoy's RBAC filter): whether a request may
// reach the workload or gateway behind a listener, by the listener's compiled policies
// (plane/authz_spec.h). Istio's order: a matching DENY policy denies; else, if any ALLOW
// policy applies, one of them must match; else the request is allowed. AUDIT policies never
// change the answer: their matches are only reported (logged and counted by the caller).
// Pure functions over plain values; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/http/header_map.h"
#include "plane/authz_spec.h"
#include "plane/data/jwt_authn.h"

namespace meshbox::data {

/// What a request looks like to a policy. The views must outlive evaluate().
struct AuthzRequest {
  /// The peer's SPIFFE ID without "spiffe://" ("cluster.local/ns/default/sa/sleep"), from
  /// its mesh mTLS certificate; "" = no authenticated peer (plain text).
  std::string_view source_principal;
  std::string_view source_ip;       // the connection's peer
  std::string_view remote_ip;       // the original client (first x-forwarded-for entry)
  std::string_view destination_ip;  // the connection's local address
  uint32_t destination_port = 0;    // unused when the spec lists destination ports
  std::string_view host;            // the Host header ("" = none)
  std::string_view method;
  std::string_view path;  // without the query
  std::string_view sni;   // the TLS server name the client sent ("" = none)
  const http::HeaderMap* headers = nullptr;
  /// The request's valid JWT (request_authentication); null or !present = none.
  const RequestAuth* auth = nullptr;
};

struct AuthzDecision {
  bool allowed = true;
  /// The policy that decided a denial: the DENY policy that matched, or null when no ALLOW
  /// policy matched (Envoy's "rbac_access_denied_matched_policy[none]").
  const AuthzPolicySpec* deny_policy = nullptr;
  size_t deny_rule = 0;
  /// AUDIT policies that matched, and the first of them.
  uint32_t audited = 0;
  const AuthzPolicySpec* audit_policy = nullptr;
};

/// The path a policy's `paths` compare with: RFC 3986 normalized as Envoy does for Istio
/// (normalize_path): percent-encoded unreserved characters decoded, "." and ".." segments
/// removed, so that "/public/../admin" or "/%61dmin" cannot slip past a rule for "/admin".
/// Returns `path` itself when there is nothing to do.
std::string normalize_path(std::string_view path);

/// The namespace part of a principal ("TD/ns/NS/sa/SA" → "NS"); "" if it has none.
std::string_view principal_namespace(std::string_view principal);

/// The verdict for `request` under `spec`. An empty spec allows everything.
AuthzDecision evaluate(const AuthzSpec& spec, const AuthzRequest& request);

/// Whether one rule of `policy` matches (exposed for tests).
bool rule_matches(const AuthzRuleSpec& rule, AuthzPolicySpec::Action action,
                  const AuthzRequest& request, const std::vector<uint32_t>& destination_ports);

/// Envoy's response code details for a denial: "rbac_access_denied_matched_policy[ns[NS]-
/// policy[NAME]-rule[I]]", or "...[none]" when no ALLOW policy matched.
std::string denial_details(const AuthzDecision& d);

}  // namespace meshbox::data
