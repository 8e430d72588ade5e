// Request authentication (Istio's RequestAuthentication, Envoy's jwt_authn filter): what a
// request's valid JWT says about its caller, for authorization policies to match on
// (request.auth.principal, request.auth.audiences, request.auth.presenter,
// request.auth.claims[...]). HttpConnection::authenticate() fills one per request; a request
// without a token, or on a listener with no request_authentication, has present = false.
// A plain value type; owned by the request that carries it.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/json.h"
#include "core/http/message.h"
#include "core/tls/jwt.h"
#include "plane/jwt_spec.h"

namespace meshbox::data {

struct RequestAuth {
  /// A token was found and it is valid. False: no token at all (Istio lets such a request on;
  /// an authorization policy can require one). An invalid token never gets this far: 401.
  bool present = false;
  /// "ISS/SUB" (Istio's request.auth.principal): the token's iss and sub claims.
  std::string principal;
  /// The aud claim: one entry for a string, each string of an array.
  std::vector<std::string> audiences;
  /// The azp claim ("" = none): Istio's request.auth.presenter.
  std::string presenter;
  /// The whole payload (a JSON object), for claim() and claim_path().
  json::Value claims;

  /// The values of the top-level claim `name` (Istio's request.auth.claims[name]): a string is
  /// one value, an array gives each of its strings (and the JSON text of its numbers and
  /// bools), a number or bool its JSON text ("42", "true"). Absent, null, or an object: none.
  std::vector<std::string> claim(std::string_view name) const {
    std::string_view one[] = {name};
    return claim_path(one);
  }

  /// The same, for a nested claim: {"a", "b"} is claims["a"]["b"] (Istio's
  /// request.auth.claims[a][b]).
  std::vector<std::string> claim_path(std::span<const std::string_view> path) const {
    std::vector<std::string> out;
    if (!present || path.empty()) return out;
    const json::Value* v = &claims;
    for (std::string_view key : path) {
      v = v->get(key);
      if (v == nullptr) return out;
    }
    if (v->is_array()) {
      for (const json::Value& e : v->array)
        append_scalar(out, e);
    } else {
      append_scalar(out, *v);
    }
    return out;
  }

 private:
  static void append_scalar(std::vector<std::string>& out, const json::Value& v) {
    if (v.is_string()) {
      out.push_back(v.string);
    } else if (v.is_bool()) {
      out.emplace_back(v.boolean ? "true" : "false");
    } else if (v.is_number()) {
      json::Writer w;
      if (v.is_integer) {
        w.value(v.integer);
      } else {
        w.value(v.number);
      }
      out.push_back(w.take());
    }
  }
};

/// Envoy's jwt_authn for one request, on the listener's providers: every token found where
/// the providers look (headers, query parameters, cookies) must be valid — parsed, of an
/// issuer configured at that location, in time (60 s of skew), for an allowed audience, and
/// signed by one of the issuer's keys — or the request is refused with the first failure.
/// No token at all: Ok, with auth.present false. On Ok, a verified token not forwarded
/// (forward_original_token false) is removed from its header or query parameter (a cookie
/// stays, as in Envoy), and output_payload_to_header carries its payload; a client's own
/// value of such a header is always dropped. `now` is Unix seconds. Pure: no I/O.
tls::JwtStatus authenticate_request(const RequestAuthnSpec& spec, http::RequestHead& head,
                                    int64_t now, RequestAuth& auth);

/// What an Envoy 401 (or 403) says about the refused token: `Bearer realm="URI"` (the URI
/// being SCHEME://HOST + the first 256 bytes of the target; `scheme` "https" for a request
/// that came over TLS), with `, error="invalid_token"` unless the token was missing.
std::string www_authenticate(const http::RequestHead& head, tls::JwtStatus status,
                             std::string_view scheme = "http");

}  // namespace meshbox::data
