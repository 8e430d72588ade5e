// JSON Web Tokens (RFC 7519) in compact JWS form (RFC 7515), verified against a JSON Web Key
// Set (RFC 7517): what Envoy's jwt_authn filter (jwt_verify_lib) checks, with its status
// strings. Algorithms: RS256, RS384, RS512 (RSA PKCS#1 v1.5) and ES256, ES384 (ECDSA, the
// signature raw r||s); "none" and the HMAC ones (HS*) are refused, as are keys of any other
// type. Pure functions and immutable values: no clock (the caller passes the time), no I/O;
// a Jwks may be shared between threads (BoringSSL verifies with a shared key safely).
#pragma once

#include <openssl/base.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/json.h"
#include "core/base/result.h"

namespace meshbox::tls {

/// Why a token was refused, with Envoy's words (jwt_verify_lib's getStatusString()) so a
/// client sees the body an Istio sidecar would send.
enum class JwtStatus {
  Ok,
  Missing,           // "Jwt is missing"
  NotYetValid,       // "Jwt not yet valid"
  Expired,           // "Jwt is expired"
  BadFormat,         // not three base64url parts (or too long)
  HeaderBadBase64,   // "Jwt header is an invalid Base64url encoded"
  HeaderBadJson,     // "Jwt header is an invalid JSON"
  HeaderBadAlg,      // alg absent or not a string
  AlgNotSupported,   // "Jwt header [alg] is not supported" (none, HS*, PS*, …)
  HeaderBadKid,      // kid not a string
  PayloadBadBase64,  // "Jwt payload is an invalid Base64url encoded"
  PayloadBadJson,    // not a JSON object
  IssNotString,
  SubNotString,
  IatNotInteger,
  NbfNotInteger,
  ExpNotInteger,
  AudNotString,        // aud neither a string nor an array of strings
  SignatureBadBase64,  // "Jwt signature is an invalid Base64url encoded"
  UnknownIssuer,       // "Jwt issuer is not configured"
  AudienceNotAllowed,  // "Audiences in Jwt are not allowed" (Envoy answers 403)
  VerificationFails,   // "Jwt verification fails": the signature is wrong
  KidAlgMismatch,      // no key of the set has the token's kid and a type for its alg
  JwksFetchFailed,     // "Jwks remote fetch is failed": no keys for the issuer yet
  NoValidKeys,         // "Jwks doesn't have any valid public key"
  MultipleTokens,      // "Found multiple Jwt tokens": more than a request may carry
};

/// Envoy's text for `s` ("Jwt is expired"); what a 401 carries as its body.
std::string_view jwt_status_text(JwtStatus s);

/// Tokens longer than this are refused as BadFormat before any decoding (a header of Envoy's
/// default 60 KiB limit could hold a larger one; no real issuer makes one).
inline constexpr size_t kMaxJwtBytes = 16 * 1024;
/// Envoy's default clock skew for exp and nbf.
inline constexpr int64_t kJwtClockSkewSeconds = 60;

/// A decoded (not yet verified) token.
struct Jwt {
  std::string alg, kid;
  json::Value header, payload;    // payload: a JSON object
  std::string payload_base64url;  // as it came in the token: what output_payload_to_header sends
  std::string iss, sub, azp;
  std::vector<std::string> audiences;
  int64_t exp = 0, nbf = 0, iat = 0;  // 0 = absent
  std::string signed_part;            // "HEADER.PAYLOAD", the bytes the signature covers
  std::string signature;              // decoded

  /// Parses `token` (compact JWS): three base64url parts without padding, a JSON object
  /// header with a supported alg, a JSON object payload whose registered claims have the
  /// right types. Returns Ok or the first problem found, in jwt_verify_lib's order.
  static JwtStatus parse(std::string_view token, Jwt& out);
  /// nbf and exp against `now` (Unix seconds) with `skew` seconds of tolerance each way.
  JwtStatus check_time(int64_t now, int64_t skew = kJwtClockSkewSeconds) const;
  /// True if no audience is required, or the token names one of `allowed`.
  bool audience_allowed(const std::vector<std::string>& allowed) const;
};

/// A parsed JSON Web Key Set: the RSA and EC P-256/P-384 public keys it holds (others are
/// skipped). Immutable; shared between threads as JwksConstPtr.
class Jwks {
 public:
  /// Fails (with the reason) on JSON that is not an object with a "keys" array, or a set
  /// with no usable key.
  static Result<std::shared_ptr<const Jwks>> parse(std::string_view text);
  ~Jwks();

  /// The token's signature, tried with every key whose kid matches the token's (when both
  /// have one), whose alg is the token's (when the key names one) and whose type fits the
  /// alg: Ok, VerificationFails (a key fit but none verified) or KidAlgMismatch (none fit).
  JwtStatus verify(const Jwt& jwt) const;
  size_t size() const { return keys_.size(); }
  /// The document parsed, for comparisons (two sets with the same text are the same).
  const std::string& text() const { return text_; }

 private:
  struct Key {
    std::string kid, alg;  // "" = not given
    bool rsa = false;      // else EC
    int curve_nid = 0;     // EC
    bssl::UniquePtr<EVP_PKEY> pkey;
  };
  Jwks() = default;
  std::vector<Key> keys_;
  std::string text_;
};

using JwksConstPtr = std::shared_ptr<const Jwks>;

/// base64url (RFC 4648 §5) without padding, as JWS uses it. decode fails on any character
/// outside the alphabet, on '=' and on an impossible length.
std::string base64url_encode(std::string_view bytes);
bool base64url_decode(std::string_view text, std::string& out);

}  // namespace meshbox::tls
