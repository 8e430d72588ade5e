// Istio's RequestAuthentication, compiled for one HTTP listener (Envoy's jwt_authn providers):
// which issuers' JWTs the workload or gateway behind it accepts, where the tokens are looked
// for and the keys that verify them. Part of the Snapshot (plane/snapshot.h): immutable after
// publish, read by every worker (plane/data/jwt_authn.h).
#pragma once

#include <string>
#include <vector>

#include "core/tls/jwt.h"

namespace meshbox {

/// One jwt_rules entry of a request_authentication that applies to the listener.
struct JwtProviderSpec {
  struct FromHeader {
    std::string name;  // lower case
    std::string prefix;
    bool operator==(const FromHeader&) const = default;
  };
  std::string issuer;
  std::vector<std::string> audiences;  // empty: any (or none)
  /// Where the token is looked for. All three empty: Istio's defaults, the
  /// `Authorization: Bearer <token>` header and the `access_token` query parameter.
  std::vector<FromHeader> from_headers;
  std::vector<std::string> from_params;
  std::vector<std::string> from_cookies;
  std::string output_payload_to_header;  // lower case; "" = none
  bool forward_original_token = false;
  /// The keys: from `jwks`, a jwks_uri file, or a jwks_uri fetched by the control plane. Null
  /// until a remote set has been fetched (or when none could be used): a token of this issuer
  /// then fails with "Jwks remote fetch is failed".
  tls::JwksConstPtr jwks;
  std::string jwks_error;  // why jwks is null, for the admin API and logs ("" = pending)

  bool operator==(const JwtProviderSpec& o) const {
    auto same_keys = [](const tls::JwksConstPtr& a, const tls::JwksConstPtr& b) {
      return a == b || (a && b && a->text() == b->text());
    };
    return issuer == o.issuer && audiences == o.audiences && from_headers == o.from_headers &&
           from_params == o.from_params && from_cookies == o.from_cookies &&
           output_payload_to_header == o.output_payload_to_header &&
           forward_original_token == o.forward_original_token && same_keys(jwks, o.jwks) &&
           jwks_error == o.jwks_error;
  }
};

/// Every jwt rule that applies to a listener (its workload's namespace's and the mesh root
/// namespace's policies whose selector matches), in config order. Empty: no request
/// authentication.
struct RequestAuthnSpec {
  std::vector<JwtProviderSpec> providers;
  bool empty() const { return providers.empty(); }
  bool operator==(const RequestAuthnSpec&) const = default;
};

}  // namespace meshbox
