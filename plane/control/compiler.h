// The compiler: Istio's Pilot in one function. It turns a validated config and the
// registry's endpoints into a Snapshot (plane/snapshot.h) for the proxy workers:
//   - clusters `outbound|PORT|SUBSET|HOST` for every port of every service and service-entry
//     host, one more per destination-rule subset, each with its healthy endpoints and the
//     rule's traffic policy (load balancing, connection pool limits, outlier detection,
//     timeouts; port-level settings for its port);
//   - gateway servers → listeners (one per bind address and port, servers of several gateways
//     merged as Istio merges them) with route tables built from the virtual services bound to
//     those gateways (retries, mirrors, CORS, faults… per route), or, for tcp and tls servers,
//     a TCP listener with the tcp routes (by weight) or tls routes (by SNI) bound to them;
//     servers that terminate TLS get their context from CompileOptions::server_tls (https: a
//     TlsServerSpec per server, chosen by SNI, each with its own route table; tls: on the
//     server's tcp route);
//   - request_authentication → ListenerSpec::jwt of each HTTP inbound sidecar and gateway
//     listener (inline key sets parsed here; jwks_uri sets from CompileOptions::jwks_uri).
// Sidecar listeners ("mesh" in a virtual service's gateways) are not compiled yet.
//
// A pure function: no state, no clock, no I/O. Host names of service entries with resolution
// dns are resolved by the registry (asynchronously, re-resolved on TTL); the compiler only
// reads the IPs it lists, and skips a name not resolved yet with a warning.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "plane/config/resources.h"
#include "plane/control/registry.h"
#include "plane/snapshot.h"

namespace meshbox::control {

/// A workload identity's TLS contexts for mesh mTLS, made from the CA's certificate for its
/// SPIFFE ID: `server` for its inbound sidecar (client certificates required), `client` for
/// the calls it makes; both TLS 1.3, trusting the mesh root only.
struct MeshIdentity {
  tls::TlsContextConstPtr server, client;
};

struct CompileOptions {
  std::string default_bind = "0.0.0.0";  // gateway servers without `bind`
  /// The node's locality, "region/zone/subzone" (`meshbox run --locality`): locality load
  /// balancing (plane/control/locality.h) ranks every cluster's endpoints relative to it.
  /// Clusters are shared by every proxy of the node, so a workload's own locality plays no
  /// part. "" = unknown: no locality load balancing.
  std::string locality;
  /// The contexts for a SPIFFE ID (the control plane keeps them until the certificate's
  /// half-life); null, or a null answer: no mesh mTLS (plain text everywhere).
  std::function<const MeshIdentity*(const std::string& spiffe_id)> identity;
  /// destination_rule tls simple/mutual: the client context for `tls` to a server named
  /// `sni` (the control plane's UpstreamTlsCache, which reads the files). Null, or an error
  /// (a missing file, a key that does not match): the cluster gets no endpoint, with a
  /// warning — never plain text where TLS was asked for.
  std::function<Result<tls::TlsContextConstPtr>(const config::ClientTls& tls,
                                                const std::string& sni)>
      upstream_tls;
  /// Gateway TLS termination (SIMPLE, MUTUAL, OPTIONAL_MUTUAL): the server context for a
  /// server's tls settings (`https`: ALPN http/1.1), or why there is none ("server_certificate
  /// /etc/a.pem: No such file or directory"): the server is then skipped with a warning. The
  /// control plane reads the files and keeps each context while its files do not change, so
  /// equal settings give the same pointer. Null: every such server is skipped.
  std::function<Result<tls::TlsContextConstPtr>(const config::ServerTls& tls, bool https)>
      server_tls = {};
  /// The token bucket of a local rate limit (RateLimitSpec::key) with these numbers: the
  /// control plane gives back the one it made before while they stay the same, so a push
  /// neither refills a bucket nor changes an unchanged snapshot. Null: a new bucket each time.
  std::function<std::shared_ptr<TokenBucket>(const std::string& key, uint32_t max_tokens,
                                             uint32_t tokens_per_fill, uint64_t fill_interval_ms)>
      rate_limit_bucket;
  /// request_authentication jwks_uri: the key set the control plane has for `uri` (read from
  /// a file:// path, or fetched over http(s) and cached), or null with the reason in `error`
  /// ("" = not fetched yet). Null: a rule with a jwks_uri has no keys (its tokens fail).
  /// `timeout_ms`: the rule's fetch timeout (Istio's default 5 s).
  std::function<tls::JwksConstPtr(const std::string& uri, uint64_t timeout_ms, std::string& error)>
      jwks_uri;
};

struct Compiled {
  std::shared_ptr<Snapshot> snapshot;  // version 0: the caller numbers it
  /// Things that are not config errors but that a user wants to know, one sentence each,
  /// naming the resource: "virtual_service default/x: destination reviews has no endpoint".
  /// Deterministic and without duplicates.
  std::vector<std::string> warnings;
};

/// `config` has passed validation (plane/config/validate.h): no error left; what validation
/// would reject is skipped with a warning, never a crash. `endpoints` are the registry's, in
/// any order. Deterministic: the same input gives an equal snapshot (Snapshot::same_content),
/// so the caller can skip pushes that change nothing. Output order: listeners by (port, bind),
/// route tables and clusters by name, virtual hosts in first-seen config order, endpoints by
/// address.
Compiled compile(const config::Config& config, const std::vector<Endpoint>& endpoints,
                 const CompileOptions& options = {});

}  // namespace meshbox::control
